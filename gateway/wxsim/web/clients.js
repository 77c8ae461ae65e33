// The clients screen: the account bar and the account's simulated clients.

import { $, h } from './lib/dom.js';
import { lang, t } from './strings.js';
import { api, enc } from './api.js';
import { clientName, accountName, avatar, sceneWho, toast } from './helpers.js';
import { state, account } from './state.js';
import { kick, newPollGeneration } from './polling.js';
import { go, route, loadAccounts } from './routing.js';
import { closePlus } from './plus.js';

export function showClients() {
  state.screen = 'clients';
  state.openid = '';
  newPollGeneration();
  closePlus();
  $('screen-chat').hidden = true;
  $('screen-clients').hidden = false;
  renderAccountBar();
  state.clientsKey = '';
  kick();
}

export function renderAccountBar() {
  const has = state.accounts.length > 0;
  $('account-bar').hidden = !has;
  $('no-account').hidden = has;
  $('clients-intro').hidden = !has;
  $('list-actions').hidden = !has;
  $('account-details').hidden = !has;
  const sel = $('account');
  sel.replaceChildren(...state.accounts.map((a) => h('option', { value: a.appid, text: `${accountName(a)} (${a.appid})` })));
  sel.value = state.appid;
  const a = account();
  const dl = $('account-dl');
  dl.replaceChildren();
  if (a) {
    const rows = [
      ['AppID', a.appid],
      ['AppSecret', a.app_secret],
      ['Token', a.token],
      ['EncodingAESKey', a.encoding_aes_key],
      [t('mode'), a.mode],
      ['Original ID', a.original_id],
      [t('callbackURL'), a.callback_url || '—'],
      [t('apiBase'), location.origin],
    ];
    for (const [k, v] of rows) dl.append(h('dt', { text: k }), h('dd', { text: v }));
    $('about-callback').textContent = t('aboutCallback', { name: accountName(a), url: a.callback_url || '—', mode: a.mode });
  }
}

export async function refreshClients() {
  if (!state.appid) {
    await loadAccounts();
    if (state.accounts.length) route();
    return;
  }
  const clients = await api('GET', `/accounts/${enc(state.appid)}/clients`);
  const key = JSON.stringify(clients) + lang;
  if (key === state.clientsKey) return;
  state.clientsKey = key;
  state.clients = clients;
  renderClients();
}

export function renderClients() {
  const list = $('client-list');
  const clients = [...state.clients].reverse(); // newest first, like a chat list
  $('clients-empty').hidden = clients.length > 0 || !state.accounts.length;
  list.replaceChildren(
    ...clients.map((c) => {
      let sub = c.subscribed ? t('following') : t('notFollowingShort');
      const scene = c.qr_scene_str || (c.qr_scene ? String(c.qr_scene) : '');
      if (c.subscribed && scene) sub += ' · ' + t('via', { who: sceneWho(scene) });
      return h(
        'li',
        {},
        h(
          'button',
          { type: 'button', class: 'client-row', dataset: { openid: c.openid }, on: { click: () => go(state.appid, c.openid) } },
          avatar('client', c.openid),
          h('span', { class: 'client-main' }, h('span', { class: 'client-name', text: clientName(c.openid) }), h('span', { class: 'client-sub', text: `${sub} · ${c.openid}` })),
          h('span', { class: 'client-badge' + (c.subscribed ? ' on' : ''), 'aria-hidden': 'true', text: c.subscribed ? '●' : '○' }),
        ),
      );
    }),
  );
}

export async function newClient() {
  if (!state.appid) return null;
  try {
    const c = await api('POST', `/accounts/${enc(state.appid)}/clients`);
    go(state.appid, c.openid);
    return c;
  } catch (e) {
    toast(e.message);
    return null;
  }
}
