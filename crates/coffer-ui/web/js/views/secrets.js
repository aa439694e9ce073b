// Secret engines and KV folders: what the token may see, a filter for the
// folder shown, and a search through everything below it.

import { h, field, notice, setNotice } from '../dom.js';
import { api, list } from '../api.js';
import { loadMounts, splitMount } from '../mounts.js';
import { href, go } from '../router.js';
import { errorText } from '../components.js';

const SEARCH_LIMIT = 5000;

export function kvBase(version) {
  return version === '2' ? 'metadata/' : '';
}

export function crumbs(mount, rest) {
  const parts = rest.split('/').filter(Boolean);
  const links = [h('a', { href: '#/secrets' }, 'Secrets'), ' / ', h('a', { href: href(`/kv/${mount}`) }, mount)];
  let acc = '';
  parts.forEach((p, i) => {
    acc += `${p}/`;
    const last = i === parts.length - 1;
    links.push(' ', last && !rest.endsWith('/') ? h('span', {}, p) : h('a', { href: href(`/kv/${mount}${acc}`) }, `${p}/`));
  });
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, links);
}

export async function mountsView(page) {
  const m = await loadMounts(true);
  const rows = Object.entries(m.secret).sort(([a], [b]) => a.localeCompare(b));
  const link = (path, info) => {
    if (info.type === 'kv' || info.type === 'generic') return h('a', { href: href(`/kv/${path}`) }, path);
    if (info.type === 'transit') return h('a', { href: href(`/transit/${path}`) }, path);
    if (info.type === 'database') return h('a', { href: href('/leases', { prefix: `${path}creds/` }) }, path);
    return h('span', {}, path);
  };
  page.append(
    h('h1', {}, 'Secrets engines'),
    rows.length === 0
      ? h('p', {}, 'Your policies give you access to no secrets engine.')
      : h('div', { class: 'table-scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Path'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Description'))),
        h('tbody', {}, rows.map(([path, info]) => h('tr', {},
          h('td', {}, link(path, info)),
          h('td', {}, info.type === 'kv' ? `kv v${(info.options && info.options.version) || '1'}` : info.type),
          h('td', {}, info.description || '')))))),
    openByPath(''),
  );
}

/** A form to open a secret by path: for folders the token may not list. */
function openByPath(prefix) {
  const input = h('input', { type: 'text', name: 'open-path', value: prefix, placeholder: 'secret/app/db', autocomplete: 'off' });
  const f = h('form', { class: 'stack' },
    h('h2', {}, 'Open a path'),
    field('Path', input, 'A secret you may read even where you may not list its folder.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Open')));
  f.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = input.value.trim().replace(/^\/+/, '');
    if (p) go(href(`/kv/${p}`));
  });
  return f;
}

export async function kvRoute(page, m, query) {
  const full = m[1];
  const where = await splitMount(full);
  if (!where) {
    page.append(h('h1', {}, full), notice('error', `No secrets engine you can see is mounted at ${full}.`), openByPath(''));
    return;
  }
  if (where.type !== 'kv' && where.type !== 'generic') {
    page.append(h('h1', {}, full), notice('error', `${where.mount} is a ${where.type} engine, not KV.`));
    return;
  }
  if (where.rest === '' || where.rest.endsWith('/')) return folderView(page, where, query);
  const { secretView } = await import('./secret.js');
  return secretView(page, where, query);
}

async function folderView(page, where, query) {
  const { mount, rest, version } = where;
  const status = notice('', '');
  page.append(crumbs(mount, rest), h('h1', {}, `${mount}${rest}`), status);
  let keys;
  try {
    keys = await list(`${mount}${kvBase(version)}${rest}`);
  } catch (e) {
    if (e.status === 403) {
      page.append(notice('error', `You may not list ${mount}${rest}. You can still open a secret here by its path if your policies let you read it.`), openByPath(`${mount}${rest}`));
      return;
    }
    throw e;
  }
  const filter = h('input', { type: 'search', name: 'filter', autocomplete: 'off', value: query.get('q') || '' });
  const entries = h('ul', { class: 'entries', 'aria-label': 'Secrets and folders' });
  const draw = (items, prefix) => {
    entries.replaceChildren(...items.map((k) => h('li', {},
      h('a', { class: k.endsWith('/') ? 'folder' : 'secret', href: href(`/kv/${mount}${prefix}${k}`) }, k))));
    if (items.length === 0) entries.append(h('li', { class: 'muted' }, h('span', {}, 'Nothing here.')));
  };
  const apply = () => {
    const q = filter.value.trim().toLowerCase();
    draw(keys.filter((k) => k.toLowerCase().includes(q)), rest);
  };
  filter.addEventListener('input', apply);
  const search = h('button', { type: 'button' }, 'Search all below');
  search.addEventListener('click', async () => {
    const q = filter.value.trim().toLowerCase();
    if (!q) {
      setNotice(status, 'warn', 'Type part of a path to search for.');
      return;
    }
    search.disabled = true;
    setNotice(status, '', 'Searching…');
    try {
      const { found, truncated, denied } = await walk(mount, version, rest, q);
      draw(found, rest);
      const extra = [truncated ? `stopped after ${SEARCH_LIMIT} paths` : '', denied ? `${denied} folder(s) you may not list were skipped` : ''].filter(Boolean).join('; ');
      setNotice(status, found.length ? 'ok' : 'warn', `${found.length} match(es) for “${q}” below ${mount}${rest}${extra ? ` (${extra})` : ''}.`);
    } catch (e) {
      setNotice(status, 'error', errorText(e));
    } finally {
      search.disabled = false;
    }
  });
  page.append(
    h('div', { class: 'actions' },
      h('a', { class: 'button primary', href: href(`/kv-new/${mount}${rest}`) }, 'New secret'),
      search),
    field('Filter by path', filter, 'Filters this folder as you type; “Search all below” looks through every folder under it.'),
    entries,
  );
  apply();
}

/** Lists every path under `rest` (breadth first, a few requests at a time). */
async function walk(mount, version, rest, q) {
  const found = [];
  let seen = 0;
  let denied = 0;
  let queue = [''];
  while (queue.length && seen < SEARCH_LIMIT) {
    const batch = queue.splice(0, 4);
    const lists = await Promise.all(batch.map(async (sub) => {
      try {
        return [sub, await list(`${mount}${kvBase(version)}${rest}${sub}`)];
      } catch (e) {
        if (e.status === 403) {
          denied += 1;
          return [sub, []];
        }
        throw e;
      }
    }));
    for (const [sub, keys] of lists) {
      for (const k of keys) {
        seen += 1;
        const p = `${sub}${k}`;
        if (k.endsWith('/')) queue.push(p);
        if (p.toLowerCase().includes(q)) found.push(p);
      }
    }
    if (queue.length > SEARCH_LIMIT) queue = queue.slice(0, SEARCH_LIMIT);
  }
  return { found, truncated: seen >= SEARCH_LIMIT, denied };
}

