// Health-checked devices against the real gateway (docs/architecture.md §9): a device-sim fleet with a
// health check, real TLS handshakes to a local endpoint, the gateway's injected clock. A good bundle
// completes on `verified` acks (devices on older firmware count `applied`); a bad one makes devices
// revert by themselves, the wave is held on their `reverted` acks, they are back on their previous
// seq in the gateway's records and are never sent the bundle again.
import t from 'tap';
import { Fleet } from '../../device-sim/fleet.ts';
import { startTlsEndpoint, unservedPin, type TlsEndpoint } from '../../device-sim/endpoints.ts';
import mqtt from 'mqtt';
import { encodeAck, encodeState, type FirmwareManifest } from '../../firmware-manifest/index.ts';
import { harness, until, type Harness } from '../fixtures/gateway.ts';

async function rig(t: Tap.Test, n: number, withoutHealthCheck?: { share: number; firmware: string }) {
  const h = await harness(t);
  const api: TlsEndpoint = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  const manifest: FirmwareManifest = {
    ...h.manifest,
    model: 'hc-1',
    firmware: '2.0.0',
    pins: [{ host: 'api.example.com', pins: [api.pins[0], api.backupPin] }],
    healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' },
  };
  h.gw.addManifest(manifest);
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `hc-${String(i).padStart(3, '0')}`, group: 'thermostats', model: 'hc-1' })));
  const fleet = new Fleet({
    url: () => h.gw.mqttUrl,
    models: [{ manifest, ...(withoutHealthCheck && { withoutHealthCheck }) }],
    devices: devices.map((d) => ({ ...d, group: 'thermostats', model: 'hc-1' })),
    endpoints: [api.callHome],
    callHomeSeconds: 0,
    callHomeOnApply: false,
    now: h.clock.now,
    seed: 'hc',
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await until(() => h.gw.connectedCount() === n, 10_000, 'every device connected');
  await until(async () => (await Promise.all(devices.map((d) => h.gw.store.getDevice(d.id)))).every((d) => d?.firmware !== null && d?.lastSeen !== null), 10_000, 'every state');
  return { h, api, fleet, ids: devices.map((d) => d.id) };
}

const view = (h: Harness, id: string) => h.gw.getRollout(id);

t.test('a good bundle completes on verified acks; devices on older firmware count applied', async (t) => {
  const { h, api, fleet } = await rig(t, 40, { share: 0.3, firmware: '1.0.0' });
  const checked = fleet.summary().healthChecked;
  t.ok(checked > 15 && checked < 40, `${checked} of 40 health-checked`);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [api.pins[0], api.backupPin] }] }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 600 }], start: true }, 'alice');
  await until(async () => (h.gw.tick(), (await view(h, rollout.id)).state === 'completed'), 15_000, 'completion');
  // It completes at 95%; the last acks still count after.
  await until(async () => (await view(h, rollout.id)).waves[0].acked === 40, 10_000, 'every ack');
  const w = (await view(h, rollout.id)).waves[0];
  t.equal(w.verified, checked, 'every health-checked device verified');
  t.equal(w.applied, 40 - checked, 'the others applied');
  t.equal(w.reverted, 0);
  t.equal(h.gw.counters().acks.verified, checked);
  t.same(fleet.summary().seqs, { '1': 40 });
});

t.test('a bad bundle: devices revert, the wave is held on their reverted acks, and they are not sent it again', async (t) => {
  const { h, fleet, ids } = await rig(t, 40);
  t.equal(fleet.summary().healthChecked, 40);
  // Pins that miss the key the endpoint serves: every device that applies it would lock itself out.
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [unservedPin(), unservedPin()] }] }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: 10, timeoutSeconds: 600 }, { size: '100%' }], start: true }, 'alice');
  await until(async () => (await view(h, rollout.id)).state === 'held', 10_000, 'the hold');
  const held = await view(h, rollout.id);
  const hold = held.decisions.find((d) => d.action === 'hold');
  t.match(hold, { reason: 'failure_threshold', endpoint: 'api.example.com:443', figures: { verified: 0 } }, 'held on reverts, the endpoint recorded');
  t.ok((hold?.figures?.reverted ?? 0) >= 1);
  t.equal(held.waves[1].state, 'pending', 'nothing reaches the next wave');
  t.equal(h.clock.now(), Date.UTC(2026, 0, 1), 'held without the clock moving: on the acks, not a timeout');

  const wave0 = held.waves[0];
  await until(async () => (await view(h, rollout.id)).waves[0].reverted === wave0.size, 10_000, 'every reverted ack of the wave');
  await until(() => Object.values(fleet.summary().reverted).reduce((a, b) => a + b, 0) === 10, 5000, 'the devices say they reverted');
  t.same(fleet.summary().seqs, { '0': 40 }, 'every device is on its previous pins');
  const reverted: string[] = [];
  for (const id of ids) {
    const d = await h.gw.store.getDevice(id);
    if (d?.history.some((e) => e.event === 'reverted')) {
      reverted.push(id);
      t.equal(d.seq, 0, `${id}: the gateway knows it is back on seq 0`);
      t.equal(d.bundleId, null);
    }
  }
  t.equal(reverted.length, 10);
  const stuck = await h.gw.stuck({ rollout: rollout.id });
  t.same(
    stuck.filter((s) => reverted.includes(s.id)).map((s) => s.reason),
    reverted.map(() => 'reverted:api.example.com:443'),
    'the stuck list names the endpoint',
  );

  // Reconnects (state, subscribe) and a resume send them nothing.
  const sent = h.gw.counters().bundlesSent;
  const states = h.gw.counters().messagesIn.state;
  for (const id of reverted.slice(0, 3)) {
    const d = fleet.device(id)!;
    await d.disconnect();
    await d.connect();
  }
  await until(() => h.gw.counters().messagesIn.state >= states + 3, 5000, 'their states');
  await until(() => h.gw.pendingTasks === 0, 5000, 'the gateway to settle');
  await h.gw.resumeRollout(rollout.id, 'alice', { failureThreshold: 1 });
  await until(() => h.gw.pendingTasks === 0, 5000, 'the gateway to settle');
  t.equal(h.gw.counters().bundlesSent, sent, 'no bundle sent again to a reverted device');
  const after = await view(h, rollout.id);
  t.equal(after.waves[0].reverted, 10, 'still reverted');
  t.same(fleet.summary().seqs, { '0': 40 });
});

t.test('reconciliation from state: a device reporting an open provisional window is verifying, never done, until its verdict', async (t) => {
  const h = await harness(t);
  const manifest: FirmwareManifest = { ...h.manifest, model: 'hc-1', firmware: '2.0.0', healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' } };
  h.gw.addManifest(manifest);
  const { devices } = await h.gw.provision([{ id: 'hc-1', group: 'thermostats', model: 'hc-1', firmware: '2.0.0' }]);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [unservedPin(), unservedPin()] }] }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }], start: true }, 'alice');
  const c = await mqtt.connectAsync(h.gw.mqttUrl, { clientId: 'hc-1', username: 'hc-1', password: devices[0].token, reconnectPeriod: 0 });
  t.teardown(() => c.endAsync());
  const topic = (kind: string) => `pinwave/v1/devices/hc-1/${kind}`;
  const state = (provisional?: boolean) =>
    encodeState({ seq: bundle.seq, bundleId: bundle.id, firmware: '2.0.0', model: 'hc-1', keyEpoch: 0, ...(provisional && { provisional: { previousSeq: 0, previousBundleId: null, openedAt: 1, deadline: 61, pending: [{ host: 'api.example.com', port: 443 }] } }) });
  await c.publishAsync(topic('state'), Buffer.from(state(true)), { qos: 1 });
  await until(async () => (await view(h, rollout.id)).waves[0].verifying === 1, 5000, 'verifying');
  let w = (await view(h, rollout.id)).waves[0];
  t.match(w, { applied: 0, verified: 0, acked: 0, ackRatio: 0 }, 'holding the bundle in a window is not done');
  t.equal((await view(h, rollout.id)).state, 'running');
  await c.publishAsync(topic('state'), Buffer.from(state(false)), { qos: 1 });
  await until(() => h.gw.pendingTasks === 0, 5000, 'the gateway to settle');
  t.equal((await view(h, rollout.id)).waves[0].verifying, 1, 'a later state without the window says nothing of its verdict');
  const ack = encodeAck({ seq: bundle.seq, bundleId: bundle.id, status: 'reverted', reason: 'pin_mismatch', endpoint: { host: 'api.example.com', port: 443 }, servedPins: [Buffer.alloc(32, 7).toString('base64')], previousSeq: 0, previousBundleId: null });
  await c.publishAsync(topic('ack'), Buffer.from(ack), { qos: 1 });
  await until(async () => (await view(h, rollout.id)).state === 'held', 5000, 'the hold');
  w = (await view(h, rollout.id)).waves[0];
  t.match(w, { verifying: 0, reverted: 1, failureRatio: 1 });
  t.match(await h.gw.store.getDevice('hc-1'), { seq: 0, bundleId: null });
});
