// A device's trust state and its transitions (docs/architecture.md §3; docs/bundle-format.md, device checks and pin checking): what firmware holds in
// flash, what a bundle changes, and how a TLS handshake's served chain is judged against it.
// Pure: time comes in as `now` (seconds since the epoch); the state is plain JSON so a device can
// persist it as it is. A device with a health check applies through provisional.ts instead, which
// runs these same transitions inside a provisional window (docs/pin-safety.md).
//
//   const r = apply(state, bundleBytes, now);
//   if (r.ok) persist(r.state) then ack 'applied'; else ack 'rejected' with r.reason;
//   checkChain(state, 'api.example.com', 443, servedChainPins, now); // 'ok' | 'pin_mismatch' | ...
import { DEFAULT_MAX_BUNDLE_BYTES, FORMAT_VERSION, verifyBundle, type Endpoint, type ExpiryPolicy, type PinBundle, type PinMode, type RejectReason, type VerifyResult } from './codec.ts';
import { isoSeconds as iso } from './view.ts';

/** One endpoint's pins as a device holds them; pins are base64 pin-sha256 digests (no "sha256/" prefix). */
export interface TrustedEndpoint {
  host: string;
  port: number;
  pins: string[];
  mode: PinMode;
  notBefore?: number;
  notAfter?: number;
}

export interface TrustState {
  /** the device group; a bundle for another group is rejected */
  group: string;
  /** seq of the active bundle; 0 while the device runs on its firmware's initial pins */
  seq: number;
  /** id (hex SHA-256 of the payload) of the active bundle; null for the firmware's initial pins */
  bundleId: string | null;
  /** epoch of the trusted key set; 0 for the keys the firmware shipped with */
  keyEpoch: number;
  /** raw Ed25519 public keys, base64 */
  trustedKeys: string[];
  endpoints: TrustedEndpoint[];
  /** expiry of the active bundle (seconds since the epoch), or null for initial pins that do not expire */
  exp: number | null;
  expiryPolicy: ExpiryPolicy;
  // Limits from the firmware manifest, carried here so apply() needs nothing else.
  maxBundleBytes: number;
  acceptedVersions: number[];
  clockSkewSeconds: number;
}

export type ApplyResult =
  | { ok: true; state: TrustState; bundle: PinBundle; id: string; /** the same bundle as the active one: nothing changed */ unchanged: boolean }
  | { ok: false; reason: RejectReason; detail: string };

/** Decode, verify and apply a bundle: the new state whole, or a named rejection and no change. */
export function apply(state: TrustState, bytes: Uint8Array, now: number): ApplyResult {
  const verified = verifyBundle(bytes, trustedKeyBytes(state), { maxBytes: state.maxBundleBytes, acceptedVersions: state.acceptedVersions });
  return applyVerified(state, verified, now);
}

/**
 * Apply a bundle whose signature was already checked against this state's keys (a simulated fleet
 * shares one verification across devices holding the same key). The per-device checks all run here.
 */
export function applyVerified(state: TrustState, verified: VerifyResult, now: number): ApplyResult {
  if (!verified.ok) return verified;
  const { bundle, id, size } = verified;
  if (size > state.maxBundleBytes) return no('too_large', `bundle is ${size} bytes, this device takes at most ${state.maxBundleBytes}`);
  if (!state.acceptedVersions.includes(bundle.version)) return no('unsupported_version', `format version ${bundle.version} is not accepted (accepted: ${state.acceptedVersions.join(', ')})`);
  if (bundle.group !== state.group) return no('wrong_group', `bundle is for group "${bundle.group}", this device is in "${state.group}"`);
  // A re-delivery of the active bundle (a resend after a lost ack) is acknowledged again, not refused.
  if (id === state.bundleId) return { ok: true, state, bundle, id, unchanged: true };
  // Rollback protection: an older signed bundle must never bring back old pins.
  if (bundle.seq <= state.seq) return no('replayed', `bundle seq ${bundle.seq} is not above the current seq ${state.seq}`);
  // Freeze protection: a captured bundle cannot be held back and replayed after it expires.
  if (bundle.exp + state.clockSkewSeconds <= now) return no('expired', `bundle expired at ${iso(bundle.exp)}; device time is ${iso(now)}`);
  if (bundle.iat > now + state.clockSkewSeconds) return no('not_yet_valid', `bundle issued at ${iso(bundle.iat)}, ahead of device time ${iso(now)} beyond the ${state.clockSkewSeconds}s skew tolerance`);
  let { keyEpoch, trustedKeys } = state;
  if (bundle.keyRotation) {
    if (bundle.keyRotation.epoch <= state.keyEpoch) return no('stale_key_epoch', `key epoch ${bundle.keyRotation.epoch} is not above the current epoch ${state.keyEpoch}`);
    keyEpoch = bundle.keyRotation.epoch;
    trustedKeys = bundle.keyRotation.keys.map(b64);
  }
  const next: TrustState = {
    ...state,
    seq: bundle.seq,
    bundleId: id,
    keyEpoch,
    trustedKeys,
    // The complete pin set, never a delta: the new endpoints replace the old ones whole.
    endpoints: heldEndpoints(bundle.endpoints),
    exp: bundle.exp,
    expiryPolicy: bundle.expiryPolicy ?? 'enforce',
  };
  return { ok: true, state: next, bundle, id, unchanged: false };
}

/**
 * How a TLS handshake's served chain fares against the pins:
 * - `ok`: a served key is pinned (RFC 7469 §2.6: any key of the chain may match);
 * - `pin_mismatch`: no served key is pinned and the pin set is enforced: the connection must be dropped;
 * - `report_only_mismatch`: no served key is pinned, the pin set is report-only: connect, but report it;
 * - `expired_fallback`: the active bundle has expired and its policy is to fall back to CA validation;
 * - `not_pinned`: no pin set covers this host and port: ordinary CA validation applies.
 */
export type ChainCheck = 'ok' | 'pin_mismatch' | 'report_only_mismatch' | 'expired_fallback' | 'not_pinned';

export function checkChain(state: TrustState, host: string, port: number, servedPins: readonly (string | Uint8Array)[], now: number): ChainCheck {
  const active = activePinSets(state.endpoints, host, port, now);
  if (active.length === 0) return 'not_pinned';
  if (state.exp !== null && now >= state.exp && state.expiryPolicy === 'ca-fallback') return 'expired_fallback';
  const served = new Set(servedPins.map((p) => (typeof p === 'string' ? p.replace(/^sha256\//, '') : b64(p))));
  if (active.some((e) => e.pins.some((p) => served.has(p)))) return 'ok';
  return active.every((e) => e.mode === 'report-only') ? 'report_only_mismatch' : 'pin_mismatch';
}

/**
 * The pin sets of `host`:`port` in force at `now`: an exact entry is more specific than a wildcard
 * one and wins over it; of an endpoint's overlap windows, those in force now, and in a gap between
 * windows every set of the endpoint (a host must never become unpinned because an operator left a
 * hole in the schedule). None: the endpoint is not pinned.
 */
export function activePinSets(endpoints: readonly TrustedEndpoint[], host: string, port: number, now: number): TrustedEndpoint[] {
  // An absolute name ("api.example.com.", RFC 1034 §3.1) is the same host, and TLS name checks take
  // it as such: left as it is it would match no entry and go unpinned (docs/bundle-format.md, pin checking, step 1).
  const name = host.toLowerCase().replace(/\.$/, '');
  let entries = endpoints.filter((e) => e.port === port && e.host === name);
  if (entries.length === 0) entries = endpoints.filter((e) => e.port === port && wildcardMatches(e.host, name));
  const inForce = entries.filter((e) => (e.notBefore === undefined || e.notBefore <= now) && (e.notAfter === undefined || now < e.notAfter));
  return inForce.length > 0 ? inForce : entries;
}

/** A state that holds only pins (no keys, no limits): enough to judge handshakes with checkChain. */
export function pinsOnlyState(endpoints: TrustedEndpoint[], exp: number | null = null, expiryPolicy: ExpiryPolicy = 'enforce'): TrustState {
  return { group: '', seq: 0, bundleId: null, keyEpoch: 0, trustedKeys: [], endpoints, exp, expiryPolicy, maxBundleBytes: 0, acceptedVersions: [], clockSkewSeconds: 0 };
}

/**
 * trustedEndpoints() of a decoded bundle, once per bundle: trust states are never changed in place,
 * only replaced, so the devices that apply one decoded bundle (a simulated fleet shares its
 * verification) may hold one copy of its endpoints.
 */
const held = new WeakMap<readonly Endpoint[], TrustedEndpoint[]>();
function heldEndpoints(endpoints: readonly Endpoint[]): TrustedEndpoint[] {
  let out = held.get(endpoints);
  if (out === undefined) {
    out = trustedEndpoints(endpoints);
    held.set(endpoints, out);
  }
  return out;
}

/** A bundle's endpoints as a device holds them (pins as base64, mode filled in). */
export function trustedEndpoints(endpoints: readonly Endpoint[]): TrustedEndpoint[] {
  return endpoints.map((e) => ({
    host: e.host,
    port: e.port,
    pins: e.pins.map(b64),
    mode: e.mode ?? 'enforce',
    ...(e.notBefore !== undefined && { notBefore: e.notBefore }),
    ...(e.notAfter !== undefined && { notAfter: e.notAfter }),
  }));
}

/** "*.example.com" matches exactly one label: "a.example.com", not "example.com" nor "a.b.example.com" (RFC 6125 §6.4.3). */
export function wildcardMatches(pattern: string, host: string): boolean {
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1); // ".example.com"
  if (!host.endsWith(suffix)) return false;
  const label = host.slice(0, host.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}

/** The trusted keys as bytes, for verification. */
export function trustedKeyBytes(state: TrustState): Uint8Array[] {
  return state.trustedKeys.map((k) => new Uint8Array(Buffer.from(k, 'base64')));
}

/** What a state looks like with nothing but defaults, for tests and tools. */
export function emptyState(group: string, trustedKeys: Uint8Array[]): TrustState {
  return {
    group,
    seq: 0,
    bundleId: null,
    keyEpoch: 0,
    trustedKeys: trustedKeys.map(b64),
    endpoints: [],
    exp: null,
    expiryPolicy: 'enforce',
    maxBundleBytes: DEFAULT_MAX_BUNDLE_BYTES,
    acceptedVersions: [FORMAT_VERSION],
    clockSkewSeconds: 300,
  };
}

function no(reason: RejectReason, detail: string): ApplyResult {
  return { ok: false, reason, detail };
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

