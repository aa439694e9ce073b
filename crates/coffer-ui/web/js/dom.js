// Builds elements without innerHTML: values from the server are only ever
// text nodes, so nothing they hold can run (and the CSP needs no inline code).

/** h('button', {class: 'primary', onclick: f}, 'Save') */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let ids = 0;
/** A unique id for tying a label to its control. */
export function uid(prefix = 'f') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control: field('Path', h('input', {...}), 'help text'). */
export function field(label, control, help) {
  const id = control.id || uid();
  control.id = id;
  const kids = [h('label', { for: id }, label), control];
  if (help) {
    const hid = `${id}-help`;
    control.setAttribute('aria-describedby', hid);
    kids.push(h('div', { class: 'field-help', id: hid }, help));
  }
  return h('div', {}, kids);
}

/** A status line read out by screen readers. */
export function notice(kind, text) {
  return h('div', { class: `notice ${kind || ''}`, role: kind === 'error' ? 'alert' : 'status' }, text || '');
}

export function setNotice(el, kind, text) {
  el.className = `notice ${kind || ''}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = text || '';
}

/** Formats an RFC 3339 time for people, keeping the exact value as a tooltip. */
export function when(rfc3339) {
  if (!rfc3339 || rfc3339.startsWith('0001-')) return h('span', { class: 'muted' }, 'never');
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return h('span', {}, rfc3339);
  return h('time', { datetime: rfc3339, title: rfc3339 }, d.toLocaleString());
}

export function duration(seconds) {
  let s = Math.max(0, Math.floor(Number(seconds) || 0));
  if (s === 0) return '0s';
  const parts = [];
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
  }
  return parts.slice(0, 2).join(' ');
}

/** Asks before something that cannot be taken back; resolves true or false. */
export function confirmDialog(title, text, action = 'Confirm', danger = true) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title' });
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    dlg.append(
      h('h2', { id: 'dlg-title' }, title),
      h('p', {}, text),
      h('div', { class: 'actions' },
        h('button', { class: danger ? 'danger' : 'primary', onclick: () => done(true) }, action),
        h('button', { onclick: () => done(false) }, 'Cancel')),
    );
    dlg.addEventListener('cancel', () => done(false));
    document.body.append(dlg);
    dlg.showModal();
  });
}
