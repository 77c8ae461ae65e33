// The console API (docs/console-api.md): JSON over fetch with the session
// cookie, and the CSRF token on every request that changes something.

import { ApiError, request } from './lib/api.js';

let csrf = '';
let onSignedOut = () => {};

export function setCSRF(token) { csrf = token || ''; }
export function whenSignedOut(fn) { onSignedOut = fn; }

export { ApiError };

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

// api sends one request (./lib/api.js request: opts.json, opts.form,
// opts.signal) with the CSRF token when it changes something. It resolves
// to the parsed JSON body (null for 204) and rejects with an ApiError; a
// 401 also calls the whenSignedOut function unless opts.quiet401.
export async function api(method, path, opts = {}) {
  const headers = {};
  if (UNSAFE.has(method) && csrf) headers['X-CSRF-Token'] = csrf;
  try {
    return await request(method, path, { ...opts, headers });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && !opts.quiet401) onSignedOut();
    throw e;
  }
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
