// Simulator time: the simulator may run a manual clock, and message times
// are its times.

import { $ } from './lib/dom.js';
import { lang } from './strings.js';
import { api } from './api.js';

let simOffset = 0;
export const simNow = () => new Date(Date.now() + simOffset);

export function fmtTime(d, withDay) {
  const loc = lang === 'zh' ? 'zh-CN' : 'en-GB';
  const opts = { hour: '2-digit', minute: '2-digit' };
  if (withDay) Object.assign(opts, { month: 'short', day: 'numeric' });
  return new Intl.DateTimeFormat(loc, opts).format(d);
}

export function fmtWhen(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return fmtTime(d, d.toDateString() !== simNow().toDateString());
}

export async function refreshClock() {
  try {
    const c = await api('GET', '/clock');
    simOffset = new Date(c.now).getTime() - Date.now();
  } catch {
    // keep the last offset
  }
  $('sb-time').textContent = fmtTime(simNow(), false);
}
