// Secrets of the current namespace: names only (values are never shown), create from a value
// or a file, replace, delete after confirmation.
import { api, q } from './api.js';
import { h, clear, messages, fileBase64, confirmAction } from './dom.js';

export function render(main, _args, ctx) {
  const ns = ctx.ns;
  const msg = messages();
  const tbody = h('tbody', { id: 'secret-rows' });
  const name = h('input', { type: 'text', id: 'sec-name', required: true, autocomplete: 'off',
    pattern: '[a-z0-9]([-a-z0-9]*[a-z0-9])?', maxlength: 63 });
  const kind = h('select', { id: 'sec-kind' }, h('option', { value: 'value' }, 'value'), h('option', { value: 'file' }, 'file'));
  const value = h('textarea', { id: 'sec-value', rows: 3, autocomplete: 'off', spellcheck: 'false' });
  const file = h('input', { type: 'file', id: 'sec-file' });
  const valueL = h('label', { for: 'sec-value', class: 'wide' }, 'Value', value);
  const fileL = h('label', { for: 'sec-file', hidden: true }, 'File', file);
  const submit = h('button', { type: 'submit', id: 'sec-submit' }, 'Create');
  const cancel = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => setMode(null) }, 'Cancel');
  const title = h('h2', {}, 'Create a secret');
  let replacing = null;
  const setMode = (n) => {
    replacing = n;
    title.textContent = n ? `Replace ${n}` : 'Create a secret';
    name.value = n || '';
    name.readOnly = Boolean(n);
    submit.textContent = n ? 'Replace' : 'Create';
    cancel.hidden = !n;
    value.value = '';
    file.value = '';
    (n ? value : name).focus();
  };
  kind.addEventListener('change', () => { valueL.hidden = kind.value !== 'value'; fileL.hidden = kind.value !== 'file'; });

  const form = h('form', { class: 'form', id: 'secret-form' },
    h('label', { for: 'sec-name' }, 'Name', name), h('label', { for: 'sec-kind' }, 'From', kind),
    fileL, valueL, h('div', { class: 'wide row' }, submit, cancel));
  main.append(h('h1', { tabindex: '-1' }, `Secrets in ${ns}`), msg.el,
    h('div', { class: 'table-wrap' }, h('table', { id: 'secrets' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Actions'))), tbody)),
    title, form);

  async function load() {
    try {
      const list = (await api('GET', `/system/secrets?${q({ namespace: ns })}`)).sort((a, b) => a.name.localeCompare(b.name));
      clear(tbody);
      if (!list.length) tbody.append(h('tr', {}, h('td', { colspan: 2, class: 'muted' }, 'No secrets.')));
      for (const s of list) {
        tbody.append(h('tr', { 'data-secret': s.name }, h('td', { class: 'mono' }, s.name),
          h('td', {}, h('div', { class: 'row' },
            h('button', { type: 'button', class: 'secondary', 'aria-label': `Replace ${s.name}`, onclick: () => setMode(s.name) }, 'Replace'),
            h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${s.name}`, 'data-delete': s.name,
              onclick: () => remove(s.name) }, 'Delete')))));
      }
    } catch (e) { msg.error(e); }
  }

  async function remove(n) {
    if (!(await confirmAction(`Delete secret ${n} in ${ns}? Functions that name it keep their copy until redeployed.`))) return;
    try {
      await api('DELETE', '/system/secrets', { name: n, namespace: ns });
      msg.ok(`Deleted ${n}.`);
      load();
    } catch (e) { msg.error(e); }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: name.value.trim(), namespace: ns };
    try {
      if (kind.value === 'file') {
        if (!file.files[0]) throw new Error('Choose a file.');
        body.rawValue = await fileBase64(file.files[0]);
      } else {
        body.value = value.value;
      }
      await api(replacing ? 'PUT' : 'POST', '/system/secrets', body);
      msg.ok(`${replacing ? 'Replaced' : 'Created'} ${body.name}.`);
      setMode(null);
      load();
    } catch (e) { msg.error(e); }
  });
  load();
}
