// One KV secret: its fields (masked; each reveal or copy is a fresh read,
// so the audit log has it), versions with diff, rollback, delete, undelete
// and destroy, custom metadata, and sharing it once by a wrapped link.

import { h, field, notice, setNotice, when, confirmDialog } from '../dom.js';
import { api, ApiError } from '../api.js';
import { href, go, refresh, flash } from '../router.js';
import { maskedValue, tabs, show, errorText, copyWithClear } from '../components.js';
import { crumbs } from './secrets.js';

export const SHARE_TTLS = [['15m', '15 minutes'], ['1h', '1 hour'], ['24h', '1 day'], ['72h', '3 days'], ['168h', '7 days']];

function v2(where) {
  return where.version === '2';
}

/** Reads a version: {data, meta} (data null for a deleted or destroyed one). */
export async function readSecret(where, version) {
  const { mount, rest } = where;
  if (!v2(where)) {
    const r = await api('GET', `${mount}${rest}`);
    return { data: r.data || {}, meta: null };
  }
  try {
    const r = await api('GET', `${mount}data/${rest}`, { query: { version } });
    return { data: r.data.data, meta: r.data.metadata };
  } catch (e) {
    const md = e instanceof ApiError && e.status === 404 && e.body && e.body.data && e.body.data.metadata;
    if (md) return { data: null, meta: md };
    throw e;
  }
}

function fieldList(names, fetchField, status) {
  if (names.length === 0) return h('p', { class: 'muted' }, 'This secret has no fields.');
  return h('dl', { class: 'fields' }, names.map((k) => [h('dt', {}, k), h('dd', {}, maskedValue(k, () => fetchField(k), status))]));
}

export async function secretView(page, where, query) {
  const { mount, rest } = where;
  const full = `${mount}${rest}`;
  const tab = query.get('tab') || 'secret';
  const status = notice('', '');
  let meta = null;
  if (v2(where)) {
    try {
      meta = (await api('GET', `${mount}metadata/${rest}`)).data;
    } catch (e) {
      if (e.status === 404) {
        page.append(crumbs(mount, rest), h('h1', {}, full), notice('error', `There is no secret at ${full}.`),
          h('a', { class: 'button primary', href: href(`/kv-new/${mount}${rest.replace(/[^/]*$/, '')}`, { name: rest.replace(/^.*\//, '') }) }, 'Create it'));
        return;
      }
      // Without read on metadata, the secret itself may still be readable.
      if (e.status !== 403) throw e;
    }
  }
  const tabItems = [['Secret', href(`/kv/${full}`), tab === 'secret']];
  if (v2(where)) {
    tabItems.push(['Versions', href(`/kv/${full}`, { tab: 'versions' }), tab === 'versions' || tab === 'diff']);
    tabItems.push(['Metadata', href(`/kv/${full}`, { tab: 'metadata' }), tab === 'metadata']);
  }
  page.append(crumbs(mount, rest), h('h1', {}, full), tabs('Secret', tabItems), status);
  if (tab === 'versions' && meta) return versionsTab(page, where, meta, status);
  if (tab === 'diff') return diffTab(page, where, query, status);
  if (tab === 'metadata' && meta) return metadataTab(page, where, meta, status);
  if (tab !== 'secret') {
    page.append(notice('error', 'Your policies do not let you read this secret\'s metadata.'));
    return;
  }
  return dataTab(page, where, meta, query.get('version') || '', status);
}

async function dataTab(page, where, meta, version, status) {
  const { mount, rest } = where;
  const full = `${mount}${rest}`;
  let first;
  try {
    first = await readSecret(where, version);
  } catch (e) {
    if (e.status === 403) {
      page.append(notice('error', `Your policies do not let you read ${full}.`));
      return;
    }
    if (e.status === 404) {
      page.append(notice('error', version ? `${full} has no version ${version}.` : `There is no secret at ${full}.`));
      return;
    }
    throw e;
  }
  // Only the names are kept: a value is read again when someone reveals it.
  const names = first.data ? Object.keys(first.data).sort() : [];
  const shownVersion = first.meta ? String(first.meta.version) : '';
  const deletedMeta = first.data ? null : first.meta;
  const readMeta = first.meta || {};
  first = null;
  const current = meta ? String(meta.current_version) : shownVersion;
  const fetchField = async (k) => (await readSecret(where, shownVersion)).data?.[k];
  const info = [];
  if (v2(where) && shownVersion) {
    info.push(h('p', {}, `Version ${shownVersion}`, meta ? ` of ${meta.current_version}` : '', ', created ', when(readMeta.created_time || ''), '.'));
    if (current && shownVersion !== current) info.push(notice('warn', `This is an older version; the current one is ${current}.`));
  }
  if (deletedMeta && deletedMeta.destroyed) {
    page.append(...info, notice('warn', `Version ${shownVersion} was destroyed: its data is gone for good.`));
    return;
  }
  if (deletedMeta && deletedMeta.deletion_time) {
    page.append(...info, notice('warn', ['Version ', shownVersion, ' was deleted at ', when(deletedMeta.deletion_time), '. Undelete it to read it again.']),
      h('div', { class: 'actions' }, versionAction(where, 'undelete', shownVersion, status)));
    return;
  }
  const actions = h('div', { class: 'actions' },
    h('a', { class: 'button primary', href: href(`/kv-edit/${full}`, { version: shownVersion && shownVersion !== current ? shownVersion : undefined }) }, shownVersion && shownVersion !== current ? 'Edit from this version' : 'Edit'),
    h('button', { type: 'button', onclick: () => shareDialog(where, shownVersion) }, 'Share once'),
    h('a', { class: 'button', href: href('/audit', { path: v2(where) ? `${mount}data/${rest}` : full }) }, 'Who read it'),
  );
  if (v2(where)) {
    actions.append(versionAction(where, 'delete', shownVersion, status));
  } else {
    actions.append(h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        if (!await confirmDialog(`Delete ${full}?`, 'KV version 1 keeps no history: the secret is gone for good.', 'Delete')) return;
        try {
          await api('DELETE', full);
          go(href(`/kv/${mount}${rest.replace(/[^/]*$/, '')}`));
        } catch (e) {
          setNotice(status, 'error', errorText(e));
        }
      },
    }, 'Delete'));
  }
  page.append(...info, fieldList(names, fetchField, status), actions);
}

const VERB = {
  delete: ['Delete', 'delete', 'It can be undeleted later.', 'deleted'],
  undelete: ['Undelete', 'undelete', 'It becomes readable again.', 'undeleted'],
  destroy: ['Destroy', 'destroy', 'Its data is erased for good; this cannot be undone.', 'destroyed'],
};

function versionAction(where, verb, version, status) {
  const [label, path, note, done] = VERB[verb];
  return h('button', {
    type: 'button', class: verb === 'undelete' ? '' : 'danger',
    onclick: async () => {
      if (verb !== 'undelete' && !await confirmDialog(`${label} version ${version} of ${where.mount}${where.rest}?`, note, label)) return;
      try {
        await api('POST', `${where.mount}${path}/${where.rest}`, { body: { versions: [Number(version)] } });
        flash('ok', `Version ${version} ${done}.`);
        refresh();
      } catch (e) {
        setNotice(status, 'error', errorText(e));
      }
    },
  }, `${label} version ${version}`);
}

function versionsTab(page, where, meta, status) {
  const full = `${where.mount}${where.rest}`;
  const versions = Object.entries(meta.versions || {}).sort(([a], [b]) => Number(b) - Number(a));
  const current = String(meta.current_version);
  const stateOf = (v) => {
    if (v.destroyed) return 'destroyed';
    if (v.deletion_time) return 'deleted';
    return 'active';
  };
  const rollback = (n) => h('button', {
    type: 'button',
    onclick: async () => {
      if (!await confirmDialog(`Roll ${full} back to version ${n}?`, `Version ${n}'s data is written as a new version; later versions stay in the history.`, 'Roll back', false)) return;
      try {
        const old = await readSecret(where, n);
        if (!old.data) throw new Error(`version ${n} is deleted or destroyed`);
        const r = await api('POST', `${where.mount}data/${where.rest}`, { body: { data: old.data, options: { cas: Number(current) } } });
        flash('ok', `Rolled back: version ${r.data.version} holds version ${n}'s data.`);
        go(href(`/kv/${full}`));
      } catch (e) {
        setNotice(status, 'error', e.status === 400 && /check-and-set/i.test(e.message) ? 'Someone saved a new version meanwhile; reload and try again.' : errorText(e));
      }
    },
  }, 'Roll back to this');
  const table = h('table', {},
    h('caption', { class: 'visually-hidden' }, `Versions of ${full}`),
    h('thead', {}, h('tr', {}, ['Version', 'Created', 'State', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, versions.map(([n, v]) => {
      const st = stateOf(v);
      const acts = h('div', { class: 'actions' });
      if (st === 'active') acts.append(h('a', { class: 'button', href: href(`/kv/${full}`, { version: n }) }, 'View'));
      if (st === 'active' && n !== current) acts.append(rollback(n));
      if (st === 'active') acts.append(versionAction(where, 'delete', n, status));
      if (st === 'deleted') acts.append(versionAction(where, 'undelete', n, status));
      if (st !== 'destroyed') acts.append(versionAction(where, 'destroy', n, status));
      return h('tr', { 'data-version': n, 'data-state': st },
        h('th', { scope: 'row' }, n === current ? `${n} (current)` : n),
        h('td', {}, when(v.created_time)),
        h('td', {}, st === 'deleted' ? ['deleted ', when(v.deletion_time)] : st),
        h('td', {}, acts));
    })));
  const live = versions.filter(([, v]) => stateOf(v) === 'active').map(([n]) => n);
  const pick = (name, sel) => h('select', { name }, live.map((n) => h('option', { value: n, selected: n === sel }, `version ${n}`)));
  const a = pick('a', live[1] || live[0]);
  const b = pick('b', live[0]);
  const compare = h('form', { class: 'actions', 'aria-label': 'Compare two versions' },
    field('From', a), field('To', b), h('button', { type: 'submit' }, 'Compare'));
  compare.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(href(`/kv/${full}`, { tab: 'diff', a: a.value, b: b.value }));
  });
  page.append(h('div', { class: 'table-scroll' }, table));
  if (live.length >= 2) page.append(h('h2', {}, 'Compare versions'), compare);
}

async function diffTab(page, where, query, status) {
  const a = query.get('a');
  const b = query.get('b');
  const full = `${where.mount}${where.rest}`;
  page.append(h('h2', {}, `Changes from version ${a} to version ${b}`));
  const [va, vb] = await Promise.all([readSecret(where, a), readSecret(where, b)]);
  if (!va.data || !vb.data) {
    page.append(notice('error', 'One of the two versions is deleted or destroyed.'));
    return;
  }
  const keys = [...new Set([...Object.keys(va.data), ...Object.keys(vb.data)])].sort();
  let reveal = false;
  const body = h('tbody', {});
  const draw = () => {
    body.replaceChildren(...keys.map((k) => {
      const inA = k in va.data;
      const inB = k in vb.data;
      const same = inA && inB && show(va.data[k]) === show(vb.data[k]);
      const change = !inA ? 'added' : !inB ? 'removed' : same ? 'unchanged' : 'changed';
      const cell = (present, v) => h('td', { class: 'mono' }, present ? (reveal ? show(v) : '••••••••') : '—');
      return h('tr', { class: `diff-${change}` }, h('th', { scope: 'row' }, k), h('td', {}, change), cell(inA, va.data[k]), cell(inB, vb.data[k]));
    }));
  };
  draw();
  const toggle = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Show values');
  toggle.addEventListener('click', () => {
    reveal = !reveal;
    toggle.textContent = reveal ? 'Hide values' : 'Show values';
    toggle.setAttribute('aria-pressed', String(reveal));
    draw();
  });
  const changed = keys.filter((k) => !(k in va.data && k in vb.data && show(va.data[k]) === show(vb.data[k]))).length;
  page.append(
    h('p', {}, `${changed} of ${keys.length} field(s) differ.`),
    h('div', { class: 'actions' }, toggle, h('a', { class: 'button', href: href(`/kv/${full}`, { tab: 'versions' }) }, 'Back to versions')),
    h('div', { class: 'table-scroll' }, h('table', {},
      h('caption', { class: 'visually-hidden' }, `Fields of version ${a} and version ${b}`),
      h('thead', {}, h('tr', {}, ['Field', 'Change', `Version ${a}`, `Version ${b}`].map((t) => h('th', { scope: 'col' }, t)))),
      body)),
    status,
  );
}

function metadataTab(page, where, meta, status) {
  const full = `${where.mount}${where.rest}`;
  const rows = h('div', {});
  const addRow = (k = '', v = '') => {
    const key = h('input', { type: 'text', value: k, 'aria-label': 'Metadata key', autocomplete: 'off' });
    const val = h('input', { type: 'text', value: v, 'aria-label': 'Metadata value', autocomplete: 'off' });
    const row = h('div', { class: 'kv-row' }, key, val, h('button', { type: 'button', 'aria-label': 'Remove this metadata entry', onclick: () => row.remove() }, 'Remove'));
    rows.append(row);
  };
  for (const [k, v] of Object.entries(meta.custom_metadata || {})) addRow(k, v);
  const maxVersions = h('input', { type: 'number', min: '0', value: String(meta.max_versions || 0) });
  const cas = h('input', { type: 'checkbox', checked: !!meta.cas_required });
  const after = h('input', { type: 'text', value: meta.delete_version_after || '0s' });
  const form = h('form', { class: 'stack' },
    h('h2', {}, 'Custom metadata'),
    h('p', { class: 'hint' }, 'Not secret: anyone who may read the metadata sees it. password_policy names the policy a leak response uses to generate a replacement.'),
    rows,
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => addRow() }, 'Add entry')),
    h('h2', {}, 'Settings'),
    field('Versions kept', maxVersions, '0 keeps the mount\'s setting.'),
    h('label', { class: 'inline' }, cas, 'Require check-and-set on every write'),
    field('Delete versions after', after, 'A duration such as 720h; 0s never deletes.'),
    h('div', { class: 'actions' }, h('button', { class: 'primary', type: 'submit' }, 'Save metadata')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const custom = {};
    for (const row of rows.querySelectorAll('.kv-row')) {
      const [k, v] = row.querySelectorAll('input');
      if (k.value.trim()) custom[k.value.trim()] = v.value;
    }
    try {
      await api('POST', `${where.mount}metadata/${where.rest}`, {
        body: { custom_metadata: custom, max_versions: Number(maxVersions.value) || 0, cas_required: cas.checked, delete_version_after: after.value.trim() || '0s' },
      });
      setNotice(status, 'ok', 'Metadata saved.');
    } catch (e) {
      setNotice(status, 'error', errorText(e));
    }
  });
  const destroyAll = h('button', {
    type: 'button', class: 'danger',
    onclick: async () => {
      if (!await confirmDialog(`Delete ${full} for good?`, 'Every version and the metadata are erased; this cannot be undone.', 'Delete everything')) return;
      try {
        await api('DELETE', `${where.mount}metadata/${where.rest}`);
        go(href(`/kv/${where.mount}${where.rest.replace(/[^/]*$/, '')}`));
      } catch (e) {
        setNotice(status, 'error', errorText(e));
      }
    },
  }, 'Delete the secret and all its versions');
  page.append(form, h('h2', {}, 'Danger zone'), h('div', { class: 'actions' }, destroyAll));
}

/** Shares a version once: the read is wrapped, so the value never reaches this page. */
function shareDialog(where, version) {
  const ttl = h('select', { name: 'ttl' }, SHARE_TTLS.map(([v, label]) => h('option', { value: v, selected: v === '24h' }, label)));
  const out = h('div', {});
  const status = notice('', '');
  const dlg = h('dialog', { 'aria-labelledby': 'share-title' });
  const make = h('button', { class: 'primary', type: 'submit' }, 'Create link');
  const form = h('form', { class: 'stack' },
    h('h2', { id: 'share-title' }, `Share ${where.mount}${where.rest} once`),
    h('p', {}, 'The link opens once, for anyone who has it, until it expires. A second open is refused and tells the opener when the first was.'),
    field('Link expires after', ttl),
    status, out,
    h('div', { class: 'actions' }, make, h('button', { type: 'button', onclick: () => { dlg.close(); dlg.remove(); } }, 'Close')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    make.disabled = true;
    try {
      const path = v2(where) ? `${where.mount}data/${where.rest}` : `${where.mount}${where.rest}`;
      const r = await api('GET', path, { query: { version: v2(where) ? version : undefined }, wrapTTL: ttl.value });
      out.replaceChildren(shareResult(r.wrap_info, status));
    } catch (e) {
      setNotice(status, 'error', errorText(e));
      make.disabled = false;
    }
  });
  dlg.append(form);
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

/** The link for a wrapping token: the token after '#', so no request carries it. */
export function shareResult(info, status) {
  const link = `${location.origin}/ui/open#${info.token}`;
  const expires = new Date(new Date(info.creation_time).getTime() + info.ttl * 1000).toISOString();
  return h('div', { class: 'stack' },
    h('p', {}, 'Send this link to the recipient (through another channel than the one you use to tell them what it is):'),
    h('div', { class: 'share-link', 'data-share-link': '' }, link),
    h('p', {}, 'Expires ', when(expires), '.'),
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => copyWithClear(link, status) }, 'Copy link')));
}
