// Small keyed collections of JSON objects in the Store of changes (changes.ts `item.put` /
// `item.delete`), for what needs no table of its own: firmware manifests pushed through the API,
// console sessions, approvals. A collection is named once with the check its values must pass, so
// callers get typed values and a value of the wrong shape is refused before it is stored and when
// it is read back.
//
//   const sessions = defineCollection<Session>('sessions', (v) => (typeof v.operator === 'string' ? null : 'expected an operator'));
//   await store.apply([sessions.put(id, { operator: 'alice', expiresAt })]);
//   const s = await sessions.get(store, id);          // Session | null
import type { Change, ChangeStore, JsonObject, Page, PageQuery } from './changes.ts';
import { COLLECTION_RE } from './validate.ts';

export interface Collection<T> {
  readonly name: string;
  put(key: string, value: T): Change;
  delete(key: string): Change;
  get(store: ChangeStore, key: string): Promise<T | null>;
  list(store: ChangeStore, query?: PageQuery): Promise<Page<{ key: string; value: T }>>;
}

/** `check` returns null for a good value, or what is wrong with it. */
export function defineCollection<T>(name: string, check: (value: JsonObject) => string | null): Collection<T> {
  if (!COLLECTION_RE.test(name)) throw new TypeError(`expected a collection name of a-z first, then a-z 0-9 . _ - (at most 64), got ${JSON.stringify(name)}`);
  const valid = (value: JsonObject, where: string): T => {
    const problem = check(value);
    if (problem !== null) throw new TypeError(`${where}: ${problem}`);
    return value as unknown as T;
  };
  return {
    name,
    put: (key, value) => {
      valid(value as unknown as JsonObject, `collection ${name}, key ${JSON.stringify(key)}`);
      return { type: 'item.put', collection: name, key, value: value as unknown as JsonObject };
    },
    delete: (key) => ({ type: 'item.delete', collection: name, key }),
    get: async (store, key) => {
      const v = await store.getItem(name, key);
      return v === null ? null : valid(v, `stored item ${JSON.stringify(key)} of collection ${name}`);
    },
    list: async (store, query) => {
      const page = await store.listItems(name, query);
      return { items: page.items.map((e) => ({ key: e.key, value: valid(e.value, `stored item ${JSON.stringify(e.key)} of collection ${name}`) })), next: page.next };
    },
  };
}
