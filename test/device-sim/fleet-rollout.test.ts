// A fleet against the real gateway (harness: embedded aedes, the embedded store in a temp dir, injected clock):
// a thousand devices complete a rollout; half silent holds a wave at its timeout; half rejecting holds it at once.
import t from 'tap';
import { harness, newPins, until } from '../fixtures/gateway.ts';
import { Fleet, type FleetModel } from '../../device-sim/fleet.ts';

t.test('a fleet of 1,000 devices of two models completes a four-wave rollout', async (t) => {
  const h = await harness(t);
  const second = { ...h.manifest, model: 'sm-200', firmware: '2.1.0' };
  h.gw.addManifest(second);
  const n = 1000;
  const started = Date.now();
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `d-${String(i).padStart(4, '0')}`, group: 'thermostats', model: i % 2 ? 'sm-200' : 'th-100' })));
  const models: FleetModel[] = [{ manifest: h.manifest }, { manifest: second }];
  const fleet = new Fleet({ url: () => h.gw.mqttUrl, models, devices: devices.map((d, i) => ({ ...d, group: 'thermostats', model: i % 2 ? 'sm-200' : 'th-100' })), now: h.clock.now, seed: 't', ramp: { perTick: 250 } });
  t.teardown(() => fleet.stop());
  await fleet.start();
  const connectedMs = Date.now() - started;
  await until(() => h.gw.connectedCount() === n, 10_000, 'every device connected');
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '1%' }, { size: '10%' }, { size: '50%' }, { size: '100%' }], start: true }, 'alice');
  const t0 = Date.now();
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 20_000, 'completion');
  const rolloutMs = Date.now() - t0;
  await until(() => fleet.summary().acked === n, 5000, 'every ack');
  const s = fleet.summary();
  t.same(s.seqs, { '1': n });
  t.equal(s.verifications.performed, 1, 'one signature verification for the fleet');
  t.comment(`1,000 devices: connected in ${connectedMs} ms, rollout (4 waves) completed in ${rolloutMs} ms`);
});

async function fleetOf(t: Tap.Test, n: number, behaviours: FleetModel['behaviours']) {
  const h = await harness(t);
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `th-${String(i).padStart(3, '0')}`, group: 'thermostats', model: 'th-100' })));
  const fleet = new Fleet({ url: () => h.gw.mqttUrl, models: [{ manifest: h.manifest, behaviours }], devices: devices.map((d) => ({ ...d, group: 'thermostats', model: 'th-100' })), now: h.clock.now, seed: 'holds' });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await until(() => h.gw.connectedCount() === n, 5000, 'every device connected');
  return { h, fleet };
}

t.test('a rollout with half the devices silent is held at its wave timeout, not before', async (t) => {
  const { h, fleet } = await fleetOf(t, 40, { silentRate: 0.5 });
  const silent = fleet.devices.filter((d) => fleet.plan(d.id)!.silent).length;
  t.ok(silent > 10 && silent < 30, `${silent} of 40 silent`);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 600 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 40 - silent, 5000, 'the acks of the others');
  await until(() => fleet.summary().unacked === silent, 5000, 'the silent ones to apply');
  h.clock.advance(599_000);
  await h.gw.tick();
  t.equal((await h.gw.getRollout(rollout.id)).state, 'running', 'still running a second before the timeout');
  h.clock.advance(2_000);
  await h.gw.tick();
  const r = await h.gw.getRollout(rollout.id);
  t.equal(r.state, 'held');
  t.equal(r.decisions.at(-1)?.reason, 'ack_threshold');
  t.equal(r.waves[0].timedOut, silent);
  t.same(fleet.summary().seqs, { '1': 40 }, 'the silent devices did apply');
});

t.test('a rollout with half the devices rejecting is held at once', async (t) => {
  const { h, fleet } = await fleetOf(t, 40, { rejectRate: 0.5 });
  const rejecting = fleet.devices.filter((d) => fleet.plan(d.id)!.flashFails).length;
  t.ok(rejecting > 10 && rejecting < 30, `${rejecting} of 40 rejecting`);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '50%', timeoutSeconds: 600 }, { size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).state === 'held', 5000, 'the hold');
  const r = await h.gw.getRollout(rollout.id);
  t.equal(r.decisions.find((d) => d.action === 'hold')?.reason, 'failure_threshold');
  t.ok(r.waves[0].rejectedByReason.apply_failed >= 1);
  t.equal(r.waves[1].state, 'pending', 'nothing reaches the next wave');
  t.equal(h.clock.now(), Date.UTC(2026, 0, 1), 'held without the clock moving');
  await until(() => (fleet.summary().rejected.apply_failed ?? 0) > 0, 5000, 'the summary counts rejections by reason');
});
