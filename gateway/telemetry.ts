// Pin-failure telemetry (docs/device-messages.md, `telemetry`; docs/architecture.md §5 `telemetry` topic, §6 `failing`): what the gateway
// does with a decoded `telemetry` message. Pure: time comes in as `now` (epoch ms), the rollout a
// bundle belongs to comes in as a lookup, and the state is plain JSON the store keeps as it is.
//
//   const book = new TelemetryBook((await store.getTelemetry()) as TelemetryState | null);
//   const d = decodeTelemetry(payload);                       // firmware-manifest/messages.ts
//   if (!d.ok) return;                                        // the decoder's reason, logged at debug
//   const r = book.ingest(clientId, device.group, d.message, (bundleId) => whereIs(clientId, bundleId), now);
//   for (const f of r.failingOn) if (f.rolloutId !== null) apply(pinFailure(rollout(f.rolloutId), clientId, f, now));
//   await store.putTelemetry(book.toJSON());                  // O(1): the live state, coalesced by the store
//   book.query({ rollout: 'r-42' });                          // GET /v1/telemetry/pin-failures
//
// What is kept, and its bounds:
// - Buckets, one per (bundle, endpoint, observed pin, result): failures, devices, first/last seen.
//   At most `maxKeys`, and a device may open at most `maxKeysPerDevice` of them, so one hostile
//   device sending thousands of made-up pins fills neither memory nor the book; what does not fit
//   is dropped from the aggregates and counted. A full book reclaims its least recently updated
//   bucket once that has been idle `retentionMs`, so old bundles' buckets make room in time.
// - Distinct devices per bucket: the first `devicesPerBucket` device ids are kept, so `devices` is
//   exact up to that and a lower bound beyond it (`devicesCapped: true`). Exact counts of failing
//   devices, which is what holds a wave, are kept per rollout wave instead (waves()).
// - Per device: the last report counter, its recent reports (newest last), which rollouts it has
//   been counted failing or report-only in, and how many buckets it opened. Bounded per device;
//   devices are authenticated, so their number is the fleet's (forgetDevice() on deletion).
//
// Dropped reports (never a throw) are counted by reason. `aggregate_full` and `device_quota`
// reports are still accepted: they make the device failing and enter its history and the wave
// counts, so a flood cannot hide a real failure from the rollout engine; only the bucket is missing.
import type { PinFailureReport, TelemetryMessage } from '../firmware-manifest/messages.ts';
import { PIN_PREFIX } from '../firmware-manifest/pins.ts';

export type TelemetryDropReason =
  | 'device_mismatch' // the message names another device than the MQTT client that sent it
  | 'group_mismatch' // the message names another group than the device's registered one
  | 'bad_times' // lastSeen before firstSeen, or a time no date can hold
  | 'duplicate' // counter not above the last one seen from the device: a redelivery
  | 'aggregate_full' // accepted, but the book has no room for a new bucket
  | 'device_quota'; // accepted, but the device has opened its share of buckets

export const TELEMETRY_DROP_REASONS: readonly TelemetryDropReason[] = [
  'device_mismatch',
  'group_mismatch',
  'bad_times',
  'duplicate',
  'aggregate_full',
  'device_quota',
];

/** Which running rollout, and which of its waves, the device is in for a bundle; nulls when none. */
export interface TelemetryContext {
  rolloutId: string | null;
  wave: number | null;
}

export type TelemetryLookup = (bundleId: string | null) => TelemetryContext;

export interface TelemetryLimits {
  /** reports kept per device for recent(), oldest dropped first; default 20 (the store's DEVICE_TELEMETRY_LIMIT) */
  perDeviceHistory?: number;
  /** distinct buckets (bundle × endpoint × observed pin × result) the book holds; default 10 000 */
  maxKeys?: number;
  /** buckets one device may have opened and still hold; default 100 */
  maxKeysPerDevice?: number;
  /** device ids kept per bucket: `devices` is exact up to this, a lower bound beyond; default 32 */
  devicesPerBucket?: number;
  /** how long a bucket must have gone without a report before a full book may reclaim it, ms; default 7 days */
  retentionMs?: number;
}

export const TELEMETRY_DEFAULTS: Readonly<Required<TelemetryLimits>> = {
  perDeviceHistory: 20,
  maxKeys: 10_000,
  maxKeysPerDevice: 100,
  devicesPerBucket: 32,
  retentionMs: 7 * 24 * 3600 * 1000,
};

/** Rollouts, waves and groups listed per bucket: one in practice (a bundle is one group's); capped against surprises. */
const LIST_CAP = 16;
/** Rollouts a device remembers being counted in, per result (oldest forgotten first). */
const MARKS_CAP = 32;
/** The largest time value a Date holds, in seconds (ECMA-262 §21.4.1.22: ±8.64e15 ms). */
const MAX_TIME_S = 8.64e12;

export interface WaveRef {
  rolloutId: string;
  wave: number;
}

/** One aggregate, as stored. Times in epoch seconds (device clocks) or ms (gateway clock, `*At`). */
export interface TelemetryBucket {
  bundleId: string | null;
  host: string;
  port: number;
  /** `sha256/<base64>` of the served chain's first (leaf) key, or null when the device sent no served pins */
  observedPin: string | null;
  result: PinFailureReport['result'];
  rollouts: string[];
  waves: WaveRef[];
  groups: string[];
  deviceIds: string[];
  devicesCapped: boolean;
  failures: number;
  suppressed: number;
  firstSeen: number;
  lastSeen: number;
  createdAt: number;
  updatedAt: number;
  /** the device that opened the bucket: it counts against that device's maxKeysPerDevice */
  owner: string;
}

/**
 * A report as the gateway keeps it for a device: the device's report (pins in `sha256/<base64>`
 * form, leaf first; times on the device clock, epoch seconds), with when the gateway received it
 * (`at`, epoch ms, first like the store's PinFailureReport) and the rollout and wave it counted in.
 */
export interface DeviceReport extends PinFailureReport {
  at: number;
  firmware: string;
  rolloutId: string | null;
  wave: number | null;
}

export interface DeviceTelemetry {
  /** the last report counter accepted from the device */
  counter: number;
  recent: DeviceReport[];
  /** `F|<rollout>` (failing) and `R|<rollout>` (report-only): counted once per rollout in waves() */
  marks: string[];
  /** buckets this device opened that the book still holds */
  owned: number;
}

/** Per rollout wave: distinct devices with enforced (failing) and report-only mismatches, and their failures. */
export interface WaveTelemetry {
  rolloutId: string;
  wave: number;
  failingDevices: number;
  reportOnlyDevices: number;
  failures: number;
  reportOnlyFailures: number;
}

export interface TelemetryCounters {
  messages: number;
  reports: number;
  /** reports that passed validation (aggregate_full and device_quota ones included) */
  accepted: number;
  dropped: Record<TelemetryDropReason, number>;
}

/**
 * The book's whole state: plain JSON, kept by the store (putTelemetry/getTelemetry) as it is.
 * A type, not an interface, so it passes as the store's `Record<string, unknown>` without a cast.
 */
export type TelemetryState = {
  version: 1;
  buckets: Record<string, TelemetryBucket>;
  devices: Record<string, DeviceTelemetry>;
  waves: Record<string, WaveTelemetry>;
  counters: TelemetryCounters;
};

export interface IngestResult {
  accepted: number;
  /** by reason, only reasons that occurred */
  dropped: Array<{ reason: TelemetryDropReason; count: number }>;
  /** bundles the device reports enforced pin failures on in this message: feed each to the rollout engine's pinFailure() */
  failingOn: Array<{ bundleId: string; rolloutId: string | null; wave: number | null }>;
}

export interface TelemetryQuery {
  rollout?: string;
  group?: string;
  /** hostname, matched without regard to case */
  host?: string;
  bundle?: string;
}

/** One row of GET /v1/telemetry/pin-failures. Times are ISO 8601 (RFC 3339, as RFC 7469 §3 reports). */
export interface PinFailureAggregate {
  host: string;
  port: number;
  result: PinFailureReport['result'];
  observedPin: string | null;
  bundleId: string | null;
  rollouts: string[];
  waves: WaveRef[];
  groups: string[];
  /** distinct devices; a lower bound when devicesCapped */
  devices: number;
  devicesCapped: boolean;
  /** sum of the reports' counts (suppressed duplicates included) */
  failures: number;
  suppressed: number;
  /** as the devices' clocks tell it */
  firstSeen: string;
  lastSeen: string;
  /** as the gateway's clock tells it */
  firstReceived: string;
  lastReceived: string;
}

export class TelemetryBook {
  readonly #limits: Required<TelemetryLimits>;
  #state: TelemetryState;
  /** The buckets, least recently updated first: the reclaim order of a full book. */
  readonly #lru = new Map<string, TelemetryBucket>();
  /** What changed since the last takeChanges(): what the store is given (gateway/telemetry-changes.ts). */
  #touched: TouchedTelemetry = emptyTouched();

  /**
   * Takes the state the store returned (null or undefined: an empty book) and adopts its objects.
   * Throws TypeError on a state this build did not write, RangeError on a limit out of range.
   */
  constructor(state?: TelemetryState | Record<string, unknown> | null, limits: TelemetryLimits = {}) {
    this.#limits = checkLimits(limits);
    this.#state = adopt(state);
    this.#index();
  }

  /**
   * Replaces everything the book holds with `state` (what the store holds: after a commit failed,
   * docs/architecture.md §7), dropping what changed since the last takeChanges(). Throws as the
   * constructor does, leaving the book as it was.
   */
  replace(state: TelemetryState | Record<string, unknown> | null): void {
    this.#state = adopt(state);
    this.#touched = emptyTouched();
    this.#index();
  }

  #index(): void {
    this.#lru.clear();
    const byAge = Object.entries(this.#state.buckets).sort((a, b) => a[1].updatedAt - b[1].updatedAt);
    for (const [key, bucket] of byAge) this.#lru.set(key, bucket);
  }

  /**
   * Takes one decoded telemetry message from `deviceId` (the MQTT client id: authenticated, unlike
   * the message body) whose registered group is `group`. O(reports); never throws on device input.
   */
  ingest(deviceId: string, group: string, msg: TelemetryMessage, ctx: TelemetryLookup, now: number): IngestResult {
    const counters = this.#state.counters;
    const out: IngestResult = { accepted: 0, dropped: [], failingOn: [] };
    counters.messages++;
    counters.reports += msg.reports.length;
    // A device may only speak for itself and its own group: the body is the device's word, the
    // client id and registered group are the gateway's.
    if (msg.deviceId !== deviceId) return this.#drop(out, 'device_mismatch', msg.reports.length);
    if (msg.group !== group) return this.#drop(out, 'group_mismatch', msg.reports.length);

    let lookedUp: string | null | undefined;
    let where: TelemetryContext = { rolloutId: null, wave: null };
    for (const r of msg.reports) {
      if (!(r.firstSeen <= r.lastSeen && r.lastSeen <= MAX_TIME_S)) {
        this.#drop(out, 'bad_times', 1);
        continue;
      }
      const device = this.#device(deviceId);
      // MQTT 3.1.1 §4.3.2: QoS 1 is at least once, so a redelivered PUBLISH carries reports already
      // counted; the device's counter only goes up.
      if (r.counter <= device.counter) {
        this.#drop(out, 'duplicate', 1);
        continue;
      }
      device.counter = r.counter;
      out.accepted++;
      counters.accepted++;
      if (r.bundleId !== lookedUp) {
        lookedUp = r.bundleId;
        where = ctx(r.bundleId);
      }
      const kept = report(r, msg.firmware, where, now);
      remember(device, this.#limits.perDeviceHistory, kept);
      this.#touched.reports.push({ deviceId, report: kept });
      // Only an enforced pin set fails a device (docs/architecture.md §6); report-only is counted, not held against it.
      if (r.result === 'pin_mismatch' && r.bundleId !== null && !out.failingOn.some((f) => f.bundleId === r.bundleId)) {
        out.failingOn.push({ bundleId: r.bundleId, rolloutId: where.rolloutId, wave: where.wave });
      }
      if (where.rolloutId !== null && where.wave !== null) this.#countWave(device, r, where.rolloutId, where.wave);
      const refused = this.#aggregate(deviceId, device, group, r, where, now);
      if (refused !== null) this.#drop(out, refused, 1);
    }
    return out;
  }

  /** Buckets matching every filter given, most failures first. A linear scan: there are at most maxKeys. */
  query(filter: TelemetryQuery = {}): PinFailureAggregate[] {
    const host = filter.host?.toLowerCase();
    const rows: Array<[string, TelemetryBucket]> = [];
    for (const [key, b] of Object.entries(this.#state.buckets)) {
      if (filter.bundle !== undefined && b.bundleId !== filter.bundle) continue;
      if (host !== undefined && b.host !== host) continue;
      if (filter.rollout !== undefined && !b.rollouts.includes(filter.rollout)) continue;
      if (filter.group !== undefined && !b.groups.includes(filter.group)) continue;
      rows.push([key, b]);
    }
    rows.sort(([ka, a], [kb, b]) => b.failures - a.failures || b.updatedAt - a.updatedAt || (ka < kb ? -1 : 1));
    return rows.map(([, b]) => aggregate(b));
  }

  /** The device's recent reports, newest last; empty for a device never heard from. */
  recent(deviceId: string): DeviceReport[] {
    return this.#state.devices[deviceId]?.recent.slice() ?? [];
  }

  /** Failing and report-only device counts per rollout wave, optionally of one rollout; by rollout, then wave. */
  waves(rolloutId?: string): WaveTelemetry[] {
    return Object.values(this.#state.waves)
      .filter((w) => rolloutId === undefined || w.rolloutId === rolloutId)
      .sort((a, b) => (a.rolloutId === b.rolloutId ? a.wave - b.wave : a.rolloutId < b.rolloutId ? -1 : 1))
      .map((w) => ({ ...w }));
  }

  /** A copy of the counters. */
  get counters(): TelemetryCounters {
    const c = this.#state.counters;
    return { ...c, dropped: { ...c.dropped } };
  }

  /** Forgets a deleted device's counter and history; its buckets stay until reclaimed. False if unknown. */
  forgetDevice(deviceId: string): boolean {
    if (this.#state.devices[deviceId] === undefined) return false;
    delete this.#state.devices[deviceId];
    this.#touched.devices.add(deviceId);
    return true;
  }

  /**
   * The live state, not a copy (O(1), so the gateway can hand it to store.putTelemetry after every
   * message): serialise it, do not change it. JSON.stringify(book) gives the same.
   */
  toJSON(): TelemetryState {
    return this.#state;
  }

  /** What changed since the last call, and the counters now; the caller hands it to the store. */
  takeChanges(): TelemetryDelta {
    const t = this.#touched;
    this.#touched = emptyTouched();
    const s = this.#state;
    return {
      buckets: [...t.buckets].map((k) => [k, s.buckets[k] ?? null]),
      devices: [...t.devices].map((id) => [id, s.devices[id] ?? null]),
      waves: [...t.waves].map((k) => [k, s.waves[k]] as [string, WaveTelemetry]).filter(([, w]) => w !== undefined),
      reports: t.reports,
      counters: this.counters,
    };
  }

  #drop(out: IngestResult, reason: TelemetryDropReason, count: number): IngestResult {
    this.#state.counters.dropped[reason] += count;
    const seen = out.dropped.find((d) => d.reason === reason);
    if (seen === undefined) out.dropped.push({ reason, count });
    else seen.count += count;
    return out;
  }

  #device(deviceId: string): DeviceTelemetry {
    this.#touched.devices.add(deviceId);
    let device = this.#state.devices[deviceId];
    if (device === undefined) {
      device = { counter: -1, recent: [], marks: [], owned: 0 };
      this.#state.devices[deviceId] = device;
    }
    return device;
  }

  #countWave(device: DeviceTelemetry, r: PinFailureReport, rolloutId: string, wave: number): void {
    const key = `${rolloutId}#${wave}`;
    this.#touched.waves.add(key);
    let w = this.#state.waves[key];
    if (w === undefined) {
      w = { rolloutId, wave, failingDevices: 0, reportOnlyDevices: 0, failures: 0, reportOnlyFailures: 0 };
      this.#state.waves[key] = w;
    }
    const enforced = r.result === 'pin_mismatch';
    if (enforced) w.failures += r.count;
    else w.reportOnlyFailures += r.count;
    const mark = `${enforced ? 'F' : 'R'}|${rolloutId}`;
    if (device.marks.includes(mark)) return;
    device.marks.push(mark);
    if (device.marks.length > MARKS_CAP) device.marks.shift();
    if (enforced) w.failingDevices++;
    else w.reportOnlyDevices++;
  }

  /** Adds the report to its bucket, opening one if there is room; the drop reason when there is none. */
  #aggregate(deviceId: string, device: DeviceTelemetry, group: string, r: PinFailureReport, where: TelemetryContext, now: number): TelemetryDropReason | null {
    // The leaf's key is what an operator looks for (a MITM proxy's, or a renewed certificate's);
    // the whole served chain stays in the device's history.
    const observedPin = r.servedPins.length > 0 ? PIN_PREFIX + r.servedPins[0] : null;
    const host = r.hostname.toLowerCase(); // DNS names are case-insensitive (RFC 4343)
    const key = `${r.bundleId ?? '-'}|${host}:${r.port}|${observedPin ?? '-'}|${r.result}`;
    let b = this.#state.buckets[key];
    if (b === undefined) {
      const refused = this.#makeRoom(device, now);
      if (refused !== null) return refused;
      b = {
        bundleId: r.bundleId,
        host,
        port: r.port,
        observedPin,
        result: r.result,
        rollouts: [],
        waves: [],
        groups: [],
        deviceIds: [],
        devicesCapped: false,
        failures: 0,
        suppressed: 0,
        firstSeen: r.firstSeen,
        lastSeen: r.lastSeen,
        createdAt: now,
        updatedAt: now,
        owner: deviceId,
      };
      this.#state.buckets[key] = b;
      device.owned++;
    } else {
      this.#lru.delete(key);
    }
    this.#lru.set(key, b);
    this.#touched.buckets.add(key);
    b.failures += r.count;
    b.suppressed += r.suppressed;
    if (r.firstSeen < b.firstSeen) b.firstSeen = r.firstSeen;
    if (r.lastSeen > b.lastSeen) b.lastSeen = r.lastSeen;
    b.updatedAt = now;
    addCapped(b.groups, group, LIST_CAP);
    if (where.rolloutId !== null) {
      addCapped(b.rollouts, where.rolloutId, LIST_CAP);
      const wave = where.wave;
      if (wave !== null && b.waves.length < LIST_CAP && !b.waves.some((w) => w.rolloutId === where.rolloutId && w.wave === wave)) {
        b.waves.push({ rolloutId: where.rolloutId, wave });
      }
    }
    if (!b.deviceIds.includes(deviceId)) {
      if (b.deviceIds.length < this.#limits.devicesPerBucket) b.deviceIds.push(deviceId);
      else b.devicesCapped = true;
    }
    return null;
  }

  #makeRoom(device: DeviceTelemetry, now: number): TelemetryDropReason | null {
    if (device.owned >= this.#limits.maxKeysPerDevice) return 'device_quota';
    // Reclaim only what has gone quiet: evicting busy buckets would let a flood erase real failures.
    while (this.#lru.size >= this.#limits.maxKeys) {
      const [key, oldest] = this.#lru.entries().next().value as [string, TelemetryBucket];
      if (now - oldest.updatedAt < this.#limits.retentionMs) return 'aggregate_full';
      this.#lru.delete(key);
      delete this.#state.buckets[key];
      this.#touched.buckets.add(key);
      const owner = this.#state.devices[oldest.owner];
      if (owner !== undefined && owner.owned > 0) owner.owned--;
      if (owner !== undefined) this.#touched.devices.add(oldest.owner);
    }
    return null;
  }
}

function report(r: PinFailureReport, firmware: string, where: TelemetryContext, now: number): DeviceReport {
  return {
    at: now,
    firmware,
    hostname: r.hostname,
    port: r.port,
    result: r.result,
    servedPins: r.servedPins.map((p) => PIN_PREFIX + p),
    knownPins: r.knownPins.map((p) => PIN_PREFIX + p),
    seq: r.seq,
    bundleId: r.bundleId,
    count: r.count,
    suppressed: r.suppressed,
    firstSeen: r.firstSeen,
    lastSeen: r.lastSeen,
    counter: r.counter,
    rolloutId: where.rolloutId,
    wave: where.wave,
  };
}

function remember(device: DeviceTelemetry, limit: number, entry: DeviceReport): void {
  device.recent.push(entry);
  if (device.recent.length > limit) device.recent.splice(0, device.recent.length - limit);
}

function aggregate(b: TelemetryBucket): PinFailureAggregate {
  return {
    host: b.host,
    port: b.port,
    result: b.result,
    observedPin: b.observedPin,
    bundleId: b.bundleId,
    rollouts: b.rollouts.slice(),
    waves: b.waves.map((w) => ({ ...w })),
    groups: b.groups.slice(),
    devices: b.deviceIds.length,
    devicesCapped: b.devicesCapped,
    failures: b.failures,
    suppressed: b.suppressed,
    firstSeen: iso(b.firstSeen * 1000),
    lastSeen: iso(b.lastSeen * 1000),
    firstReceived: iso(b.createdAt),
    lastReceived: iso(b.updatedAt),
  };
}

const iso = (ms: number): string => new Date(ms).toISOString(); // in range: bad_times keeps device times within a Date's
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Adds `item` once; a full list keeps what it has (the first ones are the ones an operator saw first). */
function addCapped(list: string[], item: string, cap: number): void {
  if (list.length < cap && !list.includes(item)) list.push(item);
}

function checkLimits(limits: TelemetryLimits): Required<TelemetryLimits> {
  const out = { ...TELEMETRY_DEFAULTS };
  for (const name of Object.keys(TELEMETRY_DEFAULTS) as Array<keyof TelemetryLimits>) {
    const v = limits[name];
    if (v === undefined) continue;
    const ok = name === 'retentionMs' ? Number.isSafeInteger(v) && v >= 0 : Number.isSafeInteger(v) && v >= 1;
    if (!ok) throw new RangeError(`expected limits.${name} to be ${name === 'retentionMs' ? 'a non-negative' : 'a positive'} integer, got ${String(v)}`);
    out[name] = v;
  }
  return out;
}

/**
 * The state to work on. Its maps are copied into prototype-less objects: device ids may be
 * `__proto__` (the id charset allows it), and on a plain object that key sets the prototype.
 */
function adopt(state: TelemetryState | Record<string, unknown> | null | undefined): TelemetryState {
  const fresh = (): TelemetryState['counters'] => ({
    messages: 0,
    reports: 0,
    accepted: 0,
    dropped: Object.fromEntries(TELEMETRY_DROP_REASONS.map((r) => [r, 0])) as Record<TelemetryDropReason, number>,
  });
  if (state === null || state === undefined) {
    return { version: 1, buckets: dict(), devices: dict(), waves: dict(), counters: fresh() };
  }
  if (!isObject(state) || state.version !== 1) {
    throw new TypeError(`expected telemetry state version 1, got ${isObject(state) ? `version ${JSON.stringify(state.version)}` : typeof state}`);
  }
  for (const part of ['buckets', 'devices', 'waves', 'counters'] as const) {
    if (!isObject(state[part])) throw new TypeError(`expected telemetry state "${part}" to be an object`);
  }
  const s = state as unknown as TelemetryState;
  for (const [key, b] of Object.entries(s.buckets)) {
    if (!isObject(b) || typeof b.updatedAt !== 'number' || typeof b.owner !== 'string' || !Array.isArray(b.deviceIds)) {
      throw new TypeError(`expected telemetry state buckets[${JSON.stringify(key)}] to be a bucket`);
    }
  }
  for (const [id, d] of Object.entries(s.devices)) {
    if (!isObject(d) || typeof d.counter !== 'number' || typeof d.owned !== 'number' || !Array.isArray(d.recent) || !Array.isArray(d.marks)) {
      throw new TypeError(`expected telemetry state devices[${JSON.stringify(id)}] to be a device`);
    }
  }
  const counters = fresh();
  const dropped = { ...counters.dropped, ...s.counters.dropped };
  return {
    version: 1,
    buckets: dict(s.buckets),
    devices: dict(s.devices),
    waves: dict(s.waves),
    counters: { ...counters, ...s.counters, dropped },
  };
}

/** Keys of what changed; the values are read from the book when the changes are taken. */
interface TouchedTelemetry {
  buckets: Set<string>;
  devices: Set<string>;
  waves: Set<string>;
  /** reports kept for a device, in order */
  reports: Array<{ deviceId: string; report: DeviceReport }>;
}

/** What takeChanges() gives: each changed record as it is now (null: gone). */
export interface TelemetryDelta {
  buckets: Array<[string, TelemetryBucket | null]>;
  devices: Array<[string, DeviceTelemetry | null]>;
  waves: Array<[string, WaveTelemetry]>;
  reports: Array<{ deviceId: string; report: DeviceReport }>;
  counters: TelemetryCounters;
}

function emptyTouched(): TouchedTelemetry {
  return { buckets: new Set(), devices: new Set(), waves: new Set(), reports: [] };
}

function dict<T>(from: Record<string, T> = {}): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, from);
}
