// The chat screen: the client's log, the follow card and the composer.

import { $, h } from './lib/dom.js';
import { t } from './strings.js';
import { api, enc } from './api.js';
import { accountName, avatar } from './helpers.js';
import { simNow, fmtTime, fmtWhen } from './clock.js';
import { state, account } from './state.js';
import { pollGen, kick, newPollGeneration } from './polling.js';
import { renderAccountBar, renderClients } from './clients.js';
import { renderEntry } from './entries.js';
import { closePlus } from './plus.js';
import { fillInfoDialog } from './dialogs.js';

const TIME_GAP_MS = 5 * 60 * 1000;

export function openChat(openid) {
  const same = state.screen === 'chat' && state.openid === openid;
  state.screen = 'chat';
  $('screen-clients').hidden = true;
  $('screen-chat').hidden = false;
  if (!same) {
    state.openid = openid;
    state.info = null;
    state.entries.clear();
    state.nodes.clear();
    state.lastSeq = 0;
    state.lastTime = 0;
    $('messages').replaceChildren();
    $('follow-card').hidden = true;
    $('text').value = '';
    updateComposer();
    newPollGeneration();
  }
  const a = account();
  $('chat-title').textContent = accountName(a);
  $('fc-name').textContent = accountName(a);
  $('fc-avatar').replaceChildren(avatar('account', accountName(a)));
  kick();
}

export async function refreshChat(gen) {
  const openid = state.openid;
  let after = state.lastSeq;
  for (const [seq, e] of state.entries) {
    if (e.callback && (e.callback.status === 'pending' || e.callback.status === 'retrying')) after = Math.min(after, seq - 1);
  }
  const [entries, info] = await Promise.all([
    api('GET', `/clients/${enc(openid)}/log?after=${after}`),
    api('GET', `/clients/${enc(openid)}`),
  ]);
  if (gen !== pollGen) return;
  const firstLoad = state.info === null;
  state.info = info;
  renderInfo();
  const body = $('chat-body');
  const atBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 80;
  let mineAdded = false;
  for (const e of entries) {
    const old = state.entries.get(e.seq);
    if (old && JSON.stringify(old.callback) === JSON.stringify(e.callback)) continue;
    state.entries.set(e.seq, e);
    if (old) {
      const node = renderEntry(e);
      state.nodes.get(e.seq).replaceWith(node);
      state.nodes.set(e.seq, node);
    } else {
      appendEntry(e);
      if (e.direction === 'in') mineAdded = true;
    }
    state.lastSeq = Math.max(state.lastSeq, e.seq);
  }
  if (entries.length && (atBottom || mineAdded || firstLoad)) scrollToBottom();
  if (firstLoad) focusComposer();
}

export function scrollToBottom() {
  const body = $('chat-body');
  body.scrollTop = body.scrollHeight;
}

function renderInfo() {
  const info = state.info;
  if (!info) return;
  $('follow-card').hidden = info.subscribed;
  $('typing').hidden = !info.typing;
  updateComposer();
  if ($('dlg-info').open) fillInfoDialog();
}

export function updateComposer() {
  const following = !!(state.info && state.info.subscribed);
  const input = $('text');
  input.disabled = !following;
  input.placeholder = following ? '' : t('placeholderFollow');
  $('plus').disabled = !following;
  const hasText = input.value.trim() !== '';
  $('send').hidden = !hasText;
  $('plus').hidden = hasText;
  if (!following) closePlus();
}

function focusComposer() {
  if (state.info && state.info.subscribed) $('text').focus();
  else $('follow').focus();
}

export function renderAll() {
  if (state.screen === 'chat') {
    const list = $('messages');
    list.replaceChildren();
    state.nodes.clear();
    state.lastTime = 0;
    for (const e of state.entries.values()) appendEntry(e);
    updateComposer();
  } else {
    state.clientsKey = '';
    renderClients();
  }
  renderAccountBar();
  $('sb-time').textContent = fmtTime(simNow(), false);
}

function appendEntry(e) {
  const list = $('messages');
  const when = new Date(e.time).getTime();
  if (!state.lastTime || when - state.lastTime > TIME_GAP_MS) {
    list.append(h('li', { class: 'time-sep', 'aria-hidden': 'true', text: fmtWhen(e.time) }));
  }
  state.lastTime = when;
  const node = renderEntry(e);
  state.nodes.set(e.seq, node);
  list.append(node);
}
