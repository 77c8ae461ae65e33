// The journal panel of the Admin view: how far the journal to the firm's
// own archive (Smarsh, Global Relay, ...) is behind, and how its last
// round went (GET /api/admin/journal, relay/journal).
//
// Test hooks (ids): admin-journal (the panel; data-enabled="true|false",
// data-lag=<count>), admin-journal-state, admin-journal-lag,
// admin-journal-error.

import { $, h, clear } from './dom.js';
import { api } from './api.js';
import { t } from './i18n.js';
import { fullTime } from './format.js';

let last = null; // the status last fetched

// loadJournal fetches the journal's status and shows it; a failure leaves
// the panel hidden (the directory's own error says why).
export async function loadJournal() {
  try {
    last = await api('GET', '/api/admin/journal');
  } catch {
    last = null;
  }
  renderJournal();
}

// renderJournal draws the panel again (after a language change).
export function renderJournal() {
  const panel = $('admin-journal');
  if (!last) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  panel.dataset.enabled = String(!!last.enabled);
  panel.dataset.lag = String(last.lag ? last.lag.count : 0);
  const state = $('admin-journal-state');
  const lag = $('admin-journal-lag');
  const err = $('admin-journal-error');
  clear(state);
  clear(lag);
  err.hidden = true;
  if (!last.enabled) {
    state.append(t('journalOff'));
    return;
  }
  state.append(t('journalOn', { address: last.journal_address, server: last.server }));
  const n = last.lag ? last.lag.count : 0;
  lag.append(n === 0
    ? t('journalCaughtUp')
    : t('journalBehind', { n, oldest: fullTime(last.lag.oldest) }));
  if (last.last_sent && !last.last_sent.startsWith('0001-')) {
    lag.append(' ', h('span', { class: 'muted' }, t('journalLastSent', { at: fullTime(last.last_sent) })));
  }
  if (last.last_error) {
    err.hidden = false;
    err.textContent = t('journalLastError', { at: fullTime(last.last_error_at), error: last.last_error });
  }
}
