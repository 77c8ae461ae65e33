// The Reports view (supervisors, compliance officers, admins): the desk's
// figures from GET /api/reports/{name}, computed by the archive. Each
// table is drawn as a chart (./charts.js) above its figures, with a CSV
// download; a bar opens what is behind it (the messages in the search
// view, a team's conversations in the inbox). The relay scopes each
// report to what the employee may see and audits every view.

import { $, h, clear } from './dom.js';
import { api, ApiError } from './api.js';
import { t, locale } from './i18n.js';
import { state, employeeName } from './store.js';
import { shortID, splitConv, fullTime } from './format.js';
import { barChart, hbarChart } from './charts.js';
import { searchFor } from './compliance.js';

const NAMES = ['volume', 'responsiveness', 'delivery', 'compliance'];

let current = ''; // the report asked for
let shown = null; // the report drawn, to draw again in another language
let query = null; // its parameters
let loadSeq = 0;

export const mayReport = () => !!state.me && ['supervisor', 'compliance', 'admin'].includes(state.me.role);
// The compliance report counts audit records: for those who read the
// audit log.
const mayCompliance = () => !!state.me && ['compliance', 'admin'].includes(state.me.role);

// reportOf returns the report a hash names (#/reports, #/reports/<name>),
// or ''.
export function reportOf(hash) {
  const m = /^#\/reports(?:\/(\w+))?$/.exec(hash);
  if (!m || !mayReport()) return '';
  if (m[1] === 'compliance' && !mayCompliance()) return 'volume';
  return NAMES.includes(m[1]) ? m[1] : 'volume';
}

// showReports shows the report name, or hides the view ('').
export function showReports(name) {
  $('report-view').hidden = !name;
  $('nav-reports').classList.toggle('is-active', !!name);
  if (name) {
    $('tool-pane').hidden = false;
    $('nav-inbox').classList.remove('is-active');
    $('nav-reports').setAttribute('aria-current', 'page');
    for (const n of NAMES) $(`rep-tab-${n}`).setAttribute('aria-selected', String(n === name));
    if (name !== current || !shown) load(name);
  } else {
    $('nav-reports').removeAttribute('aria-current');
  }
  current = name;
}

// startReports shows the navigation the role allows; called after sign-in.
export function startReports() {
  $('nav-reports').hidden = !mayReport();
  $('rep-tab-compliance').hidden = !mayCompliance();
  shown = null;
  current = '';
  clear($('rep-body'));
  if (!$('rep-from').value) lastDays(7);
  fillSelects();
  if (mayReport()) loadTeams();
}

export function rerenderReports() {
  fillSelects();
  if ($('rep-team').options.length) $('rep-team').options[0].textContent = t('allTeams');
  if (shown) render();
}

function fillSelects() {
  const sel = $('rep-employee');
  const cur = sel.value;
  clear(sel).append(h('option', { value: '' }, t('allEmployees')),
    ...state.employees.filter((e) => (e.role || 'agent') === 'agent').map((e) => h('option', { value: e.id }, e.name && e.name !== e.id ? `${e.name} (${e.id})` : e.id)));
  sel.value = cur;
  const acc = $('rep-account');
  const curA = acc.value;
  const accounts = [...new Set([...(state.me && state.me.accounts) || [], ...state.accounts])].sort();
  clear(acc).append(h('option', { value: '' }, t('allAccounts')), ...accounts.map((a) => h('option', { value: a }, a)));
  acc.value = curA;
}

async function loadTeams() {
  let teams = [];
  try {
    teams = ((await api('GET', '/api/teams')) || {}).teams || [];
  } catch { /* no teams to pick from */ }
  const sel = $('rep-team');
  const cur = sel.value;
  clear(sel).append(h('option', { value: '' }, t('allTeams')), ...teams.map((x) => h('option', { value: x.id }, x.name || x.id)));
  sel.value = cur;
}

// localDay is the date (YYYY-MM-DD) of the instant ms on this computer.
const localDay = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 10);

// lastDays sets the range to the last n days, today included.
function lastDays(n) {
  $('rep-to').value = localDay(Date.now());
  $('rep-from').value = localDay(Date.now() - (n - 1) * 86400000);
}

// params are the form's filters as the API names them.
function params() {
  const q = new URLSearchParams({ tz: String(-new Date().getTimezoneOffset()) });
  for (const [k, id] of [['from', 'rep-from'], ['to', 'rep-to'], ['team', 'rep-team'], ['employee', 'rep-employee'], ['account', 'rep-account']]) {
    const v = $(id).value;
    if (v) q.set(k, v);
  }
  return q;
}

async function load(name) {
  const q = params();
  const mine = ++loadSeq;
  $('rep-error').hidden = true;
  $('report-view').setAttribute('aria-busy', 'true');
  try {
    const rep = await api('GET', `/api/reports/${name}?${q}`);
    if (mine !== loadSeq) return;
    shown = rep;
    query = q;
    render();
  } catch (e) {
    if (mine !== loadSeq) return;
    shown = null;
    clear($('rep-body'));
    $('rep-error').hidden = false;
    $('rep-error').textContent = e instanceof ApiError && e.status === 403 ? t('notAllowed')
      : e instanceof ApiError && e.status === 0 ? t('cannotReach') : e.message;
  } finally {
    if (mine === loadSeq) $('report-view').setAttribute('aria-busy', 'false');
  }
}

// ---------------------------------------------------------------- drawing

const num = (v) => Number(v || 0).toLocaleString(locale());

// duration writes milliseconds as seconds, minutes or hours.
function duration(ms) {
  const s = Math.round(Number(ms || 0) / 1000);
  if (s < 60) return t('durS', { s });
  if (s < 3600) return t('durMS', { m: Math.floor(s / 60), s: s % 60 });
  return t('durHM', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}

function cell(type, v) {
  switch (type) {
    case 'count': return num(v);
    case 'ms': return duration(v);
    case 'time': return v ? fullTime(v) : '';
    case 'employee': return v ? employeeName(v) : t('nobody');
    case 'state': return t(`dstate_${v}`);
    case 'conv': {
      const [account, openid] = splitConv(v);
      return h('a', { href: `#/c/${encodeURIComponent(v)}`, title: v }, `${shortID(openid)} · ${account}`);
    }
    default: return v === 'all' ? t('repEveryone') : String(v ?? '');
  }
}

function column(tab, id) {
  const i = tab.columns.findIndex((c) => c.id === id);
  return tab.rows.map((r) => r[i]);
}

// drill opens the messages behind a bar in the search view, within the
// report's range and filters. The search's dates are UTC days, the
// report's the browser's: a day's bar finds that UTC day's messages.
function drill(extra) {
  const f = { from: query.get('from') || '', to: query.get('to') || '', employee: query.get('employee') || '', account: query.get('account') || '', ...extra };
  searchFor(f);
}

function teamInbox(team) {
  location.hash = '#/';
  const sel = $('filter-team');
  sel.value = team;
  sel.dispatchEvent(new Event('change'));
}

// chartOf draws the chart of a table, or returns null for the tables
// that are lists (waiting, closing, failures, overall).
function chartOf(name, tab) {
  const days = column(tab, 'day');
  const series = (ids) => ids.map((id, k) => ({ name: t(`rc_${id}`), values: column(tab, id).map(Number), cls: `series-${id} series-${k}` }));
  const byDay = (ids, opts = {}) => barChart({
    labels: days.map((d) => d.slice(5)), series: series(ids), format: num, title: t(`rt_${name}_${tab.id}`),
    onBar: (i) => drill({ from: days[i], to: days[i], ...opts.drill }), ...opts,
  });
  switch (`${name}.${tab.id}`) {
    case 'volume.by_day': return byDay(['in', 'out']);
    case 'volume.clients': return byDay(['new', 'returning'], { stacked: true, drill: { direction: 'in' } });
    case 'volume.conversations': return byDay(['opened', 'resolved', 'reopened']);
    case 'delivery.by_day': return byDay(['sent', 'failed', 'unknown', 'refused', 'pending'], { stacked: true, drill: { direction: 'out' } });
    case 'compliance.hits_by_day': return byDay(['hits'], { onBar: () => { location.hash = '#/alerts'; } });
    case 'compliance.actions_by_day': return byDay(['blocked_sends', 'exports'], { onBar: () => { location.hash = '#/audit'; } });
    case 'compliance.hits_by_rule': case 'compliance.hits_by_team': {
      const key = tab.columns[0].id;
      const keys = column(tab, key);
      return hbarChart({
        labels: keys, series: series(['hits']), format: num, title: t(`rt_${name}_${tab.id}`),
        onBar: (i) => (key === 'team' ? teamInbox(keys[i]) : (location.hash = '#/alerts')),
      });
    }
    case 'volume.by_hour': {
      const hours = column(tab, 'hour');
      const labels = Array.from({ length: 24 }, (_, i) => String(i).padStart(2, '0'));
      const at = (id) => labels.map((l) => { const i = hours.indexOf(l); return i < 0 ? 0 : Number(column(tab, id)[i]); });
      return barChart({ labels, series: [{ name: t('rc_in'), values: at('in'), cls: 'series-in' }, { name: t('rc_out'), values: at('out'), cls: 'series-out' }], format: num, title: t('rt_volume_by_hour') });
    }
    case 'volume.by_account': case 'volume.by_employee': case 'volume.by_team': {
      const key = tab.columns[0].id;
      const keys = column(tab, key);
      return hbarChart({
        labels: keys.map((k) => (key === 'employee' ? employeeName(k) || t('nobody') : k)), series: series(['in', 'out']), format: num,
        title: t(`rt_${name}_${tab.id}`),
        onBar: (i) => (key === 'team' ? teamInbox(keys[i]) : drill({ [key]: keys[i] })),
      });
    }
    case 'responsiveness.by_employee': case 'responsiveness.by_team': {
      const key = tab.columns[0].id;
      const keys = column(tab, key);
      return hbarChart({
        labels: keys.map((k) => (key === 'employee' ? employeeName(k) || t('nobody') : k)), series: series(['median_ms', 'p90_ms']), format: duration,
        title: t(`rt_${name}_${tab.id}`),
        onBar: (i) => (key === 'team' ? teamInbox(keys[i]) : drill({ employee: keys[i], direction: 'out' })),
      });
    }
    default: return null;
  }
}

function legend(tab, name) {
  const chart = chartOf(name, tab);
  if (!chart) return null;
  const ids = tab.columns.filter((c) => c.type === 'count' || c.type === 'ms').map((c) => c.id)
    .filter((id) => !['replies', 'first_replies', 'first_median_ms', 'first_p90_ms'].includes(id));
  return h('div', { class: 'chart' },
    h('div', { class: 'chart-scroll' }, chart),
    h('ul', { class: 'chart-legend' }, ids.map((id, k) => h('li', {}, h('span', { class: `swatch series-${id} series-${k}` }), t(`rc_${id}`)))));
}

function tableEl(tab) {
  const types = tab.columns.map((c) => c.type);
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'audit-table report-table', dataset: { table: tab.id } },
      h('thead', {}, h('tr', {}, tab.columns.map((c) => h('th', { class: numeric(c.type) ? 'num' : null }, t(`rc_${c.id}`))))),
      h('tbody', {}, tab.rows.length
        ? tab.rows.map((r) => h('tr', {}, r.map((v, i) => h('td', { class: numeric(types[i]) ? 'num' : null }, cell(types[i], v)))))
        : h('tr', {}, h('td', { colspan: tab.columns.length, class: 'muted' }, t('repNoData'))))));
}

const numeric = (type) => type === 'count' || type === 'ms';

function render() {
  const rep = shown;
  const body = clear($('rep-body'));
  const name = rep.name;
  $('rep-summary').textContent = t('repRange', { from: query.get('from') || '', to: query.get('to') || '' });
  for (const tab of rep.tables) {
    const csv = new URLSearchParams(query);
    csv.set('format', 'csv');
    csv.set('table', tab.id);
    body.append(h('section', { class: 'card report-card', dataset: { table: tab.id } },
      h('div', { class: 'report-card-head' },
        h('h3', {}, t(`rt_${name}_${tab.id}`)),
        h('a', { class: 'btn btn-small', href: `/api/reports/${name}?${csv}`, download: `report-${name}-${tab.id}.csv` }, t('repCSV'))),
      h('p', { class: 'muted small' }, t(`rx_${name}_${tab.id}`)),
      tab.rows.length ? legend(tab, name) : null,
      tableEl(tab)));
  }
}

export function setupReports() {
  $('nav-reports').addEventListener('click', () => { location.hash = `#/reports/${current || 'volume'}`; });
  for (const n of NAMES) $(`rep-tab-${n}`).addEventListener('click', () => { location.hash = `#/reports/${n}`; });
  $('rep-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (current) load(current);
  });
  for (const [id, days] of [['rep-7', 7], ['rep-30', 30]]) {
    $(id).addEventListener('click', () => {
      lastDays(days);
      if (current) load(current);
    });
  }
}
