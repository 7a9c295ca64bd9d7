import t from 'tap';
import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { signBundle, type BundleInput } from '../../firmware-manifest/codec.ts';
import { apply, applyVerified, checkChain, emptyState, wildcardMatches, type TrustState } from '../../firmware-manifest/trust-state.ts';
import { verifyBundle } from '../../firmware-manifest/codec.ts';

const sha = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const seedA = sha('key A');
const seedB = sha('key B');
const pubA = ed.getPublicKey(seedA);
const pubB = ed.getPublicKey(seedB);
const NOW = 1767225600;
const DAY = 86400;
const [p1, p2, p3, p4] = ['one', 'two', 'three', 'four'].map(sha);

const state = (over: Partial<TrustState> = {}): TrustState => ({ ...emptyState('thermostats', [pubA]), ...over });
const bundle = (over: Partial<BundleInput> = {}, seed = seedA) =>
  signBundle({ seq: 5, iat: NOW, exp: NOW + 30 * DAY, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [p1, p2] }], ...over }, seed);

t.test('apply replaces the whole trust state: pins, seq, bundle id, expiry', async (t) => {
  const before = state({ seq: 4, endpoints: [{ host: 'old.example.com', port: 443, pins: [b64(p3), b64(p4)], mode: 'enforce' }] });
  const b = bundle();
  const r = apply(before, b.bytes, NOW);
  if (!r.ok) return t.fail(r.detail);
  t.equal(r.state.seq, 5);
  t.equal(r.state.bundleId, b.id);
  t.equal(r.state.exp, NOW + 30 * DAY);
  t.same(r.state.endpoints, [{ host: 'api.example.com', port: 443, pins: [b64(p1), b64(p2)], mode: 'enforce' }]);
  t.equal(before.seq, 4, 'the state given is not modified');
  t.equal(before.endpoints[0].host, 'old.example.com');
});

t.test('every device-side rejection is named, and leaves the state as it was', async (t) => {
  const s = state({ seq: 5, keyEpoch: 2 });
  const cases: [string, Uint8Array, string][] = [
    ['other group', bundle({ seq: 6, group: 'boilers' }).bytes, 'wrong_group'],
    ['same seq', bundle({ seq: 5 }).bytes, 'replayed'],
    ['older seq', bundle({ seq: 4 }).bytes, 'replayed'],
    ['expired', bundle({ seq: 6, iat: NOW - 10 * DAY, exp: NOW - DAY }).bytes, 'expired'],
    ['from the future', bundle({ seq: 6, iat: NOW + 3600 }).bytes, 'not_yet_valid'],
    ['stale key epoch', bundle({ seq: 6, keyRotation: { epoch: 2, keys: [pubB] } }).bytes, 'stale_key_epoch'],
    ['unknown key', bundle({ seq: 6 }, seedB).bytes, 'unknown_key'],
  ];
  for (const [what, bytes, reason] of cases) {
    const r = apply(s, bytes, NOW);
    t.equal(r.ok ? 'applied' : r.reason, reason, what);
  }
  t.equal(s.seq, 5);
});

t.test('clock skew is tolerated up to the configured seconds, both ways', async (t) => {
  const s = state({ clockSkewSeconds: 120 });
  t.ok(apply(s, bundle({ iat: NOW + 100 }).bytes, NOW).ok, 'iat 100 s ahead is within 120 s');
  t.notOk(apply(s, bundle({ iat: NOW + 200 }).bytes, NOW).ok, 'iat 200 s ahead is not');
  t.ok(apply(s, bundle({ iat: NOW - 1000, exp: NOW - 100 }).bytes, NOW).ok, 'expired 100 s ago is within 120 s');
  t.notOk(apply(s, bundle({ iat: NOW - 1000, exp: NOW - 200 }).bytes, NOW).ok, 'expired 200 s ago is not');
});

t.test('the device limits from the manifest apply: size and format version', async (t) => {
  t.equal((apply(state({ maxBundleBytes: 100 }), bundle().bytes, NOW) as { reason: string }).reason, 'too_large');
  const verified = verifyBundle(bundle().bytes, [pubA]);
  t.equal((applyVerified(state({ acceptedVersions: [2] }), verified, NOW) as { reason: string }).reason, 'unsupported_version');
  t.equal((applyVerified(state({ maxBundleBytes: 100 }), verified, NOW) as { reason: string }).reason, 'too_large', 'a shared verification still gets the per-device size check');
});

t.test('a key rotation replaces the trusted keys; the old key is then refused', async (t) => {
  const r = apply(state(), bundle({ seq: 1, keyRotation: { epoch: 1, keys: [pubB] } }).bytes, NOW);
  if (!r.ok) return t.fail(r.detail);
  t.equal(r.state.keyEpoch, 1);
  t.same(r.state.trustedKeys, [b64(pubB)]);
  const byB = apply(r.state, bundle({ seq: 2 }, seedB).bytes, NOW);
  t.ok(byB.ok, 'signed by the new key: applied');
  const byA = apply(r.state, bundle({ seq: 2 }, seedA).bytes, NOW);
  t.equal(byA.ok ? 'applied' : byA.reason, 'unknown_key', 'signed by the retired key: refused');
});

t.test('the active bundle delivered again is acknowledged without change', async (t) => {
  const b = bundle();
  const first = apply(state(), b.bytes, NOW);
  if (!first.ok) return t.fail(first.detail);
  const again = apply(first.state, b.bytes, NOW + 10);
  if (!again.ok) return t.fail(again.detail);
  t.equal(again.unchanged, true);
  t.equal(again.state, first.state);
});

t.test('checkChain: any served key pinned is ok; none is a mismatch', async (t) => {
  const r = apply(state(), bundle().bytes, NOW);
  if (!r.ok) return t.fail(r.detail);
  t.equal(checkChain(r.state, 'api.example.com', 443, [p3, p2], NOW), 'ok', 'the intermediate matches');
  t.equal(checkChain(r.state, 'API.Example.com', 443, ['sha256/' + b64(p1)], NOW), 'ok', 'host case and sha256/ prefix do not matter');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p3, p4], NOW), 'pin_mismatch');
  t.equal(checkChain(r.state, 'api.example.com', 8443, [p3], NOW), 'not_pinned', 'another port is not pinned');
  t.equal(checkChain(r.state, 'other.example.com', 443, [p3], NOW), 'not_pinned');
});

t.test('checkChain: report-only pin sets report instead of blocking', async (t) => {
  const r = apply(state(), bundle({ endpoints: [{ host: 'api.example.com', port: 443, pins: [p1, p2], mode: 'report-only' }] }).bytes, NOW);
  if (!r.ok) return t.fail(r.detail);
  t.equal(checkChain(r.state, 'api.example.com', 443, [p3], NOW), 'report_only_mismatch');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p1], NOW), 'ok');
});

t.test('checkChain: overlap windows switch pin sets on schedule, and a gap never unpins', async (t) => {
  const r = apply(
    state(),
    bundle({
      endpoints: [
        { host: 'api.example.com', port: 443, pins: [p1, p2], notAfter: NOW + 10 * DAY },
        { host: 'api.example.com', port: 443, pins: [p3, p4], notBefore: NOW + 8 * DAY, notAfter: NOW + 20 * DAY },
      ],
    }).bytes,
    NOW,
  );
  if (!r.ok) return t.fail(r.detail);
  t.equal(checkChain(r.state, 'api.example.com', 443, [p1], NOW), 'ok', 'old key before the overlap');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p3], NOW), 'pin_mismatch', 'new key not yet');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p1], NOW + 9 * DAY), 'ok', 'old key during the overlap');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p3], NOW + 9 * DAY), 'ok', 'new key during the overlap');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p1], NOW + 11 * DAY), 'pin_mismatch', 'old key after its window');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p3], NOW + 25 * DAY), 'ok', 'after every window, all pin sets still apply');
  t.equal(checkChain(r.state, 'api.example.com', 443, [sha('x')], NOW + 25 * DAY), 'pin_mismatch', 'and an unknown key is still refused');
});

t.test('expiry policy: enforce keeps the pins, ca-fallback falls back once expired', async (t) => {
  const enforce = apply(state(), bundle({ exp: NOW + DAY }).bytes, NOW);
  const fallback = apply(state(), bundle({ exp: NOW + DAY, expiryPolicy: 'ca-fallback' }).bytes, NOW);
  if (!enforce.ok || !fallback.ok) return t.fail('not applied');
  t.equal(checkChain(enforce.state, 'api.example.com', 443, [p3], NOW + 2 * DAY), 'pin_mismatch');
  t.equal(checkChain(fallback.state, 'api.example.com', 443, [p3], NOW + 2 * DAY), 'expired_fallback');
  t.equal(checkChain(fallback.state, 'api.example.com', 443, [p3], NOW), 'pin_mismatch', 'not before it expires');
  t.equal(checkChain(fallback.state, 'other.example.com', 443, [p3], NOW + 2 * DAY), 'not_pinned');
});

t.test('wildcards match exactly one label; an exact entry wins over a wildcard', async (t) => {
  t.ok(wildcardMatches('*.example.com', 'a.example.com'));
  t.notOk(wildcardMatches('*.example.com', 'example.com'));
  t.notOk(wildcardMatches('*.example.com', 'a.b.example.com'));
  t.notOk(wildcardMatches('*.example.com', 'aexample.com'));
  t.notOk(wildcardMatches('api.example.com', 'api.example.com'), 'not a wildcard');
  const r = apply(
    state(),
    bundle({ endpoints: [{ host: '*.example.com', port: 443, pins: [p1, p2] }, { host: 'api.example.com', port: 443, pins: [p3, p4] }] }).bytes,
    NOW,
  );
  if (!r.ok) return t.fail(r.detail);
  t.equal(checkChain(r.state, 'www.example.com', 443, [p1], NOW), 'ok');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p1], NOW), 'pin_mismatch', 'the exact entry decides');
  t.equal(checkChain(r.state, 'api.example.com', 443, [p3], NOW), 'ok');
});

t.test('an absolute host name (a trailing dot) is the same host: its pins apply, exact and wildcard', async (t) => {
  const r = apply(state(), bundle({ endpoints: [{ host: 'api.example.com', port: 443, pins: [p1, p2] }, { host: '*.iot.example.com', port: 443, pins: [p3, p4] }] }).bytes, NOW);
  if (!r.ok) return t.fail(r.detail);
  // TLS name checks take "api.example.com." as "api.example.com" (node's checkServerIdentity does):
  // unpinned here, it would pass on CA validation alone with any key.
  t.equal(checkChain(r.state, 'api.example.com.', 443, [p3], NOW), 'pin_mismatch');
  t.equal(checkChain(r.state, 'API.Example.COM.', 443, [p1], NOW), 'ok');
  t.equal(checkChain(r.state, 'dev1.iot.example.com.', 443, [p1], NOW), 'pin_mismatch');
  t.equal(checkChain(r.state, 'other.example.com.', 443, [p1], NOW), 'not_pinned');
});

t.test('the trust state survives a JSON round trip (what a device persists)', async (t) => {
  const r = apply(state(), bundle({ keyRotation: { epoch: 1, keys: [pubA, pubB] } }).bytes, NOW);
  if (!r.ok) return t.fail(r.detail);
  const reloaded = JSON.parse(JSON.stringify(r.state)) as TrustState;
  t.same(reloaded, r.state);
  t.ok(apply(reloaded, bundle({ seq: 6 }, seedB).bytes, NOW).ok);
});
