// The device's own messages (docs/architecture.md §3 last paragraph, §5): `state`, `ack` and `telemetry`,
// integer-keyed deterministic CBOR like the bundle. Firmware engineers implement these in C; the
// CDDL is in docs/device-messages.md and the conformance vectors in vectors/messages.json.
// Decoders never throw: a hostile device's bytes come back as `{ ok: false, detail }`.
import { decodeCanonical, encodeCanonical, type CborValue } from './cbor.ts';
import { REJECT_REASONS, type RejectReason } from './codec.ts';

/** Sent on every connect: what the device runs now, so the gateway can reconcile (a lost ack is healed). */
export interface StateMessage {
  /** seq of the active bundle; 0 on the firmware's initial pins */
  seq: number;
  /** hex id of the active bundle, or null on the firmware's initial pins */
  bundleId: string | null;
  firmware: string;
  model: string;
  keyEpoch: number;
  /** device clock, seconds since the epoch, so the gateway can see skew */
  time?: number;
}

/** Why a device did not apply a bundle: a verification reason, or a failed flash write. */
export type AckReason = RejectReason | 'apply_failed';
export const ACK_REASONS: readonly AckReason[] = [...REJECT_REASONS, 'apply_failed'];

export interface AckMessage {
  /** seq of the bundle acknowledged; 0 when the device could not read it */
  seq: number;
  /** hex id of the bundle (SHA-256 of its payload), or null when the device could not read one */
  bundleId: string | null;
  status: 'applied' | 'rejected';
  reason?: AckReason;
  /** a human-readable detail of a rejection */
  detail?: string;
}

/** One kind of pin failure (RFC 7469 §3 names where they exist), deduplicated on the device. */
export interface PinFailureReport {
  hostname: string;
  port: number;
  /** the validation result: a mismatch on an enforced pin set, or one on a report-only set */
  result: 'pin_mismatch' | 'report_only_mismatch';
  /** pin-sha256 digests (base64) of the served chain, cheaper than whole chains on a constrained link */
  servedPins: string[];
  /** known-pins: the pins (base64) in force for this endpoint when it failed */
  knownPins: string[];
  /** seq and id of the active bundle */
  seq: number;
  bundleId: string | null;
  /** failures this report stands for, and how many of them were folded in as duplicates */
  count: number;
  suppressed: number;
  /** seconds since the epoch */
  firstSeen: number;
  lastSeen: number;
  /** per-device report counter, so the gateway can see gaps */
  counter: number;
}

export interface TelemetryMessage {
  deviceId: string;
  group: string;
  firmware: string;
  reports: PinFailureReport[];
}

const S = { seq: 1, bundleId: 2, firmware: 3, model: 4, keyEpoch: 5, time: 6 } as const;
const A = { seq: 1, bundleId: 2, status: 3, reason: 4, detail: 5 } as const;
const T = { deviceId: 1, group: 2, firmware: 3, reports: 4 } as const;
const R = { hostname: 1, port: 2, result: 3, servedPins: 4, knownPins: 5, seq: 6, bundleId: 7, count: 8, suppressed: 9, firstSeen: 10, lastSeen: 11, counter: 12 } as const;

const STATUS = ['applied', 'rejected'] as const;
const RESULTS = ['pin_mismatch', 'report_only_mismatch'] as const;
const MAX_TEXT = 256;
const MAX_REPORTS = 64;
const MAX_PINS = 16;

export type Decoded<T> = { ok: true; message: T } | { ok: false; detail: string };

export function encodeState(m: StateMessage): Uint8Array {
  const map = new Map<number, CborValue>([
    [S.seq, m.seq],
    [S.bundleId, idBytes(m.bundleId)],
    [S.firmware, m.firmware],
    [S.model, m.model],
    [S.keyEpoch, m.keyEpoch],
  ]);
  if (m.time !== undefined) map.set(S.time, m.time);
  return encodeCanonical(map);
}

export function decodeState(bytes: Uint8Array): Decoded<StateMessage> {
  return decodeWith(bytes, (m) => {
    only(m, S, 'state');
    const msg: StateMessage = {
      seq: uint(m.get(S.seq), 'seq (key 1)'),
      bundleId: optId(m.get(S.bundleId), 'bundleId (key 2)'),
      firmware: text(m.get(S.firmware), 'firmware (key 3)'),
      model: text(m.get(S.model), 'model (key 4)'),
      keyEpoch: uint(m.get(S.keyEpoch), 'keyEpoch (key 5)'),
    };
    if (m.has(S.time)) msg.time = uint(m.get(S.time), 'time (key 6)');
    return msg;
  });
}

export function encodeAck(m: AckMessage): Uint8Array {
  const map = new Map<number, CborValue>([
    [A.seq, m.seq],
    [A.bundleId, idBytes(m.bundleId)],
    [A.status, STATUS.indexOf(m.status)],
  ]);
  if (m.reason !== undefined) map.set(A.reason, m.reason);
  if (m.detail !== undefined) map.set(A.detail, m.detail.slice(0, MAX_TEXT));
  return encodeCanonical(map);
}

export function decodeAck(bytes: Uint8Array): Decoded<AckMessage> {
  return decodeWith(bytes, (m) => {
    only(m, A, 'ack');
    const code = m.get(A.status);
    if (code !== 0 && code !== 1) throw new ShapeError('status (key 3) must be 0 (applied) or 1 (rejected)');
    const msg: AckMessage = { seq: uint(m.get(A.seq), 'seq (key 1)'), bundleId: optId(m.get(A.bundleId), 'bundleId (key 2)'), status: STATUS[code] };
    if (msg.status === 'rejected') {
      const reason = m.get(A.reason);
      if (typeof reason !== 'string' || !(ACK_REASONS as readonly string[]).includes(reason)) throw new ShapeError(`reason (key 4) must be one of ${ACK_REASONS.join(', ')} for a rejection`);
      msg.reason = reason as AckReason;
    } else if (m.has(A.reason)) {
      throw new ShapeError('reason (key 4) is only for a rejection');
    }
    if (m.has(A.detail)) msg.detail = text(m.get(A.detail), 'detail (key 5)');
    return msg;
  });
}

export function encodeTelemetry(m: TelemetryMessage): Uint8Array {
  return encodeCanonical(
    new Map<number, CborValue>([
      [T.deviceId, m.deviceId],
      [T.group, m.group],
      [T.firmware, m.firmware],
      [
        T.reports,
        m.reports.map(
          (r) =>
            new Map<number, CborValue>([
              [R.hostname, r.hostname],
              [R.port, r.port],
              [R.result, RESULTS.indexOf(r.result)],
              [R.servedPins, r.servedPins.map(pinBytes)],
              [R.knownPins, r.knownPins.map(pinBytes)],
              [R.seq, r.seq],
              [R.bundleId, idBytes(r.bundleId)],
              [R.count, r.count],
              [R.suppressed, r.suppressed],
              [R.firstSeen, r.firstSeen],
              [R.lastSeen, r.lastSeen],
              [R.counter, r.counter],
            ]),
        ),
      ],
    ]),
  );
}

export function decodeTelemetry(bytes: Uint8Array): Decoded<TelemetryMessage> {
  return decodeWith(bytes, (m) => {
    only(m, T, 'telemetry');
    const reports = m.get(T.reports);
    if (!Array.isArray(reports) || reports.length === 0 || reports.length > MAX_REPORTS) throw new ShapeError(`reports (key 4) must be an array of 1 to ${MAX_REPORTS}`);
    return {
      deviceId: text(m.get(T.deviceId), 'deviceId (key 1)'),
      group: text(m.get(T.group), 'group (key 2)'),
      firmware: text(m.get(T.firmware), 'firmware (key 3)'),
      reports: reports.map((r, i) => report(r, `reports[${i}]`)),
    };
  });
}

function report(v: CborValue, at: string): PinFailureReport {
  if (!(v instanceof Map)) throw new ShapeError(`${at} must be a map`);
  only(v, R, at);
  const result = v.get(R.result);
  if (result !== 0 && result !== 1) throw new ShapeError(`${at}.result (key 3) must be 0 (pin_mismatch) or 1 (report_only_mismatch)`);
  const r: PinFailureReport = {
    hostname: text(v.get(R.hostname), `${at}.hostname (key 1)`),
    port: uint(v.get(R.port), `${at}.port (key 2)`),
    result: RESULTS[result],
    servedPins: pins(v.get(R.servedPins), `${at}.servedPins (key 4)`),
    knownPins: pins(v.get(R.knownPins), `${at}.knownPins (key 5)`),
    seq: uint(v.get(R.seq), `${at}.seq (key 6)`),
    bundleId: optId(v.get(R.bundleId), `${at}.bundleId (key 7)`),
    count: uint(v.get(R.count), `${at}.count (key 8)`),
    suppressed: uint(v.get(R.suppressed), `${at}.suppressed (key 9)`),
    firstSeen: uint(v.get(R.firstSeen), `${at}.firstSeen (key 10)`),
    lastSeen: uint(v.get(R.lastSeen), `${at}.lastSeen (key 11)`),
    counter: uint(v.get(R.counter), `${at}.counter (key 12)`),
  };
  if (r.port < 1 || r.port > 65535) throw new ShapeError(`${at}.port (key 2) must be 1 to 65535`);
  if (r.count < 1) throw new ShapeError(`${at}.count (key 8) must be at least 1`);
  return r;
}

class ShapeError extends Error {}

function decodeWith<T>(bytes: Uint8Array, shape: (m: Map<number, CborValue>) => T): Decoded<T> {
  const d = decodeCanonical(bytes);
  if (!d.ok) return { ok: false, detail: d.detail };
  if (!(d.value instanceof Map)) return { ok: false, detail: 'message must be a CBOR map' };
  try {
    return { ok: true, message: shape(d.value) };
  } catch (err) {
    if (err instanceof ShapeError) return { ok: false, detail: err.message };
    throw err;
  }
}

function only(m: Map<number, CborValue>, keys: Record<string, number>, what: string): void {
  const allowed = Object.values(keys);
  for (const k of m.keys()) if (!allowed.includes(k)) throw new ShapeError(`${what} has unknown key ${k}`);
}

function uint(v: CborValue | undefined, what: string): number {
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ShapeError(`${what} must be an unsigned integer`);
  return v;
}

function text(v: CborValue | undefined, what: string): string {
  if (typeof v !== 'string' || v.length > MAX_TEXT) throw new ShapeError(`${what} must be a text string of at most ${MAX_TEXT} characters`);
  return v;
}

function optId(v: CborValue | undefined, what: string): string | null {
  if (v === null) return null;
  if (!(v instanceof Uint8Array) || v.length !== 32) throw new ShapeError(`${what} must be a 32-byte bundle id or null`);
  return Buffer.from(v).toString('hex');
}

function pins(v: CborValue | undefined, what: string): string[] {
  if (!Array.isArray(v) || v.length > MAX_PINS) throw new ShapeError(`${what} must be an array of at most ${MAX_PINS} pins`);
  return v.map((p, i) => {
    if (!(p instanceof Uint8Array) || p.length !== 32) throw new ShapeError(`${what}[${i}] must be a 32-byte pin-sha256 digest`);
    return Buffer.from(p).toString('base64');
  });
}

function idBytes(id: string | null): Uint8Array | null {
  if (id === null) return null;
  if (!/^[0-9a-f]{64}$/.test(id)) throw new TypeError(`bundle id must be 64 lowercase hex characters, got ${JSON.stringify(id)}`);
  return new Uint8Array(Buffer.from(id, 'hex'));
}

function pinBytes(pin: string): Uint8Array {
  const bytes = Buffer.from(pin.replace(/^sha256\//, ''), 'base64');
  if (bytes.length !== 32) throw new TypeError(`pin must be 32 bytes of base64, got ${bytes.length}`);
  return new Uint8Array(bytes);
}
