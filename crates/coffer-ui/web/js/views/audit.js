// "Who read this secret": coffer searches its own file audit devices
// (sys/audit-search, sudo) for requests on a path in a time window.

import { h, field, notice, when } from '../dom.js';
import { api } from '../api.js';
import { href, go } from '../router.js';
import { errorText } from '../components.js';

const OPS = [['read', 'Reads'], ['*', 'Every operation'], ['update', 'Writes'], ['delete', 'Deletes'], ['list', 'Lists']];

/** datetime-local value (local time) to RFC 3339 UTC, or ''. */
function toRfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function toLocalInput(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export async function auditView(page, m, query) {
  const path = query.get('path') || '';
  const path_ = h('input', { type: 'text', name: 'path', value: path, required: true, autocomplete: 'off', placeholder: 'secret/data/app' });
  const since = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(query.get('since')) });
  const until = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(query.get('until')) });
  const ops = h('select', { name: 'operations' }, OPS.map(([v, l]) => h('option', { value: v, selected: v === (query.get('ops') || 'read') }, l)));
  const form = h('form', { class: 'stack', role: 'search' },
    field('API path', path_, 'As clients call it: KV version 2 reads are under <mount>/data/. End with * for everything below a path.'),
    field('Operations', ops), field('From', since), field('Until', until),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Search')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(href('/audit', { path: path_.value.trim(), since: toRfc3339(since.value), until: toRfc3339(until.value), ops: ops.value }));
  });
  page.append(h('h1', {}, 'Who accessed a secret'), form);
  if (!path) return;
  let d;
  let warnings = [];
  try {
    const r = await api('POST', 'sys/audit-search', {
      body: { path, since: query.get('since') || undefined, until: query.get('until') || undefined, operations: [query.get('ops') || 'read'] },
    });
    d = r.data;
    warnings = r.warnings || [];
  } catch (e) {
    page.append(notice('error', e.status === 403 ? 'Searching the audit log needs sudo on sys/audit-search.' : errorText(e)));
    return;
  }
  const entries = d.entries || [];
  // Per identity: how often, first and last time, how many refused.
  const byWho = new Map();
  for (const e of entries) {
    const who = e.display_name || '(no token)';
    const g = byWho.get(who) || { n: 0, refused: 0, first: e.time, last: e.time, from: new Set() };
    g.n += 1;
    if (e.error) g.refused += 1;
    if (e.time < g.first) g.first = e.time;
    if (e.time > g.last) g.last = e.time;
    if (e.remote_address) g.from.add(e.remote_address);
    byWho.set(who, g);
  }
  const short = (a) => (a ? a.replace(/^hmac-sha256:/, '').slice(0, 12) : '');
  page.append(
    h('h2', {}, `${byWho.size} identit${byWho.size === 1 ? 'y' : 'ies'} on ${path}`),
    h('div', { class: 'table-scroll' }, h('table', { 'data-summary': '' },
      h('caption', { class: 'visually-hidden' }, 'Requests by identity'),
      h('thead', {}, h('tr', {}, ['Who', 'Requests', 'Refused', 'First', 'Last', 'From'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, [...byWho.entries()].map(([who, g]) => h('tr', {},
        h('th', { scope: 'row' }, who), h('td', {}, String(g.n)), h('td', {}, String(g.refused)),
        h('td', {}, when(g.first)), h('td', {}, when(g.last)), h('td', {}, [...g.from].join(', '))))))),
  );
  page.append(
    h('h2', {}, `${entries.length} request(s) on ${path}${d.truncated ? ' (the newest shown; narrow the window for older ones)' : ''}`),
    ...warnings.map((w) => notice('warn', w)),
    h('p', {}, `Searched ${d.devices.join(', ') || 'no device'} (${d.lines_read} lines).`),
    entries.length === 0 ? h('p', {}, 'Nothing matched.') : h('div', { class: 'table-scroll' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, `Requests on ${path}`),
      h('thead', {}, h('tr', {}, ['Time', 'Who', 'Operation', 'Outcome', 'From', 'Policies'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, entries.map((e) => h('tr', {},
        h('td', {}, when(e.time)),
        h('th', { scope: 'row' }, e.display_name || '(no token)', e.accessor ? h('div', { class: 'muted mono', title: e.accessor }, `accessor ${short(e.accessor)}…`) : ''),
        h('td', {}, `${e.operation}${e.path !== path ? ` ${e.path}` : ''}`),
        h('td', { class: e.error ? 'state-failing' : 'state-ok' }, e.error ? `refused: ${e.error}` : 'allowed'),
        h('td', {}, e.remote_address || ''),
        h('td', {}, (e.policies || []).join(', '))))))),
  );
}
