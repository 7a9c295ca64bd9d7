// Rollback of a group's first rollout (docs/architecture.md §6): the manifests' initial pins, signed
// again with a higher seq, to real simulated devices over MQTT; without a manifest a 409 naming the
// model and firmware to push; pre-flight never blocks a rollback, it is recorded.
import t from 'tap';
import { fleet, harness, newPins, pin, until } from '../fixtures/gateway.ts';

t.test('first rollout rolled back without a manifest: the 409 names the model and firmware to push; with it pushed, devices end on its initial pins with a higher seq', async (t) => {
  const h = await harness(t, { manifests: [] });
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 3, 5000, 'the first rollout to apply');
  await h.gw.tick();
  await until(async () => (await h.gw.baseline('thermostats')) === bad.id, 5000, 'the baseline');

  const refused = await h.gw.rollback(r1.rollout.id, 'carol').then(() => null, (e: Error & { code?: string; details?: unknown }) => e);
  t.match(refused, { code: 'PW_INVALID_STATE', details: { missing: [{ model: 'th-100', firmware: '1.0.0', devices: 3 }] } });
  t.match(refused?.message, /the gateway has none for model "th-100" firmware "1\.0\.0" \(3 devices\): push it with `pinwave manifest push FILE`/);
  t.equal((await h.gw.getRollout(r1.rollout.id)).state, 'completed', 'a refused rollback changes nothing');

  const pushed = await h.gw.pushManifest(JSON.parse(JSON.stringify(h.manifest)), 'adam');
  t.equal(pushed.status, 'created');
  t.match(await h.gw.store.getItem('manifests', 'pushed'), { entries: [{ manifest: { model: h.manifest.model } }] }, 'pushed manifests are kept in the store');
  const { rollback } = await h.gw.rollback(r1.rollout.id, 'carol');
  t.equal(rollback.bundle.seq, 2, 'signed again with a seq above the rolled-back one');
  await until(() => devices.every((d) => d.state.seq === 2), 5000, 'the rollback to apply');
  for (const d of devices) t.same(d.state.endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins })), [{ host: 'api.example.com', port: 443, pins: [pin('old'), pin('backup')].map((p) => p.slice(7)) }], `${d.id} is back on the manifest's initial pins`);
  t.equal(await h.gw.baseline('thermostats'), rollback.bundle.id, 'the restored pins are the group baseline now');
  t.equal((await h.gw.getRollout(rollback.id)).rollbackOf, r1.rollout.id);

  // Pushed manifests survive a restart.
  await h.restart();
  t.same(h.gw.listManifests().map((e) => [e.manifest.model, e.manifest.firmware, e.source, e.pushedBy]), [['th-100', '1.0.0', 'pushed', 'adam']]);
});

t.test('a rollback is not blocked by pre-flight: its problems are recorded as a bypassed gate', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 2);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 2, 5000, 'the first rollout to apply');
  // The gateway now believes the model takes only 128 bytes: pre-flight refuses every bundle.
  h.gw.addManifest({ ...h.manifest, maxBundleBytes: 128 });
  const other = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  await h.gw.provision([{ id: 'spare', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  await t.rejects(h.gw.createRollout({ bundle: other.id, target: { devices: ['spare'] } }, 'alice'), { code: 'PW_PREFLIGHT' }, 'an ordinary rollout is refused');
  const { rollback } = await h.gw.rollback(r1.rollout.id, 'carol');
  const info = await h.gw.getRollout(rollback.id);
  t.match(info.gatesBypassed, [{ gate: 'preflight', actor: 'carol', reason: 'rollback', findings: [{ code: 'too_large' }] }]);
  await until(() => devices.every((d) => d.state.seq === rollback.bundle.seq), 5000, 'the rollback to apply');
  t.same(devices[0].state.endpoints[0].pins, [pin('old'), pin('backup')].map((p) => p.slice(7)));
});

t.test('an aborted rollout is rolled back to the devices that applied it: an abort stops the sending, it restores nothing', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  // One aborted before it sent anything has nothing to undo.
  const unsent = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r0 = await h.gw.createRollout({ bundle: unsent.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }] }, 'alice');
  await h.gw.abortRollout(r0.rollout.id, 'alice', 'not now');
  await t.rejects(h.gw.rollback(r0.rollout.id, 'carol'), { code: 'PW_INVALID_STATE', message: /has not sent its bundle to any device/ });

  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 10 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 3, 5000, 'the rollout to apply');
  await h.gw.abortRollout(r1.rollout.id, 'alice', 'wrong pins');
  t.ok(devices.every((d) => d.state.seq === bad.seq), 'the abort left every device on the aborted pins');
  const { aborted, rollback } = await h.gw.rollback(r1.rollout.id, 'carol');
  t.equal(aborted.state, 'aborted', 'the rollout stays aborted');
  t.match((await h.gw.getRollout(r1.rollout.id)).decisions.at(-1), { action: 'rollback', actor: 'carol', from: 'aborted', to: 'aborted' });
  t.equal(rollback.bundle.seq, bad.seq + 1);
  await until(() => devices.every((d) => d.state.seq === rollback.bundle.seq), 5000, 'the rollback to apply');
  t.same(devices[0].state.endpoints[0].pins, [pin('old'), pin('backup')].map((p) => p.slice(7)), 'back on the pins before the aborted rollout');
  await t.rejects(h.gw.rollback(r1.rollout.id, 'carol'), { code: 'PW_INVALID_STATE', message: /rolled back already/ }, 'and only once');

});
