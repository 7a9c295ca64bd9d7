// The Store of changes (docs/storage.md, docs/architecture.md §7): the fleet's durable state is
// changed only by batches of small, named changes, applied atomically, and read back as copies.
// Three implementations keep this contract and pass one conformance suite
// (test/gateway/store/fixtures/conformance.ts): memory (memory-store.ts), the embedded journal + lowdb
// snapshot (embedded.ts), and PostgreSQL (postgres.ts).
//
// The contract:
// - `apply(changes)` applies the whole batch or none of it, and resolves only once the batch is
//   durable (fsync'd, or committed by the database). A batch the current state refuses resolves
//   `{ ok: false, code, ids }` and changes nothing: an id provisioned already
//   (PW_STORE_DUPLICATE_ID), a change naming a record that does not exist (PW_STORE_NOT_FOUND),
//   a change the record's state forbids (PW_STORE_CONFLICT). A malformed change is a TypeError
//   (a programmer error), an I/O fault rejects with a StoreError that names the store and the
//   cause (PW_STORE_FULL for a full disk). A batch that failed has no effect anywhere, later either.
// - Batches resolve in the order `apply` was called; a read started after a batch resolved sees it.
//   Reads see committed state only, never a batch still on its way to disk.
// - No closures, no live records: what a read returns is the caller's to keep or change, what
//   `apply` takes is copied (the stores apply a JSON copy, the same bytes they journal).
// - Pages are in id order by UTF-16 code unit (JS `<`, SQL `COLLATE "C"`), except rollouts, which
//   page in the order they were created. `next` is null exactly when nothing more matches.
// - Times are epoch milliseconds.
//
// The vocabulary, by what it changes (each change is a plain JSON object with a `type`):
//
//   devices     { type: 'device.provision', device }          a whole new record (newDeviceRecord()); a batch
//                                                              with an id that exists, or twice, is refused whole
//               { type: 'device.patch', id, set }             seq, bundleId, model, firmware, keyEpoch, lastSeen,
//                                                              lastConnectAt, lastDisconnectAt, tokenHash, revokedAt
//               { type: 'device.history', id, entry }         appended; the oldest dropped past DEVICE_HISTORY_LIMIT
//               { type: 'device.telemetry', id, report }      appended; the oldest dropped past DEVICE_TELEMETRY_LIMIT
//               { type: 'device.delete', id }
//   bundles     { type: 'bundle.put', bundle }                immutable: a second put of an id is refused
//   groups      { type: 'group.allocateSeq', group, above? }  the result's `seqs` holds the group's next seq: one
//                                                              above every seq handed out before and above `above`;
//                                                              never handed out twice, across restarts too
//               { type: 'group.baseline', group, bundleId }   the bundle of its last completed rollout (or null)
//   rollouts    { type: 'rollout.create', rollout, members }  the header (bundle, target, plan, state, waves with
//                                                              their counts) and each wave's device ids in seed order
//               { type: 'rollout.patch', id, set }            state, wave, startedAt, endedAt, rollback links
//               { type: 'rollout.wave', id, wave, set?, add? } a wave's fields set, and/or its counts moved by deltas
//               { type: 'rollout.decision', id, decision }    appended to the audit log
//               { type: 'rollout.member', id, device, status, reason?, at, wave? }   one member's status
//               { type: 'rollout.compact', id, at }           a finished rollout drops its members, keeping its
//                                                              counts and decisions (compaction.ts)
//   telemetry   { type: 'telemetry.put', key, bucket }        an aggregate bucket, inserted or replaced
//               { type: 'telemetry.remove', key }
//   counters    { type: 'counter.add', name, by }
//   collections { type: 'item.put', collection, key, value }  a small keyed collection of JSON objects for
//               { type: 'item.delete', collection, key }      what needs no table of its own (collections.ts)
//
// Examples (the gateway's operations; docs/storage.md lists them all):
//
//   // provision two devices, all or nothing
//   await store.apply([{ type: 'device.provision', device: newDeviceRecord({...}) }, { type: 'device.provision', device: ... }]);
//   // take a seq before signing a bundle, then store the bundle
//   const { seqs: [seq] } = await store.apply([{ type: 'group.allocateSeq', group: 'door-locks', above: 7 }]) as Applied;
//   await store.apply([{ type: 'bundle.put', bundle: { id, group: 'door-locks', seq, size, createdAt, bytes } }]);
//   // one ack: the device's seq, its history, its status in the rollout, the wave's counts
//   await store.apply([
//     { type: 'device.patch', id: 'dl-7', set: { seq: 8, bundleId, lastSeen: now } },
//     { type: 'device.history', id: 'dl-7', entry: { at: now, rolloutId: 'r1', bundleId, seq: 8, event: 'applied' } },
//     { type: 'rollout.member', id: 'r1', device: 'dl-7', status: 'applied', at: now },
//     { type: 'rollout.wave', id: 'r1', wave: 0, add: { count: { sent: -1, applied: 1 } } },
//   ]);
//   // presence is not durable (docs/architecture.md §7): it shares the next write instead of forcing one
//   void store.apply([{ type: 'device.patch', id: 'dl-7', set: { lastConnectAt: now, lastSeen: now } }], { durable: false });
import type { BundleRecord, DeviceCore, DeviceHistoryEntry, DeviceRecord, Page, PinFailureReport } from './types.ts';
import type { Decision, DeviceStatus, Rollout, RolloutState, StatusCounts, Wave } from '../rollout/types.ts';
import type { TelemetryBucket } from '../telemetry.ts';

export type { BundleRecord, DeviceCore, DeviceHistoryEntry, DeviceRecord, Page, PinFailureReport } from './types.ts';
export type { TelemetryBucket } from '../telemetry.ts';

/** Device fields a `device.patch` may set; the id, group, creation time, history and telemetry are not among them. */
export const DEVICE_PATCH_FIELDS = ['seq', 'bundleId', 'model', 'firmware', 'keyEpoch', 'lastSeen', 'lastConnectAt', 'lastDisconnectAt', 'tokenHash', 'revokedAt'] as const;
export type DevicePatchField = (typeof DEVICE_PATCH_FIELDS)[number];
export type DeviceFields = Partial<Pick<DeviceRecord, Exclude<DevicePatchField, 'keyEpoch'>>> & { keyEpoch?: number | null };

/**
 * A wave as stored: the engine's wave without its member list (members are rows of their own), with
 * their number. `failingUnverified` only once compacted (rollout-records.ts keepFailingUnverified).
 */
export type StoredWave = Omit<Wave, 'members'> & { memberCount: number };
/** A wave as `rollout.create` takes it: `memberCount` comes from the members given. */
export type NewWave = Omit<Wave, 'members'>;

/** A rollout's header: the engine's record without its members (rows of their own), with the gateway's links. */
export type StoredRollout = Omit<Rollout, 'waves' | 'devices'> & {
  waves: StoredWave[];
  /** the operator who created it */
  createdBy: string;
  /** the bundle the target ran before (the group baseline at creation), for rollback */
  previousBundle: string | null;
  /** the rollout this one rolls back */
  rollbackOf: string | null;
  /** the rollback rollout that undid this one */
  rolledBackBy: string | null;
  /** when its members were dropped (compaction.ts); null while it keeps them */
  compactedAt: number | null;
};

/**
 * A rollout as `rollout.create` takes it. `compactedAt` is for copying a compacted rollout (store
 * migrate): it then comes without members, its counts as they were.
 */
export type NewRollout = Omit<StoredRollout, 'waves' | 'decisions' | 'compactedAt'> & { waves: NewWave[]; decisions?: Decision[]; compactedAt?: number | null };

/** Header fields `rollout.patch` may set. */
export const ROLLOUT_PATCH_FIELDS = ['state', 'wave', 'startedAt', 'endedAt', 'previousBundle', 'rollbackOf', 'rolledBackBy'] as const;
export type RolloutFields = Partial<Pick<StoredRollout, (typeof ROLLOUT_PATCH_FIELDS)[number]>>;

/** Wave fields `rollout.wave` may set. */
export const WAVE_PATCH_FIELDS = ['state', 'startedAt', 'deadline', 'soakUntil', 'endedAt', 'swept', 'thresholds', 'count', 'rejectedByReason'] as const;
export type WaveFields = Partial<Pick<StoredWave, (typeof WAVE_PATCH_FIELDS)[number]>>;
/** Deltas: counts moved from one status to another (`{ sent: -1, applied: 1 }`); a reason tally that reaches 0 is dropped. */
export interface WaveDeltas {
  count?: Partial<StatusCounts>;
  rejectedByReason?: Record<string, number>;
}

/** One device in one rollout. */
export interface MemberRecord {
  rolloutId: string;
  deviceId: string;
  wave: number;
  /** position in the rollout's seed order within its wave (0 first) */
  ord: number;
  status: DeviceStatus;
  /** the device's reason, while status is 'rejected' */
  reason: string | null;
  /** epoch ms of the last status change, null while never touched */
  at: number | null;
}

export interface GroupRecord {
  name: string;
  /** the highest seq handed out for the group (0: none yet) */
  seq: number;
  /** the bundle of its last completed rollout */
  baseline: string | null;
}

/** A JSON object: what a keyed collection holds. */
export type JsonObject = { [k: string]: JsonValue };
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

export type Change =
  | { type: 'device.provision'; device: DeviceRecord }
  | { type: 'device.patch'; id: string; set: DeviceFields }
  | { type: 'device.history'; id: string; entry: DeviceHistoryEntry }
  | { type: 'device.telemetry'; id: string; report: PinFailureReport }
  | { type: 'device.delete'; id: string }
  | { type: 'bundle.put'; bundle: BundleRecord }
  /** `seq` is filled in by the store (the value it allocated) in what it journals; callers leave it out. */
  | { type: 'group.allocateSeq'; group: string; above?: number; seq?: number }
  | { type: 'group.baseline'; group: string; bundleId: string | null }
  | { type: 'rollout.create'; rollout: NewRollout; members: string[][] }
  | { type: 'rollout.patch'; id: string; set: RolloutFields }
  | { type: 'rollout.wave'; id: string; wave: number; set?: WaveFields; add?: WaveDeltas }
  | { type: 'rollout.decision'; id: string; decision: Decision }
  | { type: 'rollout.member'; id: string; device: string; status: DeviceStatus; reason?: string | null; at: number | null; wave?: number }
  | { type: 'rollout.compact'; id: string; at: number }
  | { type: 'telemetry.put'; key: string; bucket: TelemetryBucket }
  | { type: 'telemetry.remove'; key: string }
  | { type: 'counter.add'; name: string; by: number }
  | { type: 'item.put'; collection: string; key: string; value: JsonObject }
  | { type: 'item.delete'; collection: string; key: string };

export type ChangeType = Change['type'];

export type RefusalCode = 'PW_STORE_DUPLICATE_ID' | 'PW_STORE_NOT_FOUND' | 'PW_STORE_CONFLICT';

/** What `apply` answers. `seqs`: one per `group.allocateSeq` of the batch, in order. */
export type Applied = { ok: true; seqs: number[] } | Refused;
export interface Refused {
  ok: false;
  code: RefusalCode;
  /** the ids at fault (device ids for provisioning, the record's id otherwise) */
  ids: string[];
  message: string;
}

export interface ApplyOptions {
  /**
   * true (default): resolves once the batch is on disk, committed with the batches around it.
   * false: for what may be rebuilt (presence, last-seen times; docs/architecture.md §7): the batch
   * waits to share the next write (at most the store's lazy interval) instead of starting one.
   * Either way it resolves only once committed, and atomically.
   */
  durable?: boolean;
}

/** The most items one page may hold, and the default. */
export { MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT, DEVICE_HISTORY_LIMIT, DEVICE_TELEMETRY_LIMIT } from './types.ts';
/** The most ids one batch read may ask for. */
export const MAX_BATCH_READ = 10_000;

export interface DeviceFilter {
  group?: string;
  model?: string;
  /** devices whose last reported seq is exactly this (null: never reported) */
  seq?: number | null;
  /** devices that report this bundle: who a compacted rollout reached (null: none reported) */
  bundleId?: string | null;
  limit?: number;
  cursor?: string | null;
}

export interface PageQuery {
  limit?: number;
  cursor?: string | null;
}

export interface MemberFilter extends PageQuery {
  wave?: number;
  status?: DeviceStatus;
}

export interface RolloutFilter extends PageQuery {
  state?: RolloutState;
  /** the group of the rollout's bundle */
  group?: string;
}

/** What a store tells metrics and readiness (docs/storage.md): the figures of its writes. */
export interface StoreStatus {
  /** which store, for people: a path, or a URL without its password */
  name: string;
  /** false after a write failed, until one succeeds */
  writable: boolean;
  /** writes (or commits) that failed since opening */
  failures: number;
  /** the last write error, until a write succeeds again */
  lastError: { code: string; message: string; at: number } | null;
  /** epoch ms of the last durable write (null: none since opening) */
  lastDurableAt: number | null;
  /** batches committed since opening */
  batches: number;
  /** writes (the embedded store) or transactions (PostgreSQL) since opening */
  writes: number;
  /** fsyncs (of the journal, snapshots and directory) or commits */
  fsyncs: number;
  /** bytes written to disk since opening, snapshots included (embedded store; 0 elsewhere) */
  bytesWritten: number;
  /** snapshots written since opening, and how long the last took (embedded store) */
  snapshots: number;
  lastSnapshotMs: number | null;
  /** snapshot attempts that failed since opening, one under way when the snapshot worker died included (embedded store; 0 elsewhere) */
  snapshotFailures: number;
  /** new snapshot workers attached since opening, each after one died or could not load the files (embedded store; 0 elsewhere) */
  snapshotWorkerRestarts: number;
  /** the last snapshot failure, until a snapshot is written (the journal keeps everything meanwhile) */
  lastSnapshotError: { code: string; message: string; at: number } | null;
  /** epoch ms when the failed snapshot is tried again (null: none failed, or no snapshot worker runs until its replacement is attached) */
  nextSnapshotAttemptAt: number | null;
  /** journal files a restart replays: those since the newest snapshot (embedded store; 0 elsewhere) */
  journalsSinceSnapshot: number;
  /** batches waiting for their write now */
  queued: number;
}

/**
 * The Store of changes (the earlier whole-file store and its interface are gone; its data dir
 * still loads, upgrade.ts).
 */
export interface ChangeStore {
  /** Opens the store: takes the data-dir lock or connects, loads, migrates; refuses what it cannot read. */
  open(): Promise<void>;
  /** Waits for batches in flight, then releases the store (lock, connections, worker). */
  close(): Promise<void>;

  apply(changes: readonly Change[], options?: ApplyOptions): Promise<Applied>;

  getDevice(id: string): Promise<DeviceRecord | null>;
  /** The device without its history and telemetry (the per-message read), or null. */
  getDeviceCore(id: string): Promise<DeviceCore | null>;
  /**
   * getDeviceCore answered at once, by a store that keeps the fleet in memory (the memory and the
   * embedded store): the same copy, without a promise on every device message's path; undefined
   * when it cannot be answered at once (ask getDeviceCore). Absent where a read is a query
   * (PostgreSQL). Throws where getDeviceCore rejects (a store not open).
   */
  getDeviceCoreNow?(id: string): DeviceCore | null | undefined;
  /** One entry per id asked for, in that order; null for an unknown id. At most MAX_BATCH_READ ids. */
  getDevices(ids: readonly string[]): Promise<Array<DeviceRecord | null>>;
  listDevices(filter?: DeviceFilter): Promise<Page<DeviceRecord>>;

  getBundle(id: string): Promise<BundleRecord | null>;
  listBundles(filter?: { group?: string } & PageQuery): Promise<Page<BundleRecord>>;

  /** null for a group that never had a seq or a baseline. */
  getGroup(name: string): Promise<GroupRecord | null>;
  /** Groups in name order. */
  listGroups(query?: PageQuery): Promise<Page<GroupRecord>>;

  getRollout(id: string): Promise<StoredRollout | null>;
  /** In the order rollouts were created; `cursor` is the last rollout id of the previous page. */
  listRollouts(filter?: RolloutFilter): Promise<Page<StoredRollout>>;
  /** The members of a rollout among `deviceIds`, one entry per id in that order (null: not a member, or compacted). */
  getMembers(rolloutId: string, deviceIds: readonly string[]): Promise<Array<MemberRecord | null>>;
  /** A rollout's members in device id order; empty once compacted. */
  listMembers(rolloutId: string, filter?: MemberFilter): Promise<Page<MemberRecord>>;
  /** The rollouts a device is a member of (not compacted ones), newest first. */
  membershipsOf(deviceId: string): Promise<MemberRecord[]>;

  /** Telemetry aggregate buckets in key order. */
  listTelemetry(query?: PageQuery): Promise<Page<{ key: string; bucket: TelemetryBucket }>>;

  getCounters(): Promise<Record<string, number>>;

  /** The names of the keyed collections that hold anything, in order. */
  listCollections(): Promise<string[]>;
  getItem(collection: string, key: string): Promise<JsonObject | null>;
  getItems(collection: string, keys: readonly string[]): Promise<Array<JsonObject | null>>;
  listItems(collection: string, query?: PageQuery): Promise<Page<{ key: string; value: JsonObject }>>;

  status(): StoreStatus;
}
