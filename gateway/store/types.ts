// The records of the gateway's durable fleet state (docs/architecture.md §7, docs/storage.md):
// devices, bundles, the page shapes and the store's error. The Store of changes that keeps them
// is changes.ts; API tokens are not here: they come from config.

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

/** One pin-failure report as the telemetry module keeps it (docs/device-messages.md, `telemetry`; docs/architecture.md §5); opaque here. */
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

/**
 * A device record without its history and telemetry: what handling a device message reads (its
 * group, model, firmware, seq and bundle), without copying or querying the two lists.
 */
export type DeviceCore = Omit<DeviceRecord, 'history' | 'telemetry'>;

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
