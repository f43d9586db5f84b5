// A function's logs: GET /system/logs (NDJSON), followed live through a ReadableStream, with a
// client-side filter. At most MAX_LINES stay on the page.
import { q, url } from './api.js';
import { h, clear, messages, routeLink } from './dom.js';

const MAX_LINES = 2000;

export function render(main, [ns, name], ctx) {
  ns = ns || ctx.ns;
  const msg = messages();
  const tail = h('input', { type: 'number', id: 'log-tail', min: -1, value: 100 });
  const follow = h('input', { type: 'checkbox', id: 'log-follow', checked: true });
  const filter = h('input', { type: 'search', id: 'log-filter', placeholder: 'text to match' });
  const toggle = h('button', { type: 'submit', id: 'log-toggle' }, 'Start');
  const state = h('span', { class: 'muted', id: 'log-state', role: 'status' });
  const tbody = h('tbody', { id: 'log-lines' });
  const box = h('div', { class: 'logs' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'),
      h('th', { scope: 'col', class: 'opt' }, 'Instance'), h('th', { scope: 'col' }, 'Text'))),
    tbody));
  const form = h('form', { class: 'row', id: 'log-form' },
    h('label', { for: 'log-tail' }, 'Last lines (-1: all)', tail),
    h('label', { class: 'inline', for: 'log-follow' }, follow, 'Follow'),
    h('label', { for: 'log-filter' }, 'Filter', filter),
    toggle, state);
  main.append(h('h1', { tabindex: '-1' }, `Logs of ${name}`),
    h('p', {}, h('a', { href: routeLink(['function', ns, name]) }, `Back to ${name}`)),
    form, msg.el, box);

  let controller = null;
  const matches = (tr) => !filter.value || tr.dataset.text.toLowerCase().includes(filter.value.toLowerCase());
  filter.addEventListener('input', () => {
    for (const tr of tbody.children) tr.hidden = !matches(tr);
  });

  const add = (line) => {
    let m;
    try { m = JSON.parse(line); } catch { m = { text: line }; }
    const t = m.timestamp ? new Date(m.timestamp) : null;
    const tr = h('tr', { 'data-text': m.text || '' },
      h('td', { title: m.timestamp || '' }, t ? t.toLocaleTimeString() : ''),
      h('td', { class: 'opt' }, m.instance || ''), h('td', {}, m.text || ''));
    tr.hidden = !matches(tr);
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    tbody.append(tr);
    while (tbody.children.length > MAX_LINES) tbody.firstChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  };

  async function start() {
    stop();
    clear(tbody);
    msg.clear();
    controller = new AbortController();
    const mine = controller;
    toggle.textContent = 'Stop';
    state.textContent = follow.checked ? 'Following…' : 'Loading…';
    const path = `/system/logs?${q({ name, namespace: ns, tail: tail.value, follow: follow.checked })}`;
    try {
      const res = await fetch(url(path), { credentials: 'same-origin', signal: mine.signal });
      if (!res.ok) {
        const text = (await res.text()).trim();
        throw new Error(`GET ${path}: ${res.status} ${res.statusText}${text ? ' — ' + text : ''}`);
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parts = (rest + value).split('\n');
        rest = parts.pop();
        for (const p of parts) if (p.trim()) add(p);
      }
      if (rest.trim()) add(rest);
      state.textContent = 'Stream ended.';
    } catch (e) {
      if (e.name !== 'AbortError') { msg.error(e); state.textContent = 'Stopped by an error.'; }
    } finally {
      if (controller === mine) { controller = null; toggle.textContent = 'Start'; }
    }
  }
  function stop() {
    if (controller) controller.abort();
    controller = null;
    toggle.textContent = 'Start';
    state.textContent = 'Stopped.';
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (controller) stop(); else start();
  });
  start();
  return stop;
}
