// wxsim phone page: one person plays a simulated WeChat client of an
// Official Account, through the simulator's admin API (/sim/api/). Plain
// ES module, no framework, no build step.
//
// The page holds no truth of its own: the client's conversation is the
// simulator's log of that client (GET /sim/api/clients/{openid}/log), polled
// about once a second. Entries whose callback to the relay is still in
// flight are fetched again until they settle, so "sending", "retrying",
// "delivered" and "failed" follow the simulator's own record.
//
// This module wires the page up and starts it; each module beside it does
// one job, in the order the page is built: strings.js, api.js, helpers.js,
// clock.js, state.js, polling.js, routing.js, clients.js, chat.js,
// entries.js, actions.js, plus.js, dialogs.js, scan.js. h() and request()
// are the console's (lib/, from console/webassets).

import { $ } from './lib/dom.js';
import { lang, t, applyI18n, chooseLang } from './strings.js';
import { api } from './api.js';
import { toast } from './helpers.js';
import { refreshClock } from './clock.js';
import { state } from './state.js';
import { kick } from './polling.js';
import { go, route, loadAccounts } from './routing.js';
import { newClient } from './clients.js';
import { updateComposer, renderAll } from './chat.js';
import { act, sendText, sendFile } from './actions.js';
import { openPlus, closePlus } from './plus.js';
import { openDialog, fillInfoDialog } from './dialogs.js';
import { openScan, scan } from './scan.js';

function wire() {
  $('lang-toggle').addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh'));
  $('info-lang').addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh'));
  $('new-client').addEventListener('click', newClient);
  $('new-client-2').addEventListener('click', newClient);
  $('scan-new').addEventListener('click', async () => {
    if (await newClient()) openScan();
  });
  $('account').addEventListener('change', (ev) => go(ev.target.value));
  $('create-account').addEventListener('click', () => {
    $('acct-name').value = 'Acme Wealth';
    $('account-error').hidden = true;
    openDialog('dlg-account', createAccount);
  });
  $('back').addEventListener('click', () => go(state.appid));
  $('more').addEventListener('click', () => {
    fillInfoDialog();
    openDialog('dlg-info');
  });
  $('info-scan').addEventListener('click', () => {
    $('dlg-info').close();
    openScan();
  });
  $('info-follow').addEventListener('click', () => {
    $('dlg-info').close();
    act('subscribe');
  });
  $('info-unfollow').addEventListener('click', () => {
    $('dlg-info').close();
    act('unsubscribe');
  });
  $('follow').addEventListener('click', async () => {
    await act('subscribe');
    $('text').focus();
  });
  $('follow-scan').addEventListener('click', openScan);
  $('qr-paste-scan').addEventListener('click', () => scan($('qr-paste').value));
  $('qr-paste').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.isComposing) {
      ev.preventDefault();
      scan($('qr-paste').value);
    }
  });

  const input = $('text');
  input.addEventListener('input', updateComposer);
  input.addEventListener('keydown', (ev) => {
    // Enter sends; not while an input method is composing (Chinese input).
    if (ev.key === 'Enter' && !ev.isComposing && !ev.shiftKey) {
      ev.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = input.value;
    if (text.trim() === '' || input.disabled) return;
    input.value = '';
    updateComposer();
    input.focus();
    sendText(text);
  });
  $('plus').addEventListener('click', () => ($('plus-panel').hidden ? openPlus() : closePlus()));
  $('screen-chat').addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && !$('plus-panel').hidden) {
      closePlus();
      $('plus').focus();
    }
  });

  $('act-album').addEventListener('click', () => $('file-image').click());
  $('file-image').addEventListener('change', (ev) => {
    sendFile(ev.target.files[0], 'image');
    ev.target.value = '';
    closePlus();
  });
  $('act-file').addEventListener('click', () => $('file-any').click());
  $('file-any').addEventListener('change', (ev) => {
    sendFile(ev.target.files[0], 'file');
    ev.target.value = '';
    closePlus();
  });
  $('act-sample').addEventListener('click', () => {
    closePlus();
    act('messages', { msgtype: 'image' });
  });
  $('act-voice').addEventListener('click', () => {
    closePlus();
    act('messages', { msgtype: 'voice', recognition: t('sampleVoice') });
  });
  $('act-video').addEventListener('click', () => {
    closePlus();
    act('messages', { msgtype: 'video' });
  });
  $('act-location').addEventListener('click', () => {
    $('loc-label').value = t('sampleLocation');
    $('loc-lat').value = '31.2397';
    $('loc-lng').value = '121.4998';
    closePlus();
    openDialog('dlg-location', () =>
      act('messages', {
        msgtype: 'location',
        label: $('loc-label').value,
        location_x: Number($('loc-lat').value),
        location_y: Number($('loc-lng').value),
        scale: 15,
      }),
    );
  });
  $('act-link').addEventListener('click', () => {
    $('link-title').value = t('sampleLinkTitle');
    $('link-desc').value = t('sampleLinkDesc');
    $('link-url').value = 'https://example.com/outlook';
    closePlus();
    openDialog('dlg-link', () =>
      act('messages', { msgtype: 'link', title: $('link-title').value, description: $('link-desc').value, url: $('link-url').value }),
    );
  });
  $('act-menu').addEventListener('click', () => {
    $('menu-key').value = 'MENU_CONTACT_ADVISOR';
    closePlus();
    openDialog('dlg-menu', () => act('events', { event: 'CLICK', key: $('menu-key').value }));
  });

  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) kick();
  });
}

function setLang(l) {
  chooseLang(l);
  applyI18n();
  renderAll();
}

async function createAccount() {
  try {
    const a = await api('POST', '/accounts', {
      name: $('acct-name').value,
      callback_url: $('acct-callback').value,
      mode: $('acct-mode').value,
    });
    await loadAccounts();
    go(a.appid);
  } catch (e) {
    toast(e.message);
  }
}

applyI18n();
wire();
refreshClock();
setInterval(refreshClock, 30_000);
route();
