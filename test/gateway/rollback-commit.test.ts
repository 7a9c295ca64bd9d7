// A rollback is one commit (docs/architecture.md §6, §7): the rollback rollout, created and started,
// the links both ways, the rolled-back rollout's decision and the group's baseline go to the store
// in one batch, so a store that fails in the middle of it leaves nothing of the rollback anywhere.
import t from 'tap';
import { fleet, harness, newPins, until } from '../fixtures/gateway.ts';
import type { Change } from '../../gateway/store/changes.ts';
import { FaultyStore } from '../fixtures/faulty-store.ts';

const rollsBack = (id: string) => (c: Change) => c.type === 'rollout.decision' && c.id === id && c.decision.action === 'rollback';

t.test('a rollback whose commit fails leaves nothing changed, in the store or in memory; the next one commits in one batch', async (t) => {
  const store = new FaultyStore();
  const h = await harness(t, { store });
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 3, 5000, 'the rollout to apply');
  await h.gw.tick();
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).state === 'completed', 5000, 'the rollout to complete');
  t.equal(await h.gw.baseline('thermostats'), bad.id);

  const storedBefore = await store.getRollout(r1.rollout.id);
  const rolloutsBefore = (await store.listRollouts()).items.map((r) => r.id);
  // The batch that rolls r1 back fails: the one that records its rollback decision.
  store.failWhen = (changes) => changes.some(rollsBack(r1.rollout.id));
  await t.rejects(h.gw.rollback(r1.rollout.id, 'carol'), { code: 'PW_STORE_IO' }, 'the rollback fails with the store error');
  store.failWhen = null;

  t.same((await store.listRollouts()).items.map((r) => r.id), rolloutsBefore, 'no rollback rollout is stored');
  t.same(await store.getRollout(r1.rollout.id), storedBefore, 'the rolled-back rollout is stored as it was');
  t.equal(await h.gw.baseline('thermostats'), bad.id, 'the baseline is as it was');
  const shown = await h.gw.getRollout(r1.rollout.id);
  t.equal(shown.state, 'completed', 'in memory the rollout is as it was');
  t.equal(shown.rolledBackBy, undefined, 'and not linked to a rollback');
  t.same((await h.gw.listRollouts()).map((r) => r.id), rolloutsBefore, 'no rollback rollout in memory');
  t.ok(devices.every((d) => d.state.seq === 1), 'no device was sent anything');

  const before = store.batches.length;
  const { rollback } = await h.gw.rollback(r1.rollout.id, 'carol');
  const batches = store.batches.slice(before).filter((b) => b.some((c) => c.type.startsWith('rollout.')));
  t.equal(batches.length, 1, 'the rollback is one batch');
  const [batch] = batches;
  t.ok(batch.some((c) => c.type === 'rollout.create' && c.rollout.id === rollback.id && c.rollout.rollbackOf === r1.rollout.id && c.rollout.state === 'running'), 'it creates the rollback rollout, started');
  t.ok(batch.some(rollsBack(r1.rollout.id)), "it holds the rolled-back rollout's decision");
  t.ok(batch.some((c) => c.type === 'rollout.patch' && c.id === r1.rollout.id && c.set.rolledBackBy === rollback.id), 'and its link to the rollback');
  t.ok(batch.some((c) => c.type === 'group.baseline' && c.bundleId === rollback.bundle.id), 'and the baseline');
  t.ok(batch.some((c) => c.type === 'rollout.member' && c.id === rollback.id && c.status === 'sent'), 'and its members sent');
  await until(() => devices.every((d) => d.state.seq === rollback.bundle.seq), 5000, 'the rollback to apply');
  t.equal((await h.gw.getRollout(r1.rollout.id)).rolledBackBy, rollback.id);
});
