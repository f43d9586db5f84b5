// Namespaces (list, create, delete after confirmation) and the daemon's /system/info.
import { api } from './api.js';
import { h, clear, messages, confirmAction } from './dom.js';

export function render(main, _args, ctx) {
  const msg = messages();
  const info = h('dl', { class: 'props', id: 'sys-info' });
  const tbody = h('tbody', { id: 'ns-rows' });
  const name = h('input', { type: 'text', id: 'ns-name', required: true, pattern: '[a-z0-9]([-a-z0-9]*[a-z0-9])?', maxlength: 63 });
  const form = h('form', { class: 'row', id: 'ns-form' }, h('label', { for: 'ns-name' }, 'New namespace', name),
    h('button', { type: 'submit' }, 'Create'));
  main.append(h('h1', { tabindex: '-1' }, 'Namespaces and system'), msg.el,
    h('h2', {}, 'Namespaces'),
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Actions'))), tbody)),
    form, h('h2', {}, 'System'), info);

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
}
