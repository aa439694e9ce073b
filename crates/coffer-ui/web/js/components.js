// Pieces several pages share: a secret value that stays masked until it is
// revealed (each reveal reads it from coffer again, so it is audited), copying
// that clears the clipboard, tabs and an error line.

import { h, setNotice } from './dom.js';

export const CLIPBOARD_CLEAR_MS = 30 * 1000;

const MASK = '••••••••';

export function show(v) {
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

/**
 * Copies text and clears the clipboard after 30 s (unless it holds
 * something else by then).
 */
export async function copyWithClear(text, status) {
  await navigator.clipboard.writeText(text);
  if (status) setNotice(status, 'ok', `Copied. The clipboard will be cleared in ${CLIPBOARD_CLEAR_MS / 1000} seconds.`);
  setTimeout(async () => {
    let still = true;
    try {
      still = (await navigator.clipboard.readText()) === text;
    } catch {
      // Reading may be refused; clearing is still the safe choice.
    }
    if (still) {
      try {
        await navigator.clipboard.writeText('');
        if (status && status.isConnected) setNotice(status, '', 'The clipboard was cleared.');
      } catch {
        // A tab without focus may not write; nothing else to do.
      }
    }
  }, CLIPBOARD_CLEAR_MS);
}

/**
 * A masked value with Reveal and Copy buttons. `fetch()` resolves to the
 * value (an API read, or a value the page holds, as on the share page).
 */
export function maskedValue(label, fetch, status) {
  const out = h('output', { class: 'mono', 'aria-label': `value of ${label}` }, MASK);
  let shown = false;
  const reveal = h('button', { type: 'button', 'aria-label': `Reveal ${label}` }, 'Reveal');
  reveal.addEventListener('click', async () => {
    if (shown) {
      out.textContent = MASK;
      reveal.textContent = 'Reveal';
      reveal.setAttribute('aria-label', `Reveal ${label}`);
      shown = false;
      return;
    }
    try {
      out.textContent = show(await fetch());
      reveal.textContent = 'Hide';
      reveal.setAttribute('aria-label', `Hide ${label}`);
      shown = true;
    } catch (e) {
      setNotice(status, 'error', e.human || e.message);
    }
  });
  const copy = h('button', { type: 'button', 'aria-label': `Copy ${label}` }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await copyWithClear(show(await fetch()), status);
    } catch (e) {
      setNotice(status, 'error', e.human || `Copying failed: ${e.message}`);
    }
  });
  return h('div', { class: 'value' }, out, reveal, copy);
}

/** Tabs as links (each tab is its own address): [[label, href, selected]]. */
export function tabs(label, items) {
  return h('nav', { class: 'tabs', 'aria-label': label },
    items.map(([text, href, selected]) => h('a', { class: 'button', href, 'aria-current': selected ? 'page' : null }, text)));
}

export function errorText(e) {
  return (e && (e.human || e.message)) || String(e);
}
