// Routing: the URL's hash names the account and the chat shown.

import { $ } from './lib/dom.js';
import { api, enc } from './api.js';
import { state } from './state.js';
import { showClients } from './clients.js';
import { openChat } from './chat.js';

// The hash names what is shown: #/<appid> (its clients) or
// #/<appid>/<openid> (a chat), so reloading keeps the place.
export function go(appid, openid) {
  const want = '#/' + enc(appid || '') + (openid ? '/' + enc(openid) : '');
  if (location.hash !== want) location.hash = want;
  else route();
}

export async function route() {
  const [appid = '', openid = ''] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  await loadAccounts();
  if (!state.accounts.length) {
    showClients();
    return;
  }
  state.appid = state.accounts.some((a) => a.appid === appid) ? appid : state.accounts[0].appid;
  if (openid) openChat(openid);
  else showClients();
}

export async function loadAccounts() {
  try {
    state.accounts = await api('GET', '/accounts');
    $('offline').hidden = true;
  } catch {
    $('offline').hidden = false;
  }
}
