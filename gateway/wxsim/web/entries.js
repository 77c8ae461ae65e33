// Log entries drawn as WeChat draws them: what the client sent (callback
// XML) and what the account delivered (custom/send or template JSON,
// passive-reply XML), with the callback's state under the bubble.

import { $, h, svgIcon } from './lib/dom.js';
import { t } from './strings.js';
import { enc } from './api.js';
import { accountName, avatar, sceneWho, cleanError, shortError } from './helpers.js';
import { state, account } from './state.js';
import { scrollToBottom } from './chat.js';
import { sendText } from './actions.js';

/** renderEntry draws one log entry as a list item. */
export function renderEntry(e) {
  if (e.direction === 'in' && e.msgtype === 'event') return renderNotice(e);
  const mine = e.direction === 'in';
  const a = account();
  const who = mine ? t('you') : accountName(a);
  const li = h('li', { class: 'msg ' + (mine ? 'mine' : 'theirs'), dataset: { seq: e.seq, msgtype: e.msgtype, source: e.source } });
  li.append(mine ? avatar('client', state.openid) : avatar('account', accountName(a)));
  const col = h('div', { class: 'msg-col' });
  if (!mine && e.kf_account) col.append(h('div', { class: 'sender', text: e.kf_account.split('@')[0] }));
  const row = h('div', { class: 'msg-row' });
  row.append(h('span', { class: 'sr-only', text: who + ': ' }));
  row.append(mine ? renderMine(e) : renderTheirs(e));
  col.append(row);
  if (mine && e.callback) {
    li.dataset.status = e.callback.status;
    const st = statusOf(e.callback);
    if (st.mark === 'fail') row.append(h('span', { class: 'fail-mark', 'aria-hidden': 'true', text: '!' }));
    if (st.mark === 'spin') row.append(h('span', { class: 'spinner', 'aria-hidden': 'true' }));
    col.append(h('div', { class: 'status ' + st.cls, title: st.detail || st.text, text: st.text }));
  }
  li.append(col);
  return li;
}

/** statusOf describes a callback state for the line under a bubble. */
function statusOf(cb) {
  switch (cb.status) {
    case 'pending':
      return { text: t('stSending'), cls: 'pending', mark: 'spin' };
    case 'retrying':
      return { text: t('stRetrying', { n: cb.attempts, of: cb.tries }), cls: 'retrying', mark: 'spin', detail: cleanError(cb.error) };
    case 'success':
      return { text: cb.attempts > 1 ? t('stDeliveredTries', { n: cb.attempts }) : t('stDelivered'), cls: 'ok' };
    case 'reply':
      return { text: t('stReply'), cls: 'ok' };
    case 'timeout':
      return { text: t('stTimeout', { n: cb.attempts }), cls: 'failed', mark: 'fail', detail: cleanError(cb.error) };
    default: {
      let why = shortError(cb.error);
      if (cb.http_status && cb.http_status !== 200) {
        why = 'HTTP ' + cb.http_status + (cb.response ? ' “' + cb.response.trim().slice(0, 140) + '”' : '');
      } else if (cb.response && /answer/.test(why)) {
        why += ' (“' + cb.response.trim().slice(0, 100) + '”)';
      }
      return { text: t('stFailed', { why }), cls: 'failed', mark: 'fail', detail: cleanError(cb.error) + (cb.response ? '\n' + cb.response : '') };
    }
  }
}

function renderNotice(e) {
  const a = accountName(account());
  const key = e.event_key || '';
  let text;
  switch (e.event) {
    case 'subscribe':
      text = key.startsWith('qrscene_') ? t('evSubscribeQR', { who: sceneWho(key.slice(8)), name: a }) : t('evSubscribe', { name: a });
      break;
    case 'SCAN':
      text = t('evScan', { who: sceneWho(key) });
      break;
    case 'unsubscribe':
      text = t('evUnsubscribe', { name: a });
      break;
    case 'CLICK':
      text = t('evClick', { key });
      break;
    case 'VIEW':
      text = t('evView', { key });
      break;
    case 'LOCATION':
      text = t('evLocation');
      break;
    default:
      text = t('evOther', { event: e.event, key });
  }
  const li = h('li', { class: 'notice', dataset: { seq: e.seq, event: e.event } }, h('span', { class: 'notice-text', text }));
  if (e.callback) {
    li.dataset.status = e.callback.status;
    const st = statusOf(e.callback);
    li.append(h('div', { class: 'status ' + st.cls, title: st.detail || st.text, text: st.text }));
  }
  return li;
}

// Raw bodies: a client's message is callback XML; a delivered one is the
// custom/send or template/send JSON, or passive-reply XML.
function parseXML(raw) {
  if (!raw) return null;
  const doc = new DOMParser().parseFromString(raw, 'application/xml');
  return doc.querySelector('parsererror') ? null : doc;
}

function xv(doc, sel) {
  const n = doc && doc.querySelector(sel);
  return n ? n.textContent : '';
}

function parseJSON(raw) {
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

function mediaURL(id) {
  return '/sim/media/' + enc(id);
}

/** richText renders message text: <a href> tags (WeChat allows them) and bare URLs become links. */
function richText(text) {
  const out = [];
  const tag = /<a\s+[^>]*?href=(["'])(.*?)\1[^>]*>(.*?)<\/a>/gis;
  let last = 0;
  for (const m of text.matchAll(tag)) {
    out.push(...linkify(text.slice(last, m.index)));
    out.push(safeLink(m[2], m[3] || m[2]));
    last = m.index + m[0].length;
  }
  out.push(...linkify(text.slice(last)));
  return out;
}

function linkify(text) {
  const out = [];
  const url = /https?:\/\/[^\s<>"'，。）)]+/g;
  let last = 0;
  for (const m of text.matchAll(url)) {
    out.push(text.slice(last, m.index));
    out.push(safeLink(m[0], m[0]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out.filter((x) => x !== '');
}

function safeLink(href, label) {
  if (!/^https?:\/\//i.test(href)) return label;
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer', text: label });
}

function picture(id, alt) {
  const img = h('img', { src: mediaURL(id), alt, loading: 'lazy' });
  img.addEventListener('load', () => {
    const body = $('chat-body');
    if (body.scrollHeight - body.scrollTop - body.clientHeight < img.height + 120) scrollToBottom();
  });
  return h('a', { class: 'picture', href: mediaURL(id), target: '_blank', rel: 'noopener' }, img);
}

function card({ href, title, desc, thumb, icon, foot, extra }) {
  const inner = [];
  if (title) inner.push(h('span', { class: 'card-title', text: title }));
  const flex = h('span', { class: 'card-flex' });
  if (desc) flex.append(h('span', { class: 'card-desc', text: desc }));
  else flex.append(h('span', { class: 'card-desc' }));
  if (thumb) flex.append(h('img', { class: 'card-thumb', src: thumb, alt: '' }));
  else if (icon) flex.append(icon);
  inner.push(flex);
  if (extra) inner.push(extra);
  if (foot) inner.push(h('span', { class: 'card-foot', text: foot }));
  return href && /^https?:\/\//i.test(href)
    ? h('a', { class: 'card', href, target: '_blank', rel: 'noopener noreferrer' }, inner)
    : h('div', { class: 'card' }, inner);
}

/** waves draws the voice-message icon: a dot and two arcs. */
function waves() {
  return svgIcon(['M4 9.2a1 1 0 0 1 0 1.6', 'M7.5 5.5a6 6 0 0 1 0 9', 'M11 2.5a10 10 0 0 1 0 15'], 'voice-waves', '0 0 20 20');
}

function voiceBubble(seconds, recognition) {
  const b = h('div', { class: 'bubble voice' }, waves(), h('span', { text: seconds ? `${seconds}″` : t('voiceMsg') }));
  return recognition ? h('div', {}, b, h('div', { class: 'recognition', text: recognition })) : b;
}

function videoBox(title, id) {
  const box = h('div', { class: 'video', role: 'img', 'aria-label': t('videoMsg') + (title ? ': ' + title : '') }, h('span', { class: 'video-play' }));
  if (title) box.append(h('span', { class: 'video-title', text: title }));
  return id ? h('a', { href: mediaURL(id), target: '_blank', rel: 'noopener' }, box) : box;
}

function fmtSize(n) {
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KB';
  return (n / (1 << 20)).toFixed(1) + ' MB';
}

/** renderMine draws what the client sent (callback XML in e.raw). */
function renderMine(e) {
  const x = parseXML(e.raw);
  switch (e.msgtype) {
    case 'text':
      return h('div', { class: 'bubble' }, richText(e.content || ''));
    case 'image':
      return picture(e.media_id, t('picture'));
    case 'voice':
      return voiceBubble(2, xv(x, 'Recognition'));
    case 'video':
    case 'shortvideo':
      return videoBox('', e.media_id);
    case 'location': {
      const lat = xv(x, 'Location_X');
      const lng = xv(x, 'Location_Y');
      return card({ title: xv(x, 'Label') || t('location'), desc: `${lat}, ${lng}`, extra: h('span', { class: 'card-map', 'aria-hidden': 'true' }) });
    }
    case 'link':
      return card({ href: xv(x, 'Url'), title: xv(x, 'Title'), desc: xv(x, 'Description') || xv(x, 'Url'), icon: h('span', { class: 'card-icon link', text: '🔗' }) });
    case 'file': {
      const title = xv(x, 'Title');
      const ext = (title.split('.').pop() || 'FILE').slice(0, 4).toUpperCase();
      return card({ title, desc: fmtSize(Number(xv(x, 'FileTotalLen') || 0)), icon: h('span', { class: 'card-icon file', text: ext }) });
    }
    default:
      return h('div', { class: 'bubble', text: e.content || `[${e.msgtype}]` });
  }
}

/** renderTheirs draws what the account delivered: custom/send JSON, template JSON or reply XML. */
function renderTheirs(e) {
  if (e.source === 'template') return renderTemplate(parseJSON(e.raw), e);
  if (e.source === 'reply') return renderReply(parseXML(e.raw), e);
  const j = parseJSON(e.raw) || {};
  const body = j[e.msgtype] || {};
  switch (e.msgtype) {
    case 'text':
      return h('div', { class: 'bubble' }, richText(e.content || ''));
    case 'image':
      return picture(e.media_id, t('picture'));
    case 'voice':
      return voiceBubble(0, '');
    case 'video':
      return h('div', {}, videoBox(body.title || '', e.media_id), body.description ? h('div', { class: 'recognition', text: body.description }) : null);
    case 'music':
      return card({ href: body.musicurl || body.hqmusicurl, title: body.title || t('voiceMsg'), desc: body.description, icon: h('span', { class: 'card-icon music', text: '♪' }) });
    case 'news': {
      const art = (body.articles && body.articles[0]) || {};
      return card({ href: art.url, title: art.title, desc: art.description, thumb: art.picurl });
    }
    case 'msgmenu': {
      const items = h('div', { class: 'menu-items' }, (body.list || []).map((it) => h('button', { type: 'button', text: it.content, on: { click: () => sendText(it.content) } })));
      return h('div', { class: 'bubble' }, body.head_content ? h('div', { text: body.head_content }) : null, items, body.tail_content ? h('div', { text: body.tail_content }) : null);
    }
    case 'miniprogrampage':
      return card({ title: body.title, desc: body.pagepath, foot: 'Mini Program · ' + (body.appid || '') });
    default:
      return card({ title: e.content || `[${e.msgtype}]`, foot: e.msgtype });
  }
}

function renderReply(x, e) {
  switch (e.msgtype) {
    case 'text':
      return h('div', { class: 'bubble' }, richText(e.content || xv(x, 'Content')));
    case 'image':
      return picture(e.media_id, t('picture'));
    case 'voice':
      return voiceBubble(0, '');
    case 'video':
      return videoBox(xv(x, 'Video > Title'), e.media_id);
    case 'music':
      return card({ href: xv(x, 'Music > MusicUrl'), title: xv(x, 'Music > Title'), desc: xv(x, 'Music > Description'), icon: h('span', { class: 'card-icon music', text: '♪' }) });
    case 'news': {
      const item = x && x.querySelector('Articles > item');
      return card({ href: xv(item, 'Url'), title: xv(item, 'Title'), desc: xv(item, 'Description'), thumb: xv(item, 'PicUrl') });
    }
    default:
      return h('div', { class: 'bubble', text: e.content || `[${e.msgtype}]` });
  }
}

function renderTemplate(j, e) {
  j = j || {};
  const data = j.data || {};
  const parts = [h('div', { class: 'tpl-label', text: t('templateMsg') })];
  if (data.first && data.first.value) parts.push(h('div', { class: 'tpl-para', text: data.first.value }));
  const dl = h('dl', { class: 'tpl-rows' });
  for (const [k, v] of Object.entries(data)) {
    if (k === 'first' || k === 'remark') continue;
    dl.append(h('dt', { text: k }), h('dd', { text: (v && v.value) || '' }));
  }
  if (dl.childElementCount) parts.push(dl);
  if (data.remark && data.remark.value) parts.push(h('div', { class: 'tpl-para', text: data.remark.value }));
  if (!Object.keys(data).length) parts.push(h('div', { class: 'tpl-para', text: e.content || '' }));
  parts.push(h('span', { class: 'card-foot', text: (j.template_id || '') + (j.url ? ' · ' + t('viewDetails') + ' ›' : '') }));
  return j.url && /^https?:\/\//i.test(j.url)
    ? h('a', { class: 'card', href: j.url, target: '_blank', rel: 'noopener noreferrer' }, parts)
    : h('div', { class: 'card' }, parts);
}
