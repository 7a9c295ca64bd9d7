// A simulated device as firmware behaves: verify, apply, persist, then ack; the right reason for each
// bundle it refuses; its quirks; and its pin-failure reports (deduplicated, queued while offline).
// Against a bare aedes broker, so the test can hand the device any bytes at all.
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { apply, applyVerified, decodeAnyAck, encodeAck, FORMAT_VERSION, formatPin, generateKeyPair, initialState, signBundle, type AnyAck, type BundleInput, type FirmwareManifest, type TrustState } from '../../firmware-manifest/index.ts';
import type { BundleVector } from '../../firmware-manifest/vectors.ts';
import { BundleVerifier, sharedAck, SimDevice, verifyEach, type DeviceOutcome, type DeviceQuirks } from '../../device-sim/device.ts';
import { DirStateStore, MemoryStateStore, type StateStore } from '../../device-sim/state-store.ts';
import { until } from '../fixtures/gateway.ts';
import { bareBroker, type BareBroker } from './fixtures/sim.ts';

const NOW = Date.UTC(2026, 0, 1);
const now = () => NOW;
const iat = NOW / 1000;
const digest = (label: string) => new Uint8Array(createHash('sha256').update(label).digest());
const key = generateKeyPair();
const manifest: FirmwareManifest = { model: 'th-100', firmware: '1.0.0', trustedKeys: [key.publicPem], pins: [{ host: 'api.example.com', pins: [formatPin(digest('old')), formatPin(digest('backup'))] }] };

function bundle(over: Partial<BundleInput> = {}, seed = key.seed) {
  return signBundle({ seq: 1, iat, exp: iat + 86400, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [digest('new'), digest('backup')] }], ...over }, seed);
}

interface Rig {
  broker: BareBroker;
  device: SimDevice;
  outcomes: DeviceOutcome[];
  store: StateStore;
  acks(): Array<{ seq: number; bundleId: string | null; status: string; reason?: string }>;
}

async function rig(t: Tap.Test, o: { quirks?: DeviceQuirks; state?: Partial<TrustState>; store?: StateStore; verify?: BundleVerifier; delay?: (ms: number) => Promise<void>; clock?: () => number; broker?: BareBroker; id?: string } = {}): Promise<Rig> {
  const broker = o.broker ?? (await bareBroker(t));
  const store = o.store ?? new MemoryStateStore();
  const outcomes: DeviceOutcome[] = [];
  const id = o.id ?? 'th-1';
  const device = new SimDevice(
    { id, token: 'x', url: broker.url, model: 'th-100', firmware: '1.0.0', store, now: o.clock ?? now, quirks: o.quirks, verify: o.verify?.verify, delay: o.delay, onOutcome: (x) => outcomes.push(x) },
    { ...initialState(manifest, 'thermostats'), ...o.state },
  );
  await device.connect();
  t.teardown(() => device.disconnect());
  return { broker, device, outcomes, store, acks: () => broker.heard.ack.filter((a) => a.device === id).map((a) => a.message) };
}

t.test('a device publishes its state on connect, then verifies, applies, persists and acks a bundle', async (t) => {
  const store = new MemoryStateStore();
  const saved: number[] = [];
  const save = store.save.bind(store);
  store.save = (id, s) => (saved.push(s.seq), save(id, s));
  const r = await rig(t, { store });
  await until(() => r.broker.heard.state.length === 1, 2000, 'state');
  t.match(r.broker.heard.state[0].message, { seq: 0, bundleId: null, firmware: '1.0.0', model: 'th-100', keyEpoch: 0, time: iat });
  const b = bundle();
  await r.broker.send('th-1', b.bytes);
  await until(() => r.acks().length === 1, 2000, 'the ack');
  t.same(r.acks()[0], { seq: 1, bundleId: b.id, status: 'applied' });
  t.same(saved, [1], 'persisted once, before the ack');
  t.equal(store.load('th-1')?.bundleId, b.id, 'the new state is in the store');
  t.equal(r.device.state.endpoints[0].pins[0], Buffer.from(digest('new')).toString('base64'));
  t.match(r.outcomes, [{ status: 'applied', seq: 1, acked: true, unchanged: false }]);
  // the same bundle again (an ack was lost): acked again, nothing changes
  await r.broker.send('th-1', b.bytes);
  await until(() => r.acks().length === 2, 2000, 'the second ack');
  t.same(r.acks()[1], { seq: 1, bundleId: b.id, status: 'applied' });
  t.same(saved, [1], 'not persisted again');
  await r.device.disconnect();
  await r.device.connect();
  await until(() => r.broker.heard.state.length === 2, 2000, 'state after reconnecting');
  t.match(r.broker.heard.state[1].message, { seq: 1, bundleId: b.id }, 'state on every connect says what it runs');
});

for (const share of [true, false]) {
  t.test(`a device rejects replayed, misdirected, tampered and oversized bundles with the right reason (${share ? 'shared' : 'per-device'} verification)`, async (t) => {
    const verifier = new BundleVerifier({ share });
    const r = await rig(t, { verify: verifier, state: { maxBundleBytes: 230 } });
    const first = bundle({ seq: 5 });
    await r.broker.send('th-1', first.bytes);
    await until(() => r.acks().length === 1, 2000, 'the first ack');
    t.match(r.acks()[0], { status: 'applied', seq: 5 });
    const before = r.device.state;
    const replayed = bundle({ seq: 5, iat: iat - 60 });
    const older = bundle({ seq: 4 });
    const misdirected = bundle({ seq: 6, group: 'meters' });
    const tampered = new Uint8Array(bundle({ seq: 7 }).bytes);
    tampered[tampered.length - 10] ^= 0x01; // a bit of the signature
    const forged = bundle({ seq: 8 }, generateKeyPair().seed);
    const oversized = bundle({ seq: 9, endpoints: [{ host: 'api.example.com', port: 443, pins: [digest('a'), digest('b'), digest('c')] }] });
    t.ok(oversized.bytes.length > 230 && first.bytes.length <= 230, `oversized is ${oversized.bytes.length} bytes`);
    for (const b of [replayed.bytes, older.bytes, misdirected.bytes, tampered, forged.bytes, oversized.bytes]) await r.broker.send('th-1', b);
    await until(() => r.acks().length === 7, 2000, 'six rejections');
    t.same(
      r.acks().slice(1).map((a) => [a.status, a.reason, a.seq, a.bundleId]),
      [
        ['rejected', 'replayed', 5, replayed.id],
        ['rejected', 'replayed', 4, older.id],
        ['rejected', 'wrong_group', 6, misdirected.id],
        ['rejected', 'bad_signature', 0, null],
        ['rejected', 'unknown_key', 0, null],
        ['rejected', 'too_large', 9, oversized.id],
      ],
      'each reason, and the bundle named where the device could read it',
    );
    t.same(r.device.state, before, 'the state is unchanged');
  });
}

t.test('shared verification gives apply()\'s outcome for every conformance vector, verifying once per bundle and key set', async (t) => {
  const dir = new URL('../../firmware-manifest/vectors/', import.meta.url).pathname;
  const vectors: BundleVector[] = readdirSync(dir).filter((f) => f.startsWith('bundle-') && f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
  const shared = new BundleVerifier();
  for (const v of vectors) {
    const bytes = new Uint8Array(Buffer.from(v.bundle, 'hex'));
    const want = apply(v.stateBefore, bytes, v.now);
    const viaShared = applyVerified(v.stateBefore, shared.verify(bytes, v.stateBefore), v.now);
    const viaEach = applyVerified(v.stateBefore, verifyEach(bytes, v.stateBefore), v.now);
    t.same(viaShared, want, `${v.name}: shared`);
    t.same(viaEach, want, `${v.name}: each`);
  }
  const performed = shared.counters.performed;
  for (const v of vectors) shared.verify(new Uint8Array(Buffer.from(v.bundle, 'hex')), v.stateBefore);
  t.equal(shared.counters.performed, performed, 'the second pass is answered from the cache');
  t.ok(shared.counters.shared >= vectors.length - 1);
  // a device of another key set, or another format version, is verified apart
  const b = bundle();
  const state = initialState(manifest, 'thermostats');
  const v = new BundleVerifier({ cacheSize: 2 });
  v.verify(b.bytes, state);
  v.verify(b.bytes, state);
  v.verify(b.bytes, { ...state, acceptedVersions: [FORMAT_VERSION - 1] });
  t.same(v.counters, { performed: 2, shared: 1 });
  // the same bytes for a device trusting other keys: never the last device's answer
  const stranger = { ...state, trustedKeys: [Buffer.from(generateKeyPair().publicKey).toString('base64')] };
  t.match(v.verify(b.bytes, stranger), { ok: false, reason: 'unknown_key' });
  t.same(v.counters, { performed: 3, shared: 1 });
  t.match(v.verify(b.bytes, state), { ok: true }, 'and back: the first key set still verifies');
  t.match(applyVerified({ ...state, acceptedVersions: [0] }, v.verify(b.bytes, { ...state, acceptedVersions: [0] }), iat), { ok: false, reason: 'unsupported_version' });
  const each = new BundleVerifier({ share: false });
  each.verify(b.bytes, state);
  each.verify(b.bytes, state);
  t.same(each.counters, { performed: 2, shared: 0 });
});

t.test("a wave's acks are encoded once: equal acks share their bytes, any field that differs gets its own", async (t) => {
  const id = 'ab'.repeat(32);
  const reverted = (pin: string): AnyAck => ({ seq: 2, bundleId: id, status: 'reverted', reason: 'pin_mismatch', endpoint: { host: 'api.example.com', port: 443 }, servedPins: [pin], previousSeq: 1, previousBundleId: 'cd'.repeat(32) });
  const served = (label: string) => Buffer.from(digest(label)).toString('base64');
  const a = sharedAck(reverted(served('served')));
  t.equal(sharedAck(reverted(served('served'))), a, 'two devices reverting alike share one encoding');
  t.same(a, Buffer.from(encodeAck(reverted(served('served')))), 'the bytes encodeAck gives');
  const other = sharedAck(reverted(served('another key')));
  t.not(other, a);
  t.same(decodeAnyAck(other), { ok: true, message: reverted(served('another key')) }, 'another served key: its own bytes');
  const verified: AnyAck = { seq: 2, bundleId: id, status: 'verified', checked: [{ host: 'api.example.com', port: 443 }] };
  t.equal(sharedAck(verified), sharedAck({ ...verified, checked: [{ host: 'api.example.com', port: 443 }] }));
  t.same(decodeAnyAck(sharedAck({ ...verified, checked: [] })), { ok: true, message: { ...verified, checked: [] } });
  t.same(decodeAnyAck(sharedAck({ seq: 2, bundleId: id, status: 'applied' })), { ok: true, message: { seq: 2, bundleId: id, status: 'applied' } });
  t.same(decodeAnyAck(sharedAck({ seq: 2, bundleId: id, status: 'applied', unverified: [{ host: 'api.example.com', port: 443 }], detail: 'no answer' })), {
    ok: true,
    message: { seq: 2, bundleId: id, status: 'applied', unverified: [{ host: 'api.example.com', port: 443 }], detail: 'no answer' },
  });
});

t.test('quirks: a flash write that fails rejects with apply_failed; a silent device applies without acking; acks wait their delay', async (t) => {
  const broker = await bareBroker(t);
  const flash = await rig(t, { broker, id: 'flash', quirks: { flashFails: true } });
  const silent = await rig(t, { broker, id: 'silent', quirks: { silent: true } });
  let waited = 0;
  const slow = await rig(t, { broker, id: 'slow', quirks: { ackDelayMs: () => 250 }, delay: async (ms) => void (waited += ms) });
  const b = bundle();
  for (const id of ['flash', 'silent', 'slow']) await broker.send(id, b.bytes);
  await until(() => flash.acks().length === 1 && slow.acks().length === 1 && silent.outcomes.length === 1, 2000, 'the outcomes');
  t.match(flash.acks()[0], { status: 'rejected', reason: 'apply_failed', seq: 1, bundleId: b.id });
  t.equal(flash.device.state.seq, 0, 'the old state stays in force');
  t.equal(silent.device.state.seq, 1, 'the silent device applied');
  t.same(silent.acks(), [], 'and said nothing');
  t.match(silent.outcomes, [{ status: 'applied', acked: false }]);
  t.equal(waited, 250, 'the ack waited its delay');
});

t.test('a skewed clock and a firmware one format version behind reject with their reasons', async (t) => {
  const broker = await bareBroker(t);
  const skewed = await rig(t, { broker, id: 'skewed', quirks: { clockSkewSeconds: -3600 } });
  const within = await rig(t, { broker, id: 'within', quirks: { clockSkewSeconds: -200 } });
  const behind = await rig(t, { broker, id: 'behind', state: { acceptedVersions: [FORMAT_VERSION - 1] } });
  const b = bundle();
  for (const id of ['skewed', 'within', 'behind']) await broker.send(id, b.bytes);
  await until(() => broker.heard.ack.length === 3, 2000, 'three acks');
  t.match(skewed.acks()[0], { status: 'rejected', reason: 'not_yet_valid' });
  t.match(within.acks()[0], { status: 'applied' }, 'a skew within the tolerance is fine');
  t.match(behind.acks()[0], { status: 'rejected', reason: 'unsupported_version' });
  t.equal(broker.heard.state.find((s) => s.device === 'skewed')?.message.time, iat - 3600, 'state carries the device clock');
});

t.test('pin failures are deduplicated, queued while the link is down, and sent when it comes back', async (t) => {
  let clock = NOW;
  const store = new DirStateStore(t.testdir());
  const r = await rig(t, { store, clock: () => clock });
  const served = [Buffer.from(digest('rotated')).toString('base64')];
  const pinned = r.device.state.endpoints[0].pins;
  t.equal(r.device.recordHandshake('api.example.com', 443, [`sha256/${pinned[1]}`]), 'ok', 'a served key that is pinned is fine (the backup here)');
  t.equal(r.device.recordHandshake('other.example.com', 443, served), 'not_pinned');
  t.equal(r.device.pendingReports, 0);
  t.throws(() => r.device.recordHandshake('api.example.com', 443, ['c2hvcnQ=']), TypeError, 'a served pin must be a pin');
  await r.device.disconnect();
  for (let i = 0; i < 12; i++) {
    t.equal(r.device.recordHandshake('API.example.com', 443, served), 'pin_mismatch');
    clock += 1000;
  }
  t.equal(r.device.pendingReports, 1, 'twelve failures of one kind, one report');
  t.equal(await r.device.flushTelemetry(), 0, 'nothing goes while disconnected');
  await r.device.connect();
  await until(() => r.broker.heard.telemetry.length === 1, 2000, 'the report after reconnecting');
  const stateAt = r.broker.heard.state.length;
  t.ok(stateAt >= 2, 'state first, then telemetry');
  const msg = r.broker.heard.telemetry[0].message;
  t.match(msg, { deviceId: 'th-1', group: 'thermostats', firmware: '1.0.0' });
  const first = msg.reports[0];
  t.match(first, { hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: served, knownPins: pinned, seq: 0, bundleId: null, count: 12, suppressed: 11, firstSeen: iat, lastSeen: iat + 11 });
  // repeats within the report interval wait and fold; once it has passed they go, with a higher counter
  r.device.recordHandshake('api.example.com', 443, served);
  r.device.recordHandshake('api.example.com', 443, served);
  t.equal(await r.device.flushTelemetry(), 0, 'held within the interval');
  clock += 3600_000;
  t.equal(await r.device.flushTelemetry(), 1);
  await until(() => r.broker.heard.telemetry.length === 2, 2000, 'the folded repeats');
  const second = r.broker.heard.telemetry[1].message.reports[0];
  t.match(second, { count: 2, suppressed: 1 });
  t.ok(second.counter > first.counter, 'the counter only goes up');
  t.equal(r.device.reportsSent, 2);
  t.equal(store.loadCounter(r.device.id), second.counter, 'and survives a restart');
  const reborn = new SimDevice({ id: 'th-1', token: 'x', url: r.broker.url, model: 'th-100', firmware: '1.0.0', store, now: () => clock }, initialState(manifest, 'thermostats'));
  t.equal(reborn.nextReportCounter(), second.counter + 1);
  // the queue holds so many kinds; past that a new kind is dropped and counted, never an unbounded queue
  for (let i = 0; i < 300; i++) r.device.recordHandshake('api.example.com', 443, [Buffer.from(digest(`k${i}`)).toString('base64')]);
  t.equal(r.device.pendingReports, 256);
  t.equal(r.device.droppedReports, 300 - 256);
  // a report-only pin set reports without failing
  const lenient = await rig(t, { broker: r.broker, id: 'th-2', state: { endpoints: [{ ...r.device.state.endpoints[0], mode: 'report-only' }] } });
  t.equal(lenient.device.recordHandshake('api.example.com', 443, served), 'report_only_mismatch');
  t.equal(await lenient.device.flushTelemetry(), 1);
});

t.test('a device refused at CONNECT rejects connect(), and a dropped link is reported once', async (t) => {
  const broker = await bareBroker(t);
  let lost = 0;
  const d = new SimDevice({ id: 'th-9', token: 'x', url: 'mqtt://127.0.0.1:1', model: 'th-100', firmware: '1.0.0', store: new MemoryStateStore(), now }, initialState(manifest, 'thermostats'));
  await t.rejects(d.connect());
  t.equal(d.connected, false);
  const e = new SimDevice({ id: 'th-8', token: 'x', url: broker.url, model: 'th-100', firmware: '1.0.0', store: new MemoryStateStore(), now, onLinkLost: () => lost++ }, initialState(manifest, 'thermostats'));
  await e.connect();
  // another client with the same id takes over the session: the broker closes the first
  const f = new SimDevice({ id: 'th-8', token: 'x', url: broker.url, model: 'th-100', firmware: '1.0.0', store: new MemoryStateStore(), now }, initialState(manifest, 'thermostats'));
  await f.connect();
  await until(() => lost === 1, 2000, 'the lost link');
  t.equal(e.connected, false);
  e.crash();
  await f.disconnect();
  t.equal(lost, 1, 'crash() and disconnect() are not reported as lost');
});

t.test("a directory store keeps each device's trust state and counter in files of its own, written whole", async (t) => {
  const dir = t.testdir();
  const store = new DirStateStore(join(dir, 'states'));
  const state = initialState(manifest, 'thermostats');
  t.equal(store.load('th-1'), null);
  t.equal(store.loadCounter('th-1'), null);
  store.save('th-1', state);
  store.saveCounter('th-1', 42);
  t.same(new DirStateStore(join(dir, 'states')).load('th-1'), state);
  t.equal(store.loadCounter('th-1'), 42);
  writeFileSync(join(dir, 'states', 'th-2.json'), '{');
  t.throws(() => store.load('th-2'), /device th-2: cannot read its trust state/);
  const memory = new MemoryStateStore();
  memory.save('a', state);
  const copy = memory.load('a')!;
  copy.seq = 9;
  t.equal(memory.load('a')!.seq, 0, 'a restarted device gets a copy');
});
