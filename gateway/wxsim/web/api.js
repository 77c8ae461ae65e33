// The simulator's admin API (/sim/api/), over the shared request().

import { request } from './lib/api.js';

const API = '/sim/api';

/** api calls the admin API and returns the decoded JSON answer. */
export const api = (method, path, body) => request(method, API + path, body === undefined ? {} : { json: body });

export const enc = encodeURIComponent;
