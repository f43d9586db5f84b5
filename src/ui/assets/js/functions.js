// Function list: search, status, replicas, invocations, image; refreshed every 3 s in place
// (rows are updated, not rebuilt, so focus and selection survive a refresh).
import { api, q } from './api.js';
import { h, clear, messages, statusBadge, fmtNum, poll, routeLink } from './dom.js';

export function render(main, _args, ctx) {
  const msg = messages();
  const search = h('input', { type: 'search', id: 'fn-search', placeholder: 'name or image' });
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No functions match.');
  const updated = h('p', { class: 'muted', 'aria-live': 'off', id: 'fn-updated' });
  main.append(
    h('h1', { tabindex: '-1' }, `Functions in ${ctx.ns}`),
    h('div', { class: 'row' },
      h('label', {}, 'Search', search),
      h('a', { class: 'button', href: '#/deploy' }, 'Deploy a function')),
    msg.el,
    h('div', { class: 'table-wrap' }, h('table', { id: 'functions' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col', class: 'num' }, 'Replicas'),
        h('th', { scope: 'col', class: 'num opt' }, 'Invocations'),
        h('th', { scope: 'col', class: 'opt' }, 'Image'),
        h('th', { scope: 'col' }, 'Actions'))),
      tbody)),
    empty, updated);

  const rows = new Map();
  let last = [];
  let listed = false;
  const paint = () => {
    const term = search.value.trim().toLowerCase();
    const shown = last.filter((f) => !term || f.name.toLowerCase().includes(term) ||
      (f.image || '').toLowerCase().includes(term));
    for (const [name, tr] of rows) {
      if (!last.some((f) => f.name === name)) { tr.remove(); rows.delete(name); }
    }
    for (const [i, f] of shown.entries()) {
      let tr = rows.get(f.name);
      if (!tr) {
        const ref = [ctx.ns, f.name];
        tr = h('tr', { 'data-fn': f.name },
          h('td', {}, h('a', { href: routeLink(['function', ...ref]) }, f.name)),
          h('td', { class: 'status' }), h('td', { class: 'num replicas' }),
          h('td', { class: 'num opt invocations' }), h('td', { class: 'opt image mono' }),
          h('td', {}, h('div', { class: 'row' },
            h('a', { href: routeLink(['invoke', ...ref]), 'aria-label': `Invoke ${f.name}` }, 'Invoke'),
            h('a', { href: routeLink(['logs', ...ref]), 'aria-label': `Logs of ${f.name}` }, 'Logs'))));
        rows.set(f.name, tr);
      }
      const status = tr.querySelector('.status');
      const badge = statusBadge(f);
      if (status.textContent !== badge.textContent) clear(status).append(badge);
      tr.querySelector('.replicas').textContent = `${f.availableReplicas || 0}/${f.replicas || 0}`;
      tr.querySelector('.invocations').textContent = fmtNum(f.invocationCount || 0);
      tr.querySelector('.image').textContent = f.image;
      // Moved only when out of place: moving a node would take the keyboard focus off it.
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    }
    while (tbody.children.length > shown.length) tbody.lastChild.remove();
    empty.hidden = shown.length > 0;
  };
  search.addEventListener('input', paint);

  const stop = poll(async () => {
    try {
      last = (await api('GET', `/system/functions?${q({ namespace: ctx.ns })}`))
        .sort((a, b) => a.name.localeCompare(b.name));
      msg.clear();
      paint();
      // How long the first list took from navigation start (the page's own measure; the
      // integration test reads it from the Performance API).
      if (!listed) performance.mark('functions-listed');
      listed = true;
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 3 s.`;
    } catch (e) {
      msg.error(e);
    }
  }, 3000);
  return stop;
}
