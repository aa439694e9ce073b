// The address fragment as a route, and navigation between pages.

let renderer = () => {};

export function onRender(fn) {
  renderer = fn;
}

/** The fragment as {path: '/kv/secret/app', query: URLSearchParams}. */
export function currentRoute() {
  const raw = location.hash.replace(/^#/, '') || '/secrets';
  const q = raw.indexOf('?');
  let path = q < 0 ? raw : raw.slice(0, q);
  try {
    path = decodeURIComponent(path);
  } catch {
    // A malformed escape stays as written.
  }
  return { path, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

/** Builds '#/kv/secret/a%20b?tab=versions' from a path and query. */
export function href(path, query) {
  const enc = path.split('/').map(encodeURIComponent).join('/');
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString() : '';
  return `#${enc}${qs ? `?${qs}` : ''}`;
}

let pending = null;

/** A message for the next page drawn (what an action just did). */
export function flash(kind, text) {
  pending = { kind, text };
}

/** Takes the pending message, if any. */
export function takeFlash() {
  const f = pending;
  pending = null;
  return f;
}

export function go(to) {
  if (location.hash === to) renderer();
  else location.hash = to;
}

export function refresh() {
  renderer();
}
