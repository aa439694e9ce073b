// The recipient's page for a share-once link (/ui/open#<wrapping token>).
// It looks the link up without using it, then unwraps it on request. The
// token leaves the address bar once used, and was never sent in a URL.

import { h, notice, setNotice, when } from '../dom.js';
import { api } from '../api.js';
import { maskedValue, errorText } from '../components.js';

function forgetLink() {
  history.replaceState(null, '', location.pathname);
}

/** A KV v2 read that was wrapped answers {data, metadata}: show its data. */
function fieldsOf(data) {
  if (data && data.data && typeof data.data === 'object' && data.metadata) return data.data;
  return data || {};
}

function spent(message) {
  const m = /already (unwrapped|rewrapped) at (\S+)/.exec(message);
  return m ? m[2] : null;
}

export async function openShareView(main) {
  let token = location.hash.replace(/^#/, '').trim();
  try {
    token = decodeURIComponent(token);
  } catch {
    // Left as written: the lookup will refuse it with a reason.
  }
  const status = notice('', '');
  main.append(h('div', { class: 'center' }, h('h1', {}, 'A secret was shared with you'), status));
  const box = main.querySelector('.center');
  document.title = 'Shared secret · coffer';
  if (!token) {
    setNotice(status, 'error', 'This link is incomplete: the part after “#” is missing. Ask the sender for the whole link.');
    return;
  }
  const refuse = (e) => {
    forgetLink();
    const at = spent(e.message || '');
    if (at) {
      setNotice(status, 'error', '');
      status.append('This link was already opened, at ', when(at), '. It works only once. If it was not you who opened it, tell the sender now: someone else may have seen the secret, which should be changed.');
    } else {
      setNotice(status, 'error', `This link cannot be opened: it has expired, was already used, or is not a coffer share link (${errorText(e)}).`);
    }
  };
  let info;
  try {
    info = (await api('POST', 'sys/wrapping/lookup', { body: { token }, anonymous: true })).data;
  } catch (e) {
    refuse(e);
    return;
  }
  const expires = new Date(new Date(info.creation_time).getTime() + info.creation_ttl * 1000).toISOString();
  const open = h('button', { class: 'primary', type: 'button' }, 'Open the secret');
  box.append(
    h('p', {}, 'Shared at ', when(info.creation_time), '; the link expires ', when(expires), '.'),
    h('p', {}, 'It opens once: after you open it, nobody (you included) can open it again. Copy what you need before leaving this page.'),
    h('div', { class: 'actions' }, open));
  open.addEventListener('click', async () => {
    open.disabled = true;
    let data;
    try {
      data = fieldsOf((await api('POST', 'sys/wrapping/unwrap', { token })).data);
    } catch (e) {
      open.remove();
      refuse(e);
      return;
    }
    forgetLink();
    open.remove();
    setNotice(status, 'ok', 'Opened. This link no longer works.');
    const names = Object.keys(data).sort();
    box.append(h('dl', { class: 'fields' }, names.map((k) => [h('dt', {}, k), h('dd', {}, maskedValue(k, async () => data[k], status))])));
  });
}
