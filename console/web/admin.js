// The Admin view (role admin only; the relay refuses everyone else the
// API anyway): the directory of employees, teams and Official Accounts,
// changed at run time (docs/console-api.md, /api/admin/...). Every entry
// carries a version; every change sends the version it was made on, and
// a change made meanwhile by someone else (409) is said in words and the
// directory fetched again. Every change is audited by the relay.
//
// Element ids (stable, for tests):
//   nav-admin                 the rail button (hidden unless admin); the view is #/admin
//   admin-view                the view
//   admin-readonly            notice: the directory cannot be changed (writable=false)
//   admin-load-error          the directory could not be fetched
//   admin-tab-employees|teams|accounts  the tabs (aria-selected);
//   admin-employees|teams|accounts      their panels
// Employees:
//   admin-emp-new             "New employee" (opens admin-emp-form)
//   admin-emp-form            the new-employee form: admin-new-id, admin-new-name,
//                             admin-new-role, admin-new-password, admin-new-teams,
//                             admin-new-all-teams (a supervisor's grant of every conversation) and
//                             admin-new-accounts (checkboxes: input[value=<id>]),
//                             admin-emp-create, admin-emp-cancel, admin-emp-form-error
//   admin-emp-rows            the table body; one tr#admin-emp-row-<id> per employee,
//                             data-emp=<id>, data-disabled, data-seeded, data-version;
//                             its edit button: button[data-action="edit"]
// The employee dialog (admin-dlg, data-emp=<id> while open):
//   admin-edit-name, admin-edit-role, admin-edit-teams, admin-edit-all-teams, admin-edit-accounts
//   (checkboxes), admin-edit-enabled (checkbox), admin-save, admin-cancel,
//   admin-error (any refusal, the conflict included; data-status=<HTTP status>),
//   admin-pw, admin-pw-set, admin-token-new, admin-token-box, admin-token-value,
//   admin-token-copy, admin-handover-to (select of enabled agents),
//   admin-handover, admin-handover-result (data-moved, data-failed),
//   admin-history-show
// History (admin-history-dlg): admin-history (li[data-version]), admin-history-error
// Teams: admin-team-form (admin-team-id, admin-team-name, admin-team-create),
//   admin-team-error, admin-team-rows: tr#admin-team-row-<id>, data-team=<id>,
//   buttons data-action="rename" | "save" | "delete" | "history"
// Accounts: admin-acc-error, admin-acc-rows: tr#admin-acc-row-<id>, data-account=<id>,
//   input.admin-acc-name, buttons data-action="save" | "history"

import { $, h, clear } from './dom.js';
import { api, ApiError } from './api.js';
import { t } from './i18n.js';
import { state, emit, employeeName } from './store.js';
import { fullTime } from './format.js';
import { loadJournal, renderJournal } from './journal.js';

export const isAdmin = () => !!state.me && state.me.role === 'admin';

const TABS = ['employees', 'teams', 'accounts'];

let dir = null; // GET /api/admin/directory
let tab = 'employees';
let loading = null;
let editing = null; // {id, version} of the employee in the dialog
let renaming = ''; // the team whose name is being edited
let historyShown = null; // {kind, id, versions}

// adminOf says whether the hash names the Admin view (for an admin).
export const adminOf = (hash) => hash === '#/admin' && isAdmin();

// showAdmin shows the Admin view, or hides it.
export function showAdmin(on) {
  $('admin-view').hidden = !on;
  $('nav-admin').classList.toggle('is-active', on);
  if (on) {
    $('tool-pane').hidden = false;
    $('nav-inbox').classList.remove('is-active');
    $('nav-admin').setAttribute('aria-current', 'page');
    load();
  } else {
    $('nav-admin').removeAttribute('aria-current');
    for (const d of [$('admin-dlg'), $('admin-history-dlg')]) if (d.open) d.close();
  }
}

// startAdmin shows the navigation the role allows; called after sign-in.
export function startAdmin() {
  $('nav-admin').hidden = !isAdmin();
  dir = null;
  editing = null;
  renaming = '';
  historyShown = null;
  clear($('admin-emp-rows'));
  clear($('admin-team-rows'));
  clear($('admin-acc-rows'));
  $('admin-emp-form').hidden = true;
  selectTab('employees');
}

// rerenderAdmin draws the view again in the page's language.
export function rerenderAdmin() {
  renderJournal();
  if (!dir) return;
  render();
  if (editing && $('admin-dlg').open) fillEdit(false);
  if (historyShown && $('admin-history-dlg').open) renderHistory();
}

// ---------------------------------------------------------------- loading

async function load() {
  if (loading) return loading;
  const err = $('admin-load-error');
  loading = (async () => {
    $('admin-view').setAttribute('aria-busy', 'true');
    loadJournal(); // beside the directory, never in its way
    try {
      dir = await api('GET', '/api/admin/directory');
      err.hidden = true;
      render();
    } catch (e) {
      err.hidden = false;
      err.textContent = errText(e);
    } finally {
      $('admin-view').setAttribute('aria-busy', 'false');
      loading = null;
    }
  })();
  return loading;
}

// changed fetches the directory again after a change, and what the rest
// of the page knows of employees and teams (transfer list, filters).
async function changed() {
  await load();
  try {
    const r = await api('GET', '/api/employees');
    state.employees = r.employees || [];
  } catch { /* the page keeps the list it had */ }
  emit('employees'); // the inbox fetches its teams again too
}

function errText(e) {
  if (!(e instanceof ApiError)) return e.message;
  switch (e.status) {
    case 0: return t('cannotReach');
    case 403: return t('notAllowed');
    case 409: return t('adminConflict');
    case 503: return t('adminUnavailable', { why: e.message });
    default: return e.message;
  }
}

function showError(el, e, text) {
  el.hidden = false;
  el.textContent = text || errText(e);
  el.dataset.status = e instanceof ApiError ? String(e.status) : '';
}

function hideError(el) {
  el.hidden = true;
  el.textContent = '';
  delete el.dataset.status;
}

const writable = () => !!dir && dir.writable !== false;
// nameOf names an employee by the directory (newer than the page's list).
const nameOf = (id) => { const x = (dir && dir.employees || []).find((e) => e.id === id); return (x && x.name) || employeeName(id) || id; };
const employee = (id) => (dir && dir.employees || []).find((e) => e.id === id);
const teamName = (id) => { const x = (dir && dir.teams || []).find((tm) => tm.id === id); return (x && x.name) || id; };
const accountName = (id) => { const x = (dir && dir.accounts || []).find((a) => a.id === id); return (x && x.name) || id; };
const roles = () => (dir && dir.roles && dir.roles.length ? dir.roles : ['agent', 'supervisor', 'compliance', 'admin']);

// changedWords says who changed an entry last, and when.
function changedWords(x, seeded) {
  if (!x.updated_at) return seeded ? t('adminFromConfig') : '—';
  return t('adminChangedBy', { by: nameOf(x.updated_by) || '?', at: fullTime(x.updated_at) });
}

// ---------------------------------------------------------------- render

function selectTab(name) {
  tab = name;
  for (const n of TABS) {
    $(`admin-tab-${n}`).setAttribute('aria-selected', String(n === name));
    $(`admin-${n}`).hidden = n !== name;
  }
}

function render() {
  const ro = !writable();
  $('admin-readonly').hidden = !ro;
  $('admin-view').dataset.writable = String(!ro);
  for (const id of ['admin-emp-new', 'admin-emp-create', 'admin-team-create', 'admin-save', 'admin-pw-set', 'admin-token-new']) $(id).disabled = ro;
  if (ro) $('admin-emp-form').hidden = true;
  fillRoles($('admin-new-role'));
  checks($('admin-new-teams'), dir.teams || [], checkedValues($('admin-new-teams')), 'team');
  checks($('admin-new-accounts'), dir.accounts || [], checkedValues($('admin-new-accounts')), 'account');
  renderEmployees();
  renderTeams();
  renderAccounts();
}

function fillRoles(sel, want) {
  const cur = want || sel.value || 'agent';
  clear(sel).append(...roles().map((r) => h('option', { value: r }, t(`role_${r}`))));
  sel.value = cur;
}

// checks fills a fieldset with one checkbox per entry (teams or
// accounts), keeping its legend.
function checks(fs, entries, selected, kind) {
  const legend = fs.querySelector('legend');
  clear(fs).append(legend);
  if (!entries.length) {
    fs.append(h('span', { class: 'muted small' }, kind === 'team' ? t('adminNoTeams') : t('adminNoAccounts')));
    return;
  }
  for (const x of entries) {
    fs.append(h('label', { class: 'check' },
      h('input', { type: 'checkbox', value: x.id, checked: selected.includes(x.id), disabled: !writable() }),
      h('span', {}, x.name && x.name !== x.id ? `${x.name} (${x.id})` : x.id)));
  }
}

const checkedValues = (fs) => [...fs.querySelectorAll('input[type=checkbox]:checked')].map((i) => i.value);

function renderEmployees() {
  const tb = clear($('admin-emp-rows'));
  const emps = [...(dir.employees || [])].sort((a, b) => (a.id < b.id ? -1 : 1));
  for (const e of emps) {
    tb.append(h('tr', { id: `admin-emp-row-${e.id}`, class: e.disabled ? 'is-disabled' : '', dataset: { emp: e.id, disabled: e.disabled, seeded: e.seeded, version: e.version } },
      h('td', {}, h('code', {}, e.id), e.seeded ? h('span', { class: 'chip chip-seeded', title: t('adminSeededNote') }, t('adminFromConfig')) : null),
      h('td', {}, e.name || ''),
      h('td', {}, t(`role_${e.role}`)),
      h('td', {}, [...(e.all_teams ? [t('adminAllTeams')] : []), ...(e.teams || []).map(teamName)].join(', ')),
      h('td', { class: 'admin-col-accounts' }, (e.accounts || []).map(accountName).join(', ')),
      h('td', {},
        h('span', { class: `chip ${e.disabled ? 'chip-disabled' : 'chip-resolved'}` }, e.disabled ? t('adminDisabled') : t('adminEnabled')),
        h('span', { class: 'muted small admin-creds-state' }, credWords(e))),
      h('td', { class: 'muted small admin-col-changed' }, changedWords(e, e.seeded)),
      h('td', {}, h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'edit', emp: e.id }, on: { click: () => openEdit(e.id) } }, writable() ? t('adminEdit') : t('adminView')))));
  }
  if (!emps.length) tb.append(h('tr', {}, h('td', { colspan: '8', class: 'muted' }, t('adminNoEmployees'))));
}

function credWords(e) {
  const have = [e.has_password ? t('adminHasPassword') : '', e.has_token ? t('adminHasToken') : ''].filter(Boolean);
  return have.length ? have.join(' · ') : t('adminNoCredentials');
}

function renderTeams() {
  const tb = clear($('admin-team-rows'));
  const teams = [...(dir.teams || [])].sort((a, b) => (a.id < b.id ? -1 : 1));
  for (const tm of teams) {
    const members = tm.members || [];
    const editingName = renaming === tm.id && writable();
    const input = h('input', { type: 'text', class: 'admin-team-name', value: tm.name || '', 'aria-label': t('adminName'), maxlength: '200' });
    const row = h('tr', { id: `admin-team-row-${tm.id}`, dataset: { team: tm.id, version: tm.version, members: members.length } },
      h('td', {}, h('code', {}, tm.id)),
      h('td', {}, editingName ? input : (tm.name || '')),
      h('td', {}, h('strong', {}, String(members.length)), members.length ? h('span', { class: 'muted small' }, ` · ${members.map(nameOf).join(', ')}`) : null),
      h('td', { class: 'muted small admin-col-changed' }, changedWords(tm, false)),
      h('td', { class: 'admin-actions' },
        editingName
          ? [h('button', { type: 'button', class: 'btn btn-small btn-primary', dataset: { action: 'save' }, on: { click: () => renameTeam(tm, input.value) } }, t('adminSave')),
            h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'cancel' }, on: { click: () => { renaming = ''; renderTeams(); } } }, t('cancel'))]
          : [h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'rename' }, disabled: !writable(), on: { click: () => { renaming = tm.id; renderTeams(); } } }, t('adminRename')),
            h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'delete' }, disabled: !writable(), on: { click: (ev) => deleteTeam(tm, ev.currentTarget) } }, t('adminDelete'))],
        h('button', { type: 'button', class: 'btn btn-small btn-ghost', dataset: { action: 'history' }, on: { click: () => openHistory('team', tm.id) } }, t('adminHistory'))));
    if (editingName) input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); renameTeam(tm, input.value); } });
    tb.append(row);
  }
  if (!teams.length) tb.append(h('tr', {}, h('td', { colspan: '5', class: 'muted' }, t('adminNoTeams'))));
}

function renderAccounts() {
  const tb = clear($('admin-acc-rows'));
  for (const a of dir.accounts || []) {
    const input = h('input', { type: 'text', class: 'admin-acc-name', value: a.name || '', 'aria-label': t('adminDisplayName'), maxlength: '200', disabled: !writable() });
    const save = () => saveAccount(a, input.value);
    input.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); save(); } });
    tb.append(h('tr', { id: `admin-acc-row-${a.id}`, dataset: { account: a.id, version: a.version } },
      h('td', {}, h('code', {}, a.id)),
      h('td', {}, h('div', { class: 'admin-inline' }, input,
        h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'save' }, disabled: !writable(), on: { click: save } }, t('adminSave')))),
      h('td', {}, (a.agents || []).length ? (a.agents || []).map(nameOf).join(', ') : h('span', { class: 'muted' }, t('adminNoAgents'))),
      h('td', { class: 'muted small admin-col-changed' }, changedWords(a, false)),
      h('td', {}, h('button', { type: 'button', class: 'btn btn-small btn-ghost', dataset: { action: 'history' }, on: { click: () => openHistory('account', a.id) } }, t('adminHistory')))));
  }
  if (!(dir.accounts || []).length) tb.append(h('tr', {}, h('td', { colspan: '5', class: 'muted' }, t('adminNoAccounts'))));
}

// ---------------------------------------------------------------- employees

function openNew() {
  const f = $('admin-emp-form');
  f.reset();
  hideError($('admin-emp-form-error'));
  fillRoles($('admin-new-role'), 'agent');
  checks($('admin-new-teams'), dir ? dir.teams || [] : [], [], 'team');
  checks($('admin-new-accounts'), dir ? dir.accounts || [] : [], [], 'account');
  f.hidden = false;
  $('admin-new-id').focus();
}

async function createEmployee(ev) {
  ev.preventDefault();
  const err = $('admin-emp-form-error');
  hideError(err);
  const body = {
    id: $('admin-new-id').value.trim(),
    name: $('admin-new-name').value.trim(),
    role: $('admin-new-role').value,
    teams: checkedValues($('admin-new-teams')),
    accounts: checkedValues($('admin-new-accounts')),
  };
  // The grant is a supervisor's only; the server refuses it for others.
  body.all_teams = body.role === 'supervisor' && $('admin-new-all-teams').checked;
  const pw = $('admin-new-password').value;
  if (!body.id) { showError(err, null, t('adminIdNeeded')); $('admin-new-id').focus(); return; }
  if (pw) {
    if (pw.length < 10) { showError(err, null, t('adminPasswordShort')); $('admin-new-password').focus(); return; }
    body.password = pw;
  }
  $('admin-emp-create').disabled = true;
  try {
    const e = await api('POST', '/api/admin/employees', { json: body });
    $('admin-emp-form').reset();
    $('admin-emp-form').hidden = true;
    emit('toast', { text: t('adminEmployeeCreated', { id: e.id }) });
    await changed();
  } catch (e) {
    showError(err, e);
    if (e instanceof ApiError && e.status === 409) load();
  } finally {
    $('admin-emp-create').disabled = !writable();
  }
}

function openEdit(id) {
  const e = employee(id);
  if (!e) return;
  editing = { id, version: e.version };
  hideError($('admin-error'));
  $('admin-handover-result').hidden = true;
  $('admin-handover-to').value = '';
  $('admin-pw').value = '';
  hideToken();
  fillEdit(true);
  const dlg = $('admin-dlg');
  dlg.dataset.emp = id;
  if (!dlg.open) dlg.showModal();
  $('admin-edit-name').focus();
}

// fillEdit draws the dialog from the directory's entry; values too when
// asked (opening, or after a conflict), else only the words.
function fillEdit(values) {
  const e = employee(editing.id);
  if (!e) return;
  const ro = !writable();
  $('admin-dlg-title').textContent = t('adminEditTitle', { id: e.id });
  $('admin-edit-seeded').hidden = !e.seeded;
  $('admin-edit-meta').textContent = `${t('adminVersion', { n: e.version })} · ${changedWords(e, e.seeded)} · ${credWords(e)}`;
  $('admin-dlg').dataset.version = String(e.version);
  if (values) {
    editing.version = e.version;
    $('admin-edit-name').value = e.name || '';
    fillRoles($('admin-edit-role'), e.role);
    $('admin-edit-enabled').checked = !e.disabled;
    $('admin-edit-all-teams').checked = !!e.all_teams;
    checks($('admin-edit-teams'), dir.teams || [], e.teams || [], 'team');
    checks($('admin-edit-accounts'), dir.accounts || [], e.accounts || [], 'account');
  } else {
    fillRoles($('admin-edit-role'));
    checks($('admin-edit-teams'), dir.teams || [], checkedValues($('admin-edit-teams')), 'team');
    checks($('admin-edit-accounts'), dir.accounts || [], checkedValues($('admin-edit-accounts')), 'account');
  }
  for (const id of ['admin-edit-name', 'admin-edit-role', 'admin-edit-enabled', 'admin-edit-all-teams', 'admin-pw']) $(id).disabled = ro;
  fillHandover(e);
}

// fillHandover offers the enabled agents other than e to take e's
// conversations.
function fillHandover(e) {
  const sel = $('admin-handover-to');
  const keep = sel.value;
  clear(sel);
  for (const a of dir.employees || []) {
    if (a.id === e.id || a.disabled || a.role !== 'agent') continue;
    sel.append(h('option', { value: a.id }, a.name && a.name !== a.id ? `${a.name} (${a.id})` : a.id));
  }
  if (keep) sel.value = keep;
  $('admin-handover').disabled = !writable() || !sel.options.length;
}

async function handOver() {
  if (!editing) return;
  hideError($('admin-error'));
  const out = $('admin-handover-result');
  const to = $('admin-handover-to').value;
  if (!to) { out.hidden = false; out.textContent = t('adminHandoverNone'); return; }
  $('admin-handover').disabled = true;
  try {
    const r = await api('POST', `/api/admin/employees/${encodeURIComponent(editing.id)}/handover`, { json: { to } });
    const n = (r.moved || []).length;
    out.hidden = false;
    out.dataset.moved = String(n);
    out.dataset.failed = '0';
    out.textContent = t('adminHandoverDone', { n, name: employeeName(to) });
  } catch (e) {
    if (e instanceof ApiError && e.status === 503 && e.body.moved) {
      out.hidden = false;
      out.dataset.moved = String(e.body.moved.length);
      out.dataset.failed = String((e.body.failed || []).length);
      out.textContent = t('adminHandoverFailed', { n: e.body.moved.length, failed: (e.body.failed || []).length });
    } else {
      showError($('admin-error'), e);
    }
  } finally {
    $('admin-handover').disabled = !writable();
  }
}

// refused shows a refusal in the dialog; a conflict fetches the
// directory again and shows the employee as it is now.
async function refused(e) {
  showError($('admin-error'), e);
  if (e instanceof ApiError && (e.status === 409 || e.status === 404)) {
    await load();
    if (editing && employee(editing.id)) fillEdit(true);
  }
}

// applied takes the entry a change answered: its new version.
function applied(emp) {
  if (!emp || !dir) return;
  const i = dir.employees.findIndex((x) => x.id === emp.id);
  if (i >= 0) dir.employees[i] = emp;
  if (editing && editing.id === emp.id) {
    editing.version = emp.version;
    fillEdit(false);
  }
}

async function saveEdit(ev) {
  ev.preventDefault();
  if (!editing) return;
  hideError($('admin-error'));
  const body = {
    name: $('admin-edit-name').value.trim(),
    role: $('admin-edit-role').value,
    teams: checkedValues($('admin-edit-teams')),
    accounts: checkedValues($('admin-edit-accounts')),
    disabled: !$('admin-edit-enabled').checked,
    version: editing.version,
  };
  body.all_teams = body.role === 'supervisor' && $('admin-edit-all-teams').checked;
  $('admin-save').disabled = true;
  try {
    const emp = await api('PUT', `/api/admin/employees/${encodeURIComponent(editing.id)}`, { json: body });
    applied(emp);
    $('admin-dlg').close();
    emit('toast', { text: t('adminSaved', { id: emp.id }) });
    await changed();
  } catch (e) {
    await refused(e);
  } finally {
    $('admin-save').disabled = !writable();
  }
}

async function setPassword() {
  if (!editing) return;
  hideError($('admin-error'));
  const pw = $('admin-pw').value;
  if (pw.length < 10) { showError($('admin-error'), null, t('adminPasswordShort')); $('admin-pw').focus(); return; }
  $('admin-pw-set').disabled = true;
  try {
    const emp = await api('POST', `/api/admin/employees/${encodeURIComponent(editing.id)}/password`, { json: { password: pw, version: editing.version } });
    $('admin-pw').value = '';
    applied(emp);
    emit('toast', { text: t('adminPasswordSet', { id: emp.id }) });
    renderEmployees();
  } catch (e) {
    await refused(e);
  } finally {
    $('admin-pw-set').disabled = !writable();
  }
}

async function newToken() {
  if (!editing) return;
  hideError($('admin-error'));
  hideToken();
  $('admin-token-new').disabled = true;
  try {
    const r = await api('POST', `/api/admin/employees/${encodeURIComponent(editing.id)}/token`, { json: { version: editing.version } });
    applied(r.employee);
    $('admin-token-value').textContent = r.token;
    $('admin-token-box').hidden = false;
    renderEmployees();
  } catch (e) {
    await refused(e);
  } finally {
    $('admin-token-new').disabled = !writable();
  }
}

// hideToken forgets the token shown: it is shown once.
function hideToken() {
  $('admin-token-box').hidden = true;
  $('admin-token-value').textContent = '';
  $('admin-token-copy').textContent = t('copy');
}

async function copyToken() {
  const v = $('admin-token-value').textContent;
  try {
    await navigator.clipboard.writeText(v);
    $('admin-token-copy').textContent = t('copied');
  } catch {
    // No clipboard (plain http): select the token for Ctrl+C.
    const r = document.createRange();
    r.selectNodeContents($('admin-token-value'));
    const s = getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }
}

// ---------------------------------------------------------------- teams

async function createTeam(ev) {
  ev.preventDefault();
  const err = $('admin-team-error');
  hideError(err);
  const id = $('admin-team-id').value.trim();
  const name = $('admin-team-name').value.trim();
  if (!id) { showError(err, null, t('adminIdNeeded')); $('admin-team-id').focus(); return; }
  $('admin-team-create').disabled = true;
  try {
    const tm = await api('POST', '/api/admin/teams', { json: { id, name } });
    $('admin-team-form').reset();
    emit('toast', { text: t('adminTeamCreated', { id: tm.id }) });
    await changed();
  } catch (e) {
    showError(err, e);
    if (e instanceof ApiError && e.status === 409) load();
  } finally {
    $('admin-team-create').disabled = !writable();
  }
}

async function renameTeam(tm, name) {
  const err = $('admin-team-error');
  hideError(err);
  try {
    await api('PUT', `/api/admin/teams/${encodeURIComponent(tm.id)}`, { json: { name: name.trim(), version: tm.version } });
    renaming = '';
    emit('toast', { text: t('adminSaved', { id: tm.id }) });
    await changed();
  } catch (e) {
    showError(err, e, `${tm.id}: ${errText(e)}`);
    if (e instanceof ApiError && (e.status === 409 || e.status === 404)) { renaming = ''; load(); }
  }
}

// deleteTeam asks once more on the button itself, then deletes.
async function deleteTeam(tm, btn) {
  const err = $('admin-team-error');
  if (btn.dataset.confirm !== 'yes') {
    btn.dataset.confirm = 'yes';
    btn.textContent = t('adminDeleteConfirm');
    setTimeout(() => { if (btn.isConnected) { delete btn.dataset.confirm; btn.textContent = t('adminDelete'); } }, 5000);
    return;
  }
  hideError(err);
  btn.disabled = true;
  try {
    await api('DELETE', `/api/admin/teams/${encodeURIComponent(tm.id)}?version=${encodeURIComponent(tm.version)}`);
    emit('toast', { text: t('adminTeamDeleted', { id: tm.id }) });
    await changed();
  } catch (e) {
    // A team with members is refused (409 or 400): the relay's words say so.
    showError(err, e, `${tm.id}: ${e instanceof ApiError && (e.status === 409 || e.status === 400) ? e.message : errText(e)}`);
    btn.disabled = false;
    if (e instanceof ApiError && (e.status === 409 || e.status === 404)) load();
  }
}

// ---------------------------------------------------------------- accounts

async function saveAccount(a, name) {
  const err = $('admin-acc-error');
  hideError(err);
  try {
    await api('PUT', `/api/admin/accounts/${encodeURIComponent(a.id)}`, { json: { name: name.trim(), version: a.version } });
    emit('toast', { text: t('adminSaved', { id: a.id }) });
    await changed();
  } catch (e) {
    showError(err, e, `${a.id}: ${errText(e)}`);
    if (e instanceof ApiError && e.status === 409) load();
  }
}

// ---------------------------------------------------------------- history

async function openHistory(kind, id) {
  historyShown = { kind, id, versions: null };
  const dlg = $('admin-history-dlg');
  dlg.dataset.kind = kind;
  dlg.dataset.id = id;
  hideError($('admin-history-error'));
  renderHistory();
  if (!dlg.open) dlg.showModal();
  try {
    const r = await api('GET', `/api/admin/history?${new URLSearchParams({ kind, id })}`);
    if (historyShown.kind !== kind || historyShown.id !== id) return;
    historyShown.versions = r.versions || [];
    renderHistory();
  } catch (e) {
    showError($('admin-history-error'), e);
  }
}

// Credentials never reach the page: the relay says only whether they
// are set ("(set)"), and so does the history.
const HIDDEN_FIELDS = new Set(['id']);
const CRED_FIELDS = { password_hash: 'adminHasPassword', token_hash: 'adminHasToken' };

function renderHistory() {
  const { kind, id, versions } = historyShown;
  $('admin-history-title').textContent = t('adminHistoryTitle', { kind: t(`adminKind_${kind}`), id });
  const ol = clear($('admin-history'));
  if (!versions) { ol.append(h('li', { class: 'muted' }, t('loading'))); return; }
  if (!versions.length) { ol.append(h('li', { class: 'muted' }, t('adminNoHistory'))); return; }
  // Newest first: what it is now, then how it came to be.
  for (const v of [...versions].reverse()) {
    const entry = v.entry || {};
    const fields = Object.entries(entry).filter(([k]) => !HIDDEN_FIELDS.has(k)).map(([k, val]) => {
      if (CRED_FIELDS[k]) return h('span', { class: 'admin-field' }, t(CRED_FIELDS[k]), ' ✓');
      const shown = Array.isArray(val) ? val.join(', ') || '—' : k === 'role' ? t(`role_${val}`) : String(val);
      return h('span', { class: 'admin-field' }, h('span', { class: 'muted' }, `${k}: `), shown);
    });
    ol.append(h('li', { dataset: { version: v.version, deleted: v.deleted } },
      h('div', { class: 'admin-history-head' },
        h('strong', {}, t('adminVersion', { n: v.version })),
        v.deleted ? h('span', { class: 'chip chip-disabled' }, t('adminDeleted')) : null,
        h('span', { class: 'muted small' }, t('adminChangedBy', { by: nameOf(v.by) || '?', at: fullTime(v.at) }))),
      v.deleted ? null : h('div', { class: 'admin-fields small' }, fields)));
  }
}

// ---------------------------------------------------------------- set up

export function setupAdmin() {
  $('nav-admin').addEventListener('click', () => { location.hash = '#/admin'; });
  for (const n of TABS) $(`admin-tab-${n}`).addEventListener('click', () => selectTab(n));
  $('admin-emp-new').addEventListener('click', openNew);
  $('admin-emp-cancel').addEventListener('click', () => { $('admin-emp-form').hidden = true; });
  $('admin-emp-form').addEventListener('submit', createEmployee);
  $('admin-edit-form').addEventListener('submit', saveEdit);
  $('admin-cancel').addEventListener('click', () => $('admin-dlg').close());
  $('admin-dlg').addEventListener('close', () => { hideToken(); $('admin-pw').value = ''; editing = null; delete $('admin-dlg').dataset.emp; });
  $('admin-pw-set').addEventListener('click', setPassword);
  $('admin-pw').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); setPassword(); } });
  $('admin-token-new').addEventListener('click', newToken);
  $('admin-token-copy').addEventListener('click', copyToken);
  $('admin-handover').addEventListener('click', handOver);
  $('admin-history-show').addEventListener('click', () => { if (editing) openHistory('employee', editing.id); });
  $('admin-history-dlg').addEventListener('close', () => { historyShown = null; });
  $('admin-team-form').addEventListener('submit', createTeam);
}
