// Formatting of ids, times and durations for people.

import { t, locale } from './i18n.js';

// shortID shows an OpenID (28 characters) as its start and end: WeChat
// gives Official Accounts no nickname, so this is the client's name here.
// The OpenIDs of one account share their first characters, so the end
// is what tells clients apart.
export function shortID(openid) {
  const s = String(openid || '');
  return s.length <= 12 ? s : `${s.slice(0, 4)}…${s.slice(-6)}`;
}

export function splitConv(conv) {
  const i = String(conv).indexOf(':');
  return i < 0 ? ['', String(conv)] : [conv.slice(0, i), conv.slice(i + 1)];
}

// avatarOf gives a stable colour class and two letters for an id.
export function avatarOf(id) {
  const s = String(id || '?');
  let n = 0;
  for (const ch of s) n = (n * 31 + ch.codePointAt(0)) >>> 0;
  const letters = s.replace(/[^A-Za-z0-9]/g, '').slice(-2).toUpperCase() || '?';
  return { hue: `hue-${n % 8}`, letters };
}

const sameDay = (a, b) => a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();

export function clock(d) {
  return new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit' }).format(d);
}

// listTime: today's time, else the date.
export function listTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  if (sameDay(d, now)) return clock(d);
  const y = new Date(now); y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return t('yesterday');
  return new Intl.DateTimeFormat(locale(), { month: 'short', day: 'numeric' }).format(d);
}

export function dayLabel(d) {
  const now = new Date();
  if (sameDay(d, now)) return t('today');
  const y = new Date(now); y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return t('yesterday');
  return new Intl.DateTimeFormat(locale(), { weekday: 'short', year: 'numeric', month: 'short', day: 'numeric' }).format(d);
}

export function fullTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
}

// left says how long until iso: "41 h 12 min", "25 min", "< 1 min".
export function left(iso, now = Date.now()) {
  const ms = new Date(iso).getTime() - now;
  if (!(ms > 0)) return '';
  const min = Math.floor(ms / 60000);
  if (min < 1) return t('lessThanMinute');
  const hrs = Math.floor(min / 60);
  if (hrs === 0) return t('minutes', { m: min });
  return t('hoursMinutes', { h: hrs, m: min % 60 });
}

// windowReason says, in the page's language, why the window is closed
// (the relay's own words, in English, go into a tooltip).
export function windowReason(w) {
  if (!w || w.open) return '';
  return w.closes_at ? t('quotaClosedLong') : t('windowClosedLong');
}

// deliveryReason says, in the page's language, why a message was not
// delivered or may not have been: WeChat's errcodes in plain words, else
// the relay's (or the request's) own words.
export function deliveryReason(dl) {
  if (!dl) return '';
  if (dl.state === 'unknown') return t('reasonUnknown');
  if (dl.state !== 'failed') return '';
  const byCode = {
    '-1': 'reasonBusy', 40003: 'reasonNotFollowing', 45009: 'reasonAPIQuota',
    45015: 'windowClosedLong', 45047: 'quotaClosedLong', 48001: 'reasonUnauthorized',
  }[dl.errcode];
  if (byCode) return t(byCode);
  return dl.reason || t('reasonRefused');
}

export function bytes(n) {
  if (!(n >= 0)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}
