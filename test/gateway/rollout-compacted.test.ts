// A finished rollout compacted in the store (docs/storage.md "Bounded growth") keeps its header,
// counts and decisions and drops its members: a restart loads it as it is, and a rollback of it
// goes to the devices that report its bundle.
import t, { type Test } from 'tap';
import { completedRollout, fleet, harness, newPins, until } from '../fixtures/gateway.ts';
import { createRollout, deviceAcked, pinFailure, start, tick } from '../../gateway/rollout/engine.ts';
import { summary } from '../../gateway/rollout/summary.ts';
import { compactFinishedRollouts } from '../../gateway/store/compaction.ts';
import { memberChanges, rolloutCreate } from '../../gateway/store/rollout-records.ts';

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

t.test('a compacted rollout shows its failing-unverified members as the live one did: failing, not acked', async (t) => {
  // requireVerified (docs/architecture.md §9): a health-checked member that never verified and then
  // reported pin failures did not count toward the ack ratio; after compaction and a restart the
  // gateway shows the figures from the counts the store kept.
  const h = await harness(t);
  const devices = await fleet(h, 10);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const now = h.clock.now();
  const c = createRollout({ id: 'r-fu', bundle: { id: bundle.id, seq: bundle.seq, group: 'thermostats' }, target: { group: 'thermostats' }, deviceIds: devices.map((d) => d.id), plan: { waves: [{ size: '100%', ackThreshold: 0.8, failureThreshold: 0.5 }] }, now });
  if (!c.ok) throw new Error(c.errors.join('; '));
  const live = c.rollout;
  start(live, now, 'alice', () => true);
  const [unsure, ...rest] = live.waves[0].members;
  const ack = { bundleId: bundle.id, seq: bundle.seq, healthChecked: true };
  for (const id of rest) deviceAcked(live, id, { ...ack, status: 'verified' }, now + 1);
  deviceAcked(live, unsure, { ...ack, status: 'applied' }, now + 1);
  tick(live, now + 2, () => true);
  pinFailure(live, unsure, { bundleId: bundle.id, healthChecked: true }, now + 3);
  t.equal(live.state, 'completed');
  const applied = await h.gw.store.apply([rolloutCreate({ ...live, createdBy: 'alice', previousBundle: null }), ...memberChanges(live)]);
  t.ok(applied.ok, 'stored');
  t.same(await compactFinishedRollouts(h.gw.store, { now: now + 1000, olderThanMs: 0 }), ['r-fu']);
  await h.restart();
  const shown = await h.gw.getRollout('r-fu');
  t.match(shown.waves[0], { failing: 1, verified: 9, acked: 9, ackRatio: 0.9 }, 'the unverified one is failing, not acked');
  t.same(shown.waves, summary(live).waves, 'the figures the live rollout had');
});
