import t from 'tap';
import mqtt from 'mqtt';
import { fleet, harness, newPins, pin, storedRollout, until } from '../fixtures/gateway.ts';
import { GatewayError } from '../../gateway/errors.ts';
import { encodeAck } from '../../firmware-manifest/index.ts';
import type { Rollout } from '../../gateway/rollout/types.ts';

const HOUR = 3600_000;

t.test('a healthy rollout passes wave by wave, completes, and becomes the group baseline', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 20);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  t.equal(bundle.seq, 1);
  const { rollout, preflight } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '25%' }, { size: '100%' }], start: true }, 'alice');
  t.equal(preflight.ok, true);
  t.equal(rollout.waves[0].size, 5);
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 5, 5000, 'wave 0 acks');
  t.equal(devices.filter((d) => d.state.seq === 1).length, 5, 'only the first wave got the bundle');
  // soak 0: a wave passes at the next tick, and the next wave starts
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 5000, 'completion');
  await h.gw.flush();
  t.equal(devices.every((d) => d.state.seq === 1 && d.state.bundleId === bundle.id), true, 'every device runs the new pins');
  t.equal(await h.gw.baseline('thermostats'), bundle.id);
  const d0 = await h.gw.getDevice(devices[0].id);
  t.equal(d0.seq, 1);
  t.ok(d0.history.some((e) => e.event === 'applied' && e.bundleId === bundle.id));
  t.same((await h.gw.stuck({ group: 'thermostats' })).length, 0, 'nobody is stuck');
});

t.test('a wave crossing its failure threshold is held at once, and nothing reaches the next wave', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 20, 'th', (i) => ({ flashFails: i % 2 === 0 }));
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '50%', minDevices: 3 }, { size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).state === 'held', 5000, 'the hold');
  const r = await h.gw.getRollout(rollout.id);
  t.equal(r.waves[0].state, 'missed');
  t.equal(r.waves[1].state, 'pending');
  t.ok(r.waves[0].rejectedByReason.apply_failed >= 1, 'rejections are counted by reason');
  const hold = r.decisions.find((d) => d.action === 'hold');
  t.equal(hold?.reason, 'failure_threshold');
  // Who got the bundle, as the devices saw it: every device that received one reports an outcome.
  const record = await storedRollout(h.gw, rollout.id);
  const [first, second] = record.waves.map((w) => w.members);
  const reached = () => new Set(h.outcomes.map((o) => o.deviceId));
  await until(() => first.every((id) => reached().has(id)), 5000, 'every device of the first wave to get the bundle');
  h.clock.advance(2 * HOUR);
  await h.gw.tick();
  await new Promise((res) => setTimeout(res, 100));
  t.same(second.filter((id) => reached().has(id)), [], 'no device of the second wave got the bundle');
  t.same(devices.filter((d) => second.includes(d.id) && d.state.seq !== 0).map((d) => d.id), [], 'and none of them runs it');
  t.same([...reached()].filter((id) => !first.includes(id)), [], 'only the first wave was reached');
  const stuck = await h.gw.stuck({ rollout: rollout.id });
  t.ok(stuck.some((s) => s.reason === 'rejected:apply_failed'), 'support sees why: rejected:apply_failed');
});

t.test('a wave under its ack threshold at its timeout is held; resume with a lower threshold proceeds', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 10, 'th', (i) => ({ silent: i < 5 }));
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 600 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 5, 5000, 'the five acks');
  await h.gw.tick();
  t.equal((await h.gw.getRollout(rollout.id)).state, 'running', 'not held before the timeout');
  h.clock.advance(601_000);
  await h.gw.tick();
  const held = await h.gw.getRollout(rollout.id);
  t.equal(held.state, 'held');
  t.equal(held.decisions.at(-1)?.reason, 'ack_threshold');
  t.equal(held.waves[0].timedOut, 5);
  await t.rejects(h.gw.startRollout(rollout.id, 'bob'), { code: 'PW_INVALID_STATE', message: /held/ });
  const resumed = await h.gw.resumeRollout(rollout.id, 'bob', { ackThreshold: 0.5 });
  t.equal(resumed.waves[0].thresholds.ackThreshold, 0.5);
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 5000, 'completion after resume');
  t.ok((await h.gw.getRollout(rollout.id)).decisions.some((d) => d.action === 'resume' && d.actor === 'bob'));
});

t.test('offline is not failure: a device dark for its wave is unreachable, and gets its bundle when it returns', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 4);
  const [late, ...online] = devices;
  await Promise.all(online.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 60 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 3, 5000, 'three acks');
  h.clock.advance(61_000);
  await h.gw.tick();
  let r = await h.gw.getRollout(rollout.id);
  t.equal(r.waves[0].unreachable, 1);
  t.equal(r.waves[0].ackRatio, 1, 'the unreachable device is left out of the denominator');
  await h.gw.tick();
  t.equal((await h.gw.getRollout(rollout.id)).state, 'completed');
  const stuck = await h.gw.stuck({ rollout: rollout.id });
  t.same(stuck.map((s) => [s.id, s.reason]), [[late.id, 'never_connected']]);
  await late.connect();
  await until(() => late.state.seq === 1, 5000, 'the late device to apply');
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 4, 5000, 'its ack');
  r = await h.gw.getRollout(rollout.id);
  t.equal(r.waves[0].unreachable, 0);
});

t.test('an ack lost in a crash is healed by the next state message', async (t) => {
  const h = await harness(t);
  const [d] = await fleet(h, 1, 'th', () => ({ crashBeforeAck: true }));
  await d.connect();
  t.teardown(() => d.disconnect());
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { devices: [d.id] }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(() => h.outcomes.some((o) => o.status === 'crashed'), 5000, 'the crash');
  t.equal(d.state.seq, 1, 'the device persisted the new state before it would have acked');
  t.equal((await h.gw.getRollout(rollout.id)).waves[0].applied, 0, 'the gateway has no ack');
  await d.connect(); // the reboot: state says seq 1, this bundle
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 1, 5000, 'reconciliation');
  t.equal(h.outcomes.filter((o) => o.status === 'applied' && !o.unchanged).length, 0, 'applied once, not twice');
});

t.test('a restarted gateway resumes the rollout where it stood and delivers to devices that reconnect', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 6);
  const [first, second, ...rest] = devices;
  await Promise.all([first, second].map((d) => d.connect()));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 600 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 2, 5000, 'two acks');
  const members = async () => (await storedRollout(h.gw, rollout.id)).waves.map((w) => [...w.members]);
  const before = await members();
  await Promise.all(devices.map((d) => d.disconnect()));
  await h.restart();
  const after = await h.gw.getRollout(rollout.id);
  t.same(await members(), before, 'the same wave members, in the same order');
  t.equal(before[0].length, 6);
  t.equal(after.waves[0].applied, 2, 'acks survived the restart');
  await Promise.all(rest.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 6, 5000, 'the rest to apply');
  // and a deadline that passes while the gateway is down is evaluated at start
  await h.gw.stop();
  h.clock.advance(601_000);
  await h.restart();
  t.not((await h.gw.getRollout(rollout.id)).waves[0].state, 'active');
});

t.test('a late joiner gets the group baseline when it connects', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 3, 5000, 'acks');
  await h.gw.tick();
  await until(async () => (await h.gw.baseline('thermostats')) === bundle.id, 5000, 'the baseline');
  const [joiner] = await fleet(h, 1, 'new');
  await joiner.connect();
  t.teardown(() => joiner.disconnect());
  await until(() => joiner.state.bundleId === bundle.id, 5000, 'the baseline to reach the late joiner');
});

t.test('pre-flight refuses what targeted devices cannot accept, and a second rollout for the same devices', async (t) => {
  const h = await harness(t);
  await fleet(h, 3);
  h.gw.addManifest({ ...h.manifest, maxBundleBytes: 128 });
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const err = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' } }, 'alice').catch((e) => e);
  t.ok(err instanceof GatewayError);
  t.equal(err.code, 'PW_PREFLIGHT');
  t.equal(err.details.problems[0].code, 'too_large');
  t.equal(err.details.problems[0].count, 3);
  h.gw.addManifest(h.manifest);
  await t.rejects(h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '10%', ackThreshold: 2 }] }, 'alice'), { code: 'PW_INVALID_PLAN', message: /ackThreshold/ });
  const ok = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' } }, 'alice');
  t.ok(ok.preflight.warnings.some((w) => w.code === 'never_connected'));
  await t.rejects(h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' } }, 'alice'), { code: 'PW_CONFLICT' });
  await t.rejects(h.gw.createRollout({ bundle: 'f'.repeat(64), target: { group: 'thermostats' } }, 'alice'), { code: 'PW_NOT_FOUND' });
  await t.rejects(h.gw.createRollout({ bundle: bundle.id, target: { devices: ['nobody'] } }, 'alice'), { code: 'PW_INVALID', message: /nobody/ });
});

t.test('rollback sends the previous pins with a higher seq to the devices reached', async (t) => {
  const h = await harness(t, { manifests: [] });
  const devices = await fleet(h, 4);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const first = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: first.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 4);
  await h.gw.tick();
  await until(async () => (await h.gw.baseline('thermostats')) === first.id);
  await t.rejects(h.gw.rollback(r1.rollout.id, 'alice'), { code: 'PW_INVALID_STATE', message: /first of group "thermostats".*model "th-100" firmware "1\.0\.0"/ }, 'a first rollout without a manifest');
  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('wrong'), pin('wrong2')] }] }, 'alice');
  const r2 = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r2.rollout.id)).waves[0].applied === 4);
  const { aborted, rollback } = await h.gw.rollback(r2.rollout.id, 'carol');
  t.equal(aborted.state, 'aborted');
  t.equal(rollback.bundle.seq, 3, 'a higher seq than the bad bundle');
  await until(() => devices.every((d) => d.state.seq === 3), 5000, 'the rollback to apply');
  t.same(devices[0].state.endpoints[0].pins, newPins[0].pins.map((p) => p.slice(7)), 'the previous pins are back');
  const info = await h.gw.getRollout(rollback.id);
  t.equal(info.rollbackOf, r2.rollout.id);
});

t.test('devices are confined: wrong tokens refused, another device\'s ack refused, revocation disconnects', async (t) => {
  const h = await harness(t);
  const { devices: [a, b] } = await h.gw.provision([{ id: 'dev-a', group: 'thermostats' }, { id: 'dev-b', group: 'thermostats' }]);
  await t.rejects(h.device(a.id, 'not-the-token').connect(), /Bad username or password|Not authorized/i, 'a wrong token is refused');
  await t.rejects(h.device(a.id, b.token).connect(), /Bad username or password|Not authorized/i, 'another device\'s token is refused');
  // a, connected as itself, publishes an ack on b's topic: the broker drops it and the connection
  const rogue = await mqtt.connectAsync(h.gw.mqttUrl, { clientId: a.id, username: a.id, password: a.token, reconnectPeriod: 0 });
  const closed = new Promise((res) => rogue.once('close', res));
  rogue.publish(`pinwave/v1/devices/${b.id}/ack`, Buffer.from(encodeAck({ seq: 1, bundleId: 'ab'.repeat(32), status: 'applied' })), { qos: 1 });
  await closed;
  t.equal((await h.gw.getDevice(b.id)).history.length, 0, 'nothing was recorded for b');
  t.ok(h.gw.counters().broker.aclDenied.publish_topic >= 1, 'the denial is counted');
  rogue.end(true);
  const dev = h.device(a.id, a.token);
  await dev.connect();
  const revoked = await h.gw.revoke(a.id);
  t.ok(revoked.revokedAt);
  await until(() => !dev.connected, 2000, 'the revoked device to be cut off');
  await t.rejects(dev.connect(), /Not authorized|Bad username/i, 'and refused after');
  await t.rejects(h.gw.revoke('nobody'), { code: 'PW_NOT_FOUND' });
  const rotated = await h.gw.rotateToken(b.id);
  await t.rejects(h.device(b.id, b.token).connect(), /Not authorized|Bad username/i, 'the old token stops working');
  const c = h.device(b.id, rotated.token);
  await c.connect();
  t.ok(c.connected, 'the rotated token works');
  await c.disconnect();
});

t.test('provisioning is all or nothing and names what is wrong', async (t) => {
  const h = await harness(t);
  await h.gw.provision([{ id: 'a', group: 'g' }]);
  await t.rejects(h.gw.provision([{ id: 'b', group: 'g' }, { id: 'a', group: 'g' }]), { code: 'PW_CONFLICT', message: /a/ });
  await t.rejects(h.gw.getDevice('b'), { code: 'PW_NOT_FOUND' }, 'nothing of the refused call was stored');
  await t.rejects(h.gw.provision([{ id: '../x', group: 'g' }]), { code: 'PW_INVALID', message: /devices\[0\]\.id/ });
  await t.rejects(h.gw.provision([{ id: 'x'.repeat(65), group: 'g' }]), { code: 'PW_INVALID' });
  await t.rejects(h.gw.provision([{ id: 'c', group: 'a/b' }]), { code: 'PW_INVALID', message: /group/ });
  await t.rejects(h.gw.provision([]), { code: 'PW_INVALID' });
  const start = performance.now();
  const many = await h.gw.provision(Array.from({ length: 10_000 }, (_, i) => ({ id: `bulk-${i}`, group: 'bulk' })));
  t.comment(`provisioned 10,000 devices in ${(performance.now() - start).toFixed(0)} ms`);
  t.equal(many.devices.length, 10_000);
  t.equal(new Set(many.devices.map((d) => d.token)).size, 10_000, 'every token is distinct');
});

t.test('nothing of a thousand acks is lost across a clean shutdown', async (t) => {
  const h = await harness(t, { writeWindowMs: 1000 });
  const n = 1000;
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `d${i}`, group: 'g' })));
  const bundle = await h.gw.createBundle({ group: 'g', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'g' }, waves: [{ size: '100%' }], start: true }, 'alice');
  // One MQTT connection per device would dominate the test's time; acks are replayed through the
  // broker by 50 devices at a time instead, each acking as itself.
  for (let i = 0; i < n; i += 50) {
    const batch = devices.slice(i, i + 50);
    const clients = await Promise.all(batch.map((d) => mqtt.connectAsync(h.gw.mqttUrl, { clientId: d.id, username: d.id, password: d.token, reconnectPeriod: 0 })));
    await Promise.all(clients.map((c, j) => c.publishAsync(`pinwave/v1/devices/${batch[j].id}/ack`, Buffer.from(encodeAck({ seq: 1, bundleId: bundle.id, status: 'applied' })), { qos: 1 })));
    await Promise.all(clients.map((c) => c.endAsync()));
  }
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === n, 10_000, 'all acks');
  await h.restart();
  t.equal((await h.gw.getRollout(rollout.id)).waves[0].applied, n, 'every ack is in the store after a clean shutdown');
  t.equal((await h.gw.getDevice('d999')).seq, 1);
});

t.test('a bundle lifetime past 100 years is refused before anything is stored: its expiry would be a date no view can show', async (t) => {
  const h = await harness(t, { bundleLifetimeSeconds: 999_999_999 * 86400 });
  await t.rejects(h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice'), { code: 'PW_INVALID', message: 'at most 100 years' });
  t.same((await h.gw.listBundles()).items, [], 'no bundle stored');
  await t.rejects(h.gw.createBundle({ group: 'thermostats', endpoints: newPins, expiresInSeconds: 100 * 365 * 86400 + 1 }, 'alice'), { code: 'PW_INVALID' });
  const ok = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins, expiresInSeconds: 100 * 365 * 86400 }, 'alice');
  t.equal(ok.seq, 1, 'exactly 100 years is taken, and the refusals took no seq');
});

t.test('a gateway listening on an IPv6 address gives devices an MQTT URL with the address in brackets', async (t) => {
  const h = await harness(t, { host: '::1' });
  t.equal(h.gw.mqttUrl, `mqtt://[::1]:${h.gw.ports.tcp}`);
  t.equal(new URL(h.gw.mqttUrl).port, String(h.gw.ports.tcp), 'a URL a client can parse');
});
