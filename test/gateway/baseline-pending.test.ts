// docs/architecture.md §6: a device of the group in no running rollout that is behind the group's
// baseline is sent the baseline when it connects. A rollout created but not started (waiting for
// its start, or for approval) sends nothing, so it must not keep its members from the baseline.
import t from 'tap';
import { fleet, harness, newPins, pin, until } from '../fixtures/gateway.ts';

t.test('a late joiner in a rollout not started yet still gets the baseline', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 2);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 2, 5000, 'the rollout to apply');
  await h.gw.tick();
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).state === 'completed', 5000, 'the rollout to complete');
  t.equal(await h.gw.baseline('thermostats'), b.id);

  // Provisioned later, not connected yet: taken into the next rollout, which is not started.
  const [late] = await fleet(h, 1, 'late');
  t.teardown(() => late.disconnect());
  const next = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [...newPins[0].pins, pin('third')] }] }, 'alice');
  const r2 = await h.gw.createRollout({ bundle: next.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }] }, 'alice');
  t.equal(r2.rollout.state, 'pending');
  await late.connect();
  await until(() => late.state.seq === b.seq, 5000, 'the late joiner to get the baseline').catch(() => undefined);
  t.equal(late.state.seq, b.seq, 'the late joiner runs the baseline');
  t.equal((await h.gw.getRollout(r2.rollout.id)).state, 'pending', 'the pending rollout is left as it was');
});
