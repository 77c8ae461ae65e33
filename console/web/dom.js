// The console's DOM helpers: the shared ones (./lib/dom.js, from
// console/webassets) and the console's own icons.

export { $, h, safeURL, clear, svgIcon, on } from './lib/dom.js';

export const ICONS = {
  lock: ['M7 10.5V8a5 5 0 0 1 10 0v2.5', 'M6 10.5h12v9H6z'],
  transfer: ['M4 8h13l-3.5-3.5', 'M20 16H7l3.5 3.5'],
  check: ['m5 12.5 4.5 4.5L19 7.5'],
  reopen: ['M5 12a7 7 0 1 0 2-4.9', 'M5 4v4h4'],
  file: ['M7 3.5h7l4.5 4.5v12.5H7z', 'M14 3.5V8h4.5'],
  download: ['M12 4v11', 'm7.5 10.5 4.5 4.5 4.5-4.5', 'M5 19.5h14'],
  pin: ['M12 21s6.5-6 6.5-11a6.5 6.5 0 0 0-13 0c0 5 6.5 11 6.5 11Z', 'M12 12.5a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5Z'],
  link: ['M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7L11.5 7', 'M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1.5-1.5'],
  bolt: ['M13 3 5 13.5h6L10 21l8-10.5h-6z'],
  retry: ['M19 12a7 7 0 1 1-2-4.9', 'M19 4v4h-4'],
  alert: ['M12 4 2.8 19.5h18.4z', 'M12 10v4.5M12 17v.5'],
  clock: ['M12 20.5a8.5 8.5 0 1 0 0-17 8.5 8.5 0 0 0 0 17Z', 'M12 7.5V12l3 2'],
  bot: ['M6 9h12v9H6z', 'M12 9V5.5M9.5 13v.5M14.5 13v.5', 'M3.5 12.5v3M20.5 12.5v3'],
};
