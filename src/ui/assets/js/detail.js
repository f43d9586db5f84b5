// One function: status, replicas and a scale control, its spec, usage, and live charts of
// req/s, errors and p50/p99 latency from /system/function-stats (404 = no statistics yet).
import { api, q, fnPath } from './api.js';
import { h, clear, messages, statusBadge, fmtBytes, fmtNum, poll, pairsList, routeLink, confirmAction } from './dom.js';
import { lineChart } from './chart.js';

const DEFAULT_MAX = 20; // com.openfaas.scale.max when unset

// Deletes a function once the user confirms, then shows the list; errors go to `msg`.
export async function removeFunction(name, ns, msg) {
  if (!(await confirmAction(`Delete function ${name} in ${ns}?`))) return;
  try {
    await api('DELETE', '/system/functions', { functionName: name, namespace: ns });
    location.hash = '#/functions';
  } catch (e) { msg.error(e); }
}

export function render(main, [ns, name], ctx) {
  const msg = messages();
  const props = h('dl', { class: 'props', id: 'fn-props' });
  const replicas = h('input', { type: 'number', id: 'scale-replicas', min: 0, max: DEFAULT_MAX, required: true });
  const scaleMsg = messages();
  const scale = h('form', { class: 'row', id: 'scale-form', 'aria-label': 'Scale' },
    h('label', {}, 'Replicas', replicas),
    h('button', { type: 'submit' }, 'Scale'));
  const charts = h('div', { class: 'charts', id: 'fn-charts' }, h('p', { class: 'muted' }, 'Loading statistics…'));
  const ref = [ns, name];
  main.append(
    h('h1', { tabindex: '-1' }, name),
    h('p', { class: 'row' },
      h('a', { class: 'button secondary', href: routeLink(['invoke', ...ref]) }, 'Invoke'),
      h('a', { class: 'button secondary', href: routeLink(['logs', ...ref]) }, 'Logs'),
      h('a', { class: 'button secondary', href: routeLink(['deploy', ...ref]) }, 'Edit'),
      h('button', { type: 'button', class: 'danger', id: 'fn-delete', onclick: remove }, 'Delete')),
    msg.el, props,
    h('h2', {}, 'Scale'), scale, scaleMsg.el,
    h('h2', {}, 'Last 15 minutes'), charts);

  let edited = false;
  replicas.addEventListener('input', () => { edited = true; });

  function remove() { return removeFunction(name, ns, msg); }

  scale.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const n = Number(replicas.value);
    try {
      await api('POST', `/system/scale-function/${encodeURIComponent(name)}?${q({ namespace: ns })}`,
        { serviceName: name, namespace: ns, replicas: n });
      edited = false;
      scaleMsg.ok(`Scaling ${name} to ${n}.`);
      refresh();
    } catch (e) { scaleMsg.error(e); }
  });

  async function refresh() {
    try {
      const f = await api('GET', `${fnPath(name, ns)}&usage=1`);
      msg.clear();
      const labels = f.labels || {};
      replicas.max = labels['com.openfaas.scale.max'] || DEFAULT_MAX;
      if (!edited && document.activeElement !== replicas) replicas.value = f.replicas || 0;
      const usage = f.usage || {};
      const rows = [
        ['Status', statusBadge(f)],
        ['Replicas', h('span', { id: 'fn-replicas' }, `${f.availableReplicas || 0} ready of ${f.replicas || 0}`)],
        ['Invocations', fmtNum(f.invocationCount || 0)],
        ['Image', h('span', { class: 'mono image' }, f.image)],
        ['Namespace', f.namespace || ns],
        ['Created', f.createdAt ? new Date(f.createdAt).toLocaleString() : '—'],
        ['CPU', usage.cpu === undefined ? '—' : `${fmtNum(usage.cpu, 1)} millicores`],
        ['Memory', fmtBytes(usage.totalMemoryBytes)],
        ['Process', f.envProcess ? h('span', { class: 'mono' }, f.envProcess) : '—'],
        ['Environment', pairsList(Object.fromEntries(Object.keys(f.envVars || {}).map((k) => [k, null])))],
        ['Secrets', pairsList(Object.fromEntries((f.secrets || []).map((s) => [s, null])))],
        ['Labels', pairsList(labels)],
        ['Annotations', pairsList(f.annotations)],
        ['Limits', pairsList(f.limits)],
        ['Requests', pairsList(f.requests)],
      ];
      clear(props).append(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    } catch (e) {
      msg.error(e);
    }
  }

  const noStats = () => clear(charts).append(h('p', { class: 'muted', id: 'no-stats' }, 'No statistics yet.'));
  async function refreshStats() {
    try {
      const s = await api('GET', `/system/function-stats/${encodeURIComponent(name)}?${q({ namespace: ns })}`);
      const points = s.points || [];
      if (!points.length) return noStats();
      const to = Math.floor(Date.now() / 1000);
      const from = to - 15 * 60;
      const interval = s.intervalSeconds || 10;
      const series = (fields) => fields.map(([value, label]) => ({
        name: label, points: points.map((p) => ({ t: p.t, v: value(p) })),
      }));
      clear(charts).append(
        lineChart({ label: 'Requests and errors', unit: 'per second', from, to,
          series: series([[(p) => p.rps, 'req/s'], [(p) => (p.errors || 0) / interval, 'errors/s']]) }),
        lineChart({ label: 'Latency', unit: 'ms', from, to,
          series: series([[(p) => p.p50Ms, 'p50'], [(p) => p.p99Ms, 'p99']]) }));
    } catch (e) {
      if (e.status === 404) {
        noStats(); // no such endpoint (an older daemon) or no statistics kept
      } else {
        clear(charts).append(h('p', { class: 'error', role: 'alert' }, e.message));
      }
    }
  }

  const stops = [poll(refresh, 3000), poll(refreshStats, 10000)];
  return () => stops.forEach((s) => s());
}
