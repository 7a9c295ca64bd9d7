// The embedded fleet store (docs/architecture.md §7): the whole durable state in one JSON file, DIR/pinwave.json,
// kept in memory and written whole, atomically, with writes coalesced so that ack ingest does not
// rewrite the file per message.
//
// Atomic: lowdb's DataFile (the adapter under JSONFile) writes through steno's Writer, which writes
// DIR/.pinwave.json.tmp and renames it over DIR/pinwave.json (node_modules/steno/lib/index.js,
// lowdb 7.0.1 / steno 4.0.2), so a reader sees the old file or the new one whole, never a partial one.
// steno does not fsync: that survives a crash of the process, not of the machine. A file the
// machine's crash left empty or torn fails to parse, and load() refuses it rather than start empty.
//
// Coalesced: a change marks the store dirty (a counter bump, O(1), no serialisation) and arms one
// timer; when it fires, the whole state is serialised once and written. At most one write is in
// flight; changes made during it get one more write after it. Operator-rate operations (bulk insert,
// bundles, seq allocation, baselines, revocation) skip the window and resolve once on disk, which
// also carries any coalesced change made before them.
//
// Usage:
//   const store = new LowdbStore({ dir: '/var/lib/pinwave' });
//   await store.load();
//   await store.updateDevice('dev-1', (d) => { d.seq = 7; });   // coalesced
//   const seq = await store.allocateSeq('door-locks');          // on disk before it returns
//   await store.close();                                        // flushes
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Adapter } from 'lowdb';
import { DataFile } from 'lowdb/node';
import {
  DEFAULT_PAGE_LIMIT,
  DEVICE_HISTORY_LIMIT,
  DEVICE_TELEMETRY_LIMIT,
  MAX_PAGE_LIMIT,
  StoreError,
  type BundleQuery,
  type BundleRecord,
  type DeviceMutator,
  type DevicePatch,
  type DeviceQuery,
  type DeviceRecord,
  type Page,
  type PutResult,
  type RolloutRecord,
  type Store,
} from './types.ts';
import { SortedIds } from './sorted-ids.ts';

export const STORE_FILENAME = 'pinwave.json';
/** The schema of the file; bump it with a migration when the file's shape changes. */
export const SCHEMA_VERSION = 1;
export const DEFAULT_WINDOW_MS = 100;
const MAX_RETRY_MS = 5000;
/** Writes may hold the event loop for at most 1 / (WRITE_COST_FACTOR + 1) of the time (see windowMs). */
const WRITE_COST_FACTOR = 8;
const MAX_ADAPTIVE_WINDOW_MS = 5000;

/** The file, as written. Maps are written as objects, keyed collections as arrays of records. */
export interface StoreFile {
  version: number;
  devices: DeviceRecord[];
  bundles: BundleRecord[];
  /** group → highest seq handed out */
  seq: Record<string, number>;
  /** group → bundle id of its last completed rollout */
  baselines: Record<string, string>;
  rollouts: RolloutRecord[];
  telemetry: Record<string, unknown> | null;
  counters: Record<string, number>;
}

interface CommonOptions {
  /** How long changes gather before one write, in ms. Default 100; tests pass 0 or a large value and flush(). */
  windowMs?: number;
  /** Told when a write that no caller awaits fails; it is retried, backing off to 5 s. Default: process.emitWarning. */
  onWriteError?: (err: Error) => void;
}

export interface LowdbStoreOptions extends CommonOptions {
  /** The data directory; created with mode 0700 if missing, since the file holds device token hashes. */
  dir: string;
}

/** Any lowdb adapter in place of the file (memory.ts); `name` is what errors call it. */
export interface AdapterStoreOptions extends CommonOptions {
  adapter: Adapter<StoreFile>;
  name: string;
}

interface Waiter {
  gen: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class LowdbStore implements Store {
  readonly #dir: string | null;
  readonly #name: string;
  readonly #adapter: Adapter<StoreFile>;
  readonly #windowMs: number;
  /** how long the last write's synchronous part (snapshot + JSON.stringify) held the event loop */
  #lastWriteCostMs = 0;
  readonly #onWriteError: (err: Error) => void;

  #state: 'new' | 'open' | 'closed' = 'new';
  readonly #devices = new Map<string, DeviceRecord>();
  readonly #groups = new Map<string, Set<string>>();
  readonly #deviceIds = new SortedIds(() => this.#devices.keys());
  readonly #bundles = new Map<string, BundleRecord>();
  readonly #bundleIds = new SortedIds(() => this.#bundles.keys());
  readonly #seq = new Map<string, number>();
  readonly #baselines = new Map<string, string>();
  readonly #rollouts = new Map<string, RolloutRecord>();
  #telemetry: Record<string, unknown> | null = null;
  readonly #counters = new Map<string, number>();

  // Write scheduling. #gen counts changes; a write captures the #gen it serialised and, once on
  // disk, makes it #savedGen. Dirty means #gen > #savedGen.
  #gen = 0;
  #savedGen = 0;
  #inFlight = false;
  #timer: NodeJS.Timeout | null = null;
  #waiters: Waiter[] = [];
  #retryMs = 0;
  #writes = 0;

  constructor(options: LowdbStoreOptions | AdapterStoreOptions) {
    if ('adapter' in options) {
      this.#dir = null;
      this.#name = options.name;
      this.#adapter = options.adapter;
    } else {
      this.#dir = options.dir;
      this.#name = join(options.dir, STORE_FILENAME);
      // DataFile is what JSONFile extends, minus its 2-space indent: for 10,000 devices that indent
      // made the file ~37% larger and JSON.stringify ~20% slower, and the file is for the gateway,
      // not for people (`jq . pinwave.json` reads it).
      this.#adapter = new DataFile<StoreFile>(this.#name, { parse: JSON.parse, stringify: (d) => JSON.stringify(d) });
    }
    const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    if (!Number.isFinite(windowMs) || windowMs < 0) throw new RangeError(`expected windowMs >= 0, got ${windowMs}`);
    this.#windowMs = windowMs;
    this.#onWriteError =
      options.onWriteError ?? ((err) => process.emitWarning(`pinwave store: writing ${this.#name} failed, will retry: ${err.message}`));
  }

  /** The data file's path (or the adapter's name). */
  get file(): string {
    return this.#name;
  }

  /** Completed writes of the whole state since this instance was made (the benchmark's figure). */
  get writes(): number {
    return this.#writes;
  }

  async load(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`store ${this.#name}: load() may be called once`);
    if (this.#dir !== null) await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    let data: unknown;
    try {
      data = await this.#adapter.read();
    } catch (err) {
      // Refuse, and leave the file as it is: starting empty would overwrite the fleet on the next write.
      if (err instanceof SyntaxError) {
        throw new StoreError(
          'PW_STORE_CORRUPT',
          `${this.#name} is not valid JSON (${err.message}); refusing to load it so nothing stored there is lost: restore it from a backup or move it aside`,
          { cause: err },
        );
      }
      throw err;
    }
    if (data === null) {
      this.#state = 'open';
      this.#changed();
      // Create the file now, so a data dir the gateway cannot write fails at startup, not at the first ack.
      await this.#durable();
      return;
    }
    this.#ingest(data);
    this.#state = 'open';
  }

  async flush(): Promise<void> {
    if (this.#state !== 'open') return;
    await this.#durable();
  }

  async close(): Promise<void> {
    if (this.#state === 'open') {
      // Loop: a change made while the last write was on its way still gets written.
      while (this.#gen > this.#savedGen) await this.#durable();
      this.#state = 'closed';
    } else if (this.#state === 'new') {
      // A store whose load() failed writes nothing: the file it refused stays untouched.
      this.#state = 'closed';
    }
    // No timer is left armed here: #durable cancels a pending one and #next arms none once clean.
  }

  // ---- devices ----

  async getDevice(id: string): Promise<DeviceRecord | null> {
    this.#assertOpen();
    return this.#devices.get(id) ?? null;
  }

  async putDevices(records: DeviceRecord[]): Promise<PutResult> {
    this.#assertOpen();
    if (!Array.isArray(records)) throw new TypeError(`putDevices: expected an array of devices, got ${typeof records}`);
    const seen = new Set<string>();
    const dup = new Set<string>();
    for (const [i, d] of records.entries()) {
      checkDevice(d, `putDevices: records[${i}]`);
      if (seen.has(d.id) || this.#devices.has(d.id)) dup.add(d.id);
      seen.add(d.id);
    }
    if (dup.size > 0) return { ok: false, code: 'PW_STORE_DUPLICATE_ID', ids: [...dup] };
    if (records.length === 0) return { ok: true, count: 0 };
    for (const d of records) {
      trimDevice(d);
      this.#devices.set(d.id, d);
      this.#addToGroup(d.group, d.id);
    }
    this.#deviceIds.addMany(records.map((d) => d.id));
    this.#changed();
    await this.#durable();
    return { ok: true, count: records.length };
  }

  async updateDevice(id: string, change: DevicePatch | DeviceMutator): Promise<DeviceRecord | null> {
    this.#assertOpen();
    const d = this.#devices.get(id);
    if (d === undefined) return null;
    const group = d.group;
    let failure: unknown = null;
    try {
      if (typeof change === 'function') change(d);
      else Object.assign(d, change);
    } catch (err) {
      failure = err;
    }
    // Even a mutator that threw half way may have changed the record: keep the index and file true to it.
    if (d.id !== id) {
      failure = new TypeError(`updateDevice: a device's id cannot change (${id} → ${String(d.id)})`);
      d.id = id;
    }
    if (d.group !== group) this.#moveGroup(id, group, d.group);
    trimDevice(d);
    this.#changed();
    if (failure !== null) throw failure;
    return d;
  }

  async revokeDevice(id: string, at: number): Promise<DeviceRecord | null> {
    this.#assertOpen();
    const d = this.#devices.get(id);
    if (d === undefined) return null;
    if (d.revokedAt === null) {
      d.revokedAt = at;
      this.#changed();
    }
    await this.#durable();
    return d;
  }

  async deleteDevice(id: string): Promise<boolean> {
    this.#assertOpen();
    const d = this.#devices.get(id);
    if (d === undefined) return false;
    this.#devices.delete(id);
    this.#removeFromGroup(d.group, id);
    this.#deviceIds.remove(id);
    this.#changed();
    await this.#durable();
    return true;
  }

  async listDevices(query: DeviceQuery = {}): Promise<Page<DeviceRecord>> {
    this.#assertOpen();
    const { group, model, seq } = query;
    const match = (d: DeviceRecord): boolean =>
      (group === undefined || d.group === group) &&
      (model === undefined || d.model === model) &&
      (seq === undefined || d.seq === seq);
    return page(this.#deviceIds, this.#devices, match, query.limit, query.cursor);
  }

  async devicesInGroup(group: string): Promise<string[]> {
    this.#assertOpen();
    const ids = this.#groups.get(group);
    return ids === undefined ? [] : [...ids].sort();
  }

  // ---- bundles, seq, baselines ----

  async putBundle(bundle: BundleRecord): Promise<PutResult> {
    this.#assertOpen();
    if (typeof bundle?.id !== 'string' || bundle.id === '') throw new TypeError('putBundle: expected a bundle with a non-empty string id');
    if (this.#bundles.has(bundle.id)) return { ok: false, code: 'PW_STORE_DUPLICATE_ID', ids: [bundle.id] };
    this.#bundles.set(bundle.id, bundle);
    this.#bundleIds.addMany([bundle.id]);
    this.#changed();
    await this.#durable();
    return { ok: true, count: 1 };
  }

  async getBundle(id: string): Promise<BundleRecord | null> {
    this.#assertOpen();
    return this.#bundles.get(id) ?? null;
  }

  async listBundles(query: BundleQuery = {}): Promise<Page<BundleRecord>> {
    this.#assertOpen();
    const { group } = query;
    return page(this.#bundleIds, this.#bundles, (b) => group === undefined || b.group === group, query.limit, query.cursor);
  }

  // Write-through, not reserved in blocks: a seq is allocated once per bundle (operator rate), and
  // one whole-file write per bundle costs nothing next to signing it and rolling it out.
  async allocateSeq(group: string, above = 0): Promise<number> {
    this.#assertOpen();
    if (typeof group !== 'string' || group === '') throw new TypeError('allocateSeq: expected a non-empty group name');
    if (!Number.isSafeInteger(above) || above < 0) throw new RangeError(`allocateSeq: expected above to be an integer >= 0, got ${above}`);
    // Taken in memory before the write: should the write fail, this seq is still never handed out again.
    const seq = Math.max(this.#seq.get(group) ?? 0, above) + 1;
    this.#seq.set(group, seq);
    this.#changed();
    await this.#durable();
    return seq;
  }

  async getBaseline(group: string): Promise<string | null> {
    this.#assertOpen();
    return this.#baselines.get(group) ?? null;
  }

  async setBaseline(group: string, bundleId: string): Promise<void> {
    this.#assertOpen();
    this.#baselines.set(group, bundleId);
    this.#changed();
    await this.#durable();
  }

  // ---- rollouts, telemetry, counters ----

  async putRollout(rollout: RolloutRecord): Promise<void> {
    this.#assertOpen();
    if (typeof rollout?.id !== 'string' || rollout.id === '') throw new TypeError('putRollout: expected a rollout with a non-empty string id');
    // Re-putting the same object (every ack) costs a Map lookup; Map.set keeps first-stored order.
    if (this.#rollouts.get(rollout.id) !== rollout) this.#rollouts.set(rollout.id, rollout);
    this.#changed();
  }

  async getRollout(id: string): Promise<RolloutRecord | null> {
    this.#assertOpen();
    return this.#rollouts.get(id) ?? null;
  }

  async listRollouts(query: { state?: string } = {}): Promise<RolloutRecord[]> {
    this.#assertOpen();
    const all = [...this.#rollouts.values()];
    return query.state === undefined ? all : all.filter((r) => r.state === query.state);
  }

  async getTelemetry(): Promise<Record<string, unknown> | null> {
    this.#assertOpen();
    return this.#telemetry;
  }

  async putTelemetry(aggregates: Record<string, unknown>): Promise<void> {
    this.#assertOpen();
    this.#telemetry = aggregates;
    this.#changed();
  }

  async incrementCounter(name: string, by = 1): Promise<number> {
    this.#assertOpen();
    if (!Number.isFinite(by)) throw new RangeError(`incrementCounter: expected a finite number, got ${by}`);
    const value = (this.#counters.get(name) ?? 0) + by;
    this.#counters.set(name, value);
    this.#changed();
    return value;
  }

  async getCounters(): Promise<Record<string, number>> {
    this.#assertOpen();
    return Object.fromEntries(this.#counters);
  }

  // ---- writing ----

  #assertOpen(): void {
    if (this.#state === 'open') return;
    if (this.#state === 'new') throw new StoreError('PW_STORE_NOT_LOADED', `store ${this.#name}: call load() first`);
    throw new StoreError('PW_STORE_CLOSED', `store ${this.#name} is closed`);
  }

  /**
   * The coalescing window in force: the configured one, or WRITE_COST_FACTOR times what the last
   * write blocked the event loop for, whichever is longer. A whole-file write grows with the fleet
   * (10k devices: ~100 ms of JSON.stringify here); without this a busy gateway would spend most of
   * its time rewriting the file. A kill -9 loses at most this window, and reconciliation heals it.
   */
  get windowMs(): number {
    return Math.min(MAX_ADAPTIVE_WINDOW_MS, Math.max(this.#windowMs, this.#lastWriteCostMs * WRITE_COST_FACTOR));
  }

  /** The per-change cost: a counter bump and, for the first change of a window, one timer. */
  #changed(): void {
    this.#gen++;
    if (this.#timer === null && !this.#inFlight) this.#timer = setTimeout(this.#fire, this.windowMs);
  }

  readonly #fire = (): void => {
    this.#timer = null;
    if (!this.#inFlight && this.#gen > this.#savedGen) this.#write();
  };

  /** Resolves once every change made so far is on disk; starts a write now instead of at the window's end. */
  #durable(): Promise<void> {
    if (this.#savedGen >= this.#gen) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ gen: this.#gen, resolve, reject }));
    if (!this.#inFlight) {
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#timer = null;
      this.#write();
    }
    return p;
  }

  #write(): void {
    this.#inFlight = true;
    const gen = this.#gen;
    let done: Promise<void>;
    try {
      // DataFile.write serialises synchronously, inside this call: the file holds exactly the
      // changes counted up to `gen`, and later ones are left for the next write.
      const started = performance.now();
      done = this.#adapter.write(this.#snapshot());
      this.#lastWriteCostMs = performance.now() - started;
    } catch (err) {
      done = Promise.reject(err); // e.g. a rollout record JSON cannot represent
    }
    done.then(
      () => {
        this.#writes++;
        this.#savedGen = gen;
        this.#retryMs = 0;
        this.#settle(gen, null);
        this.#next();
      },
      (err: unknown) => {
        const error = err as Error; // steno and JSON.stringify throw Errors
        this.#retryMs = Math.min(MAX_RETRY_MS, Math.max(this.#windowMs, 50, this.#retryMs * 2));
        const told = this.#settle(gen, error);
        if (!told) {
          try {
            this.#onWriteError(error);
          } catch {
            // a failing reporter must not stop the retries
          }
        }
        this.#next();
      },
    );
  }

  /** Resolves (or rejects) the callers waiting for changes up to `gen`; true if there were any. */
  #settle(gen: number, err: Error | null): boolean {
    if (this.#waiters.length === 0) return false;
    const waiting: Waiter[] = [];
    let settled = false;
    for (const w of this.#waiters) {
      if (w.gen > gen) waiting.push(w);
      else {
        settled = true;
        if (err === null) w.resolve();
        else w.reject(err);
      }
    }
    this.#waiters = waiting;
    return settled;
  }

  /** After a write: one more if anything changed meanwhile, at once when someone awaits it. */
  #next(): void {
    this.#inFlight = false;
    if (this.#gen <= this.#savedGen) return;
    if (this.#retryMs === 0 && this.#waiters.length > 0) this.#write();
    else if (this.#timer === null) this.#timer = setTimeout(this.#fire, this.#retryMs || this.windowMs);
  }

  #snapshot(): StoreFile {
    return {
      version: SCHEMA_VERSION,
      devices: Array.from(this.#devices.values()),
      bundles: Array.from(this.#bundles.values()),
      // Object.fromEntries defines own properties, so a group named "__proto__" round-trips safely.
      seq: Object.fromEntries(this.#seq),
      baselines: Object.fromEntries(this.#baselines),
      rollouts: Array.from(this.#rollouts.values()),
      telemetry: this.#telemetry,
      counters: Object.fromEntries(this.#counters),
    };
  }

  // ---- loading ----

  #ingest(data: unknown): void {
    const bad = (what: string): StoreError =>
      new StoreError('PW_STORE_CORRUPT', `${this.#name}: ${what}; refusing to load it so nothing stored there is lost`);
    if (!isObject(data)) throw bad('expected a JSON object at the top');
    const version = data.version;
    if (!Number.isSafeInteger(version) || (version as number) < 1) throw bad(`expected a schema version (an integer >= 1), got ${JSON.stringify(version)}`);
    if (version !== SCHEMA_VERSION) {
      throw new StoreError(
        'PW_STORE_VERSION',
        `${this.#name} has schema version ${version}, this pinwave reads version ${SCHEMA_VERSION}: run the pinwave that wrote it, or a newer one`,
      );
    }
    const { devices, bundles, seq, baselines, rollouts, telemetry, counters } = data;
    if (!Array.isArray(devices)) throw bad('expected "devices" to be an array');
    if (!Array.isArray(bundles)) throw bad('expected "bundles" to be an array');
    if (!Array.isArray(rollouts)) throw bad('expected "rollouts" to be an array');
    if (!isObject(seq)) throw bad('expected "seq" to be an object');
    if (!isObject(baselines)) throw bad('expected "baselines" to be an object');
    if (!isObject(counters)) throw bad('expected "counters" to be an object');
    if (telemetry !== null && !isObject(telemetry)) throw bad('expected "telemetry" to be an object or null');

    for (const [i, d] of devices.entries()) {
      if (!isObject(d) || typeof d.id !== 'string' || typeof d.group !== 'string' || !Array.isArray(d.history) || !Array.isArray(d.telemetry)) {
        throw bad(`devices[${i}] is not a device record (id, group, history, telemetry)`);
      }
      if (this.#devices.has(d.id)) throw bad(`devices[${i}]: device id ${JSON.stringify(d.id)} appears twice`);
      this.#devices.set(d.id, d as unknown as DeviceRecord);
      this.#addToGroup(d.group, d.id);
    }
    for (const [i, b] of bundles.entries()) {
      if (!isObject(b) || typeof b.id !== 'string' || typeof b.group !== 'string') throw bad(`bundles[${i}] is not a bundle record`);
      if (this.#bundles.has(b.id)) throw bad(`bundles[${i}]: bundle id ${JSON.stringify(b.id)} appears twice`);
      this.#bundles.set(b.id, b as unknown as BundleRecord);
    }
    for (const [i, r] of rollouts.entries()) {
      if (!isObject(r) || typeof r.id !== 'string' || typeof r.state !== 'string') throw bad(`rollouts[${i}] is not a rollout record (id, state)`);
      if (this.#rollouts.has(r.id)) throw bad(`rollouts[${i}]: rollout id ${JSON.stringify(r.id)} appears twice`);
      this.#rollouts.set(r.id, r as RolloutRecord);
    }
    for (const [group, n] of Object.entries(seq)) {
      if (!Number.isSafeInteger(n) || (n as number) < 0) throw bad(`seq[${JSON.stringify(group)}] is not an integer >= 0`);
      this.#seq.set(group, n as number);
    }
    for (const [group, id] of Object.entries(baselines)) {
      if (typeof id !== 'string') throw bad(`baselines[${JSON.stringify(group)}] is not a bundle id`);
      this.#baselines.set(group, id);
    }
    for (const [name, n] of Object.entries(counters)) {
      if (typeof n !== 'number' || !Number.isFinite(n)) throw bad(`counters[${JSON.stringify(name)}] is not a number`);
      this.#counters.set(name, n);
    }
    this.#telemetry = telemetry as Record<string, unknown> | null;
  }

  #addToGroup(group: string, id: string): void {
    let ids = this.#groups.get(group);
    if (ids === undefined) this.#groups.set(group, (ids = new Set()));
    ids.add(id);
  }

  #removeFromGroup(group: string, id: string): void {
    const ids = this.#groups.get(group) as Set<string>; // every stored device is in its group's set
    ids.delete(id);
    if (ids.size === 0) this.#groups.delete(group);
  }

  #moveGroup(id: string, from: string, to: string): void {
    this.#removeFromGroup(from, id);
    this.#addToGroup(to, id);
  }
}

function page<T extends { id: string }>(
  index: SortedIds,
  records: Map<string, T>,
  match: (r: T) => boolean,
  limit: number = DEFAULT_PAGE_LIMIT,
  cursor?: string | null,
): Page<T> {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new RangeError(`expected limit to be an integer from 1 to ${MAX_PAGE_LIMIT}, got ${limit}`);
  }
  const ids = index.ids;
  const items: T[] = [];
  let i = cursor == null ? 0 : index.after(cursor);
  for (; i < ids.length && items.length < limit; i++) {
    const r = records.get(ids[i]) as T;
    if (match(r)) items.push(r);
  }
  // Look ahead for one more match, so `next` is null exactly when the listing is done.
  let next: string | null = null;
  if (items.length === limit) {
    for (; i < ids.length; i++) {
      if (match(records.get(ids[i]) as T)) {
        next = items[limit - 1].id;
        break;
      }
    }
  }
  return { items, next };
}

function checkDevice(d: DeviceRecord, where: string): void {
  if (!isObject(d)) throw new TypeError(`${where}: expected a device record, got ${d === null ? 'null' : typeof d}`);
  if (typeof d.id !== 'string' || d.id === '') throw new TypeError(`${where}: expected a non-empty string id`);
  if (typeof d.group !== 'string' || d.group === '') throw new TypeError(`${where}: expected a non-empty string group`);
  if (!Array.isArray(d.history) || !Array.isArray(d.telemetry)) throw new TypeError(`${where}: expected history and telemetry arrays`);
}

function trimDevice(d: DeviceRecord): void {
  if (d.history.length > DEVICE_HISTORY_LIMIT) d.history.splice(0, d.history.length - DEVICE_HISTORY_LIMIT);
  if (d.telemetry.length > DEVICE_TELEMETRY_LIMIT) d.telemetry.splice(0, d.telemetry.length - DEVICE_TELEMETRY_LIMIT);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
