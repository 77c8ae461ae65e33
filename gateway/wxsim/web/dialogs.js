// Form dialogs, and the client's details dialog.

import { $, h } from './lib/dom.js';
import { t } from './strings.js';
import { fmtWhen } from './clock.js';
import { state } from './state.js';

/** openDialog shows a form dialog; onOK runs when it closes with value "ok". */
export function openDialog(id, onOK) {
  const d = $(id);
  d.returnValue = '';
  d.onclose = () => {
    if (d.returnValue === 'ok' && onOK) onOK();
    if (state.screen === 'chat' && state.info && state.info.subscribed) $('text').focus();
  };
  d.showModal();
}

export function fillInfoDialog() {
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
