// Scenarios an independent review found broken, kept as tests: a device poisoning its group's
// seqs, rollback of a completed rollout, rollback with a revoked member, deliveries lost before a
// reconnect, concurrent rollouts, state before subscribe, and device-reported labels.
import t from 'tap';
import mqtt from 'mqtt';
import { fleet, harness, newPins, pin, until } from '../fixtures/gateway.ts';
import { encodeAck, encodeState } from '../../firmware-manifest/index.ts';

const badPins = [{ host: 'api.example.com', pins: [pin('wrong'), pin('wrong2')] }];

async function raw(h: Awaited<ReturnType<typeof harness>>, id: string, token: string, clean = false) {
  const c = await mqtt.connectAsync(h.gw.mqttUrl, { clientId: id, username: id, password: token, clean, reconnectPeriod: 0 });
  const got: Buffer[] = [];
  c.on('message', (_t, p) => got.push(p));
  return { c, got };
}

t.test('a device claiming a huge seq cannot exhaust or move its group\'s seqs', async (t) => {
  const h = await harness(t);
  const { devices: [evil] } = await h.gw.provision([{ id: 'evil', group: 'g' }]);
  const { c } = await raw(h, evil.id, evil.token);
  await c.publishAsync('pinwave/v1/devices/evil/state', Buffer.from(encodeState({ seq: Number.MAX_SAFE_INTEGER, bundleId: null, firmware: '1', model: 'm', keyEpoch: 0 })), { qos: 1 });
  await until(async () => (await h.gw.getDevice('evil')).seq === Number.MAX_SAFE_INTEGER, 3000, 'the state');
  await c.endAsync();
  const b = await h.gw.createBundle({ group: 'g', endpoints: newPins }, 'alice');
  t.equal(b.seq, 1, 'the next seq is still 1');
});

t.test('rolling back a completed rollout restores the baseline for late joiners and returning devices', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 4);
  const [away, ...online] = devices;
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const good = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: good.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(r1.rollout.id)).state === 'completed'), 5000, 'first rollout');
  await away.disconnect();
  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: badPins }, 'alice');
  const r2 = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 60 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r2.rollout.id)).waves[0].applied === 3, 5000, 'three acks');
  h.clock.advance(61_000);
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(r2.rollout.id)).state === 'completed'), 5000, 'the bad rollout completes with one device unreachable');
  await h.gw.flush();
  t.equal(await h.gw.baseline('thermostats'), bad.id);
  const { rollback } = await h.gw.rollback(r2.rollout.id, 'carol');
  t.equal(await h.gw.baseline('thermostats'), rollback.bundle.id, 'the rollback bundle is the baseline now');
  await t.rejects(h.gw.rollback(r2.rollout.id, 'carol'), { code: 'PW_INVALID_STATE', message: /rolled back already/ });
  await until(() => online.every((d) => d.state.seq === rollback.bundle.seq), 5000, 'the reached devices to take the rollback');
  await away.connect();
  await until(() => away.state.seq === rollback.bundle.seq, 5000, 'the returning device to get the rollback, not the bad pins');
  t.notSame(away.state.endpoints[0].pins, badPins[0].pins.map((p) => p.slice(7)));
  const [joiner] = await fleet(h, 1, 'late');
  await joiner.connect();
  t.teardown(() => joiner.disconnect());
  await until(() => joiner.state.seq === rollback.bundle.seq, 5000, 'a late joiner to get the rollback bundle');
});

t.test('rollback leaves revoked devices out instead of failing half-way', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const good = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: good.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(r1.rollout.id)).state === 'completed'), 5000);
  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: badPins }, 'alice');
  const r2 = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 600 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r2.rollout.id)).waves[0].applied === 3, 5000);
  await h.gw.revoke(devices[0].id);
  const { aborted, rollback } = await h.gw.rollback(r2.rollout.id, 'carol');
  t.equal(aborted.state, 'aborted');
  t.equal(rollback.devices, 2, 'the revoked device is left out');
});

t.test('a device whose delivery was lost is sent the bundle again when it reconnects, even on firmware pins', async (t) => {
  const h = await harness(t);
  const { devices: [d] } = await h.gw.provision([{ id: 'd1', group: 'g' }]);
  let { c, got } = await raw(h, d.id, d.token);
  await c.subscribeAsync('pinwave/v1/devices/d1/bundle', { qos: 1 });
  const b = await h.gw.createBundle({ group: 'g', endpoints: newPins }, 'alice');
  await h.gw.createRollout({ bundle: b.id, target: { devices: ['d1'] }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(() => got.length === 1, 3000, 'the first delivery');
  c.end(true); // the device reboots before applying it
  ({ c, got } = await raw(h, d.id, d.token, true));
  await c.subscribeAsync('pinwave/v1/devices/d1/bundle', { qos: 1 });
  await c.publishAsync('pinwave/v1/devices/d1/state', Buffer.from(encodeState({ seq: 0, bundleId: null, firmware: '1', model: 'm', keyEpoch: 0 })), { qos: 1 });
  await until(() => got.length >= 1, 3000, 'the bundle again');
  t.equal(got[0].toString('base64'), b.bytes);
  await c.endAsync();
});

t.test('a clean-session device that sends state before it subscribes still gets its bundle', async (t) => {
  const h = await harness(t);
  const { devices: [d] } = await h.gw.provision([{ id: 'd1', group: 'g' }]);
  const b = await h.gw.createBundle({ group: 'g', endpoints: newPins }, 'alice');
  const { c, got } = await raw(h, d.id, d.token, true);
  await h.gw.createRollout({ bundle: b.id, target: { devices: ['d1'] }, waves: [{ size: '100%' }], start: true }, 'alice');
  await c.publishAsync('pinwave/v1/devices/d1/state', Buffer.from(encodeState({ seq: 0, bundleId: null, firmware: '1', model: 'm', keyEpoch: 0 })), { qos: 1 });
  await new Promise((r) => setTimeout(r, 50));
  await c.subscribeAsync('pinwave/v1/devices/d1/bundle', { qos: 1 });
  await until(() => got.length >= 1, 3000, 'the bundle after subscribing');
  await c.endAsync();
});

t.test('a device that applied a completed rollout and lost its state is sent the bundle again', async (t) => {
  const h = await harness(t);
  const [dev] = await fleet(h, 1);
  await dev.connect();
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r = await h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(r.rollout.id)).state === 'completed'), 5000);
  await dev.disconnect();
  h.states.save(dev.id, { ...dev.state, seq: 0, bundleId: null }); // a reflash wipes the trust state
  const again = h.device(dev.id, (await h.gw.rotateToken(dev.id)).token);
  await again.connect();
  t.teardown(() => again.disconnect());
  await until(() => again.state.bundleId === b.id, 5000, 'the wiped device to be brought back');
});

t.test('two concurrent rollouts for the same devices: one wins, the other is a conflict', async (t) => {
  const h = await harness(t);
  await fleet(h, 3);
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const results = await Promise.allSettled([1, 2].map(() => h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, start: true }, 'alice')));
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  t.match((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason, { code: 'PW_CONFLICT' });
});

t.test('model and firmware labels with control characters from a device are not stored', async (t) => {
  const h = await harness(t);
  const { devices: [d] } = await h.gw.provision([{ id: 'd1', group: 'g', model: 'th-100', firmware: '1.0.0' }]);
  const { c } = await raw(h, d.id, d.token);
  await c.publishAsync('pinwave/v1/devices/d1/state', Buffer.from(encodeState({ seq: 0, bundleId: null, firmware: '\x1b[2J', model: 'th-100\x07', keyEpoch: 0 })), { qos: 1 });
  await until(async () => (await h.gw.getDevice('d1')).lastSeen !== null && h.gw.counters().dropped.state_bad_label === 1, 3000);
  const stored = await h.gw.getDevice('d1');
  t.equal(stored.model, 'th-100');
  t.equal(stored.firmware, '1.0.0');
  await c.endAsync();
});

t.test('a wave timeout beyond a year is refused (a deadline must survive JSON as a number)', async (t) => {
  const h = await harness(t);
  await fleet(h, 1);
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  await t.rejects(h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 1e306 }] }, 'alice'), { code: 'PW_INVALID_PLAN', message: /timeoutSeconds/ });
});

t.test('a reflashed member of a completed rollout that sends state before it subscribes still gets the bundle again', async (t) => {
  const h = await harness(t);
  const { devices: [d] } = await h.gw.provision([{ id: 'd1', group: 'g' }]);
  const b = await h.gw.createBundle({ group: 'g', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: b.id, target: { devices: ['d1'] }, waves: [{ size: '100%', minDevices: 1 }], start: true }, 'alice');
  let { c, got } = await raw(h, d.id, d.token, true);
  await c.subscribeAsync('pinwave/v1/devices/d1/bundle', { qos: 1 });
  await c.publishAsync('pinwave/v1/devices/d1/state', Buffer.from(encodeState({ seq: 0, bundleId: null, firmware: '1', model: 'm', keyEpoch: 0 })), { qos: 1 });
  await until(() => got.length >= 1, 3000, 'the bundle');
  await c.publishAsync('pinwave/v1/devices/d1/ack', Buffer.from(encodeAck({ status: 'applied', bundleId: b.id, seq: b.seq })), { qos: 1 });
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 3000, 'the rollout to complete');
  await c.endAsync();
  // Reflashed: it comes back on the firmware's pins, says so, and only then subscribes.
  ({ c, got } = await raw(h, d.id, d.token, true));
  await c.publishAsync('pinwave/v1/devices/d1/state', Buffer.from(encodeState({ seq: 0, bundleId: null, firmware: '1', model: 'm', keyEpoch: 0 })), { qos: 1 });
  await until(async () => (await h.gw.getDevice('d1')).seq === 0, 3000, 'the state');
  await c.subscribeAsync('pinwave/v1/devices/d1/bundle', { qos: 1 });
  await until(() => got.length >= 1, 3000, 'the bundle after subscribing');
  t.equal(got[0].toString('base64'), b.bytes);
  await c.endAsync();
});
