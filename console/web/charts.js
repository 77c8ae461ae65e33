// Bar charts drawn as SVG by the console itself: no library, no CDN.
// Every bar carries its figure as a <title> (a tooltip, and what a
// screen reader says) and, when the chart has onBar, is a focusable link
// to what is behind it (Enter or a click). Text goes in through
// textContent only.

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// WIDTH is the width charts are drawn for (viewBox units, about pixels
// on a desktop); they scale down to a phone's.
const WIDTH = 560;

// niceMax rounds max up to 1, 2 or 5 times a power of ten, so that the
// axis reads well.
function niceMax(max) {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function clickable(g, label, onBar, i) {
  if (!onBar) return;
  g.setAttribute('tabindex', '0');
  g.setAttribute('role', 'link');
  g.setAttribute('aria-label', label);
  g.classList.add('bar-link');
  g.addEventListener('click', () => onBar(i));
  g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onBar(i); } });
}

// barChart draws vertical bars, one group per label: side by side, or
// stacked. opts: labels (strings), series ([{name, values, cls}]),
// stacked, format (value → text), onBar (index → void), tick (index →
// whether its label is written; default: as many as fit).
export function barChart({ labels, series, stacked = false, format = String, onBar, title }) {
  const n = labels.length;
  const H = 180;
  const top = 10;
  const bottom = 34;
  const left = 44;
  // At least WIDTH wide: a few bars get wide slots, many get narrow
  // ones and a chart that scrolls sideways.
  const slot = Math.max(stacked ? 20 : 8 * series.length + 4, Math.floor((WIDTH - left - 8) / Math.max(n, 1)));
  const W = left + Math.max(n, 1) * slot + 8;
  const barW = Math.min(slot - 8, stacked ? 36 : 18 * series.length);
  const pad = (slot - barW) / 2;
  const totals = labels.map((_, i) => (stacked ? series.reduce((a, se) => a + (se.values[i] || 0), 0) : Math.max(0, ...series.map((se) => se.values[i] || 0))));
  const max = niceMax(Math.max(0, ...totals));
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const svg = s('svg', { class: `chart-svg${W > WIDTH ? ' chart-wide' : ''}`, viewBox: `0 0 ${W} ${H}`, width: W > WIDTH ? W : null, height: W > WIDTH ? H : null, role: 'img' });
  if (title) svg.append(s('title', {}, title));
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    if (!Number.isInteger(v)) continue; // no 2.5 messages
    svg.append(s('line', { class: 'chart-grid', x1: left, x2: W - 4, y1: y(v), y2: y(v) }),
      s('text', { class: 'chart-axis', x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, format(v)));
  }
  const every = Math.ceil(n / Math.max(1, Math.floor((W - left) / 44)));
  labels.forEach((label, i) => {
    const x0 = left + i * slot + pad;
    const g = s('g', { class: 'bar' });
    const parts = [];
    let acc = 0;
    series.forEach((se, k) => {
      const v = se.values[i] || 0;
      parts.push(`${se.name}: ${format(v)}`);
      if (stacked) {
        const y1 = y(acc + v);
        g.append(s('rect', { class: `chart-bar ${se.cls || `series-${k}`}`, x: x0, y: y1, width: barW, height: Math.max(0, y(acc) - y1) }));
        acc += v;
      } else {
        const w = barW / series.length;
        g.append(s('rect', { class: `chart-bar ${se.cls || `series-${k}`}`, x: x0 + k * w, y: y(v), width: Math.max(1, w - 1), height: Math.max(0, y(0) - y(v)) }));
      }
    });
    const tip = `${label} — ${parts.join(', ')}`;
    g.prepend(s('rect', { class: 'chart-hit', x: left + i * slot + 1, y: top, width: slot - 2, height: H - top - bottom }), s('title', {}, tip));
    clickable(g, tip, onBar, i);
    svg.append(g);
    if (i % every === 0) svg.append(s('text', { class: 'chart-label', x: left + i * slot + slot / 2, y: H - bottom + 14, 'text-anchor': 'middle' }, label));
  });
  return svg;
}

// hbarChart draws horizontal bars, one row per label (employees, teams:
// long names, readable on a phone). opts as barChart's, side by side.
export function hbarChart({ labels, series, format = String, onBar, title }) {
  const rowH = 10 * series.length + 10;
  const left = 110;
  const W = WIDTH;
  const H = labels.length * rowH + 6;
  const max = niceMax(Math.max(0, ...series.flatMap((se) => se.values)));
  const x = (v) => left + (W - left - 56) * (v / max);
  const svg = s('svg', { class: 'chart-svg chart-h', viewBox: `0 0 ${W} ${H}`, role: 'img', preserveAspectRatio: 'xMinYMin meet' });
  if (title) svg.append(s('title', {}, title));
  labels.forEach((label, i) => {
    const y0 = 3 + i * rowH;
    const g = s('g', { class: 'bar' });
    const parts = [];
    g.append(s('text', { class: 'chart-label', x: left - 6, y: y0 + rowH / 2 + 2, 'text-anchor': 'end' }, label.length > 16 ? `${label.slice(0, 15)}…` : label));
    series.forEach((se, k) => {
      const v = se.values[i] || 0;
      parts.push(`${se.name}: ${format(v)}`);
      const yy = y0 + 2 + k * 10;
      g.append(s('rect', { class: `chart-bar ${se.cls || `series-${k}`}`, x: left, y: yy, width: Math.max(0, x(v) - left), height: 8 }),
        s('text', { class: 'chart-value', x: x(v) + 4, y: yy + 7 }, format(v)));
    });
    const tip = `${label} — ${parts.join(', ')}`;
    g.prepend(s('rect', { class: 'chart-hit', x: 0, y: y0, width: W, height: rowH }), s('title', {}, tip));
    clickable(g, tip, onBar, i);
    svg.append(g);
  });
  return svg;
}
