// The reads and the one write the gateway's parts share over the Store of changes
// (gateway/store/changes.ts, docs/storage.md): a group's baseline, a group's devices, and `commit`,
// which applies a batch and turns a refusal into an error naming the store and what it refused.
//
//   const baseline = await baselineOf(store, 'thermostats');
//   await commit(store, [{ type: 'group.baseline', group: 'thermostats', bundleId }]);
import type { Applied, Change, ChangeStore, DeviceFilter } from './store/changes.ts';
import type { DeviceRecord } from './store/types.ts';
import { MAX_PAGE_LIMIT } from './store/types.ts';

/** A batch the store's state refused (an id provisioned already, a record that is gone): nothing of it was applied. */
export class StoreRefusal extends Error {
  readonly code: string;
  readonly ids: string[];
  constructor(store: string, refused: Extract<Applied, { ok: false }>) {
    super(`${store} refused the change: ${refused.message} (${refused.code}${refused.ids.length > 0 ? `: ${refused.ids.slice(0, 10).join(', ')}` : ''})`);
    this.name = 'StoreRefusal';
    this.code = refused.code;
    this.ids = refused.ids;
  }
}

/**
 * Applies one durable batch; resolves once it is committed, rejects with the store's error or a
 * StoreRefusal. A promise chained, not an async function: it is on every device message's path.
 */
export function commit(store: ChangeStore, changes: readonly Change[]): Promise<number[]> {
  let applying: Promise<Applied>;
  try {
    applying = store.apply(changes);
  } catch (err) {
    return Promise.reject(err as Error);
  }
  return applying.then((res) => {
    if (!res.ok) throw new StoreRefusal(store.status().name, res);
    return res.seqs;
  });
}

/** The bundle of the group's last completed rollout, or null. */
export async function baselineOf(store: ChangeStore, group: string): Promise<string | null> {
  return (await store.getGroup(group))?.baseline ?? null;
}

/** Every device matching `filter` (revoked ones included), in id order, page by page. */
export async function allDevices(store: ChangeStore, filter: Omit<DeviceFilter, 'limit' | 'cursor'> = {}): Promise<DeviceRecord[]> {
  const out: DeviceRecord[] = [];
  for (let cursor: string | null = null; ; ) {
    const page = await store.listDevices({ ...filter, limit: MAX_PAGE_LIMIT, cursor });
    out.push(...page.items);
    if ((cursor = page.next) === null) return out;
  }
}

/** The group's devices that are not revoked, in id order. */
export async function activeDevicesOf(store: ChangeStore, group: string): Promise<DeviceRecord[]> {
  return (await allDevices(store, { group })).filter((d) => d.revokedAt === null);
}
