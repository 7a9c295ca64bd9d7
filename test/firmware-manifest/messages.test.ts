import t from 'tap';
import { encodeCanonical } from '../../firmware-manifest/cbor.ts';
import { decodeAck, decodeAnyAck, decodeAnyState, decodeState, decodeTelemetry, encodeAck, encodeState, encodeTelemetry, type TelemetryMessage } from '../../firmware-manifest/messages.ts';

const id = 'ab'.repeat(32);
const pin = Buffer.alloc(32, 7).toString('base64');

t.test('state, ack and telemetry round-trip', async (t) => {
  const state = { seq: 3, bundleId: id, firmware: '1.0.0', model: 'th-100', keyEpoch: 1, time: 1767225600 };
  t.same(decodeState(encodeState(state)), { ok: true, message: state });
  const fresh = { seq: 0, bundleId: null, firmware: '1.0.0', model: 'th-100', keyEpoch: 0 };
  t.same(decodeState(encodeState(fresh)), { ok: true, message: fresh });
  const ack = { seq: 3, bundleId: id, status: 'rejected' as const, reason: 'apply_failed' as const, detail: 'flash write failed' };
  t.same(decodeAck(encodeAck(ack)), { ok: true, message: ack });
  const tel: TelemetryMessage = {
    deviceId: 'd1', group: 'g', firmware: '1.0.0',
    reports: [{ hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: [pin], knownPins: [pin, pin], seq: 3, bundleId: id, count: 2, suppressed: 1, firstSeen: 1, lastSeen: 2, counter: 9 }],
  };
  t.same(decodeTelemetry(encodeTelemetry(tel)), { ok: true, message: tel });
});

t.test('hostile or wrong messages are refused with a reason naming the field', async (t) => {
  const bad = (r: { ok: boolean; detail?: string }) => (r.ok ? 'accepted' : r.detail);
  t.match(bad(decodeAck(new Uint8Array([0xff]))), /not CBOR|outside the data model/);
  t.match(bad(decodeAck(encodeCanonical([1, 2]))), /must be a CBOR map/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, null], [3, 1]])))), /reason \(key 4\)/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, null], [3, 1], [4, 'because']])))), /reason \(key 4\) must be one of/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, null], [3, 0], [4, 'expired']])))), /only for a rejection/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, new Uint8Array(5)], [3, 0]])))), /32-byte bundle id/);
  t.match(bad(decodeState(encodeCanonical(new Map([[1, -1], [2, null], [3, 'f'], [4, 'm'], [5, 0]])))), /seq \(key 1\)/);
  t.match(bad(decodeState(encodeCanonical(new Map([[1, 1], [2, null], [3, 'f'], [4, 'm'], [5, 0], [9, 1]])))), /unknown key 9/);
  t.match(bad(decodeState(encodeCanonical(new Map([[1, 1], [2, null], [3, 'x'.repeat(300)], [4, 'm'], [5, 0]])))), /firmware \(key 3\)/);
  t.match(bad(decodeTelemetry(encodeCanonical(new Map([[1, 'd'], [2, 'g'], [3, 'f'], [4, []]])))), /reports \(key 4\)/);
});

const pinB = Buffer.alloc(32, 9).toString('base64');
const verifiedAck = { seq: 4, bundleId: id, status: 'verified' as const, checked: [{ host: 'api.example.com', port: 443 }] };
const revertedAck = {
  seq: 4,
  bundleId: id,
  status: 'reverted' as const,
  reason: 'pin_mismatch' as const,
  endpoint: { host: 'api.example.com', port: 443 },
  servedPins: [pin, pinB],
  previousSeq: 3,
  previousBundleId: null,
};
const provisional = { previousSeq: 3, previousBundleId: null, openedAt: 1767225600, deadline: 1767225660, pending: [{ host: 'api.example.com', port: 443 }] };
const verifying = { seq: 4, bundleId: id, firmware: '2.0.0', model: 'th-100', keyEpoch: 0, provisional };

t.test('verified, reverted and unverified-applied acks, and a state with its provisional window, round-trip through the full readers', async (t) => {
  t.same(decodeAnyAck(encodeAck(verifiedAck)), { ok: true, message: verifiedAck });
  t.same(decodeAnyAck(encodeAck({ ...verifiedAck, checked: [] })), { ok: true, message: { ...verifiedAck, checked: [] } }, 'a bundle that enforces nothing is verified with nothing checked');
  t.same(decodeAnyAck(encodeAck(revertedAck)), { ok: true, message: revertedAck });
  const unverifiable = { ...revertedAck, reason: 'unverifiable' as const, servedPins: [], previousBundleId: 'cd'.repeat(32), detail: 'api.example.com:443 did not answer' };
  t.same(decodeAnyAck(encodeAck(unverifiable)), { ok: true, message: unverifiable });
  const unverified = { seq: 4, bundleId: id, status: 'applied' as const, unverified: [{ host: 'api.example.com', port: 443 }], detail: 'did not answer' };
  t.same(decodeAnyAck(encodeAck(unverified)), { ok: true, message: unverified });
  t.same(decodeAck(encodeAck(unverified)), { ok: true, message: unverified }, 'an unverified commit is applied: a reader of applied and rejected counts it');
  t.same(decodeAnyState(encodeState(verifying)), { ok: true, message: verifying });
  t.same(decodeAnyAck(encodeAck({ seq: 3, bundleId: id, status: 'applied' })), decodeAck(encodeAck({ seq: 3, bundleId: id, status: 'applied' })), 'both readers agree on what both read');
});

t.test('a reader that counts applied and rejected only refuses verified, reverted and a provisional state by name', async (t) => {
  const bad = (r: { ok: boolean; detail?: string }) => (r.ok ? 'accepted' : r.detail);
  t.match(bad(decodeAck(encodeAck(verifiedAck))), /status \(key 3\) 2 \(verified\) is the ack of a health-checked device/);
  t.match(bad(decodeAck(encodeAck(revertedAck))), /status \(key 3\) 3 \(reverted\)/);
  t.match(bad(decodeState(encodeState(verifying))), /provisional \(key 7\): the device is still verifying/);
  const { provisional: _, ...committed } = verifying;
  t.same(decodeState(encodeState(committed)), { ok: true, message: committed }, 'the same device once it has committed');
});

t.test('health-check acks and windows with a wrong shape are refused, naming the key', async (t) => {
  const bad = (r: { ok: boolean; detail?: string }) => (r.ok ? 'accepted' : r.detail);
  const raw = (entries: Array<[number, unknown]>) => encodeCanonical(new Map(entries as Array<[number, never]>));
  const idb = new Uint8Array(Buffer.from(id, 'hex'));
  const ep = new Map<number, never>([[1, 'api.example.com' as never], [2, 443 as never]]);
  const p32 = new Uint8Array(32).fill(7);
  const reverted: Array<[number, unknown]> = [[1, 4], [2, idb], [3, 3], [4, 'pin_mismatch'], [8, ep], [9, [p32]], [10, 3], [11, null]];
  t.equal(bad(decodeAnyAck(raw(reverted))), 'accepted', 'the reference shape is accepted');
  const without = (k: number) => reverted.filter(([x]) => x !== k);
  const cases: Array<[string, Array<[number, unknown]>, RegExp]> = [
    ['status 4', [[1, 4], [2, idb], [3, 4]], /status \(key 3\) must be 0 \(applied\), 1 \(rejected\), 2 \(verified\) or 3 \(reverted\)/],
    ['verified without checked', [[1, 4], [2, idb], [3, 2]], /checked \(key 6\) is required/],
    ['verified for no bundle', [[1, 4], [2, null], [3, 2], [6, []]], /bundleId \(key 2\) must name the bundle a verified ack is for/],
    ['verified with a reason', [[1, 4], [2, idb], [3, 2], [4, 'expired'], [6, []]], /reason \(key 4\) is only for a rejection or a revert/],
    ['checked on an applied ack', [[1, 4], [2, idb], [3, 0], [6, []]], /checked \(key 6\) is not part of an applied ack/],
    ['served pins on a rejection', [[1, 4], [2, idb], [3, 1], [4, 'expired'], [9, []]], /servedPins \(key 9\) is not part of a rejected ack/],
    ['an empty unverified list', [[1, 4], [2, idb], [3, 0], [7, []]], /unverified \(key 7\) must be an array of 1 to 64 endpoints/],
    ['a revert reason that does not exist', [...without(4), [4, 'because']], /reason \(key 4\) must be one of pin_mismatch, unverifiable for a revert/],
    ['a rejection reason on a revert', [...without(4), [4, 'expired']], /for a revert/],
    ['a revert without its endpoint', without(8), /endpoint \(key 8\) is required/],
    ['a revert without served pins', without(9), /servedPins \(key 9\) must be an array/],
    ['a pin_mismatch revert with no served pin', [...without(9), [9, []]], /servedPins \(key 9\) must hold the served chain's pins/],
    ['a revert without its previous seq', without(10), /previousSeq \(key 10\) must be an unsigned integer/],
    ['a revert without its previous bundle id', without(11), /previousBundleId \(key 11\) is required/],
    ['a revert to a seq not below', [...without(10), [10, 4]], /previousSeq \(key 10\) must be below seq \(key 1\) 4, got 4/],
    ['port 0', [...without(8), [8, new Map<number, unknown>([[1, 'a'], [2, 0]])]], /endpoint \(key 8\)\.port \(key 2\) must be 1 to 65535/],
    ['an empty host', [...without(8), [8, new Map<number, unknown>([[1, ''], [2, 443]])]], /endpoint \(key 8\)\.host \(key 1\) must not be empty/],
    ['an endpoint with a third key', [...without(8), [8, new Map<number, unknown>([[1, 'a'], [2, 443], [3, 1]])]], /endpoint \(key 8\) has unknown key 3/],
    ['an endpoint that is not a map', [...without(8), [8, ['a', 443]]], /endpoint \(key 8\) must be a map/],
    ['a 31-byte served pin', [...without(9), [9, [new Uint8Array(31)]]], /servedPins \(key 9\)\[0\] must be a 32-byte pin-sha256 digest/],
    ['a revert for no bundle', [...reverted.filter(([x]) => x !== 2), [2, null]], /bundleId \(key 2\) must name the bundle a reverted ack is for/],
    ['key 12', [...reverted, [12, 1]], /ack has unknown key 12/],
  ];
  for (const [what, entries, message] of cases) t.match(bad(decodeAnyAck(raw(entries.sort((a, b) => a[0] - b[0])))), message, what);
  const state = (p: unknown, over: Array<[number, unknown]> = []) => raw([[1, 4], [2, idb], [3, 'f'], [4, 'm'], [5, 0], ...over, [7, p]]);
  const window = (over: Record<number, unknown> = {}) => new Map<number, unknown>(Object.entries({ 1: 3, 2: null, 3: 10, 4: 70, 5: [ep], ...over }).map(([k, v]) => [Number(k), v]));
  t.equal(bad(decodeAnyState(state(window()))), 'accepted');
  t.match(bad(decodeAnyState(state(window({ 1: 4 })))), /provisional\.previousSeq \(key 7\.1\) must be below seq \(key 1\) 4/);
  t.match(bad(decodeAnyState(state(window({ 4: 5 })))), /provisional\.deadline \(key 7\.4\) must not be before openedAt/);
  t.match(bad(decodeAnyState(state(window({ 5: 'x' })))), /provisional\.pending \(key 7\.5\) must be an array/);
  t.match(bad(decodeAnyState(state(window({ 6: 1 })))), /provisional \(key 7\) has unknown key 6/);
  t.match(bad(decodeAnyState(state([1, 2]))), /provisional \(key 7\) must be a map/);
  t.match(bad(decodeAnyState(raw([[1, 4], [2, null], [3, 'f'], [4, 'm'], [5, 0], [7, window()]]))), /bundleId \(key 2\) must name the bundle being verified/);
});
