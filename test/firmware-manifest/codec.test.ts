import t from 'tap';
import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { decodeCanonical, encodeCanonical, Tag } from '../../firmware-manifest/cbor.ts';
import { BundleError, bundleIdOf, decodeEnvelope, hex, inspectBundle, kidOf, REJECT_REASONS, sigStructure, signBundle, verifyBundle, type BundleInput } from '../../firmware-manifest/codec.ts';
import { envelope, signRaw } from '../../firmware-manifest/vectors.ts';

const seed = new Uint8Array(createHash('sha256').update('codec test key').digest());
const pub = ed.getPublicKey(seed);
const pin = (label: string) => new Uint8Array(createHash('sha256').update(label).digest());
const NOW = 1767225600;
const input = (over: Partial<BundleInput> = {}): BundleInput => ({
  seq: 1,
  iat: NOW,
  exp: NOW + 86400,
  group: 'thermostats',
  endpoints: [{ host: 'api.example.com', port: 443, pins: [pin('a'), pin('b')] }],
  ...over,
});

t.test('a signed bundle verifies and decodes to what was signed', async (t) => {
  const signed = signBundle(input({ keyRotation: { epoch: 3, keys: [pub] }, expiryPolicy: 'ca-fallback' }), seed);
  const r = verifyBundle(signed.bytes, [pub]);
  if (!r.ok) return t.fail(r.detail);
  t.equal(r.id, signed.id);
  t.equal(r.bundle.seq, 1);
  t.equal(r.bundle.group, 'thermostats');
  t.same(r.bundle.endpoints[0].pins.map(hex), [hex(pin('a')), hex(pin('b'))]);
  t.equal(r.bundle.keyRotation?.epoch, 3);
  t.equal(r.bundle.expiryPolicy, 'ca-fallback');
  t.same(hex(r.kid), hex(kidOf(pub)));
});

t.test('the bundle id is the SHA-256 of the payload, not of the envelope', async (t) => {
  const signed = signBundle(input(), seed);
  const env = decodeEnvelope(signed.bytes);
  if (!env.ok) return t.fail(env.detail);
  t.equal(signed.id, bundleIdOf(env.envelope.payload));
  t.equal(signed.id, createHash('sha256').update(env.envelope.payload).digest('hex'));
});

t.test('signing is deterministic: the same bundle gives the same bytes', async (t) => {
  t.equal(hex(signBundle(input(), seed).bytes), hex(signBundle(input(), seed).bytes));
});

t.test('a one-endpoint two-pin bundle is at most 210 bytes, and each extra pin adds 34', async (t) => {
  const two = signBundle(input(), seed).bytes.length;
  const three = signBundle(input({ endpoints: [{ host: 'api.example.com', port: 443, pins: [pin('a'), pin('b'), pin('c')] }] }), seed).bytes.length;
  t.ok(two <= 210, `one endpoint, two pins: ${two} bytes`);
  t.equal(three - two, 34);
});

t.test('integers of 2^32 and above keep their value (8-byte form, not float64)', async (t) => {
  const signed = signBundle(input({ seq: 2 ** 40 + 1, exp: 2 ** 33 }), seed);
  const r = verifyBundle(signed.bytes, [pub]);
  if (!r.ok) return t.fail(r.detail);
  t.equal(r.bundle.seq, 2 ** 40 + 1);
  t.equal(r.bundle.exp, 2 ** 33);
});

t.test('the encoder refuses invalid content, naming the field', async (t) => {
  t.throws(() => signBundle(input({ endpoints: [{ host: 'api.example.com', port: 443, pins: [pin('a')] }] }), seed), { name: 'BundleError', message: /at least 2 are required/ });
  t.throws(() => signBundle(input({ endpoints: [{ host: 'API.example.com', port: 443, pins: [pin('a'), pin('b')] }] }), seed), /endpoints\[0\]\.host/);
  t.throws(() => signBundle(input({ endpoints: [{ host: 'a.example.com', port: 70000, pins: [pin('a'), pin('b')] }] }), seed), /endpoints\[0\]\.port/);
  t.throws(() => signBundle(input({ endpoints: [{ host: 'a.example.com', port: 443, pins: [pin('a'), new Uint8Array(31)] }] }), seed), /pins\[1\] must be 32 bytes/);
  t.throws(() => signBundle(input({ exp: NOW - 1 }), seed), /exp .* must be after iat/);
  t.throws(() => signBundle(input({ seq: -1 }), seed), /seq must be a non-negative integer/);
  t.throws(() => signBundle(input({ endpoints: [] }), seed), /at least one endpoint/);
  t.throws(() => signBundle(input({ group: '' }), seed), /group/);
  t.throws(() => signBundle(input(), new Uint8Array(31)), BundleError);
});

t.test('each codec-level rejection has its own reason', async (t) => {
  const good = signBundle(input(), seed);
  const cases: [string, Uint8Array, string][] = [
    ['too_large', good.bytes, 'too_large'],
    ['not CBOR', new Uint8Array([0xff, 0xff]), 'malformed'],
    ['untagged', encodeCanonical((decodeCanonical(good.bytes) as { ok: true; value: Tag }).value.value as never), 'malformed'],
    ['alg -7', envelope(signRaw(new Uint8Array(envPayload(good.bytes)), { seed, alg: -7 })), 'unsupported_alg'],
    ['extra protected label', envelope(signRaw(envPayload(good.bytes), { seed, protectedExtra: [[3, 0]] })), 'malformed'],
    ['unknown key', signBundle(input(), pin('other key')).bytes, 'unknown_key'],
  ];
  for (const [what, bytes, reason] of cases) {
    const r = verifyBundle(bytes, [pub], { maxBytes: what === 'too_large' ? 100 : undefined });
    t.equal(r.ok ? 'accepted' : r.reason, reason, what);
  }
  t.equal(REJECT_REASONS.length, new Set(REJECT_REASONS).size, 'reason names are distinct');
});

t.test('a tampered payload or signature is bad_signature', async (t) => {
  const good = signBundle(input(), seed).bytes;
  for (const offset of [good.length - 1, good.length - 64, 60]) {
    const b = new Uint8Array(good);
    b[offset] ^= 0x20;
    const r = verifyBundle(b, [pub]);
    t.equal(r.ok ? 'accepted' : r.reason, 'bad_signature', `byte ${offset} flipped`);
  }
});

t.test('strict RFC 8032: a non-canonical S (S + L) is refused though ZIP-215 would accept it', async (t) => {
  const good = signBundle(input(), seed).bytes;
  const env = decodeEnvelope(good);
  if (!env.ok) return t.fail(env.detail);
  const sig = env.envelope.signature;
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
  const s2 = s + L;
  const forged = new Uint8Array(sig);
  let v = s2;
  for (let i = 0; i < 32; i++) { forged[32 + i] = Number(v & 0xffn); v >>= 8n; }
  t.ok(v === 0n, 'S + L still fits in 32 bytes');
  const parts = [env.envelope.protectedBytes, new Map(), env.envelope.payload, forged];
  const r = verifyBundle(envelope(parts as never), [pub]);
  t.equal(r.ok ? 'accepted' : r.reason, 'bad_signature');
});

t.test('inspect decodes without a key', async (t) => {
  const r = inspectBundle(signBundle(input(), seed).bytes);
  if (!r.ok) return t.fail(r.detail);
  t.equal(r.bundle.group, 'thermostats');
  t.equal(hex(r.envelope.kid), hex(kidOf(pub)));
  t.equal(inspectBundle(new Uint8Array([1, 2, 3])).ok, false);
});

t.test('RFC 8032 test 1 and the COSE WG eddsa-sig-01 example are reproduced byte for byte', async (t) => {
  // RFC 8032 §7.1 TEST 1
  const sk = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
  t.equal(hex(ed.getPublicKey(sk)), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  t.equal(
    hex(ed.sign(new Uint8Array(0), sk)),
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  );
  // cose-wg/Examples eddsa-examples/eddsa-sig-01.json: COSE_Sign1, protected {1: -8, 3: 0},
  // unprotected {4: '11'}, payload "This is the content.", empty external_aad, same key.
  const protectedBytes = encodeCanonical(new Map([[1, -8], [3, 0]]));
  const payload = new TextEncoder().encode('This is the content.');
  const tbs = sigStructure(protectedBytes, payload, new Uint8Array(0));
  t.equal(hex(tbs).toUpperCase(), '846A5369676E61747572653145A2012703004054546869732069732074686520636F6E74656E742E');
  const cose = encodeCanonical(new Tag([protectedBytes, new Map([[4, new TextEncoder().encode('11')]]), payload, ed.sign(tbs, sk)], 18));
  t.equal(
    hex(cose).toUpperCase(),
    'D28445A201270300A10442313154546869732069732074686520636F6E74656E742E58407142FD2FF96D56DB85BEE905A76BA1D0B7321A95C8C4D3607C5781932B7AFB8711497DFA751BF40B58B3BCC32300B1487F3DB34085EEF013BF08F4A44D6FEF0D',
  );
});

t.test('hostile bytes: thousands of random and mutated inputs give only typed rejections', async (t) => {
  const good = signBundle(input({ endpoints: [{ host: 'api.example.com', port: 443, pins: [pin('a'), pin('b')] }, { host: '*.example.org', port: 8883, pins: [pin('c'), pin('d')], mode: 'report-only', notBefore: NOW, notAfter: NOW + 10 }] }), seed).bytes;
  // a small seeded generator: the same inputs every run
  let x = 0x9e3779b9;
  const rand = () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
  const reasons = new Set<string>(REJECT_REASONS);
  let accepted = 0;
  const seen = new Map<string, number>();
  for (let i = 0; i < 6000; i++) {
    let bytes: Uint8Array;
    if (i % 3 === 0) {
      bytes = new Uint8Array(Math.floor(rand() * 300));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
      if (bytes.length > 0 && i % 2 === 0) bytes[0] = 0xd2; // tag 18, to reach deeper
    } else {
      bytes = new Uint8Array(good);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) {
        const at = Math.floor(rand() * bytes.length);
        if (rand() < 0.5) bytes[at] = Math.floor(rand() * 256);
        else bytes[at] ^= 1 << Math.floor(rand() * 8);
      }
      if (rand() < 0.2) bytes = bytes.subarray(0, Math.floor(rand() * bytes.length));
    }
    let r;
    try {
      r = verifyBundle(bytes, [pub]);
    } catch (err) {
      t.fail(`threw on input ${hex(bytes)}: ${(err as Error).message}`);
      return;
    }
    if (r.ok) {
      // a mutation may land where it changes nothing the signature covers only if it is a no-op
      if (hex(bytes) !== hex(good)) accepted++;
      continue;
    }
    if (!reasons.has(r.reason)) t.fail(`unknown reason ${r.reason}`);
    seen.set(r.reason, (seen.get(r.reason) ?? 0) + 1);
  }
  t.equal(accepted, 0, 'no altered bundle is ever accepted');
  t.comment('rejections seen: ' + JSON.stringify(Object.fromEntries(seen)));
  t.ok((seen.get('malformed') ?? 0) > 0 && (seen.get('bad_signature') ?? 0) > 0, 'both parse and signature failures were reached');
});

t.test('deeply nested or huge-length hostile CBOR is refused without a crash', async (t) => {
  const deep = new Uint8Array(4000).fill(0x81); // [[[[...
  t.equal((verifyBundle(deep, [pub], { maxBytes: 8000 }) as { reason: string }).reason, 'malformed');
  const hugeLength = new Uint8Array([0xd2, 0x84, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  t.equal((verifyBundle(hugeLength, [pub]) as { reason: string }).reason, 'malformed');
  t.equal((verifyBundle(new Uint8Array(0), [pub]) as { reason: string }).reason, 'malformed');
  t.equal((verifyBundle('not bytes' as never, [pub]) as { reason: string }).reason, 'malformed');
});

function envPayload(bytes: Uint8Array): Uint8Array {
  const env = decodeEnvelope(bytes);
  if (!env.ok) throw new Error(env.detail);
  return env.envelope.payload;
}
