// Names, avatars, error wording and the toast: small things every screen uses.

import { $, h } from './lib/dom.js';
import { t } from './strings.js';

function hashCode(s) {
  let x = 0;
  for (let i = 0; i < s.length; i++) x = (x * 31 + s.charCodeAt(i)) | 0;
  return Math.abs(x);
}

function clientTail(openid) {
  return openid.slice(-4).toUpperCase();
}

export function clientName(openid) {
  return t('clientName', { tail: clientTail(openid) });
}

export function accountName(a) {
  return (a && (a.name || a.original_id || a.appid)) || '…';
}

/** avatar draws the account's initial, or a client's silhouette on a colour of its own. */
export function avatar(kind, label) {
  if (kind === 'account') return h('div', { class: 'avatar account', 'aria-hidden': 'true', text: Array.from(label)[0] || '?' });
  return h('div', { class: 'avatar client c' + (hashCode(label) % 8), 'aria-hidden': 'true' });
}

/** sceneWho names the person a QR scene stands for: "employee 42" for emp:42. */
export function sceneWho(scene) {
  const m = /^emp:(.+)$/.exec(scene || '');
  return m ? t('employee', { id: m[1] }) : t('scene', { scene });
}

export function cleanError(s) {
  return String(s || '')
    .replace(/wxsim: /g, '')
    .replace(/^callback answer refused: /, '')
    .replace(/\?[^"\s]*/g, ''); // signed query strings say nothing to a person
}

/** shortError turns a callback failure into a few words for the line under a bubble. */
export function shortError(err) {
  const s = cleanError(err);
  const m = /callback URL unreachable: .*: ([^:]+)$/.exec(s);
  if (m) return t('unreachable', { why: m[1].trim() });
  if (/has no callback URL/.test(s)) return t('noCallback');
  return s.length > 160 ? s.slice(0, 157) + '…' : s;
}

let toastTimer = 0;
export function toast(msg) {
  const n = $('toast');
  n.textContent = msg;
  n.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (n.hidden = true), 3200);
}
