// The console API (docs/console-api.md): JSON over fetch with the session
// cookie, and the CSRF token on every request that changes something.

let csrf = '';
let onSignedOut = () => {};

export function setCSRF(token) { csrf = token || ''; }
export function whenSignedOut(fn) { onSignedOut = fn; }

// ApiError is a refused or failed request: status (0 when the relay could
// not be reached), the JSON body, and the server's words in message.
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.error) || (status ? `HTTP ${status}` : 'network error'));
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter;
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// api sends one request. opts.json is sent as JSON, opts.form as
// multipart/form-data. It resolves to the parsed JSON body (null for 204)
// and rejects with an ApiError.
export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json' };
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.form) {
    body = opts.form;
  }
  if (UNSAFE.has(method) && csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, { method, headers, body, credentials: 'same-origin', cache: 'no-store', signal: opts.signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, null);
  }
  let data = null;
  if (res.status !== 204 && (res.headers.get('Content-Type') || '').includes('json')) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) {
    if (res.status === 401 && !opts.quiet401) onSignedOut();
    const ra = Number(res.headers.get('Retry-After')) || undefined;
    throw new ApiError(res.status, data, ra);
  }
  return data;
}

export const convPath = (conv, tail = '') => `/api/conversations/${encodeURIComponent(conv)}${tail}`;
export const mediaURL = (messageID) => `/api/media/${encodeURIComponent(messageID)}`;

// newKey is an idempotency key for a send: a UUID. crypto.randomUUID
// exists only in secure contexts (https, localhost); on a plain-http
// intranet host the key is built from getRandomValues.
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
