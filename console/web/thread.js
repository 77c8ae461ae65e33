// One conversation: its history from the archive (newest page first,
// older pages as the employee scrolls up), live messages and delivery
// statuses from the WebSocket, read marks, and the header's actions.

import { $, h, clear, svgIcon, ICONS } from './dom.js';
import { api, ApiError, convPath, mediaURL } from './api.js';
import { t } from './i18n.js';
import { state, thread, emit, on as onStore, managesAll, employeeName, deliveryOf } from './store.js';
import { avatarOf, splitConv, clock, dayLabel, fullTime, windowReason, deliveryReason } from './format.js';
import { getLang } from './i18n.js';
import { eventWords, windowChip, render as renderList } from './inbox.js';
import { clientLabel, profileOf, tagChips, renderProfileCard } from './profile.js';

const PAGE = 50;
let live = null; // the Live socket, set by setupThread

// mayWrite: the employee the conversation is assigned to. Supervisors
// watch read-only.
export function mayWrite(conv) {
  const c = state.convs.get(conv);
  return !!c && !!state.me && c.employee === state.me.id;
}

// mayManage: transfer, resolve and reopen (and notes).
export function mayManage(conv) {
  return mayWrite(conv) || managesAll();
}

export async function openThread(conv) {
  const th = thread(conv);
  th.touched = Date.now();
  state.open = conv;
  $('conv-empty').hidden = true;
  $('conv').hidden = false;
  $('thread-error').hidden = true;
  elsFor = null;
  pinned = true;
  clear($('msgs'));
  renderHeader();
  renderThread(true);
  emit('thread', conv);
  if (!th.loaded) await loadLatest(th);
  if (state.open !== conv) return;
  live.resume(conv, th.maxSeq);
  renderThread(true);
  fetchWindow(conv);
  markRead();
}

export function closeThread() {
  state.open = null;
  $('conv').hidden = true;
  $('conv-empty').hidden = false;
  emit('thread', null);
}

async function loadLatest(th) {
  const c = state.convs.get(th.conv);
  const last = c && c.last_seq ? c.last_seq : 0;
  th.loading = true;
  try {
    if (last) {
      const after = Math.max(0, last - PAGE);
      const res = await api('GET', convPath(th.conv, `/messages?after=${after}&limit=1000`));
      for (const m of res.messages || []) th.add(m);
      if (after === 0) th.complete = true;
    } else {
      // Not in the list (a link from elsewhere): read it all, oldest first.
      let after = 0;
      for (;;) {
        const res = await api('GET', convPath(th.conv, `/messages?after=${after}&limit=1000`));
        const ms = res.messages || [];
        for (const m of ms) th.add(m);
        if (ms.length < 1000) break;
        after = ms[ms.length - 1].seq;
      }
      th.complete = true;
    }
    th.loaded = true;
  } catch (e) {
    showError(th, e);
  } finally {
    th.loading = false;
  }
}

function showError(th, e) {
  if (state.open !== th.conv) return;
  const el = $('thread-error');
  el.hidden = false;
  if (e instanceof ApiError && e.status === 403) el.textContent = t('notYours');
  else if (e instanceof ApiError && e.status === 503) el.textContent = t('archiveDown');
  else if (e instanceof ApiError && e.status === 0) el.textContent = t('cannotReach');
  else el.textContent = e.message;
  th.forbidden = e instanceof ApiError && e.status === 403;
  emit('thread', th.conv);
}

export async function loadEarlier() {
  const th = state.threads.get(state.open);
  if (!th || th.loading || th.complete || !th.minSeq) return;
  th.loading = true;
  const scroller = $('thread');
  const before = scroller.scrollHeight - scroller.scrollTop;
  try {
    const after = Math.max(0, th.minSeq - 1 - PAGE);
    const limit = th.minSeq - 1 - after;
    if (limit > 0) {
      const res = await api('GET', convPath(th.conv, `/messages?after=${after}&limit=${limit}`));
      for (const m of res.messages || []) th.add(m);
    }
    if (after === 0) th.complete = true;
  } catch (e) {
    showError(th, e);
  } finally {
    th.loading = false;
  }
  if (state.open === th.conv) {
    renderThread(false);
    scroller.scrollTop = scroller.scrollHeight - before;
  }
}

// fillGap fetches messages the page missed (a live message whose seq is
// more than one above what it holds).
async function fillGap(th, from, to) {
  try {
    const res = await api('GET', convPath(th.conv, `/messages?after=${from}&limit=${Math.min(1000, to - from)}`));
    let changed = false;
    for (const m of res.messages || []) changed = th.add(m) || changed;
    if (changed && state.open === th.conv) renderThread(false);
  } catch { /* the next resume fills it */ }
}

// onMessage handles a message frame: into its thread if the page holds
// it, and into the list.
export function onMessage(m) {
  const th = state.threads.get(m.conv);
  let isNew = true;
  if (th && th.loaded) {
    const gapFrom = th.maxSeq;
    isNew = th.add(m);
    if (isNew && gapFrom && m.seq > gapFrom + 1) fillGap(th, gapFrom, m.seq - 1);
    if (isNew && state.open === m.conv) {
      renderThread(false);
      if (m.direction === 'in') fetchWindow(m.conv);
      if (m.direction === 'internal' || m.kind === 'event') { renderHeader(); emit('thread', m.conv); }
    }
  } else if (th) {
    isNew = th.add(m);
  }
  return isNew;
}

export function onStatus(conv, st) {
  const th = state.threads.get(conv);
  if (!th) return;
  if (th.setStatus(st) && state.open === conv) {
    renderThread(false);
    if (st.state === 'sent' || st.state === 'failed') fetchWindow(conv);
  }
}

export async function fetchWindow(conv) {
  const th = thread(conv);
  try {
    const w = await api('GET', convPath(conv, '/window'));
    th.window = w;
    const c = state.convs.get(conv);
    if (c) { c.window = { open: w.open, closes_at: w.closes_at, sends_left: w.sends_left }; renderList(); }
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) th.window = null; // a read-only relay
  }
  if (state.open === conv) emit('window', conv);
}

// ------------------------------------------------------------- reading

// markRead reports the open conversation read, at most every 300 ms (a
// throttle, not a debounce: a busy conversation is still marked).
let readTimer = 0;
export function markRead() {
  if (readTimer) return;
  readTimer = setTimeout(async () => {
    readTimer = 0;
    const conv = state.open;
    const th = conv && state.threads.get(conv);
    // Opening a conversation reads it (as in the agent inboxes people
    // know); a page in a background tab reads nothing.
    if (!th || !th.loaded || th.forbidden || document.visibilityState !== 'visible') return;
    const seq = th.maxSeq;
    const c = state.convs.get(conv);
    if (c && c.unread) { c.unread = 0; renderList(); }
    if (seq <= th.readSent) return;
    th.readSent = seq;
    try {
      await api('POST', convPath(conv, '/read'), { json: { seq } });
    } catch { th.readSent = 0; }
  }, 300);
}

function atBottom() {
  const s = $('thread');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
}

// --------------------------------------------------------------- header

export function renderHeader() {
  const conv = state.open;
  if (!conv || !state.me) return;
  const c = state.convs.get(conv) || {};
  const [account, openid] = splitConv(conv);
  const av = avatarOf(openid);
  const avatar = $('conv-avatar');
  avatar.className = `avatar ${av.hue}`;
  avatar.textContent = av.letters;
  const profile = profileOf(conv);
  $('conv-client').textContent = clientLabel(conv);
  $('conv-client').title = openid;
  $('conv-sub').textContent = [profile && profile.remark, c.account || account, c.employee ? t('assignedToName', { name: employeeName(c.employee) }) : t('unassigned')].filter(Boolean).join(' · ');
  clear($('conv-tags')).append(...tagChips(profile && profile.tags));
  const status = c.status || 'open';
  const chip = $('conv-status');
  chip.className = `chip chip-${status}`;
  chip.textContent = t(status);
  const manage = mayManage(conv);
  $('act-transfer').hidden = !manage;
  $('act-resolve').hidden = !manage || status === 'resolved';
  $('act-reopen').hidden = !manage || status !== 'resolved';
  $('d-transfer').hidden = !manage;
  // details pane
  $('d-openid').textContent = openid;
  $('d-account').textContent = c.account || account;
  $('d-employee').textContent = c.employee ? employeeName(c.employee) : t('unassigned');
  $('d-status').textContent = t(status);
  renderWindowDetails();
  renderProfileCard();
}

export function renderWindowDetails() {
  const th = state.open && state.threads.get(state.open);
  const box = clear($('d-window'));
  const w = th && th.window;
  if (!w) { box.append(h('p', { class: 'muted small' }, '–')); return; }
  box.append(windowChip(w, false));
  if (w.open && w.closes_at) box.append(h('p', { class: 'small' }, t('closesAt', { at: fullTime(w.closes_at) })));
  if (!w.open) box.append(h('p', { class: 'small', title: w.reason || '' }, windowReason(w)));
  if (w.template) box.append(h('p', { class: 'small' }, t('templateOffer', { template: w.template })));
}

// --------------------------------------------------------------- thread

let elsFor = null; // conv whose elements are in #msgs
// pinned: the employee is at the end of the conversation, so new
// messages, loaded pictures and a taller composer keep the end in view.
let pinned = true;
const els = new Map(); // message id → li

export function renderThread(scrollToEnd) {
  const conv = state.open;
  const th = conv && state.me && state.threads.get(conv);
  const ol = $('msgs');
  if (elsFor !== conv) { els.clear(); clear(ol); elsFor = conv; }
  if (!th) return;
  const stick = scrollToEnd || pinned;
  const list = th.sorted();
  const seen = new Set();
  let prev = null;
  let prevDay = '';
  for (const m of list) {
    const d = new Date(m.accepted_at || m.created_at || Date.now());
    const day = d.toDateString();
    const showDay = day !== prevDay;
    prevDay = day;
    const dl = m.direction === 'out' ? deliveryOf(th, m) : null;
    const sig = `${getLang()}|${showDay}|${dl ? dl.state + (dl.errcode || '') + (dl.reason || '') : ''}|${m.seq}|${m.local ? 1 : 0}`;
    seen.add(m.id);
    let li = els.get(m.id);
    if (!li || li._sig !== sig) {
      const n = msgEl(th, m, showDay ? d : null, dl);
      n._sig = sig;
      if (li) li.replaceWith(n);
      li = n;
      els.set(m.id, li);
    }
    const want = prev ? prev.nextSibling : ol.firstChild;
    if (want !== li) ol.insertBefore(li, want);
    prev = li;
  }
  for (const [id, li] of els) if (!seen.has(id)) { li.remove(); els.delete(id); }
  $('load-earlier').hidden = th.complete || !th.loaded || !th.minSeq;
  $('thread-start').hidden = !th.complete || !th.loaded;
  $('msgs').setAttribute('aria-busy', String(!th.loaded));
  if (stick) toBottom();
  markRead();
}

function toBottom() {
  const s = $('thread');
  s.scrollTop = s.scrollHeight;
  pinned = true;
}

function msgEl(th, m, day, dl) {
  const dir = m.direction === 'internal' ? 'internal' : m.direction === 'out' ? 'out' : 'in';
  const li = h('li', { class: `msg msg-${dir}`, dataset: { id: m.id, seq: m.seq || '', kind: m.kind, dir, state: dl ? dl.state : undefined } });
  if (day) li.append(h('div', { class: 'day', role: 'separator' }, h('span', {}, dayLabel(day))));
  const when = new Date(m.accepted_at || m.created_at || Date.now());
  const time = h('time', { datetime: when.toISOString(), title: fullTime(when) }, clock(when));
  if (dir === 'internal') {
    li.append(internalEl(m, time));
    return li;
  }
  if (m.kind === 'event') {
    li.append(h('div', { class: 'activity' }, h('span', {}, eventWords(m)), ' · ', time));
    return li;
  }
  const meta = h('div', { class: 'meta' }, time);
  if (dir === 'out') {
    const by = (m.attrs && m.attrs.sent_by) || '';
    meta.append(' · ', by ? (by === state.me.id ? t('you') : employeeName(by)) : h('span', { class: 'bot', title: t('botTitle') }, svgIcon(ICONS.bot), t('bot')));
    if (dl) meta.append(' · ', deliveryEl(dl));
  }
  li.append(h('div', { class: 'bubble-row' }, h('div', { class: `bubble bubble-${m.kind}` }, content(m))), meta);
  if (dl && (dl.state === 'failed' || dl.state === 'unknown')) {
    li.append(h('div', { class: `delivery-reason delivery-${dl.state}`, title: dl.reason || '' }, deliveryReason(dl),
      m.local && dl.state === 'failed' && m.retry ? h('button', { type: 'button', class: 'link-btn', on: { click: () => m.retry() } }, t('retry')) : null));
  }
  return li;
}

function internalEl(m, time) {
  const a = m.attrs || {};
  const by = employeeName(a.by || a.sent_by);
  const noteText = a.text || m.text || '';
  switch (m.kind) {
    case 'note':
      return h('div', { class: 'note-card' },
        h('div', { class: 'note-head' }, svgIcon(ICONS.lock), h('strong', {}, t('privateNote')), ' · ', by, ' · ', time),
        h('div', { class: 'text' }, noteText),
        h('div', { class: 'note-foot' }, t('staffOnly')));
    case 'transfer':
      return h('div', { class: 'activity activity-transfer' },
        svgIcon(ICONS.transfer),
        h('span', {}, a.from && a.from !== (a.by || a.sent_by)
          ? t('transferLine', { by, from: employeeName(a.from), to: employeeName(a.to) })
          : t('transferLineSelf', { by, to: employeeName(a.to) })), ' · ', time,
        noteText ? h('div', { class: 'activity-note' }, svgIcon(ICONS.lock), noteText) : null);
    case 'resolve':
      return h('div', { class: 'activity activity-resolve' }, svgIcon(ICONS.check), h('span', {}, t('resolvedBy', { by })), ' · ', time);
    case 'reopen':
      return h('div', { class: 'activity' }, svgIcon(ICONS.reopen), h('span', {}, t('reopenedBy', { by })), ' · ', time);
  }
  return h('div', { class: 'activity' }, h('span', {}, `${m.kind}: ${noteText}`), ' · ', time);
}

const STATE_ICON = { pending: ICONS.clock, sending: ICONS.clock, sent: ICONS.check, failed: ICONS.alert, unknown: ICONS.alert };

function deliveryEl(dl) {
  const st = dl.state || 'pending';
  const words = {
    pending: t('stPending'), sending: t('stSending'), sent: t('stSent'), failed: t('stFailed'), unknown: t('stUnknown'),
  }[st] || st;
  return h('span', { class: `delivery delivery-${st}`, title: st === 'sent' ? t('sentTitle') : '' }, svgIcon(STATE_ICON[st] || ICONS.clock), words);
}

function content(m) {
  const a = m.attrs || {};
  const src = m.preview || mediaURL(m.id);
  switch (m.kind) {
    case 'text':
      return h('div', { class: 'text' }, m.text || '');
    case 'image': {
      const img = h('img', { src, alt: t('photo'), loading: 'lazy', decoding: 'async' });
      img.addEventListener('error', () => mediaMissing(img, m), { once: true });
      img.addEventListener('load', () => { if (state.open === m.conv) keepBottom(); }, { once: true });
      return h('a', { class: 'media-link', href: src, target: '_blank', rel: 'noopener' }, img);
    }
    case 'voice':
      return h('div', { class: 'media-voice' },
        h('audio', { controls: true, preload: 'none', src }),
        a.recognition ? h('div', { class: 'small muted' }, t('recognition', { text: a.recognition })) : null,
        h('a', { class: 'small', href: src, download: a.file_name || `${m.id}.${a.format || 'amr'}` }, t('downloadVoice')));
    case 'video':
    case 'shortvideo':
      return h('video', { controls: true, preload: 'metadata', src, class: 'media-video' });
    case 'file':
      return h('a', { class: 'file-card', href: src, download: a.file_name || a.title || 'file' },
        svgIcon(ICONS.file), h('span', { class: 'file-name' }, a.file_name || a.title || t('pvFile')),
        a.file_size ? h('span', { class: 'small muted' }, a.file_size) : null, svgIcon(ICONS.download));
    case 'location': {
      const lat = a.location_x || a.latitude || '';
      const lng = a.location_y || a.longitude || '';
      return h('a', { class: 'loc-card', href: `https://www.openstreetmap.org/?mlat=${encodeURIComponent(lat)}&mlon=${encodeURIComponent(lng)}#map=16/${encodeURIComponent(lat)}/${encodeURIComponent(lng)}`, target: '_blank', rel: 'noopener noreferrer' },
        svgIcon(ICONS.pin), h('span', {}, h('strong', {}, a.label || t('pvLocation')), h('span', { class: 'small muted' }, `${lat}, ${lng}`)));
    }
    case 'link':
      return h('a', { class: 'link-card', href: a.url || '#', target: '_blank', rel: 'noopener noreferrer' },
        svgIcon(ICONS.link), h('span', {}, h('strong', {}, a.title || a.url || ''), a.description ? h('span', { class: 'small' }, a.description) : null, h('span', { class: 'small muted' }, host(a.url))));
  }
  return h('div', { class: 'text muted' }, m.text || `[${m.kind}]`);
}

function host(u) {
  try { return new URL(u).host; } catch { return ''; }
}

// mediaMissing replaces a picture the relay has not fetched from WeChat
// yet (404) by a note and a button to try again.
function mediaMissing(img, m) {
  const box = h('span', { class: 'media-missing' }, h('span', {}, t('mediaPending')),
    h('button', { type: 'button', class: 'link-btn', on: { click: (e) => { e.preventDefault(); box.replaceWith(img); img.src = `${mediaURL(m.id)}?r=${Date.now()}`; img.addEventListener('error', () => mediaMissing(img, m), { once: true }); } } }, t('retry')));
  img.replaceWith(box);
}

function keepBottom() {
  if (pinned) toBottom();
}

export function setupThread(liveSocket) {
  live = liveSocket;
  let lastTop = 0;
  $('thread').addEventListener('scroll', () => {
    // Only the employee scrolling up unpins: content growing under a
    // pinned view (a picture loading) moves nothing.
    const top = $('thread').scrollTop;
    if (atBottom()) pinned = true;
    else if (top < lastTop - 2) pinned = false;
    lastTop = top;
    if ($('thread').scrollTop < 80) loadEarlier();
    markRead();
  }, { passive: true });
  // The thread changes size with the window and the composer (the window
  // bar, an attachment, a taller text): keep the end in view.
  new ResizeObserver(() => { if (pinned) toBottom(); }).observe($('thread'));
  $('load-earlier').addEventListener('click', loadEarlier);
  document.addEventListener('visibilitychange', markRead);
  // A list fetched while the open conversation was being read may count
  // it unread: it is read.
  onStore('convs', markRead);
  $('d-copy').addEventListener('click', () => {
    navigator.clipboard?.writeText($('d-openid').textContent).then(() => emit('toast', { text: t('copied') }), () => {});
  });
  setInterval(() => { if (state.open) fetchWindow(state.open); }, 60000);
}
