import t from 'tap';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signBundle } from '../../firmware-manifest/codec.ts';
import { generateKeyPair } from '../../firmware-manifest/keys.ts';
import { bundleFitsManifest, decodeManifest, encodeManifest, formatManifestErrors, initialState, validateManifest, type FirmwareManifest } from '../../firmware-manifest/manifest.ts';
import { apply, checkChain } from '../../firmware-manifest/trust-state.ts';

const pin = (s: string) => 'sha256/' + createHash('sha256').update(s).digest('base64');
const key = generateKeyPair();
const manifest = (over: Partial<FirmwareManifest> = {}): FirmwareManifest => ({
  model: 'th-100',
  firmware: '1.4.2',
  trustedKeys: [key.publicPem],
  pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }],
  ...over,
});

t.test('a good manifest validates and gives the device its first trust state', async (t) => {
  const r = validateManifest(manifest({ clockSkewSeconds: 60, maxBundleBytes: 1024 }));
  if (!r.ok) return t.fail(formatManifestErrors(r.errors));
  const s = initialState(r.manifest, 'thermostats');
  t.equal(s.seq, 0);
  t.equal(s.bundleId, null);
  t.equal(s.group, 'thermostats');
  t.equal(s.clockSkewSeconds, 60);
  t.equal(s.maxBundleBytes, 1024);
  t.same(s.trustedKeys, [Buffer.from(key.publicKey).toString('base64')]);
  t.equal(checkChain(s, 'api.example.com', 443, [pin('a')], 0), 'ok', 'the initial pins are enforced');
  const first = signBundle({ seq: 1, iat: 100, exp: 10_000, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [Buffer.from(pin('c').slice(7), 'base64'), Buffer.from(pin('d').slice(7), 'base64')].map((b) => new Uint8Array(b)) }] }, key.seed);
  t.ok(apply(s, first.bytes, 200).ok, 'and the first bundle signed by its key is applied');
});

t.test('raw base64 keys are accepted as well as SPKI PEM', async (t) => {
  t.ok(validateManifest(manifest({ trustedKeys: [Buffer.from(key.publicKey).toString('base64')] })).ok);
});

t.test('errors carry the JSON path of what is wrong', async (t) => {
  const cases: [unknown, string, RegExp][] = [
    [{ ...manifest(), color: 'red' }, '', /unknown field "color"/],
    [{ ...manifest(), model: undefined }, '', /missing required field "model"/],
    [manifest({ trustedKeys: ['not a key'] }), '/trustedKeys/0', /./],
    [manifest({ pins: [{ host: 'api.example.com', pins: [pin('a'), 'sha256/short'] }] }), '/pins/0/pins/1', /32 bytes|base64/],
    [manifest({ pins: [{ host: 'api.example.com', pins: [pin('a'), pin('a')] }] }), '/pins/0/pins', /2 distinct pins/],
    [manifest({ pins: [{ host: 'api.example.com', pins: [pin('a')] }] }), '/pins/0/pins', /fewer than 2|must NOT have fewer/],
    [manifest({ pins: [{ host: 'API.example.com', pins: [pin('a'), pin('b')] }] }), '/pins/0/host', /pattern/],
    [manifest({ expiryPolicy: 'never' as never }), '/expiryPolicy', /must be one of "enforce", "ca-fallback"/],
    [manifest({ maxBundleBytes: 10 }), '/maxBundleBytes', />= 128/],
    [manifest({ gatewayCa: 'nope' }), '/gatewayCa', /PEM certificate/],
    [manifest({ pins: [{ host: 'a.example.com', pins: [pin('a'), pin('b')] }, { host: 'a.example.com', port: 443, pins: [pin('c'), pin('d')] }] }), '/pins/1', /listed twice/],
  ];
  for (const [value, path, message] of cases) {
    const r = validateManifest(value);
    if (r.ok) { t.fail(`accepted: expected ${path} ${message}`); continue; }
    const hit = r.errors.find((e) => e.path === path);
    t.ok(hit, `an error at "${path}" (got ${formatManifestErrors(r.errors)})`);
    if (hit) t.match(hit.message, message, path);
  }
  t.notOk(validateManifest(manifest({ trustedKeys: [key.privatePem] })).ok, 'a private key is refused in a manifest');
});

t.test('the CBOR form for flash round-trips, with the gateway CA as DER', async (t) => {
  const dir = t.testdir();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-subj', '/CN=pinwave test CA', '-days', '2'], { stdio: 'ignore' });
  const ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const m = manifest({ gatewayUrl: 'mqtts://gateway.example.com:8883', gatewayCa: ca, pins: [{ host: '*.example.com', port: 8883, pins: [pin('a'), pin('b')], mode: 'report-only' }] });
  const bytes = encodeManifest(m);
  const back = decodeManifest(bytes);
  if (!back.ok) return t.fail(formatManifestErrors(back.errors));
  t.equal(back.manifest.model, 'th-100');
  t.equal(back.manifest.gatewayUrl, 'mqtts://gateway.example.com:8883');
  t.equal(back.manifest.gatewayCa?.replace(/\s/g, ''), ca.replace(/\s/g, ''));
  t.same(initialState(back.manifest, 'g'), initialState(m, 'g'), 'the same initial trust state from either form');
  t.notOk(decodeManifest(new Uint8Array([1, 2, 3])).ok);
  t.ok(bytes.length < 700, `${bytes.length} bytes with a certificate`);
});

t.test('pre-flight: a bundle a model cannot accept is named with the reason', async (t) => {
  const signed = signBundle({ seq: 1, iat: 1, exp: 2, group: 'g', endpoints: [{ host: 'a.example.com', port: 443, pins: [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)] }] }, key.seed);
  t.same(bundleFitsManifest(manifest(), signed.bytes, 1), { ok: true });
  t.match(bundleFitsManifest(manifest({ maxBundleBytes: 128 }), signed.bytes, 1), { ok: false, reason: 'too_large' });
  t.match(bundleFitsManifest(manifest({ acceptedVersions: [2] }), signed.bytes, 1), { ok: false, reason: 'unsupported_version' });
  t.match(bundleFitsManifest(manifest({ trustedKeys: [generateKeyPair().publicPem] }), signed.bytes, 1), { ok: false, reason: 'unknown_key' });
  t.same(bundleFitsManifest(manifest({ trustedKeys: [generateKeyPair().publicPem] }), signed.bytes, 1, [key.publicKey]), { ok: true }, 'unless the fleet rotated to that key');
});
