// A finished rollout compacted in the store (docs/storage.md "Bounded growth") keeps its header,
// counts and decisions and drops its members: a restart loads it as it is, and a rollback of it
// goes to the devices that report its bundle.
import t, { type Test } from 'tap';
import { completedRollout, until } from '../fixtures/gateway.ts';
import { compactFinishedRollouts } from '../../gateway/store/compaction.ts';

/** Three connected devices, a rollout to them that completed, compacted in the store. */
async function compactedRollout(t: Test) {
  const { h, devices, rollout: r } = await completedRollout(t);
  t.same(await compactFinishedRollouts(h.gw.store, { now: h.clock.now() + 1, olderThanMs: 0 }), [r.id]);
  return { h, devices, r: { rollout: r } };
}

t.test('a compacted rollout keeps its counts across a restart', async (t) => {
  const { h, devices, r } = await compactedRollout(t);
  const storedBefore = await h.gw.store.getRollout(r.rollout.id);
  t.equal(storedBefore!.waves[0].count.applied, 3, 'the store keeps the counts');

  await Promise.all(devices.map((d) => d.disconnect()));
  await h.restart();
  const shown = await h.gw.getRollout(r.rollout.id);
  t.equal(shown.state, 'completed');
  t.equal(shown.waves[0].applied, 3, 'the compacted rollout still shows what it did');
  t.same((await h.gw.store.getRollout(r.rollout.id))!.waves[0].count, storedBefore!.waves[0].count, 'and the store was not rewritten to zero');
});

t.test('a compacted rollout is rolled back to the devices that report its bundle', async (t) => {
  const { h, devices, r } = await compactedRollout(t);
  await Promise.all(devices.map((d) => d.disconnect()));
  await h.restart();

  const { rollback } = await h.gw.rollback(r.rollout.id, 'carol');
  t.equal(rollback.devices, 3, 'the rollback goes to every device that reports the bundle');
  t.equal((await h.gw.getRollout(rollback.id)).rollbackOf, r.rollout.id);
  await Promise.all(devices.map((d) => d.connect()));
  await until(() => devices.every((d) => d.state.seq === rollback.bundle.seq), 5000, 'the rollback to apply');
  t.equal(await h.gw.baseline('thermostats'), rollback.bundle.id, 'and its bundle is the baseline');
});
