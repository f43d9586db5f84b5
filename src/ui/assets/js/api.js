// Calls to the daemon's own API, with the browser's credentials for this origin (the Basic auth
// it answered for /ui/). Every failure becomes an ApiError carrying the server's message.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// An absolute URL without userinfo: fetch refuses URLs that carry credentials, and a page
// opened as http://user:pass@host/ui/ would lend them to relative ones.
export function url(path) {
  return new URL(path, location.origin).href;
}

export function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') s.set(k, v);
  return s.toString();
}

// Sends `body` as JSON when given. Returns parsed JSON, text, or (raw) the Response.
export async function api(method, path, body, { raw = false, signal } = {}) {
  const init = { method, credentials: 'same-origin', headers: {}, signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url(path), init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `${method} ${path}: ${e.message}`);
  }
  if (!res.ok) {
    const text = (await res.text().catch(() => '')).trim();
    throw new ApiError(res.status,
      `${method} ${path}: ${res.status} ${res.statusText}${text ? ' — ' + text : ''}`);
  }
  if (raw) return res;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const fnPath = (name, ns) =>
  `/system/function/${encodeURIComponent(name)}?${q({ namespace: ns })}`;
