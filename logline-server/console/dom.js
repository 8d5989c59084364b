// DOM building without HTML strings: every piece of text goes through textContent, so data
// from the server (messages, tool outputs) always renders as text.

/**
 * `h('button', {class: 'x', onclick: f}, 'Text', child)`: attributes are set with
 * setAttribute (event handlers only as functions), children are nodes or text.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on')) throw new Error('event handlers are functions');
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends nodes and text (arrays flattened, null skipped). */
export function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Pretty JSON as text (never markup), after a hidden `label` for screen readers. */
export function jsonBlock(value, label) {
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  const block = h('pre', { class: 'json', tabindex: '0' }, text ?? '');
  return label ? [h('span', { class: 'visually-hidden' }, label), block] : block;
}

/** A short local date-time. */
export function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

/** Announces `text` in the polite live region. */
export function announce(text) {
  const region = document.getElementById('live');
  if (region) region.textContent = text;
}

/** A status line that shows an error's message. */
export function errorText(err) {
  return err && err.message ? err.message : String(err);
}
