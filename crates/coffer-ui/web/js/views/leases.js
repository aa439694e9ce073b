// Leases by prefix (sys/leases/lookup/<prefix>): look one up, renew it or
// revoke it, or revoke everything under a prefix.

import { h, field, notice, setNotice, when, duration, confirmDialog } from '../dom.js';
import { api, list } from '../api.js';
import { href, go, refresh, flash } from '../router.js';
import { errorText } from '../components.js';

export async function leasesView(page, m, query) {
  const prefix = (query.get('prefix') || '').replace(/^\/+/, '');
  const status = notice('', '');
  const input = h('input', { type: 'text', name: 'prefix', value: prefix, autocomplete: 'off', placeholder: 'database/creds/' });
  const form = h('form', { class: 'actions', role: 'search' }, field('Lease prefix', input), h('button', { type: 'submit' }, 'List'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(href('/leases', { prefix: input.value.trim() }));
  });
  page.append(h('h1', {}, 'Leases'), form, status);
  if (!prefix) {
    page.append(h('p', { class: 'hint' }, 'Leases are listed by the path that issued them, such as database/creds/app/. Listing needs sudo on sys/leases/lookup.'));
    return;
  }
  const folder = prefix.endsWith('/') ? prefix : `${prefix}/`;
  let keys;
  try {
    keys = await list(`sys/leases/lookup/${folder}`);
  } catch (e) {
    page.append(notice('error', e.status === 403 ? 'Your policies do not let you list leases here (it needs sudo on sys/leases/lookup).' : errorText(e)));
    return;
  }
  const rows = h('tbody', {});
  for (const k of keys) {
    if (k.endsWith('/')) {
      rows.append(h('tr', {}, h('td', { colspan: '5' }, h('a', { class: 'folder', href: href('/leases', { prefix: `${folder}${k}` }) }, k))));
      continue;
    }
    const id = `${folder}${k}`;
    const ttl = h('td', {}, '…');
    const expires = h('td', {}, '…');
    const renew = h('button', { type: 'button' }, 'Renew');
    const revoke = h('button', { type: 'button', class: 'danger' }, 'Revoke');
    renew.addEventListener('click', async () => {
      try {
        const r = await api('PUT', 'sys/leases/renew', { body: { lease_id: id } });
        flash('ok', `Renewed ${id} for ${duration(r.lease_duration)}.`);
        refresh();
      } catch (e) {
        setNotice(status, 'error', `${id}: ${errorText(e)}`);
      }
    });
    revoke.addEventListener('click', async () => {
      if (!await confirmDialog(`Revoke ${id}?`, 'The credential stops working now (a database user is dropped).', 'Revoke')) return;
      try {
        await api('PUT', 'sys/leases/revoke', { body: { lease_id: id } });
        flash('ok', `Revoked ${id}.`);
        refresh();
      } catch (e) {
        setNotice(status, 'error', `${id}: ${errorText(e)}`);
      }
    });
    rows.append(h('tr', { 'data-lease': id }, h('th', { scope: 'row', class: 'mono' }, k), ttl, expires, h('td', {}, h('div', { class: 'actions' }, renew, revoke))));
    api('PUT', 'sys/leases/lookup', { body: { lease_id: id } }).then((r) => {
      ttl.textContent = duration(r.data.ttl);
      expires.replaceChildren(when(r.data.expire_time));
      renew.disabled = !r.data.renewable;
    }).catch((e) => {
      ttl.textContent = errorText(e);
      expires.textContent = '';
    });
  }
  const revokeAll = h('button', { type: 'button', class: 'danger' }, `Revoke everything under ${folder}`);
  revokeAll.addEventListener('click', async () => {
    if (!await confirmDialog(`Revoke every lease under ${folder}?`, 'Every credential issued under this prefix stops working now.', 'Revoke all')) return;
    try {
      await api('PUT', `sys/leases/revoke-prefix/${folder}`);
      flash('ok', `Revoked everything under ${folder}.`);
      refresh();
    } catch (e) {
      setNotice(status, 'error', errorText(e));
    }
  });
  page.append(
    keys.length === 0 ? h('p', {}, `No leases under ${folder}.`) : h('div', { class: 'table-scroll' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, `Leases under ${folder}`),
      h('thead', {}, h('tr', {}, ['Lease', 'Remaining', 'Expires', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      rows)),
    ...(keys.length ? [h('div', { class: 'actions' }, revokeAll)] : []),
  );
}
