// Simulated devices with a health check (docs/pin-safety.md), against a real MQTT broker (bare aedes)
// and real local TLS endpoints: a bundle whose pins miss the served key is reverted by the device
// itself and its old pins still reach the endpoint; pins that hold are verified; a shared handshake
// from before the bundle never speaks for it; a dead endpoint is retried and then left to
// onUnverifiable; a device rebooted mid-window resumes from its flash. Window timers run on a manual
// clock.
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkChain, formatPin, generateKeyPair, healthCheckOf, initialState, parsePin, signBundle, type AnyAck, type FirmwareManifest, type ManifestHealthCheck, type RevertedAck } from '../../firmware-manifest/index.ts';
import { SimDevice, type DeviceOutcome, type DeviceQuirks } from '../../device-sim/device.ts';
import { startTlsEndpoint, unservedPin, type TlsEndpoint } from '../../device-sim/endpoints.ts';
import { Fleet } from '../../device-sim/fleet.ts';
import { Handshakes, tlsHandshake, type CallHomeEndpoint } from '../../device-sim/handshakes.ts';
import { DirStateStore, MemoryStateStore, type StateStore } from '../../device-sim/state-store.ts';
import { until } from '../fixtures/gateway.ts';
import { bareBroker, deadPort, ManualTimers, type BareBroker } from './fixtures/sim.ts';

const NOW = Date.UTC(2026, 0, 1);
const iat = NOW / 1000;
const key = generateKeyPair();
const b64 = (pin: string) => Buffer.from(parsePin(pin)).toString('base64');
const check: ManifestHealthCheck = { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' };

function manifestFor(api: TlsEndpoint, healthCheck: ManifestHealthCheck | undefined = check): FirmwareManifest {
  return { model: 'th-100', firmware: '2.0.0', trustedKeys: [key.publicPem], pins: [{ host: 'api.example.com', pins: [api.pins[0], api.backupPin] }], ...(healthCheck && { healthCheck }) };
}

function bundle(pins: string[], seq = 1) {
  return signBundle({ seq, iat, exp: iat + 86400, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: pins.map(parsePin) }] }, key.seed);
}

interface Rig {
  broker: BareBroker;
  timers: ManualTimers;
  handshakes: Handshakes;
  device: SimDevice;
  store: StateStore;
  outcomes: DeviceOutcome[];
  acks(): AnyAck[];
  /** a new SimDevice on the same store: the same flash after a power cycle */
  reboot(): Promise<SimDevice>;
}

async function rig(t: Tap.Test, o: { manifest: FirmwareManifest; dial: () => CallHomeEndpoint; store?: StateStore; quirks?: DeviceQuirks; broker?: BareBroker; id?: string; handshakes?: Handshakes }): Promise<Rig> {
  const broker = o.broker ?? (await bareBroker(t));
  const timers = new ManualTimers();
  const handshakes = o.handshakes ?? new Handshakes({ timeoutMs: 2000 });
  const store = o.store ?? new MemoryStateStore();
  const outcomes: DeviceOutcome[] = [];
  const id = o.id ?? 'th-1';
  const make = (quirks?: DeviceQuirks) => {
    const d = new SimDevice(
      { id, token: 'x', url: broker.url, model: 'th-100', firmware: o.manifest.firmware, store, now: () => NOW + timers.t, quirks, healthCheck: healthCheckOf(o.manifest), handshakes, dial: o.dial, windowTimers: timers.window, onOutcome: (x) => outcomes.push(x) },
      initialState(o.manifest, 'thermostats'),
    );
    t.teardown(() => d.disconnect());
    return d;
  };
  const r: Rig = {
    broker,
    timers,
    handshakes,
    device: make(o.quirks),
    store,
    outcomes,
    acks: () => broker.heard.ack.filter((a) => a.device === id).map((a) => a.message),
    reboot: async () => {
      r.device.crash();
      r.device = make();
      await r.device.connect();
      return r.device;
    },
  };
  await r.device.connect();
  return r;
}

const ackCount = (r: Rig, n: number, what: string) => until(() => r.acks().length >= n, 5000, what);

t.test('a device whose new pins miss the served key reverts by itself, acks reverted with the endpoint and served pins, and still reaches the endpoint', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  const r = await rig(t, { manifest: manifestFor(api), dial: () => api.callHome });
  const bad = bundle([unservedPin(), unservedPin()]);
  await r.broker.send('th-1', bad.bytes);
  await ackCount(r, 1, 'the reverted ack');
  t.same(r.acks()[0], {
    seq: 1,
    bundleId: bad.id,
    status: 'reverted',
    reason: 'pin_mismatch',
    endpoint: { host: 'api.example.com', port: 443 },
    servedPins: [b64(api.pins[0])],
    previousSeq: 0,
    previousBundleId: null,
  } satisfies RevertedAck);
  t.equal(r.device.state.seq, 0, 'back on its previous trust state');
  t.equal(r.store.loadTrust('th-1')?.window, null, 'in flash too');
  t.equal(r.store.load('th-1')?.seq, 0);
  t.match(r.outcomes.map((x) => x.status), ['verifying', 'reverted']);
  // A real handshake, under the pins it holds now: the endpoint is still reachable.
  const served = await tlsHandshake(api.address.host, api.address.port, { servername: 'api.example.com' });
  t.equal(checkChain(r.device.state, 'api.example.com', 443, served, iat), 'ok', 'its active pins hold the key the endpoint serves');
  const [home] = await r.device.callHome([api.callHome], new Handshakes({ share: false }));
  t.equal(home.result, 'ok', 'and its own call-home check passes');
  // The same bundle again, as a gateway that does not understand `reverted` would resend it: the same answer, no new window.
  const performed = r.handshakes.counters.performed;
  await r.broker.send('th-1', bad.bytes);
  await ackCount(r, 2, 'the second reverted ack');
  t.same(r.acks()[1], r.acks()[0]);
  t.equal(r.handshakes.counters.performed, performed, 'no handshake: the bundle is not applied again');
  t.equal(r.device.state.seq, 0);
});

t.test('a device whose new pins hold the served key acks verified, listing the endpoints checked', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  const r = await rig(t, { manifest: manifestFor(api), dial: () => api.callHome });
  const good = bundle([api.pins[0], unservedPin()]);
  await r.broker.send('th-1', good.bytes);
  await ackCount(r, 1, 'the verified ack');
  t.same(r.acks()[0], { seq: 1, bundleId: good.id, status: 'verified', checked: [{ host: 'api.example.com', port: 443 }] });
  t.equal(r.device.state.seq, 1, 'committed');
  t.same(r.store.loadTrust('th-1')?.outcome, { ack: r.acks()[0], delivered: true }, 'the outcome is in flash, marked delivered once the broker had it');
  t.equal(r.store.loadTrust('th-1')?.window, null);
  await r.device.disconnect();
  await r.device.connect();
  await until(() => r.broker.heard.state.length === 2, 5000, 'state after reconnecting');
  t.match(r.broker.heard.state[1].message, { seq: 1, bundleId: good.id });
  t.notOk('provisional' in r.broker.heard.state[1].message, 'no window in its state once committed');
  t.equal(r.acks().length, 1, 'a delivered outcome is not sent again');
});

t.test("a handshake shared from before the bundle never speaks for it: the check sees what the endpoint serves now", async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com', keys: 2 });
  t.teardown(() => api.close());
  // Results shared for a minute: a call-home check now caches key 1.
  const handshakes = new Handshakes({ windowMs: 60_000 });
  const r = await rig(t, { manifest: { ...manifestFor(api), pins: [{ host: 'api.example.com', pins: [api.pins[0], api.pins[1]] }] }, dial: () => api.callHome, handshakes });
  await r.device.callHome([api.callHome], handshakes);
  const cached = await handshakes.get(api.callHome);
  t.same(cached.ok && cached.pins, [b64(api.pins[0])], 'the shared result holds key 1');
  t.equal(handshakes.counters.shared, 1, 'answered from the cache');
  api.rotate(); // the endpoint now serves key 2
  const stale = bundle([api.pins[0], unservedPin()]);
  await r.broker.send('th-1', stale.bytes);
  await ackCount(r, 1, 'the ack');
  t.match(r.acks()[0], { status: 'reverted', servedPins: [b64(api.pins[1])] }, 'pins holding only the old key are judged against the new key, not the cached old one');
  const fresh = bundle([api.pins[1], unservedPin()], 2);
  await r.broker.send('th-1', fresh.bytes);
  await ackCount(r, 2, 'the second ack');
  t.match(r.acks()[1], { status: 'verified', seq: 2 });
  t.equal(handshakes.counters.performed, 3, 'one call-home handshake, then one fresh handshake per window');
});

t.test('an endpoint that is down is retried every retrySeconds, and one that comes up in the window is verified', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  let target: CallHomeEndpoint = { ...api.callHome, connect: { host: '127.0.0.1', port: await deadPort() } };
  const r = await rig(t, { manifest: manifestFor(api), dial: () => target });
  const good = bundle([api.pins[0], unservedPin()]);
  await r.broker.send('th-1', good.bytes);
  await until(() => r.handshakes.counters.failed === 1, 5000, 'the first attempt fails');
  await until(() => r.broker.heard.state.length >= 1, 5000, 'state');
  t.equal(r.acks().length, 0, 'no ack while it cannot tell');
  t.equal(r.device.trust.window?.checks[0].lastError?.includes('ECONNREFUSED'), true, r.device.trust.window?.checks[0].lastError);
  await r.timers.advance(4900);
  t.equal(r.handshakes.counters.performed, 1, 'not before retrySeconds');
  await r.timers.advance(100);
  await until(() => r.handshakes.counters.failed === 2, 5000, 'the retry fails too');
  target = api.callHome; // the endpoint comes up
  await r.timers.advance(5000);
  await ackCount(r, 1, 'the verified ack');
  t.match(r.acks()[0], { status: 'verified', seq: 1 });
  t.equal(r.handshakes.counters.performed, 3);
});

for (const onUnverifiable of ['commit', 'revert'] as const) {
  t.test(`an endpoint down for the whole window is decided by onUnverifiable "${onUnverifiable}"`, async (t) => {
    const api = await startTlsEndpoint({ name: 'api.example.com' });
    t.teardown(() => api.close());
    const down = { ...api.callHome, connect: { host: '127.0.0.1', port: await deadPort() } };
    const r = await rig(t, { manifest: manifestFor(api, { commitTimeoutSeconds: 20, retrySeconds: 5, onUnverifiable }), dial: () => down });
    const b = bundle([api.pins[0], unservedPin()]);
    await r.broker.send('th-1', b.bytes);
    for (let i = 1; i <= 4; i++) {
      await until(() => r.handshakes.counters.failed === i, 5000, `attempt ${i}`);
      await r.timers.advance(5000);
    }
    await ackCount(r, 1, 'the ack at the deadline');
    t.equal(r.handshakes.counters.performed, 4, 'tried at 0, 5, 10 and 15 s of a 20 s window');
    if (onUnverifiable === 'commit') {
      t.match(r.acks()[0], { status: 'applied', seq: 1, bundleId: b.id, unverified: [{ host: 'api.example.com', port: 443 }], detail: /did not answer in 4 attempts.*ECONNREFUSED/ });
      t.equal(r.device.state.seq, 1, 'committed without verification');
    } else {
      t.match(r.acks()[0], { status: 'reverted', reason: 'unverifiable', seq: 1, endpoint: { host: 'api.example.com', port: 443 }, servedPins: [], previousSeq: 0 });
      t.equal(r.device.state.seq, 0, 'back on its previous pins');
    }
    t.equal(r.device.trust.window, null);
  });
}

t.test('a device rebooted mid-window resumes it from flash: its state says it is verifying, then it decides', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  const dir = t.testdir();
  const store = new DirStateStore(dir);
  // Power is cut right after the provisional state reaches flash, before any handshake.
  const r = await rig(t, { manifest: manifestFor(api), dial: () => api.callHome, store, quirks: { crashBeforeAck: true } });
  const bad = bundle([unservedPin(), unservedPin()]);
  await r.broker.send('th-1', bad.bytes);
  await until(() => r.outcomes.some((x) => x.status === 'crashed'), 5000, 'the crash');
  const flash = JSON.parse(readFileSync(join(dir, 'th-1.json'), 'utf8'));
  t.equal(flash.active.seq, 1, 'flash holds the provisional state ...');
  t.equal(flash.window.previous.seq, 0, '... and the previous one beside it');
  t.equal(r.handshakes.counters.performed, 0, 'no handshake ran before the power cut');
  t.equal(r.acks().length, 0);
  const before = r.broker.heard.state.length;
  await r.reboot();
  await until(() => r.broker.heard.state.length > before, 5000, 'state after the reboot');
  t.match(r.broker.heard.state[before].message, { seq: 1, bundleId: bad.id, provisional: { previousSeq: 0, previousBundleId: null, pending: [{ host: 'api.example.com', port: 443 }] } }, 'its state carries the window: not done yet');
  await ackCount(r, 1, 'the reverted ack after the reboot');
  t.match(r.acks()[0], { status: 'reverted', bundleId: bad.id, previousSeq: 0 });
  t.equal(r.device.state.seq, 0);
  t.equal(JSON.parse(readFileSync(join(dir, 'th-1.json'), 'utf8')).window, null);
});

t.test('a device rebooted while a retry is pending asks again at once, and an outcome the broker never had is sent on the next connect', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  let target: CallHomeEndpoint = { ...api.callHome, connect: { host: '127.0.0.1', port: await deadPort() } };
  const store = new MemoryStateStore();
  const r = await rig(t, { manifest: manifestFor(api), dial: () => target, store });
  await r.broker.send('th-1', bundle([api.pins[0], unservedPin()]).bytes);
  await until(() => r.handshakes.counters.failed === 1, 5000, 'the first attempt fails');
  target = api.callHome;
  await r.reboot(); // no timer moved: only the resume can ask again
  await ackCount(r, 1, 'the verified ack');
  t.match(r.acks()[0], { status: 'verified' });
  t.equal(r.handshakes.counters.performed, 2);
  // An outcome left undelivered in flash (the link was down when the window closed) goes out after the next state.
  const trust = store.loadTrust('th-1')!;
  store.saveTrust('th-1', { ...trust, outcome: { ack: trust.outcome!.ack, delivered: false } });
  await r.reboot();
  await ackCount(r, 2, 'the resent ack');
  t.same(r.acks()[1], r.acks()[0]);
  t.equal(store.loadTrust('th-1')?.outcome?.delivered, true);
});

t.test('a fleet with a share of older firmware: those devices ack applied at once and say their firmware; the others verify', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  const broker = await bareBroker(t);
  const timers = new ManualTimers();
  const n = 40;
  const fleet = new Fleet({
    url: broker.url,
    models: [{ manifest: manifestFor(api), withoutHealthCheck: { share: 0.25, firmware: '1.9.0' } }],
    devices: Array.from({ length: n }, (_, i) => ({ id: `th-${i}`, token: 'x', model: 'th-100', group: 'thermostats' })),
    endpoints: [api.callHome],
    callHomeSeconds: 0,
    now: () => NOW + timers.t,
    timers,
    seed: 'older-firmware',
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  const older = fleet.devices.filter((d) => d.healthCheck === null);
  t.ok(older.length > 0 && older.length < n, `${older.length} of ${n} run older firmware`);
  t.equal(fleet.summary().healthChecked, n - older.length);
  await until(() => new Set(broker.heard.state.map((s) => s.device)).size === n, 5000, 'every state');
  const states = new Map(broker.heard.state.map((s) => [s.device, s.message.firmware]));
  for (const d of fleet.devices) t.equal(states.get(d.id), d.healthCheck ? '2.0.0' : '1.9.0', `${d.id} says its firmware`);
  const good = bundle([api.pins[0], unservedPin()]);
  for (const d of fleet.devices) await broker.send(d.id, good.bytes);
  await until(() => broker.heard.ack.length === n, 10_000, 'every ack');
  const status = new Map(broker.heard.ack.map((a) => [a.device, a.message.status]));
  for (const d of fleet.devices) t.equal(status.get(d.id), d.healthCheck ? 'verified' : 'applied', d.id);
  await until(() => fleet.summary().verified === n - older.length, 5000, 'the summary');
  t.match(fleet.summary(), { verifying: 0, verified: n - older.length, acked: older.length, reverted: {} });
  // The same fleet, a bad bundle: the health-checked devices revert, the older ones are left locked out.
  const bad = bundle([unservedPin(), unservedPin()], 2);
  for (const d of fleet.devices) await broker.send(d.id, bad.bytes);
  await until(() => broker.heard.ack.length === 2 * n, 10_000, 'every second ack');
  await until(() => (fleet.summary().reverted['api.example.com:443'] ?? 0) === n - older.length, 5000, 'the reverts in the summary');
  for (const d of fleet.devices) t.equal(d.state.seq, d.healthCheck ? 1 : 2, `${d.id} runs seq ${d.healthCheck ? '1 (reverted)' : '2 (the bad pins)'}`);
});

t.test('the fleet summary names an IPv6 endpoint its devices reverted on as [::1]:443, as every operator-facing text does', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  const broker = await bareBroker(t);
  const timers = new ManualTimers();
  const n = 3;
  const host = '::1';
  const manifest: FirmwareManifest = { model: 'th-100', firmware: '2.0.0', trustedKeys: [key.publicPem], pins: [{ host, pins: [api.pins[0], api.backupPin] }], healthCheck: check };
  const fleet = new Fleet({
    url: broker.url,
    models: [{ manifest }],
    devices: Array.from({ length: n }, (_, i) => ({ id: `th-${i}`, token: 'x', model: 'th-100', group: 'thermostats' })),
    endpoints: [{ ...api.callHome, host }],
    callHomeSeconds: 0,
    now: () => NOW + timers.t,
    timers,
    seed: 'ipv6-revert',
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await until(() => new Set(broker.heard.state.map((s) => s.device)).size === n, 5000, 'every state');
  const bad = signBundle({ seq: 1, iat, exp: iat + 86400, group: 'thermostats', endpoints: [{ host, port: 443, pins: [unservedPin(), unservedPin()].map(parsePin) }] }, key.seed);
  for (const d of fleet.devices) await broker.send(d.id, bad.bytes);
  await until(() => broker.heard.ack.length === n, 10_000, 'every ack');
  t.same(new Set(broker.heard.ack.map((a) => a.message.status)), new Set(['reverted']));
  await until(() => Object.keys(fleet.summary().reverted).length > 0, 5000, 'the reverts in the summary');
  t.same(fleet.summary().reverted, { '[::1]:443': n });
});
