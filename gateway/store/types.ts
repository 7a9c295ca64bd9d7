// The gateway's durable fleet state (docs/architecture.md §7): devices, bundles, per-group seq high-water
// marks and baselines, rollouts, telemetry aggregates and counters. The rollout engine, broker
// adapter and HTTP API see only this interface, so a server database can replace the embedded
// lowdb file without touching them. API tokens are not here: they come from config.
//
// Contract every implementation keeps:
// - Methods are async so an implementation may do I/O; expected outcomes (an unknown id, a
//   duplicate id) are values, I/O faults and programmer errors throw `StoreError`/`TypeError`.
// - Records may be the store's live objects (the lowdb store returns them, to keep per-ack work
//   O(1)). Treat what you get as read-only: change a device only through `updateDevice`, a rollout
//   only by passing it to `putRollout` again. A change made any other way is not scheduled for a
//   write and, for derived state such as the group index, not seen at all.
// - Each method says when its change is durable. "Durable on return" means the promise resolves
//   only after the change is on disk; "coalesced" means it is applied in memory at once and
//   reaches disk with the next write (within the store's write window) or `flush()`. Hot-path
//   operations (per ack, per report) are coalesced; operator-rate ones are durable on return.
//   An implementation may be stronger than this (a SQL store is durable on every call).
// - Times are epoch milliseconds. Order by id is by UTF-16 code unit (JS `<`, SQL `COLLATE "C"`).

/** How many history entries and telemetry reports a device record keeps, oldest dropped first. */
export const DEVICE_HISTORY_LIMIT = 20;
export const DEVICE_TELEMETRY_LIMIT = 20;
/** The most items one `listDevices`/`listBundles` page may hold. */
export const MAX_PAGE_LIMIT = 1000;
export const DEFAULT_PAGE_LIMIT = 100;

/** What happened to a device in a rollout (docs/architecture.md §6, device in a rollout). */
export type DeviceHistoryEvent = 'sent' | 'applied' | 'rejected' | 'timed_out' | 'failing' | 'unreachable' | 'verified' | 'reverted';

export interface DeviceHistoryEntry {
  at: number;
  rolloutId?: string;
  bundleId: string;
  seq: number;
  event: DeviceHistoryEvent;
  /** A rejection reason (docs/architecture.md §3) or why the gateway recorded the event. */
  reason?: string;
}

/** One pin-failure report as the telemetry module keeps it (docs/architecture.md §3, §5); opaque here. */
export interface PinFailureReport {
  at: number;
  [k: string]: unknown;
}

export interface DeviceRecord {
  id: string;
  group: string;
  model: string | null;
  firmware: string | null;
  /** Hash of the device's MQTT password; never the token itself. */
  tokenHash: string;
  createdAt: number;
  revokedAt: number | null;
  lastSeen: number | null;
  lastConnectAt: number | null;
  lastDisconnectAt: number | null;
  /** The seq the device last reported (state or ack); null before it ever reported. */
  seq: number | null;
  /** The bundle id the device last reported. */
  bundleId: string | null;
  keyEpoch?: number | null;
  /**
   * The broker the device was provisioned onto (docs/architecture.md §8): the URL it was given,
   * recorded once and never changed. Absent on the embedded broker, and for a device provisioned
   * before the gateway ran on several brokers (it belongs to the first).
   */
  broker?: string;
  /** Newest last, at most DEVICE_HISTORY_LIMIT (the store trims on every write through it). */
  history: DeviceHistoryEntry[];
  /** Recent pin-failure reports, newest last, at most DEVICE_TELEMETRY_LIMIT. */
  telemetry: PinFailureReport[];
}

/** What provisioning knows of a device; everything else starts empty. */
export interface NewDevice {
  id: string;
  group: string;
  model?: string | null;
  firmware?: string | null;
  tokenHash: string;
  createdAt: number;
  broker?: string;
}

/** A device record as provisioning creates it: never seen, no bundle reported, no history. */
export function newDeviceRecord(d: NewDevice): DeviceRecord {
  return {
    id: d.id,
    group: d.group,
    model: d.model ?? null,
    firmware: d.firmware ?? null,
    tokenHash: d.tokenHash,
    createdAt: d.createdAt,
    revokedAt: null,
    lastSeen: null,
    lastConnectAt: null,
    lastDisconnectAt: null,
    seq: null,
    bundleId: null,
    ...(d.broker !== undefined && { broker: d.broker }),
    history: [],
    telemetry: [],
  };
}

export interface BundleRecord {
  /** Hex SHA-256 of the payload bytes (docs/architecture.md §3: the bundle's identity). */
  id: string;
  group: string;
  seq: number;
  /** Size in bytes of the whole COSE_Sign1 message. */
  size: number;
  createdAt: number;
  /** The COSE_Sign1 message, base64. */
  bytes: string;
  createdBy?: string;
  meta?: Record<string, unknown>;
}

/** A rollout as the rollout engine persists it; the store reads only `id` and `state`. */
export interface RolloutRecord {
  id: string;
  state: string;
  [k: string]: unknown;
}

export interface DeviceQuery {
  group?: string;
  model?: string;
  /** Devices whose last reported seq is exactly this (null: never reported). */
  seq?: number | null;
  /** 1..MAX_PAGE_LIMIT, default DEFAULT_PAGE_LIMIT. */
  limit?: number;
  /** The `next` of the previous page: items start after this id. */
  cursor?: string | null;
}

export interface BundleQuery {
  group?: string;
  limit?: number;
  cursor?: string | null;
}

/** A page in id order. `next` is null when no further item matches, so a loop ends on a full page. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

export type DevicePatch = Partial<Omit<DeviceRecord, 'id'>>;
export type DeviceMutator = (device: DeviceRecord) => void;

export type PutResult = { ok: true; count: number } | { ok: false; code: 'PW_STORE_DUPLICATE_ID'; ids: string[] };

export interface Store {
  /** Opens the store: creates what is missing, refuses (throws PW_STORE_CORRUPT/PW_STORE_VERSION) what it cannot read. */
  load(): Promise<void>;
  /** Resolves once every change made before the call is durable. */
  flush(): Promise<void>;
  /** Flushes, then refuses further use. */
  close(): Promise<void>;

  getDevice(id: string): Promise<DeviceRecord | null>;
  /**
   * Bulk insert, all or nothing: if any id is already stored or appears twice in `records`,
   * nothing is stored and the result names those ids. The store keeps the objects given.
   * Durable on return.
   */
  putDevices(records: DeviceRecord[]): Promise<PutResult>;
  /**
   * Applies a patch (shallow assign) or runs a mutator on the stored record, trims history and
   * telemetry to their limits, and returns the record; null if no such device. The id cannot
   * change. Coalesced: this is the per-ack path.
   */
  updateDevice(id: string, change: DevicePatch | DeviceMutator): Promise<DeviceRecord | null>;
  /** Sets revokedAt (keeping an earlier one); null if no such device. Durable on return. */
  revokeDevice(id: string, at: number): Promise<DeviceRecord | null>;
  /** Removes the device and its history; false if there was none. Durable on return. */
  deleteDevice(id: string): Promise<boolean>;
  /** A page of devices in id order, filtered; throws RangeError for a limit outside 1..1000. */
  listDevices(query?: DeviceQuery): Promise<Page<DeviceRecord>>;
  /** Ids of the group's devices (revoked ones included), in id order. */
  devicesInGroup(group: string): Promise<string[]>;

  /** Stores a bundle; refuses an id already stored (a bundle is immutable). Durable on return. */
  putBundle(bundle: BundleRecord): Promise<PutResult>;
  getBundle(id: string): Promise<BundleRecord | null>;
  listBundles(query?: BundleQuery): Promise<Page<BundleRecord>>;

  /**
   * The group's next bundle seq: one above every seq handed out before (and above `above`, the
   * highest seq the caller knows devices hold, so a store restored from an old backup still
   * cannot hand out a seq devices would reject as replayed). Starts at 1. Never returns a seq
   * twice, across restarts too: durable on return, before the caller can sign anything with it.
   */
  allocateSeq(group: string, above?: number): Promise<number>;

  /** The bundle id of the group's last completed rollout (docs/architecture.md §6), or null. */
  getBaseline(group: string): Promise<string | null>;
  /** Durable on return. */
  setBaseline(group: string, bundleId: string): Promise<void>;

  /** Inserts or replaces the rollout; the store keeps the object given. Coalesced (per-ack path). */
  putRollout(rollout: RolloutRecord): Promise<void>;
  getRollout(id: string): Promise<RolloutRecord | null>;
  /** Rollouts in the order they were first stored, optionally only those in `state`. */
  listRollouts(query?: { state?: string }): Promise<RolloutRecord[]>;

  /** The telemetry module's aggregates, opaque here; null until first put. */
  getTelemetry(): Promise<Record<string, unknown> | null>;
  /** Replaces the aggregates; the store keeps the object given. Coalesced. */
  putTelemetry(aggregates: Record<string, unknown>): Promise<void>;

  /** Adds `by` (default 1) to a named counter and returns its new value. Coalesced. */
  incrementCounter(name: string, by?: number): Promise<number>;
  /** A copy of every counter. */
  getCounters(): Promise<Record<string, number>>;
}

export type StoreErrorCode =
  | 'PW_STORE_CORRUPT' // the data file does not parse or has the wrong shape
  | 'PW_STORE_VERSION' // the data file was written with a schema this build does not read
  | 'PW_STORE_NOT_LOADED' // used before load() succeeded
  | 'PW_STORE_CLOSED' // used after close()
  | 'PW_STORE_FULL' // a write failed for want of space (ENOSPC, EDQUOT; a database's disk full): HTTP 507
  | 'PW_STORE_READONLY' // a write failed on a read-only file system (EROFS)
  | 'PW_STORE_IO' // another write or sync failure (EIO, …), or a database that failed the commit
  | 'PW_STORE_LOCKED' // another process holds the data dir
  | 'PW_STORE_UNWRITABLE' // the data dir cannot be created or written at start
  | 'PW_STORE_UNREACHABLE'; // the database cannot be reached

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}
