// Invoke a function: method, path, query, headers, a text/JSON/file body, sync or async
// (X-Callback-Url); shows the status, headers, time and body (downloadable).
import { api, q, url } from './api.js';
import { h, append, clear, messages, fmtBytes, routeLink } from './dom.js';

const METHODS = ['POST', 'GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'];
const TEXT_TYPES = /^(text\/|application\/(json|.*\+json|xml|.*\+xml|javascript|x-ndjson|x-www-form-urlencoded))/;

function field(id, label, input) {
  input.id = id;
  return h('label', { for: id }, label, input);
}

export function render(main, [ns, name], ctx) {
  ns = ns || ctx.ns;
  const msg = messages();
  const fnSelect = h('select', { required: true });
  const method = h('select', {}, METHODS.map((m) => h('option', { value: m }, m)));
  const path = h('input', { type: 'text', placeholder: '/' });
  const query = h('input', { type: 'text', placeholder: 'a=1&b=2' });
  const headers = h('textarea', { placeholder: 'Name: value (one a line)', rows: 3 });
  const kind = h('select', {}, ['text', 'JSON', 'file'].map((k) => h('option', { value: k }, k)));
  const body = h('textarea', { rows: 6 });
  const file = h('input', { type: 'file' });
  const mode = h('select', {}, h('option', { value: 'sync' }, 'sync (/function/)'),
    h('option', { value: 'async' }, 'async (/async-function/)'));
  const callback = h('input', { type: 'url', placeholder: 'http://… (optional)' });
  const send = h('button', { type: 'submit', id: 'inv-send' }, 'Invoke');
  const result = h('section', { id: 'inv-result', 'aria-live': 'polite' });
  const fileLabel = field('inv-file', 'Body file', file);
  const bodyLabel = field('inv-body', 'Body', body);
  const callbackLabel = field('inv-callback', 'X-Callback-Url', callback);

  const form = h('form', { class: 'form', id: 'invoke-form' },
    field('inv-fn', 'Function', fnSelect), field('inv-method', 'Method', method),
    field('inv-path', 'Path', path), field('inv-query', 'Query', query),
    field('inv-mode', 'Mode', mode), callbackLabel,
    h('div', { class: 'wide' }, field('inv-headers', 'Headers', headers)),
    field('inv-kind', 'Body type', kind), fileLabel,
    h('div', { class: 'wide' }, bodyLabel),
    h('div', { class: 'wide row' }, send));
  append(main, [h('h1', { tabindex: '-1' }, name ? `Invoke ${name}` : 'Invoke'),
    name ? h('p', {}, h('a', { href: routeLink(['function', ns, name]) }, `Back to ${name}`)) : null,
    form, msg.el, result]);

  const sync = () => {
    fileLabel.hidden = kind.value !== 'file';
    bodyLabel.hidden = kind.value === 'file';
    callbackLabel.hidden = mode.value !== 'async';
  };
  kind.addEventListener('change', sync);
  mode.addEventListener('change', sync);
  sync();

  api('GET', `/system/functions?${q({ namespace: ns })}`).then((fns) => {
    const names = fns.map((f) => f.name).sort();
    if (name && !names.includes(name)) names.unshift(name);
    clear(fnSelect).append(...names.map((n) => h('option', { value: n, selected: n === name }, n)));
  }).catch((e) => {
    msg.error(e);
    if (name) fnSelect.append(h('option', { value: name, selected: true }, name));
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.clear();
    clear(result);
    const init = { method: method.value, headers: new Headers(), credentials: 'omit' };
    try {
      for (const [i, raw] of headers.value.split('\n').entries()) {
        const line = raw.trim();
        if (!line) continue;
        const colon = line.indexOf(':');
        if (colon <= 0) throw new Error(`Headers, line ${i + 1}: expected "Name: value"`);
        init.headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      if (method.value !== 'GET' && method.value !== 'HEAD') {
        if (kind.value === 'file') {
          if (file.files[0]) init.body = file.files[0];
        } else if (body.value) {
          if (kind.value === 'JSON') {
            try { JSON.parse(body.value); } catch (e) { throw new Error(`Body is not JSON: ${e.message}`); }
            if (!init.headers.has('Content-Type')) init.headers.set('Content-Type', 'application/json');
          }
          init.body = body.value;
        }
      }
      if (mode.value === 'async' && callback.value) init.headers.set('X-Callback-Url', callback.value);
    } catch (e) {
      msg.error(e);
      return;
    }
    let p = path.value.trim();
    if (p && !p.startsWith('/')) p = '/' + p;
    const qs = query.value.trim().replace(/^\?/, '');
    const prefix = mode.value === 'async' ? '/async-function/' : '/function/';
    const target = `${prefix}${encodeURIComponent(fnSelect.value)}.${encodeURIComponent(ns)}${p}${qs ? '?' + qs : ''}`;
    send.disabled = true;
    const started = performance.now();
    try {
      const res = await fetch(url(target), init);
      const blob = await res.blob();
      await showResult(result, target, init.method, res, blob, performance.now() - started);
    } catch (e) {
      msg.error(new Error(`${init.method} ${target}: ${e.message}`));
    } finally {
      send.disabled = false;
    }
  });
}

async function showResult(result, target, method, res, blob, ms) {
  const type = res.headers.get('Content-Type') || '';
  const rows = [...res.headers].map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'mono' }, v)));
  const text = !blob.size || TEXT_TYPES.test(type) || (!type && blob.size < 65536)
    ? await blob.text() : null;
  const download = h('a', { href: URL.createObjectURL(blob), download: 'response.bin', class: 'button secondary', id: 'inv-download' },
    `Download body (${fmtBytes(blob.size)})`);
  clear(result).append(
    h('h2', {}, 'Response'),
    h('p', { id: 'inv-status' },
      h('strong', { class: res.ok ? 'ok' : 'error-text' }, `${res.status} ${res.statusText}`),
      ` · ${method} ${target} · `, h('span', { id: 'inv-time' }, `${ms.toFixed(1)} ms`),
      ` · ${fmtBytes(blob.size)}`,
      res.headers.get('X-Call-Id') ? h('span', {}, ' · X-Call-Id ', h('code', { id: 'inv-call-id' }, res.headers.get('X-Call-Id'))) : null),
    h('details', {}, h('summary', {}, `Headers (${rows.length})`),
      h('div', { class: 'table-wrap' }, h('table', {}, h('tbody', {}, rows)))),
    text !== null ? h('pre', { id: 'inv-body-out' }, text || '(empty body)')
      : h('p', { id: 'inv-body-out' }, `Binary body (${type || 'no content type'}).`),
    h('p', {}, download));
}
