// Conformance vectors (docs/architecture.md §3): bundles a firmware implementation must accept, and one or
// more per rejection reason, each with the signer's key, the bytes, the device state before, the
// device time and the expected outcome. They include the envelopes a lax COSE library would wrongly
// accept. Pure and deterministic: scripts/gen-vectors.ts writes them to firmware-manifest/vectors/,
// and the tests check both the files and that apply() agrees with every expected outcome.
import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { encodeCanonical, Tag, type CborValue } from './cbor.ts';
import { ALG_EDDSA, COSE_SIGN1_TAG, hex, kidOf, payloadMap, sigStructure, signBundle, type BundleInput, type PinBundle, type RejectReason } from './codec.ts';
import { encodeAck, encodeState, encodeTelemetry, type AckMessage, type AnyAck, type RevertedAck, type StateMessage, type TelemetryMessage, type VerifiedAck } from './messages.ts';
import { apply, emptyState, type TrustState } from './trust-state.ts';

export interface BundleVector {
  name: string;
  description: string;
  /** a lax COSE library (no determinism check, kid from any header, alg not bound) would accept these bytes */
  laxLibraryAccepts?: boolean;
  signer: { seed: string; publicKey: string; kid: string };
  /** device clock, seconds since the epoch */
  now: number;
  stateBefore: TrustState;
  bundle: string;
  expected: { result: 'applied'; bundleId: string; stateAfter: TrustState } | { result: 'rejected'; reason: RejectReason };
}

const sha = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** The vectors' fixed inputs: derived from labels, so anyone can rebuild them. */
export const fixtures = {
  seedA: sha('pinwave conformance signing key A'),
  seedB: sha('pinwave conformance signing key B'),
  seedUnknown: sha('pinwave conformance key nobody trusts'),
  now: 1767225600, // 2026-01-01T00:00:00Z
  pins: { current: sha('pin: current server key'), backup: sha('pin: backup key'), next: sha('pin: next server key') },
};

const pubA = ed.getPublicKey(fixtures.seedA);
const pubB = ed.getPublicKey(fixtures.seedB);
const DAY = 86400;

function stateBefore(over: Partial<TrustState> = {}): TrustState {
  return {
    ...emptyState('thermostats', [pubA]),
    seq: 1,
    bundleId: hex(sha('a bundle applied earlier')),
    endpoints: [{ host: 'api.example.com', port: 443, pins: [b64(fixtures.pins.current), b64(fixtures.pins.backup)], mode: 'enforce' }],
    exp: fixtures.now + 10 * DAY,
    ...over,
  };
}

function bundle(over: Partial<BundleInput> = {}): PinBundle {
  return {
    version: 1,
    seq: 2,
    iat: fixtures.now - 60,
    exp: fixtures.now + 30 * DAY,
    group: 'thermostats',
    endpoints: [{ host: 'api.example.com', port: 443, pins: [fixtures.pins.next, fixtures.pins.current] }],
    ...over,
  };
}

export interface RawSignOptions {
  seed?: Uint8Array;
  alg?: number;
  /** extra protected header labels */
  protectedExtra?: [number, CborValue][];
  unprotected?: Map<number, CborValue>;
  externalAad?: Uint8Array;
  /** omit the kid from the protected header */
  noKid?: boolean;
}

/** Sign arbitrary payload bytes into COSE_Sign1 parts, with every knob a hostile or lax signer might turn. */
export function signRaw(payload: Uint8Array, o: RawSignOptions = {}): CborValue[] {
  const seed = o.seed ?? fixtures.seedA;
  const header = new Map<number, CborValue>([[1, o.alg ?? ALG_EDDSA]]);
  if (!o.noKid) header.set(4, kidOf(ed.getPublicKey(seed)));
  for (const [k, v] of o.protectedExtra ?? []) header.set(k, v);
  const protectedBytes = encodeCanonical(header);
  const signature = ed.sign(sigStructure(protectedBytes, payload, o.externalAad), seed);
  return [protectedBytes, o.unprotected ?? new Map(), payload, signature];
}

/** The canonical COSE_Sign1 bytes of parts. */
export function envelope(parts: CborValue[], tag = COSE_SIGN1_TAG): Uint8Array {
  return encodeCanonical(new Tag(parts, tag));
}

const concat = (...chunks: (Uint8Array | number[])[]) => new Uint8Array(chunks.flatMap((c) => [...c]));
const enc = (v: CborValue) => encodeCanonical(v);

/** Hand-assembled payload bytes, for encodings our encoder refuses to make. */
function rawPayload(entries: [number, Uint8Array][], header?: number[]): Uint8Array {
  return concat(header ?? [0xa0 + entries.length], ...entries.map(([k, v]) => concat(enc(k), v)));
}

function baseEntries(b: PinBundle): [number, Uint8Array][] {
  return [...payloadMap(b)].map(([k, v]) => [k, enc(v)]);
}

interface Case {
  name: string;
  description: string;
  laxLibraryAccepts?: boolean;
  seed?: Uint8Array;
  state?: TrustState;
  now?: number;
  bytes: Uint8Array;
  expect: 'applied' | RejectReason;
}

function cases(): Case[] {
  const good = signBundle(bundle(), fixtures.seedA);
  const goodParts = signRaw(enc(payloadMap(bundle())));
  const mutateSigned = (b: PinBundle, edit: (m: Map<number, CborValue>) => void) => {
    const m = payloadMap(b);
    edit(m);
    return envelope(signRaw(enc(m)));
  };
  const list: Case[] = [
    { name: 'valid-basic', description: 'one endpoint, two pins: applied; the pins replace the old ones whole', bytes: good.bytes, expect: 'applied' },
    {
      name: 'valid-key-rotation',
      description: 'a bundle signed by key A that rotates the trusted keys to {A, B} at epoch 1',
      bytes: signBundle(bundle({ keyRotation: { epoch: 1, keys: [pubA, pubB] } }), fixtures.seedA).bytes,
      expect: 'applied',
    },
    {
      name: 'valid-signed-by-rotated-key',
      description: 'after a rotation to key B, a bundle signed by B is applied',
      state: stateBefore({ keyEpoch: 1, trustedKeys: [b64(pubB)] }),
      seed: fixtures.seedB,
      bytes: signBundle(bundle(), fixtures.seedB).bytes,
      expect: 'applied',
    },
    {
      name: 'valid-overlap-report-only-ca-fallback',
      description: 'two pin sets for one endpoint with an overlap window, a report-only endpoint, and the CA-fallback expiry policy',
      bytes: signBundle(
        bundle({
          expiryPolicy: 'ca-fallback',
          endpoints: [
            { host: 'api.example.com', port: 443, pins: [fixtures.pins.current, fixtures.pins.backup], notAfter: fixtures.now + 7 * DAY },
            { host: 'api.example.com', port: 443, pins: [fixtures.pins.next, fixtures.pins.backup], notBefore: fixtures.now + 6 * DAY },
            { host: '*.telemetry.example.com', port: 8883, pins: [fixtures.pins.next, fixtures.pins.backup], mode: 'report-only' },
          ],
        }),
        fixtures.seedA,
      ).bytes,
      expect: 'applied',
    },
    {
      name: 'valid-seq-above-2-32',
      description: 'seq 2^32 + 5 needs the 8-byte integer form (0x1b); a decoder that reads it as float64 or truncates fails',
      bytes: signBundle(bundle({ seq: 2 ** 32 + 5 }), fixtures.seedA).bytes,
      expect: 'applied',
    },
    {
      name: 'valid-redelivery',
      description: 'the active bundle delivered again (its ack was lost): acknowledged as applied, state unchanged',
      state: stateBefore({ seq: 2, bundleId: good.id }),
      bytes: good.bytes,
      expect: 'applied',
    },
    { name: 'too-large', description: 'larger than the device limit (here 128 bytes): refused before decoding', state: stateBefore({ maxBundleBytes: 128 }), bytes: good.bytes, expect: 'too_large' },
    { name: 'malformed-not-cbor', description: 'not CBOR at all', bytes: new TextEncoder().encode('{"seq": 2}'), expect: 'malformed' },
    { name: 'malformed-untagged', description: 'a COSE_Sign1 array without tag 18', laxLibraryAccepts: true, bytes: enc(goodParts), expect: 'malformed' },
    { name: 'malformed-wrong-tag', description: 'tag 98 (COSE_Sign) instead of 18', bytes: envelope(goodParts, 98), expect: 'malformed' },
    {
      name: 'malformed-kid-in-unprotected',
      description: 'kid in the unprotected header: valid COSE, but nothing unauthenticated may steer verification here',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(enc(payloadMap(bundle())), { noKid: true, unprotected: new Map([[4, kidOf(pubA)]]) })),
      expect: 'malformed',
    },
    {
      name: 'malformed-indefinite-envelope',
      description: 'the envelope array in indefinite-length form; the signature still verifies (it covers only protected and payload)',
      laxLibraryAccepts: true,
      bytes: concat([0xd2, 0x9f], ...goodParts.map(enc), [0xff]),
      expect: 'malformed',
    },
    { name: 'malformed-trailing-byte', description: 'a valid bundle followed by one extra byte', laxLibraryAccepts: true, bytes: concat(good.bytes, [0x00]), expect: 'malformed' },
    {
      name: 'malformed-non-shortest-integer',
      description: 'seq 2 written as 0x18 0x02 (not the shortest form) in a correctly signed payload',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(rawPayload(baseEntries(bundle()).map(([k, v]) => [k, k === 2 ? new Uint8Array([0x18, 0x02]) : v])))),
      expect: 'malformed',
    },
    {
      name: 'malformed-duplicate-key',
      description: 'the group key (5) twice in a correctly signed payload: which one a parser keeps is anybody\'s guess',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(rawPayload([...baseEntries(bundle()), [5, enc('boilers')]]))),
      expect: 'malformed',
    },
    {
      name: 'malformed-explicit-default',
      description: 'endpoint mode 0 (enforce) written out: a default is omitted (RFC 8949 §4.2.2), so this encoding is not the deterministic one',
      laxLibraryAccepts: true,
      bytes: mutateSigned(bundle(), (m) => {
        const [e] = m.get(6) as Map<number, CborValue>[];
        e.set(4, 0);
      }),
      expect: 'malformed',
    },
    {
      name: 'malformed-short-pin',
      description: 'a 31-byte pin',
      bytes: mutateSigned(bundle(), (m) => {
        const [e] = m.get(6) as Map<number, CborValue>[];
        e.set(3, [fixtures.pins.next, fixtures.pins.current.subarray(0, 31)]);
      }),
      expect: 'malformed',
    },
    { name: 'unsupported-version', description: 'format version 2', bytes: mutateSigned(bundle(), (m) => m.set(1, 2)), expect: 'unsupported_version' },
    {
      name: 'unsupported-alg',
      description: 'alg -7 (ES256) in the protected header over an Ed25519 signature: alg must be bound to the key',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(enc(payloadMap(bundle())), { alg: -7 })),
      expect: 'unsupported_alg',
    },
    { name: 'unknown-key', description: 'signed by a key the device does not trust', seed: fixtures.seedUnknown, bytes: signBundle(bundle(), fixtures.seedUnknown).bytes, expect: 'unknown_key' },
    {
      name: 'bad-signature',
      description: 'one bit of the signature flipped',
      bytes: (() => {
        const b = new Uint8Array(good.bytes);
        b[b.length - 1] ^= 0x01;
        return b;
      })(),
      expect: 'bad_signature',
    },
    {
      name: 'bad-signature-without-external-aad',
      description: 'signed with an empty external_aad: what a verifier that forgets "pinwave/v1" produces and expects',
      bytes: envelope(signRaw(enc(payloadMap(bundle())), { externalAad: new Uint8Array(0) })),
      expect: 'bad_signature',
    },
    { name: 'wrong-group', description: 'a bundle for group "boilers" sent to a thermostat', bytes: signBundle(bundle({ group: 'boilers' }), fixtures.seedA).bytes, expect: 'wrong_group' },
    { name: 'replayed', description: 'seq 1, not above the current seq 1', bytes: signBundle(bundle({ seq: 1 }), fixtures.seedA).bytes, expect: 'replayed' },
    {
      name: 'expired',
      description: 'expired a day ago, beyond the 300 s skew tolerance',
      bytes: signBundle(bundle({ iat: fixtures.now - 31 * DAY, exp: fixtures.now - DAY }), fixtures.seedA).bytes,
      expect: 'expired',
    },
    {
      name: 'not-yet-valid',
      description: 'issued an hour ahead of the device clock, beyond the 300 s skew tolerance',
      bytes: signBundle(bundle({ iat: fixtures.now + 3600, exp: fixtures.now + 30 * DAY }), fixtures.seedA).bytes,
      expect: 'not_yet_valid',
    },
    {
      name: 'weak-pin-set-one-pin',
      description: 'an endpoint with one pin: no backup pin (RFC 7469 §2.5)',
      bytes: mutateSigned(bundle(), (m) => {
        const [e] = m.get(6) as Map<number, CborValue>[];
        e.set(3, [fixtures.pins.next]);
      }),
      expect: 'weak_pin_set',
    },
    {
      name: 'weak-pin-set-same-pin-twice',
      description: 'an endpoint with the same pin twice: one distinct pin',
      bytes: mutateSigned(bundle(), (m) => {
        const [e] = m.get(6) as Map<number, CborValue>[];
        e.set(3, [fixtures.pins.next, fixtures.pins.next]);
      }),
      expect: 'weak_pin_set',
    },
    {
      name: 'stale-key-epoch',
      description: 'a key rotation to epoch 1 on a device already at epoch 1',
      state: stateBefore({ keyEpoch: 1 }),
      bytes: signBundle(bundle({ keyRotation: { epoch: 1, keys: [pubB] } }), fixtures.seedA).bytes,
      expect: 'stale_key_epoch',
    },
  ];
  return list;
}

/** Build every bundle vector, checking each against apply(): a vector that disagrees is a bug here. */
export function bundleVectors(): BundleVector[] {
  return cases().map((c) => {
    const seed = c.seed ?? fixtures.seedA;
    const publicKey = ed.getPublicKey(seed);
    const state = c.state ?? stateBefore();
    const now = c.now ?? fixtures.now;
    const r = apply(state, c.bytes, now);
    const got = r.ok ? 'applied' : r.reason;
    if (got !== c.expect) throw new Error(`vector ${c.name}: expected ${c.expect}, apply() says ${got}${r.ok ? '' : ` (${r.detail})`}`);
    return {
      name: c.name,
      description: c.description,
      ...(c.laxLibraryAccepts && { laxLibraryAccepts: true }),
      signer: { seed: hex(seed), publicKey: hex(publicKey), kid: hex(kidOf(publicKey)) },
      now,
      stateBefore: state,
      bundle: hex(c.bytes),
      expected: r.ok ? { result: 'applied', bundleId: r.id, stateAfter: r.state } : { result: 'rejected', reason: r.reason },
    };
  });
}

export interface MessageVector {
  name: string;
  kind: 'state' | 'ack' | 'telemetry';
  description: string;
  hex: string;
  /** the decoded message, or null where a decoder must refuse the bytes */
  decoded: StateMessage | AnyAck | TelemetryMessage | null;
  /** only a health-checked device sends it (docs/pin-safety.md): a gateway that does not count health checks refuses it */
  healthCheck?: true;
}

/** Vectors for the device's own messages (docs/device-messages.md). */
export function messageVectors(): MessageVector[] {
  const id = hex(sha('a bundle'));
  const state: StateMessage = { seq: 2, bundleId: id, firmware: '1.4.2', model: 'th-100', keyEpoch: 0, time: fixtures.now };
  const fresh: StateMessage = { seq: 0, bundleId: null, firmware: '1.4.2', model: 'th-100', keyEpoch: 0 };
  const applied: AckMessage = { seq: 2, bundleId: id, status: 'applied' };
  const rejected: AckMessage = { seq: 2, bundleId: id, status: 'rejected', reason: 'wrong_group', detail: 'bundle is for group "boilers"' };
  const unreadable: AckMessage = { seq: 0, bundleId: null, status: 'rejected', reason: 'malformed' };
  const telemetry: TelemetryMessage = {
    deviceId: 'th-000042',
    group: 'thermostats',
    firmware: '1.4.2',
    reports: [
      {
        hostname: 'api.example.com',
        port: 443,
        result: 'pin_mismatch',
        servedPins: [b64(sha('served leaf key')), b64(sha('served intermediate key'))],
        knownPins: [b64(fixtures.pins.next), b64(fixtures.pins.current)],
        seq: 2,
        bundleId: id,
        count: 12,
        suppressed: 11,
        firstSeen: fixtures.now - 600,
        lastSeen: fixtures.now,
        counter: 7,
      },
    ],
  };
  const v = (name: string, kind: MessageVector['kind'], description: string, bytes: Uint8Array, decoded: MessageVector['decoded']): MessageVector => ({ name, kind, description, hex: hex(bytes), decoded });
  return [
    v('state-on-bundle', 'state', 'a device running bundle seq 2, with its clock', encodeState(state), state),
    v('state-initial-pins', 'state', 'a device still on its firmware\'s initial pins (seq 0, no bundle id)', encodeState(fresh), fresh),
    v('ack-applied', 'ack', 'bundle applied and persisted', encodeAck(applied), applied),
    v('ack-rejected', 'ack', 'bundle rejected with a reason and a detail', encodeAck(rejected), rejected),
    v('ack-rejected-unreadable', 'ack', 'a bundle the device could not read: seq 0, no id', encodeAck(unreadable), unreadable),
    v('telemetry-pin-failure', 'telemetry', 'twelve handshakes to a server whose keys are not pinned, folded into one report', encodeTelemetry(telemetry), telemetry),
    v('ack-invalid-status', 'ack', 'status 4 does not exist: refused', enc(new Map<number, CborValue>([[1, 2], [2, new Uint8Array(Buffer.from(id, 'hex'))], [3, 4]])), null),
    v('state-invalid-text-keys', 'state', 'text map keys instead of integers: refused', new Uint8Array([0xa1, 0x63, 0x73, 0x65, 0x71, 0x02]), null),
    v('ack-invalid-unsorted-keys', 'ack', 'map keys out of order (3 before 1): not deterministic, refused', concat([0xa3], enc(3), enc(0), enc(1), enc(2), enc(2), enc(new Uint8Array(Buffer.from(id, 'hex')))), null),
    ...healthCheckMessageVectors(),
  ];
}

/**
 * Vectors for what a health-checked device says (docs/pin-safety.md): its `state` during a
 * provisional window, and the `verified`, `reverted` and unverified `applied` acks that close one.
 */
export function healthCheckMessageVectors(): MessageVector[] {
  const id = hex(sha('a bundle being verified'));
  const committedId = hex(sha('the last committed bundle'));
  const api = { host: 'api.example.com', port: 443 };
  const telemetry = { host: 'telemetry.example.com', port: 8883 };
  const verifying: StateMessage = {
    seq: 4,
    bundleId: id,
    firmware: '2.0.0',
    model: 'th-100',
    keyEpoch: 0,
    time: fixtures.now + 5,
    provisional: { previousSeq: 3, previousBundleId: committedId, openedAt: fixtures.now, deadline: fixtures.now + 60, pending: [api] },
  };
  const verified: VerifiedAck = { seq: 4, bundleId: id, status: 'verified', checked: [api, telemetry] };
  const nothingToCheck: VerifiedAck = { seq: 4, bundleId: id, status: 'verified', checked: [] };
  const mismatch: RevertedAck = {
    seq: 4,
    bundleId: id,
    status: 'reverted',
    reason: 'pin_mismatch',
    endpoint: api,
    servedPins: [b64(sha('served leaf key')), b64(sha('served intermediate key'))],
    previousSeq: 3,
    previousBundleId: committedId,
  };
  const silent: RevertedAck = {
    seq: 1,
    bundleId: id,
    status: 'reverted',
    reason: 'unverifiable',
    endpoint: telemetry,
    servedPins: [],
    previousSeq: 0,
    previousBundleId: null,
    detail: 'telemetry.example.com:8883 did not answer in 6 attempts (ETIMEDOUT)',
  };
  const unverified: AckMessage = { seq: 4, bundleId: id, status: 'applied', unverified: [telemetry], detail: 'telemetry.example.com:8883 did not answer in 6 attempts (ETIMEDOUT)' };
  const idBytes = new Uint8Array(Buffer.from(id, 'hex'));
  const ep = new Map<number, CborValue>([[1, 'api.example.com'], [2, 443]]);
  const v = (name: string, kind: MessageVector['kind'], description: string, bytes: Uint8Array, decoded: MessageVector['decoded'], healthCheck = decoded !== null): MessageVector => ({ name, kind, description, hex: hex(bytes), decoded, ...(healthCheck && { healthCheck: true as const }) });
  return [
    v('state-provisional', 'state', 'a device verifying bundle seq 4 under its new pins: seq and id are the provisional bundle, key 7 the committed one it would go back to and what is left to check', encodeState(verifying), verifying),
    v('ack-verified', 'ack', 'every endpoint checked served a chain the new pins accept: committed', encodeAck(verified), verified),
    v('ack-verified-nothing-to-check', 'ack', 'a bundle that enforces no pin set cannot lock the device out: verified with nothing checked', encodeAck(nothingToCheck), nothingToCheck),
    v('ack-reverted-pin-mismatch', 'ack', 'api.example.com:443 served a chain none of the new pins match: the device is back on seq 3', encodeAck(mismatch), mismatch),
    v('ack-reverted-unverifiable', 'ack', 'onUnverifiable "revert": an endpoint never answered within commitTimeoutSeconds; back on the firmware\'s initial pins (seq 0, no id)', encodeAck(silent), silent),
    v('ack-applied-unverified', 'ack', 'onUnverifiable "commit": committed without verifying an endpoint that never answered (an applied ack: every gateway reads it)', encodeAck(unverified), unverified, false),
    v('ack-invalid-verified-without-checked', 'ack', 'a verified ack must list the endpoints checked (key 6): refused', enc(new Map<number, CborValue>([[1, 4], [2, idBytes], [3, 2]])), null),
    v('ack-invalid-reverted-without-endpoint', 'ack', 'a reverted ack must name the endpoint (key 8): refused', enc(new Map<number, CborValue>([[1, 4], [2, idBytes], [3, 3], [4, 'pin_mismatch'], [9, [sha('served')]], [10, 3], [11, null]])), null),
    v('ack-invalid-checked-on-applied', 'ack', 'checked (key 6) belongs to a verified ack, not an applied one: refused', enc(new Map<number, CborValue>([[1, 4], [2, idBytes], [3, 0], [6, [ep]]])), null),
    v('state-invalid-provisional-previous-not-below', 'state', 'a window whose previous seq (7.1) is not below the seq being verified: refused', enc(new Map<number, CborValue>([[1, 4], [2, idBytes], [3, '2.0.0'], [4, 'th-100'], [5, 0], [7, new Map<number, CborValue>([[1, 4], [2, null], [3, fixtures.now], [4, fixtures.now + 60], [5, []]])]])), null),
  ];
}
