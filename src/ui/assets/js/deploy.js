// Deploy (POST) or update (PUT) a function; delete it after confirmation. #/deploy is a new
// function, #/deploy/NS/NAME edits one.
import { api, q, fnPath } from './api.js';
import { h, append, clear, messages, parsePairs, formatPairs, routeLink } from './dom.js';
import { removeFunction } from './detail.js';

const SCALE = [ // labels the autoscaler reads
  ['min', 'com.openfaas.scale.min', 'Scale min'],
  ['max', 'com.openfaas.scale.max', 'Scale max'],
  ['target', 'com.openfaas.scale.target', 'Scale target (per replica)'],
];

function input(id, label, attrs = {}) {
  const el = h(attrs.rows ? 'textarea' : 'input', { type: attrs.rows ? undefined : 'text', id, ...attrs });
  return [h('label', { for: id, class: attrs.rows ? 'wide' : undefined }, label, el), el];
}

export function render(main, [editNs, editName], ctx) {
  const editing = Boolean(editName);
  const msg = messages();
  const [imageL, image] = input('dep-image', 'Image', { required: true, placeholder: 'registry/repo:tag', autocomplete: 'off' });
  const [nameL, name] = input('dep-name', 'Name', { required: true, pattern: '[a-z0-9]([-a-z0-9]*[a-z0-9])?', maxlength: 63, autocomplete: 'off' });
  const ns = h('select', { id: 'dep-ns' });
  const [procL, proc] = input('dep-process', 'Process (fprocess)', { placeholder: 'optional' });
  const [envL, env] = input('dep-env', 'Environment (KEY=VALUE a line)', { rows: 3 });
  const [labelsL, labels] = input('dep-labels', 'Labels (KEY=VALUE a line)', { rows: 3 });
  const [annL, annotations] = input('dep-annotations', 'Annotations (KEY=VALUE a line)', { rows: 3 });
  const [memL, mem] = input('dep-limit-memory', 'Memory limit', { placeholder: '128Mi' });
  const [cpuL, cpu] = input('dep-limit-cpu', 'CPU limit', { placeholder: '500m' });
  const [rmemL, rmem] = input('dep-request-memory', 'Memory request', { placeholder: '64Mi' });
  const [rcpuL, rcpu] = input('dep-request-cpu', 'CPU request', { placeholder: '100m' });
  const scale = SCALE.map(([key, , label]) => input(`dep-scale-${key}`, label, { type: 'number', min: 0 }));
  const zero = h('input', { type: 'checkbox', id: 'dep-scale-zero' });
  const secretsBox = h('div', { class: 'row', id: 'dep-secrets' });
  const submit = h('button', { type: 'submit', id: 'dep-submit' }, editing ? 'Update' : 'Deploy');

  const form = h('form', { class: 'form', id: 'deploy-form' },
    imageL, nameL, h('label', { for: 'dep-ns' }, 'Namespace', ns), procL, envL,
    h('fieldset', { class: 'wide' }, h('legend', {}, 'Secrets'), secretsBox),
    labelsL, annL,
    h('fieldset', { class: 'wide' }, h('legend', {}, 'Limits and requests'),
      h('div', { class: 'form' }, memL, cpuL, rmemL, rcpuL)),
    h('fieldset', { class: 'wide' }, h('legend', {}, 'Scaling'),
      h('div', { class: 'form' }, scale.map(([l]) => l),
        h('label', { class: 'inline', for: 'dep-scale-zero' }, zero, 'Scale to zero when idle'))),
    h('div', { class: 'wide row' }, submit,
      editing ? h('button', { type: 'button', class: 'danger', id: 'dep-delete', onclick: remove }, 'Delete') : null));
  append(main, [h('h1', { tabindex: '-1' }, editing ? `Edit ${editName}` : 'Deploy a function'),
    editing ? h('p', {}, h('a', { href: routeLink(['function', editNs, editName]) }, `Back to ${editName}`)) : null,
    msg.el, form]);

  let chosenSecrets = new Set();
  async function loadSecrets() {
    clear(secretsBox);
    try {
      const list = await api('GET', `/system/secrets?${q({ namespace: ns.value })}`);
      const names = new Set([...list.map((s) => s.name), ...chosenSecrets]);
      if (!names.size) secretsBox.append(h('span', { class: 'muted' }, `No secrets in ${ns.value}.`));
      for (const n of [...names].sort()) {
        const box = h('input', { type: 'checkbox', value: n, id: `dep-secret-${n}`, checked: chosenSecrets.has(n) });
        box.addEventListener('change', () => (box.checked ? chosenSecrets.add(n) : chosenSecrets.delete(n)));
        secretsBox.append(h('label', { class: 'inline', for: box.id }, box, n));
      }
    } catch (e) { secretsBox.append(h('span', { class: 'error' }, e.message)); }
  }
  ns.addEventListener('change', () => { chosenSecrets = new Set(); loadSecrets(); });

  async function init() {
    const names = await ctx.refreshNamespaces();
    const current = editNs || ctx.ns;
    ns.append(...names.map((n) => h('option', { value: n, selected: n === current }, n)));
    if (editing) {
      name.value = editName;
      name.readOnly = true;
      ns.disabled = true;
      try {
        const f = await api('GET', fnPath(editName, editNs));
        image.value = f.image || '';
        proc.value = f.envProcess || '';
        env.value = formatPairs(f.envVars);
        const l = { ...(f.labels || {}) };
        SCALE.forEach(([, label], i) => {
          if (l[label] !== undefined) scale[i][1].value = l[label];
          delete l[label];
        });
        zero.checked = l['com.openfaas.scale.zero'] === 'true';
        delete l['com.openfaas.scale.zero'];
        labels.value = formatPairs(l);
        annotations.value = formatPairs(f.annotations);
        mem.value = (f.limits || {}).memory || '';
        cpu.value = (f.limits || {}).cpu || '';
        rmem.value = (f.requests || {}).memory || '';
        rcpu.value = (f.requests || {}).cpu || '';
        chosenSecrets = new Set(f.secrets || []);
      } catch (e) { msg.error(e); }
    }
    loadSecrets();
  }

  function spec() {
    const l = parsePairs(labels.value, 'Labels');
    SCALE.forEach(([, label], i) => { if (scale[i][1].value !== '') l[label] = scale[i][1].value; });
    if (zero.checked) l['com.openfaas.scale.zero'] = 'true';
    const limits = {}, requests = {};
    if (mem.value.trim()) limits.memory = mem.value.trim();
    if (cpu.value.trim()) limits.cpu = cpu.value.trim();
    if (rmem.value.trim()) requests.memory = rmem.value.trim();
    if (rcpu.value.trim()) requests.cpu = rcpu.value.trim();
    const d = {
      service: name.value.trim(), image: image.value.trim(), namespace: ns.value,
      envVars: parsePairs(env.value, 'Environment'), labels: l,
      annotations: parsePairs(annotations.value, 'Annotations'),
      secrets: [...chosenSecrets].sort(),
    };
    if (proc.value.trim()) d.envProcess = proc.value.trim();
    if (Object.keys(limits).length) d.limits = limits;
    if (Object.keys(requests).length) d.requests = requests;
    return d;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.clear();  // a refusal like the last one is shown (and scrolled to) again
    let d;
    try { d = spec(); } catch (e) { msg.error(e); return; }
    submit.disabled = true;
    try {
      await api(editing ? 'PUT' : 'POST', '/system/functions', d);
      ctx.ns = d.namespace;
      location.hash = routeLink(['function', d.namespace, d.service]);
    } catch (e) {
      msg.error(e);
    } finally {
      submit.disabled = false;
    }
  });

  function remove() { return removeFunction(editName, editNs, msg); }

  init().catch((e) => msg.error(e));
}
