// Sharing a value once with someone who has no account: the value is
// wrapped (sys/wrapping/wrap) and the link carries the wrapping token after
// '#', which browsers never send to a server.

import { h, field, notice, setNotice } from '../dom.js';
import { api } from '../api.js';
import { errorText } from '../components.js';
import { SHARE_TTLS, shareResult } from './secret.js';

export function shareView(page) {
  const value = h('textarea', { name: 'value', required: true, class: 'mono masked-input', autocomplete: 'off', spellcheck: 'false' });
  const showIt = h('input', { type: 'checkbox', name: 'show' });
  showIt.addEventListener('change', () => value.classList.toggle('masked-input', !showIt.checked));
  const ttl = h('select', { name: 'ttl' }, SHARE_TTLS.map(([v, label]) => h('option', { value: v, selected: v === '24h' }, label)));
  const status = notice('', '');
  const out = h('div', {});
  const make = h('button', { class: 'primary', type: 'submit' }, 'Create link');
  const form = h('form', { class: 'stack' },
    field('Secret to share', value, 'A password, a key, a note: anything up to the request size limit.'),
    h('label', { class: 'inline' }, showIt, 'Show what I type'),
    field('Link expires after', ttl),
    h('div', { class: 'actions' }, make),
    status, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    make.disabled = true;
    try {
      const r = await api('POST', 'sys/wrapping/wrap', { body: { value: value.value }, wrapTTL: ttl.value });
      value.value = '';
      out.replaceChildren(shareResult(r.wrap_info, status));
      setNotice(status, 'ok', 'Link created. The value is stored encrypted in coffer until the link is opened or expires.');
    } catch (e) {
      setNotice(status, 'error', errorText(e));
    } finally {
      make.disabled = false;
    }
  });
  page.append(
    h('h1', {}, 'Share once'),
    h('p', {}, 'Make a link that shows a secret to one person, one time. The recipient needs no account. If the link was already opened when they try, they are told when: treat that as a leak. To share a stored secret, open it and use “Share once” there.'),
    form);
}
