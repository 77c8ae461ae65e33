// The conversation list: an employee's inbox, or a supervisor's live
// view of every conversation. Kept up to date by the WebSocket; fetched
// again after a reconnection and after transfers, resolves and reopens.

import { $, h, clear, svgIcon, ICONS } from './dom.js';
import { api, ApiError } from './api.js';
import { t } from './i18n.js';
import { state, emit, isSupervisor, employeeName, on as onStore } from './store.js';
import { shortID, avatarOf, listTime, left, splitConv, windowReason } from './format.js';
import { getLang } from './i18n.js';
import { profileMatches, tagChips, knownTags } from './profile.js';

let refreshTimer = 0;
let inflight = null;
let listError = '';
// teams: the teams a supervisor may filter the list by (GET /api/teams);
// teamFilter: the one chosen ('' for all).
let teams = [];
let teamFilter = '';
// tagFilter: the client tag the list is filtered by ('' for none); the
// relay filters (GET /api/conversations?tag=), live updates too.
let tagFilter = '';

// refresh fetches the list again (debounced: many events, one request).
export function refresh(delay = 250) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(load, delay);
}

export async function load() {
  clearTimeout(refreshTimer);
  if (inflight) inflight.abort();
  const ctl = new AbortController();
  inflight = ctl;
  const q = new URLSearchParams({ status: state.filter.status });
  if (isSupervisor()) {
    if (state.filter.employee) q.set('employee', state.filter.employee);
    if (state.filter.account) q.set('account', state.filter.account);
    if (teamFilter) q.set('team', teamFilter);
  }
  if (tagFilter) q.set('tag', tagFilter);
  try {
    const res = await api('GET', `/api/conversations?${q}`, { signal: ctl.signal });
    const next = new Map();
    for (const c of (res && res.conversations) || []) {
      const old = state.convs.get(c.conv);
      // The socket may have brought newer messages than the list knows.
      if (old && old.last_seq > c.last_seq) {
        c.last_seq = old.last_seq;
        c.last_message = old.last_message;
      }
      next.set(c.conv, c);
      if (c.account) state.accounts.add(c.account);
    }
    // The open conversation stays even when the filter hides it.
    if (state.open && !next.has(state.open) && state.convs.has(state.open)) next.set(state.open, state.convs.get(state.open));
    state.convs = next;
    listError = '';
  } catch (e) {
    if (e.name === 'AbortError') return;
    listError = e instanceof ApiError && e.status === 0 ? t('cannotReach') : e.message;
  } finally {
    if (inflight === ctl) inflight = null;
  }
  render();
  emit('convs');
}

// visible is the list as shown: filtered and newest first.
export function visible() {
  const q = state.filter.q.trim().toLowerCase();
  const st = state.filter.status;
  return [...state.convs.values()]
    .filter((c) => st === 'all' || (c.status || 'open') === st || c.conv === state.open)
    .filter((c) => !isSupervisor() || !state.filter.employee || c.employee === state.filter.employee || c.conv === state.open)
    .filter((c) => !isSupervisor() || !state.filter.account || c.account === state.filter.account || c.conv === state.open)
    .filter((c) => !isSupervisor() || !teamFilter || teamHas(teamFilter, c.employee) || c.conv === state.open)
    .filter((c) => !tagFilter || ((c.profile && c.profile.tags) || []).includes(tagFilter) || c.conv === state.open)
    .filter((c) => !q || c.conv.toLowerCase().includes(q) || employeeName(c.employee).toLowerCase().includes(q) || profileMatches(c.conv, q))
    .sort((a, b) => activity(b) - activity(a) || (a.conv < b.conv ? -1 : 1));
}

function teamHas(id, employee) {
  const tm = teams.find((x) => x.id === id);
  return !tm || (tm.members || []).includes(employee);
}

function activity(c) {
  const m = c.last_message;
  return m ? new Date(m.accepted_at || m.created_at).getTime() || 0 : 0;
}

// applyMessage updates the list from a live message frame; false when
// the conversation is not listed (the caller fetches the list again).
export function applyMessage(m, unreadBump) {
  const c = state.convs.get(m.conv);
  if (!c) return false;
  if (!c.last_seq || m.seq > c.last_seq) {
    c.last_seq = m.seq;
    c.last_message = m;
    c.freshUntil = Date.now() + 1500; // drawn once with a short highlight
  }
  if (unreadBump) c.unread = (c.unread || 0) + 1;
  if (m.direction === 'internal') {
    if (m.kind === 'resolve') c.status = 'resolved';
    if (m.kind === 'reopen') c.status = 'open';
    if (m.kind === 'transfer' && m.attrs && m.attrs.to) c.employee = m.attrs.to;
  }
  return true;
}

export function preview(m) {
  if (!m) return '';
  const a = m.attrs || {};
  let body;
  switch (m.kind) {
    case 'text': body = m.text || ''; break;
    case 'image': body = t('pvImage'); break;
    case 'voice': body = t('pvVoice'); break;
    case 'video': case 'shortvideo': body = t('pvVideo'); break;
    case 'file': body = `${t('pvFile')} ${a.file_name || a.title || ''}`; break;
    case 'location': body = `${t('pvLocation')} ${a.label || ''}`; break;
    case 'link': body = `${t('pvLink')} ${a.title || ''}`; break;
    case 'event': body = eventWords(m); break;
    case 'note': body = `${t('noteLabel')}: ${a.text || m.text || ''}`; break;
    case 'transfer': body = t('transferredTo', { to: employeeName(a.to) }); break;
    case 'resolve': body = t('resolvedBy', { by: employeeName(a.by) }); break;
    case 'reopen': body = t('reopenedBy', { by: employeeName(a.by) }); break;
    default: body = m.text || m.kind;
  }
  if (m.direction === 'out') {
    const by = a.sent_by;
    if (!by) return `${t('botPrefix')}: ${body}`;
    return `${by === state.me.id ? t('you') : employeeName(by)}: ${body}`;
  }
  return body;
}

// eventWords says what a WeChat event means.
export function eventWords(m) {
  const key = m.event_key || '';
  switch (m.event) {
    case 'subscribe': {
      const emp = key.replace(/^qrscene_/, '');
      return emp.startsWith('emp:') ? t('evSubscribeQR', { emp: employeeName(emp.slice(4)) }) : t('evSubscribe');
    }
    case 'unsubscribe': return t('evUnsubscribe');
    case 'SCAN': return key.startsWith('emp:') ? t('evScanQR', { emp: employeeName(key.slice(4)) }) : t('evScan');
    case 'CLICK': return t('evClick', { key });
    case 'VIEW': return t('evView', { url: key });
    case 'LOCATION': return t('evLocation');
    case 'TEMPLATESENDJOBFINISH': return t('evTemplate', { status: (m.attrs && m.attrs.status) || '' });
    default: return t('evOther', { event: m.event || '?' });
  }
}

export function windowChip(w, compact) {
  if (!w) return null;
  if (w.open) {
    const l = w.closes_at ? left(w.closes_at) : '';
    const text = compact ? t('windowChip', { left: l || '–', n: w.sends_left ?? '–' }) : t('windowOpen', { left: l || '–', n: w.sends_left ?? '–' });
    const soon = w.closes_at && new Date(w.closes_at).getTime() - Date.now() < 4 * 3600e3;
    return h('span', { class: `wchip ${soon || w.sends_left === 0 ? 'wchip-warn' : 'wchip-ok'}`, title: t('windowTitle') }, svgIcon(ICONS.clock), text);
  }
  return h('span', { class: 'wchip wchip-closed', title: windowReason(w) }, svgIcon(ICONS.lock), t('windowClosed'));
}

const els = new Map(); // conv → li

export function render() {
  if (!state.me) return; // signed out meanwhile
  const ul = $('conv-list');
  const list = visible();
  const seen = new Set();
  let prev = null;
  for (const c of list) {
    seen.add(c.conv);
    const sig = JSON.stringify([getLang(), c.last_seq, c.unread, c.status, c.employee, c.window, c.conv === state.open, state.me.id, preview(c.last_message), listTime(c.last_message && c.last_message.accepted_at), c.window && c.window.closes_at && left(c.window.closes_at), c.profile]);
    let li = els.get(c.conv);
    if (!li || li._sig !== sig) {
      const n = item(c);
      n._sig = sig;
      if (li) li.replaceWith(n);
      li = n;
      els.set(c.conv, li);
    }
    const want = prev ? prev.nextSibling : ul.firstChild;
    if (want !== li) ul.insertBefore(li, want);
    prev = li;
  }
  for (const [conv, li] of els) if (!seen.has(conv)) { li.remove(); els.delete(conv); }
  const empty = $('list-empty');
  empty.hidden = list.length > 0 && !listError;
  empty.textContent = listError || (state.filter.status === 'resolved' ? t('noResolved') : isSupervisor() ? t('noConversationsSup') : t('noConversations'));
  empty.classList.toggle('is-error', !!listError);
  renderCounts();
}

function renderCounts() {
  let unread = 0;
  for (const c of state.convs.values()) unread += c.unread || 0;
  document.title = unread ? `(${unread}) ${t('appName')}` : t('appName');
}

function item(c) {
  const [account, openid] = splitConv(c.conv);
  const av = avatarOf(openid);
  const unread = c.unread || 0;
  const current = c.conv === state.open;
  const m = c.last_message;
  const fresh = c.freshUntil > Date.now() && !current;
  return h('li', { class: `conv-item${unread ? ' has-unread' : ''}${current ? ' is-current' : ''}${fresh ? ' is-fresh' : ''}`, dataset: { conv: c.conv, status: c.status || 'open', unread } },
    h('a', { class: 'conv-link', href: `#/c/${encodeURIComponent(c.conv)}`, 'aria-current': current ? 'page' : false },
      h('span', { class: `avatar ${av.hue}`, 'aria-hidden': 'true' }, av.letters),
      h('span', { class: 'ci-main' },
        h('span', { class: 'ci-top' },
          h('span', { class: 'ci-name', title: c.profile && c.profile.remark ? `${openid} · ${c.profile.remark}` : openid }, c.profile && c.profile.name ? c.profile.name : shortID(openid)),
          h('span', { class: 'ci-account' }, c.account || account),
          h('time', { class: 'ci-time', datetime: m && m.accepted_at }, m ? listTime(m.accepted_at || m.created_at) : '')),
        h('span', { class: `ci-preview${m && m.direction === 'internal' ? ' is-internal' : ''}` }, preview(m) || t('noMessagesYet')),
        h('span', { class: 'ci-bottom' },
          windowChip(c.window, true),
          c.profile && c.profile.tags && c.profile.tags.length ? h('span', { class: 'ci-tags' }, ...tagChips(c.profile.tags)) : null,
          (c.status || 'open') === 'resolved' ? h('span', { class: 'chip chip-resolved' }, t('resolved')) : null,
          isSupervisor() ? h('span', { class: 'ci-emp' }, c.employee ? employeeName(c.employee) : t('unassigned')) : null,
          unread ? h('span', { class: 'badge', 'aria-label': t('unreadCount', { n: unread }) }, unread > 99 ? '99+' : String(unread)) : null))));
}

// neighbour returns the conversation after (dir 1) or before (-1) the
// open one in the list as shown.
export function neighbour(dir) {
  const list = visible();
  if (!list.length) return null;
  const i = list.findIndex((c) => c.conv === state.open);
  if (i < 0) return list[dir > 0 ? 0 : list.length - 1].conv;
  const j = i + dir;
  return j >= 0 && j < list.length ? list[j].conv : null;
}

export function setupInbox() {
  for (const tab of document.querySelectorAll('#status-tabs .tab')) {
    tab.addEventListener('click', () => {
      state.filter.status = tab.dataset.status;
      for (const x of document.querySelectorAll('#status-tabs .tab')) x.setAttribute('aria-selected', String(x === tab));
      render();
      load();
    });
  }
  $('filter-q').addEventListener('input', (e) => { state.filter.q = e.target.value; render(); });
  $('filter-employee').addEventListener('change', (e) => { state.filter.employee = e.target.value; render(); load(); });
  $('filter-account').addEventListener('change', (e) => { state.filter.account = e.target.value; render(); load(); });
  $('filter-team').addEventListener('change', (e) => { teamFilter = e.target.value; render(); load(); });
  $('filter-tag').addEventListener('change', (e) => { tagFilter = e.target.value; render(); load(); });
  onStore('tags', fillTagFilter);
  onStore('profile', () => render());
  onStore('employees', fillFilters);
  onStore('employees', loadTeams);
  onStore('convs', fillFilters);
  // Times and windows age: redraw every half minute.
  setInterval(render, 30000);
}

// fillTagFilter offers the tags of the accounts the page knows; hidden
// while there are none.
function fillTagFilter() {
  const tags = knownTags();
  const sel = $('filter-tag');
  clear(sel).append(h('option', { value: '' }, t('allTags')), ...tags.map((x) => h('option', { value: x }, x)));
  if (tagFilter && !tags.includes(tagFilter)) sel.append(h('option', { value: tagFilter }, tagFilter));
  sel.value = tagFilter;
  $('tag-filters').hidden = tags.length === 0;
}

function fillFilters() {
  if (!isSupervisor()) return;
  const sel = $('filter-employee');
  const cur = sel.value;
  clear(sel).append(h('option', { value: '' }, t('allEmployees')),
    ...state.employees.filter((e) => e.role === 'agent' || !e.role).map((e) => h('option', { value: e.id }, e.name || e.id)));
  sel.value = cur;
  const acc = $('filter-account');
  const curA = acc.value;
  clear(acc).append(h('option', { value: '' }, t('allAccounts')), ...[...state.accounts].sort().map((a) => h('option', { value: a }, a)));
  acc.value = curA;
}

// loadTeams fills the team filter (supervisors and up); hidden when
// there are no teams, or the relay has none to give.
async function loadTeams() {
  const sel = $('filter-team');
  if (!isSupervisor()) { teams = []; teamFilter = ''; sel.hidden = true; return; }
  try {
    teams = ((await api('GET', '/api/teams')) || {}).teams || [];
  } catch {
    teams = [];
  }
  if (!state.me) return;
  const was = teamFilter;
  if (!teams.some((x) => x.id === teamFilter)) teamFilter = '';
  clear(sel).append(h('option', { value: '', dataset: { i18n: 'allTeams' } }, t('allTeams')),
    ...teams.map((x) => h('option', { value: x.id }, x.name || x.id)));
  sel.value = teamFilter;
  sel.hidden = teams.length === 0;
  if (was !== teamFilter) { render(); load(); }
}
