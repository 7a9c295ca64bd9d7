// Rolling back a rollback (docs/architecture.md §6): the group's baseline follows the last bundle
// restored, so a device that joins later gets the pins the fleet was brought back to.
import t from 'tap';
import { fleet, harness, newPins, until } from '../fixtures/gateway.ts';

t.test('rolling back the rollback of a completed rollout moves the baseline to the bundle restored last', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 3, 5000, 'the rollout to apply');
  await h.gw.tick();
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).state === 'completed', 5000, 'the rollout to complete');

  const { rollback: rb } = await h.gw.rollback(r1.rollout.id, 'carol');
  t.equal(await h.gw.baseline('thermostats'), rb.bundle.id, 'the first rollback is the baseline');
  await until(() => devices.every((d) => d.state.seq === rb.bundle.seq), 5000, 'the rollback to apply');

  const { rollback: again } = await h.gw.rollback(rb.id, 'dave');
  t.equal(await h.gw.baseline('thermostats'), again.bundle.id, 'undoing the rollback makes its bundle the baseline');
  await until(() => devices.every((d) => d.state.seq === again.bundle.seq), 5000, 'the second rollback to apply');
});
