// Which engines the token can see (sys/internal/ui/mounts answers only the
// mounts a token has some access to), and how a full path splits into a
// mount and a path under it.

import { api } from './api.js';

let cache = null;

export async function loadMounts(force = false) {
  if (cache && !force) return cache;
  const r = await api('GET', 'sys/internal/ui/mounts');
  const d = (r && r.data) || {};
  cache = { secret: d.secret || {}, auth: d.auth || {} };
  return cache;
}

export function forgetMounts() {
  cache = null;
}

/** Splits 'secret/app/db' into the longest mount that prefixes it and the rest. */
export async function splitMount(full) {
  const m = await loadMounts();
  let best = null;
  for (const path of Object.keys(m.secret)) {
    if ((full === path.slice(0, -1) || full.startsWith(path)) && (!best || path.length > best.length)) best = path;
  }
  if (!best) return null;
  const info = m.secret[best];
  const version = String((info.options && info.options.version) || '1');
  return { mount: best, rest: full.slice(best.length), type: info.type, version, info };
}

/** Mounts of one engine type, e.g. mountsOf('transit'). */
export async function mountsOf(type) {
  const m = await loadMounts();
  return Object.entries(m.secret).filter(([, v]) => v.type === type).map(([k]) => k).sort();
}
