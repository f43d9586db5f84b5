// A line chart as inline SVG: series of {t, v} points (v null = gap) over a fixed time window.
import { h } from './dom.js';

const W = 600, H = 170, L = 44, R = 8, T = 10, B = 22;

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : +v.toFixed(2)).toString();

// series: [{name, points: [{t, v}]}]; from/to: unix seconds. `label` names the chart for
// assistive technology, with each series' latest value.
export function lineChart({ label, unit, series, from, to }) {
  const all = series.flatMap((s) => s.points.map((p) => p.v)).filter((v) => v !== null && v !== undefined);
  const max = niceMax(Math.max(0, ...all));
  const x = (t) => L + ((t - from) / Math.max(1, to - from)) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const latest = series.map((s) => {
    const p = [...s.points].reverse().find((q) => q.v !== null && q.v !== undefined);
    return `${s.name} ${p ? fmt(p.v) : 'none'}`;
  }).join(', ');
  const svg = h('svg:svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `${label} (${unit}); latest: ${latest}` });
  for (const f of [0, 0.5, 1]) {
    svg.append(h('svg:line', { class: 'grid', x1: L, x2: W - R, y1: y(max * f), y2: y(max * f) }),
      h('svg:text', { x: L - 4, y: y(max * f) + 4, 'text-anchor': 'end' }, fmt(max * f)));
  }
  const minutes = Math.round((to - from) / 60);
  svg.append(h('svg:text', { x: L, y: H - 6 }, `−${minutes} min`),
    h('svg:text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, 'now'),
    h('svg:text', { x: (L + W) / 2, y: H - 6, 'text-anchor': 'middle' }, unit));
  series.forEach((s, i) => {
    let run = [];
    const flush = () => {
      if (run.length === 1) { // a lone point is no line: a dot shows it
        svg.append(h('svg:circle', { class: `s${i}`, cx: run[0][0], cy: run[0][1], r: 3 }));
      }
      if (run.length) svg.append(h('svg:polyline', { class: `s${i}`, points: run.map((p) => p.join(',')).join(' ') }));
      run = [];
    };
    for (const p of s.points) {
      if (p.v === null || p.v === undefined || p.t < from) { flush(); continue; }
      run.push([x(p.t).toFixed(1), y(p.v).toFixed(1)]);
    }
    flush();
  });
  const legend = h('div', { class: 'legend', 'aria-hidden': 'true' },
    series.map((s, i) => h('span', { class: `s${i}` }, s.name)));
  return h('figure', {}, h('figcaption', {}, label), svg, legend);
}
