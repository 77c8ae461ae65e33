// wxsim phone page: one person plays a simulated WeChat client of an
// Official Account, through the simulator's admin API (/sim/api/). Plain
// ES module, no framework, no build step.
//
// The page holds no truth of its own: the client's conversation is the
// simulator's log of that client (GET /sim/api/clients/{openid}/log), polled
// about once a second. Entries whose callback to the relay is still in
// flight are fetched again until they settle, so "sending", "retrying",
// "delivered" and "failed" follow the simulator's own record.

import { $, h } from './lib/dom.js';
import { ApiError, request } from './lib/api.js';

const API = '/sim/api';
const POLL_CHAT_MS = 1000;
const POLL_LIST_MS = 3000;
const TIME_GAP_MS = 5 * 60 * 1000;
const MAX_UPLOAD = 10 << 20;

// ---------------------------------------------------------------- strings

const STRINGS = {
  en: {
    clientsTitle: 'Simulated clients',
    switchLanguage: 'Switch language',
    langToggleText: '中',
    newClient: 'New client',
    newClientLong: 'New client',
    scanAsNew: 'Scan a QR code as a new client',
    officialAccount: 'Official Account',
    clientsIntro: 'Each simulated client is a WeChat user of this Official Account. Pick one, or create a new one, to chat as that person.',
    noClients: 'No clients yet.',
    noAccount: 'The simulator has no Official Account yet.',
    createAccount: 'Create an Official Account',
    accountDetails: 'Account settings for the relay',
    back: 'Back to clients',
    typing: 'Typing…',
    more: 'Client details',
    offline: 'Cannot reach the simulator. Retrying…',
    notFollowing: "You don't follow this Official Account yet. Follow it from its profile, or scan an employee's QR code.",
    follow: 'Follow',
    unfollow: 'Unfollow',
    scanQR: 'Scan QR code',
    message: 'Message',
    placeholderFollow: 'Follow the account to send messages',
    moreActions: 'More ways to send',
    send: 'Send',
    album: 'Album',
    samplePhoto: 'Sample photo',
    location: 'Location',
    link: 'Link',
    menu: 'Menu',
    voice: 'Voice',
    video: 'Video',
    file: 'File',
    aboutTitle: 'wxsim phone',
    aboutP1: 'A simulated WeChat phone. Everything you do here reaches the relay exactly as WeChat would send it: signed, encrypted in safe mode, retried when unanswered.',
    aboutStep1: 'Pick a client, or create one.',
    aboutStep2: "Follow the account, or scan an employee's QR code to be assigned to them.",
    aboutStep3: 'Chat. Under each of your messages: whether the relay accepted it.',
    aboutStep4: "Answer from the console as the employee: the reply appears here.",
    aboutCallback: 'Callbacks of {name} go to {url} ({mode} mode).',
    scanHint: "Employees' QR codes (scene emp:<id>) bind you to that employee.",
    noQRCodes: 'The account has no QR codes yet. The relay creates one per employee.',
    pasteTicket: 'Or paste a ticket or QR URL',
    scan: 'Scan',
    cancel: 'Cancel',
    close: 'Close',
    create: 'Create',
    sendLocation: 'Send a location',
    place: 'Place',
    latitude: 'Latitude',
    longitude: 'Longitude',
    shareLink: 'Share a link',
    linkTitle: 'Title',
    linkDesc: 'Description',
    menuClick: 'Tap a menu item',
    menuHint: "Sends a CLICK event with the menu key, as the account's custom menu does.",
    menuKey: 'Menu key',
    tap: 'Tap',
    clientDetails: 'Client details',
    accountName: 'Name',
    callbackURL: 'Relay callback URL',
    mode: 'Encryption mode',
    // statuses of the client's own messages
    stSending: 'Sending…',
    stRetrying: 'No answer yet: try {n} of {of}…',
    stDelivered: 'Delivered',
    stDeliveredTries: 'Delivered on try {n}',
    stReply: 'Delivered · passive reply',
    stTimeout: 'Failed: the relay did not answer ({n} tries)',
    stFailed: 'Failed: {why}',
    unreachable: 'the relay is unreachable ({why})',
    noCallback: 'the account has no callback URL',
    // notices
    evSubscribe: 'You followed {name}',
    evSubscribeQR: "You scanned {who}'s QR code and followed {name}",
    evScan: "You scanned {who}'s QR code",
    evUnsubscribe: 'You unfollowed {name}',
    evClick: 'You tapped the menu item “{key}”',
    evView: 'You opened the menu link {key}',
    evLocation: 'Your location was reported',
    evOther: 'Event {event} {key}',
    employee: 'employee {id}',
    scene: 'scene {scene}',
    clientName: 'Client {tail}',
    following: 'Following',
    notFollowingShort: 'Not following',
    via: 'via {who}',
    permanent: 'permanent',
    expires: 'expires {time}',
    picture: 'Picture',
    you: 'You',
    templateMsg: 'Template message',
    viewDetails: 'View details',
    voiceMsg: 'Voice message',
    videoMsg: 'Video',
    open: 'Open',
    news: 'Article',
    fileTooBig: 'The file is larger than 10 MB.',
    sampleLocation: 'Lujiazui, Shanghai',
    sampleLinkTitle: 'Quarterly market outlook',
    sampleLinkDesc: 'What our analysts expect for the next quarter',
    sampleVoice: "Hello, I'd like to talk to my advisor.",
    infoOpenID: 'OpenID',
    infoFollowing: 'Following',
    infoSince: 'Since',
    infoScene: 'Scene',
    infoWindow: 'Service window ends',
    infoSendsLeft: 'Messages the account may still send',
    yes: 'yes',
    no: 'no',
    apiBase: 'API base URL',
  },
  zh: {
    clientsTitle: '模拟客户',
    switchLanguage: '切换语言',
    langToggleText: 'EN',
    newClient: '新建客户',
    newClientLong: '新建客户',
    scanAsNew: '以新客户身份扫码',
    officialAccount: '公众号',
    clientsIntro: '每个模拟客户都是该公众号的一位微信用户。选择一位或新建一位，以其身份聊天。',
    noClients: '还没有客户。',
    noAccount: '模拟器中还没有公众号。',
    createAccount: '创建公众号',
    accountDetails: '中继服务所需的公众号配置',
    back: '返回客户列表',
    typing: '对方正在输入...',
    more: '客户详情',
    offline: '无法连接模拟器，正在重试…',
    notFollowing: '你还没有关注该公众号。可以直接关注，或扫描员工的二维码。',
    follow: '关注公众号',
    unfollow: '不再关注',
    scanQR: '扫一扫',
    message: '消息',
    placeholderFollow: '关注公众号后才能发消息',
    moreActions: '更多功能',
    send: '发送',
    album: '相册',
    samplePhoto: '示例图片',
    location: '位置',
    link: '链接',
    menu: '菜单',
    voice: '语音',
    video: '视频',
    file: '文件',
    aboutTitle: 'wxsim 手机',
    aboutP1: '一部模拟的微信手机。你在这里的每个操作都会像微信一样送达中继服务：签名、安全模式下加密、无应答时重试。',
    aboutStep1: '选择一位客户，或新建一位。',
    aboutStep2: '关注公众号，或扫描员工的二维码以分配给该员工。',
    aboutStep3: '聊天。每条消息下方显示中继服务是否已接收。',
    aboutStep4: '以员工身份在控制台回复，回复会出现在这里。',
    aboutCallback: '{name} 的回调地址：{url}（{mode} 模式）。',
    scanHint: '员工二维码（场景 emp:<id>）会把你分配给该员工。',
    noQRCodes: '该公众号还没有二维码。中继服务会为每位员工创建一个。',
    pasteTicket: '或粘贴 ticket 或二维码链接',
    scan: '扫描',
    cancel: '取消',
    close: '关闭',
    create: '创建',
    sendLocation: '发送位置',
    place: '地点',
    latitude: '纬度',
    longitude: '经度',
    shareLink: '分享链接',
    linkTitle: '标题',
    linkDesc: '描述',
    menuClick: '点击菜单',
    menuHint: '像公众号自定义菜单一样，发送带菜单 key 的 CLICK 事件。',
    menuKey: '菜单 key',
    tap: '点击',
    clientDetails: '客户详情',
    accountName: '名称',
    callbackURL: '中继服务回调地址',
    mode: '加密模式',
    stSending: '发送中…',
    stRetrying: '未应答，正在重试（第 {n}/{of} 次）…',
    stDelivered: '已送达',
    stDeliveredTries: '第 {n} 次尝试时送达',
    stReply: '已送达 · 被动回复',
    stTimeout: '失败：中继服务未应答（{n} 次）',
    stFailed: '失败：{why}',
    unreachable: '无法连接中继服务（{why}）',
    noCallback: '公众号未配置回调地址',
    evSubscribe: '你关注了 {name}',
    evSubscribeQR: '你扫描了{who} 的二维码，关注了 {name}',
    evScan: '你扫描了{who} 的二维码',
    evUnsubscribe: '你取消关注了 {name}',
    evClick: '你点击了菜单「{key}」',
    evView: '你打开了菜单链接 {key}',
    evLocation: '已上报你的地理位置',
    evOther: '事件 {event} {key}',
    employee: '员工 {id}',
    scene: '场景 {scene}',
    clientName: '客户 {tail}',
    following: '已关注',
    notFollowingShort: '未关注',
    via: '来自{who}',
    permanent: '永久',
    expires: '{time} 过期',
    picture: '图片',
    you: '我',
    templateMsg: '模板消息',
    viewDetails: '详情',
    voiceMsg: '语音消息',
    videoMsg: '视频',
    open: '打开',
    news: '图文',
    fileTooBig: '文件超过 10 MB。',
    sampleLocation: '上海陆家嘴',
    sampleLinkTitle: '季度市场展望',
    sampleLinkDesc: '分析师对下个季度的看法',
    sampleVoice: '你好，我想联系我的顾问。',
    infoOpenID: 'OpenID',
    infoFollowing: '关注',
    infoSince: '关注时间',
    infoScene: '场景',
    infoWindow: '客服消息窗口截止',
    infoSendsLeft: '公众号还可发送',
    yes: '是',
    no: '否',
    apiBase: 'API 地址',
  },
};

function pickLang() {
  const saved = localStorage.getItem('wxsim.lang');
  if (saved === 'zh' || saved === 'en') return saved;
  return (navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

let lang = pickLang();

/** t returns the UI string key in the current language, with {vars} filled. */
function t(key, vars = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

function applyI18n() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  for (const n of document.querySelectorAll('[data-i18n-label]')) {
    n.setAttribute('aria-label', t(n.dataset.i18nLabel));
    n.title = t(n.dataset.i18nLabel);
  }
  $('lang-toggle-text').textContent = t('langToggleText');
  document.title = t('aboutTitle');
}

function setLang(l) {
  lang = l;
  localStorage.setItem('wxsim.lang', l);
  applyI18n();
  renderAll();
}

// ---------------------------------------------------------------- helpers

/** api calls the admin API and returns the decoded JSON answer. */
const api = (method, path, body) => request(method, API + path, body === undefined ? {} : { json: body });

const enc = encodeURIComponent;

function hashCode(s) {
  let x = 0;
  for (let i = 0; i < s.length; i++) x = (x * 31 + s.charCodeAt(i)) | 0;
  return Math.abs(x);
}

function clientTail(openid) {
  return openid.slice(-4).toUpperCase();
}

function clientName(openid) {
  return t('clientName', { tail: clientTail(openid) });
}

function accountName(a) {
  return (a && (a.name || a.original_id || a.appid)) || '…';
}

/** avatar draws the account's initial, or a client's silhouette on a colour of its own. */
function avatar(kind, label) {
  if (kind === 'account') return h('div', { class: 'avatar account', 'aria-hidden': 'true', text: Array.from(label)[0] || '?' });
  return h('div', { class: 'avatar client c' + (hashCode(label) % 8), 'aria-hidden': 'true' });
}

/** sceneWho names the person a QR scene stands for: "employee 42" for emp:42. */
function sceneWho(scene) {
  const m = /^emp:(.+)$/.exec(scene || '');
  return m ? t('employee', { id: m[1] }) : t('scene', { scene });
}

function cleanError(s) {
  return String(s || '')
    .replace(/wxsim: /g, '')
    .replace(/^callback answer refused: /, '')
    .replace(/\?[^"\s]*/g, ''); // signed query strings say nothing to a person
}

/** shortError turns a callback failure into a few words for the line under a bubble. */
function shortError(err) {
  const s = cleanError(err);
  const m = /callback URL unreachable: .*: ([^:]+)$/.exec(s);
  if (m) return t('unreachable', { why: m[1].trim() });
  if (/has no callback URL/.test(s)) return t('noCallback');
  return s.length > 160 ? s.slice(0, 157) + '…' : s;
}

// Simulator time: the simulator may run a manual clock, and message times
// are its times.
let simOffset = 0;
const simNow = () => new Date(Date.now() + simOffset);

function fmtTime(d, withDay) {
  const loc = lang === 'zh' ? 'zh-CN' : 'en-GB';
  const opts = { hour: '2-digit', minute: '2-digit' };
  if (withDay) Object.assign(opts, { month: 'short', day: 'numeric' });
  return new Intl.DateTimeFormat(loc, opts).format(d);
}

function fmtWhen(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return fmtTime(d, d.toDateString() !== simNow().toDateString());
}

let toastTimer = 0;
function toast(msg) {
  const n = $('toast');
  n.textContent = msg;
  n.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (n.hidden = true), 3200);
}

// ---------------------------------------------------------------- state

const state = {
  accounts: [],
  appid: '',
  clients: [],
  clientsKey: '',
  screen: 'clients',
  openid: '',
  info: null,
  entries: new Map(), // seq → entry
  nodes: new Map(), // seq → <li>
  lastSeq: 0,
  lastTime: 0, // time of the last rendered entry, for separators
};

const account = () => state.accounts.find((a) => a.appid === state.appid);

// ---------------------------------------------------------------- polling

let pollTimer = 0;
let polling = false;
let pollAgain = false;
let pollGen = 0; // bumped when the chat changes; stale answers are dropped

function schedule(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, ms);
}

/** kick polls now (or right after the poll in flight). */
function kick() {
  if (polling) pollAgain = true;
  else schedule(0);
}

async function poll() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  const gen = pollGen;
  try {
    if (state.screen === 'chat') await refreshChat(gen);
    else await refreshClients();
    $('offline').hidden = true;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status === 0) $('offline').hidden = false;
    else if (e.status === 404 && state.screen === 'chat') {
      toast(e.message);
      go(state.appid);
    }
  } finally {
    polling = false;
    if (pollAgain) {
      pollAgain = false;
      schedule(0);
    } else {
      schedule(state.screen === 'chat' ? POLL_CHAT_MS : POLL_LIST_MS);
    }
  }
}

async function refreshClock() {
  try {
    const c = await api('GET', '/clock');
    simOffset = new Date(c.now).getTime() - Date.now();
  } catch {
    // keep the last offset
  }
  $('sb-time').textContent = fmtTime(simNow(), false);
}

// ---------------------------------------------------------------- routing

// The hash names what is shown: #/<appid> (its clients) or
// #/<appid>/<openid> (a chat), so reloading keeps the place.
function go(appid, openid) {
  const want = '#/' + enc(appid || '') + (openid ? '/' + enc(openid) : '');
  if (location.hash !== want) location.hash = want;
  else route();
}

async function route() {
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

async function loadAccounts() {
  try {
    state.accounts = await api('GET', '/accounts');
    $('offline').hidden = true;
  } catch {
    $('offline').hidden = false;
  }
}

// ---------------------------------------------------------------- clients screen

function showClients() {
  state.screen = 'clients';
  state.openid = '';
  pollGen++;
  closePlus();
  $('screen-chat').hidden = true;
  $('screen-clients').hidden = false;
  renderAccountBar();
  state.clientsKey = '';
  kick();
}

function renderAccountBar() {
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

async function refreshClients() {
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

function renderClients() {
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

async function newClient() {
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

// ---------------------------------------------------------------- chat screen

function openChat(openid) {
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
    pollGen++;
  }
  const a = account();
  $('chat-title').textContent = accountName(a);
  $('fc-name').textContent = accountName(a);
  $('fc-avatar').replaceChildren(avatar('account', accountName(a)));
  kick();
}

async function refreshChat(gen) {
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

function scrollToBottom() {
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

function updateComposer() {
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

function renderAll() {
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

// ---------------------------------------------------------------- entries

/** renderEntry draws one log entry as a list item. */
function renderEntry(e) {
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
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 20 20');
  svg.setAttribute('class', 'voice-waves');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of ['M4 9.2a1 1 0 0 1 0 1.6', 'M7.5 5.5a6 6 0 0 1 0 9', 'M11 2.5a10 10 0 0 1 0 15']) {
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
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

// ---------------------------------------------------------------- actions

/** act runs a client action (subscribe, messages, scan…) and polls at once. */
async function act(kind, body) {
  const openid = state.openid;
  if (!openid) return null;
  const p = api('POST', `/clients/${enc(openid)}/${kind}`, body ?? {});
  setTimeout(kick, 120); // the entry is logged before the callback: show it while it is in flight
  try {
    return await p;
  } catch (e) {
    toast(cleanError(e.message));
    return null;
  } finally {
    kick();
  }
}

function sendText(text) {
  if (text.trim() === '') return;
  act('messages', { msgtype: 'text', content: text });
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

async function sendFile(file, msgtype) {
  if (!file) return;
  if (file.size > MAX_UPLOAD) {
    toast(t('fileTooBig'));
    return;
  }
  const data = await readBase64(file);
  const body = { msgtype, data };
  if (msgtype === 'file') body.title = file.name;
  act('messages', body);
}

// ---------------------------------------------------------------- "+" panel

function openPlus() {
  $('plus-panel').hidden = false;
  $('plus').setAttribute('aria-expanded', 'true');
  $('act-album').focus();
  scrollToBottom();
}

function closePlus() {
  $('plus-panel').hidden = true;
  $('plus').setAttribute('aria-expanded', 'false');
}

/** openDialog shows a form dialog; onOK runs when it closes with value "ok". */
function openDialog(id, onOK) {
  const d = $(id);
  d.returnValue = '';
  d.onclose = () => {
    if (d.returnValue === 'ok' && onOK) onOK();
    if (state.screen === 'chat' && state.info && state.info.subscribed) $('text').focus();
  };
  d.showModal();
}

// ---------------------------------------------------------------- scan

async function openScan() {
  $('scan-error').hidden = true;
  $('qr-paste').value = '';
  const list = $('qr-list');
  list.replaceChildren();
  $('qr-empty').hidden = true;
  openDialog('dlg-scan');
  let codes = [];
  try {
    codes = await api('GET', `/accounts/${enc(state.appid)}/qrcodes`);
  } catch (e) {
    showScanError(e.message);
  }
  // Employees' codes first.
  codes.sort((a, b) => Number(/^emp:/.test(b.scene_str || '')) - Number(/^emp:/.test(a.scene_str || '')));
  $('qr-empty').hidden = codes.length > 0;
  list.replaceChildren(
    ...codes.map((q) => {
      const scene = q.scene_str || String(q.scene_id);
      const who = sceneWho(scene);
      const sub = [scene, q.expires_at ? t('expires', { time: fmtWhen(q.expires_at) }) : t('permanent')].join(' · ');
      return h(
        'li',
        {},
        h('img', { src: '/cgi-bin/showqrcode?ticket=' + enc(q.ticket), alt: '' }),
        h('span', { class: 'qr-main' }, h('span', { class: 'qr-name', text: who.charAt(0).toUpperCase() + who.slice(1) }), h('span', { class: 'qr-sub', text: sub })),
        h('button', { type: 'button', class: 'btn btn-primary', 'aria-label': `${t('scan')}: ${who}`, text: t('scan'), dataset: { ticket: q.ticket }, on: { click: () => scan(q.ticket) } }),
      );
    }),
  );
  const first = list.querySelector('button');
  (first || $('qr-paste')).focus();
}

function showScanError(msg) {
  const n = $('scan-error');
  n.textContent = cleanError(msg);
  n.hidden = false;
}

async function scan(ticketOrURL) {
  const qr = ticketOrURL.trim();
  if (!qr) return;
  try {
    // Check it first, so a mistyped ticket is explained in the dialog.
    await api('GET', '/qrcodes/resolve?qr=' + enc(qr));
  } catch (e) {
    showScanError(e.message);
    return;
  }
  $('dlg-scan').close();
  act('scan', { qr });
}

// ---------------------------------------------------------------- info dialog

function fillInfoDialog() {
  const i = state.info;
  if (!i) return;
  const dl = $('info-dl');
  const scene = i.qr_scene_str || (i.qr_scene ? String(i.qr_scene) : '');
  const rows = [
    [t('infoOpenID'), i.openid],
    [t('infoFollowing'), i.subscribed ? t('yes') : t('no')],
  ];
  if (i.subscribed && i.subscribe_time) rows.push([t('infoSince'), fmtWhen(i.subscribe_time) + ' · ' + (i.subscribe_scene || '')]);
  if (scene) rows.push([t('infoScene'), scene]);
  if (i.window_ends) rows.push([t('infoWindow'), fmtWhen(i.window_ends)]);
  rows.push([t('infoSendsLeft'), String(i.sends_left)]);
  dl.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
  $('info-follow').hidden = i.subscribed;
  $('info-unfollow').hidden = !i.subscribed;
}

// ---------------------------------------------------------------- wiring

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
