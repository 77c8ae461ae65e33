// Small DOM helpers, shared by the console and the simulator's phone page
// (console/webassets). Everything a person or WeChat wrote reaches the page
// through textContent or a vetted attribute, never through innerHTML.

export const $ = (id) => document.getElementById(id);

// h builds an element: h('li', {class: 'msg', dataset: {seq: 3}}, 'text', child).
// props: class, dataset, on (event listeners), text, and any attribute
// (set with setAttribute; href and src only through safeURL).
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    switch (k) {
      case 'class': el.className = v; break;
      case 'dataset': for (const [dk, dv] of Object.entries(v)) if (dv !== undefined && dv !== null) el.dataset[dk] = String(dv); break;
      case 'on': for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn); break;
      case 'text': el.textContent = v; break;
      case 'href': case 'src': case 'poster': el.setAttribute(k, safeURL(v)); break;
      default: el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// safeURL allows relative URLs, blob: previews the page made, and http(s)
// links; anything else (javascript:, data: from a message) becomes "#".
export function safeURL(u) {
  const s = String(u ?? '');
  if (s.startsWith('/') && !s.startsWith('//')) return s;
  if (s.startsWith('blob:') || s.startsWith('#')) return s;
  try {
    const p = new URL(s, location.href);
    if (p.protocol === 'http:' || p.protocol === 'https:') return p.href;
  } catch { /* not a URL */ }
  return '#';
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// svgIcon returns a small stroke icon from a path list (our own icons),
// drawn on a 24×24 box unless viewBox says otherwise.
const SVG = 'http://www.w3.org/2000/svg';
export function svgIcon(paths, cls = 'icon', viewBox = '0 0 24 24') {
  const s = document.createElementNS(SVG, 'svg');
  s.setAttribute('viewBox', viewBox);
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('class', cls);
  for (const d of paths) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    s.append(p);
  }
  return s;
}

// on attaches a listener and returns nothing (readability in setup code).
export function on(el, ev, fn, opts) { el.addEventListener(ev, fn, opts); }
