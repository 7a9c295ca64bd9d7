// Copies a whole fleet from one Store of changes to another (docs/storage.md, "moving to
// PostgreSQL"): `pinwave store migrate` runs it from the embedded store in a data dir to a
// PostgreSQL database. Everything goes through the target's own `apply`, checked as any batch is;
// a target that already holds anything is refused unless the caller says otherwise.
import type { Change, ChangeStore, MemberRecord, NewRollout, StoredRollout } from './changes.ts';

export interface CopyCounts {
  devices: number;
  bundles: number;
  groups: number;
  rollouts: number;
  compactedRollouts: number;
  members: number;
  telemetryBuckets: number;
  counters: number;
  items: number;
}

/** Whether a store holds anything at all. */
export async function isEmpty(s: ChangeStore): Promise<boolean> {
  const [d, b, g, r, t, c, i] = await Promise.all([
    s.listDevices({ limit: 1 }),
    s.listBundles({ limit: 1 }),
    s.listGroups({ limit: 1 }),
    s.listRollouts({ limit: 1 }),
    s.listTelemetry({ limit: 1 }),
    s.getCounters(),
    s.listCollections(),
  ]);
  return d.items.length + b.items.length + g.items.length + r.items.length + t.items.length + Object.keys(c).length + i.length === 0;
}

async function must(to: ChangeStore, changes: Change[], what: string): Promise<void> {
  const r = await to.apply(changes);
  if (!r.ok) throw new Error(`copying ${what}: the target refused it (${r.code}: ${r.message})`);
}

/** Every page of a listing. */
async function* pages<T>(list: (cursor: string | null) => Promise<{ items: T[]; next: string | null }>): AsyncGenerator<T[]> {
  let cursor: string | null = null;
  do {
    const p: { items: T[]; next: string | null } = await list(cursor);
    if (p.items.length > 0) yield p.items;
    cursor = p.next;
  } while (cursor !== null);
}

export async function copyStore(from: ChangeStore, to: ChangeStore, progress: (what: string) => void = () => {}): Promise<CopyCounts> {
  const n: CopyCounts = { devices: 0, bundles: 0, groups: 0, rollouts: 0, compactedRollouts: 0, members: 0, telemetryBuckets: 0, counters: 0, items: 0 };
  for await (const ds of pages((cursor) => from.listDevices({ cursor, limit: 1000 }))) {
    await must(to, ds.map((device) => ({ type: 'device.provision', device })), 'devices');
    n.devices += ds.length;
    if (n.devices % 10_000 === 0) progress(`${n.devices} devices`);
  }
  for await (const bs of pages((cursor) => from.listBundles({ cursor, limit: 1000 }))) {
    await must(to, bs.map((bundle) => ({ type: 'bundle.put', bundle })), 'bundles');
    n.bundles += bs.length;
  }
  for await (const gs of pages((cursor) => from.listGroups({ cursor, limit: 1000 }))) {
    const changes: Change[] = [];
    for (const g of gs) {
      // The target hands out its next seq above this one, as the source would have.
      if (g.seq > 0) changes.push({ type: 'group.allocateSeq', group: g.name, above: g.seq - 1 });
      if (g.baseline !== null) changes.push({ type: 'group.baseline', group: g.name, bundleId: g.baseline });
    }
    if (changes.length > 0) await must(to, changes, 'groups');
    n.groups += gs.length;
  }
  for await (const rs of pages((cursor) => from.listRollouts({ cursor, limit: 100 }))) {
    for (const r of rs) {
      const members: MemberRecord[] = [];
      for await (const ms of pages((cursor) => from.listMembers(r.id, { cursor, limit: 1000 }))) members.push(...ms);
      await must(to, [create(r, members)], `rollout ${r.id}`);
      const moved: Change[] = members.filter((m) => m.status !== 'pending' || m.at !== null).map((m) => ({ type: 'rollout.member', id: r.id, device: m.deviceId, status: m.status, reason: m.reason, at: m.at }));
      for (let i = 0; i < moved.length; i += 10_000) await must(to, moved.slice(i, i + 10_000), `rollout ${r.id} members`);
      n.rollouts++;
      if (r.compactedAt !== null) n.compactedRollouts++;
      n.members += members.length;
    }
  }
  for await (const ts of pages((cursor) => from.listTelemetry({ cursor, limit: 1000 }))) {
    await must(to, ts.map(({ key, bucket }) => ({ type: 'telemetry.put', key, bucket })), 'telemetry');
    n.telemetryBuckets += ts.length;
  }
  const counters = Object.entries(await from.getCounters());
  if (counters.length > 0) await must(to, counters.map(([name, by]) => ({ type: 'counter.add', name, by })), 'counters');
  n.counters = counters.length;
  for (const collection of await from.listCollections()) {
    for await (const is of pages((cursor) => from.listItems(collection, { cursor, limit: 1000 }))) {
      await must(to, is.map(({ key, value }) => ({ type: 'item.put', collection, key, value })), `collection ${collection}`);
      n.items += is.length;
    }
  }
  return n;
}

function create(r: StoredRollout, members: MemberRecord[]): Change {
  const compacted = r.compactedAt !== null;
  const { compactedAt, decisions, waves, ...header } = r;
  const rollout: NewRollout = {
    ...header,
    waves: waves.map(({ memberCount, ...w }) => (compacted ? ({ ...w, memberCount } as never) : w)),
    decisions,
    ...(compacted && { compactedAt }),
  };
  const byWave: string[][] = waves.map(() => []);
  for (const m of [...members].sort((a, b) => a.wave - b.wave || a.ord - b.ord)) byWave[m.wave].push(m.deviceId);
  return { type: 'rollout.create', rollout, members: byWave };
}
