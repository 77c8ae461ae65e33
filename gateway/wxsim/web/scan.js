// Scanning a QR code: the account's codes, or a pasted ticket or URL.

import { $, h } from './lib/dom.js';
import { t } from './strings.js';
import { api, enc } from './api.js';
import { sceneWho, cleanError } from './helpers.js';
import { fmtWhen } from './clock.js';
import { state } from './state.js';
import { act } from './actions.js';
import { openDialog } from './dialogs.js';

export async function openScan() {
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

export async function scan(ticketOrURL) {
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
