// Creating and editing a KV secret, as key/value rows or as JSON. A KV v2
// save is a check-and-set on the version the editor started from, so a
// concurrent change is reported, never overwritten.

import { h, field, notice, setNotice } from '../dom.js';
import { api } from '../api.js';
import { splitMount } from '../mounts.js';
import { href, go } from '../router.js';
import { errorText } from '../components.js';
import { crumbs } from './secrets.js';
import { readSecret } from './secret.js';

/** Where a JSON.parse error is, as "line L, column C" when the engine says. */
function jsonErrorLine(text, err) {
  const m = /position (\d+)/.exec(err.message);
  if (!m) return null;
  const before = text.slice(0, Number(m[1]));
  return before.split('\n').length;
}

export async function editorRoute(page, m, query, creating) {
  const where = await splitMount(m[1]);
  if (!where || !(where.type === 'kv' || where.type === 'generic')) {
    page.append(h('h1', {}, m[1]), notice('error', `No KV engine you can see is mounted at ${m[1]}.`));
    return;
  }
  const isV2 = where.version === '2';
  const status = notice('', '');
  let data = {};
  let cas = 0;
  if (!creating) {
    try {
      const r = await readSecret(where, query.get('version') || '');
      if (!r.data) throw new Error('this version is deleted or destroyed; undelete it first');
      data = r.data;
      if (isV2) {
        const meta = await api('GET', `${where.mount}metadata/${where.rest}`).catch(() => null);
        cas = meta ? meta.data.current_version : r.meta.version;
      }
    } catch (e) {
      page.append(h('h1', {}, `${where.mount}${where.rest}`), notice('error', errorText(e)));
      return;
    }
  }
  const folder = creating ? where.rest : where.rest.replace(/[^/]*$/, '');
  const name = h('input', { type: 'text', name: 'path', required: true, autocomplete: 'off', value: query.get('name') || '' });
  let mode = 'rows';
  const rows = h('div', { 'aria-label': 'Fields' });
  const json = h('textarea', { class: 'code', name: 'json', spellcheck: 'false', 'aria-label': 'Secret as JSON' });
  const reveal = h('input', { type: 'checkbox', name: 'show-values' });
  const body = h('div', {});
  const addRow = (k = '', v = '') => {
    const key = h('input', { type: 'text', value: k, 'aria-label': 'Field name', autocomplete: 'off', spellcheck: 'false' });
    const val = h('textarea', { 'aria-label': 'Field value', autocomplete: 'off', spellcheck: 'false', class: reveal.checked ? 'mono' : 'mono masked-input' });
    val.value = typeof v === 'string' ? v : JSON.stringify(v);
    val.dataset.json = typeof v === 'string' ? '' : '1';
    const row = h('div', { class: 'kv-row' }, key, val, h('button', { type: 'button', 'aria-label': 'Remove this field', onclick: () => row.remove() }, 'Remove'));
    rows.append(row);
    return key;
  };
  const fromRows = () => {
    const out = {};
    for (const row of rows.querySelectorAll('.kv-row')) {
      const key = row.querySelector('input').value.trim();
      const val = row.querySelector('textarea');
      if (!key) continue;
      if (key in out) throw new Error(`the field “${key}” appears twice`);
      out[key] = val.dataset.json ? JSON.parse(val.value) : val.value;
    }
    return out;
  };
  const fromJson = () => {
    let v;
    try {
      v = JSON.parse(json.value);
    } catch (e) {
      const line = jsonErrorLine(json.value, e);
      throw new Error(`the JSON does not parse${line ? ` (line ${line})` : ''}: ${e.message}`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('the JSON must be an object of fields');
    return v;
  };
  const current = () => (mode === 'rows' ? fromRows() : fromJson());
  const draw = () => {
    if (mode === 'rows') {
      rows.replaceChildren();
      for (const [k, v] of Object.entries(data)) addRow(k, v);
      if (Object.keys(data).length === 0) addRow();
      body.replaceChildren(rows, h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => addRow().focus() }, 'Add field')));
    } else {
      json.value = JSON.stringify(data, null, 2);
      json.className = reveal.checked ? 'code' : 'code masked-input';
      body.replaceChildren(json);
    }
  };
  reveal.addEventListener('change', () => {
    for (const t of page.querySelectorAll('textarea')) t.classList.toggle('masked-input', !reveal.checked);
  });
  const switcher = h('button', { type: 'button' }, 'Edit as JSON');
  switcher.addEventListener('click', () => {
    try {
      data = current();
    } catch (e) {
      setNotice(status, 'error', `Cannot switch: ${e.message}`);
      return;
    }
    mode = mode === 'rows' ? 'json' : 'rows';
    switcher.textContent = mode === 'rows' ? 'Edit as JSON' : 'Edit as fields';
    setNotice(status, '', '');
    draw();
  });
  const save = h('button', { class: 'primary', type: 'submit' }, creating ? 'Create secret' : 'Save new version');
  const form = h('form', { class: 'stack' },
    creating ? field(`Path under ${where.mount}${folder}`, name, 'Slashes make folders: app/db.') : null,
    h('div', { class: 'actions' }, switcher, h('label', { class: 'inline' }, reveal, 'Show values')),
    body, status,
    h('div', { class: 'actions' }, save, h('a', { class: 'button', href: href(creating ? `/kv/${where.mount}${folder}` : `/kv/${where.mount}${where.rest}`) }, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let fields;
    try {
      fields = current();
    } catch (e) {
      setNotice(status, 'error', `Not saved: ${e.message}`);
      return;
    }
    const rel = creating ? `${folder}${name.value.trim().replace(/^\/+/, '')}` : where.rest;
    if (!rel || rel.endsWith('/')) {
      setNotice(status, 'error', 'Not saved: give the secret a name (not ending in /).');
      return;
    }
    save.disabled = true;
    try {
      if (isV2) {
        await api('POST', `${where.mount}data/${rel}`, { body: { data: fields, options: { cas } } });
      } else {
        await api('PUT', `${where.mount}${rel}`, { body: fields });
      }
      go(href(`/kv/${where.mount}${rel}`));
    } catch (e) {
      const conflict = e.status === 400 && /check-and-set/i.test(e.message);
      setNotice(status, 'error', conflict
        ? (creating ? `Not saved: ${where.mount}${rel} already exists. Open it to edit it.` : `Not saved: someone saved a newer version (after ${cas}) meanwhile. Your changes are still here; open the secret in another tab to compare, then save again from a fresh editor.`)
        : `Not saved: ${errorText(e)}`);
      save.disabled = false;
    }
  });
  page.append(crumbs(where.mount, creating ? folder : where.rest),
    h('h1', {}, creating ? `New secret in ${where.mount}${folder}` : `Edit ${where.mount}${where.rest}`),
    form);
  draw();
}
