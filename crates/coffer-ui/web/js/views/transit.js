// Transit: keys, their versions, rotation, and encrypting or decrypting a
// value in the page (the key never leaves coffer).

import { h, field, notice, setNotice, when } from '../dom.js';
import { api, list } from '../api.js';
import { mountsOf } from '../mounts.js';
import { href, go, refresh, flash } from '../router.js';
import { errorText, copyWithClear } from '../components.js';

const TYPES = ['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305', 'ed25519', 'ecdsa-p256', 'ecdsa-p384', 'ecdsa-p521', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'hmac'];

function toBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function fromBase64(b64) {
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}

export async function transitMounts(page) {
  const mounts = await mountsOf('transit');
  if (mounts.length === 1) {
    go(href(`/transit/${mounts[0]}`));
    return;
  }
  page.append(h('h1', {}, 'Transit'),
    mounts.length === 0
      ? h('p', {}, 'No transit engine is mounted where your policies reach.')
      : h('ul', { class: 'entries' }, mounts.map((m) => h('li', {}, h('a', { href: href(`/transit/${m}`) }, m)))));
}

export async function transitKeys(page, m) {
  const mount = m[1].endsWith('/') ? m[1] : `${m[1]}/`;
  const status = notice('', '');
  page.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/transit' }, 'Transit'), ' / ', mount), h('h1', {}, `Keys in ${mount}`), status);
  let keys = [];
  try {
    keys = await list(`${mount}keys`);
  } catch (e) {
    if (e.status !== 403) throw e;
    page.append(notice('error', `You may not list the keys of ${mount}; open one by name below.`));
  }
  page.append(keys.length
    ? h('ul', { class: 'entries', 'aria-label': 'Keys' }, keys.map((k) => h('li', {}, h('a', { href: href(`/transit/${mount}${k}`) }, k))))
    : h('p', { class: 'muted' }, 'No keys listed.'));
  const name = h('input', { type: 'text', name: 'key-name', required: true, autocomplete: 'off' });
  const type = h('select', { name: 'key-type' }, TYPES.map((t) => h('option', { value: t }, t)));
  const create = h('form', { class: 'stack' },
    h('h2', {}, 'New key or open a key'),
    field('Name', name), field('Type', type, 'Used only when the key is created.'),
    h('div', { class: 'actions' },
      h('button', { class: 'primary', type: 'submit' }, 'Create key'),
      h('button', { type: 'button', onclick: () => name.value.trim() && go(href(`/transit/${mount}${name.value.trim()}`)) }, 'Open key')));
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('POST', `${mount}keys/${name.value.trim()}`, { body: { type: type.value } });
      go(href(`/transit/${mount}${name.value.trim()}`));
    } catch (e) {
      setNotice(status, 'error', errorText(e));
    }
  });
  page.append(create);
}

export async function transitKey(page, m) {
  const mount = m[1];
  const name = m[2];
  const status = notice('', '');
  page.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/transit' }, 'Transit'), ' / ', h('a', { href: href(`/transit/${mount}`) }, mount), ' ', name),
    h('h1', {}, `Key ${name}`), status);
  let k;
  try {
    k = (await api('GET', `${mount}keys/${name}`)).data;
  } catch (e) {
    if (e.status === 404) {
      page.append(notice('error', `${mount} has no key named ${name}.`));
      return;
    }
    if (e.status !== 403) throw e;
    page.append(notice('warn', 'You may not read this key\'s details; encrypting and decrypting may still be allowed.'));
  }
  if (k) {
    const versions = Object.entries(k.keys || {}).sort(([a], [b]) => Number(b) - Number(a));
    const created = (v) => (typeof v === 'number' ? new Date(v * 1000).toISOString() : (v && v.creation_time) || '');
    page.append(
      h('dl', { class: 'fields' },
        h('dt', {}, 'Type'), h('dd', {}, k.type),
        h('dt', {}, 'Latest version'), h('dd', {}, String(k.latest_version)),
        h('dt', {}, 'Decrypts from version'), h('dd', {}, String(k.min_decryption_version)),
        h('dt', {}, 'Exportable'), h('dd', {}, k.exportable ? 'yes' : 'no'),
        h('dt', {}, 'Deletion allowed'), h('dd', {}, k.deletion_allowed ? 'yes' : 'no')),
      h('h2', {}, 'Versions'),
      h('div', { class: 'table-scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Version'), h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col' }, 'Decrypts'))),
        h('tbody', {}, versions.map(([n, v]) => h('tr', {}, h('th', { scope: 'row' }, n), h('td', {}, when(created(v))), h('td', {}, Number(n) >= k.min_decryption_version ? 'yes' : 'no (below the minimum)')))))),
      h('div', { class: 'actions' }, h('button', {
        type: 'button',
        onclick: async () => {
          try {
            await api('POST', `${mount}keys/${name}/rotate`);
            flash('ok', 'Rotated: new encryptions use the new version; old ciphertexts still decrypt.');
            refresh();
          } catch (e) {
            setNotice(status, 'error', errorText(e));
          }
        },
      }, 'Rotate key')));
  }
  const plain = h('textarea', { name: 'plaintext', class: 'mono', spellcheck: 'false' });
  const cipher = h('textarea', { name: 'ciphertext', class: 'mono', spellcheck: 'false' });
  const result = h('output', { class: 'share-link', 'aria-live': 'polite' });
  const op = async (kind) => {
    try {
      if (kind === 'encrypt') {
        const r = await api('POST', `${mount}encrypt/${name}`, { body: { plaintext: toBase64(plain.value) } });
        cipher.value = r.data.ciphertext;
        result.textContent = 'Encrypted: the ciphertext is in the box below.';
      } else {
        const r = await api('POST', `${mount}decrypt/${name}`, { body: { ciphertext: cipher.value.trim() } });
        plain.value = fromBase64(r.data.plaintext);
        result.textContent = 'Decrypted: the plaintext is in the box above.';
      }
    } catch (e) {
      setNotice(status, 'error', errorText(e));
    }
  };
  page.append(h('h2', {}, 'Encrypt and decrypt'),
    h('div', { class: 'stack' },
      field('Plaintext', plain),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'primary', onclick: () => op('encrypt') }, 'Encrypt ↓'),
        h('button', { type: 'button', onclick: () => op('decrypt') }, 'Decrypt ↑'),
        h('button', { type: 'button', onclick: () => cipher.value && copyWithClear(cipher.value, status) }, 'Copy ciphertext')),
      field('Ciphertext', cipher, 'vault:v<version>:… as transit answers it.'),
      result));
}
