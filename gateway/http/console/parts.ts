// Page parts every page uses: a labelled table that scrolls on its own on a narrow window, a list
// of facts, a section with its heading, an empty state.
import { h, type Child, type VNode } from './view.ts';

let next = 0;
/** An id unique in this page: what ties a heading to the region it names. */
export const uid = (prefix: string) => `${prefix}-${++next}`;

/** A table with a caption (its accessible name), column headers, and a row per item. */
export function table(caption: string, headers: string[], rows: Child[][], o: { empty?: string; class?: string } = {}): VNode {
  if (rows.length === 0) return h('p', { class: 'empty' }, o.empty ?? 'Nothing to show.');
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: o.class ?? null },
      h('caption', null, caption),
      h('thead', null, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows.map((cells) => h('tr', null, cells.map((c) => h('td', null, c))))),
    ),
  );
}

/** Facts as a definition list: [term, value] pairs; a null value leaves its pair out. */
export function facts(pairs: Array<[string, Child]>, o: { class?: string } = {}): VNode {
  return h('dl', { class: o.class ?? 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** A region named by its heading. */
export function section(title: string, body: Child, o: { id?: string; class?: string; level?: 2 | 3 } = {}): VNode {
  const hid = `${o.id ?? uid('s')}-h`;
  return h('section', { id: o.id ?? null, class: o.class ?? null, 'aria-labelledby': hid }, h(o.level === 3 ? 'h3' : 'h2', { id: hid }, title), body);
}

/** A link inside the console. */
export const link = (route: string, text: Child, o: { title?: string } = {}) => h('a', { href: `#${route}`, title: o.title ?? null }, text);

/** A path segment or query value, escaped for a route or an API URL. */
export const enc = encodeURIComponent;
