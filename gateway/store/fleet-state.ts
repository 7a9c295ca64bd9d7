// The fleet's state in memory, changed only by batches of changes (changes.ts), and the one place
// that decides what a change does: the memory store, the embedded store and its snapshot worker
// all run this code, so what the journal replays is exactly what was applied live.
//
// A batch goes through two steps:
//   check(batch, pending)   validates it (TypeError for a malformed change), decides whether the
//                           state allows it (a Refused value), and resolves what the store decides
//                           (allocated seqs), against the state plus the batches not yet committed
//                           (`pending`), so a batch may build on one still on its way to disk;
//   commit(resolved)        applies a checked batch; it cannot fail. Callers pass a JSON copy, so
//                           the state never holds an object a caller still has.
// Reads return copies.
import type {
  Applied,
  Change,
  DeviceFilter,
  GroupRecord,
  JsonObject,
  MemberFilter,
  MemberRecord,
  PageQuery,
  Refused,
  RefusalCode,
  RolloutFilter,
  StoredRollout,
  StoredWave,
  TelemetryBucket,
} from './changes.ts';
import { keepFailingUnverified } from './rollout-records.ts';
import { SortedIds } from './sorted-ids.ts';
import { DEFAULT_PAGE_LIMIT, DEVICE_HISTORY_LIMIT, DEVICE_TELEMETRY_LIMIT, MAX_PAGE_LIMIT, type BundleRecord, type DeviceCore, type DeviceRecord, type Page } from './types.ts';
import { checkChangeAt } from './validate.ts';
import { MAX_BATCH_READ } from './changes.ts';

/** What the pending batches have changed about a record's existence and state, as check() needs it. */
interface RolloutView {
  state: string;
  compacted: boolean;
  waves: number;
  /** members of a rollout created by a pending batch (those of a committed one are in the state) */
  members: Set<string> | null;
}

/**
 * The effects of batches checked but not yet committed, each entry tagged with the batch that made
 * it: committing batch n drops its entries (the state has them now), a failed write drops all.
 */
export class Pending {
  readonly #entries = new Map<string, { v: unknown; tag: number }>();
  readonly #byTag = new Map<number, string[]>();

  get size(): number {
    return this.#entries.size;
  }

  lookup(key: string): { v: unknown } | undefined {
    return this.#entries.get(key);
  }

  record(tag: number, entries: ReadonlyMap<string, unknown>): void {
    if (entries.size === 0) return;
    const keys = [...entries.keys()];
    for (const [k, v] of entries) this.#entries.set(k, { v, tag });
    this.#byTag.set(tag, keys);
  }

  /** Batch `tag` is committed: its entries are the state's now (unless a later batch overwrote them). */
  settle(tag: number): void {
    const keys = this.#byTag.get(tag);
    if (keys === undefined) return;
    this.#byTag.delete(tag);
    for (const k of keys) if (this.#entries.get(k)?.tag === tag) this.#entries.delete(k);
  }

  clear(): void {
    this.#entries.clear();
    this.#byTag.clear();
  }
}

export type Checked = { ok: true; resolved: Change[]; seqs: number[]; entries: ReadonlyMap<string, unknown> } | Refused;

const FINISHED = new Set(['completed', 'aborted']);

/** What check() reads before the state: what the batch so far changed (null while nothing), and the pending batches. */
interface View {
  local: Map<string, unknown> | null;
  pending: Pending | null;
}
type Refusal = { code: RefusalCode; ids: string[]; why: string };
/** What a batch that changes no record's existence or state leaves to record (Pending.record keeps nothing of it). */
const NO_ENTRIES: ReadonlyMap<string, unknown> = new Map();

const quiet = (v: View): boolean => v.local === null && (v.pending === null || v.pending.size === 0);

function viewed(v: View, key: string): { v: unknown } | undefined {
  if (v.local !== null && v.local.has(key)) return { v: v.local.get(key) };
  return v.pending?.lookup(key);
}

function setLocal(v: View, key: string, value: unknown): void {
  (v.local ??= new Map()).set(key, value);
}

/** The batch's refusal with `id` added: the first code refused names every id refused for it. */
function refuse(r: Refusal | null, code: RefusalCode, id: string, why: string): Refusal {
  if (r === null) return { code, ids: [id], why };
  if (r.code === code && !r.ids.includes(id)) r.ids.push(id);
  return r;
}

export class FleetState {
  readonly devices = new Map<string, DeviceRecord>();
  readonly #deviceIds = new SortedIds(() => this.devices.keys());
  /** bundle id a device reports → those devices: who a compacted rollout reached */
  readonly #byBundle = new Map<string, Set<string>>();
  readonly bundles = new Map<string, BundleRecord>();
  readonly #bundleIds = new SortedIds(() => this.bundles.keys());
  readonly groups = new Map<string, GroupRecord>();
  /** in creation order (Map keeps insertion order) */
  readonly rollouts = new Map<string, StoredRollout>();
  #rolloutOrder: string[] | null = null;
  readonly members = new Map<string, Map<string, MemberRecord>>();
  readonly #memberIds = new Map<string, SortedIds>();
  /** device id → rollouts it is a member of, oldest first */
  readonly #memberships = new Map<string, string[]>();
  readonly telemetry = new Map<string, TelemetryBucket>();
  readonly #telemetryKeys = new SortedIds(() => this.telemetry.keys());
  readonly counters = new Map<string, number>();
  readonly items = new Map<string, Map<string, JsonObject>>();
  readonly #itemKeys = new Map<string, SortedIds>();

  // ------------------------------------------------------------------ check

  /**
   * Validates and resolves a batch against the state and `pending`. `journaled`: the batch comes
   * from a store's own journal or a migration (allocated seqs are given, not chosen).
   */
  check(batch: readonly Change[], pending: Pending | null, journaled = false): Checked {
    if (!Array.isArray(batch) || batch.length === 0) throw new TypeError('apply: expected a non-empty array of changes');
    // What this batch changed about a record's existence or state (its map made at the first such
    // change: most batches, acks, change none), then what the pending ones did, come before the
    // state. The look-ups are methods, not closures made per call: this runs for every batch
    // applied and replayed.
    const v: View = { local: null, pending };
    let refusal: Refusal | null = null;
    const resolved: Change[] = [];
    const seqs: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const c = batch[i];
      const problem = checkChangeAt(c, i, journaled);
      if (problem !== null) throw new TypeError(`apply: ${problem}`);
      switch (c.type) {
        case 'device.provision': {
          const id = c.device.id;
          if (this.#deviceExists(v, id)) refusal = refuse(refusal, 'PW_STORE_DUPLICATE_ID', id, 'already provisioned');
          else setLocal(v, `d\0${id}`, true);
          break;
        }
        case 'device.patch':
        case 'device.history':
        case 'device.telemetry':
          if (!this.#deviceExists(v, c.id)) refusal = refuse(refusal, 'PW_STORE_NOT_FOUND', c.id, 'no such device');
          break;
        case 'device.delete':
          if (!this.#deviceExists(v, c.id)) refusal = refuse(refusal, 'PW_STORE_NOT_FOUND', c.id, 'no such device');
          else setLocal(v, `d\0${c.id}`, false);
          break;
        case 'bundle.put': {
          const key = `b\0${c.bundle.id}`;
          const p = viewed(v, key);
          if (p !== undefined ? p.v : this.bundles.has(c.bundle.id)) refusal = refuse(refusal, 'PW_STORE_DUPLICATE_ID', c.bundle.id, 'a bundle is immutable and this one is stored');
          else setLocal(v, key, true);
          break;
        }
        case 'group.allocateSeq': {
          const key = `g\0${c.group}`;
          const p = viewed(v, key);
          const current = (p !== undefined ? p.v : (this.groups.get(c.group)?.seq ?? 0)) as number;
          const seq = journaled ? (c.seq as number) : Math.max(current, c.above ?? 0) + 1;
          if (!Number.isSafeInteger(seq)) throw new TypeError(`apply: changes[${i}]: group ${JSON.stringify(c.group)} has no seq left`);
          setLocal(v, key, Math.max(current, seq));
          seqs.push(seq);
          resolved.push(journaled ? c : { ...c, seq });
          continue;
        }
        case 'rollout.create': {
          const id = c.rollout.id;
          if (this.#rolloutView(v, id) !== null) refusal = refuse(refusal, 'PW_STORE_DUPLICATE_ID', id, 'a rollout of this id exists');
          else setLocal(v, `r\0${id}`, { state: c.rollout.state, compacted: c.rollout.compactedAt != null, waves: c.rollout.waves.length, members: new Set(c.members.flat()) } satisfies RolloutView);
          break;
        }
        case 'rollout.patch':
        case 'rollout.wave':
        case 'rollout.decision':
        case 'rollout.member':
        case 'rollout.compact': {
          const r = this.#rolloutView(v, c.id);
          if (r === null) {
            refusal = refuse(refusal, 'PW_STORE_NOT_FOUND', c.id, 'no such rollout');
            break;
          }
          switch (c.type) {
            case 'rollout.patch':
              if (c.set.state !== undefined && c.set.state !== r.state) setLocal(v, `r\0${c.id}`, { ...r, state: c.set.state });
              break;
            case 'rollout.wave':
              if (c.wave >= r.waves) refusal = refuse(refusal, 'PW_STORE_NOT_FOUND', `${c.id}#${c.wave}`, 'no such wave');
              break;
            case 'rollout.member':
              if (r.compacted) refusal = refuse(refusal, 'PW_STORE_CONFLICT', c.id, 'the rollout is compacted: it keeps no members');
              else if (c.wave !== undefined && c.wave >= r.waves) refusal = refuse(refusal, 'PW_STORE_NOT_FOUND', `${c.id}#${c.wave}`, 'no such wave');
              else if (!(r.members !== null ? r.members.has(c.device) : this.members.get(c.id)?.has(c.device))) refusal = refuse(refusal, 'PW_STORE_NOT_FOUND', c.device, `not a member of rollout ${c.id}`);
              break;
            case 'rollout.compact':
              if (!FINISHED.has(r.state)) refusal = refuse(refusal, 'PW_STORE_CONFLICT', c.id, `only a completed or aborted rollout is compacted, this one is ${r.state}`);
              else if (!r.compacted) setLocal(v, `r\0${c.id}`, { ...r, compacted: true, members: null });
              break;
          }
          break;
        }
        default:
          break;
      }
      resolved.push(c);
    }
    if (refusal !== null) return refused(refusal.code, refusal.ids, refusal.why);
    return { ok: true, resolved, seqs, entries: v.local ?? NO_ENTRIES };
  }

  /** Whether device `id` exists, as the batch so far and the pending batches leave it. */
  #deviceExists(v: View, id: string): boolean {
    if (quiet(v)) return this.devices.has(id);
    const p = viewed(v, `d\0${id}`);
    return p !== undefined ? (p.v as boolean) : this.devices.has(id);
  }

  /** Rollout `id` as the batch so far and the pending batches leave it; null when there is none. */
  #rolloutView(v: View, id: string): RolloutView | null {
    const p = quiet(v) ? undefined : viewed(v, `r\0${id}`);
    if (p !== undefined) return p.v as RolloutView | null;
    const r = this.rollouts.get(id);
    return r === undefined ? null : { state: r.state, compacted: r.compactedAt !== null, waves: r.waves.length, members: null };
  }

  // ------------------------------------------------------------------ commit

  /** Applies a checked batch (as JSON.parse returned it: the state keeps these objects). */
  commit(batch: readonly Change[]): void {
    for (const c of batch) this.#commitOne(c);
  }

  #commitOne(c: Change): void {
    switch (c.type) {
      case 'device.provision': {
        const d = c.device;
        this.devices.set(d.id, d);
        this.#deviceIds.addMany([d.id]);
        if (d.bundleId !== null) this.#indexBundle(d.id, null, d.bundleId);
        return;
      }
      case 'device.patch': {
        const d = this.devices.get(c.id)!;
        const before = d.bundleId;
        Object.assign(d, c.set);
        if (d.bundleId !== before) this.#indexBundle(d.id, before, d.bundleId);
        return;
      }
      case 'device.history': {
        const h = this.devices.get(c.id)!.history;
        h.push(c.entry);
        if (h.length > DEVICE_HISTORY_LIMIT) h.splice(0, h.length - DEVICE_HISTORY_LIMIT);
        return;
      }
      case 'device.telemetry': {
        const t = this.devices.get(c.id)!.telemetry;
        t.push(c.report);
        if (t.length > DEVICE_TELEMETRY_LIMIT) t.splice(0, t.length - DEVICE_TELEMETRY_LIMIT);
        return;
      }
      case 'device.delete': {
        const d = this.devices.get(c.id)!;
        this.devices.delete(c.id);
        this.#deviceIds.remove(c.id);
        if (d.bundleId !== null) this.#indexBundle(c.id, d.bundleId, null);
        return;
      }
      case 'bundle.put':
        this.bundles.set(c.bundle.id, c.bundle);
        this.#bundleIds.addMany([c.bundle.id]);
        return;
      case 'group.allocateSeq': {
        const g = this.#group(c.group);
        g.seq = Math.max(g.seq, c.seq as number);
        return;
      }
      case 'group.baseline':
        this.#group(c.group).baseline = c.bundleId;
        return;
      case 'rollout.create': {
        const r = c.rollout;
        const stored: StoredRollout = {
          ...r,
          waves: r.waves.map((w, i) => ({ ...w, memberCount: c.members[i].length })),
          decisions: r.decisions ?? [],
          compactedAt: r.compactedAt ?? null,
        };
        if (r.compactedAt != null) {
          // A compacted rollout copied from another store: its member counts come from its header.
          stored.waves = r.waves.map((w) => ({ ...w, memberCount: (w as StoredWave).memberCount ?? 0 }));
          this.rollouts.set(r.id, stored);
          this.#rolloutOrder = null;
          return;
        }
        this.rollouts.set(r.id, stored);
        this.#rolloutOrder = null;
        const members = new Map<string, MemberRecord>();
        c.members.forEach((ids, wave) => {
          ids.forEach((deviceId, ord) => members.set(deviceId, { rolloutId: r.id, deviceId, wave, ord, status: 'pending', reason: null, at: null }));
        });
        this.#adoptMembers(r.id, members);
        return;
      }
      case 'rollout.patch':
        Object.assign(this.rollouts.get(c.id)!, c.set);
        return;
      case 'rollout.wave': {
        const w = this.rollouts.get(c.id)!.waves[c.wave];
        if (c.set !== undefined) Object.assign(w, c.set);
        // Own keys without an array of entries: every ack carries a wave's count deltas.
        const count = c.add?.count as Record<string, number> | undefined;
        if (count !== undefined) {
          const to = w.count as Record<string, number>;
          for (const k in count) if (Object.hasOwn(count, k)) to[k] = (to[k] ?? 0) + count[k];
        }
        if (c.add?.rejectedByReason !== undefined) for (const [k, v] of Object.entries(c.add.rejectedByReason)) tally(w.rejectedByReason, k, v);
        return;
      }
      case 'rollout.decision':
        this.rollouts.get(c.id)!.decisions.push(c.decision);
        return;
      case 'rollout.member': {
        const m = this.members.get(c.id)!.get(c.device)!;
        m.status = c.status;
        m.reason = c.reason ?? null;
        m.at = c.at;
        if (c.wave !== undefined) m.wave = c.wave;
        return;
      }
      case 'rollout.compact': {
        const r = this.rollouts.get(c.id)!;
        if (r.compactedAt !== null) return;
        r.compactedAt = c.at;
        keepFailingUnverified(r.waves, this.members.get(c.id)?.values() ?? []);
        for (const deviceId of this.members.get(c.id)?.keys() ?? []) {
          const list = this.#memberships.get(deviceId);
          if (list === undefined) continue;
          const i = list.indexOf(c.id);
          if (i >= 0) list.splice(i, 1);
          if (list.length === 0) this.#memberships.delete(deviceId);
        }
        this.members.delete(c.id);
        this.#memberIds.delete(c.id);
        return;
      }
      case 'telemetry.put':
        if (!this.telemetry.has(c.key)) this.#telemetryKeys.addMany([c.key]);
        this.telemetry.set(c.key, c.bucket);
        return;
      case 'telemetry.remove':
        if (this.telemetry.delete(c.key)) this.#telemetryKeys.remove(c.key);
        return;
      case 'counter.add':
        this.counters.set(c.name, (this.counters.get(c.name) ?? 0) + c.by);
        return;
      case 'item.put': {
        let col = this.items.get(c.collection);
        if (col === undefined) {
          col = new Map();
          this.items.set(c.collection, col);
          const map = col;
          this.#itemKeys.set(c.collection, new SortedIds(() => map.keys()));
        }
        if (!col.has(c.key)) this.#itemKeys.get(c.collection)!.addMany([c.key]);
        col.set(c.key, c.value);
        return;
      }
      case 'item.delete': {
        const col = this.items.get(c.collection);
        if (col?.delete(c.key)) this.#itemKeys.get(c.collection)!.remove(c.key);
        return;
      }
    }
  }

  #group(name: string): GroupRecord {
    let g = this.groups.get(name);
    if (g === undefined) {
      g = { name, seq: 0, baseline: null };
      this.groups.set(name, g);
    }
    return g;
  }

  #indexBundle(id: string, from: string | null, to: string | null): void {
    if (from !== null) {
      const s = this.#byBundle.get(from);
      s?.delete(id);
      if (s?.size === 0) this.#byBundle.delete(from);
    }
    if (to !== null) {
      let s = this.#byBundle.get(to);
      if (s === undefined) this.#byBundle.set(to, (s = new Set()));
      s.add(id);
    }
  }

  #adoptMembers(rolloutId: string, members: Map<string, MemberRecord>): void {
    this.members.set(rolloutId, members);
    this.#memberIds.set(rolloutId, new SortedIds(() => members.keys()));
    for (const deviceId of members.keys()) {
      const list = this.#memberships.get(deviceId);
      if (list === undefined) this.#memberships.set(deviceId, [rolloutId]);
      else list.push(rolloutId);
    }
  }

  // ------------------------------------------------------------------ loading (snapshots)

  /** Adds a record read from a snapshot; the loader has validated it. */
  loadDevice(d: DeviceRecord): boolean {
    if (this.devices.has(d.id)) return false;
    this.devices.set(d.id, d);
    if (d.bundleId !== null) this.#indexBundle(d.id, null, d.bundleId);
    return true;
  }

  loadRollout(r: StoredRollout, members: MemberRecord[] | null): void {
    this.rollouts.set(r.id, r);
    this.#rolloutOrder = null;
    if (members !== null) this.#adoptMembers(r.id, new Map(members.map((m) => [m.deviceId, m])));
  }

  /** After loading: every index rebuilt from the maps on first use. */
  reindex(): void {
    this.#deviceIds.reset();
    this.#bundleIds.reset();
    this.#telemetryKeys.reset();
    for (const [name, col] of this.items) this.#itemKeys.set(name, new SortedIds(() => col.keys()));
    this.#rolloutOrder = null;
  }

  // ------------------------------------------------------------------ reads (copies)

  getDevice(id: string): DeviceRecord | null {
    const d = this.devices.get(id);
    return d === undefined ? null : copyDevice(d);
  }

  getDeviceCore(id: string): DeviceCore | null {
    const d = this.devices.get(id);
    if (d === undefined) return null;
    // Field by field (a rest copy is a runtime call, ten times as slow): every device message reads one.
    const core: DeviceCore = {
      id: d.id,
      group: d.group,
      model: d.model,
      firmware: d.firmware,
      tokenHash: d.tokenHash,
      createdAt: d.createdAt,
      revokedAt: d.revokedAt,
      lastSeen: d.lastSeen,
      lastConnectAt: d.lastConnectAt,
      lastDisconnectAt: d.lastDisconnectAt,
      seq: d.seq,
      bundleId: d.bundleId,
    };
    if (d.keyEpoch !== undefined) core.keyEpoch = d.keyEpoch;
    if (d.broker !== undefined) core.broker = d.broker;
    return core;
  }

  getDevices(ids: readonly string[]): Array<DeviceRecord | null> {
    checkIds(ids);
    return ids.map((id) => this.getDevice(id));
  }

  listDevices(f: DeviceFilter = {}): Page<DeviceRecord> {
    const match = (d: DeviceRecord) =>
      (f.group === undefined || d.group === f.group) &&
      (f.model === undefined || d.model === f.model) &&
      (f.seq === undefined || d.seq === f.seq) &&
      (f.bundleId === undefined || d.bundleId === f.bundleId);
    if (f.bundleId !== undefined && f.bundleId !== null) {
      // An index of its own: a compacted rollout's reach is asked of a large fleet by a small set.
      const ids = [...(this.#byBundle.get(f.bundleId) ?? [])].sort();
      return pageOver(ids, (id) => this.devices.get(id), match, f, copyDevice);
    }
    return pageOver(this.#deviceIds, (id) => this.devices.get(id), match, f, copyDevice);
  }

  getBundle(id: string): BundleRecord | null {
    const b = this.bundles.get(id);
    return b === undefined ? null : copyJson(b);
  }

  listBundles(f: { group?: string } & PageQuery = {}): Page<BundleRecord> {
    return pageOver(this.#bundleIds, (id) => this.bundles.get(id), (b) => f.group === undefined || b.group === f.group, f, copyJson);
  }

  getGroup(name: string): GroupRecord | null {
    const g = this.groups.get(name);
    return g === undefined ? null : { ...g };
  }

  listGroups(q: PageQuery = {}): Page<GroupRecord> {
    const names = [...this.groups.keys()].sort();
    return pageOver(names, (n) => this.groups.get(n), () => true, q, (g) => ({ ...g }), (g) => g.name);
  }

  listCollections(): string[] {
    return [...this.items].filter(([, m]) => m.size > 0).map(([n]) => n).sort();
  }

  getRollout(id: string): StoredRollout | null {
    const r = this.rollouts.get(id);
    return r === undefined ? null : copyJson(r);
  }

  listRollouts(f: RolloutFilter = {}): Page<StoredRollout> {
    const limit = checkLimit(f.limit);
    const order = (this.#rolloutOrder ??= [...this.rollouts.keys()]);
    let i = 0;
    if (f.cursor != null) {
      i = order.indexOf(f.cursor) + 1;
      if (i === 0) throw new RangeError(`cursor names no rollout: ${JSON.stringify(f.cursor)}`);
    }
    const match = (r: StoredRollout) => (f.state === undefined || r.state === f.state) && (f.group === undefined || r.bundle.group === f.group);
    const items: StoredRollout[] = [];
    for (; i < order.length && items.length < limit; i++) {
      const r = this.rollouts.get(order[i])!;
      if (match(r)) items.push(copyJson(r));
    }
    let next: string | null = null;
    if (items.length === limit) for (; i < order.length; i++) if (match(this.rollouts.get(order[i])!)) { next = items[limit - 1].id; break; }
    return { items, next };
  }

  getMembers(rolloutId: string, deviceIds: readonly string[]): Array<MemberRecord | null> {
    checkIds(deviceIds);
    const members = this.members.get(rolloutId);
    return deviceIds.map((id) => {
      const m = members?.get(id);
      return m === undefined ? null : { ...m };
    });
  }

  listMembers(rolloutId: string, f: MemberFilter = {}): Page<MemberRecord> {
    const members = this.members.get(rolloutId);
    const index = this.#memberIds.get(rolloutId);
    if (members === undefined || index === undefined) {
      checkLimit(f.limit);
      return { items: [], next: null };
    }
    return pageOver(index, (id) => members.get(id), (m) => (f.wave === undefined || m.wave === f.wave) && (f.status === undefined || m.status === f.status), f, (m) => ({ ...m }));
  }

  membershipsOf(deviceId: string): MemberRecord[] {
    const list = this.#memberships.get(deviceId) ?? [];
    const out: MemberRecord[] = [];
    for (let i = list.length - 1; i >= 0; i--) {
      const m = this.members.get(list[i])?.get(deviceId);
      if (m !== undefined) out.push({ ...m });
    }
    return out;
  }

  listTelemetry(q: PageQuery = {}): Page<{ key: string; bucket: TelemetryBucket }> {
    const page = pageOver(this.#telemetryKeys, (k) => (this.telemetry.has(k) ? { key: k, bucket: this.telemetry.get(k)! } : undefined), () => true, q, (e) => ({ key: e.key, bucket: copyJson(e.bucket) }), (e) => e.key);
    return page;
  }

  getCounters(): Record<string, number> {
    return Object.fromEntries(this.counters);
  }

  getItem(collection: string, key: string): JsonObject | null {
    const v = this.items.get(collection)?.get(key);
    return v === undefined ? null : copyJson(v);
  }

  getItems(collection: string, keys: readonly string[]): Array<JsonObject | null> {
    checkIds(keys);
    return keys.map((k) => this.getItem(collection, k));
  }

  listItems(collection: string, q: PageQuery = {}): Page<{ key: string; value: JsonObject }> {
    const col = this.items.get(collection);
    const index = this.#itemKeys.get(collection);
    if (col === undefined || index === undefined) {
      checkLimit(q.limit);
      return { items: [], next: null };
    }
    return pageOver(index, (k) => (col.has(k) ? { key: k, value: col.get(k)! } : undefined), () => true, q, (e) => ({ key: e.key, value: copyJson(e.value) }), (e) => e.key);
  }
}

/** A refusal, worded the same by every store. */
export function refused(code: RefusalCode, ids: string[], why: string): Refused {
  return { ok: false, code, ids, message: `${why}: ${ids.slice(0, 20).map((x) => JSON.stringify(x)).join(', ')}${ids.length > 20 ? ` and ${ids.length - 20} more` : ''}` };
}

/** `Applied` from a check that passed. */
export function applied(c: Extract<Checked, { ok: true }>): Applied {
  return { ok: true, seqs: c.seqs };
}

// Reason tallies come from devices; a reason such as "__proto__" must land as an own property.
function tally(map: Record<string, number>, key: string, delta: number): void {
  if (!Object.hasOwn(map, key)) {
    if (delta !== 0) Object.defineProperty(map, key, { value: delta, writable: true, enumerable: true, configurable: true });
  } else if ((map[key] += delta) === 0) {
    delete map[key];
  }
}

export function checkLimit(limit: number | undefined): number {
  const n = limit ?? DEFAULT_PAGE_LIMIT;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_PAGE_LIMIT) throw new RangeError(`expected limit to be an integer from 1 to ${MAX_PAGE_LIMIT}, got ${limit}`);
  return n;
}

export function checkIds(ids: readonly string[]): void {
  if (!Array.isArray(ids)) throw new TypeError('expected an array of ids');
  if (ids.length > MAX_BATCH_READ) throw new RangeError(`expected at most ${MAX_BATCH_READ} ids, got ${ids.length}`);
}

function pageOver<R, T>(
  index: SortedIds | string[],
  get: (id: string) => R | undefined,
  match: (r: R) => boolean,
  q: PageQuery,
  copy: (r: R) => T,
  idOf: (r: R) => string = (r) => (r as { id?: string; deviceId?: string }).id ?? (r as { deviceId: string }).deviceId,
): Page<T> {
  const limit = checkLimit(q.limit);
  const ids = Array.isArray(index) ? index : index.ids;
  let i = 0;
  if (q.cursor != null) {
    if (Array.isArray(index)) {
      while (i < ids.length && ids[i] <= q.cursor) i++;
    } else i = index.after(q.cursor);
  }
  const items: T[] = [];
  let last: R | null = null;
  for (; i < ids.length && items.length < limit; i++) {
    const r = get(ids[i]);
    if (r !== undefined && match(r)) {
      items.push(copy(r));
      last = r;
    }
  }
  let next: string | null = null;
  if (items.length === limit) {
    for (; i < ids.length; i++) {
      const r = get(ids[i]);
      if (r !== undefined && match(r)) {
        next = idOf(last as R);
        break;
      }
    }
  }
  return { items, next };
}

export function copyDevice(d: DeviceRecord): DeviceRecord {
  return { ...d, history: d.history.map((e) => ({ ...e })), telemetry: d.telemetry.map(copyJson) };
}

/** A deep copy of plain JSON data (faster than structuredClone for the small records here). */
export function copyJson<T>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(copyJson) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    if (k === '__proto__') Object.defineProperty(out, k, { value: copyJson(x), writable: true, enumerable: true, configurable: true });
    else out[k] = copyJson(x);
  }
  return out as T;
}
