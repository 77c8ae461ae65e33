// The composer: replies to the client (text, emoji, pictures, voice,
// video) and private notes for staff. A reply is shown at once as
// pending under its idempotency key, and follows the relay's status
// frames from there; retrying uses the same key, so nothing is sent
// twice.

import { $, h, clear } from './dom.js';
import { api, ApiError, convPath, newKey } from './api.js';
import { t } from './i18n.js';
import { state, thread, on as onStore, emit, isSupervisor, managesAll } from './store.js';
import { splitConv, bytes, windowReason } from './format.js';
import { renderThread, fetchWindow, mayWrite, renderWindowDetails } from './thread.js';
import { windowChip } from './inbox.js';

const MAX_UPLOAD = 10 << 20;
const TYPING_EVERY_MS = 5000;

// A small built-in set: the emoji people use at work.
const EMOJI = ['😀', '😊', '🙂', '😉', '😄', '😅', '🤔', '😮', '😢', '🙏', '👍', '👌', '👏', '🤝', '💪', '🙌',
  '❤️', '🌹', '🎉', '🎁', '☕', '🍵', '📈', '📉', '💰', '💴', '📄', '📎', '📅', '⏰', '✅', '❌',
  '⚠️', '📞', '✉️', '🏦', '🏠', '🚗', '✈️', '☀️', '🌙', '⭐', '🔔', '💡', '👋', '🧧', '🥂', '🎂'];

let mode = 'reply'; // or 'note'
let attachment = null; // {file, kind}
let lastTyping = 0;
let cannedFrom = -1; // caret index of a "/" that opened the canned list, or -1
const drafts = new Map(); // conv → text
let shownConv = null;

// kindOf maps a chosen file to what WeChat can send: custom/send carries
// pictures, voice and video only.
function kindOf(file) {
  if (file.type.startsWith('image/')) return 'image';
  if (file.type.startsWith('audio/')) return 'voice';
  if (file.type.startsWith('video/')) return 'video';
  return '';
}

export function updateComposer() {
  const conv = state.open;
  if (!conv || !state.me) return;
  if (shownConv !== conv) {
    if (shownConv !== null) drafts.set(shownConv, $('input').value);
    $('input').value = drafts.get(conv) || '';
    shownConv = conv;
    mode = 'reply';
    clearAttachment();
    closePopovers();
  }
  const th = thread(conv);
  const writer = mayWrite(conv);
  const composer = $('composer');
  composer.hidden = !!th.forbidden;
  // Compliance officers read only: no replies, no notes.
  const noter = writer || managesAll();
  $('composer-box').hidden = !noter;
  $('d-note').hidden = !noter;
  if (!writer) mode = 'note';
  $('mode-reply').hidden = !writer;
  $('readonly-note').hidden = writer;
  $('readonly-note').textContent = isSupervisor() ? t('readOnly') : t('readOnlyAgent');
  $('mode-reply').setAttribute('aria-selected', String(mode === 'reply'));
  $('mode-note').setAttribute('aria-selected', String(mode === 'note'));
  $('composer-box').classList.toggle('is-note', mode === 'note');

  const w = th.window;
  const closed = mode === 'reply' && w && !w.open;
  $('composer-closed').hidden = !closed;
  if (closed) {
    $('closed-reason').textContent = windowReason(w);
    $('closed-reason').title = w.reason || '';
    $('closed-template').hidden = false;
    $('closed-template').textContent = w.template ? t('templateOffer', { template: w.template }) : t('templateNone');
  }
  const bar = clear($('window-bar'));
  if (mode === 'reply' && w && w.open) bar.append(windowChip(w, false));
  bar.hidden = mode !== 'reply' || !w || !w.open;
  const input = $('input');
  input.disabled = closed;
  input.placeholder = mode === 'note' ? t('notePlaceholder') : closed ? t('closedPlaceholder') : t('replyPlaceholder');
  $('btn-attach').hidden = mode === 'note';
  $('btn-canned').hidden = false;
  for (const id of ['btn-emoji', 'btn-attach', 'btn-canned']) $(id).disabled = closed;
  $('send').textContent = mode === 'note' ? t('addNoteShort') : t('send');
  $('composer-hint').textContent = mode === 'note' ? t('noteHint') : t('sendHint');
  updateSend();
  renderWindowDetails();
}

function updateSend() {
  const th = state.open && state.threads.get(state.open);
  const w = th && th.window;
  const closed = mode === 'reply' && w && !w.open;
  const empty = !$('input').value.trim() && !attachment;
  $('send').disabled = !!closed || empty;
}

export function setMode(m) {
  mode = m;
  updateComposer();
  $('input').focus();
}

// send sends what the composer holds: the attachment, then the text.
export async function send() {
  const conv = state.open;
  if (!conv || $('send').disabled) return;
  const text = $('input').value;
  if (mode === 'note') {
    if (!text.trim()) return;
    $('send').disabled = true;
    try {
      await api('POST', convPath(conv, '/notes'), { json: { key: newKey(), text } });
      if ($('input').value === text) $('input').value = '';
      drafts.delete(conv);
    } catch (e) {
      emit('toast', { kind: 'error', text: t('noteFailed', { why: words(e) }) });
    }
    updateSend();
    return;
  }
  if (attachment) {
    sendMessage(conv, { kind: attachment.kind, file: attachment.file });
    clearAttachment();
  }
  if (text.trim()) sendMessage(conv, { kind: 'text', text });
  $('input').value = '';
  drafts.delete(conv);
  updateSend();
  $('input').focus();
}

function sendMessage(conv, body) {
  const key = newKey();
  const id = `out:${conv}:${key}`;
  const [account, client] = splitConv(conv);
  const th = thread(conv);
  const m = {
    id, conv, account, client, direction: 'out', kind: body.kind, text: body.text || '',
    attrs: { sent_by: state.me.id, file_name: body.file ? body.file.name : undefined },
    local: true, state: 'pending', localAt: Date.now(), created_at: new Date().toISOString(),
    preview: body.file && body.kind !== 'voice' ? URL.createObjectURL(body.file) : undefined,
  };
  const attempt = async () => {
    m.state = 'pending';
    m.reason = '';
    th.version++;
    if (state.open === conv) renderThread(true);
    try {
      let res;
      if (body.file) {
        const form = new FormData();
        form.set('key', key);
        form.set('kind', body.kind);
        form.set('file', body.file, body.file.name);
        res = await api('POST', convPath(conv, '/messages'), { form });
      } else {
        res = await api('POST', convPath(conv, '/messages'), { json: { key, kind: 'text', text: body.text } });
      }
      if (res && res.state && res.state !== 'pending') th.setStatus({ message_id: id, state: res.state, errcode: res.errcode, reason: res.reason });
      fetchWindow(conv);
    } catch (e) {
      m.state = 'failed';
      m.reason = words(e);
      m.errcode = e instanceof ApiError ? e.body.errcode : undefined;
      th.version++;
      if (e instanceof ApiError && e.status === 409) fetchWindow(conv);
    }
    if (state.open === conv) renderThread(false);
  };
  m.retry = attempt;
  th.add(m);
  attempt();
}

// words says why a request failed, in the relay's words when it gave
// some.
function words(e) {
  if (e instanceof ApiError) {
    if (e.status === 0) return t('cannotReach');
    if (e.status === 403) return t('notYoursToWrite');
    if (e.body && e.body.error) return e.body.error;
  }
  return e.message || String(e);
}

function typing() {
  const conv = state.open;
  if (mode !== 'reply' || !conv || !mayWrite(conv) || !$('input').value.trim()) return;
  const now = Date.now();
  if (now - lastTyping < TYPING_EVERY_MS) return;
  lastTyping = now;
  api('POST', convPath(conv, '/typing'), { json: {} }).catch(() => {});
}

// ------------------------------------------------------------ attachments

function chooseFile(file) {
  if (!file) return;
  const kind = kindOf(file);
  if (!kind) { emit('toast', { kind: 'error', text: t('fileKindRefused') }); return; }
  if (file.size > MAX_UPLOAD) { emit('toast', { kind: 'error', text: t('fileTooBig') }); return; }
  attachment = { file, kind };
  const box = clear($('attach-preview'));
  box.hidden = false;
  box.append(h('span', { class: 'attach-chip' },
    h('span', { class: 'attach-kind' }, t(`kind_${kind}`)), h('span', { class: 'attach-name' }, file.name), h('span', { class: 'muted small' }, bytes(file.size)),
    h('button', { type: 'button', class: 'icon-btn icon-btn-small', 'aria-label': t('remove'), title: t('remove'), on: { click: clearAttachment } }, '×')));
  updateSend();
}

function clearAttachment() {
  attachment = null;
  $('file-input').value = '';
  clear($('attach-preview')).hidden = true;
  updateSend();
}

// --------------------------------------------------------------- popovers

function closePopovers() {
  $('emoji-pop').hidden = true;
  $('canned-pop').hidden = true;
  $('btn-emoji').setAttribute('aria-expanded', 'false');
  $('btn-canned').setAttribute('aria-expanded', 'false');
  cannedFrom = -1;
}

function insertAtCaret(text, replaceFrom = -1) {
  const el = $('input');
  const end = el.selectionEnd ?? el.value.length;
  const start = replaceFrom >= 0 ? replaceFrom : el.selectionStart ?? end;
  el.setRangeText(text, start, end, 'end');
  el.focus();
  updateSend();
}

function toggleEmoji() {
  const pop = $('emoji-pop');
  const open = pop.hidden;
  closePopovers();
  if (!open) return;
  if (!pop.firstChild) {
    for (const e of EMOJI) {
      pop.append(h('button', { type: 'button', class: 'emoji', on: { click: () => { insertAtCaret(e); closePopovers(); } } }, e));
    }
  }
  pop.hidden = false;
  $('btn-emoji').setAttribute('aria-expanded', 'true');
}

function openCanned(query, from = -1) {
  closePopovers();
  cannedFrom = from;
  $('canned-pop').hidden = false;
  $('btn-canned').setAttribute('aria-expanded', 'true');
  $('canned-q').value = query;
  renderCanned();
  if (from < 0) $('canned-q').focus();
}

let cannedActive = 0;
function cannedMatches() {
  const q = $('canned-q').value.trim().toLowerCase();
  return state.canned.filter((r) => !q || (r.title || '').toLowerCase().includes(q) || (r.text || '').toLowerCase().includes(q) || (r.id || '').toLowerCase().includes(q));
}

function renderCanned() {
  const ul = clear($('canned-list'));
  const list = cannedMatches();
  cannedActive = Math.min(cannedActive, Math.max(0, list.length - 1));
  if (!list.length) {
    ul.append(h('li', { class: 'muted small empty' }, state.canned.length ? t('noCannedMatch') : t('noCanned')));
    return;
  }
  list.forEach((r, i) => {
    ul.append(h('li', {},
      h('button', { type: 'button', class: `canned${i === cannedActive ? ' is-active' : ''}`, on: { click: () => pickCanned(r) } },
        h('strong', {}, r.title || r.id), h('span', { class: 'small muted' }, r.text))));
  });
}

function pickCanned(r) {
  const from = cannedFrom;
  closePopovers();
  insertAtCaret(r.text, from);
}

function cannedKeys(e) {
  if ($('canned-pop').hidden) return false;
  const list = cannedMatches();
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    cannedActive = (cannedActive + (e.key === 'ArrowDown' ? 1 : -1) + list.length) % Math.max(1, list.length);
    renderCanned();
  } else if (e.key === 'Enter' && !e.ctrlKey && !e.metaKey) {
    if (list[cannedActive]) pickCanned(list[cannedActive]);
  } else if (e.key === 'Escape') {
    closePopovers();
    $('input').focus();
  } else {
    return false;
  }
  e.preventDefault();
  return true;
}

// ---------------------------------------------------------------- set up

export function setupComposer() {
  const input = $('input');
  input.addEventListener('input', () => {
    updateSend();
    typing();
    // "/" at the start of the message opens the canned replies.
    const v = input.value;
    const m = /^\/(\S*)$/.exec(v.slice(0, input.selectionStart));
    if (m && state.canned.length) {
      if ($('canned-pop').hidden) openCanned(m[1], 0);
      else { $('canned-q').value = m[1]; renderCanned(); }
    } else if (cannedFrom >= 0) {
      closePopovers();
    }
  });
  input.addEventListener('keydown', (e) => {
    if (cannedFrom >= 0 && cannedKeys(e)) return;
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener('paste', (e) => {
    const f = [...(e.clipboardData?.files || [])][0];
    if (f && mode === 'reply') { e.preventDefault(); chooseFile(f); }
  });
  $('composer-box').addEventListener('dragover', (e) => { if (mode === 'reply') e.preventDefault(); });
  $('composer-box').addEventListener('drop', (e) => {
    const f = e.dataTransfer?.files?.[0];
    if (f && mode === 'reply') { e.preventDefault(); chooseFile(f); }
  });
  $('send').addEventListener('click', send);
  $('mode-reply').addEventListener('click', () => setMode('reply'));
  $('mode-note').addEventListener('click', () => setMode('note'));
  $('btn-emoji').addEventListener('click', toggleEmoji);
  $('btn-attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', (e) => chooseFile(e.target.files[0]));
  $('btn-canned').addEventListener('click', () => ($('canned-pop').hidden ? openCanned('') : closePopovers()));
  $('canned-q').addEventListener('input', () => { cannedActive = 0; renderCanned(); });
  $('canned-q').addEventListener('keydown', (e) => cannedKeys(e));
  $('d-note').addEventListener('click', () => setMode('note'));
  document.addEventListener('click', (e) => {
    if (!e.target.closest('.popover, #btn-emoji, #btn-canned')) closePopovers();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && (!$('emoji-pop').hidden || !$('canned-pop').hidden)) { closePopovers(); e.stopPropagation(); }
  }, true);
  onStore('window', updateComposer);
  onStore('thread', (conv) => { if (conv) updateComposer(); });
}

export function popoverOpen() {
  return !$('emoji-pop').hidden || !$('canned-pop').hidden;
}
