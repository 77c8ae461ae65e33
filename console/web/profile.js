// Client profiles: the display name, remark, tags and note employees
// give a client, since WeChat tells Official Accounts only an OpenID
// (GET/PUT /api/clients/{account}/{openid}/profile, /api/tags/{account};
// docs/console-api.md). Shown in the inbox, the thread header, the
// details pane and search results; edited in a dialog. Every change is a
// new archived, audited version: the history lists them.

import { $, h, clear } from './dom.js';
import { api, ApiError } from './api.js';
import { t } from './i18n.js';
import { state, emit, on as onStore, managesAll } from './store.js';
import { shortID, splitConv, fullTime } from './format.js';

const full = new Map(); // conv → the profile as GET returned it (with version, note)
const listed = new Map(); // conv → {name, remark, tags} from search results
const vocab = new Map(); // account → [tag]

const profilePath = (conv, tail = '') => {
  const [account, openid] = splitConv(conv);
  return `/api/clients/${encodeURIComponent(account)}/${encodeURIComponent(openid)}/profile${tail}`;
};

// profileOf is what the page knows of conv's client: {name, remark,
// tags[, note, version]}, or null.
export function profileOf(conv) {
  const c = state.convs.get(conv);
  return full.get(conv) || (c && c.profile) || listed.get(conv) || null;
}

// clientLabel is how the client is called: their display name, or the
// start and end of their OpenID.
export function clientLabel(conv) {
  const p = profileOf(conv);
  return p && p.name ? p.name : shortID(splitConv(conv)[1]);
}

// tagChips draws tags.
export function tagChips(tags) {
  return (tags || []).map((x) => h('span', { class: 'chip chip-tag' }, x));
}

// profileMatches reports whether q (lower case) is in the client's name,
// remark or a tag, as the inbox line has them.
export function profileMatches(conv, q) {
  const c = state.convs.get(conv);
  const p = c && c.profile;
  if (!p) return false;
  return [p.name, p.remark, ...(p.tags || [])].some((s) => s && s.toLowerCase().includes(q));
}

// rememberListed keeps the profiles a search answer carried.
export function rememberListed(profiles) {
  for (const [conv, p] of Object.entries(profiles || {})) listed.set(conv, p);
}

// mayEditProfile: whoever may read the conversation, but compliance
// officers, who only read.
export const mayEditProfile = () => !!state.me && state.me.role !== 'compliance';

// knownTags is every tag of the accounts the page knows, for the
// inbox's tag filter.
export function knownTags() {
  const all = new Set();
  for (const tags of vocab.values()) for (const x of tags) all.add(x);
  return [...all].sort();
}

async function loadVocab(account, force) {
  if (!account || (vocab.has(account) && !force)) return vocab.get(account) || [];
  try {
    const res = await api('GET', `/api/tags/${encodeURIComponent(account)}`);
    vocab.set(account, (res && res.tags) || []);
  } catch {
    if (!vocab.has(account)) vocab.set(account, []);
  }
  emit('tags');
  return vocab.get(account);
}

// loadVocabularies reads the tags of every account the page has seen.
function loadVocabularies() {
  const accounts = new Set([...state.accounts, ...((state.me && state.me.accounts) || [])]);
  for (const a of accounts) if (!vocab.has(a)) loadVocab(a);
}

// fetchProfile reads conv's profile and redraws what shows it.
async function fetchProfile(conv) {
  try {
    const p = await api('GET', profilePath(conv));
    full.set(conv, p);
    setSummary(conv, p);
  } catch {
    full.delete(conv);
  }
  if (state.open === conv) renderProfileCard();
  emit('profile', conv);
}

// setSummary puts p into the inbox line of conv.
function setSummary(conv, p) {
  const c = state.convs.get(conv);
  if (!c) return;
  c.profile = p && (p.name || p.remark || (p.tags && p.tags.length)) ? { name: p.name, remark: p.remark, tags: p.tags } : undefined;
}

// renderProfileCard draws the details pane's profile card of the open
// conversation.
export function renderProfileCard() {
  const conv = state.open;
  if (!conv) return;
  const p = profileOf(conv) || {};
  const box = clear($('d-profile'));
  const row = (label, value) => [h('dt', {}, label), h('dd', {}, value || '–')];
  box.append(h('dl', { class: 'facts' },
    ...row(t('displayName'), p.name),
    ...row(t('remark'), p.remark),
    ...row(t('tags'), p.tags && p.tags.length ? h('span', { class: 'tag-row' }, ...tagChips(p.tags)) : ''),
    ...row(t('profileNote'), p.note ? h('span', { class: 'pre' }, p.note) : '')));
  if (p.version) box.append(h('p', { class: 'muted small' }, t('profileVersion', { n: p.version, by: p.by, at: fullTime(p.at) })));
  if (p.refused) box.append(h('p', { class: 'form-error small' }, t('profileRefused')));
  $('d-profile-edit').hidden = !mayEditProfile();
  $('act-profile').hidden = !mayEditProfile();
  clear($('d-profile-history'));
  $('d-profile-history-wrap').open = false;
}

async function loadHistory() {
  const conv = state.open;
  const ul = clear($('d-profile-history'));
  if (!conv) return;
  try {
    const res = await api('GET', profilePath(conv, '/history'));
    const vs = (res && res.versions) || [];
    if (!vs.length) ul.append(h('li', { class: 'muted small' }, t('noProfileYet')));
    for (const v of vs) {
      ul.append(h('li', { class: 'small' },
        h('strong', {}, t('profileVersion', { n: v.version, by: v.by, at: fullTime(v.at) })),
        h('div', {}, v.change),
        v.refused ? h('div', { class: 'form-error' }, t('profileRefused')) : null));
    }
  } catch (e) {
    ul.append(h('li', { class: 'form-error small' }, e.message));
  }
}

// ----------------------------------------------------------- the dialog

let editing = null; // {conv, version}

export async function openProfileDialog() {
  const conv = state.open;
  if (!conv || !mayEditProfile()) return;
  const [account] = splitConv(conv);
  const p = full.get(conv) || profileOf(conv) || {};
  editing = { conv, version: p.version || 0 };
  $('profile-name').value = p.name || '';
  $('profile-remark').value = p.remark || '';
  $('profile-note').value = p.note || '';
  $('profile-error').hidden = true;
  $('profile-tag-manage').hidden = !managesAll();
  $('profile-new-tag').value = '';
  renderTagChoices(await loadVocab(account, true), new Set(p.tags || []));
  $('dlg-profile').showModal();
  $('profile-name').focus();
}

// renderTagChoices draws a checkbox per tag of the vocabulary (and per
// tag the profile still carries after it left it).
function renderTagChoices(tags, checked) {
  const box = clear($('profile-tags'));
  const all = [...tags, ...[...checked].filter((x) => !tags.includes(x))];
  if (!all.length) box.append(h('p', { class: 'muted small' }, managesAll() ? t('noTagsYetSup') : t('noTagsYet')));
  for (const tag of all) {
    const id = `ptag-${[...tag].map((ch) => ch.codePointAt(0).toString(16)).join('-')}`;
    box.append(h('span', { class: 'tag-choice' },
      h('input', { type: 'checkbox', id, value: tag, checked: checked.has(tag) }),
      h('label', { for: id }, tag),
      managesAll() && tags.includes(tag)
        ? h('button', { type: 'button', class: 'link-btn', title: t('removeTag'), 'aria-label': `${t('removeTag')} ${tag}`, on: { click: () => removeTag(tag) } }, '×')
        : null));
  }
}

function checkedTags() {
  return [...$('profile-tags').querySelectorAll('input[type=checkbox]')].filter((x) => x.checked).map((x) => x.value);
}

function showDialogError(e) {
  const el = $('profile-error');
  el.hidden = false;
  el.textContent = e instanceof ApiError && e.status === 0 ? t('cannotReach') : e.message;
}

async function addTag() {
  const conv = editing && editing.conv;
  const tag = $('profile-new-tag').value.trim();
  if (!conv || !tag) return;
  const [account] = splitConv(conv);
  const keep = new Set([...checkedTags(), tag]);
  try {
    const res = await api('POST', `/api/tags/${encodeURIComponent(account)}`, { json: { tag } });
    vocab.set(account, res.tags || []);
    $('profile-new-tag').value = '';
    $('profile-error').hidden = true;
    renderTagChoices(vocab.get(account), keep);
    emit('tags');
  } catch (e) {
    showDialogError(e);
  }
}

async function removeTag(tag) {
  const conv = editing && editing.conv;
  if (!conv) return;
  const [account] = splitConv(conv);
  const keep = new Set(checkedTags());
  try {
    const res = await api('DELETE', `/api/tags/${encodeURIComponent(account)}/${encodeURIComponent(tag)}`);
    vocab.set(account, res.tags || []);
    keep.delete(tag);
    renderTagChoices(vocab.get(account), keep);
    emit('tags');
  } catch (e) {
    showDialogError(e);
  }
}

async function submitProfile(e) {
  e.preventDefault();
  if (!editing) return;
  const { conv, version } = editing;
  const body = { name: $('profile-name').value.trim(), remark: $('profile-remark').value.trim(), tags: checkedTags(), note: $('profile-note').value, version };
  $('profile-submit').disabled = true;
  try {
    const p = await api('PUT', profilePath(conv), { json: body });
    full.set(conv, p);
    setSummary(conv, p);
    $('dlg-profile').close();
    editing = null;
    emit('toast', { text: t('profileSaved') });
    if (state.open === conv) renderProfileCard();
    emit('profile', conv);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      await fetchProfile(conv);
      const p = full.get(conv) || {};
      editing = { conv, version: p.version || 0 };
      showDialogError(new Error(t('profileConflict')));
    } else {
      showDialogError(err);
    }
  } finally {
    $('profile-submit').disabled = false;
  }
}

export function setupProfile() {
  $('form-profile').addEventListener('submit', submitProfile);
  $('profile-cancel').addEventListener('click', () => { editing = null; $('dlg-profile').close(); });
  $('profile-add-tag').addEventListener('click', addTag);
  $('profile-new-tag').addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); addTag(); } });
  $('act-profile').addEventListener('click', openProfileDialog);
  $('d-profile-edit').addEventListener('click', openProfileDialog);
  $('d-profile-history-wrap').addEventListener('toggle', (e) => { if (e.target.open) loadHistory(); });
  onStore('thread', (conv) => { if (conv) { renderProfileCard(); fetchProfile(conv); } });
  onStore('convs', loadVocabularies);
}
