// The portal's shell: hash routes, the namespace picker, and each page's lifetime (a page's
// render returns a cleanup that stops its polling and streams when the route changes).
import { api } from './api.js';
import { clear, h } from './dom.js';
import * as functions from './functions.js';
import * as detail from './detail.js';
import * as invoke from './invoke.js';
import * as logs from './logs.js';
import * as deploy from './deploy.js';
import * as secrets from './secrets.js';
import * as system from './system.js';

const ROUTES = {
  functions: functions.render, // #/functions
  function: detail.render,     // #/function/NS/NAME
  invoke: invoke.render,       // #/invoke/NS/NAME
  logs: logs.render,           // #/logs/NS/NAME
  deploy: deploy.render,       // #/deploy[/NS/NAME]
  secrets: secrets.render,     // #/secrets
  system: system.render,       // #/system
};

const main = document.getElementById('main');
const picker = document.getElementById('ns-picker');
const ctx = {
  get ns() { return localStorage.getItem('faasd.ns') || 'openfaas-fn'; },
  set ns(v) { localStorage.setItem('faasd.ns', v); },
  refreshNamespaces,
};
let cleanup = null;

async function refreshNamespaces() {
  let names = [ctx.ns];
  try {
    names = await api('GET', '/system/namespaces');
  } catch (e) {
    console.warn(e.message);
  }
  if (!names.includes(ctx.ns)) names.push(ctx.ns);
  clear(picker).append(...names.map((n) => h('option', { value: n, selected: n === ctx.ns }, n)));
  return names;
}

function route() {
  const [page, ...args] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const render = ROUTES[page];
  if (!render) {
    location.replace('#/functions');
    return;
  }
  if (cleanup) cleanup();
  cleanup = null;
  for (const a of document.querySelectorAll('.top nav a')) {
    const current = a.getAttribute('href') === `#/${page}`;
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  try {
    cleanup = render(main, args, ctx) || null;
  } catch (e) {
    main.append(h('p', { class: 'error', role: 'alert' }, `This page failed: ${e.message}`));
  }
  const heading = main.querySelector('h1');
  if (heading) document.title = `${heading.textContent} · faasd-cpp`;
  // After a link or a form took the user elsewhere, keyboard focus starts at the new heading.
  if (!first && heading) heading.focus();
  first = false;
}
let first = true;

picker.addEventListener('change', () => {
  ctx.ns = picker.value;
  route();
});
window.addEventListener('hashchange', route);
refreshNamespaces();
route();
