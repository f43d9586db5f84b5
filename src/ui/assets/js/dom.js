// Small DOM helpers shared by the pages: element building, errors, confirmation, formats.

// h('a', {href: '#/x', class: 'c'}, 'text', child...): attributes starting with "on" are
// listeners; null/false children are skipped.
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' && !svg) el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// A live region that shows one message at a time: error(err) for errors, ok(text) for success.
// A new error is scrolled into view (a form's submit button may be a screen below it); the same
// error again, as a poll repeats it, is not.
export function messages() {
  const el = h('div', { class: 'messages', 'aria-live': 'polite' });
  return {
    el,
    error(err) {
      const text = err && err.message ? err.message : String(err);
      if (el.textContent === text) return;
      clear(el).append(h('p', { class: 'error', role: 'alert' }, text));
      el.scrollIntoView({ block: 'nearest' });
    },
    ok(text) { clear(el).append(h('p', { class: 'ok', role: 'status' }, text)); },
    clear() { clear(el); },
  };
}

// Resolves true when the user confirms `text` in the modal dialog of index.html.
export function confirmAction(text, action = 'Delete') {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = action;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

// "ready" | "zero" | "notready" from a FunctionStatus.
export function statusOf(fn) {
  if ((fn.availableReplicas || 0) > 0) return 'ready';
  if ((fn.replicas || 0) === 0) return 'zero';
  return 'notready';
}
const STATUS_TEXT = { ready: 'Ready', zero: 'Scaled to zero', notready: 'Not ready' };
export function statusBadge(fn) {
  const s = statusOf(fn);
  return h('span', { class: `badge ${s}`, 'data-status': s }, STATUS_TEXT[s]);
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export const fmtNum = (n, digits = 0) =>
  n === undefined || n === null ? '—' : Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });

// "KEY=VALUE" lines ⇄ an object. Blank lines are skipped; a line without "=" is an error.
export function parsePairs(text, what) {
  const out = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`${what}, line ${i + 1}: expected KEY=VALUE, got "${line}"`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}
export const formatPairs = (obj) =>
  Object.entries(obj || {}).map(([k, v]) => `${k}=${v}`).join('\n');

// A key → value table, or "none".
export function pairsList(obj) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return h('span', { class: 'muted' }, 'none');
  return h('ul', {}, entries.map(([k, v]) => h('li', { class: 'mono' }, v === null ? k : `${k}=${v}`)));
}

// Reads a File as base64 (for a secret's rawValue).
export function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(new Error(`read ${file.name}: ${r.error}`));
    r.readAsDataURL(file);
  });
}

// Runs `fn` now and every `ms` until the returned stop() is called; one run at a time.
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try { await fn(); } finally { if (!stopped) timer = setTimeout(tick, ms); }
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

export const routeLink = (parts) => '#/' + parts.map(encodeURIComponent).join('/');
