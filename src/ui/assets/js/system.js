// Namespaces (list, create, delete after confirmation), the supervised services (NATS,
// Prometheus, …) from /system/services, refreshed every 3 s in place, and /system/info.
import { api } from './api.js';
import { h, clear, messages, confirmAction, poll } from './dom.js';

// A service's state → the badge class of app.css.
const STATE_BADGE = { running: 'ready', starting: 'notready', restarting: 'notready', stopped: 'zero', failed: 'bad' };

// "12 s", "4 min", "3 h", "2 d" from milliseconds.
function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
const when = (iso) => h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, `${age(Date.now() - Date.parse(iso))} ago`);

// Heading and cell class (the field first, then layout) of each column of the services table.
const COLUMNS = [['Name', 'name mono'], ['State', 'state'], ['Since', 'since opt'], ['PID', 'pid num opt mono'],
  ['Restarts', 'restarts num'], ['Last exit', 'exit'], ['Ports', 'ports opt mono'], ['Image', 'image opt mono']];

// The services table, its rows kept across refreshes (updated in place, as the function list).
function servicesSection() {
  const msg = messages();
  const tbody = h('tbody', { id: 'svc-rows' });
  const none = h('p', { class: 'muted', id: 'svc-none', hidden: true },
    'No supervised services: the daemon runs with --services=off, or services.yaml lists none ' +
    '(or was not applied: faasd service list says why).');
  const updated = h('p', { class: 'muted', 'aria-live': 'off', id: 'svc-updated' });
  const el = h('section', { 'aria-labelledby': 'svc-h' }, h('h2', { id: 'svc-h' }, 'Services'), msg.el,
    h('div', { class: 'table-wrap' }, h('table', { id: 'services' }, h('thead', {}, h('tr', {},
      COLUMNS.map(([title, cls]) => h('th', { scope: 'col', class: cls.split(' ').slice(1).filter((c) => c !== 'mono').join(' ') }, title)))), tbody)),
    none, updated);
  const rows = new Map();
  function set(tr, cls, content) {
    const td = tr.querySelector(`.${cls}`);
    const node = content instanceof Node ? content : document.createTextNode(content);
    if (td.textContent !== node.textContent) clear(td).append(node);
  }
  function paint(list) {
    for (const [name, tr] of rows) {
      if (!list.some((s) => s.name === name)) { tr.remove(); rows.delete(name); }
    }
    for (const [i, s] of list.entries()) {
      let tr = rows.get(s.name);
      if (!tr) {
        tr = h('tr', { 'data-svc': s.name }, COLUMNS.map(([, cls]) => h('td', { class: cls })));
        rows.set(s.name, tr);
      }
      set(tr, 'name', s.name);
      const due = s.restartAt ? ` (next try in ${age(Date.parse(s.restartAt) - Date.now())})` : '';
      set(tr, 'state', h('span', { class: `badge ${STATE_BADGE[s.state] || 'notready'}`, 'data-state': s.state }, s.state + due));
      set(tr, 'since', when(s.since));
      set(tr, 'pid', s.pid ? String(s.pid) : '—');
      set(tr, 'restarts', String(s.restarts || 0));
      const x = s.lastExit;
      set(tr, 'exit', x ? h('span', {}, `${x.reason}, `, when(x.time)) : h('span', { class: 'muted' }, 'none'));
      set(tr, 'ports', (s.ports || []).map((p) => `${p.hostIP}:${p.hostPort}→${p.containerPort}/${p.protocol}`).join(', ') || '—');
      set(tr, 'image', s.image);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    }
    none.hidden = list.length > 0;
  }
  const stop = poll(async () => {
    try {
      paint(await api('GET', '/system/services'));
      msg.clear();
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 3 s.`;
    } catch (e) {
      msg.error(e);
    }
  }, 3000);
  return { el, stop };
}

export function render(main, _args, ctx) {
  const msg = messages();
  const info = h('dl', { class: 'props', id: 'sys-info' });
  const tbody = h('tbody', { id: 'ns-rows' });
  const name = h('input', { type: 'text', id: 'ns-name', required: true, pattern: '[a-z0-9]([-a-z0-9]*[a-z0-9])?', maxlength: 63 });
  const form = h('form', { class: 'row', id: 'ns-form' }, h('label', { for: 'ns-name' }, 'New namespace', name),
    h('button', { type: 'submit' }, 'Create'));
  const services = servicesSection();
  main.append(h('h1', { tabindex: '-1' }, 'Namespaces and system'), msg.el,
    h('h2', {}, 'Namespaces'),
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Actions'))), tbody)),
    form, services.el, h('h2', {}, 'System'), info);

  const body = (n) => ({ name: n, labels: { openfaas: '1' }, annotations: { openfaas: '1' } });
  async function load() {
    try {
      const names = await ctx.refreshNamespaces();
      clear(tbody).append(...names.map((n) => h('tr', { 'data-ns': n }, h('td', { class: 'mono' }, n),
        h('td', {}, n === 'openfaas-fn' ? h('span', { class: 'muted' }, 'default')
          : h('button', { type: 'button', class: 'danger', 'aria-label': `Delete namespace ${n}`, onclick: () => remove(n) }, 'Delete')))));
    } catch (e) { msg.error(e); }
  }
  async function remove(n) {
    if (!(await confirmAction(`Delete namespace ${n}?`))) return;
    try {
      await api('DELETE', `/system/namespace/${encodeURIComponent(n)}`, body(n));
      if (ctx.ns === n) ctx.ns = 'openfaas-fn';
      msg.ok(`Deleted ${n}.`);
      load();
    } catch (e) { msg.error(e); }
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const n = name.value.trim();
    try {
      await api('POST', '/system/namespace/', body(n));
      msg.ok(`Created ${n}.`);
      name.value = '';
      load();
    } catch (e) { msg.error(e); }
  });

  api('GET', '/system/info').then((i) => {
    const p = i.provider || {};
    const rows = [['Provider', p.provider], ['Orchestration', p.orchestration],
      ['Provider version', p.version && `${p.version.release} (${p.version.sha})`],
      ['Gateway version', i.version && `${i.version.release} (${i.version.sha})`], ['Architecture', i.arch]];
    clear(info).append(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v || '—')]));
  }).catch((e) => msg.error(e));
  load();
  return services.stop;
}
