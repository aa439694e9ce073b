// Logging in: with a token, a username and password (userpass), or a JWT
// from an identity provider for a JWT/OIDC role. The token coffer answers
// with stays in memory only.

import { h, field, notice, setNotice } from '../dom.js';
import { api } from '../api.js';
import { start } from '../session.js';
import { errorText } from '../components.js';

const METHODS = [
  ['token', 'Token'],
  ['userpass', 'Username'],
  ['jwt', 'JWT / OIDC'],
];

function authToSession(auth, extra = {}) {
  return {
    token: auth.client_token,
    accessor: auth.accessor,
    displayName: (auth.metadata && (auth.metadata.username || auth.metadata.role)) || auth.display_name || '',
    policies: auth.policies || [],
    ttl: auth.lease_duration || 0,
    revokeOnLogout: true,
    ...extra,
  };
}

export function loginView(main, reason, done) {
  let method = 'token';
  const status = notice(reason ? 'warn' : '', reason || '');
  const body = h('div', {});
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'How to log in' });

  function draw() {
    tabs.replaceChildren(...METHODS.map(([id, label]) => h('button', {
      type: 'button', role: 'tab', id: `tab-${id}`, 'aria-selected': id === method ? 'true' : 'false', 'aria-controls': 'login-panel',
      tabindex: id === method ? '0' : '-1',
      onclick: () => { method = id; draw(); body.querySelector('input, textarea')?.focus(); },
    }, label)));
    body.replaceChildren(form());
  }

  // Arrow keys move between the tabs, as a tab list should.
  tabs.addEventListener('keydown', (ev) => {
    const i = METHODS.findIndex(([id]) => id === method);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[ev.key];
    if (!step) return;
    ev.preventDefault();
    method = METHODS[(i + step + METHODS.length) % METHODS.length][0];
    draw();
    tabs.querySelector('[aria-selected="true"]').focus();
  });

  function form() {
    const f = h('form', { class: 'stack', id: 'login-panel', role: 'tabpanel', 'aria-labelledby': `tab-${method}` });
    const submit = h('button', { class: 'primary', type: 'submit' }, 'Log in');
    let read;
    if (method === 'token') {
      const token = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true });
      const revoke = h('input', { type: 'checkbox', name: 'revoke' });
      f.append(
        field('Token', token),
        h('label', { class: 'inline' }, revoke, 'Revoke this token when I log out'),
      );
      read = async () => {
        const r = await api('GET', 'auth/token/lookup-self', { token: token.value.trim() });
        const d = r.data;
        return {
          token: token.value.trim(), accessor: d.accessor, displayName: d.display_name, policies: d.policies || [],
          ttl: d.ttl || 0, revokeOnLogout: revoke.checked,
        };
      };
    } else if (method === 'userpass') {
      const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true });
      const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
      const mount = h('input', { type: 'text', name: 'mount', value: 'userpass', required: true });
      f.append(field('Username', user), field('Password', pass), field('Mount path', mount, 'Where the userpass method is enabled (auth/<path>).'));
      read = async () => {
        const r = await api('POST', `auth/${mount.value.replace(/\/+$/, '')}/login/${user.value.trim()}`, { body: { password: pass.value }, anonymous: true });
        return authToSession(r.auth, { displayName: user.value.trim() });
      };
    } else {
      const role = h('input', { type: 'text', name: 'role', autocomplete: 'off' });
      const jwt = h('textarea', { name: 'jwt', required: true, class: 'mono masked-input', autocomplete: 'off', spellcheck: 'false' });
      const mount = h('input', { type: 'text', name: 'mount', value: 'jwt', required: true });
      f.append(
        field('Role', role, 'Empty for the method\'s default role.'),
        field('JWT', jwt, 'An ID token from your identity provider (OIDC), or another signed JWT the role accepts.'),
        field('Mount path', mount, 'Where the JWT/OIDC method is enabled (auth/<path>).'),
      );
      read = async () => {
        const r = await api('POST', `auth/${mount.value.replace(/\/+$/, '')}/login`, { body: { role: role.value.trim() || undefined, jwt: jwt.value.trim() }, anonymous: true });
        // The token's display name carries the role's user claim (jwt-<claim>).
        const self = await api('GET', 'auth/token/lookup-self', { token: r.auth.client_token }).catch(() => null);
        return authToSession(r.auth, self ? { displayName: self.data.display_name } : {});
      };
    }
    f.append(h('div', { class: 'actions' }, submit));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      setNotice(status, '', 'Logging in…');
      try {
        start(await read());
        setNotice(status, '', '');
        done();
      } catch (e) {
        setNotice(status, 'error', e.status === 400 || e.status === 403 ? `Login failed: ${e.message}` : errorText(e));
        submit.disabled = false;
      }
    });
    return f;
  }

  main.append(h('div', { class: 'center' },
    h('h1', {}, 'Log in to coffer'),
    status,
    tabs,
    body,
    h('p', { class: 'hint' }, 'Your session lives in this tab only: reloading or closing it logs you out, and so do 15 minutes without activity.')));
  document.title = 'Log in · coffer';
  draw();
  main.querySelector('input')?.focus();
}
