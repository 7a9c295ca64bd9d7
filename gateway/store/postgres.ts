// The PostgreSQL Store of changes (docs/storage.md; docs/architecture.md §7, §8), through node-postgres
// (`pg`): real tables (postgres-schema.ts), migrations applied at start, and group commit: the
// batches that arrive while a transaction is in flight, or within `commitWindowMs`, share the next
// transaction, and their changes go in as multi-row statements (unnest of arrays), so ingest is a
// few round trips per commit, not one per ack.
//
// Nothing is decided in this process that another gateway sharing the database would have to
// know: seqs are allocated by the database (an upsert that returns the new seq), existence and
// duplicates are the database's constraints, and every read goes to the database. Several gateways
// can share one database later (docs/architecture.md §8) without a change here.
//
// A batch's changes are placed into statements in their order, a change joining an earlier
// statement of its kind only when nothing between touches what it touches, so a batch's effect is
// the one the other stores give. A refusal (a duplicate id, an unknown record) rolls the group's
// transaction back; its batches are then applied one transaction each, so only the refused batch
// is refused. A connection that fails rejects the group with PW_STORE_UNREACHABLE naming the URL
// without its password; the pool reconnects on the next batch.
//
//   const store = new PostgresStore({ url: 'postgres://pinwave@127.0.0.1:5432/pinwave' });
//   await store.open();                  // migrates; PW_STORE_UNREACHABLE when it cannot connect
import pg from 'pg';
import type {
  Applied,
  ApplyOptions,
  Change,
  ChangeStore,
  DeviceFilter,
  GroupRecord,
  JsonObject,
  MemberFilter,
  MemberRecord,
  PageQuery,
  RefusalCode,
  RolloutFilter,
  StoredRollout,
  StoredWave,
  StoreStatus,
  TelemetryBucket,
} from './changes.ts';
import { checkIds, checkLimit, refused } from './fleet-state.ts';
import { MIGRATIONS } from './postgres-schema.ts';
import { DEVICE_HISTORY_LIMIT, DEVICE_TELEMETRY_LIMIT, StoreError, type BundleRecord, type DeviceCore, type DeviceHistoryEntry, type DeviceRecord, type Page, type StoreErrorCode } from './types.ts';
import { checkChange } from './validate.ts';
import type { StoreLogger } from './embedded.ts';
import type { Decision } from '../rollout/types.ts';
import { FAILING_UNVERIFIED } from '../rollout/verification.ts';

export interface PostgresStoreOptions {
  /** postgres://USER[:PASSWORD]@HOST:PORT/DB */
  url: string;
  /** How long a durable batch waits for others to share its transaction, ms. Default 1. */
  commitWindowMs?: number;
  /** How long a lazy batch (`durable: false`) may wait, ms. Default 1000. */
  lazyWindowMs?: number;
  /** Connections in the pool (one writes, the others read). Default 4. */
  poolSize?: number;
  /**
   * Gateway replicas (docs/architecture.md §8): the leadership epoch this process leads under, read
   * when a batch is applied, or null when it does not lead. A batch applied under an epoch commits
   * only while that epoch is the database's (`replica_leader`, read FOR SHARE inside the
   * transaction, which a takeover's UPDATE of the epoch waits for): a leader that lost the lead is
   * refused, PW_STORE_CONFLICT, before anything of its batch lands. Settable after open (`fence`).
   */
  fence?: () => number | null;
  logger?: StoreLogger;
}

import { redactUrl } from './redact-url.ts';
export { redactUrl };

// bigint (int8) columns hold epoch ms and seqs, all safe integers: read them as numbers.
const TYPES = { getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser };

const NO_LOG: StoreLogger = { info() {}, warn() {}, error() {} };
const COUNT_KEYS = ['pending', 'sent', 'applied', 'rejected', 'timed_out', 'failing', 'unreachable', 'verifying', 'verified', 'unverified', 'reverted'] as const;
const DEVICE_COLUMNS: Record<string, string> = {
  seq: 'seq',
  bundleId: 'bundle_id',
  model: 'model',
  firmware: 'firmware',
  keyEpoch: 'key_epoch',
  lastSeen: 'last_seen',
  lastConnectAt: 'last_connect_at',
  lastDisconnectAt: 'last_disconnect_at',
  tokenHash: 'token_hash',
  revokedAt: 'revoked_at',
};
const DEVICE_TYPES: Record<string, string> = { seq: 'bigint', bundle_id: 'text', model: 'text', firmware: 'text', key_epoch: 'bigint', last_seen: 'bigint', last_connect_at: 'bigint', last_disconnect_at: 'bigint', token_hash: 'text', revoked_at: 'bigint' };

/** A refusal found inside a transaction: it is rolled back, and the batch answered with it. */
class Refusal extends Error {
  constructor(readonly code: RefusalCode, readonly ids: string[], readonly why: string) {
    super(why);
  }
}

interface Entry {
  changes: Change[];
  durable: boolean;
  /** the leadership epoch the batch was applied under (PostgresStoreOptions.fence), or null */
  epoch: number | null;
  at: number;
  resolve: (a: Applied) => void;
  reject: (e: Error) => void;
}

/** One statement being built: a kind of change, the changes it takes, and what they touch. */
interface Bucket {
  kind: string;
  changes: Change[];
  keys: Set<string>;
  scopes: Set<string>;
  wholes: Set<string>;
}

/** What a change touches: rows (keys), the rollout or device it belongs to (scope), or all of one (whole). */
function touches(c: Change): { kind: string; keys: string[]; scope?: string; whole?: string } {
  switch (c.type) {
    case 'device.provision':
      return { kind: c.type, keys: [`D:${c.device.id}`] };
    case 'device.patch':
    case 'device.history':
    case 'device.telemetry':
    case 'device.delete':
      return { kind: c.type, keys: [`D:${c.id}`] };
    case 'bundle.put':
      return { kind: c.type, keys: [`B:${c.bundle.id}`] };
    case 'group.allocateSeq':
    case 'group.baseline':
      return { kind: c.type, keys: [`G:${c.group}`] };
    case 'rollout.create':
      return { kind: c.type, keys: [], whole: c.rollout.id };
    case 'rollout.compact':
      return { kind: c.type, keys: [], whole: c.id };
    case 'rollout.patch':
      return { kind: c.type, keys: [`P:${c.id}`], scope: c.id };
    case 'rollout.wave':
      return { kind: c.add !== undefined && c.set === undefined && c.add.rejectedByReason === undefined ? 'rollout.wave.add' : 'rollout.wave', keys: [`W:${c.id}#${c.wave}`], scope: c.id };
    case 'rollout.decision':
      return { kind: c.type, keys: [`Q:${c.id}`], scope: c.id };
    case 'rollout.member':
      return { kind: c.type, keys: [`M:${c.id}\0${c.device}`], scope: c.id };
    case 'telemetry.put':
    case 'telemetry.remove':
      return { kind: c.type, keys: [`T:${c.key}`] };
    case 'counter.add':
      return { kind: c.type, keys: [] };
    case 'item.put':
    case 'item.delete':
      return { kind: c.type, keys: [`I:${c.collection}\0${c.key}`] };
  }
}

function conflicts(b: Bucket, t: ReturnType<typeof touches>): boolean {
  for (const k of t.keys) if (b.keys.has(k)) return true;
  if (t.whole !== undefined && (b.scopes.has(t.whole) || b.wholes.has(t.whole))) return true;
  if (t.scope !== undefined && b.wholes.has(t.scope)) return true;
  return false;
}

/** Kinds that are one statement per change (rare, operator-rate), never merged. */
const SINGLE = new Set(['group.allocateSeq', 'rollout.create', 'rollout.compact', 'rollout.patch', 'rollout.wave']);

/** The statements for changes, in an order with the same effect as applying them one by one. */
export function plan(changes: readonly Change[]): Bucket[] {
  const buckets: Bucket[] = [];
  for (const c of changes) {
    const t = touches(c);
    let target: Bucket | null = null;
    if (!SINGLE.has(t.kind)) {
      for (let i = buckets.length - 1; i >= 0; i--) {
        const b = buckets[i];
        if (b.kind === t.kind) {
          target = b;
          break;
        }
        if (conflicts(b, t)) break;
      }
    }
    if (target === null) {
      target = { kind: t.kind, changes: [], keys: new Set(), scopes: new Set(), wholes: new Set() };
      buckets.push(target);
    }
    target.changes.push(c);
    for (const k of t.keys) target.keys.add(k);
    if (t.scope !== undefined) target.scopes.add(t.scope);
    if (t.whole !== undefined) target.wholes.add(t.whole);
  }
  return buckets;
}

export class PostgresStore implements ChangeStore {
  readonly url: string;
  readonly name: string;
  readonly #o: { commitWindowMs: number; lazyWindowMs: number; poolSize: number };
  readonly #log: StoreLogger;
  #pool: pg.Pool | null = null;
  #phase: 'new' | 'opening' | 'open' | 'closed' = 'new';
  /** open()'s work, which a close() during it waits for */
  #opening: Promise<void> | null = null;
  #queue: Entry[] = [];
  #writing = false;
  #timer: NodeJS.Timeout | null = null;
  #timerDue = 0;
  #drained: Array<() => void> = [];
  readonly #stats = { batches: 0, writes: 0, fsyncs: 0, lastDurableAt: null as number | null };
  #lastError: StoreStatus['lastError'] = null;
  #failures = 0;

  /** PostgresStoreOptions.fence; the gateway sets it once it is a replica. */
  fence: (() => number | null) | null = null;

  constructor(o: PostgresStoreOptions) {
    this.fence = o.fence ?? null;
    if (typeof o?.url !== 'string' || !/^postgres(ql)?:\/\//.test(o.url)) throw new TypeError(`PostgresStore: expected a postgres:// URL, got ${typeof o?.url === 'string' ? redactUrl(o.url) : String(o?.url)}`);
    this.url = o.url;
    this.name = redactUrl(o.url);
    this.#o = { commitWindowMs: o.commitWindowMs ?? 1, lazyWindowMs: o.lazyWindowMs ?? 1000, poolSize: o.poolSize ?? 4 };
    this.#log = o.logger ?? NO_LOG;
  }

  #assertOpen(): pg.Pool {
    if (this.#phase === 'open' && this.#pool !== null) return this.#pool;
    if (this.#phase === 'closed') throw new StoreError('PW_STORE_CLOSED', `store ${this.name} is closed`);
    throw new StoreError('PW_STORE_NOT_LOADED', `store ${this.name}: call open() first`);
  }

  #unreachable(err: unknown, doing: string): StoreError {
    const e = err as NodeJS.ErrnoException & { code?: string };
    if (e instanceof StoreError) return e;
    // SQLSTATE 53100 disk_full, 53200 out_of_memory; 57P0x: the server is shutting down; 08xxx: connection.
    const sqlstate = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : null;
    let code: StoreErrorCode = 'PW_STORE_IO';
    if (sqlstate === '53100') code = 'PW_STORE_FULL';
    else if (sqlstate === null || sqlstate.startsWith('08') || sqlstate.startsWith('57P')) code = 'PW_STORE_UNREACHABLE';
    const why = code === 'PW_STORE_FULL' ? 'insufficient storage: the database disk is full' : `${e.code ?? ''} ${e.message}`.trim();
    return new StoreError(code, `store ${this.name}: ${doing} failed (${why})`, { cause: err });
  }

  // ------------------------------------------------------------------ open, close

  open(): Promise<void> {
    if (this.#phase !== 'new') return Promise.reject(new StoreError('PW_STORE_CLOSED', `store ${this.name} was opened already`));
    this.#phase = 'opening';
    const opening = this.#open().catch((err: unknown) => {
      this.#phase = 'new';
      throw err;
    });
    this.#opening = opening;
    return opening;
  }

  async #open(): Promise<void> {
    const pool = new pg.Pool({ connectionString: this.url, max: this.#o.poolSize, types: TYPES, connectionTimeoutMillis: 10_000 });
    // An idle connection the server dropped: the pool replaces it; say so, never crash.
    pool.on('error', (err) => this.#log.warn({ store: this.name, err: err.message }, 'store: a database connection was lost; reconnecting on next use'));
    try {
      const client = await pool.connect();
      try {
        await this.#migrate(client);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      if (err instanceof StoreError) throw err;
      throw this.#unreachable(err, 'connecting');
    }
    this.#pool = pool;
    this.#phase = 'open';
  }

  async #migrate(client: pg.PoolClient): Promise<void> {
    await client.query('BEGIN');
    try {
      // Gateways starting together migrate one at a time.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('pinwave_schema'))");
      await client.query('CREATE TABLE IF NOT EXISTS pinwave_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
      const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM pinwave_schema');
      const have = rows[0].v ?? 0;
      if (have > MIGRATIONS.length) throw new StoreError('PW_STORE_VERSION', `store ${this.name} has schema version ${have}, this pinwave knows ${MIGRATIONS.length}: run the pinwave that wrote it, or a newer one`);
      for (let v = have + 1; v <= MIGRATIONS.length; v++) {
        await client.query(MIGRATIONS[v - 1]);
        await client.query('INSERT INTO pinwave_schema (version) VALUES ($1)', [v]);
        this.#log.info({ store: this.name, version: v }, 'store: schema migrated');
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async close(): Promise<void> {
    // Closed while it opens (a stop during start): once open, closed as ever, its connections ended.
    if (this.#phase === 'opening') await this.#opening?.catch(() => undefined);
    if (this.#phase !== 'open') {
      this.#phase = 'closed';
      return;
    }
    if (this.#queue.length > 0 || this.#writing) {
      const drained = new Promise<void>((r) => this.#drained.push(r));
      this.#kick(0, true);
      await drained;
    }
    this.#phase = 'closed';
    if (this.#timer !== null) clearTimeout(this.#timer);
    await this.#pool?.end();
    this.#pool = null;
  }

  status(): StoreStatus {
    const s = this.#stats;
    return {
      name: this.name,
      writable: this.#lastError === null,
      failures: this.#failures,
      lastError: this.#lastError,
      lastDurableAt: s.lastDurableAt,
      batches: s.batches,
      writes: s.writes,
      fsyncs: s.fsyncs,
      bytesWritten: 0,
      snapshots: 0,
      lastSnapshotMs: null,
      snapshotFailures: 0,
      snapshotWorkerRestarts: 0,
      lastSnapshotError: null,
      nextSnapshotAttemptAt: null,
      journalsSinceSnapshot: 0,
      queued: this.#queue.length,
    };
  }

  // ------------------------------------------------------------------ apply

  async apply(changes: readonly Change[], options: ApplyOptions = {}): Promise<Applied> {
    this.#assertOpen();
    if (!Array.isArray(changes) || changes.length === 0) throw new TypeError('apply: expected a non-empty array of changes');
    for (let i = 0; i < changes.length; i++) {
      const p = checkChange(changes[i], `changes[${i}]`, false);
      if (p !== null) throw new TypeError(`apply: ${p}`);
    }
    const copy = JSON.parse(JSON.stringify(changes)) as Change[];
    const durable = options.durable !== false;
    const epoch = this.fence?.() ?? null;
    return new Promise<Applied>((resolve, reject) => {
      this.#queue.push({ changes: copy, durable, epoch, at: performance.now(), resolve, reject });
      this.#kick(durable ? this.#o.commitWindowMs : this.#o.lazyWindowMs);
    });
  }

  #kick(ms: number, now = false): void {
    if (this.#writing) return;
    const due = performance.now() + ms;
    if (this.#timer !== null) {
      if (!now && this.#timerDue <= due) return;
      clearTimeout(this.#timer);
    }
    this.#timerDue = due;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#writeLoop(now);
    }, ms);
  }

  async #writeLoop(closing: boolean): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      for (;;) {
        const now = performance.now();
        const due = this.#queue.some((e) => e.durable || closing || this.#phase !== 'open' || now - e.at >= this.#o.lazyWindowMs) || (this.#drained.length > 0 && this.#queue.length > 0);
        if (!due) break;
        await this.#commitGroup(this.#queue.splice(0));
      }
    } finally {
      this.#writing = false;
    }
    if (this.#queue.length > 0) {
      const oldest = Math.min(...this.#queue.map((e) => e.at));
      this.#kick(Math.max(0, oldest + this.#o.lazyWindowMs - performance.now()));
    } else for (const d of this.#drained.splice(0)) d();
  }

  async #commitGroup(group: Entry[], retried = false): Promise<void> {
    const pool = this.#pool!;
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      return this.#failGroup(group, this.#unreachable(err, 'connecting'));
    }
    let outcome: 'done' | 'retry' = 'done';
    let broken: Error | undefined;
    try {
      await this.#commitOn(client, group);
    } catch (err) {
      broken = err as Error;
      const error = this.#unreachable(err, 'committing');
      // A connection the server dropped (a restart, a failover) before COMMIT was sent: nothing
      // was committed, so the group is tried once more on a new connection. After COMMIT was sent
      // the outcome is unknown, and the callers are told. (A transaction rolled back for a deadlock
      // is retried on the same connection: #attempt.)
      const before = (err as { beforeCommit?: boolean }).beforeCommit === true;
      if (before && !retried && error.code === 'PW_STORE_UNREACHABLE') {
        outcome = 'retry';
        this.#log.warn({ store: this.name, err: broken.message }, 'store: the database connection was lost; retrying on a new one');
      } else {
        this.#log.error({ store: this.name, code: error.code, err: broken.message }, 'store: a transaction failed; its batches were refused');
        this.#failGroup(group, error);
      }
    } finally {
      client.release(broken);
    }
    if (outcome === 'retry') await this.#commitGroup(group, true);
  }

  /** The group in one transaction; on a refusal, each batch in its own, so only the refused one is refused. */
  async #commitOn(client: pg.PoolClient, group: Entry[]): Promise<void> {
    try {
      const seqs = await this.#attempt(client, group.flatMap((e) => e.changes), group.every((e) => !e.durable), fenceOf(group));
      this.#committed(group.length);
      let at = 0;
      for (const e of group) {
        const n = e.changes.filter((c) => c.type === 'group.allocateSeq').length;
        e.resolve({ ok: true, seqs: seqs.slice(at, at + n) });
        at += n;
      }
      return;
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      if (group.length === 1) return group[0].resolve(refused(err.code, err.ids, err.why));
    }
    for (let i = 0; i < group.length; i++) {
      const e = group[i];
      try {
        const seqs = await this.#attempt(client, e.changes, !e.durable, e.epoch);
        this.#committed(1);
        e.resolve({ ok: true, seqs });
      } catch (err) {
        if (!(err instanceof Refusal)) {
          // The ones already answered stay answered; the rest share this failure.
          this.#failGroup(group.slice(i + 1), this.#unreachable(err, 'committing'));
          throw Object.assign(err as Error, { beforeCommit: false, answered: true });
        }
        e.resolve(refused(err.code, err.ids, err.why));
      }
    }
  }

  #failGroup(group: Entry[], error: StoreError): void {
    this.#failures++;
    this.#log.error({ store: this.name, code: error.code, err: error.message, batches: group.length + this.#queue.length }, 'store: a commit failed; its batches were refused');
    this.#lastError = { code: error.code, message: error.message, at: Date.now() };
    // Batches queued behind may depend on these: they share the fate, as in the embedded store.
    for (const e of [...group, ...this.#queue.splice(0)]) e.reject(error);
  }

  #committed(batches: number): void {
    this.#stats.batches += batches;
    this.#stats.writes++;
    this.#stats.fsyncs++;
    this.#stats.lastDurableAt = Date.now();
    if (this.#lastError !== null) {
      this.#log.info({ store: this.name }, 'store: writing again');
      this.#lastError = null;
    }
  }

  /**
   * #transaction, tried again (up to three times) when the database rolled it back for a deadlock or
   * a serialization failure: two gateways each holding a device row the other wants (#append). It
   * committed nothing, its connection is sound, and trying it here covers the group's transaction and
   * each batch's when a refused group is re-run one by one, where some batches are answered already.
   */
  async #attempt(client: pg.PoolClient, changes: Change[], lazy: boolean, epoch: number | null): Promise<number[]> {
    for (let retries = 0; ; retries++) {
      try {
        return await this.#transaction(client, changes, lazy, epoch);
      } catch (err) {
        const sqlstate = (err as { code?: unknown }).code;
        const before = (err as { beforeCommit?: boolean }).beforeCommit === true;
        if (!before || retries >= 3 || (sqlstate !== '40P01' && sqlstate !== '40001')) throw err;
        this.#log.warn({ store: this.name, err: (err as Error).message }, 'store: a transaction was rolled back for a conflict with another; retrying');
      }
    }
  }

  /** One transaction for `changes`; the allocated seqs in order. Throws Refusal (rolled back) or the database's error. */
  async #transaction(client: pg.PoolClient, changes: Change[], lazy: boolean, epoch: number | null = null): Promise<number[]> {
    const seqs: number[] = [];
    // How often each id is provisioned within this transaction: twice is a duplicate.
    const provisioned = new Map<string, number>();
    try {
      await client.query('BEGIN');
      if (lazy) await client.query('SET LOCAL synchronous_commit = off');
      if (epoch !== null) {
        const { rows } = await client.query<{ epoch: number }>('SELECT epoch FROM replica_leader FOR SHARE');
        const now = rows[0]?.epoch ?? null;
        if (now !== epoch) throw new Refusal('PW_STORE_CONFLICT', ['replica_leader'], `this replica led under epoch ${epoch}, and the leadership is at ${now ?? 'none'} now: another replica leads`);
      }
      for (const c of changes) {
        if (c.type !== 'device.provision') continue;
        const id = c.device.id;
        provisioned.set(id, (provisioned.get(id) ?? 0) + 1);
      }
      // The devices whose row this transaction holds locked (provisioned or patched in it, or
      // locked for an append), so an append locks only the others (see #append).
      const locked = new Set<string>();
      if (this.fence !== null) await this.#lockDevices(client, changes, provisioned, locked);
      for (const b of plan(changes)) await this.#run(client, b, seqs, provisioned, locked);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (err instanceof Error && !(err instanceof Refusal)) Object.assign(err, { beforeCommit: true });
      throw err;
    }
    await client.query('COMMIT');
    return seqs;
  }

  /**
   * Gateway replicas share the database (docs/architecture.md §8), and two of them may change one
   * device at once (its messages reach both through the shared subscription): the devices a
   * transaction changes are locked first, in id order, so no two transactions ever wait for each
   * other's devices in a cycle (a deadlock the database would break by rolling one back). A
   * gateway alone is the only writer, and takes no lock it does not need.
   */
  async #lockDevices(client: pg.PoolClient, changes: readonly Change[], provisioned: Map<string, number>, locked: Set<string>): Promise<void> {
    const ids = new Set<string>();
    for (const c of changes) {
      if ((c.type === 'device.patch' || c.type === 'device.history' || c.type === 'device.telemetry' || c.type === 'device.delete') && !provisioned.has(c.id)) ids.add(c.id);
    }
    await this.#lock(client, [...ids], locked);
  }

  /** Locks the rows of the devices `ids` that exist (FOR NO KEY UPDATE, in id order) and adds them to `locked`. */
  async #lock(client: pg.PoolClient, ids: string[], locked: Set<string>): Promise<void> {
    if (ids.length === 0) return;
    const { rows } = await client.query<{ id: string }>('SELECT id FROM devices WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
    for (const r of rows) locked.add(r.id);
  }

  async #run(client: pg.PoolClient, b: Bucket, seqs: number[], provisioned: Map<string, number>, locked: Set<string>): Promise<void> {
    const q = (text: string, values: unknown[]) => client.query(text, values);
    const missing = (want: string[], got: Array<{ id: string }>) => {
      const have = new Set(got.map((r) => r.id));
      return [...new Set(want)].filter((id) => !have.has(id));
    };
    switch (b.kind) {
      case 'device.provision': {
        const ds = (b.changes as Array<Extract<Change, { type: 'device.provision' }>>).map((c) => c.device);
        const first = new Map<string, DeviceRecord>();
        for (const d of ds) if (!first.has(d.id)) first.set(d.id, d);
        const firstOf = [...first.values()];
        const { rows } = await q(
          `INSERT INTO devices (id, grp, model, firmware, token_hash, created_at, revoked_at, last_seen, last_connect_at, last_disconnect_at, seq, bundle_id, key_epoch, key_epoch_set, broker)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[], $14::boolean[], $15::text[])
           ON CONFLICT (id) DO NOTHING RETURNING id`,
          [
            firstOf.map((d) => d.id), firstOf.map((d) => d.group), firstOf.map((d) => d.model), firstOf.map((d) => d.firmware), firstOf.map((d) => d.tokenHash), firstOf.map((d) => d.createdAt),
            firstOf.map((d) => d.revokedAt), firstOf.map((d) => d.lastSeen), firstOf.map((d) => d.lastConnectAt), firstOf.map((d) => d.lastDisconnectAt), firstOf.map((d) => d.seq), firstOf.map((d) => d.bundleId),
            firstOf.map((d) => d.keyEpoch ?? null), firstOf.map((d) => d.keyEpoch !== undefined), firstOf.map((d) => d.broker ?? null),
          ],
        );
        const existing = new Set(missing(firstOf.map((d) => d.id), rows as Array<{ id: string }>));
        // In batch order: an id stored already, or given a second time.
        const dups: string[] = [];
        const counted = new Map<string, number>();
        for (const d of ds) {
          const n = (counted.get(d.id) ?? 0) + 1;
          counted.set(d.id, n);
          if ((existing.has(d.id) || n > 1 || (provisioned.get(d.id) ?? 0) > 1) && !dups.includes(d.id)) dups.push(d.id);
        }
        if (dups.length > 0) throw new Refusal('PW_STORE_DUPLICATE_ID', dups, 'already provisioned');
        for (const d of firstOf) locked.add(d.id);
        // A new device starts with no entries, even where a device of its id was deleted around
        // this store (by hand, or by a gateway of schema 7, whose foreign key cascaded it).
        const newIds = firstOf.map((d) => d.id);
        await q('DELETE FROM device_history WHERE device_id = ANY($1::text[])', [newIds]);
        await q('DELETE FROM device_telemetry WHERE device_id = ANY($1::text[])', [newIds]);
        const history = firstOf.flatMap((d) => d.history.map((e) => ({ id: d.id, e })));
        if (history.length > 0) await this.#insertHistory(client, history, locked);
        const reports = firstOf.flatMap((d) => d.telemetry.map((r) => ({ id: d.id, r })));
        if (reports.length > 0) await this.#insertReports(client, reports, locked);
        return;
      }
      case 'device.patch': {
        // Fold per device (the last value of a field wins), then one UPDATE per set of fields.
        const byDevice = new Map<string, Record<string, unknown>>();
        for (const c of b.changes as Array<Extract<Change, { type: 'device.patch' }>>) byDevice.set(c.id, { ...byDevice.get(c.id), ...c.set });
        const bySig = new Map<string, Array<[string, Record<string, unknown>]>>();
        for (const [id, set] of byDevice) {
          const sig = Object.keys(set).sort().join(',');
          bySig.get(sig)?.push([id, set]) ?? bySig.set(sig, [[id, set]]);
        }
        for (const [sig, rows] of bySig) {
          const fields = sig.split(',');
          const cols = fields.map((f) => DEVICE_COLUMNS[f]);
          const params: unknown[] = [rows.map(([id]) => id), ...fields.map((f) => rows.map(([, set]) => set[f]))];
          const assigns = cols.map((c) => `${c} = v.${c}`);
          if (fields.includes('keyEpoch')) assigns.push('key_epoch_set = true');
          const res = await q(
            `UPDATE devices d SET ${assigns.join(', ')} FROM unnest($1::text[], ${cols.map((c, i) => `$${i + 2}::${DEVICE_TYPES[c]}[]`).join(', ')}) AS v(id, ${cols.join(', ')}) WHERE d.id = v.id RETURNING d.id`,
            params,
          );
          const gone = missing(rows.map(([id]) => id), res.rows as Array<{ id: string }>);
          if (gone.length > 0) throw new Refusal('PW_STORE_NOT_FOUND', gone, 'no such device');
          for (const r of res.rows as Array<{ id: string }>) locked.add(r.id);
        }
        return;
      }
      case 'device.history':
        return this.#insertHistory(client, (b.changes as Array<Extract<Change, { type: 'device.history' }>>).map((c) => ({ id: c.id, e: c.entry })), locked);
      case 'device.telemetry':
        return this.#insertReports(client, (b.changes as Array<Extract<Change, { type: 'device.telemetry' }>>).map((c) => ({ id: c.id, r: c.report })), locked);
      case 'device.delete': {
        const ids = (b.changes as Array<Extract<Change, { type: 'device.delete' }>>).map((c) => c.id);
        if (new Set(ids).size !== ids.length) throw new Refusal('PW_STORE_NOT_FOUND', [ids.find((id, i) => ids.indexOf(id) !== i)!], 'no such device');
        const res = await q('DELETE FROM devices WHERE id = ANY($1::text[]) RETURNING id', [ids]);
        const gone = missing(ids, res.rows as Array<{ id: string }>);
        if (gone.length > 0) throw new Refusal('PW_STORE_NOT_FOUND', gone, 'no such device');
        // The device's history and telemetry go with it. These statements come after the delete,
        // which waited for any append holding the device's row, so they see what it appended.
        await q('DELETE FROM device_history WHERE device_id = ANY($1::text[])', [ids]);
        await q('DELETE FROM device_telemetry WHERE device_id = ANY($1::text[])', [ids]);
        for (const id of ids) locked.delete(id);
        return;
      }
      case 'bundle.put': {
        const bs = (b.changes as Array<Extract<Change, { type: 'bundle.put' }>>).map((c) => c.bundle);
        const ids = bs.map((x) => x.id);
        if (new Set(ids).size !== ids.length) throw new Refusal('PW_STORE_DUPLICATE_ID', [ids.find((id, i) => ids.indexOf(id) !== i)!], 'a bundle is immutable and this one is stored');
        const res = await q(
          `INSERT INTO bundles (id, grp, seq, size, created_at, bytes, created_by, meta)
           SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::integer[], $5::bigint[], $6::text[], $7::text[], $8::jsonb[]) ON CONFLICT (id) DO NOTHING RETURNING id`,
          [ids, bs.map((x) => x.group), bs.map((x) => x.seq), bs.map((x) => x.size), bs.map((x) => x.createdAt), bs.map((x) => x.bytes), bs.map((x) => x.createdBy ?? null), bs.map((x) => (x.meta === undefined ? null : JSON.stringify(x.meta)))],
        );
        const dup = missing(ids, res.rows as Array<{ id: string }>);
        if (dup.length > 0) throw new Refusal('PW_STORE_DUPLICATE_ID', dup, 'a bundle is immutable and this one is stored');
        return;
      }
      case 'group.allocateSeq': {
        for (const c of b.changes as Array<Extract<Change, { type: 'group.allocateSeq' }>>) {
          const { rows } = await q('INSERT INTO groups (name, seq) VALUES ($1, $2::bigint + 1) ON CONFLICT (name) DO UPDATE SET seq = GREATEST(groups.seq, $2::bigint) + 1 RETURNING seq', [c.group, c.seq !== undefined ? c.seq - 1 : (c.above ?? 0)]);
          seqs.push((rows[0] as { seq: number }).seq);
        }
        return;
      }
      case 'group.baseline': {
        const last = new Map<string, string | null>();
        for (const c of b.changes as Array<Extract<Change, { type: 'group.baseline' }>>) last.set(c.group, c.bundleId);
        await q('INSERT INTO groups (name, baseline) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (name) DO UPDATE SET baseline = EXCLUDED.baseline', [[...last.keys()], [...last.values()]]);
        return;
      }
      case 'rollout.create': {
        const c = b.changes[0] as Extract<Change, { type: 'rollout.create' }>;
        const r = c.rollout;
        const res = await q(
          `INSERT INTO rollouts (id, format, bundle_id, bundle_seq, bundle_group, target, plan, state, created_at, started_at, ended_at, wave, created_by, previous_bundle, rollback_of, rolled_back_by, compacted_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (id) DO NOTHING RETURNING id`,
          [r.id, r.format, r.bundle.id, r.bundle.seq, r.bundle.group, JSON.stringify(r.target), JSON.stringify(r.plan), r.state, r.createdAt, r.startedAt, r.endedAt, r.wave, r.createdBy, r.previousBundle, r.rollbackOf, r.rolledBackBy, r.compactedAt ?? null],
        );
        if (res.rowCount === 0) throw new Refusal('PW_STORE_DUPLICATE_ID', [r.id], 'a rollout of this id exists');
        const w = r.waves;
        await q(
          `INSERT INTO rollout_waves (rollout_id, idx, plan_index, size, thresholds, state, started_at, deadline, soak_until, ended_at, swept, member_count, ${COUNT_KEYS.join(', ')}, rejected_by_reason, failing_unverified)
           SELECT $1, * FROM unnest($2::integer[], $3::integer[], $4::jsonb[], $5::jsonb[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::boolean[], $12::integer[], ${COUNT_KEYS.map((_, i) => `$${13 + i}::integer[]`).join(', ')}, $${13 + COUNT_KEYS.length}::jsonb[], $${14 + COUNT_KEYS.length}::integer[])`,
          [
            r.id, w.map((x) => x.index), w.map((x) => x.planIndex), w.map((x) => JSON.stringify(x.size)), w.map((x) => JSON.stringify(x.thresholds)), w.map((x) => x.state), w.map((x) => x.startedAt), w.map((x) => x.deadline), w.map((x) => x.soakUntil), w.map((x) => x.endedAt),
            w.map((x) => x.swept), c.members.map((m, i) => (r.compactedAt != null ? ((w[i] as StoredWave).memberCount ?? 0) : m.length)), ...COUNT_KEYS.map((k) => w.map((x) => x.count[k] ?? 0)), w.map((x) => JSON.stringify(x.rejectedByReason)),
            // a compacted rollout copied from another store keeps what its compaction kept
            w.map((x) => (r.compactedAt != null ? (x.failingUnverified ?? 0) : 0)),
          ],
        );
        const devs: string[] = [];
        const waves: number[] = [];
        const ords: number[] = [];
        c.members.forEach((ids, wave) => ids.forEach((id, ord) => (devs.push(id), waves.push(wave), ords.push(ord))));
        for (let i = 0; i < devs.length; i += 50_000) {
          await q("INSERT INTO rollout_members (rollout_id, device_id, wave, ord, status) SELECT $1, d, w, o, 'pending' FROM unnest($2::text[], $3::integer[], $4::integer[]) AS v(d, w, o)", [r.id, devs.slice(i, i + 50_000), waves.slice(i, i + 50_000), ords.slice(i, i + 50_000)]);
        }
        if (r.decisions !== undefined && r.decisions.length > 0) await this.#insertDecisions(client, r.decisions.map((d) => ({ id: r.id, d })));
        return;
      }
      case 'rollout.patch': {
        const c = b.changes[0] as Extract<Change, { type: 'rollout.patch' }>;
        const cols: Record<string, string> = { state: 'state', wave: 'wave', startedAt: 'started_at', endedAt: 'ended_at', previousBundle: 'previous_bundle', rollbackOf: 'rollback_of', rolledBackBy: 'rolled_back_by' };
        const keys = Object.keys(c.set);
        const res = await q(`UPDATE rollouts SET ${keys.map((k, i) => `${cols[k]} = $${i + 2}`).join(', ')} WHERE id = $1`, [c.id, ...keys.map((k) => (c.set as Record<string, unknown>)[k])]);
        if (res.rowCount === 0) throw new Refusal('PW_STORE_NOT_FOUND', [c.id], 'no such rollout');
        return;
      }
      case 'rollout.wave': {
        const c = b.changes[0] as Extract<Change, { type: 'rollout.wave' }>;
        const sets: string[] = [];
        const values: unknown[] = [c.id, c.wave];
        const put = (sql: string, v: unknown) => {
          values.push(v);
          sets.push(sql.replace('?', `$${values.length}`));
        };
        const s = c.set ?? {};
        const cols: Record<string, string> = { state: 'state', startedAt: 'started_at', deadline: 'deadline', soakUntil: 'soak_until', endedAt: 'ended_at', swept: 'swept' };
        for (const [k, col] of Object.entries(cols)) if (k in s) put(`${col} = ?`, (s as Record<string, unknown>)[k]);
        if (s.thresholds !== undefined) put('thresholds = ?::jsonb', JSON.stringify(s.thresholds));
        if (s.rejectedByReason !== undefined) put('rejected_by_reason = ?::jsonb', JSON.stringify(s.rejectedByReason));
        for (const k of COUNT_KEYS) {
          const setTo = s.count?.[k];
          const add = c.add?.count?.[k];
          if (setTo !== undefined) put(`${k} = ?::integer${add ? ` + ${Number(add)}` : ''}`, setTo);
          else if (add !== undefined) put(`${k} = ${k} + ?::integer`, add);
        }
        if (c.add?.rejectedByReason !== undefined) put('rejected_by_reason = pw_tally_add(rejected_by_reason, ?::jsonb)', JSON.stringify(c.add.rejectedByReason));
        if (sets.length === 0) sets.push('idx = idx');
        const res = await q(`UPDATE rollout_waves SET ${sets.join(', ')} WHERE rollout_id = $1 AND idx = $2`, values);
        if (res.rowCount === 0) await this.#waveMissing(client, c.id, c.wave);
        return;
      }
      case 'rollout.wave.add': {
        // The per-ack path: count deltas of many waves, summed per wave, in one statement.
        const sums = new Map<string, { id: string; wave: number; d: Record<string, number> }>();
        for (const c of b.changes as Array<Extract<Change, { type: 'rollout.wave' }>>) {
          const key = `${c.id}\0${c.wave}`;
          let e = sums.get(key);
          if (e === undefined) sums.set(key, (e = { id: c.id, wave: c.wave, d: {} }));
          for (const [k, v] of Object.entries(c.add!.count ?? {})) e.d[k] = (e.d[k] ?? 0) + (v as number);
        }
        const rows = [...sums.values()];
        const res = await q(
          `UPDATE rollout_waves w SET ${COUNT_KEYS.map((k) => `${k} = w.${k} + v.${k}`).join(', ')}
           FROM unnest($1::text[], $2::integer[], ${COUNT_KEYS.map((_, i) => `$${i + 3}::integer[]`).join(', ')}) AS v(id, idx, ${COUNT_KEYS.join(', ')})
           WHERE w.rollout_id = v.id AND w.idx = v.idx RETURNING w.rollout_id AS id, w.idx`,
          [rows.map((r) => r.id), rows.map((r) => r.wave), ...COUNT_KEYS.map((k) => rows.map((r) => r.d[k] ?? 0))],
        );
        if ((res.rowCount ?? 0) < rows.length) {
          const have = new Set((res.rows as Array<{ id: string; idx: number }>).map((r) => `${r.id}\0${r.idx}`));
          const gone = rows.find((r) => !have.has(`${r.id}\0${r.wave}`))!;
          await this.#waveMissing(client, gone.id, gone.wave);
        }
        return;
      }
      case 'rollout.decision':
        return this.#insertDecisions(client, (b.changes as Array<Extract<Change, { type: 'rollout.decision' }>>).map((c) => ({ id: c.id, d: c.decision })));
      case 'rollout.member': {
        const last = new Map<string, Extract<Change, { type: 'rollout.member' }>>();
        for (const c of b.changes as Array<Extract<Change, { type: 'rollout.member' }>>) last.set(`${c.id}\0${c.device}`, c);
        const rows = [...last.values()];
        const res = await q(
          `UPDATE rollout_members m SET status = v.status, reason = v.reason, at = v.at, wave = coalesce(v.wave, m.wave)
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::integer[]) AS v(rid, did, status, reason, at, wave)
           WHERE m.rollout_id = v.rid AND m.device_id = v.did
             AND (v.wave IS NULL OR v.wave < (SELECT count(*) FROM rollout_waves w WHERE w.rollout_id = v.rid))
           RETURNING m.rollout_id AS rid, m.device_id AS did`,
          [rows.map((c) => c.id), rows.map((c) => c.device), rows.map((c) => c.status), rows.map((c) => c.reason ?? null), rows.map((c) => c.at), rows.map((c) => c.wave ?? null)],
        );
        if ((res.rowCount ?? 0) < rows.length) {
          const have = new Set((res.rows as Array<{ rid: string; did: string }>).map((r) => `${r.rid}\0${r.did}`));
          const gone = rows.find((c) => !have.has(`${c.id}\0${c.device}`))!;
          const { rows: rr } = await q('SELECT compacted_at, (SELECT count(*) FROM rollout_waves w WHERE w.rollout_id = r.id)::integer AS waves FROM rollouts r WHERE id = $1', [gone.id]);
          if (rr.length === 0) throw new Refusal('PW_STORE_NOT_FOUND', [gone.id], 'no such rollout');
          if ((rr[0] as { compacted_at: number | null }).compacted_at !== null) throw new Refusal('PW_STORE_CONFLICT', [gone.id], 'the rollout is compacted: it keeps no members');
          if (gone.wave !== undefined && gone.wave >= (rr[0] as { waves: number }).waves) throw new Refusal('PW_STORE_NOT_FOUND', [`${gone.id}#${gone.wave}`], 'no such wave');
          throw new Refusal('PW_STORE_NOT_FOUND', [gone.device], `not a member of rollout ${gone.id}`);
        }
        return;
      }
      case 'rollout.compact': {
        const c = b.changes[0] as Extract<Change, { type: 'rollout.compact' }>;
        const { rows } = await q('SELECT state, compacted_at FROM rollouts WHERE id = $1 FOR UPDATE', [c.id]);
        if (rows.length === 0) throw new Refusal('PW_STORE_NOT_FOUND', [c.id], 'no such rollout');
        const r = rows[0] as { state: string; compacted_at: number | null };
        if (r.state !== 'completed' && r.state !== 'aborted') throw new Refusal('PW_STORE_CONFLICT', [c.id], `only a completed or aborted rollout is compacted, this one is ${r.state}`);
        if (r.compacted_at !== null) return;
        // What the members' counts do not say is kept in the waves before they go (rollout-records.ts keepFailingUnverified).
        await q(
          `UPDATE rollout_waves w SET failing_unverified = m.n
           FROM (SELECT wave, count(*)::integer AS n FROM rollout_members WHERE rollout_id = $1 AND status = 'failing' AND reason = $2 GROUP BY wave) m
           WHERE w.rollout_id = $1 AND w.idx = m.wave`,
          [c.id, FAILING_UNVERIFIED],
        );
        await q('DELETE FROM rollout_members WHERE rollout_id = $1', [c.id]);
        await q('UPDATE rollouts SET compacted_at = $2 WHERE id = $1', [c.id, c.at]);
        return;
      }
      case 'telemetry.put': {
        const last = new Map<string, TelemetryBucket>();
        for (const c of b.changes as Array<Extract<Change, { type: 'telemetry.put' }>>) last.set(c.key, c.bucket);
        const rows = [...last];
        await q(
          `INSERT INTO telemetry_buckets (key, bundle_id, host, port, updated_at, bucket) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::bigint[], $6::jsonb[])
           ON CONFLICT (key) DO UPDATE SET bundle_id = EXCLUDED.bundle_id, host = EXCLUDED.host, port = EXCLUDED.port, updated_at = EXCLUDED.updated_at, bucket = EXCLUDED.bucket`,
          [rows.map(([k]) => k), rows.map(([, x]) => x.bundleId), rows.map(([, x]) => x.host), rows.map(([, x]) => x.port), rows.map(([, x]) => x.updatedAt), rows.map(([, x]) => JSON.stringify(x))],
        );
        return;
      }
      case 'telemetry.remove':
        await q('DELETE FROM telemetry_buckets WHERE key = ANY($1::text[])', [(b.changes as Array<Extract<Change, { type: 'telemetry.remove' }>>).map((c) => c.key)]);
        return;
      case 'counter.add': {
        const sums = new Map<string, number>();
        for (const c of b.changes as Array<Extract<Change, { type: 'counter.add' }>>) sums.set(c.name, (sums.get(c.name) ?? 0) + c.by);
        await q('INSERT INTO counters (name, value) SELECT * FROM unnest($1::text[], $2::double precision[]) ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value', [[...sums.keys()], [...sums.values()]]);
        return;
      }
      case 'item.put': {
        const last = new Map<string, Extract<Change, { type: 'item.put' }>>();
        for (const c of b.changes as Array<Extract<Change, { type: 'item.put' }>>) last.set(`${c.collection}\0${c.key}`, c);
        const rows = [...last.values()];
        await q('INSERT INTO items (collection, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[]) ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value', [rows.map((c) => c.collection), rows.map((c) => c.key), rows.map((c) => JSON.stringify(c.value))]);
        return;
      }
      case 'item.delete': {
        const cs = b.changes as Array<Extract<Change, { type: 'item.delete' }>>;
        await q('DELETE FROM items i USING unnest($1::text[], $2::text[]) AS v(c, k) WHERE i.collection = v.c AND i.key = v.k', [cs.map((c) => c.collection), cs.map((c) => c.key)]);
        return;
      }
    }
  }

  async #waveMissing(client: pg.PoolClient, id: string, wave: number): Promise<never> {
    const { rowCount } = await client.query('SELECT 1 FROM rollouts WHERE id = $1', [id]);
    if (rowCount === 0) throw new Refusal('PW_STORE_NOT_FOUND', [id], 'no such rollout');
    throw new Refusal('PW_STORE_NOT_FOUND', [`${id}#${wave}`], 'no such wave');
  }

  /**
   * Appends entries to a device's history or telemetry, numbered per device (k, one past the
   * device's highest), and deletes what falls past the cap, in one statement. A device not already
   * locked by this transaction is locked first (FOR NO KEY UPDATE, in a statement of its own, so
   * the append's snapshot sees what another transaction appended before it let go), which also
   * refuses a device that does not exist; a device provisioned or patched earlier in the
   * transaction is held already, and costs no lock. This is what serialises appends to one device
   * and a device's delete, without a foreign key (whose check would lock the row once more per
   * entry) and without a counter in the device's row (a second version of the row per ack).
   * Entries appended in the same statement cannot be deleted by it (it sees the table as before),
   * so a device given more than the cap at once keeps the surplus until its next append; reads
   * take the newest `keep`.
   */
  async #append(
    client: pg.PoolClient,
    table: 'device_history' | 'device_telemetry',
    ids: string[],
    columns: Array<{ name: string; type: string; values: unknown[] }>,
    keep: number,
    locked: Set<string>,
  ): Promise<void> {
    await this.#lock(client, [...new Set(ids.filter((id) => !locked.has(id)))], locked);
    const gone = ids.find((id) => !locked.has(id));
    if (gone !== undefined) throw new Refusal('PW_STORE_NOT_FOUND', [gone], 'no such device');
    const names = columns.map((c) => c.name);
    await client.query(
      `WITH v AS (SELECT * FROM unnest($1::text[], ${columns.map((c, i) => `$${i + 3}::${c.type}[]`).join(', ')}) WITH ORDINALITY AS v(d, ${names.join(', ')}, n)),
        per AS (SELECT d, count(*)::bigint AS cnt FROM v GROUP BY d),
        top AS (SELECT per.d, per.cnt, coalesce((SELECT max(h.k) FROM ${table} h WHERE h.device_id = per.d), 0) AS k FROM per),
        ins AS (INSERT INTO ${table} (device_id, k, ${names.join(', ')})
                SELECT v.d, top.k + row_number() OVER (PARTITION BY v.d ORDER BY v.n), ${names.map((c) => `v.${c}`).join(', ')} FROM v JOIN top ON top.d = v.d RETURNING 1),
        del AS (DELETE FROM ${table} h USING top WHERE h.device_id = top.d AND h.k <= top.k + top.cnt - $2 RETURNING 1)
      SELECT (SELECT count(*) FROM ins) AS inserted, (SELECT count(*) FROM del) AS deleted`,
      [ids, keep, ...columns.map((c) => c.values)],
    );
  }

  #insertHistory(client: pg.PoolClient, rows: Array<{ id: string; e: DeviceHistoryEntry }>, locked: Set<string>): Promise<void> {
    return this.#append(client, 'device_history', rows.map((x) => x.id), [
      { name: 'at', type: 'bigint', values: rows.map((x) => x.e.at) },
      { name: 'rollout_id', type: 'text', values: rows.map((x) => x.e.rolloutId ?? null) },
      { name: 'bundle_id', type: 'text', values: rows.map((x) => x.e.bundleId) },
      { name: 'seq', type: 'bigint', values: rows.map((x) => x.e.seq) },
      { name: 'event', type: 'text', values: rows.map((x) => x.e.event) },
      { name: 'reason', type: 'text', values: rows.map((x) => x.e.reason ?? null) },
    ], DEVICE_HISTORY_LIMIT, locked);
  }

  #insertReports(client: pg.PoolClient, rows: Array<{ id: string; r: { at: number } }>, locked: Set<string>): Promise<void> {
    return this.#append(client, 'device_telemetry', rows.map((x) => x.id), [
      { name: 'at', type: 'bigint', values: rows.map((x) => x.r.at) },
      { name: 'report', type: 'jsonb', values: rows.map((x) => JSON.stringify(x.r)) },
    ], DEVICE_TELEMETRY_LIMIT, locked);
  }

  async #insertDecisions(client: pg.PoolClient, rows: Array<{ id: string; d: Decision }>): Promise<void> {
    const res = await client.query(
      `INSERT INTO rollout_decisions (rollout_id, at, actor, action, reason, from_state, to_state, wave, detail)
       SELECT v.r, v.at, v.actor, v.action, v.reason, v.f, v.t, v.w, v.detail FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::jsonb[]) WITH ORDINALITY AS v(r, at, actor, action, reason, f, t, w, detail, n)
       JOIN rollouts ON rollouts.id = v.r ORDER BY v.n RETURNING rollout_id AS id`,
      [
        rows.map((x) => x.id), rows.map((x) => x.d.at), rows.map((x) => x.d.actor), rows.map((x) => x.d.action), rows.map((x) => x.d.reason), rows.map((x) => x.d.from), rows.map((x) => x.d.to), rows.map((x) => x.d.wave ?? null),
        rows.map(({ d }) => {
          const { at: _a, actor: _b, action: _c, reason: _d, from: _e, to: _f, wave: _g, ...rest } = d;
          return JSON.stringify(rest);
        }),
      ],
    );
    if ((res.rowCount ?? 0) < rows.length) {
      const have = new Set((res.rows as Array<{ id: string }>).map((r) => r.id));
      throw new Refusal('PW_STORE_NOT_FOUND', [rows.find((x) => !have.has(x.id))!.id], 'no such rollout');
    }
  }

  // ------------------------------------------------------------------ reads

  async #read<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
    const pool = this.#assertOpen();
    try {
      return (await pool.query<T>(text, values)).rows;
    } catch (err) {
      throw this.#unreachable(err, 'reading');
    }
  }

  async #devices(where: string, values: unknown[], order = 'ORDER BY id', limit?: number): Promise<DeviceRecord[]> {
    const rows = await this.#read<Record<string, unknown>>(`SELECT * FROM devices WHERE ${where} ${order}${limit !== undefined ? ` LIMIT ${limit}` : ''}`, values);
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id as string);
    const [history, reports] = await Promise.all([
      this.#read<Record<string, unknown>>('SELECT device_id, at, rollout_id, bundle_id, seq, event, reason FROM device_history WHERE device_id = ANY($1::text[]) ORDER BY device_id, k', [ids]),
      this.#read<{ device_id: string; report: { at: number } }>('SELECT device_id, report FROM device_telemetry WHERE device_id = ANY($1::text[]) ORDER BY device_id, k', [ids]),
    ]);
    const out = new Map<string, DeviceRecord>();
    for (const r of rows) out.set(r.id as string, { ...deviceCoreOf(r), history: [], telemetry: [] });
    for (const h of history) {
      out.get(h.device_id as string)!.history.push({
        at: h.at as number,
        ...(h.rollout_id !== null && { rolloutId: h.rollout_id as string }),
        bundleId: h.bundle_id as string,
        seq: h.seq as number,
        event: h.event as DeviceHistoryEntry['event'],
        ...(h.reason !== null && { reason: h.reason as string }),
      });
    }
    for (const t of reports) out.get(t.device_id)!.telemetry.push(t.report);
    // A device given more than the cap in one transaction keeps the surplus until its next append.
    for (const d of out.values()) {
      if (d.history.length > DEVICE_HISTORY_LIMIT) d.history.splice(0, d.history.length - DEVICE_HISTORY_LIMIT);
      if (d.telemetry.length > DEVICE_TELEMETRY_LIMIT) d.telemetry.splice(0, d.telemetry.length - DEVICE_TELEMETRY_LIMIT);
    }
    return [...out.values()];
  }

  async getDevice(id: string): Promise<DeviceRecord | null> {
    return (await this.#devices('id = $1', [id]))[0] ?? null;
  }

  async getDeviceCore(id: string): Promise<DeviceCore | null> {
    const rows = await this.#read<Record<string, unknown>>('SELECT * FROM devices WHERE id = $1', [id]);
    return rows.length === 0 ? null : deviceCoreOf(rows[0]);
  }

  async getDevices(ids: readonly string[]): Promise<Array<DeviceRecord | null>> {
    this.#assertOpen();
    checkIds(ids);
    const found = new Map((await this.#devices('id = ANY($1::text[])', [ids])).map((d) => [d.id, d]));
    return ids.map((id) => (found.has(id) ? structuredClone(found.get(id)!) : null));
  }

  async listDevices(f: DeviceFilter = {}): Promise<Page<DeviceRecord>> {
    this.#assertOpen();
    const limit = checkLimit(f.limit);
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, v: unknown) => {
      values.push(v);
      where.push(sql.replace('?', `$${values.length}`));
    };
    if (f.cursor != null) add('id > ?', f.cursor);
    if (f.group !== undefined) add('grp = ?', f.group);
    if (f.model !== undefined) add('model = ?', f.model);
    if (f.seq !== undefined) f.seq === null ? where.push('seq IS NULL') : add('seq = ?', f.seq);
    if (f.bundleId !== undefined) f.bundleId === null ? where.push('bundle_id IS NULL') : add('bundle_id = ?', f.bundleId);
    const items = await this.#devices(where.length > 0 ? where.join(' AND ') : 'true', values, 'ORDER BY id', limit + 1);
    return pageOf(items, limit, (d) => d.id);
  }

  async getBundle(id: string): Promise<BundleRecord | null> {
    return (await this.#read<Record<string, unknown>>('SELECT * FROM bundles WHERE id = $1', [id])).map(bundleOf)[0] ?? null;
  }

  async listBundles(f: { group?: string } & PageQuery = {}): Promise<Page<BundleRecord>> {
    this.#assertOpen();
    const limit = checkLimit(f.limit);
    const rows = await this.#read<Record<string, unknown>>('SELECT * FROM bundles WHERE ($1::text IS NULL OR id > $1) AND ($2::text IS NULL OR grp = $2) ORDER BY id LIMIT $3', [f.cursor ?? null, f.group ?? null, limit + 1]);
    return pageOf(rows.map(bundleOf), limit, (b) => b.id);
  }

  async getGroup(name: string): Promise<GroupRecord | null> {
    const rows = await this.#read<{ name: string; seq: number; baseline: string | null }>('SELECT name, seq, baseline FROM groups WHERE name = $1', [name]);
    return rows[0] ? { name: rows[0].name, seq: rows[0].seq, baseline: rows[0].baseline } : null;
  }

  async listGroups(q: PageQuery = {}): Promise<Page<GroupRecord>> {
    this.#assertOpen();
    const limit = checkLimit(q.limit);
    const rows = await this.#read<GroupRecord>('SELECT name, seq, baseline FROM groups WHERE ($1::text IS NULL OR name > $1) ORDER BY name LIMIT $2', [q.cursor ?? null, limit + 1]);
    return pageOf(rows.map((g) => ({ name: g.name, seq: g.seq, baseline: g.baseline })), limit, (g) => g.name);
  }

  async listCollections(): Promise<string[]> {
    return (await this.#read<{ collection: string }>('SELECT DISTINCT collection FROM items ORDER BY collection')).map((r) => r.collection);
  }

  async #rollouts(where: string, values: unknown[], limit?: number): Promise<StoredRollout[]> {
    const rows = await this.#read<Record<string, unknown>>(`SELECT * FROM rollouts WHERE ${where} ORDER BY ord${limit !== undefined ? ` LIMIT ${limit}` : ''}`, values);
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id as string);
    const [waves, decisions] = await Promise.all([
      this.#read<Record<string, unknown>>('SELECT * FROM rollout_waves WHERE rollout_id = ANY($1::text[]) ORDER BY rollout_id, idx', [ids]),
      this.#read<Record<string, unknown>>('SELECT * FROM rollout_decisions WHERE rollout_id = ANY($1::text[]) ORDER BY n', [ids]),
    ]);
    const out = new Map<string, StoredRollout>();
    for (const r of rows) {
      out.set(r.id as string, {
        format: 1,
        id: r.id as string,
        bundle: { id: r.bundle_id as string, seq: r.bundle_seq as number, group: r.bundle_group as string },
        target: r.target as StoredRollout['target'],
        plan: r.plan as StoredRollout['plan'],
        state: r.state as StoredRollout['state'],
        createdAt: r.created_at as number,
        startedAt: r.started_at as number | null,
        endedAt: r.ended_at as number | null,
        wave: r.wave as number,
        waves: [],
        decisions: [],
        createdBy: r.created_by as string,
        previousBundle: r.previous_bundle as string | null,
        rollbackOf: r.rollback_of as string | null,
        rolledBackBy: r.rolled_back_by as string | null,
        compactedAt: r.compacted_at as number | null,
      });
    }
    for (const w of waves) {
      const wave: StoredWave = {
        index: w.idx as number,
        planIndex: w.plan_index as number,
        size: w.size as number | string,
        thresholds: w.thresholds as StoredWave['thresholds'],
        state: w.state as StoredWave['state'],
        startedAt: w.started_at as number | null,
        deadline: w.deadline as number | null,
        soakUntil: w.soak_until as number | null,
        endedAt: w.ended_at as number | null,
        swept: w.swept as boolean,
        count: Object.fromEntries(COUNT_KEYS.map((k) => [k, w[k] as number])) as StoredWave['count'],
        rejectedByReason: w.rejected_by_reason as Record<string, number>,
        memberCount: w.member_count as number,
        ...((w.failing_unverified as number) > 0 && { failingUnverified: w.failing_unverified as number }),
      };
      out.get(w.rollout_id as string)!.waves.push(wave);
    }
    for (const d of decisions) {
      out.get(d.rollout_id as string)!.decisions.push({
        at: d.at as number,
        actor: d.actor as string,
        action: d.action as Decision['action'],
        reason: d.reason as string,
        from: d.from_state as Decision['from'],
        to: d.to_state as Decision['to'],
        ...(d.wave !== null && { wave: d.wave as number }),
        ...(d.detail as object),
      });
    }
    return [...out.values()];
  }

  async getRollout(id: string): Promise<StoredRollout | null> {
    return (await this.#rollouts('id = $1', [id]))[0] ?? null;
  }

  async listRollouts(f: RolloutFilter = {}): Promise<Page<StoredRollout>> {
    this.#assertOpen();
    const limit = checkLimit(f.limit);
    let after = 0;
    if (f.cursor != null) {
      const rows = await this.#read<{ ord: number }>('SELECT ord FROM rollouts WHERE id = $1', [f.cursor]);
      if (rows.length === 0) throw new RangeError(`cursor names no rollout: ${JSON.stringify(f.cursor)}`);
      after = rows[0].ord;
    }
    const items = await this.#rollouts('ord > $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR bundle_group = $3)', [after, f.state ?? null, f.group ?? null], limit + 1);
    return pageOf(items, limit, (r) => r.id);
  }

  async getMembers(rolloutId: string, deviceIds: readonly string[]): Promise<Array<MemberRecord | null>> {
    this.#assertOpen();
    checkIds(deviceIds);
    const rows = await this.#read<Record<string, unknown>>('SELECT * FROM rollout_members WHERE rollout_id = $1 AND device_id = ANY($2::text[])', [rolloutId, deviceIds]);
    const found = new Map(rows.map((r) => [r.device_id as string, memberOf(r)]));
    return deviceIds.map((id) => (found.has(id) ? { ...found.get(id)! } : null));
  }

  async listMembers(rolloutId: string, f: MemberFilter = {}): Promise<Page<MemberRecord>> {
    this.#assertOpen();
    const limit = checkLimit(f.limit);
    const rows = await this.#read<Record<string, unknown>>(
      'SELECT * FROM rollout_members WHERE rollout_id = $1 AND ($2::text IS NULL OR device_id > $2) AND ($3::integer IS NULL OR wave = $3) AND ($4::text IS NULL OR status = $4) ORDER BY device_id LIMIT $5',
      [rolloutId, f.cursor ?? null, f.wave ?? null, f.status ?? null, limit + 1],
    );
    return pageOf(rows.map(memberOf), limit, (m) => m.deviceId);
  }

  async membershipsOf(deviceId: string): Promise<MemberRecord[]> {
    const rows = await this.#read<Record<string, unknown>>('SELECT m.* FROM rollout_members m JOIN rollouts r ON r.id = m.rollout_id WHERE m.device_id = $1 ORDER BY r.ord DESC', [deviceId]);
    return rows.map(memberOf);
  }

  async listTelemetry(q: PageQuery = {}): Promise<Page<{ key: string; bucket: TelemetryBucket }>> {
    this.#assertOpen();
    const limit = checkLimit(q.limit);
    const rows = await this.#read<{ key: string; bucket: TelemetryBucket }>('SELECT key, bucket FROM telemetry_buckets WHERE ($1::text IS NULL OR key > $1) ORDER BY key LIMIT $2', [q.cursor ?? null, limit + 1]);
    return pageOf(rows.map((r) => ({ key: r.key, bucket: r.bucket })), limit, (e) => e.key);
  }

  async getCounters(): Promise<Record<string, number>> {
    const rows = await this.#read<{ name: string; value: number }>('SELECT name, value FROM counters ORDER BY name');
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async getItem(collection: string, key: string): Promise<JsonObject | null> {
    const rows = await this.#read<{ value: JsonObject }>('SELECT value FROM items WHERE collection = $1 AND key = $2', [collection, key]);
    return rows[0]?.value ?? null;
  }

  async getItems(collection: string, keys: readonly string[]): Promise<Array<JsonObject | null>> {
    this.#assertOpen();
    checkIds(keys);
    const rows = await this.#read<{ key: string; value: JsonObject }>('SELECT key, value FROM items WHERE collection = $1 AND key = ANY($2::text[])', [collection, keys]);
    const found = new Map(rows.map((r) => [r.key, r.value]));
    return keys.map((k) => (found.has(k) ? structuredClone(found.get(k)!) : null));
  }

  async listItems(collection: string, q: PageQuery = {}): Promise<Page<{ key: string; value: JsonObject }>> {
    this.#assertOpen();
    const limit = checkLimit(q.limit);
    const rows = await this.#read<{ key: string; value: JsonObject }>('SELECT key, value FROM items WHERE collection = $1 AND ($2::text IS NULL OR key > $2) ORDER BY key LIMIT $3', [collection, q.cursor ?? null, limit + 1]);
    return pageOf(rows, limit, (e) => e.key);
  }
}

/** A page from `limit + 1` rows: the extra row only says there is more. */
function pageOf<T>(rows: T[], limit: number, idOf: (t: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, next: null };
  const items = rows.slice(0, limit);
  return { items, next: idOf(items[limit - 1]) };
}

function bundleOf(r: Record<string, unknown>): BundleRecord {
  return {
    id: r.id as string,
    group: r.grp as string,
    seq: r.seq as number,
    size: r.size as number,
    createdAt: r.created_at as number,
    bytes: r.bytes as string,
    ...(r.created_by !== null && { createdBy: r.created_by as string }),
    ...(r.meta !== null && { meta: r.meta as Record<string, unknown> }),
  };
}

function memberOf(r: Record<string, unknown>): MemberRecord {
  return { rolloutId: r.rollout_id as string, deviceId: r.device_id as string, wave: r.wave as number, ord: r.ord as number, status: r.status as MemberRecord['status'], reason: r.reason as string | null, at: r.at as number | null };
}

/** The epoch a group's transaction is fenced by: the one its fenced batches share, or null when none is fenced. Mixed epochs refuse (one is stale). */
function fenceOf(group: readonly Entry[]): number | null {
  let epoch: number | null = null;
  for (const e of group) {
    if (e.epoch === null) continue;
    if (epoch !== null && e.epoch !== epoch) return -1;
    epoch = e.epoch;
  }
  return epoch;
}

/** A `devices` row as a record, without its history and telemetry (their own tables). */
function deviceCoreOf(r: Record<string, unknown>): DeviceCore {
  return {
    id: r.id as string,
    group: r.grp as string,
    model: r.model as string | null,
    firmware: r.firmware as string | null,
    tokenHash: r.token_hash as string,
    createdAt: r.created_at as number,
    revokedAt: r.revoked_at as number | null,
    lastSeen: r.last_seen as number | null,
    lastConnectAt: r.last_connect_at as number | null,
    lastDisconnectAt: r.last_disconnect_at as number | null,
    seq: r.seq as number | null,
    bundleId: r.bundle_id as string | null,
    ...(r.key_epoch_set ? { keyEpoch: r.key_epoch as number | null } : {}),
    ...(r.broker !== null && r.broker !== undefined && { broker: r.broker as string }),
  };
}
