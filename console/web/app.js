// wechat-relay console: the page employees work in and supervisors watch
// through. Plain ES modules, no framework, no build step; the relay
// embeds and serves these files.
//
// Boot: GET /api/me decides between the sign-in form and the console.
// The console holds the conversation list (GET /api/conversations), the
// open conversation (history from the archive), and one WebSocket that
// brings every new message and delivery status; after a reconnection it
// resumes each held conversation from its last seq.
//
// Message bodies are never written to the browser's console.

import { $, h } from './dom.js';
import { api, ApiError, setCSRF, whenSignedOut, convPath } from './api.js';
import { t, applyStatic, setLang, getLang, onLangChange } from './i18n.js';
import { state, emit, on, isSupervisor, employeeName } from './store.js';
import { Live } from './live.js';
import { setupInbox, load as loadList, refresh as refreshList, render as renderList, applyMessage, neighbour } from './inbox.js';
import { setupThread, openThread, closeThread, onMessage, onStatus, renderHeader, renderThread, fetchWindow, mayManage } from './thread.js';
import { setupComposer, updateComposer, popoverOpen } from './composer.js';
import { setupDialogs, openHelp, anyDialogOpen } from './dialogs.js';
import { setupCompliance, startCompliance, rerenderCompliance, showTool, toolOf, onAlert, focusMessage } from './compliance.js';
import { setupAdmin, startAdmin, rerenderAdmin, showAdmin, adminOf } from './admin.js';
import { setupProfile } from './profile.js';
import { setupReports, startReports, rerenderReports, showReports, reportOf } from './reports.js';

const live = new Live({
  onFrame,
  onState,
  resumeList: () => [...state.threads.values()].filter((th) => th.loaded && !th.forbidden).map((th) => [th.conv, th.maxSeq]),
  onOpen: () => {
    if (reconnected) {
      refreshList(0);
      if (state.open) fetchWindow(state.open);
    }
    reconnected = true;
  },
  // The socket's session is over. The page may have another one (a
  // password change starts a new session): it asks; a 401 signs it out
  // (api's whenSignedOut), anything else reconnects.
  // The socket's credential ended. It may be this page's own password
  // change, whose answer (the new session) can arrive after the close:
  // ask who we are only once it has.
  onSignedOut: () => {
    Promise.resolve(state.credentialChange)
      .then(() => api('GET', '/api/me'))
      .then(() => live.retry(), () => live.retry());
  },
});
let reconnected = false;

// ---------------------------------------------------------------- frames

function onFrame(f) {
  switch (f.type) {
    case 'message': {
      const m = f.message;
      if (!m || !m.conv) return;
      if (m.account) state.accounts.add(m.account);
      const c = state.convs.get(m.conv);
      const known = c && c.last_seq && m.seq <= c.last_seq;
      const isNew = onMessage(m) && !known;
      if (!isNew) return;
      const watching = state.open === m.conv && document.visibilityState === 'visible';
      if (!applyMessage(m, m.direction === 'in' && !watching)) refreshList();
      if (m.direction === 'internal') {
        if (m.kind === 'transfer') transferred(m);
        refreshList(400);
        if (state.open === m.conv) { renderHeader(); updateComposer(); }
      }
      renderList();
      return;
    }
    case 'status':
      if (f.conv && f.status) onStatus(f.conv, f.status);
      return;
    case 'caught_up':
      return;
    case 'alert':
      onAlert(f.alert);
      return;
    case 'error':
      if (f.conv && /forbidden|not assigned/i.test(f.error || '')) {
        // Not (or no longer) this employee's: stop resuming it.
        const th = state.threads.get(f.conv);
        if (th) th.forbidden = true;
        if (state.open === f.conv) {
          $('thread-error').hidden = false;
          $('thread-error').textContent = t('notYours');
          updateComposer();
        }
      } else if (f.conv) {
        // e.g. the archive was unavailable during a resume: try again soon.
        setTimeout(() => { const th = state.threads.get(f.conv); if (th && th.loaded) live.resume(f.conv, th.maxSeq); }, 3000);
      }
  }
}

// transferred handles a transfer seen on the socket: an agent whose
// conversation went to a colleague loses it.
function transferred(m) {
  const a = m.attrs || {};
  if (isSupervisor() || a.to === state.me.id) return;
  state.convs.delete(m.conv);
  const th = state.threads.get(m.conv);
  if (th) th.forbidden = true; // no longer hers to read or resume
  // Her own transfers are announced by the dialog.
  if (a.by !== state.me.id) emit('toast', { text: t('transferredAway', { by: employeeName(a.by), to: employeeName(a.to) }) });
  if (state.open === m.conv) go(null);
}

function onState(s) {
  state.live = s;
  document.body.dataset.live = s;
  const banner = $('live-banner');
  banner.hidden = s !== 'offline';
  banner.textContent = navigator.onLine === false ? t('offlineBanner') : t('reconnecting');
  $('live-dot').title = t(`live_${s}`);
}

// ---------------------------------------------------------------- routing

function route() {
  if (!state.me) return;
  const admin = adminOf(location.hash);
  const report = admin ? '' : reportOf(location.hash);
  const tool = admin || report ? '' : toolOf(location.hash);
  showTool(tool);
  showAdmin(admin);
  showReports(report);
  if (tool || admin || report) {
    document.body.dataset.view = 'tool';
    if (state.open) closeThread();
    return;
  }
  // #/c/<conv>, or #/c/<conv>/at/<seq> (a search result: that message).
  const m = /^#\/c\/([^/]+)(?:\/at\/(\d+))?$/.exec(location.hash);
  if (m) {
    const conv = decodeURIComponent(m[1]);
    document.body.dataset.view = 'conv';
    if (state.open !== conv) openThread(conv);
    if (m[2]) focusMessage(conv, Number(m[2]));
  } else {
    document.body.dataset.view = 'list';
    if (state.open) closeThread();
  }
  renderList();
}

export function go(conv) {
  location.hash = conv ? `#/c/${encodeURIComponent(conv)}` : '#/';
}

// ---------------------------------------------------------------- sign-in

let lockTimer = 0;

function showSignin(message) {
  $('boot').hidden = true;
  $('shell').hidden = true;
  $('signin').hidden = false;
  setSigninError(message || '');
  $('signin-password').value = '';
  if (!passwordSignIn) $('signin-sso-button').focus();
  else ($('signin-id').value ? $('signin-password') : $('signin-id')).focus();
}

// The ways of signing in the relay offers (GET /api/sign-in): the
// password form unless it is switched off, and the single sign-on
// button when an identity provider is configured.
let passwordSignIn = true;

async function signinOptions() {
  try {
    const o = await api('GET', '/api/sign-in', { quiet401: true });
    passwordSignIn = o.password !== false;
    const sso = (o.providers || [])[0];
    $('signin-password-fields').hidden = !passwordSignIn;
    $('signin-submit').hidden = !passwordSignIn;
    $('signin-or').hidden = !passwordSignIn;
    $('signin-sso').hidden = !sso;
    if (sso) $('signin-sso-button').href = sso.url;
  } catch { /* an older relay: the password form, as before */ }
}

// ssoError is what the identity provider's callback sent the page back
// with (?sso_error=reason), explained; the address is cleaned of it.
function ssoError() {
  const u = new URL(location.href);
  const reason = u.searchParams.get('sso_error');
  if (reason === null) return '';
  u.searchParams.delete('sso_error');
  history.replaceState(null, '', u.pathname + u.search + u.hash);
  const key = `ssoError_${reason}`;
  const text = t(key);
  return text === key ? t('ssoError') : text;
}

function setSigninError(text) {
  $('signin-error').hidden = !text;
  $('signin-error').textContent = text;
}

async function signIn(e) {
  e.preventDefault();
  const id = $('signin-id').value.trim();
  const password = $('signin-password').value;
  if (!id || !password) { setSigninError(t('signinMissing')); return; }
  $('signin-submit').disabled = true;
  setSigninError('');
  try {
    const me = await api('POST', '/api/login', { json: { id, password }, quiet401: true });
    $('signin-password').value = '';
    start(me);
  } catch (err) {
    if (err instanceof ApiError && err.status === 429) {
      lockout(err.body.retry_after_seconds || err.retryAfter || 60);
      return;
    }
    setSigninError(err instanceof ApiError && err.status === 401 ? t('signinWrong')
      : err instanceof ApiError && err.status === 0 ? t('cannotReach') : err.message);
  } finally {
    if (!lockTimer) $('signin-submit').disabled = false;
  }
}

// lockout shows how long until the employee may try again.
function lockout(seconds) {
  const until = Date.now() + seconds * 1000;
  clearInterval(lockTimer);
  const tick = () => {
    const s = Math.ceil((until - Date.now()) / 1000);
    if (s <= 0) {
      clearInterval(lockTimer);
      lockTimer = 0;
      $('signin-submit').disabled = false;
      setSigninError('');
      return;
    }
    const mm = Math.floor(s / 60);
    const ss = String(s % 60).padStart(2, '0');
    setSigninError(t('signinLocked', { wait: `${mm}:${ss}` }));
  };
  $('signin-submit').disabled = true;
  tick();
  lockTimer = setInterval(tick, 1000);
}

async function signOut() {
  let end = '';
  try {
    const r = await api('POST', '/api/logout');
    end = (r && r.end_session_url) || '';
  } catch { /* signed out either way */ }
  signedOut();
  // Signed in through the identity provider: its own session goes on;
  // offer to end it too.
  $('signin-idp-signout').hidden = !end;
  if (end) $('signin-idp-signout-link').href = end;
}

function signedOut(message) {
  live.stop();
  reconnected = false;
  state.me = null;
  state.convs = new Map();
  state.threads = new Map();
  state.open = null;
  setCSRF('');
  showAdmin(false);
  showReports('');
  location.hash = '';
  showSignin(message);
}

// ---------------------------------------------------------------- console

async function start(me) {
  state.me = me;
  $('signin-idp-signout').hidden = true;
  setCSRF(me.csrf);
  document.body.dataset.role = me.role;
  $('boot').hidden = true;
  $('signin').hidden = true;
  $('shell').hidden = false;
  const av = $('me-avatar');
  av.textContent = (me.name || me.id).slice(0, 1).toUpperCase();
  av.title = `${me.name || me.id} (${t(`role_${me.role}`)})`;
  $('list-me').textContent = me.name || me.id;
  $('sup-filters').hidden = !isSupervisor();
  labelList();
  await Promise.all([
    api('GET', '/api/employees').then((r) => { state.employees = r.employees || []; }).catch(() => {}),
    api('GET', '/api/canned-replies').then((r) => { state.canned = r.replies || []; }).catch(() => {}),
  ]);
  emit('employees');
  startCompliance();
  startAdmin();
  startReports();
  live.start();
  await loadList();
  route();
}

function labelList() {
  $('list-title').textContent = isSupervisor() ? t('liveView') : t('inbox');
}

function rerender() {
  applyStatic();
  if (!state.me) return;
  labelList();
  onState(state.live);
  renderList();
  if (state.open) { renderHeader(); renderThread(false); updateComposer(); }
  rerenderCompliance();
  rerenderAdmin();
  rerenderReports();
}

function resolveOrReopen(action) {
  const conv = state.open;
  if (!conv || !mayManage(conv)) return;
  api('POST', convPath(conv, `/${action}`), { json: {} }).then(() => {
    const c = state.convs.get(conv);
    if (c) c.status = action === 'resolve' ? 'resolved' : 'open';
    renderHeader();
    renderList();
    emit('toast', { text: action === 'resolve' ? t('resolvedToast') : t('reopenedToast') });
  }, (e) => emit('toast', { kind: 'error', text: e.message }));
}

// ---------------------------------------------------------------- keys

function onKey(e) {
  if (!state.me) return;
  if (e.altKey && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
    const next = neighbour(e.key === 'ArrowDown' ? 1 : -1);
    if (next) go(next);
    e.preventDefault();
    return;
  }
  const typing = e.target.closest && e.target.closest('input, textarea, select, [contenteditable]');
  if (e.key === '?' && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    openHelp();
    e.preventDefault();
    return;
  }
  if (e.key === 'Escape' && !anyDialogOpen() && !popoverOpen()) {
    if (document.body.classList.contains('details-open') && NARROW.matches) {
      toggleDetails(false);
    } else if (document.body.dataset.view === 'conv' && matchMedia('(max-width: 759px)').matches) {
      go(null);
    }
  }
}

// The details pane: beside the conversation on wide screens (remembered),
// over it on narrower ones (opened on demand).
const NARROW = matchMedia('(max-width: 1099px)');

function toggleDetails(open, remember = true) {
  document.body.classList.toggle('details-open', open);
  $('details-pane').hidden = !open;
  $('act-details').setAttribute('aria-pressed', String(open));
  if (remember && !NARROW.matches) localStorage.setItem('wr.details', open ? '1' : '0');
}

function defaultDetails() {
  toggleDetails(!NARROW.matches && localStorage.getItem('wr.details') !== '0', false);
}

// ---------------------------------------------------------------- toasts

function toast({ text, kind }) {
  const el = h('div', { class: `toast${kind === 'error' ? ' toast-error' : kind === 'alert' ? ' toast-alert' : ''}` }, text);
  $('toasts').append(el);
  setTimeout(() => el.classList.add('is-leaving'), 3500);
  setTimeout(() => el.remove(), 4000);
}

// ---------------------------------------------------------------- boot

async function boot() {
  applyStatic();
  $('signin-form').addEventListener('submit', signIn);
  for (const b of document.querySelectorAll('.lang-toggle')) b.addEventListener('click', () => setLang(getLang() === 'zh' ? 'en' : 'zh'));
  onLangChange(rerender);
  $('nav-signout').addEventListener('click', signOut);
  $('nav-inbox').addEventListener('click', () => go(null));
  for (const tool of ['search', 'alerts', 'audit']) $(`nav-${tool}`).addEventListener('click', () => { location.hash = `#/${tool}`; });
  $('conv-back').addEventListener('click', () => go(null));
  $('act-details').addEventListener('click', () => toggleDetails(!document.body.classList.contains('details-open')));
  $('details-close').addEventListener('click', () => toggleDetails(false));
  $('act-resolve').addEventListener('click', () => resolveOrReopen('resolve'));
  $('act-reopen').addEventListener('click', () => resolveOrReopen('reopen'));
  document.addEventListener('keydown', onKey);
  addEventListener('hashchange', route);
  on('toast', toast);
  on('transferred', (conv) => {
    if (!isSupervisor() && state.open === conv) { state.convs.delete(conv); go(null); }
  });
  whenSignedOut(() => { if (state.me) signedOut(t('sessionEnded')); });
  setupInbox();
  setupThread(live);
  setupComposer();
  setupDialogs();
  setupProfile();
  on('profile', (conv) => { if (state.open === conv) renderHeader(); });
  setupCompliance();
  setupAdmin();
  setupReports();
  defaultDetails();
  NARROW.addEventListener('change', defaultDetails);

  const options = signinOptions();
  const refused = ssoError();
  try {
    const me = await api('GET', '/api/me', { quiet401: true });
    start(me);
  } catch (e) {
    await options;
    showSignin(refused || (e instanceof ApiError && e.status === 401 ? '' : e instanceof ApiError && e.status === 0 ? t('cannotReach') : e.message));
  }
}

boot();
