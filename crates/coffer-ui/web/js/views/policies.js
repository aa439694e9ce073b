// ACL policies: list, read, edit with coffer's own parser as the checker
// (its errors name a line, which the editor marks), and a tester for what a
// token may do on a path (sys/capabilities*).

import { h, field, notice, setNotice, confirmDialog } from '../dom.js';
import { api, list } from '../api.js';
import { href, go, flash } from '../router.js';
import { errorText } from '../components.js';

export async function policiesView(page) {
  const names = await list('sys/policies/acl');
  const name = h('input', { type: 'text', name: 'policy-name', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9_.@-]+' });
  const create = h('form', { class: 'actions' }, field('New policy named', name), h('button', { type: 'submit', class: 'primary' }, 'Create'));
  create.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go(href(`/policies/${name.value.trim()}`, { new: '1' }));
  });
  page.append(h('h1', {}, 'Policies'),
    h('ul', { class: 'entries', 'aria-label': 'ACL policies' }, names.map((n) => h('li', {}, h('a', { href: href(`/policies/${n}`) }, n)))),
    create);
}

/** The 1-based line an error message names ("line 4: ...", "at line 4"). */
export function errorLine(message) {
  const m = /\bline (\d+)/i.exec(message);
  return m ? Number(m[1]) : null;
}

function lineEditor(text, label) {
  const area = h('textarea', { class: 'code', spellcheck: 'false', 'aria-label': label, wrap: 'off' });
  area.value = text;
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  let bad = null;
  const draw = () => {
    const n = area.value.split('\n').length;
    gutter.replaceChildren(...Array.from({ length: n }, (_, i) => h('span', { class: i + 1 === bad ? 'bad' : '' }, `${i + 1}\n`)));
    gutter.scrollTop = area.scrollTop;
  };
  area.addEventListener('input', () => { bad = null; draw(); });
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  draw();
  return {
    el: h('div', { class: 'editor' }, gutter, area),
    area,
    mark(line) {
      bad = line;
      draw();
      if (!line) return;
      const lines = area.value.split('\n');
      const start = lines.slice(0, line - 1).reduce((a, l) => a + l.length + 1, 0);
      area.focus();
      area.setSelectionRange(start, start + (lines[line - 1] || '').length);
      area.setAttribute('aria-invalid', 'true');
    },
  };
}

export async function policyView(page, m, query) {
  const name = m[1];
  const creating = query.get('new') === '1';
  const status = notice('', '');
  let text = '';
  if (!creating) {
    try {
      text = (await api('GET', `sys/policies/acl/${name}`)).data.policy;
    } catch (e) {
      if (e.status === 404) {
        page.append(h('h1', {}, `Policy ${name}`), notice('error', `There is no policy named ${name}.`));
        return;
      }
      throw e;
    }
  } else {
    text = 'path "secret/data/example/*" {\n  capabilities = ["read", "list"]\n}\n';
  }
  const ed = lineEditor(text, `Policy ${name} (HCL)`);
  const readOnly = name === 'root';
  const save = h('button', { type: 'submit', class: 'primary', disabled: readOnly }, 'Save policy');
  const form = h('form', { class: 'stack' }, ed.el, status, h('div', { class: 'actions' }, save,
    !creating && !['root', 'default'].includes(name) ? h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        if (!await confirmDialog(`Delete policy ${name}?`, 'Tokens that carry it lose what it granted, at once.', 'Delete')) return;
        try {
          await api('DELETE', `sys/policies/acl/${name}`);
          go('#/policies');
        } catch (e) {
          setNotice(status, 'error', errorText(e));
        }
      },
    }, 'Delete policy') : null,
    h('a', { class: 'button', href: href('/capabilities') }, 'Test capabilities')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('PUT', `sys/policies/acl/${name}`, { body: { policy: ed.area.value } });
      ed.mark(null);
      ed.area.removeAttribute('aria-invalid');
      setNotice(status, 'ok', `Saved policy ${name}.`);
      if (creating) {
        flash('ok', `Saved policy ${name}.`);
        go(href(`/policies/${name}`));
      }
    } catch (e) {
      const line = errorLine(e.message);
      setNotice(status, 'error', `Not saved: ${errorText(e)}`);
      ed.mark(line);
    }
  });
  page.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/policies' }, 'Policies'), ` / ${name}`),
    h('h1', {}, creating ? `New policy ${name}` : `Policy ${name}`),
    ...(readOnly ? [notice('', 'The root policy grants everything and cannot be changed.')] : []),
    form);
}

export function capabilitiesView(page, m, query) {
  const paths = h('textarea', { name: 'paths', class: 'mono', spellcheck: 'false', required: true });
  paths.value = query.get('path') || '';
  const who = h('select', { name: 'who' },
    h('option', { value: 'self' }, 'My session\'s token'),
    h('option', { value: 'token' }, 'Another token'),
    h('option', { value: 'accessor' }, 'A token accessor'));
  const other = h('input', { type: 'password', name: 'other', autocomplete: 'off' });
  const otherField = field('Token or accessor', other);
  otherField.hidden = true;
  who.addEventListener('change', () => { otherField.hidden = who.value === 'self'; });
  const status = notice('', '');
  const out = h('div', {});
  const form = h('form', { class: 'stack' },
    field('Paths, one per line', paths, 'Full API paths without /v1/, such as secret/data/app.'),
    field('Whose capabilities', who), otherField,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Check')), status, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const list = paths.value.split('\n').map((p) => p.trim().replace(/^\/?(v1\/)?/, '')).filter(Boolean);
    const [path, body] = who.value === 'self'
      ? ['sys/capabilities-self', { paths: list }]
      : who.value === 'token' ? ['sys/capabilities', { token: other.value.trim(), paths: list }] : ['sys/capabilities-accessor', { accessor: other.value.trim(), paths: list }];
    try {
      const d = (await api('POST', path, { body })).data;
      setNotice(status, '', '');
      out.replaceChildren(h('div', { class: 'table-scroll' }, h('table', {},
        h('caption', { class: 'visually-hidden' }, 'Capabilities by path'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Path'), h('th', { scope: 'col' }, 'Capabilities'))),
        h('tbody', {}, list.map((p) => {
          const caps = d[p] || [];
          return h('tr', { 'data-path': p }, h('th', { scope: 'row', class: 'mono' }, p), h('td', {}, caps.join(', ') || 'deny'));
        })))));
    } catch (e) {
      setNotice(status, 'error', errorText(e));
    }
  });
  page.append(h('h1', {}, 'Capabilities'), h('p', {}, 'What a token may do on a path, as coffer\'s ACL decides it.'), form);
}
