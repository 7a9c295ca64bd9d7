// The console's links (docs/architecture.md §10): a page's address is the URL fragment, `#/rollouts/ID`,
// `#/stuck?group=G`. `readLink` reads one into the page it names, or says what is wrong with it,
// before anything is fetched:
// - an id that is only dots, however escaped (`..`, `%2e%2e`), is refused: "." and ".." in the API
//   path built from it would be removed as dot segments (RFC 3986 §5.2.4), so `#/devices/..` would
//   ask for `/v1/` and `#/rollouts/..` stream `/v1/events`; the API takes no such id anyway;
// - an empty id, or one longer than any id the API takes, names nothing;
// - a query parameter the page does not take, one given twice, or an empty one is refused by name,
//   as the API refuses a parameter it does not take; stuck devices are of a group or of a rollout,
//   not both.
// Anything else (a value's characters, a prefix too short) is the API's to judge: it names the field.

export type Route =
  | { page: 'fleet' }
  | { page: 'group'; group: string; seq: string | null; model: string | null }
  | { page: 'device'; id: string }
  | { page: 'rollouts' }
  | { page: 'rollout'; id: string }
  | { page: 'stuck'; group: string | null; rollout: string | null }
  | { page: 'bundles'; group: string | null }
  | { page: 'bundle'; id: string }
  | { page: 'not_found' }
  | { page: 'bad_link'; message: string };

/** The longest id the API takes (a rollout's, gateway/http/schemas.ts); a longer one names nothing. */
export const MAX_ID = 160;

class BadLink extends Error {}

/** A path segment, decoded; a malformed escape (`%ZZ`) stays as it is, for the API to name. */
function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The id a link names, or a BadLink saying why it names none. */
function idOf(what: string, segment: string | undefined, dots: 'refused' | 'taken' = 'refused'): string {
  const id = decode(segment ?? '');
  if (id === '') throw new BadLink(`This link names no ${what}.`);
  if (dots === 'refused' && /^\.+$/.test(id)) throw new BadLink(`"${id}" is not a ${what} id: no id is only dots.`);
  if (id.length > MAX_ID) throw new BadLink(`The ${what} id in this link is ${id.length} characters long: no id is longer than ${MAX_ID}.`);
  return id;
}

/** The query's parameters, each at most once, none but those the page takes, none empty. */
function params(query: URLSearchParams, takes: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const [name, value] of query) {
    if (!takes.includes(name)) throw new BadLink(takes.length === 0 ? `This page takes no parameter; the link has "${name}".` : `"${name}" is not a parameter of this page: it takes ${takes.map((n) => `"${n}"`).join(' or ')}.`);
    if (found.has(name)) throw new BadLink(`The parameter "${name}" is given twice.`);
    if (value === '') throw new BadLink(`The parameter "${name}" is empty.`);
    if (value.length > MAX_ID) throw new BadLink(`The parameter "${name}" is ${value.length} characters long: no name or id is longer than ${MAX_ID}.`);
    found.set(name, value);
  }
  return found;
}

/** The page a URL fragment (`#/devices/th-1`, with or without its `#`) names. */
export function readLink(hash: string): Route {
  const raw = hash.replace(/^#/, '');
  const q = raw.indexOf('?');
  const segments = (q < 0 ? raw : raw.slice(0, q)).split('/');
  // `#/x` and `#/x/` are the same page; `#` and `#/` the fleet.
  if (segments[0] === '') segments.shift();
  if (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const [top = 'fleet', id, ...rest] = segments;
  try {
    if (rest.length > 0) return { page: 'not_found' };
    switch (top) {
      case 'fleet':
        return id === undefined ? { page: 'fleet', ...noParams(query) } : { page: 'not_found' };
      case 'groups': {
        const group = idOf('group', id, 'taken');
        const p = params(query, ['seq', 'model']);
        return { page: 'group', group, seq: p.get('seq') ?? null, model: p.get('model') ?? null };
      }
      case 'devices':
        return { page: 'device', id: idOf('device', id), ...noParams(query) };
      case 'rollouts':
        return id === undefined ? { page: 'rollouts', ...noParams(query) } : { page: 'rollout', id: idOf('rollout', id), ...noParams(query) };
      case 'stuck': {
        if (id !== undefined) return { page: 'not_found' };
        const p = params(query, ['group', 'rollout']);
        if (p.has('group') && p.has('rollout')) throw new BadLink('Stuck devices are of a group or of a rollout: the link gives both.');
        return { page: 'stuck', group: p.get('group') ?? null, rollout: p.get('rollout') ?? null };
      }
      case 'bundles':
        return id === undefined ? { page: 'bundles', group: params(query, ['group']).get('group') ?? null } : { page: 'bundle', id: idOf('bundle', id), ...noParams(query) };
      default:
        return { page: 'not_found' };
    }
  } catch (err) {
    if (err instanceof BadLink) return { page: 'bad_link', message: err.message };
    throw err;
  }
}

/** Refuses any query parameter; nothing to add to the route. */
function noParams(query: URLSearchParams): Record<string, never> {
  params(query, []);
  return {};
}
