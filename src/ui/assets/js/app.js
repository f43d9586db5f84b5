// The portal's shell: hash routes, the namespace picker, and each page's lifetime (a page's
// render returns a cleanup that stops its polling and streams when the route changes).
import { api } from './api.js';
import { clear, h } from './dom.js';
import * as functions from './functions.js';

// The function list, where the portal opens, comes with the shell; every other page's module
// is fetched when that page is first shown, so the first load waits for 4 files, not 11.
const ROUTES = {
  functions: async () => functions,        // #/functions
  function: () => import('./detail.js'),   // #/function/NS/NAME
  invoke: () => import('./invoke.js'),     // #/invoke/NS/NAME
  logs: () => import('./logs.js'),         // #/logs/NS/NAME
  deploy: () => import('./deploy.js'),     // #/deploy[/NS/NAME]
  secrets: () => import('./secrets.js'),   // #/secrets
  system: () => import('./system.js'),     // #/system
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

let routed = 0;  // the latest route(): a page whose module arrives after another route is dropped

async function route() {
  const [page, ...args] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const load = ROUTES[page];
  if (!load) {
    location.replace('#/functions');
    return;
  }
  const seq = ++routed;
  if (cleanup) cleanup();
  cleanup = null;
  for (const a of document.querySelectorAll('.top nav a')) {
    const current = a.getAttribute('href') === `#/${page}`;
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  let mod;
  try {
    mod = await load();
  } catch (e) {
    if (seq === routed) {
      main.append(h('p', { class: 'error', role: 'alert' }, `This page failed to load: ${e.message}`));
    }
    return;
  }
  if (seq !== routed) return;
  try {
    cleanup = mod.render(main, args, ctx) || null;
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
