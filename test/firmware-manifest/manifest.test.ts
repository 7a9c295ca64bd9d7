import t from 'tap';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signBundle, smallestBundleBytes } from '../../firmware-manifest/codec.ts';
import { parsePin } from '../../firmware-manifest/pins.ts';
import { generateKeyPair } from '../../firmware-manifest/keys.ts';
import { bundleFitsManifest, decodeManifest, encodeManifest, formatManifestErrors, healthCheckOf, initialState, manifestWarnings, validateManifest, type FirmwareManifest } from '../../firmware-manifest/manifest.ts';
import { decodeCanonical, encodeCanonical } from '../../firmware-manifest/cbor.ts';
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

t.test('an unknown field no longer hides the other problems: every error is reported at once', async (t) => {
  const r = validateManifest({ ...manifest({ trustedKeys: ['not a key'], pins: [{ host: 'api.example.com', pins: [pin('a'), 'sha256/short'] }], healthCheck: { commitTimeoutSeconds: 30, retrySeconds: 60, onUnverifiable: 'commit' } }), color: 'red' });
  t.notOk(r.ok);
  const paths = r.ok ? [] : r.errors.map((e) => e.path).sort();
  t.same(paths, ['', '/healthCheck/retrySeconds', '/pins/0/pins', '/pins/0/pins/1', '/trustedKeys/0'], r.ok ? '' : formatManifestErrors(r.errors));
  const junk = validateManifest({ model: 7, firmware: '1', trustedKeys: [3, ''], pins: [{ host: 'a.example.com', pins: [1, pin('a')] }, 'nope'], gatewayCa: 5, healthCheck: [] });
  t.notOk(junk.ok, 'a manifest wrong in shape everywhere is refused without a throw');
  t.ok(!junk.ok && junk.errors.every((e) => e.path !== '' || /unknown|missing/.test(e.message)), !junk.ok ? formatManifestErrors(junk.errors) : '');
  t.notOk(validateManifest('a string').ok);
  t.notOk(validateManifest(null).ok);
});

const healthCheck = { endpoints: [{ host: 'api.example.com' }, { host: 'ota.example.com', port: 8443 }], commitTimeoutSeconds: 120, retrySeconds: 15, onUnverifiable: 'revert' as const };

t.test('a manifest may declare a health check, ports defaulting to 443', async (t) => {
  const r = validateManifest(manifest({ healthCheck }));
  if (!r.ok) return t.fail(formatManifestErrors(r.errors));
  t.same(healthCheckOf(r.manifest), { endpoints: [{ host: 'api.example.com', port: 443 }, { host: 'ota.example.com', port: 8443 }], commitTimeoutSeconds: 120, retrySeconds: 15, onUnverifiable: 'revert' });
  t.same(healthCheckOf(manifest({ healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' } })), { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' }, 'without endpoints: the enforced endpoints of each new bundle');
  t.equal(healthCheckOf(manifest()), null, 'none declared: none');
});

t.test('health check errors name the field', async (t) => {
  const cases: [unknown, string, RegExp][] = [
    [{ commitTimeoutSeconds: 60, retrySeconds: 5 }, '/healthCheck', /missing required field "onUnverifiable"/],
    [{ retrySeconds: 5, onUnverifiable: 'commit' }, '/healthCheck', /missing required field "commitTimeoutSeconds"/],
    [{ commitTimeoutSeconds: 60, onUnverifiable: 'commit' }, '/healthCheck', /missing required field "retrySeconds"/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'maybe' }, '/healthCheck/onUnverifiable', /must be one of "commit", "revert"/],
    [{ commitTimeoutSeconds: 0, retrySeconds: 5, onUnverifiable: 'commit' }, '/healthCheck/commitTimeoutSeconds', />= 1/],
    [{ commitTimeoutSeconds: 1.5, retrySeconds: 1, onUnverifiable: 'commit' }, '/healthCheck/commitTimeoutSeconds', /integer/],
    [{ commitTimeoutSeconds: 10, retrySeconds: 30, onUnverifiable: 'commit' }, '/healthCheck/retrySeconds', /must be at most commitTimeoutSeconds \(10\), got 30/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit', endpoints: [] }, '/healthCheck/endpoints', /fewer than 1/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit', endpoints: [{ host: '*.example.com' }] }, '/healthCheck/endpoints/0/host', /cannot be a wildcard/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit', endpoints: [{ host: 'a.example.com' }, { host: 'a.example.com', port: 443 }] }, '/healthCheck/endpoints/1', /a\.example\.com:443 is listed twice/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit', endpoints: [{ host: 'a.example.com', port: 70000 }] }, '/healthCheck/endpoints/0/port', /<= 65535/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit', endpoints: [{ host: 'A.example.com' }] }, '/healthCheck/endpoints/0/host', /pattern/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit', endpoints: [{ host: 'a.example.com', path: '/' }] }, '/healthCheck/endpoints/0', /unknown field "path"/],
    [{ commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit', every: 5 }, '/healthCheck', /unknown field "every"/],
  ];
  for (const [hc, path, message] of cases) {
    const r = validateManifest({ ...manifest(), healthCheck: hc });
    if (r.ok) { t.fail(`accepted: expected ${path} ${message}`); continue; }
    const hit = r.errors.find((e) => e.path === path);
    t.ok(hit, `an error at "${path}" (got ${formatManifestErrors(r.errors)})`);
    if (hit) t.match(hit.message, message, path);
  }
});

t.test('the CBOR flash form carries the health check', async (t) => {
  const m = manifest({ healthCheck });
  const bytes = encodeManifest(m);
  const back = decodeManifest(bytes);
  if (!back.ok) return t.fail(formatManifestErrors(back.errors));
  t.same(back.manifest.healthCheck, { commitTimeoutSeconds: 120, retrySeconds: 15, onUnverifiable: 'revert', endpoints: [{ host: 'api.example.com', port: 443 }, { host: 'ota.example.com', port: 8443 }] }, 'ports written out');
  t.same(healthCheckOf(back.manifest), healthCheckOf(m), 'the same policy from either form');
  t.ok(bytes.length > encodeManifest(manifest()).length, 'present only when declared');
  const noList = decodeManifest(encodeManifest(manifest({ healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' } })));
  t.same(noList.ok && noList.manifest.healthCheck, { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' });
  t.equal(decodeManifest(encodeManifest(manifest())).ok && 'healthCheck' in (decodeManifest(encodeManifest(manifest())) as { manifest: object }).manifest, false, 'a manifest without one decodes without one');
  // Hostile flash forms: each names the health check.
  const withKey11 = (v: unknown) => {
    const d = decodeCanonical(encodeManifest(manifest()));
    if (!d.ok || !(d.value instanceof Map)) throw new Error('fixture');
    d.value.set(11, v as never);
    return decodeManifest(encodeCanonical(d.value));
  };
  const err = (r: ReturnType<typeof decodeManifest>) => (r.ok ? 'accepted' : formatManifestErrors(r.errors));
  t.match(err(withKey11(5)), /\/healthCheck: must be a CBOR map/);
  t.match(err(withKey11(new Map([[1, 60], [2, 5], [3, 0], [9, 1]]))), /\/healthCheck: unknown key 9/);
  t.match(err(withKey11(new Map([[1, 60], [2, 5], [3, 2]]))), /\/healthCheck\/onUnverifiable: must be one of/);
  t.match(err(withKey11(new Map([[1, 60], [2, 90], [3, 1]]))), /\/healthCheck\/retrySeconds: must be at most commitTimeoutSeconds/);
});

t.test('initial pins too large for one bundle the firmware takes are a warning naming the size and the limit, not an error', async (t) => {
  const pins = (n: number) => Array.from({ length: n }, (_, i) => ({ host: `h${i}.example.com`, pins: [pin(`a${i}`), pin(`b${i}`)] }));
  const huge = manifest({ pins: pins(50_000) });
  t.ok(validateManifest(huge).ok, 'still valid: a pushed one is read again at start');
  t.match(manifestWarnings(huge), [{ path: '/pins', message: /^the initial pins \(50000 endpoints\) need a bundle of at least \d+ bytes, above the 4096 bytes this firmware takes \(maxBundleBytes, its default\): a rollback to them could never be signed/ }]);
  t.same(manifestWarnings(manifest()), [], 'a small pin set: none');
  t.match(manifestWarnings(manifest({ pins: pins(60), maxBundleBytes: 1024 })), [{ message: /above the 1024 bytes this firmware takes \(maxBundleBytes\)/ }]);
  t.same(manifestWarnings(manifest({ pins: pins(60), maxBundleBytes: 65536 })), [], 'within a larger maxBundleBytes: none');
  // The size is that of a real signed bundle of those pins, at its shortest.
  const endpoints = pins(40).map((e) => ({ host: e.host, port: 443, pins: e.pins.map((p) => parsePin(p)) }));
  t.equal(smallestBundleBytes(endpoints), signBundle({ seq: 1, iat: 0, exp: 1, group: 'g', endpoints }, new Uint8Array(32)).bytes.length);
});

t.test('an IPv6 endpoint listed twice is named [::1]:443, in the pins and in the health check', async (t) => {
  const key = generateKeyPair().publicPem;
  const pins = ['a', 'b'].map((k) => `sha256/${createHash('sha256').update(k).digest('base64')}`);
  const healthCheck = { commitTimeoutSeconds: 60, retrySeconds: 10, onUnverifiable: 'commit', endpoints: [{ host: '::1' }, { host: '::1', port: 443 }] };
  const r = validateManifest({ model: 'm', firmware: '1', trustedKeys: [key], pins: [{ host: '::1', pins }, { host: '::1', port: 443, pins }], healthCheck });
  t.same(r.ok ? [] : r.errors, [{ path: '/pins/1', message: '[::1]:443 is listed twice' }, { path: '/healthCheck/endpoints/1', message: '[::1]:443 is listed twice' }]);
});
