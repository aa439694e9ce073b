// The rotation dashboard (sys/rotation/status): every static role, root
// credential and transit key with a rotation period, failing ones first.

import { h, notice, when, duration } from '../dom.js';
import { api } from '../api.js';
import { refresh } from '../router.js';

const ORDER = { failing: 0, overdue: 1, due: 2, ok: 3 };

export async function rotationView(page) {
  const d = (await api('GET', 'sys/rotation/status')).data;
  const now = Date.now();
  const rows = (d.rotations || []).map((r) => {
    const due = r.next_due && new Date(r.next_due).getTime() <= now;
    return { ...r, shown: r.state === 'ok' && due ? 'due' : r.state };
  }).sort((a, b) => (ORDER[a.shown] ?? 9) - (ORDER[b.shown] ?? 9) || a.path.localeCompare(b.path));
  const count = (s) => rows.filter((r) => r.shown === s).length;
  const summary = d.failing || d.overdue
    ? notice('error', `${d.failing} failing, ${d.overdue} overdue: credentials past their rotation are in use.`)
    : notice('ok', rows.length ? 'Every rotation is on schedule.' : 'Nothing here rotates on a schedule yet.');
  page.append(
    h('h1', {}, 'Rotation'),
    summary,
    h('p', {}, `${rows.length} scheduled · ${count('failing')} failing · ${count('overdue')} overdue · ${count('due')} due now`),
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: refresh }, 'Refresh')),
    h('div', { class: 'table-scroll' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Scheduled rotations'),
      h('thead', {}, h('tr', {}, ['Path', 'Kind', 'State', 'Every', 'Last success', 'Next due', 'Failures', 'Last error'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-state': r.shown },
        h('th', { scope: 'row' }, r.path),
        h('td', {}, r.kind),
        h('td', { class: `state-${r.shown}` }, r.shown),
        h('td', {}, r.rotation_period ? duration(r.rotation_period) : '—'),
        h('td', {}, when(r.last_success || '')),
        h('td', {}, when(r.next_due || '')),
        h('td', {}, String(r.consecutive_failures || 0)),
        h('td', {}, r.last_error || '')))))),
  );
}
