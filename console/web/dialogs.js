// Dialogs: transfer to a colleague, the personal QR code, one's own
// account (changing the password), and the keyboard shortcuts.

import { $, h, clear } from './dom.js';
import { api, ApiError, convPath, setCSRF } from './api.js';
import { t } from './i18n.js';
import { state, emit, employeeName } from './store.js';
import { refresh as refreshList } from './inbox.js';

// ---------------------------------------------------------------- transfer

export function openTransfer() {
  const conv = state.open;
  if (!conv) return;
  const c = state.convs.get(conv) || {};
  const sel = clear($('transfer-to'));
  // Conversations are served by agents: only they can take one over.
  const colleagues = state.employees.filter((e) => e.id !== c.employee && (e.role || 'agent') === 'agent');
  for (const e of colleagues) sel.append(h('option', { value: e.id }, e.name && e.name !== e.id ? `${e.name} (${e.id})` : e.id));
  $('transfer-note').value = '';
  const err = $('transfer-error');
  err.hidden = colleagues.length > 0;
  err.textContent = colleagues.length ? '' : t('noColleagues');
  $('transfer-submit').disabled = !colleagues.length;
  $('dlg-transfer').dataset.conv = conv;
  $('dlg-transfer').showModal();
  sel.focus();
}

async function submitTransfer(e) {
  e.preventDefault();
  const dlg = $('dlg-transfer');
  const conv = dlg.dataset.conv;
  const to = $('transfer-to').value;
  if (!to) return;
  $('transfer-submit').disabled = true;
  try {
    await api('POST', convPath(conv, '/transfer'), { json: { to, note: $('transfer-note').value } });
    dlg.close();
    const c = state.convs.get(conv);
    if (c) c.employee = to;
    emit('toast', { text: t('transferDone', { name: employeeName(to) }) });
    emit('transferred', conv);
    refreshList();
  } catch (err) {
    const el = $('transfer-error');
    el.hidden = false;
    el.textContent = err instanceof ApiError && err.status === 0 ? t('cannotReach') : err.message;
  } finally {
    $('transfer-submit').disabled = false;
  }
}

// ---------------------------------------------------------------- QR code

let qrURL = '';

export function openQR() {
  const sel = clear($('qr-account'));
  const accounts = [...new Set([...(state.me.accounts || []), ...state.accounts])].sort();
  for (const a of accounts) sel.append(h('option', { value: a }, a));
  $('dlg-qr').showModal();
  if (accounts.length) loadQR(accounts[0]);
  else showQRStatus(t('qrNoAccount'));
}

function showQRStatus(text) {
  $('qr-img').hidden = true;
  $('qr-status').textContent = text;
  $('qr-download').hidden = true;
}

async function loadQR(account) {
  showQRStatus(t('loading'));
  if (qrURL) { URL.revokeObjectURL(qrURL); qrURL = ''; }
  try {
    const res = await fetch(`/api/me/qrcode?account=${encodeURIComponent(account)}`, { credentials: 'same-origin' });
    if (!res.ok) {
      let msg = `HTTP ${res.status}`;
      try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
      throw new Error(msg);
    }
    qrURL = URL.createObjectURL(await res.blob());
    const img = $('qr-img');
    img.src = qrURL;
    img.alt = t('qrAlt', { account });
    img.hidden = false;
    $('qr-status').textContent = t('qrScene', { scene: `emp:${state.me.id}` });
    const dl = $('qr-download');
    dl.href = qrURL;
    dl.download = `qrcode-${state.me.id}-${account}.png`;
    dl.hidden = false;
  } catch (e) {
    showQRStatus(t('qrFailed', { why: e.message }));
  }
}

// ---------------------------------------------------------------- set up

export function openHelp() {
  if (!$('dlg-help').open) $('dlg-help').showModal();
}

export function anyDialogOpen() {
  return [...document.querySelectorAll('dialog')].some((d) => d.open);
}

// ---------------------------------------------------------------- my account

function openAccount() {
  const me = state.me;
  $('account-who').textContent = `${me.name || me.id} · ${me.id} · ${t(`role_${me.role}`)}`;
  for (const id of ['pw-current', 'pw-new', 'pw-confirm']) $(id).value = '';
  $('pw-error').hidden = true;
  $('dlg-account').showModal();
  $('pw-current').focus();
}

async function submitPassword(e) {
  e.preventDefault();
  const err = $('pw-error');
  const say = (text) => { err.hidden = false; err.textContent = text; };
  const current = $('pw-current').value;
  const next = $('pw-new').value;
  if ([...next].length < 10) return say(t('pwTooShort'));
  if (next !== $('pw-confirm').value) return say(t('pwMismatch'));
  $('pw-submit').disabled = true;
  try {
    // The session begun with the old password ends; this page goes on
    // in the new one the answer names.
    const change = api('POST', '/api/me/password', { json: { current, new: next } });
    state.credentialChange = change.catch(() => {});
    const r = await change;
    if (r && r.csrf) setCSRF(r.csrf);
    $('dlg-account').close();
    emit('toast', { text: t('pwChanged') });
  } catch (x) {
    say(x instanceof ApiError && x.status === 0 ? t('cannotReach') : x.message);
  } finally {
    state.credentialChange = null;
    $('pw-submit').disabled = false;
  }
}

export function setupDialogs() {
  $('form-transfer').addEventListener('submit', submitTransfer);
  $('transfer-cancel').addEventListener('click', () => $('dlg-transfer').close());
  $('act-transfer').addEventListener('click', openTransfer);
  $('d-transfer').addEventListener('click', openTransfer);
  $('nav-qr').addEventListener('click', openQR);
  $('qr-account').addEventListener('change', (e) => loadQR(e.target.value));
  $('nav-help').addEventListener('click', openHelp);
  $('nav-account').addEventListener('click', openAccount);
  $('form-password').addEventListener('submit', submitPassword);
  $('pw-cancel').addEventListener('click', () => $('dlg-account').close());
  // Show the platform's modifier key in the help.
  if (/Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent)) {
    for (const k of document.querySelectorAll('.mod-key')) k.textContent = '⌘';
  }
}
