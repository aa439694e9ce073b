// The application shell: the header, the navigation, and a router over the
// address's fragment (#/kv/secret/app). The fragment never reaches the server.

import { h, clear } from './dom.js';
import { session, logout } from './session.js';
import { forgetMounts } from './mounts.js';
import { loginView } from './views/login.js';
import { openShareView } from './views/open.js';
import { routes } from './routes.js';
import { currentRoute, onRender, takeFlash } from './router.js';

const app = document.getElementById('app');
let ended = null;

session.onEnd((reason) => {
  ended = reason;
  forgetMounts();
  render();
});

const NAV = [
  ['Secrets', '#/secrets', /^\/(secrets|kv)/],
  ['Share once', '#/share', /^\/share/],
  ['Transit', '#/transit', /^\/transit/],
  ['Rotation', '#/rotation', /^\/rotation/],
  ['Leases', '#/leases', /^\/leases/],
  ['Audit', '#/audit', /^\/audit/],
  ['Policies', '#/policies', /^\/policies/],
  ['Capabilities', '#/capabilities', /^\/capabilities/],
];

function header(path) {
  const info = session.info;
  return h('header', { class: 'top' },
    h('a', { class: 'brand', href: '#/secrets' }, 'coffer'),
    h('nav', { 'aria-label': 'Main' },
      h('ul', {}, NAV.map(([label, href, re]) => h('li', {}, h('a', { href, 'aria-current': re.test(path) ? 'page' : null }, label))))),
    h('div', { class: 'who' },
      h('span', {}, `Signed in as ${info.displayName || 'token'}`),
      h('button', { type: 'button', onclick: () => logout() }, 'Log out')));
}

let generation = 0;

async function render() {
  const gen = ++generation;
  // The share page is for people without an account: no session, no header.
  if (location.pathname.replace(/\/+$/, '').endsWith('/ui/open')) {
    clear(app).append(h('main', { id: 'main', tabindex: '-1' }));
    await openShareView(app.querySelector('main'));
    return;
  }
  if (!session.token) {
    const main = h('main', { id: 'main', tabindex: '-1' });
    clear(app).append(main);
    loginView(main, ended, () => {
      ended = null;
      render();
    });
    return;
  }
  const route = currentRoute();
  const main = h('main', { id: 'main', tabindex: '-1' }, h('p', {}, 'Loading…'));
  clear(app).append(header(route.path), main);
  for (const [re, view] of routes) {
    const m = route.path.match(re);
    if (m) {
      const page = h('div', {});
      try {
        await view(page, m, route.query);
      } catch (e) {
        page.append(h('div', { class: 'notice error', role: 'alert' }, e.human || e.message));
      }
      if (gen !== generation) return;
      const f = takeFlash();
      if (f) {
        const at = page.querySelector('h1');
        const n = h('div', { class: `notice ${f.kind}`, role: f.kind === 'error' ? 'alert' : 'status' }, f.text);
        if (at) at.after(n);
        else page.prepend(n);
      }
      clear(main).append(page);
      const title = main.querySelector('h1');
      document.title = title ? `${title.textContent} · coffer` : 'coffer';
      main.focus({ preventScroll: true });
      return;
    }
  }
  clear(main).append(h('h1', {}, 'Not found'), h('p', {}, 'There is no page at this address. '), h('a', { href: '#/secrets' }, 'Go to Secrets'));
}

onRender(render);
window.addEventListener('hashchange', render);
render();
