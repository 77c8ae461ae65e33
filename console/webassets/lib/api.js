// JSON over fetch, shared by the console and the simulator's phone page
// (console/webassets). Each page wraps request in its own api(): the
// console adds its CSRF token and notices a lost session, the phone page
// adds its base path.

// ApiError is a refused or failed request: status (0 when the server could
// not be reached), the JSON body, and the server's words in message.
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.error) || (status ? `HTTP ${status}` : 'network error'));
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter;
  }
}

// request sends one request. opts.json is sent as JSON, opts.form as
// multipart/form-data; opts.headers are added; opts.signal aborts it. It
// resolves to the parsed JSON body (null for 204 or a body that is not
// JSON) and rejects with an ApiError (or the AbortError).
export async function request(method, path, opts = {}) {
  const headers = { Accept: 'application/json', ...opts.headers };
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.form) {
    body = opts.form;
  }
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
    const ra = Number(res.headers.get('Retry-After')) || undefined;
    throw new ApiError(res.status, data, ra);
  }
  return data;
}
