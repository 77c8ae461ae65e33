// Compliance views for supervisors, compliance officers and admins
// (docs/console-api.md): search of the archive, exports (eDiscovery),
// lexicon alerts and their review queue, the audit log, and legal holds
// on the details pane. Agents never see these views; the relay refuses
// them the API anyway. Every search, export, alert list and audit read
// is written to the audit trail by the relay.

import { $, h, clear, svgIcon, ICONS } from './dom.js';
import { api, ApiError } from './api.js';
import { t } from './i18n.js';
import { state, emit, on as onStore, employeeName } from './store.js';
import { shortID, splitConv, fullTime, bytes } from './format.js';
import { clientLabel, profileOf, tagChips, rememberListed } from './profile.js';
import { loadEarlier } from './thread.js';

const PAGE = 50;

// Who may do what (the relay checks again).
export const maySearch = () => !!state.me && ['supervisor', 'compliance', 'admin'].includes(state.me.role);
export const mayAudit = () => !!state.me && ['compliance', 'admin'].includes(state.me.role);

const TOOLS = ['search', 'alerts', 'audit'];

const openAlerts = new Set(); // ids of the open alerts: the badge
let alerts = []; // the alerts list as shown
let auditShown = null; // the audit records shown, to draw again in another language

// toolOf returns the compliance view a hash names, or ''.
export function toolOf(hash) {
  const m = /^#\/(search|alerts|audit)$/.exec(hash);
  if (!m) return '';
  if (m[1] === 'audit' ? !mayAudit() : !maySearch()) return '';
  return m[1];
}

// showTool shows one compliance view (or none: '').
export function showTool(name) {
  $('tool-pane').hidden = !name;
  for (const n of TOOLS) {
    $(`tool-${n}`).hidden = n !== name;
    $(`nav-${n}`).classList.toggle('is-active', n === name);
    if (n === name) $(`nav-${n}`).setAttribute('aria-current', 'page');
    else $(`nav-${n}`).removeAttribute('aria-current');
  }
  $('nav-inbox').classList.toggle('is-active', !name);
  if (name === 'alerts') loadAlerts();
  if (name === 'audit' && !audit.loaded) loadAudit();
  if (name === 'search') $('s-text').focus();
}

// start shows the navigation the role allows; called after sign-in.
export function startCompliance() {
  $('nav-search').hidden = !maySearch();
  $('nav-alerts').hidden = !maySearch();
  $('nav-audit').hidden = !mayAudit();
  openAlerts.clear();
  alerts = [];
  renderBadge();
  clear($('s-results'));
  search.shown = null;
  auditShown = null;
  clear($('a-rows'));
  clear($('al-list'));
  $('s-summary').textContent = '';
  $('s-pager').hidden = true;
  audit.loaded = false;
  fillSelects();
  if (maySearch()) countOpenAlerts();
}

function fillSelects() {
  const emps = state.employees;
  for (const [id, filter] of [['s-employee', (e) => (e.role || 'agent') === 'agent'], ['a-who', () => true]]) {
    const sel = $(id);
    const cur = sel.value;
    clear(sel).append(h('option', { value: '' }, t('allEmployees')),
      ...emps.filter(filter).map((e) => h('option', { value: e.id }, e.name && e.name !== e.id ? `${e.name} (${e.id})` : e.id)));
    sel.value = cur;
  }
  const acc = $('s-account');
  const curA = acc.value;
  const accounts = [...new Set([...(state.me && state.me.accounts) || [], ...state.accounts])].sort();
  clear(acc).append(h('option', { value: '' }, t('allAccounts')), ...accounts.map((a) => h('option', { value: a }, a)));
  acc.value = curA;
}

function errText(e) {
  if (e instanceof ApiError && e.status === 0) return t('cannotReach');
  if (e instanceof ApiError && e.status === 403) return t('notAllowed');
  // 503: the archive, or the audit trail (nothing is done unaudited):
  // the relay's own words say which.
  if (e instanceof ApiError && e.status === 503) return `${t('archiveDown')} (${e.message})`;
  return e.message;
}

// ---------------------------------------------------------------- search

const search = { filters: null, cursors: [''], page: 0, total: -1, next: '', shown: null };

// searchFilters reads the form: the query as the API names it.
function searchFilters() {
  const f = {
    text: $('s-text').value.trim(), client: $('s-client').value.trim(), employee: $('s-employee').value,
    account: $('s-account').value, from: $('s-from').value, to: $('s-to').value,
    direction: $('s-direction').value, kind: $('s-kind').value,
  };
  for (const k of Object.keys(f)) if (!f[k]) delete f[k];
  return f;
}

async function runSearch(page) {
  const f = search.filters;
  if (!f) return;
  const q = new URLSearchParams({ ...f, limit: String(PAGE) });
  const cursor = search.cursors[page] || '';
  if (cursor) q.set('cursor', cursor);
  const err = $('s-error');
  err.hidden = true;
  $('s-submit').disabled = true;
  $('tool-search').setAttribute('aria-busy', 'true');
  try {
    const res = await api('GET', `/api/search?${q}`);
    search.page = page;
    if (res.total !== undefined) search.total = res.total;
    search.next = res.next || '';
    search.cursors[page + 1] = search.next;
    rememberListed(res.profiles);
    renderResults(res.messages || []);
  } catch (e) {
    err.hidden = false;
    err.textContent = errText(e);
  } finally {
    $('s-submit').disabled = false;
    $('tool-search').setAttribute('aria-busy', 'false');
  }
}

function renderResults(msgs) {
  search.shown = msgs;
  const ul = clear($('s-results'));
  const from = search.page * PAGE;
  $('s-summary').textContent = msgs.length
    ? t('resultsRange', { from: from + 1, to: from + msgs.length, total: search.total >= 0 ? search.total : '?' })
    : t('noResults');
  for (const m of msgs) ul.append(resultEl(m));
  $('s-pager').hidden = !msgs.length || (search.page === 0 && !search.next);
  $('s-prev').disabled = search.page === 0;
  $('s-next').disabled = !search.next;
  $('s-export').disabled = false;
}

function resultEl(m) {
  const [account, openid] = splitConv(m.conv);
  const dir = m.direction || 'in';
  const href = `#/c/${encodeURIComponent(m.conv)}/at/${m.seq}`;
  return h('li', { class: `result result-${dir}`, dataset: { conv: m.conv, seq: m.seq, id: m.id } },
    h('a', { class: 'result-link', href, title: t('openAtMessage') },
      h('span', { class: 'result-meta' },
        h('span', { class: `chip chip-dir-${dir}` }, t(`dir_${dir}`)),
        h('span', { class: `result-client${profileOf(m.conv) && profileOf(m.conv).name ? ' result-name' : ''}`, title: openid }, clientLabel(m.conv)),
        ...tagChips((profileOf(m.conv) || {}).tags),
        h('span', { class: 'muted' }, m.account || account),
        m.employee ? h('span', { class: 'muted' }, employeeName(m.employee)) : null,
        h('time', { class: 'muted', datetime: m.accepted_at }, fullTime(m.accepted_at || m.created_at))),
      h('span', { class: 'result-text' }, highlighted(resultText(m), search.filters && search.filters.text))));
}

function resultText(m) {
  const a = m.attrs || {};
  if (m.text) return m.text;
  if (a.title || a.file_name) return `[${m.kind}] ${a.title || a.file_name}`;
  if (m.kind === 'event') return `[${m.event || 'event'}]`;
  return `[${m.kind}]`;
}

// highlighted marks every case-insensitive occurrence of q in s, as
// text nodes and <mark> elements.
function highlighted(s, q) {
  if (!q) return [s];
  const out = [];
  const lower = s.toLowerCase();
  const ql = q.toLowerCase();
  let i = 0;
  for (;;) {
    const j = lower.indexOf(ql, i);
    if (j < 0 || ql.length === 0) break;
    if (j > i) out.push(s.slice(i, j));
    out.push(h('mark', {}, s.slice(j, j + q.length)));
    i = j + q.length;
  }
  out.push(s.slice(i));
  return out;
}

// searchFor opens the search view with filters f (as the API names
// them: a report's drill-down) and runs the search.
export function searchFor(f) {
  const fields = { text: 's-text', client: 's-client', employee: 's-employee', account: 's-account', from: 's-from', to: 's-to', direction: 's-direction', kind: 's-kind' };
  for (const [k, id] of Object.entries(fields)) $(id).value = f[k] || '';
  location.hash = '#/search';
  $('search-form').requestSubmit();
}

// focusMessage scrolls the open conversation to the message seq (loading
// earlier pages as needed) and highlights it.
export async function focusMessage(conv, seq) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && state.open === conv) {
    const th = state.threads.get(conv);
    if (th && th.loaded) {
      if (th.minSeq > seq && !th.complete) {
        if (!th.loading) await loadEarlier();
        else await sleep(100);
        continue;
      }
      const li = document.querySelector(`#msgs li[data-seq="${Number(seq)}"]`);
      if (li) {
        for (const x of document.querySelectorAll('#msgs .is-focus')) x.classList.remove('is-focus');
        li.classList.add('is-focus');
        li.scrollIntoView({ block: 'center' });
        return;
      }
      if (th.complete || th.minSeq <= seq) return; // not in this conversation
    }
    await sleep(100);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- export

let exportTimer = 0;
let exportSeq = 0;

// startExport asks the relay for an export of filters and follows it.
export async function startExport(filters) {
  const dlg = $('dlg-export');
  clearTimeout(exportTimer);
  const run = ++exportSeq;
  $('x-scope').textContent = scopeWords(filters);
  $('x-status').textContent = t('exportStarting');
  $('x-progress').removeAttribute('value');
  $('x-download').hidden = true;
  $('x-error').hidden = true;
  dlg.dataset.state = 'starting';
  if (!dlg.open) dlg.showModal();
  try {
    const job = await api('POST', '/api/exports', { json: filters });
    if (run === exportSeq) followExport(job, run);
  } catch (e) {
    if (run === exportSeq) exportFailed(e instanceof ApiError && e.status === 429 ? t('exportBusy') : errText(e));
  }
}

function scopeWords(f) {
  const parts = [];
  for (const k of ['conv', 'text', 'client', 'employee', 'account', 'direction', 'kind', 'from', 'to']) {
    if (f[k]) parts.push(`${t(`f_${k}`)}: ${k === 'employee' ? employeeName(f[k]) : f[k]}`);
  }
  return parts.join(' · ');
}

function followExport(job, run) {
  const dlg = $('dlg-export');
  dlg.dataset.state = job.state;
  dlg.dataset.job = job.id;
  const p = job.progress || {};
  const bar = $('x-progress');
  if (job.state === 'running') {
    const total = (p.rows_total || 0) + (p.media_total || 0);
    if (total > 0) { bar.max = total; bar.value = (p.rows || 0) + (p.media || 0); } else bar.removeAttribute('value');
    $('x-status').textContent = t('exportRunning', { rows: p.rows || 0, total: p.rows_total || '?', media: p.media || 0, mediaTotal: p.media_total || 0 });
    exportTimer = setTimeout(async () => {
      try {
        const next = await api('GET', `/api/exports/${encodeURIComponent(job.id)}`);
        if (run === exportSeq) followExport(next, run);
      } catch (e) {
        if (run === exportSeq) exportFailed(errText(e));
      }
    }, 500);
    return;
  }
  if (job.state === 'done') {
    bar.max = 1;
    bar.value = 1;
    const c = job.counts || {};
    $('x-status').textContent = t('exportDone', { messages: c.messages ?? 0, convs: c.conversations ?? 0, media: c.media ?? 0, size: bytes(job.size || 0) });
    const a = $('x-download');
    a.href = job.download;
    a.download = `wechat-relay-export-${job.id}.zip`;
    a.hidden = false;
    a.focus();
    return;
  }
  exportFailed(job.error || job.state);
}

function exportFailed(why) {
  const dlg = $('dlg-export');
  dlg.dataset.state = 'failed';
  $('x-progress').value = 0;
  $('x-status').textContent = '';
  $('x-error').hidden = false;
  $('x-error').textContent = t('exportFailed', { why });
}

// ---------------------------------------------------------------- alerts


function renderBadge() {
  const b = $('alerts-badge');
  const n = openAlerts.size;
  b.hidden = !n;
  b.textContent = n > 99 ? '99+' : String(n);
  $('nav-alerts').setAttribute('aria-label', n ? `${t('alerts')} (${t('alertsOpen', { n })})` : t('alerts'));
}

async function countOpenAlerts() {
  try {
    const res = await api('GET', '/api/alerts?status=open&limit=500');
    // Merged, not replaced: a live alert may have come meanwhile.
    for (const a of res.alerts || []) openAlerts.add(a.id);
    renderBadge();
  } catch { /* the badge counts live alerts only */ }
}

// onAlert handles a live alert frame.
export function onAlert(hit) {
  if (!hit || !maySearch()) return;
  openAlerts.add(hit.id);
  renderBadge();
  const listed = !$('tool-alerts').hidden && ($('al-status').value === 'open' || !$('al-status').value);
  if (listed && !alerts.some((a) => a.id === hit.id)) {
    alerts.unshift(hit);
    renderAlerts();
  }
  emit('toast', { kind: 'alert', text: t('alertToast', { rule: hit.rule, matched: hit.matched, client: shortID(splitConv(hit.conv)[1]) }) });
}

async function loadAlerts() {
  const st = $('al-status').value;
  const q = new URLSearchParams({ limit: '200' });
  if (st) q.set('status', st);
  const err = $('al-error');
  err.hidden = true;
  try {
    const res = await api('GET', `/api/alerts?${q}`);
    alerts = res.alerts || [];
    if (st === 'open') {
      openAlerts.clear();
      for (const a of alerts) openAlerts.add(a.id);
      renderBadge();
    }
    renderAlerts();
  } catch (e) {
    err.hidden = false;
    err.textContent = errText(e);
  }
}

function renderAlerts() {
  const ul = clear($('al-list'));
  $('al-empty').hidden = alerts.length > 0;
  for (const a of alerts) ul.append(alertEl(a));
}

function alertEl(a) {
  const [, openid] = splitConv(a.conv);
  const r = a.review;
  const state_ = r ? r.decision : 'open';
  const li = h('li', { class: `alert-item alert-${state_}`, dataset: { id: a.id, state: state_ } },
    h('div', { class: 'alert-head' },
      svgIcon(ICONS.alert),
      h('strong', {}, a.rule),
      h('span', { class: `chip chip-alert-${state_}` }, t(`alertState_${state_}`)),
      h('span', { class: 'chip' }, t(`dir_${a.direction || 'in'}`)),
      h('time', { class: 'muted small', datetime: a.at }, fullTime(a.at))),
    h('p', { class: 'alert-excerpt' }, highlighted(a.excerpt || '', a.matched)),
    h('p', { class: 'muted small' },
      t('alertWhere', { client: shortID(openid), account: a.account, employee: a.employee ? employeeName(a.employee) : t('unassigned') }), ' · ',
      a.conv ? h('a', { href: `#/c/${encodeURIComponent(a.conv)}`, class: 'alert-open' }, t('openConversation')) : null));
  if (r) {
    li.append(h('p', { class: 'alert-review small' }, t('reviewedBy', { by: employeeName(r.reviewer), at: fullTime(r.at), decision: t(`alertState_${r.decision}`) }),
      r.comment ? h('span', { class: 'alert-comment' }, ` “${r.comment}”`) : null));
  }
  if (mayAudit()) {
    const id = `rc-${a.id}`;
    const comment = h('textarea', { id, class: 'review-comment', rows: '2', placeholder: t('reviewComment') });
    const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const act = (decision) => async (e) => {
      const btns = li.querySelectorAll('.review-actions button');
      for (const b of btns) b.disabled = true;
      error.hidden = true;
      try {
        const rev = await api('POST', `/api/alerts/${encodeURIComponent(a.id)}/review`, { json: { decision, comment: comment.value } });
        openAlerts.delete(a.id);
        renderBadge();
        a.review = rev;
        li.replaceWith(alertEl(a));
        emit('toast', { text: t('reviewSaved', { decision: t(`alertState_${decision}`) }) });
      } catch (err) {
        error.hidden = false;
        error.textContent = errText(err);
        for (const b of btns) b.disabled = false;
      }
      e.preventDefault();
    };
    li.append(h('div', { class: 'review-form' },
      h('label', { for: id, class: 'sr-only' }, t('reviewComment')), comment,
      h('div', { class: 'review-actions' },
        h('button', { type: 'button', class: 'btn btn-small btn-success', dataset: { decision: 'reviewed' }, on: { click: act('reviewed') } }, t('markReviewed')),
        h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { decision: 'escalated' }, on: { click: act('escalated') } }, t('escalate'))),
      error));
  }
  return li;
}

// ---------------------------------------------------------------- audit

const audit = { loaded: false };

async function loadAudit(e) {
  if (e) e.preventDefault();
  audit.loaded = true;
  const q = new URLSearchParams({ limit: '500' });
  for (const [k, id] of [['who', 'a-who'], ['action', 'a-action'], ['conv', 'a-conv'], ['from', 'a-from'], ['to', 'a-to']]) {
    const v = $(id).value.trim();
    if (v) q.set(k, v);
  }
  const err = $('a-error');
  err.hidden = true;
  try {
    const res = await api('GET', `/api/audit?${q}`);
    renderAudit(res.records || []);
  } catch (ex) {
    err.hidden = false;
    err.textContent = errText(ex);
  }
}

function renderAudit(records) {
  auditShown = records;
  const tb = clear($('a-rows'));
  $('a-empty').hidden = records.length > 0;
  for (const r of records) {
    tb.append(h('tr', { dataset: { action: r.action } },
      h('td', {}, h('time', { datetime: r.at }, fullTime(r.at))),
      h('td', {}, employeeName(r.employee) || r.employee, r.role ? h('span', { class: 'muted small' }, ` (${t(`role_${r.role}`)})`) : null),
      h('td', {}, h('code', {}, r.action)),
      h('td', {}, r.conv ? h('a', { href: `#/c/${encodeURIComponent(r.conv)}` }, r.conv) : ''),
      h('td', { class: 'audit-detail' }, [r.target, r.detail].filter(Boolean).join(' · ')),
      h('td', { class: 'muted small', title: r.user_agent || '' }, r.remote || '')));
  }
}

// ---------------------------------------------------------------- holds

let holdsFor = '';

// renderHold fills the legal-hold card of the details pane for conv.
export async function renderHold(conv) {
  const card = $('d-hold-card');
  card.hidden = !conv || !mayAudit();
  if (card.hidden) { holdsFor = ''; return; }
  holdsFor = conv;
  const box = clear($('d-hold'));
  $('hold-form').hidden = true;
  box.append(h('p', { class: 'muted small' }, t('loading')));
  let holds = [];
  try {
    holds = (await api('GET', '/api/holds')).holds || [];
  } catch (e) {
    if (holdsFor !== conv) return;
    clear(box).append(h('p', { class: 'form-error' }, errText(e)));
    return;
  }
  if (holdsFor !== conv) return;
  const [account, client] = splitConv(conv);
  const mine = holds.filter((x) => x.conv === conv || (x.account === account && x.client === client && !x.conv));
  clear(box);
  if (mine.length) {
    for (const x of mine) {
      box.append(h('p', { class: 'hold-on small', dataset: { hold: x.id } }, svgIcon(ICONS.lock),
        t(x.conv ? 'holdOnConv' : 'holdOnClient', { by: employeeName(x.placed_by), at: fullTime(x.at) }),
        x.reason ? h('span', { class: 'muted' }, ` “${x.reason}”`) : null));
    }
  } else {
    box.append(h('p', { class: 'muted small' }, t('holdNone')));
    $('hold-form').hidden = false;
    $('hold-reason').value = '';
    $('hold-error').hidden = true;
  }
}

async function placeHold(e) {
  e.preventDefault();
  const conv = state.open;
  if (!conv) return;
  const reason = $('hold-reason').value.trim();
  const err = $('hold-error');
  if (!reason) { err.hidden = false; err.textContent = t('holdReasonNeeded'); $('hold-reason').focus(); return; }
  $('hold-submit').disabled = true;
  try {
    await api('POST', '/api/holds', { json: { account: splitConv(conv)[0], conv, reason } });
    emit('toast', { text: t('holdPlaced') });
    renderHold(conv);
  } catch (ex) {
    err.hidden = false;
    err.textContent = errText(ex);
  } finally {
    $('hold-submit').disabled = false;
  }
}

// rerenderCompliance draws the views again in the page's language.
export function rerenderCompliance() {
  if (!state.me) return;
  fillSelects();
  renderBadge();
  if (search.shown) renderResults(search.shown);
  if (!$('tool-alerts').hidden) renderAlerts();
  if (auditShown) renderAudit(auditShown);
  if (state.open && !$('d-hold-card').hidden) { holdsFor = ''; renderHold(state.open); }
}

// ---------------------------------------------------------------- set up

export function setupCompliance() {
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    search.filters = searchFilters();
    search.cursors = [''];
    search.total = -1;
    runSearch(0);
  });
  $('s-prev').addEventListener('click', () => runSearch(Math.max(0, search.page - 1)));
  $('s-next').addEventListener('click', () => { if (search.next) runSearch(search.page + 1); });
  $('s-export').addEventListener('click', () => startExport(search.filters || searchFilters()));
  $('al-status').addEventListener('change', loadAlerts);
  $('al-refresh').addEventListener('click', loadAlerts);
  $('audit-form').addEventListener('submit', loadAudit);
  $('hold-form').addEventListener('submit', placeHold);
  $('act-export').addEventListener('click', () => { if (state.open) startExport({ conv: state.open }); });
  $('d-export').addEventListener('click', () => { if (state.open) startExport({ conv: state.open }); });
  $('x-close').addEventListener('click', () => { clearTimeout(exportTimer); exportSeq++; $('dlg-export').close(); });
  $('dlg-export').addEventListener('close', () => { clearTimeout(exportTimer); exportSeq++; });
  onStore('employees', () => { if (state.me) fillSelects(); });
  onStore('convs', () => { if (state.me) fillSelects(); });
  $('d-audit').addEventListener('click', () => {
    if (!state.open) return;
    for (const id of ['a-who', 'a-action', 'a-from', 'a-to']) $(id).value = '';
    $('a-conv').value = state.open;
    audit.loaded = false;
    location.hash = '#/audit';
  });
  onStore('thread', (conv) => {
    $('d-audit').hidden = !mayAudit() || !conv;
    const allowed = maySearch() && !!conv;
    $('act-export').hidden = !allowed;
    $('d-export').hidden = !allowed;
    if (conv !== holdsFor || !conv) renderHold(conv);
  });
}
