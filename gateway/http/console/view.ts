// The console's element builder: pages are built as plain trees (`h('p', { class: 'x' }, 'text')`)
// that become DOM nodes in the browser (toDom) and HTML text in tests (toHtml). No markup is ever
// parsed from data: text goes in as text nodes and attributes through setAttribute, so a device id
// or a reason string cannot inject anything. Links may only point inside the console or the API
// (`#/…`, `/…`); inline styles go through the CSSOM, which the page's CSP allows (a `style`
// attribute it would refuse).
//
//   const node = h('a', { href: '#/rollouts', class: 'nav' }, 'Rollouts');
//   parent.replaceChildren(toDom(node));
//
// No front-end library: the pages are tables, bars and forms redrawn when data arrives, which
// this file and the CSSOM do in a few dozen lines; a library would be most of the page's weight.

export type Child = VNode | string | number | null | undefined | false | Child[];
export type Handler = (event: Event) => void;
export type AttrValue = string | number | boolean | null | undefined;

export interface Attrs {
  [name: string]: AttrValue | Handler | Record<string, string> | undefined;
  /** CSS properties set through the CSSOM (allowed by the CSP, unlike a style attribute) */
  style?: Record<string, string>;
}

export interface VNode {
  tag: string;
  attrs: Attrs;
  children: Array<VNode | string>;
}

const TAG_RE = /^[a-z][a-z0-9-]*$/;
const ATTR_RE = /^[a-z][a-z0-9-:]*$/;
const VOID = new Set(['br', 'hr', 'img', 'input', 'meta', 'link']);

/** A safe link target: inside the console (`#…`) or this server (`/…`, not `//host`). */
export const safeHref = (v: string) => /^#/.test(v) || /^\/(?!\/)/.test(v);

function flatten(children: Child[], out: Array<VNode | string>): Array<VNode | string> {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) flatten(c, out);
    else out.push(typeof c === 'number' ? String(c) : c);
  }
  return out;
}

/** An element. Attributes that are functions are event handlers (`onclick`); `true` is a boolean attribute, false/null/undefined none. */
export function h(tag: string, attrs: Attrs | null = null, ...children: Child[]): VNode {
  if (!TAG_RE.test(tag)) throw new Error(`h: bad tag ${JSON.stringify(tag)}`);
  const a = attrs ?? {};
  for (const [k, v] of Object.entries(a)) {
    if (k === 'style') continue;
    if (!ATTR_RE.test(k)) throw new Error(`h: bad attribute ${JSON.stringify(k)}`);
    if ((k === 'href' || k === 'action' || k === 'src') && typeof v === 'string' && !safeHref(v)) throw new Error(`h: ${k} must stay on this server, got ${JSON.stringify(v)}`);
  }
  return { tag, attrs: a, children: flatten(children, []) };
}

const escText = (s: string) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
const escAttr = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** HTML text of a tree (tests, and anything that wants to look at a page without a browser). Handlers are left out. */
export function toHtml(node: VNode | string): string {
  if (typeof node === 'string') return escText(node);
  let attrs = '';
  for (const [k, v] of Object.entries(node.attrs)) {
    if (k === 'style' && v && typeof v === 'object') {
      attrs += ` style="${escAttr(Object.entries(v).map(([p, x]) => `${p}: ${x}`).join('; '))}"`;
      continue;
    }
    if (typeof v === 'function' || v === false || v === null || v === undefined) continue;
    attrs += v === true ? ` ${k}` : ` ${k}="${escAttr(String(v))}"`;
  }
  if (VOID.has(node.tag)) return `<${node.tag}${attrs}>`;
  return `<${node.tag}${attrs}>${node.children.map(toHtml).join('')}</${node.tag}>`;
}

const INLINE = new Set(['a', 'b', 'code', 'del', 'em', 'ins', 'label', 'small', 'span', 'strong', 'time']);

/** The text a reader sees in a tree: inline elements run on, block ones stand apart. */
export function textOf(node: VNode | string): string {
  const walk = (n: VNode | string): string => (typeof n === 'string' ? n : INLINE.has(n.tag) ? n.children.map(walk).join('') : ` ${n.children.map(walk).join('')} `);
  return walk(node).replace(/\s+/g, ' ').trim();
}

/** DOM nodes of a tree (browser only). */
export function toDom(node: VNode | string): Node {
  if (typeof node === 'string') return document.createTextNode(node);
  const el = document.createElement(node.tag);
  for (const [k, v] of Object.entries(node.attrs)) {
    if (k === 'style' && v && typeof v === 'object') {
      for (const [p, x] of Object.entries(v)) el.style.setProperty(p, x);
    } else if (typeof v === 'function') {
      el.addEventListener(k.replace(/^on/, ''), v as Handler);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else if (v !== false && v !== null && v !== undefined) {
      el.setAttribute(k, String(v));
    }
  }
  for (const c of node.children) el.appendChild(toDom(c));
  return el;
}

/**
 * Puts `node` in place of `container`'s children, keeping the keyboard focus where it was: the
 * element with the focused element's id gets it back (a live page redraws under the reader).
 */
export function replace(container: Element, ...nodes: Array<VNode | string>): void {
  const active = document.activeElement;
  const focusedId = active && container.contains(active) ? active.id : '';
  container.replaceChildren(...nodes.map(toDom));
  if (focusedId) (document.getElementById(focusedId) as HTMLElement | null)?.focus();
}
