// A device message that was on its way while the rollouts were read again from the store, after a
// commit failed (docs/architecture.md §7), changes the records read, not the ones they replace: an
// ack that waited for its device record while the reload read is counted in memory as in the store,
// and a rollout created while the reload read is kept.
import t from 'tap';
import mqtt from 'mqtt';
import { harness, newPins, until } from '../fixtures/gateway.ts';
import { gate, HeldReads } from '../fixtures/held-reads.ts';
import { encodeAck, encodeTelemetry } from '../../firmware-manifest/messages.ts';
import { deviceTopic } from '../../gateway/topics.ts';

t.test('an ack that waited for its device record while the rollouts were read again is counted in the records read', async (t) => {
  const store = new HeldReads();
  const h = await harness(t, { store });
  const { devices } = await h.gw.provision(['th-1', 'th-2'].map((id) => ({ id, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 10 }], start: true }, 'alice');
  const clients = await Promise.all(devices.map((d) => mqtt.connectAsync(h.gw.mqttUrl, { clientId: d.id, username: d.id, password: d.token, reconnectPeriod: 0, connectTimeout: 5000 })));
  t.teardown(() => Promise.all(clients.map((c) => c.endAsync(true))));
  await until(async () => (await h.gw.stuck({ rollout: rollout.id })).every((s) => s.reason === 'no_ack'), 5000, 'the devices to be seen online');
  const ack = Buffer.from(encodeAck({ seq: bundle.seq, bundleId: bundle.id, status: 'applied' }));

  // th-1's ack waits for its device record
  const device = gate();
  store.holdDevice = { id: 'th-1', gate: device.p };
  const first = clients[0].publishAsync(deviceTopic('th-1', 'ack'), ack, { qos: 1 });
  await until(() => store.held.includes('th-1'), 5000, 'th-1 to wait for its record');
  // th-2's ack fails to commit: the rollouts are read again, and that read is held once it has read the members
  const read = gate();
  store.holdNext.set('members', read.p);
  store.failWhen = (changes) => changes.some((c) => c.type === 'device.patch' && c.id === 'th-2');
  const failed = new Promise<void>((resolve) => clients[1].once('close', () => resolve()));
  clients[1].publish(deviceTopic('th-2', 'ack'), ack, { qos: 1 });
  await failed;
  store.failWhen = null;
  await until(() => store.heldReads.has('members'), 5000, 'the rollouts to be read again');
  // th-1 goes on now, while the records read (without its ack) are still to replace those in memory
  device.open();
  store.holdDevice = null;
  await until(() => store.released.includes('th-1'), 1000, "th-1's record to be read");
  await new Promise((resolve) => setImmediate(resolve));
  read.open();
  await first;
  t.equal((await store.getDevice('th-1'))!.seq, bundle.seq, "th-1's ack is in the store");
  t.equal((await h.gw.getRollout(rollout.id)).waves[0].applied, 1, 'and counted in the rollout in memory: it was taken into the records read');
  t.same((await h.gw.stuck({ rollout: rollout.id })).map((s) => s.id), ['th-2'], 'only th-2, whose ack failed, is stuck');
});

t.test('a rollout whose creation commits while the rollouts are read again is kept in memory, its devices taken', async (t) => {
  const store = new HeldReads();
  const h = await harness(t, { store });
  const { devices } = await h.gw.provision(['th-1', 'th-2'].map((id) => ({ id, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const th2 = await mqtt.connectAsync(h.gw.mqttUrl, { clientId: 'th-2', username: 'th-2', password: devices[1].token, reconnectPeriod: 0, connectTimeout: 5000 });
  t.teardown(() => th2.endAsync(true));

  // The creation waits for its target's record (pre-flight reads it), past its check of `reloading`
  const device = gate();
  store.holdDevice = { id: 'th-1', gate: device.p };
  const creating = h.gw.createRollout({ bundle: bundle.id, target: { devices: ['th-1'] }, waves: [{ size: '100%' }] }, 'alice');
  await until(() => store.held.includes('th-1'), 5000, 'the creation to wait for th-1');
  // th-2's telemetry fails to commit: the rollouts are read again, and that read is held once it has read
  const read = gate();
  store.holdNext.set('rollouts', read.p);
  store.failWhen = (changes) => changes.some((c) => c.type === 'telemetry.put');
  const s = Math.floor(h.clock.now() / 1000);
  const report = { hostname: 'api.example.com', port: 443, result: 'pin_mismatch' as const, servedPins: [Buffer.alloc(32, 66).toString('base64')], knownPins: [Buffer.alloc(32, 1).toString('base64')], seq: 0, bundleId: null, count: 1, suppressed: 0, firstSeen: s, lastSeen: s, counter: 1 };
  const failed = new Promise<void>((resolve) => th2.once('close', () => resolve()));
  th2.publish(deviceTopic('th-2', 'telemetry'), Buffer.from(encodeTelemetry({ deviceId: 'th-2', group: 'thermostats', firmware: '1.0.0', reports: [report] })), { qos: 1 });
  await failed;
  store.failWhen = null;
  await until(() => store.heldReads.has('rollouts'), 5000, 'the rollouts to be read again');
  // the creation goes on while the read (without it) is still to replace the records in memory
  device.open();
  store.holdDevice = null;
  await until(() => store.released.includes('th-1'), 1000, "th-1's record to be read");
  await new Promise((resolve) => setTimeout(resolve, 50));
  read.open();
  const { rollout } = await creating;
  t.ok((await store.listRollouts()).items.some((r) => r.id === rollout.id), 'the rollout is in the store');
  t.equal((await h.gw.getRollout(rollout.id)).id, rollout.id, 'and the gateway knows it');
  await t.rejects(h.gw.createRollout({ bundle: bundle.id, target: { devices: ['th-1'] }, waves: [{ size: '100%' }] }, 'alice'), { code: 'PW_CONFLICT' }, 'th-1 is still taken by it');
});
