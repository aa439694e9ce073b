// The one way the UI talks to coffer: the /v1/ HTTP API, with the session's
// token in a header (never in a URL), and nothing cached by the browser.

import { session } from './session.js';

export class ApiError extends Error {
  constructor(status, errors, body = null) {
    super(errors.join('; ') || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
    // The answer's JSON, when it had one (a deleted KV version's metadata).
    this.body = body;
  }

  /** A message for people, with what to do about a refusal. */
  get human() {
    if (this.status === 403) {
      return 'Permission denied: your policies do not allow this. Ask an administrator, or check what your token can do under Capabilities.';
    }
    if (this.status === 503 && /sealed/i.test(this.message)) return 'coffer is sealed: an operator must unseal it first.';
    return this.message;
  }
}

/** Encodes a logical path for the URL, segment by segment. */
export function encodePath(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

/**
 * api('GET', 'secret/data/app', {query: {version: 2}})
 * Options: body, query, list (LIST), token (instead of the session's),
 * anonymous (no token), wrapTTL (response wrapping).
 */
export async function api(method, path, opts = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(opts.query || {})) if (v !== undefined && v !== null && v !== '') params.set(k, v);
  if (opts.list) params.set('list', 'true');
  const qs = params.toString();
  const headers = { 'X-Vault-Request': 'true' };
  const token = opts.anonymous ? null : (opts.token || session.token);
  if (token) headers['X-Vault-Token'] = token;
  if (opts.wrapTTL) headers['X-Vault-Wrap-TTL'] = opts.wrapTTL;
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let resp;
  try {
    resp = await fetch(`/v1/${encodePath(path)}${qs ? `?${qs}` : ''}`, {
      method, headers, body, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer', redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, [`coffer could not be reached (${e.message})`]);
  }
  if (resp.status === 204) return null;
  let json = null;
  const text = await resp.text();
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!resp.ok) {
    // An empty LIST is a 404 without errors in Vault's API.
    if (opts.list && resp.status === 404 && json && Array.isArray(json.errors) && json.errors.length === 0) {
      return { data: { keys: [] } };
    }
    const errors = json && Array.isArray(json.errors) ? json.errors : [`${resp.status} ${resp.statusText}`];
    throw new ApiError(resp.status, errors, json);
  }
  return json;
}

/** LIST keys under a path; [] when there are none. */
export async function list(path) {
  const r = await api('GET', path, { list: true });
  return (r && r.data && r.data.keys) || [];
}
