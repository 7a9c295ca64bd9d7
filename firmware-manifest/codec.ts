// The pin bundle: COSE_Sign1 (RFC 9052, CBOR tag 18) over a deterministic CBOR PinBundle,
// signed with Ed25519 (alg EdDSA, -8), external_aad "pinwave/v1". Implements docs/architecture.md §3.
//
// Complies with RFC 9052 §4.2/§4.4 (COSE_Sign1, Sig_structure), RFC 8032 (strict Ed25519 verify:
// noble with zip215 false), RFC 8949 §4.2 (deterministic encoding) and RFC 7469 §2.5 (backup pin).
//
//   const { bytes, id } = signBundle({ seq: 7, iat, exp, group: 'thermostats',
//     endpoints: [{ host: 'api.example.com', port: 443, pins: [pinA, pinB] }] }, seed);
//   const r = verifyBundle(bytes, [publicKey]);
//   if (r.ok) r.bundle.endpoints; else r.reason; // 'bad_signature', 'malformed', ...
//
// Verification only answers "is this a well-formed bundle that a trusted key signed?".
// Whether a device takes it (group, seq, expiry, key epoch) is trust-state.ts's call.
import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { decodeCanonical, encodeCanonical, equalBytes, Tag, type CborValue } from './cbor.ts';
import { kid } from './keys.ts';
import { endpointText } from './endpoint-text.ts';

// noble's sync API needs a SHA-512; node:crypto's is native and fast.
ed.hashes.sha512 = (message: Uint8Array) => new Uint8Array(createHash('sha512').update(message).digest());

export const COSE_SIGN1_TAG = 18; // RFC 9052 §4.2
export const ALG_EDDSA = -8; // RFC 9053 §2.2
export const EXTERNAL_AAD = new TextEncoder().encode('pinwave/v1'); // binds signatures to this protocol
export const FORMAT_VERSION = 1;
/** Bundle size limit when a device's manifest does not set one. */
export const DEFAULT_MAX_BUNDLE_BYTES = 4096;

/** Every reason a device may reject a bundle with (docs/architecture.md §3), one name each. */
export const REJECT_REASONS = [
  'malformed',
  'too_large',
  'unsupported_version',
  'unsupported_alg',
  'unknown_key',
  'bad_signature',
  'wrong_group',
  'replayed',
  'expired',
  'not_yet_valid',
  'weak_pin_set',
  'stale_key_epoch',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type PinMode = 'enforce' | 'report-only';
export type ExpiryPolicy = 'enforce' | 'ca-fallback';

export interface Endpoint {
  /** lowercase host name, exact or "*.example.com" (one label), or an IP literal */
  host: string;
  port: number;
  /** pin-sha256 digests (32 bytes each), at least two distinct: RFC 7469 §2.5 backup pin */
  pins: Uint8Array[];
  /** default 'enforce' */
  mode?: PinMode;
  /** seconds since the epoch: this pin set applies from then (overlap windows) */
  notBefore?: number;
  /** seconds since the epoch: this pin set applies until then */
  notAfter?: number;
}

export interface KeyRotation {
  /** strictly increasing per device */
  epoch: number;
  /** raw 32-byte Ed25519 public keys that replace the trusted set */
  keys: Uint8Array[];
}

export interface PinBundle {
  version: number;
  seq: number;
  /** issued-at, seconds since the epoch */
  iat: number;
  /** expiry, seconds since the epoch */
  exp: number;
  group: string;
  endpoints: Endpoint[];
  keyRotation?: KeyRotation;
  /** what a device does once this bundle has expired; default 'enforce' (keep enforcing its pins) */
  expiryPolicy?: ExpiryPolicy;
}

/** What signBundle takes: a PinBundle whose version defaults to 1. */
export type BundleInput = Omit<PinBundle, 'version'> & { version?: number };

export interface SignedBundle {
  /** the COSE_Sign1 bytes, what goes on the wire */
  bytes: Uint8Array;
  /** the bundle id: hex SHA-256 of the payload bytes (the bstr the signature covers) */
  id: string;
  /** the 8-byte key id of the signing key */
  kid: Uint8Array;
}

export type VerifyResult =
  | { ok: true; bundle: PinBundle; id: string; kid: Uint8Array; size: number }
  | { ok: false; reason: RejectReason; detail: string };

export interface VerifyOptions {
  /** refuse larger input before decoding; default DEFAULT_MAX_BUNDLE_BYTES */
  maxBytes?: number;
  /** format versions this device accepts; default [1] */
  acceptedVersions?: readonly number[];
}

/** A bundle that cannot be encoded as given: the message names the field and what was wrong. */
export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleError';
  }
}

// Payload, endpoint and key-rotation map keys (docs/bundle-format.md, CDDL).
const P = { version: 1, seq: 2, iat: 3, exp: 4, group: 5, endpoints: 6, keyRotation: 7, expiryPolicy: 8 } as const;
const E = { host: 1, port: 2, pins: 3, mode: 4, notBefore: 5, notAfter: 6 } as const;
const K = { epoch: 1, keys: 2 } as const;
const H = { alg: 1, kid: 4 } as const; // RFC 9052 §3.1 header labels

const MODES: readonly PinMode[] = ['enforce', 'report-only'];
const POLICIES: readonly ExpiryPolicy[] = ['enforce', 'ca-fallback'];

/** The key id: first 8 bytes of SHA-256 over the raw 32-byte public key (docs/architecture.md §3). */
export const kidOf = kid;

/** The bundle id: hex SHA-256 of the payload bytes. Envelope bytes are no identity (they can be re-encoded). */
export function bundleIdOf(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

const HOST_RE = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const IPV6_RE = /^[0-9a-f:.]+$/;

/** Why a bundle's content is unacceptable, or null. Shared by the encoder (refuse) and the verifier (reject). */
export function checkBundle(b: PinBundle): { reason: 'malformed' | 'weak_pin_set'; detail: string } | null {
  const bad = (detail: string) => ({ reason: 'malformed' as const, detail });
  if (!isUint(b.seq)) return bad(`seq must be a non-negative integer, got ${String(b.seq)}`);
  if (!isUint(b.iat)) return bad(`iat must be a non-negative integer, got ${String(b.iat)}`);
  if (!isUint(b.exp)) return bad(`exp must be a non-negative integer, got ${String(b.exp)}`);
  if (b.exp <= b.iat) return bad(`exp (${b.exp}) must be after iat (${b.iat})`);
  if (typeof b.group !== 'string' || b.group.length < 1 || b.group.length > 64) return bad('group must be a string of 1 to 64 characters');
  if (!Array.isArray(b.endpoints) || b.endpoints.length === 0) return bad('endpoints must hold at least one endpoint');
  if (b.expiryPolicy !== undefined && !POLICIES.includes(b.expiryPolicy)) return bad(`expiryPolicy must be one of ${POLICIES.join(', ')}`);
  for (const [i, e] of b.endpoints.entries()) {
    const at = `endpoints[${i}]`;
    if (typeof e.host !== 'string' || e.host.length > 253 || !(HOST_RE.test(e.host) || (e.host.includes(':') && IPV6_RE.test(e.host)))) {
      return bad(`${at}.host must be a lowercase host name, "*.domain" or an IP address, got ${JSON.stringify(e.host)}`);
    }
    if (!isUint(e.port) || e.port < 1 || e.port > 65535) return bad(`${at}.port must be 1 to 65535, got ${String(e.port)}`);
    if (e.mode !== undefined && !MODES.includes(e.mode)) return bad(`${at}.mode must be one of ${MODES.join(', ')}`);
    if (e.notBefore !== undefined && !isUint(e.notBefore)) return bad(`${at}.notBefore must be a non-negative integer`);
    if (e.notAfter !== undefined && !isUint(e.notAfter)) return bad(`${at}.notAfter must be a non-negative integer`);
    if (e.notBefore !== undefined && e.notAfter !== undefined && e.notAfter <= e.notBefore) return bad(`${at}.notAfter must be after notBefore`);
    if (!Array.isArray(e.pins)) return bad(`${at}.pins must be an array`);
    for (const [j, p] of e.pins.entries()) {
      if (!(p instanceof Uint8Array) || p.length !== 32) return bad(`${at}.pins[${j}] must be 32 bytes (SHA-256), got ${p instanceof Uint8Array ? p.length : typeof p}`);
    }
    // RFC 7469 §2.5: a backup pin, so a key can be replaced without locking devices out.
    const distinct = new Set(e.pins.map(hex)).size;
    if (distinct < 2) return { reason: 'weak_pin_set', detail: `${at} (${endpointText(e.host, e.port)}) has ${distinct} distinct pin${distinct === 1 ? '' : 's'}; at least 2 are required (RFC 7469 §2.5 backup pin)` };
    if (distinct !== e.pins.length) return bad(`${at}.pins repeats a pin`);
  }
  if (b.keyRotation !== undefined) {
    const k = b.keyRotation;
    if (!isUint(k.epoch)) return bad('keyRotation.epoch must be a non-negative integer');
    if (!Array.isArray(k.keys) || k.keys.length === 0) return bad('keyRotation.keys must hold at least one key');
    for (const [j, key] of k.keys.entries()) {
      if (!(key instanceof Uint8Array) || key.length !== 32) return bad(`keyRotation.keys[${j}] must be a raw 32-byte Ed25519 public key`);
    }
  }
  return null;
}

/** Encode and sign a bundle with a 32-byte Ed25519 seed. Throws BundleError naming the field on invalid content. */
export function signBundle(input: BundleInput, seed: Uint8Array): SignedBundle {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new BundleError(`expected a 32-byte Ed25519 private key seed, got length=${seed?.length}`);
  const bundle: PinBundle = { ...input, version: input.version ?? FORMAT_VERSION };
  const problem = checkBundle(bundle);
  if (problem) throw new BundleError(problem.detail);
  const payload = encodeCanonical(payloadMap(bundle));
  const kid = kidOf(ed.getPublicKey(seed));
  const protectedBytes = encodeCanonical(new Map<number, CborValue>([[H.alg, ALG_EDDSA], [H.kid, kid]]));
  const signature = ed.sign(sigStructure(protectedBytes, payload), seed);
  const bytes = encodeCanonical(new Tag([protectedBytes, new Map(), payload, signature], COSE_SIGN1_TAG));
  return { bytes, id: bundleIdOf(payload), kid };
}

/**
 * The size, bytes, of the smallest signed bundle that can carry `endpoints` (seq, times and group at
 * their shortest): pins above a device's maxBundleBytes here can never be sent to it in one bundle.
 */
export function smallestBundleBytes(endpoints: readonly Endpoint[]): number {
  const payload = encodeCanonical(payloadMap({ version: FORMAT_VERSION, seq: 1, iat: 0, exp: 1, group: 'g', endpoints: [...endpoints] }));
  const protectedBytes = encodeCanonical(new Map<number, CborValue>([[H.alg, ALG_EDDSA], [H.kid, new Uint8Array(8)]]));
  return encodeCanonical(new Tag([protectedBytes, new Map(), payload, new Uint8Array(64)], COSE_SIGN1_TAG)).length;
}

/** The bytes an Ed25519 signature covers: Sig_structure (RFC 9052 §4.4) with external_aad "pinwave/v1". */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array, externalAad: Uint8Array = EXTERNAL_AAD): Uint8Array {
  return encodeCanonical(['Signature1', protectedBytes, externalAad, payload]);
}

/** The payload as a CBOR map (for tools that build unusual bundles, such as the conformance vectors). */
export function payloadMap(b: PinBundle): Map<number, CborValue> {
  const m = new Map<number, CborValue>([
    [P.version, b.version],
    [P.seq, b.seq],
    [P.iat, b.iat],
    [P.exp, b.exp],
    [P.group, b.group],
    [P.endpoints, b.endpoints.map(endpointMap)],
  ]);
  if (b.keyRotation) m.set(P.keyRotation, new Map<number, CborValue>([[K.epoch, b.keyRotation.epoch], [K.keys, b.keyRotation.keys]]));
  // RFC 8949 §4.2.2: a default value is omitted, so every bundle has exactly one encoding.
  if (b.expiryPolicy === 'ca-fallback') m.set(P.expiryPolicy, 1);
  return m;
}

function endpointMap(e: Endpoint): Map<number, CborValue> {
  const m = new Map<number, CborValue>([[E.host, e.host], [E.port, e.port], [E.pins, e.pins]]);
  if (e.mode === 'report-only') m.set(E.mode, 1);
  if (e.notBefore !== undefined) m.set(E.notBefore, e.notBefore);
  if (e.notAfter !== undefined) m.set(E.notAfter, e.notAfter);
  return m;
}

export interface Envelope {
  protectedBytes: Uint8Array;
  payload: Uint8Array;
  signature: Uint8Array;
  alg: number;
  kid: Uint8Array;
}

type Rejection = { ok: false; reason: RejectReason; detail: string };
const reject = (reason: RejectReason, detail: string): Rejection => ({ ok: false, reason, detail });

/** Parse the COSE_Sign1 envelope without checking the signature. Never throws. */
export function decodeEnvelope(bytes: Uint8Array, maxBytes = DEFAULT_MAX_BUNDLE_BYTES): { ok: true; envelope: Envelope } | Rejection {
  if (!(bytes instanceof Uint8Array)) return reject('malformed', 'expected bytes');
  // Checked before decoding: a device never spends parsing effort on oversize input.
  if (bytes.length > maxBytes) return reject('too_large', `bundle is ${bytes.length} bytes, the limit is ${maxBytes}`);
  const outer = decodeCanonical(bytes);
  if (!outer.ok) return reject('malformed', outer.detail);
  const msg = outer.value;
  // RFC 9052 §4.2: we require the tag; an untagged array could be any COSE structure.
  if (!(msg instanceof Tag) || msg.tag !== COSE_SIGN1_TAG) return reject('malformed', 'not a COSE_Sign1 message (CBOR tag 18)');
  const parts = msg.value as CborValue;
  if (!Array.isArray(parts) || parts.length !== 4) return reject('malformed', 'COSE_Sign1 must be an array of 4');
  const [protectedBytes, unprotected, payload, signature] = parts;
  if (!(protectedBytes instanceof Uint8Array)) return reject('malformed', 'protected header must be a byte string');
  // Nothing unauthenticated may steer verification: a lax library would take a kid or alg from here.
  if (!(unprotected instanceof Map) || unprotected.size !== 0) return reject('malformed', 'unprotected header must be an empty map');
  if (!(payload instanceof Uint8Array)) return reject('malformed', 'payload must be a byte string (detached payloads are not supported)');
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return reject('malformed', 'signature must be 64 bytes (Ed25519)');
  const header = decodeCanonical(protectedBytes);
  if (!header.ok) return reject('malformed', `protected header: ${header.detail}`);
  const h = header.value;
  if (!(h instanceof Map)) return reject('malformed', 'protected header must be a map');
  for (const key of h.keys()) if (key !== H.alg && key !== H.kid) return reject('malformed', `protected header has unexpected label ${key}`);
  const alg = h.get(H.alg);
  const kid = h.get(H.kid);
  if (typeof alg !== 'number') return reject('malformed', 'protected header must carry alg (label 1)');
  if (!(kid instanceof Uint8Array) || kid.length !== 8) return reject('malformed', 'protected header must carry an 8-byte kid (label 4)');
  // alg is bound to the key here, not trusted from the key's type: t_cose does not do it for you.
  if (alg !== ALG_EDDSA) return reject('unsupported_alg', `alg ${alg} is not EdDSA (-8)`);
  return { ok: true, envelope: { protectedBytes, payload, signature, alg, kid } };
}

/**
 * Decode and verify a bundle against the trusted public keys (raw 32-byte Ed25519).
 * Checks, in order: size, envelope shape and encoding, alg, kid among the trusted keys, signature,
 * then the payload: encoding, version, shape, pin sets. Never throws on any input.
 */
export function verifyBundle(bytes: Uint8Array, trustedKeys: readonly Uint8Array[], options: VerifyOptions = {}): VerifyResult {
  const env = decodeEnvelope(bytes, options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES);
  if (!env.ok) return env;
  const { kid, protectedBytes, payload, signature } = env.envelope;
  const key = trustedKeys.find((k) => equalBytes(kidOf(k), kid));
  if (!key) return reject('unknown_key', `no trusted key has kid ${hex(kid)}`);
  let valid = false;
  try {
    valid = ed.verify(signature, sigStructure(protectedBytes, payload), key, { zip215: false }); // RFC 8032 §5.1.7, strict
  } catch {
    valid = false;
  }
  if (!valid) return reject('bad_signature', `signature does not verify with key ${hex(kid)}`);
  const parsed = decodePayload(payload, options.acceptedVersions ?? [FORMAT_VERSION]);
  if (!parsed.ok) return parsed;
  return { ok: true, bundle: parsed.bundle, id: bundleIdOf(payload), kid, size: bytes.length };
}

/** Decode a payload (already authenticated, or for inspection). Never throws. */
export function decodePayload(payload: Uint8Array, acceptedVersions: readonly number[] = [FORMAT_VERSION]): { ok: true; bundle: PinBundle } | Rejection {
  const decoded = decodeCanonical(payload);
  if (!decoded.ok) return reject('malformed', `payload: ${decoded.detail}`);
  const m = decoded.value;
  if (!(m instanceof Map)) return reject('malformed', 'payload must be a map');
  const version = m.get(P.version);
  if (typeof version !== 'number') return reject('malformed', 'payload must carry a format version (key 1)');
  // Checked before the rest of the shape: another version may have another shape.
  if (!acceptedVersions.includes(version)) return reject('unsupported_version', `format version ${version} is not accepted (accepted: ${acceptedVersions.join(', ')})`);
  try {
    const bundle = bundleFromMap(m, version);
    const problem = checkBundle(bundle);
    if (problem) return reject(problem.reason, problem.detail);
    return { ok: true, bundle };
  } catch (err) {
    if (err instanceof ShapeError) return reject('malformed', err.message);
    throw err;
  }
}

class ShapeError extends Error {}

function bundleFromMap(m: Map<number, CborValue>, version: number): PinBundle {
  onlyKeys(m, Object.values(P), 'payload');
  const endpoints = m.get(P.endpoints);
  if (!Array.isArray(endpoints)) throw new ShapeError('endpoints (key 6) must be an array');
  const bundle: PinBundle = {
    version,
    seq: uint(m.get(P.seq), 'seq (key 2)'),
    iat: uint(m.get(P.iat), 'iat (key 3)'),
    exp: uint(m.get(P.exp), 'exp (key 4)'),
    group: text(m.get(P.group), 'group (key 5)'),
    endpoints: endpoints.map((e, i) => endpointFromMap(e, i)),
  };
  const rotation = m.get(P.keyRotation);
  if (rotation !== undefined) {
    if (!(rotation instanceof Map)) throw new ShapeError('keyRotation (key 7) must be a map');
    onlyKeys(rotation, Object.values(K), 'keyRotation');
    const keys = rotation.get(K.keys);
    if (!Array.isArray(keys)) throw new ShapeError('keyRotation.keys must be an array');
    bundle.keyRotation = { epoch: uint(rotation.get(K.epoch), 'keyRotation.epoch'), keys: keys.map((k, j) => bytesOf(k, `keyRotation.keys[${j}]`)) };
  }
  const policy = m.get(P.expiryPolicy);
  if (policy !== undefined) {
    if (policy !== 1) throw new ShapeError(`expiryPolicy (key 8) must be absent (enforce) or 1 (ca-fallback), got ${String(policy)}`);
    bundle.expiryPolicy = 'ca-fallback';
  }
  return bundle;
}

function endpointFromMap(v: CborValue, i: number): Endpoint {
  const at = `endpoints[${i}]`;
  if (!(v instanceof Map)) throw new ShapeError(`${at} must be a map`);
  onlyKeys(v, Object.values(E), at);
  const pins = v.get(E.pins);
  if (!Array.isArray(pins)) throw new ShapeError(`${at}.pins (key 3) must be an array`);
  const e: Endpoint = {
    host: text(v.get(E.host), `${at}.host (key 1)`),
    port: uint(v.get(E.port), `${at}.port (key 2)`),
    pins: pins.map((p, j) => bytesOf(p, `${at}.pins[${j}]`)),
  };
  const mode = v.get(E.mode);
  if (mode !== undefined) {
    if (mode !== 1) throw new ShapeError(`${at}.mode (key 4) must be absent (enforce) or 1 (report-only), got ${String(mode)}`);
    e.mode = 'report-only';
  }
  if (v.get(E.notBefore) !== undefined) e.notBefore = uint(v.get(E.notBefore), `${at}.notBefore (key 5)`);
  if (v.get(E.notAfter) !== undefined) e.notAfter = uint(v.get(E.notAfter), `${at}.notAfter (key 6)`);
  return e;
}

function onlyKeys(m: Map<number, CborValue>, allowed: readonly number[], at: string): void {
  for (const k of m.keys()) if (!allowed.includes(k)) throw new ShapeError(`${at} has unknown key ${k}`);
}

function uint(v: CborValue | undefined, what: string): number {
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (!isUint(v)) throw new ShapeError(`${what} must be an unsigned integer`);
  return v;
}

function text(v: CborValue | undefined, what: string): string {
  if (typeof v !== 'string') throw new ShapeError(`${what} must be a text string`);
  return v;
}

function bytesOf(v: CborValue | undefined, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new ShapeError(`${what} must be a byte string`);
  return new Uint8Array(v);
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Inspect without trusting: the envelope and the decoded payload, no signature check. Never throws. */
export function inspectBundle(bytes: Uint8Array, maxBytes = 1 << 20): { ok: true; envelope: Envelope; bundle: PinBundle; id: string } | Rejection {
  const env = decodeEnvelope(bytes, maxBytes);
  if (!env.ok) return env;
  const parsed = decodePayload(env.envelope.payload);
  if (!parsed.ok) return parsed;
  return { ok: true, envelope: env.envelope, bundle: parsed.bundle, id: bundleIdOf(env.envelope.payload) };
}
