// The device's own messages (docs/architecture.md §3, §5): `state`, `ack` and `telemetry`,
// integer-keyed deterministic CBOR like the bundle. Firmware engineers implement these in C; the
// CDDL is in docs/device-messages.md and the conformance vectors in vectors/messages.json.
// Decoders never throw: a hostile device's bytes come back as `{ ok: false, detail }`.
//
// Two readers of `state` and `ack`. decodeAnyState / decodeAnyAck read every message of
// docs/device-messages.md, the `verified` and `reverted` acks and the provisional window of a
// health-checked device (docs/pin-safety.md) included. decodeState / decodeAck are the readers of a
// gateway that does not count health checks yet: they take `applied` and `rejected` acks and states
// with no window open, and refuse the rest by name, so such a gateway never counts a device that is
// still verifying, or one that reverted, as done.
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
  /** the provisional window open now (docs/pin-safety.md): seq and bundleId above are the bundle being verified */
  provisional?: ProvisionalStatus;
}

/** A host and port, as a health check names an endpoint. */
export interface EndpointRef {
  host: string;
  port: number;
}

/** What a device still verifying a bundle says in its `state`: the committed state it would go back to, and what is left to check. */
export interface ProvisionalStatus {
  /** seq and id of the last committed bundle (0 and null: the firmware's initial pins) */
  previousSeq: number;
  previousBundleId: string | null;
  /** when the window opened and when onUnverifiable decides, device seconds */
  openedAt: number;
  deadline: number;
  /** the endpoints not yet seen serving a chain the new pins accept */
  pending: EndpointRef[];
}

/** Why a device did not apply a bundle: a verification reason, or a failed flash write. */
export type AckReason = RejectReason | 'apply_failed';
export const ACK_REASONS: readonly AckReason[] = [...REJECT_REASONS, 'apply_failed'];

/** An `applied` or `rejected` ack: the acks of every device, with or without a health check. */
export interface AckMessage {
  /** seq of the bundle acknowledged; 0 when the device could not read it */
  seq: number;
  /** hex id of the bundle (SHA-256 of its payload), or null when the device could not read one */
  bundleId: string | null;
  status: 'applied' | 'rejected';
  reason?: AckReason;
  /** a human-readable detail */
  detail?: string;
  /** `applied` only: a health-checked device committed without verifying these endpoints (they never answered; onUnverifiable "commit") */
  unverified?: EndpointRef[];
}

/** A health-checked device committed the bundle: every endpoint checked served a chain the new pins accept. */
export interface VerifiedAck {
  seq: number;
  bundleId: string;
  status: 'verified';
  /** the endpoints checked (empty when the bundle enforces no pin set) */
  checked: EndpointRef[];
  detail?: string;
}

/** Why a device went back to its previous trust state: the new pins refused what an endpoint serves, or nothing answered (onUnverifiable "revert"). */
export type RevertReason = 'pin_mismatch' | 'unverifiable';
export const REVERT_REASONS: readonly RevertReason[] = ['pin_mismatch', 'unverifiable'];

/** A health-checked device dropped the bundle and is back on its previous trust state. */
export interface RevertedAck {
  /** seq and id of the bundle reverted */
  seq: number;
  bundleId: string;
  status: 'reverted';
  reason: RevertReason;
  /** the endpoint that would have locked the device out (or that never answered) */
  endpoint: EndpointRef;
  /** pin-sha256 digests (base64) of the chain it served; empty for `unverifiable` */
  servedPins: string[];
  /** the seq and id the device runs again */
  previousSeq: number;
  previousBundleId: string | null;
  detail?: string;
}

/** Every ack a device sends (docs/device-messages.md). */
export type AnyAck = AckMessage | VerifiedAck | RevertedAck;
export type AckStatus = AnyAck['status'];

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

const S = { seq: 1, bundleId: 2, firmware: 3, model: 4, keyEpoch: 5, time: 6, provisional: 7 } as const;
const P = { previousSeq: 1, previousBundleId: 2, openedAt: 3, deadline: 4, pending: 5 } as const;
const A = { seq: 1, bundleId: 2, status: 3, reason: 4, detail: 5, checked: 6, unverified: 7, endpoint: 8, servedPins: 9, previousSeq: 10, previousBundleId: 11 } as const;
const E = { host: 1, port: 2 } as const;
const T = { deviceId: 1, group: 2, firmware: 3, reports: 4 } as const;
const R = { hostname: 1, port: 2, result: 3, servedPins: 4, knownPins: 5, seq: 6, bundleId: 7, count: 8, suppressed: 9, firstSeen: 10, lastSeen: 11, counter: 12 } as const;

const STATUS = ['applied', 'rejected', 'verified', 'reverted'] as const;
/** The keys each ack status may carry, beyond seq, bundle id, status and detail. */
const ACK_KEYS: Record<AckStatus, readonly number[]> = {
  applied: [A.unverified],
  rejected: [A.reason],
  verified: [A.checked],
  reverted: [A.reason, A.endpoint, A.servedPins, A.previousSeq, A.previousBundleId],
};
const MAX_ENDPOINTS = 64;
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
  if (m.provisional !== undefined) {
    const p = m.provisional;
    map.set(
      S.provisional,
      new Map<number, CborValue>([
        [P.previousSeq, p.previousSeq],
        [P.previousBundleId, idBytes(p.previousBundleId)],
        [P.openedAt, p.openedAt],
        [P.deadline, p.deadline],
        [P.pending, p.pending.map(endpointMap)],
      ]),
    );
  }
  return encodeCanonical(map);
}

/** A `state` with no provisional window: what a gateway that does not count health checks reads. */
export function decodeState(bytes: Uint8Array): Decoded<StateMessage> {
  const r = decodeAnyState(bytes);
  if (r.ok && r.message.provisional) return { ok: false, detail: 'provisional (key 7): the device is still verifying a bundle; this reader does not count health-checked devices (decodeAnyState reads it)' };
  return r;
}

/** Any `state`, a provisional window included. */
export function decodeAnyState(bytes: Uint8Array): Decoded<StateMessage> {
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
    if (m.has(S.provisional)) {
      const p = m.get(S.provisional);
      if (!(p instanceof Map)) throw new ShapeError('provisional (key 7) must be a map');
      only(p, P, 'provisional (key 7)');
      msg.provisional = {
        previousSeq: uint(p.get(P.previousSeq), 'provisional.previousSeq (key 7.1)'),
        previousBundleId: optId(p.get(P.previousBundleId), 'provisional.previousBundleId (key 7.2)'),
        openedAt: uint(p.get(P.openedAt), 'provisional.openedAt (key 7.3)'),
        deadline: uint(p.get(P.deadline), 'provisional.deadline (key 7.4)'),
        pending: endpoints(p.get(P.pending), 'provisional.pending (key 7.5)', 0),
      };
      if (msg.bundleId === null) throw new ShapeError('bundleId (key 2) must name the bundle being verified when provisional (key 7) is present');
      if (msg.provisional.previousSeq >= msg.seq) throw new ShapeError(`provisional.previousSeq (key 7.1) must be below seq (key 1) ${msg.seq}, got ${msg.provisional.previousSeq}`);
      if (msg.provisional.deadline < msg.provisional.openedAt) throw new ShapeError('provisional.deadline (key 7.4) must not be before openedAt (key 7.3)');
    }
    return msg;
  });
}

export function encodeAck(m: AnyAck): Uint8Array {
  const map = new Map<number, CborValue>([
    [A.seq, m.seq],
    [A.bundleId, idBytes(m.bundleId)],
    [A.status, STATUS.indexOf(m.status)],
  ]);
  switch (m.status) {
    case 'applied':
      if (m.unverified !== undefined) map.set(A.unverified, m.unverified.map(endpointMap));
      break;
    case 'rejected':
      if (m.reason !== undefined) map.set(A.reason, m.reason);
      break;
    case 'verified':
      map.set(A.checked, m.checked.map(endpointMap));
      break;
    case 'reverted':
      map.set(A.reason, m.reason);
      map.set(A.endpoint, endpointMap(m.endpoint));
      map.set(A.servedPins, m.servedPins.map(pinBytes));
      map.set(A.previousSeq, m.previousSeq);
      map.set(A.previousBundleId, idBytes(m.previousBundleId));
      break;
  }
  if (m.detail !== undefined) map.set(A.detail, m.detail.slice(0, MAX_TEXT));
  return encodeCanonical(map);
}

/** An `applied` or `rejected` ack: what a gateway that does not count health checks reads; `verified` and `reverted` are refused by name. */
export function decodeAck(bytes: Uint8Array): Decoded<AckMessage> {
  const r = decodeAnyAck(bytes);
  if (r.ok && (r.message.status === 'verified' || r.message.status === 'reverted')) {
    return { ok: false, detail: `status (key 3) ${STATUS.indexOf(r.message.status)} (${r.message.status}) is the ack of a health-checked device; this reader counts applied and rejected only (decodeAnyAck reads it)` };
  }
  return r as Decoded<AckMessage>;
}

/** Any ack: applied, rejected, verified or reverted, each with exactly the keys its status allows. */
export function decodeAnyAck(bytes: Uint8Array): Decoded<AnyAck> {
  return decodeWith(bytes, (m) => {
    only(m, A, 'ack');
    const code = m.get(A.status);
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 0 || code >= STATUS.length) throw new ShapeError('status (key 3) must be 0 (applied), 1 (rejected), 2 (verified) or 3 (reverted)');
    const status = STATUS[code];
    const allowed = ACK_KEYS[status];
    for (const k of m.keys()) if (k > A.detail && !allowed.includes(k)) throw new ShapeError(`${keyName(k)} (key ${k}) is not part of ${article(status)} ${status} ack`);
    if (m.has(A.reason) && !allowed.includes(A.reason)) throw new ShapeError('reason (key 4) is only for a rejection or a revert');
    const seq = uint(m.get(A.seq), 'seq (key 1)');
    const bundleId = optId(m.get(A.bundleId), 'bundleId (key 2)');
    const detail = m.has(A.detail) ? { detail: text(m.get(A.detail), 'detail (key 5)') } : {};
    switch (status) {
      case 'applied': {
        const msg: AckMessage = { seq, bundleId, status, ...detail };
        if (m.has(A.unverified)) msg.unverified = endpoints(m.get(A.unverified), 'unverified (key 7)', 1);
        return msg;
      }
      case 'rejected': {
        const reason = m.get(A.reason);
        if (typeof reason !== 'string' || !(ACK_REASONS as readonly string[]).includes(reason)) throw new ShapeError(`reason (key 4) must be one of ${ACK_REASONS.join(', ')} for a rejection`);
        return { seq, bundleId, status, reason: reason as AckReason, ...detail };
      }
      case 'verified':
        if (bundleId === null) throw new ShapeError('bundleId (key 2) must name the bundle a verified ack is for');
        if (!m.has(A.checked)) throw new ShapeError('checked (key 6) is required in a verified ack');
        return { seq, bundleId, status, checked: endpoints(m.get(A.checked), 'checked (key 6)', 0), ...detail };
      case 'reverted': {
        if (bundleId === null) throw new ShapeError('bundleId (key 2) must name the bundle a reverted ack is for');
        const reason = m.get(A.reason);
        if (typeof reason !== 'string' || !(REVERT_REASONS as readonly string[]).includes(reason)) throw new ShapeError(`reason (key 4) must be one of ${REVERT_REASONS.join(', ')} for a revert`);
        if (!m.has(A.endpoint)) throw new ShapeError('endpoint (key 8) is required in a reverted ack');
        if (!m.has(A.previousBundleId)) throw new ShapeError('previousBundleId (key 11) is required in a reverted ack (null on the firmware\'s initial pins)');
        const msg: RevertedAck = {
          seq,
          bundleId,
          status,
          reason: reason as RevertReason,
          endpoint: endpoint(m.get(A.endpoint), 'endpoint (key 8)'),
          servedPins: pins(m.get(A.servedPins), 'servedPins (key 9)'),
          previousSeq: uint(m.get(A.previousSeq), 'previousSeq (key 10)'),
          previousBundleId: optId(m.get(A.previousBundleId), 'previousBundleId (key 11)'),
          ...detail,
        };
        if (msg.previousSeq >= seq) throw new ShapeError(`previousSeq (key 10) must be below seq (key 1) ${seq}, got ${msg.previousSeq}`);
        if (msg.reason === 'pin_mismatch' && msg.servedPins.length === 0) throw new ShapeError('servedPins (key 9) must hold the served chain\'s pins for a pin_mismatch revert');
        return msg;
      }
    }
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

function endpoint(v: CborValue | undefined, what: string): EndpointRef {
  if (!(v instanceof Map)) throw new ShapeError(`${what} must be a map { 1: host, 2: port }`);
  only(v, E, what);
  const host = text(v.get(E.host), `${what}.host (key 1)`);
  const port = uint(v.get(E.port), `${what}.port (key 2)`);
  if (host.length === 0) throw new ShapeError(`${what}.host (key 1) must not be empty`);
  if (port < 1 || port > 65535) throw new ShapeError(`${what}.port (key 2) must be 1 to 65535`);
  return { host, port };
}

function endpoints(v: CborValue | undefined, what: string, min: number): EndpointRef[] {
  if (!Array.isArray(v) || v.length < min || v.length > MAX_ENDPOINTS) throw new ShapeError(`${what} must be an array of ${min} to ${MAX_ENDPOINTS} endpoints`);
  return v.map((e, i) => endpoint(e, `${what}[${i}]`));
}

function endpointMap(e: EndpointRef): Map<number, CborValue> {
  return new Map<number, CborValue>([
    [E.host, e.host],
    [E.port, e.port],
  ]);
}

const keyName = (k: number) => Object.entries(A).find(([, v]) => v === k)![0];
const article = (status: string) => (status === 'applied' ? 'an' : 'a');

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
