// The fleet runner against the real gateway, on a manual clock: ramped connects, offline periods,
// reconnect storms, crashes between apply and ack, and call-home pin checks over real TLS that hold a
// rollout of wrong pins.
import t from 'tap';
import { harness, until, type Harness } from '../fixtures/gateway.ts';
import { Fleet, Scheduler, type FleetModel, type FleetOptions } from '../../device-sim/fleet.ts';
import { MemoryStateStore } from '../../device-sim/state-store.ts';
import { startTlsEndpoint } from '../../device-sim/endpoints.ts';
import type { Behaviours } from '../../device-sim/behaviours.ts';
import { ManualTimers } from './fixtures/sim.ts';
import { newPins } from '../fixtures/gateway.ts';

t.test('the scheduler runs tasks in time order on one timer, first in first out at equal times', async (t) => {
  const timers = new ManualTimers();
  // The timers armed and neither fired nor cleared, at every moment: one, however many tasks wait.
  const live = new Set<unknown>();
  let most = 0;
  let armed = 0;
  const { setTimeout, clearTimeout } = timers;
  timers.setTimeout = (fn, ms) => {
    const handle: unknown = setTimeout(() => (live.delete(handle), fn()), ms);
    live.add(handle);
    armed++;
    most = Math.max(most, live.size);
    return handle;
  };
  timers.clearTimeout = (h) => (live.delete(h), clearTimeout(h));
  const s = new Scheduler(timers);
  const ran: string[] = [];
  s.at(300, () => ran.push('c'));
  s.at(100, () => ran.push('a1'));
  s.at(100, () => ran.push('a2'));
  const cancelled = s.at(200, () => ran.push('never'));
  s.after(250, () => ran.push('b'));
  s.cancel(cancelled);
  s.cancel(null);
  t.equal(s.size, 5);
  const slept = s.delay(400).then(() => ran.push('slept'));
  await timers.advance(1000);
  await slept;
  t.same(ran, ['a1', 'a2', 'b', 'c', 'slept']);
  t.equal(most, 1, `one timer armed at a time (${armed} arms for 6 tasks, at most ${most} at once)`);
  t.equal(live.size, 0, 'and none once every task has run');
  s.at(timers.t + 3e9, () => ran.push('far')); // past what one Node timeout can hold
  await timers.advance(3e9);
  t.equal(ran.at(-1), 'far');
  s.at(5000, () => ran.push('cleared'));
  s.clear();
  await timers.advance(10_000);
  t.equal(ran.includes('cleared'), false);
  t.equal(s.size, 0);
});

async function setup(t: Tap.Test, n: number, behaviours: Behaviours, over: Partial<FleetOptions> = {}) {
  const h = await harness(t);
  const timers = new ManualTimers();
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `th-${String(i).padStart(3, '0')}`, group: 'thermostats', model: 'th-100' })));
  const models: FleetModel[] = [{ manifest: h.manifest, behaviours }];
  const fleet = new Fleet({ url: () => h.gw.mqttUrl, models, devices: devices.map((d) => ({ ...d, group: 'thermostats', model: 'th-100' })), now: h.clock.now, timers, seed: 'fleet-test', callHomeSeconds: 0, ...over });
  t.teardown(() => fleet.stop());
  return { h, timers, fleet };
}

/** Until the gateway and the devices both see n connected (a device's connect() ends after SUBACK and its state). */
const connected = (h: Harness, fleet: Fleet, n: number, what: string) => until(() => h.gw.connectedCount() === n && fleet.summary().connected === n, 5000, what);

t.test('connects are ramped, N per tick', async (t) => {
  const { h, timers, fleet } = await setup(t, 12, {}, { ramp: { perTick: 5, tickMs: 100 } });
  let done = false;
  const starting = fleet.start().then(() => (done = true));
  await connected(h, fleet, 5, 'the first tick');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(h.gw.connectedCount(), 5, 'the next tick waits for its time');
  await until(async () => (await timers.advance(10), done), 5000, 'the ramp');
  await starting;
  await connected(h, fleet, 12, 'the last tick');
  t.ok(timers.t >= 200, `two ticks waited (${timers.t} ms)`);
  t.equal(fleet.summary().connects.ok, 12);
  await t.rejects(fleet.start(), /started already/);
});

t.test('ramp.perSecond starts connects at that rate, never more than perTick in flight; each latency is recorded', async (t) => {
  // 20 a second: one connect every 50 ms of the fleet's clock, which moves only when told
  const { h, timers, fleet } = await setup(t, 6, {}, { ramp: { perSecond: 20, perTick: 2 } });
  let done = false;
  const starting = fleet.start().then(() => (done = true));
  await connected(h, fleet, 1, 'the first connect');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(h.gw.connectedCount(), 1, 'the second waits for its time');
  await timers.advance(50);
  await connected(h, fleet, 2, 'the second, 50 ms on');
  await until(async () => (await timers.advance(10), done), 5000, 'the ramp');
  await starting;
  t.ok(timers.t >= 250, `five steps of 50 ms waited (${timers.t} ms)`);
  t.equal(fleet.summary().latency.connect.reduce((a, b) => a + b, 0), 6, 'one connect latency per device');
  await t.rejects(new Fleet({ url: 'mqtt://127.0.0.1:1', models: [], devices: [], ramp: { perSecond: 0 } }).start(), /perSecond/);
});

t.test('devices offline for a period reconnect after it; a reconnect storm drops and brings back its share', async (t) => {
  const { h, timers, fleet } = await setup(t, 20, { offlineRate: 0.5, offlineAtSeconds: 0, offlineForSeconds: 30, reconnectStorm: { atSeconds: 60, rate: 0.5, spreadMs: 1000 } });
  const dark = fleet.devices.filter((d) => fleet.plan(d.id)!.offline).length;
  const storm = fleet.devices.filter((d) => fleet.plan(d.id)!.storm).length;
  t.ok(dark > 0 && dark < 20 && storm > 0 && storm < 20, `${dark} dark from the start, ${storm} in the storm`);
  await fleet.start();
  await connected(h, fleet, 20 - dark, 'the devices that start online');
  t.equal(fleet.summary().offline, dark);
  await timers.advance(30_000);
  await connected(h, fleet, 20, 'the dark devices, back after their period');
  t.equal(fleet.summary().offline, 0);
  await timers.advance(30_000);
  await connected(h, fleet, 20 - storm, 'the storm');
  await timers.advance(1000);
  await connected(h, fleet, 20, 'everyone back within the spread');
  t.equal(fleet.storm(1), 20, 'a storm on demand');
  await connected(h, fleet, 0, 'all dropped at once');
  await timers.advance(0);
  await connected(h, fleet, 20, 'and back');
});

t.test('a device goes dark mid-run for its period; a gateway restart is ridden out with reconnects and backoff', async (t) => {
  const { h, timers, fleet } = await setup(t, 10, { offlineRate: 0.5, offlineAtSeconds: 10, offlineForSeconds: 20 });
  const dark = fleet.devices.filter((d) => fleet.plan(d.id)!.offline).length;
  t.ok(dark > 0 && dark < 10, `${dark} go dark at 10 s`);
  t.equal(fleet.device('th-000'), fleet.devices[0]);
  await fleet.start();
  await connected(h, fleet, 10, 'everyone at the start');
  await timers.advance(10_000);
  await connected(h, fleet, 10 - dark, 'the dark period');
  await timers.advance(20_000);
  await connected(h, fleet, 10, 'back after it');
  await h.restart(); // a new port: the url function gives it at each connect
  t.equal(h.gw.connectedCount(), 0);
  await until(async () => (await timers.advance(500), fleet.summary().connected === 10), 5000, 'every device back through its backoff');
  t.equal(fleet.summary().connects.ok, 10 + dark + 10);
  t.equal(h.gw.connectedCount(), 10);
});

t.test('a crash between apply and ack is healed after the reboot, with no apply lost or repeated', async (t) => {
  const store = new MemoryStateStore();
  let saves = 0;
  const save = store.save.bind(store);
  store.save = (id, s) => (saves++, save(id, s));
  const { h, timers, fleet } = await setup(t, 10, { crashRate: 1, rebootMs: 5000 }, { store });
  await fleet.start();
  await connected(h, fleet, 10, 'everyone');
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(() => fleet.summary().crashed === 10, 5000, 'ten crashes');
  t.equal((await h.gw.getRollout(rollout.id)).waves[0].applied, 0, 'no ack reached the gateway');
  t.equal(fleet.summary().offline, 10, 'rebooting');
  await timers.advance(5000);
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 10, 5000, 'reconciliation by state');
  await fleet.idle();
  t.equal(saves, 10, 'each device persisted the bundle once');
  t.same(fleet.summary().seqs, { '1': 10 });
});

t.test('call-home checks over real TLS: healthy pins report nothing; a rollout of wrong pins is held by real pin failures', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com', keys: 2 });
  t.teardown(() => api.close());
  const h = await harness(t, { manifests: [] });
  const manifest = { model: 'th-100', firmware: '1.0.0', trustedKeys: [h.gw.signing!.publicPem], pins: [{ host: 'api.example.com', pins: [api.pins[0], api.backupPin] }] };
  h.gw.addManifest(manifest);
  const timers = new ManualTimers();
  const n = 20;
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `th-${i}`, group: 'thermostats', model: 'th-100' })));
  const fleet = new Fleet({
    url: () => h.gw.mqttUrl,
    models: [{ manifest }],
    devices: devices.map((d) => ({ ...d, group: 'thermostats', model: 'th-100' })),
    now: h.clock.now,
    timers,
    endpoints: [api.callHome],
    callHomeSeconds: 60,
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await connected(h, fleet, n, 'everyone');
  await timers.advance(60_000);
  await until(() => fleet.summary().handshakes.performed + fleet.summary().handshakes.shared === n, 5000, 'every device checked');
  t.match(fleet.summary(), { failing: 0, pinFailures: { observed: 0, reported: 0 } }, 'the served key is pinned');
  t.ok(fleet.summary().handshakes.performed < n, `handshakes shared: ${fleet.summary().handshakes.performed} for ${n} checks`);
  // a bundle that pins a key the endpoint does not serve
  const wrong = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [api.pins[1], api.backupPin] }] }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: wrong.id, target: { group: 'thermostats' }, waves: [{ size: '50%', minDevices: 3 }, { size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).state === 'held', 5000, 'the hold');
  const r = await h.gw.getRollout(rollout.id);
  t.equal(r.decisions.find((d) => d.action === 'hold')?.reason, 'failure_threshold');
  t.ok(r.waves[0].failing >= 1, 'held on the first failures, not at the timeout');
  await until(() => fleet.summary().failing === 10, 5000, 'the first wave failing');
  t.ok(h.gw.pinFailures({ rollout: rollout.id }).length > 0, 'the gateway aggregated the reports');
  // the endpoint rotates to the key the bundle pins: the next checks are fine
  api.rotate();
  fleet.forgetHandshakes();
  await fleet.callHome();
  t.equal(fleet.summary().failing, 10, 'the devices still on the old pins now fail');
  t.ok(fleet.summary().pinFailures.reported >= 10);
});

t.test('a fleet is split across processes by shard, each device keeping its plan; bad input is refused up front', async (t) => {
  const manifest = { model: 'th-100', firmware: '1', trustedKeys: ['Bk3iAsEB2V12GK2VSF14vfCO+F2kR3YGhmMA5onUoC0='], pins: [{ host: 'a.example.com', pins: [`sha256/${'A'.repeat(43)}=`, `sha256/${'B'.repeat(43)}=`] }] };
  const devices = Array.from({ length: 10 }, (_, i) => ({ id: `d${i}`, token: 't', model: 'th-100', group: 'g' }));
  const o = { url: 'mqtt://127.0.0.1:1', models: [{ manifest, behaviours: { silentRate: 0.5 } }], devices, seed: 's' };
  const whole = new Fleet(o);
  const shard = new Fleet({ ...o, shard: { index: 1, count: 3 } });
  t.same(shard.devices.map((d) => d.id), ['d1', 'd4', 'd7']);
  t.same(shard.devices.map((d) => shard.plan(d.id)!.silent), ['d1', 'd4', 'd7'].map((id) => whole.plan(id)!.silent));
  t.equal(whole.summary().devices, 10);
  t.throws(() => new Fleet({ ...o, devices: [{ ...devices[0], model: 'zz' }] }), /device d0: model "zz" is not among the fleet's models \(th-100\)/);
  t.throws(() => new Fleet({ ...o, devices: [devices[0], devices[0]] }), /device d0 appears twice/);
  t.throws(() => new Fleet({ ...o, models: [{ manifest, behaviours: { rejectRate: 2 } }] }), /model th-100: \/models\/0\/behaviours\/rejectRate: must be a rate from 0 to 1/);
});
