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
import { apply, checkChain, emptyState, type ChainCheck, type TrustedEndpoint, type TrustState } from './trust-state.ts';

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
const sha256 = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
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
  return [protectedBytes, o.unprotected ?? new Map(), payload, signOver(protectedBytes, payload, seed, o.externalAad)];
}

/** An Ed25519 signature over the Sig_structure of exactly these protected bytes and payload. */
function signOver(protectedBytes: Uint8Array, payload: Uint8Array, seed: Uint8Array = fixtures.seedA, externalAad?: Uint8Array): Uint8Array {
  return ed.sign(sigStructure(protectedBytes, payload, externalAad), seed);
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

/** The order of the Ed25519 group (RFC 8032 §5.1): a strict verifier requires S < L. */
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;

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

/** What the bundle vectors are made of: the good bundle, and ways to spoil it while keeping it signed. */
function kit() {
  const good = signBundle(bundle(), fixtures.seedA);
  const payload = enc(payloadMap(bundle()));
  const goodParts = signRaw(payload);
  const [protectedBytes, , , signature] = goodParts as [Uint8Array, unknown, Uint8Array, Uint8Array];
  /** a payload map edited after encoding checks would have refused it, then signed by key A */
  const mutateSigned = (b: PinBundle, edit: (m: Map<number, CborValue>) => void) => {
    const m = payloadMap(b);
    edit(m);
    return envelope(signRaw(enc(m)));
  };
  /** the first endpoint of a payload map */
  const endpoint0 = (m: Map<number, CborValue>) => (m.get(6) as Map<number, CborValue>[])[0];
  /** hand-made protected header bytes, signed over as they are */
  const withProtected = (bytes: Uint8Array) => envelope([bytes, new Map(), payload, signOver(bytes, payload)]);
  return { good, payload, goodParts, protectedBytes, signature, mutateSigned, endpoint0, withProtected };
}

/** Bundles a device must accept: each shows a rule's accepting side. */
function acceptedCases(k: ReturnType<typeof kit>): Case[] {
  return [
    { name: 'valid-basic', description: 'one endpoint, two pins: applied; the pins replace the old ones whole', bytes: k.good.bytes, expect: 'applied' },
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
      state: stateBefore({ seq: 2, bundleId: k.good.id }),
      bytes: k.good.bytes,
      expect: 'applied',
    },
    {
      name: 'valid-exactly-max-bytes',
      description: `a bundle of exactly the device limit (here ${k.good.bytes.length} bytes) is accepted: only a longer one is too_large`,
      state: stateBefore({ maxBundleBytes: k.good.bytes.length }),
      bytes: k.good.bytes,
      expect: 'applied',
    },
  ];
}

/** Rules 1 to 17 of docs/bundle-format.md: the COSE_Sign1 envelope, checked before the signature. */
function envelopeCases(k: ReturnType<typeof kit>): Case[] {
  const kidA = kidOf(pubA);
  const [, , , sig] = k.goodParts;
  return [
    { name: 'too-large', description: 'larger than the device limit (here 128 bytes): refused before decoding', laxLibraryAccepts: true, state: stateBefore({ maxBundleBytes: 128 }), bytes: k.good.bytes, expect: 'too_large' },
    { name: 'malformed-not-cbor', description: 'not CBOR at all', bytes: new TextEncoder().encode('{"seq": 2}'), expect: 'malformed' },
    { name: 'malformed-truncated', description: 'a valid bundle without its last byte: the signature byte string ends early', bytes: k.good.bytes.subarray(0, k.good.bytes.length - 1), expect: 'malformed' },
    { name: 'malformed-trailing-byte', description: 'a valid bundle followed by one extra byte', bytes: concat(k.good.bytes, [0x00]), expect: 'malformed' },
    {
      name: 'malformed-indefinite-envelope',
      description: 'the envelope array in indefinite-length form; the signature still verifies (it covers only protected and payload)',
      laxLibraryAccepts: true,
      bytes: concat([0xd2, 0x9f], ...k.goodParts.map(enc), [0xff]),
      expect: 'malformed',
    },
    {
      name: 'malformed-envelope-long-length',
      description: 'the payload byte string\'s length written in 2 bytes (0x59 0x00 0x7c) instead of 1: not the shortest form; the signature still verifies',
      laxLibraryAccepts: true,
      bytes: concat([0xd2, 0x84], enc(k.protectedBytes), [0xa0, 0x59, k.payload.length >> 8, k.payload.length & 0xff], k.payload, enc(k.signature)),
      expect: 'malformed',
    },
    { name: 'malformed-untagged', description: 'a COSE_Sign1 array without tag 18', laxLibraryAccepts: true, bytes: enc(k.goodParts), expect: 'malformed' },
    { name: 'malformed-wrong-tag', description: 'tag 98 (COSE_Sign) instead of 18', laxLibraryAccepts: true, bytes: envelope(k.goodParts, 98), expect: 'malformed' },
    {
      name: 'malformed-extra-outer-tag',
      description: 'a good bundle wrapped in tag 61 (CWT): the only tag allowed is the outer tag 18',
      laxLibraryAccepts: true,
      bytes: concat([0xd8, 0x3d], k.good.bytes),
      expect: 'malformed',
    },
    {
      name: 'malformed-payload-tagged',
      description: 'the payload byte string under tag 24 (encoded CBOR): no tag but the outer 18; the signature (over the bytes only) still verifies',
      bytes: concat([0xd2, 0x84], enc(k.protectedBytes), [0xa0, 0xd8, 0x18], enc(k.payload), enc(k.signature)),
      expect: 'malformed',
    },
    { name: 'malformed-envelope-three-items', description: 'COSE_Sign1 of 3 items: the signature is missing', bytes: envelope(k.goodParts.slice(0, 3)), expect: 'malformed' },
    {
      name: 'malformed-envelope-five-items',
      description: 'COSE_Sign1 of 5 items: a fifth, empty byte string after a good signature',
      laxLibraryAccepts: true,
      bytes: envelope([...k.goodParts, new Uint8Array(0)]),
      expect: 'malformed',
    },
    {
      name: 'malformed-protected-not-bstr',
      description: 'the protected header as a bare map instead of a byte string that holds one (signed over the map\'s bytes)',
      bytes: envelope([new Map<number, CborValue>([[1, ALG_EDDSA], [4, kidA]]), new Map(), k.payload, signOver(k.protectedBytes, k.payload)]),
      expect: 'malformed',
    },
    {
      name: 'malformed-kid-in-unprotected',
      description: 'kid in the unprotected header: valid COSE, but nothing unauthenticated may steer verification here',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(k.payload, { noKid: true, unprotected: new Map([[4, kidA]]) })),
      expect: 'malformed',
    },
    {
      name: 'malformed-alg-in-unprotected',
      description: 'protected header {4: kid}, alg -8 in the unprotected header: alg must be authenticated',
      bytes: envelope([enc(new Map<number, CborValue>([[4, kidA]])), new Map([[1, ALG_EDDSA]]), k.payload, signOver(enc(new Map<number, CborValue>([[4, kidA]])), k.payload)]),
      expect: 'malformed',
    },
    {
      name: 'malformed-kid-in-both-headers',
      description: 'the kid in the protected header and again in the unprotected one',
      bytes: envelope([k.protectedBytes, new Map([[4, kidA]]), k.payload, sig]),
      expect: 'malformed',
    },
    { name: 'malformed-unprotected-not-map', description: 'the unprotected header as an empty byte string instead of an empty map', bytes: envelope([k.protectedBytes, new Uint8Array(0), k.payload, sig]), expect: 'malformed' },
    {
      name: 'malformed-payload-not-bstr',
      description: 'the payload as a bare map instead of a byte string that holds one (signed over the map\'s bytes)',
      bytes: envelope([k.protectedBytes, new Map(), payloadMap(bundle()), sig]),
      expect: 'malformed',
    },
    { name: 'malformed-payload-nil', description: 'a detached payload (nil), signed over the good payload: detached payloads are not supported', bytes: envelope([k.protectedBytes, new Map(), null, sig]), expect: 'malformed' },
    { name: 'malformed-signature-63-bytes', description: 'the good signature without its last byte', bytes: envelope([k.protectedBytes, new Map(), k.payload, k.signature.subarray(0, 63)]), expect: 'malformed' },
    {
      name: 'malformed-signature-65-bytes',
      description: 'the good signature followed by a zero byte: an Ed25519 call that reads a fixed 64 bytes would accept it',
      bytes: envelope([k.protectedBytes, new Map(), k.payload, concat(k.signature, [0x00])]),
      expect: 'malformed',
    },
    {
      name: 'malformed-protected-unsorted-labels',
      description: 'protected header {4: kid, 1: -8}: labels out of order, not deterministic; signed over these bytes',
      laxLibraryAccepts: true,
      bytes: k.withProtected(concat([0xa2], enc(4), enc(kidA), enc(1), enc(ALG_EDDSA))),
      expect: 'malformed',
    },
    {
      name: 'malformed-protected-non-shortest-alg',
      description: 'protected header with alg -8 written as 0x38 0x07 instead of 0x27; signed over these bytes',
      laxLibraryAccepts: true,
      bytes: k.withProtected(concat([0xa2, 0x01, 0x38, 0x07], enc(4), enc(kidA))),
      expect: 'malformed',
    },
    {
      name: 'malformed-protected-duplicate-label',
      description: 'protected header with alg (label 1) twice: which one a parser keeps is anybody\'s guess',
      bytes: k.withProtected(concat([0xa3], enc(1), enc(ALG_EDDSA), enc(1), enc(ALG_EDDSA), enc(4), enc(kidA))),
      expect: 'malformed',
    },
    {
      name: 'malformed-protected-extra-label',
      description: 'protected header with a content type (label 3: 60, application/cbor) beside alg and kid',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(k.payload, { protectedExtra: [[3, 60]] })),
      expect: 'malformed',
    },
    { name: 'malformed-protected-no-alg', description: 'protected header {4: kid}, no alg', bytes: k.withProtected(enc(new Map<number, CborValue>([[4, kidA]]))), expect: 'malformed' },
    { name: 'malformed-alg-not-integer', description: 'alg as the text "EdDSA" instead of the integer -8', bytes: k.withProtected(enc(new Map<number, CborValue>([[1, 'EdDSA'], [4, kidA]]))), expect: 'malformed' },
    {
      name: 'malformed-protected-no-kid',
      description: 'protected header {1: -8}, no kid: a device must not try its keys in turn',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(k.payload, { noKid: true })),
      expect: 'malformed',
    },
    {
      name: 'malformed-kid-wrong-length',
      description: 'a 16-byte kid whose first 8 bytes are key A\'s kid: a device that compares 8 bytes would take it',
      laxLibraryAccepts: true,
      bytes: k.withProtected(enc(new Map<number, CborValue>([[1, ALG_EDDSA], [4, sha256(pubA).subarray(0, 16)]]))),
      expect: 'malformed',
    },
    {
      name: 'unsupported-alg',
      description: 'alg -7 (ES256) in the protected header over an Ed25519 signature: alg must be bound to the key',
      bytes: envelope(signRaw(k.payload, { alg: -7 })),
      expect: 'unsupported_alg',
    },
  ];
}

/** Rules 18 to 20: the key the kid names, and the signature. */
function signatureCases(k: ReturnType<typeof kit>): Case[] {
  const flipped = new Uint8Array(k.good.bytes);
  flipped[flipped.length - 1] ^= 0x01;
  // S + L is the same scalar mod L: a verifier that does not require S < L (RFC 8032 §5.1.7) accepts it.
  const s = BigInt('0x' + hex(Uint8Array.from(k.signature.subarray(32)).reverse()));
  const unreduced = concat(k.signature.subarray(0, 32), Buffer.from((s + ED25519_L).toString(16).padStart(64, '0'), 'hex').reverse());
  return [
    { name: 'unknown-key', description: 'signed by a key the device does not trust', seed: fixtures.seedUnknown, bytes: signBundle(bundle(), fixtures.seedUnknown).bytes, expect: 'unknown_key' },
    { name: 'bad-signature', description: 'one bit of the signature flipped', bytes: flipped, expect: 'bad_signature' },
    {
      name: 'bad-signature-without-external-aad',
      description: 'signed with an empty external_aad: what a verifier that forgets "pinwave/v1" produces and expects',
      bytes: envelope(signRaw(k.payload, { externalAad: new Uint8Array(0) })),
      expect: 'bad_signature',
    },
    {
      name: 'bad-signature-s-not-reduced',
      description: 'the good signature with L added to S: S >= L is refused by strict RFC 8032 §5.1.7 verification',
      bytes: envelope([k.protectedBytes, new Map(), k.payload, unreduced]),
      expect: 'bad_signature',
    },
  ];
}

/** Rules 21 to 38: the payload, after the signature. Every one is correctly signed by key A. */
function payloadCases(k: ReturnType<typeof kit>): Case[] {
  const b = bundle();
  return [
    {
      name: 'malformed-non-shortest-integer',
      description: 'seq 2 written as 0x18 0x02 (not the shortest form) in a correctly signed payload',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(rawPayload(baseEntries(b).map(([key, v]) => [key, key === 2 ? new Uint8Array([0x18, 0x02]) : v])))),
      expect: 'malformed',
    },
    {
      name: 'malformed-duplicate-key',
      description: 'the group key (5) twice in a correctly signed payload: which one a parser keeps is anybody\'s guess',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(rawPayload([...baseEntries(b), [5, enc('boilers')]]))),
      expect: 'malformed',
    },
    {
      name: 'malformed-payload-float',
      description: 'seq 2 written as the float64 2.0: no floats; a decoder that turns 2.0 into 2 would take it',
      laxLibraryAccepts: true,
      bytes: envelope(signRaw(rawPayload(baseEntries(b).map(([key, v]) => [key, key === 2 ? new Uint8Array([0xfb, 0x40, 0, 0, 0, 0, 0, 0, 0]) : v])))),
      expect: 'malformed',
    },
    { name: 'malformed-payload-no-version', description: 'a payload without its format version (key 1)', bytes: k.mutateSigned(b, (m) => m.delete(1)), expect: 'malformed' },
    { name: 'unsupported-version', description: 'format version 2', bytes: k.mutateSigned(b, (m) => m.set(1, 2)), expect: 'unsupported_version' },
    { name: 'malformed-payload-unknown-key', description: 'a payload with key 9, which version 1 does not define', bytes: k.mutateSigned(b, (m) => m.set(9, 1)), expect: 'malformed' },
    { name: 'malformed-payload-missing-exp', description: 'a payload without its expiry (key 4)', bytes: k.mutateSigned(b, (m) => m.delete(4)), expect: 'malformed' },
    { name: 'malformed-payload-wrong-type', description: 'an endpoint port as the text "443" instead of an integer', bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(2, '443')), expect: 'malformed' },
    {
      name: 'malformed-integer-above-2-53',
      description: 'seq 2^53, one above the largest integer the reference reads exactly (2^53 - 1)',
      bytes: k.mutateSigned(b, (m) => m.set(2, 2n ** 53n)),
      expect: 'malformed',
    },
    {
      name: 'malformed-explicit-default',
      description: 'endpoint mode 0 (enforce) written out: a default is omitted (RFC 8949 §4.2.2), so this encoding is not the deterministic one',
      laxLibraryAccepts: true,
      bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(4, 0)),
      expect: 'malformed',
    },
    { name: 'malformed-exp-not-after-iat', description: 'exp equal to iat: a bundle must expire after it was issued', bytes: k.mutateSigned(b, (m) => m.set(4, b.iat)), expect: 'malformed' },
    { name: 'malformed-group-too-long', description: 'a group name of 65 characters (at most 64)', bytes: k.mutateSigned(b, (m) => m.set(5, 'g'.repeat(65))), expect: 'malformed' },
    { name: 'malformed-no-endpoints', description: 'an empty endpoint list: a bundle is the complete pin set, never empty', bytes: k.mutateSigned(b, (m) => m.set(6, [])), expect: 'malformed' },
    { name: 'malformed-host-uppercase', description: 'host "API.example.com": hosts are lowercase', bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(1, 'API.example.com')), expect: 'malformed' },
    { name: 'malformed-port-zero', description: 'port 0', bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(2, 0)), expect: 'malformed' },
    {
      name: 'malformed-window-reversed',
      description: 'an endpoint whose notAfter (in 5 days) is before its notBefore (in 10 days)',
      bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(5, fixtures.now + 10 * DAY).set(6, fixtures.now + 5 * DAY)),
      expect: 'malformed',
    },
    { name: 'malformed-short-pin', description: 'a 31-byte pin', bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(3, [fixtures.pins.next, fixtures.pins.current.subarray(0, 31)])), expect: 'malformed' },
    { name: 'weak-pin-set-one-pin', description: 'an endpoint with one pin: no backup pin (RFC 7469 §2.5)', bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(3, [fixtures.pins.next])), expect: 'weak_pin_set' },
    {
      name: 'weak-pin-set-same-pin-twice',
      description: 'an endpoint with the same pin twice: one distinct pin',
      bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(3, [fixtures.pins.next, fixtures.pins.next])),
      expect: 'weak_pin_set',
    },
    {
      name: 'malformed-repeated-pin',
      description: 'pins next, current, next: two distinct pins, but one repeated',
      bytes: k.mutateSigned(b, (m) => k.endpoint0(m).set(3, [fixtures.pins.next, fixtures.pins.current, fixtures.pins.next])),
      expect: 'malformed',
    },
    {
      name: 'malformed-rotation-short-key',
      description: 'a key rotation whose key is 31 bytes',
      bytes: k.mutateSigned(b, (m) => m.set(7, new Map<number, CborValue>([[1, 1], [2, [pubB.subarray(0, 31)]]]))),
      expect: 'malformed',
    },
  ];
}

/** Rules 39 to 44: the device's own checks, against its trust state and clock. */
function deviceCases(): Case[] {
  const expiredBundle = signBundle(bundle({ iat: fixtures.now - 31 * DAY, exp: fixtures.now - DAY }), fixtures.seedA);
  const skew = stateBefore().clockSkewSeconds;
  return [
    { name: 'wrong-group', description: 'a bundle for group "boilers" sent to a thermostat', bytes: signBundle(bundle({ group: 'boilers' }), fixtures.seedA).bytes, expect: 'wrong_group' },
    {
      name: 'valid-redelivery-after-expiry',
      description: 'the active bundle delivered again after it expired: still acknowledged as applied, state unchanged (re-delivery comes before the expiry check)',
      state: stateBefore({ seq: 2, bundleId: expiredBundle.id, exp: fixtures.now - DAY }),
      bytes: expiredBundle.bytes,
      expect: 'applied',
    },
    { name: 'replayed', description: 'seq 1, not above the current seq 1', bytes: signBundle(bundle({ seq: 1 }), fixtures.seedA).bytes, expect: 'replayed' },
    { name: 'expired', description: 'expired a day ago, beyond the 300 s skew tolerance', bytes: expiredBundle.bytes, expect: 'expired' },
    {
      name: 'expired-at-skew-limit',
      description: `exp + skew equals the device clock (exp ${skew} s ago): expired`,
      bytes: signBundle(bundle({ iat: fixtures.now - DAY, exp: fixtures.now - skew }), fixtures.seedA).bytes,
      expect: 'expired',
    },
    {
      name: 'valid-expired-within-skew',
      description: `exp ${skew - 1} s ago, within the ${skew} s skew tolerance: applied`,
      bytes: signBundle(bundle({ iat: fixtures.now - DAY, exp: fixtures.now - (skew - 1) }), fixtures.seedA).bytes,
      expect: 'applied',
    },
    {
      name: 'not-yet-valid',
      description: 'issued an hour ahead of the device clock, beyond the 300 s skew tolerance',
      bytes: signBundle(bundle({ iat: fixtures.now + 3600, exp: fixtures.now + 30 * DAY }), fixtures.seedA).bytes,
      expect: 'not_yet_valid',
    },
    {
      name: 'valid-iat-at-skew-limit',
      description: `issued exactly ${skew} s ahead of the device clock: within the skew tolerance, applied`,
      bytes: signBundle(bundle({ iat: fixtures.now + skew }), fixtures.seedA).bytes,
      expect: 'applied',
    },
    {
      name: 'stale-key-epoch',
      description: 'a key rotation to epoch 1 on a device already at epoch 1',
      state: stateBefore({ keyEpoch: 1 }),
      bytes: signBundle(bundle({ keyRotation: { epoch: 1, keys: [pubB] } }), fixtures.seedA).bytes,
      expect: 'stale_key_epoch',
    },
  ];
}

function cases(): Case[] {
  const k = kit();
  return [...acceptedCases(k), ...envelopeCases(k), ...signatureCases(k), ...payloadCases(k), ...deviceCases()];
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

/** A TLS handshake for checkChain (docs/bundle-format.md, pin checking): a trust state, a served chain, the verdict. */
export interface ChainVector {
  name: string;
  description: string;
  /** device clock, seconds since the epoch */
  now: number;
  state: TrustState;
  /** the host name the device connected to, and the port */
  host: string;
  port: number;
  /** pin-sha256 digests of the served certificates' keys, leaf first, base64 (no "sha256/") */
  servedPins: string[];
  expected: ChainCheck;
}

/** Vectors for checkChain, each built from labelled inputs and checked against checkChain() itself. */
export function chainVectors(): ChainVector[] {
  const p = { current: b64(fixtures.pins.current), backup: b64(fixtures.pins.backup), next: b64(fixtures.pins.next) };
  const leaf = b64(sha256(new TextEncoder().encode('served: unpinned leaf key')));
  const api = (over: Partial<TrustedEndpoint> = {}): TrustedEndpoint => ({ host: 'api.example.com', port: 443, pins: [p.current, p.backup], mode: 'enforce', ...over });
  const state = (endpoints: TrustedEndpoint[], over: Partial<TrustState> = {}) => stateBefore({ endpoints, ...over });
  const now = fixtures.now;
  // Two pin sets for api.example.com: the current one until day 7, the next one from day 6 (overlap: days 6 to 7).
  const rollover = [api({ notAfter: now + 7 * DAY }), api({ pins: [p.next, p.backup], notBefore: now + 6 * DAY })];
  // Two windows with a gap between them: days 1 to 2, then from day 4.
  const gapped = [api({ notBefore: now + DAY, notAfter: now + 2 * DAY }), api({ pins: [p.next, p.backup], notBefore: now + 4 * DAY })];
  const wildcard = [api({ host: '*.example.com', pins: [p.next, p.backup] })];
  const list: ChainVector[] = [];
  const v = (name: string, description: string, s: TrustState, host: string, servedPins: string[], expected: ChainCheck, at = now, port = 443) =>
    list.push({ name, description, now: at, state: s, host, port, servedPins, expected });

  v('pin-match-leaf', 'the served leaf key is pinned: ok', state([api()]), 'api.example.com', [p.current, leaf], 'ok');
  v('pin-match-intermediate', 'only the intermediate\'s key is pinned: any key of the served chain may match (RFC 7469 §2.6)', state([api()]), 'api.example.com', [leaf, p.backup], 'ok');
  v('pin-mismatch', 'no served key is pinned and the pin set is enforced: drop the connection', state([api()]), 'api.example.com', [leaf, p.next], 'pin_mismatch');
  v('report-only-mismatch', 'no served key is pinned and the pin set is report-only: connect, and report it', state([api({ mode: 'report-only' })]), 'api.example.com', [leaf], 'report_only_mismatch');
  v('mixed-modes-mismatch', 'a report-only and an enforced pin set for one endpoint, neither matching: enforced wins', state([api({ mode: 'report-only' }), api({ pins: [p.next, p.backup] })]), 'api.example.com', [leaf], 'pin_mismatch');
  v('not-pinned-host', 'a host no pin set covers: ordinary CA validation', state([api()]), 'other.example.net', [leaf], 'not_pinned');
  v('not-pinned-port', 'the pinned host on another port: not pinned (an entry is a host and a port)', state([api()]), 'api.example.com', [leaf], 'not_pinned', now, 8443);
  v('host-case-insensitive', 'the host name is lowercased before matching: API.Example.COM is api.example.com', state([api()]), 'API.Example.COM', [leaf], 'pin_mismatch');
  v('wildcard-one-label', '*.example.com covers a.example.com', state(wildcard), 'a.example.com', [p.next], 'ok');
  v('wildcard-not-apex', '*.example.com does not cover example.com (RFC 6125 §6.4.3)', state(wildcard), 'example.com', [leaf], 'not_pinned');
  v('wildcard-not-two-labels', '*.example.com does not cover a.b.example.com: one label only', state(wildcard), 'a.b.example.com', [leaf], 'not_pinned');
  v('exact-beats-wildcard', 'an exact entry and a wildcard both cover api.example.com: only the exact one applies, so a key pinned by the wildcard alone is a mismatch', state([...wildcard, api()]), 'api.example.com', [p.next], 'pin_mismatch');
  v('expired-ca-fallback', 'the active bundle expired and its policy is ca-fallback: ordinary CA validation', state([api()], { exp: now - DAY, expiryPolicy: 'ca-fallback' }), 'api.example.com', [leaf], 'expired_fallback');
  v('expired-ca-fallback-at-exp', 'now equals exp, policy ca-fallback: expired (no skew here)', state([api()], { exp: now, expiryPolicy: 'ca-fallback' }), 'api.example.com', [leaf], 'expired_fallback');
  v('not-expired-ca-fallback', 'one second before exp, policy ca-fallback: the pins still apply', state([api()], { exp: now + 1, expiryPolicy: 'ca-fallback' }), 'api.example.com', [leaf], 'pin_mismatch');
  v('expired-enforce', 'the active bundle expired and its policy is enforce (the default): its pins keep being enforced', state([api()], { exp: now - DAY, expiryPolicy: 'enforce' }), 'api.example.com', [leaf], 'pin_mismatch');
  v('expired-enforce-match', 'an expired bundle under policy enforce still lets a pinned key through', state([api()], { exp: now - DAY, expiryPolicy: 'enforce' }), 'api.example.com', [p.current], 'ok');
  v('initial-pins-never-expire', 'the firmware\'s initial pins (no exp) with policy ca-fallback: never expired, the pins apply', state([api()], { seq: 0, bundleId: null, exp: null, expiryPolicy: 'ca-fallback' }), 'api.example.com', [leaf], 'pin_mismatch');
  v('expired-fallback-unpinned-host', 'an expired ca-fallback bundle, a host it does not cover: not pinned (no entry comes first)', state([api()], { exp: now - DAY, expiryPolicy: 'ca-fallback' }), 'other.example.net', [leaf], 'not_pinned');
  v('overlap-old-key', 'inside the overlap window (day 6.5) the old pin set is in force', state(rollover), 'api.example.com', [p.current], 'ok', now + 6.5 * DAY);
  v('overlap-new-key', 'inside the overlap window (day 6.5) the new pin set is in force too', state(rollover), 'api.example.com', [p.next], 'ok', now + 6.5 * DAY);
  v('window-before-new', 'before the new set\'s notBefore (day 1) only the old set is in force: the new key is a mismatch', state(rollover), 'api.example.com', [p.next], 'pin_mismatch', now + DAY);
  v('window-old-ended', 'at the old set\'s notAfter (day 7) it is no longer in force: the old key is a mismatch', state(rollover), 'api.example.com', [p.current], 'pin_mismatch', now + 7 * DAY);
  v('window-not-before-inclusive', 'at the new set\'s notBefore (day 6) it is in force', state(rollover), 'api.example.com', [p.next], 'ok', now + 6 * DAY);
  v('window-gap', 'in a gap between windows (day 3) every pin set of the endpoint applies: the host never becomes unpinned', state(gapped), 'api.example.com', [p.current], 'ok', now + 3 * DAY);
  v('window-gap-mismatch', 'in a gap (day 3), a key in neither set is a mismatch', state(gapped), 'api.example.com', [leaf], 'pin_mismatch', now + 3 * DAY);
  v('window-before-first', 'before the first window (now) every pin set applies', state(gapped), 'api.example.com', [p.next], 'ok');
  for (const c of list) {
    const got = checkChain(c.state, c.host, c.port, c.servedPins, c.now);
    if (got !== c.expected) throw new Error(`chain vector ${c.name}: expected ${c.expected}, checkChain() says ${got}`);
  }
  return list;
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
