import t from 'tap';
import { createRollout, deviceAcked, resume, start } from '../../gateway/rollout/engine.ts';
import { createChanges, RolloutLedger } from '../../gateway/rollout-changes.ts';
import type { GatewayRollout } from '../../gateway/rollouts.ts';
import type { Effect, IsOnline } from '../../gateway/rollout/types.ts';
import type { Change } from '../../gateway/store/changes.ts';
import { MemoryChangeStore } from '../../gateway/store/memory-store.ts';
import { device } from './store/fixtures/conformance.ts';

// The ledger turns what the engine changed into store changes (docs/architecture.md §6, §7): replayed
// into a store, they must give back the engine's record, step after step.
const T0 = 1_700_000_000_000;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };
const everyone: IsOnline = () => true;
const ids = Array.from({ length: 20 }, (_, i) => `dev-${String(i).padStart(2, '0')}`);

function rollout(): GatewayRollout {
  const c = createRollout({ id: 'r1', bundle: BUNDLE, target: { group: 'meters' }, deviceIds: ids, plan: { waves: [{ size: 10, ackThreshold: 0.5, failureThreshold: 0.1, minDevices: 2 }, { size: '100%' }], seed: 's' }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return { ...c.rollout, createdBy: 'alice', previousBundle: null, rollbackOf: null, rolledBackBy: null } as GatewayRollout;
}

const moved = (fx: Effect[]) => fx.flatMap((e) => (e.type === 'persist' ? e.members : []));

t.test('replayed into a store, the changes give back the engine record at every step', async (t) => {
  const store = new MemoryChangeStore();
  await store.open();
  t.teardown(() => store.close());
  await store.apply(ids.map((id) => ({ type: 'device.provision', device: device(id, 'meters') })));
  const r = rollout();
  const created = await store.apply(createChanges(r));
  t.ok(created.ok, 'the new rollout is stored');
  const ledger = new RolloutLedger(r);

  const agrees = async (what: string, changes: Change[]) => {
    if (changes.length > 0) {
      const applied = await store.apply(changes);
      if (!applied.ok) return t.fail(`${what}: the store refused the changes: ${JSON.stringify(applied)}`);
    }
    const stored = await store.getRollout(r.id);
    t.equal(stored?.state, r.state, `${what}: state`);
    t.equal(stored?.wave, r.wave, `${what}: wave`);
    for (const [i, w] of r.waves.entries()) {
      const s = stored!.waves[i];
      t.same({ state: s.state, startedAt: s.startedAt, deadline: s.deadline, thresholds: s.thresholds, count: s.count, rejectedByReason: s.rejectedByReason }, { state: w.state, startedAt: w.startedAt, deadline: w.deadline, thresholds: w.thresholds, count: w.count, rejectedByReason: w.rejectedByReason }, `${what}: wave ${i}`);
    }
    t.equal(stored?.decisions.length, r.decisions.length, `${what}: decisions`);
    const members = await store.getMembers(r.id, ids);
    t.same(members.map((m) => m?.status), ids.map((id) => r.devices[id].status), `${what}: members`);
  };

  const started = start(r, T0 + 1000, 'alice', everyone);
  if (!started.ok) return t.fail(started.message);
  await agrees('started', ledger.changes(r, moved(started.effects)));

  const first = r.waves[0].members;
  const fx = deviceAcked(r, first[0], { status: 'applied', bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0 + 2000);
  const one = ledger.changes(r, moved(fx));
  t.same(one.map((c) => c.type).sort(), ['rollout.member', 'rollout.wave'], 'an ack is its member and its wave counts, nothing else');
  await agrees('one ack', one);
  t.same(ledger.changes(r), [], 'nothing changed: no change');

  // Two rejections of 10 cross the failure threshold of 0.1: held.
  for (const [k, id] of first.slice(1, 3).entries()) await agrees(`rejection ${k}`, ledger.changes(r, moved(deviceAcked(r, id, { status: 'rejected', reason: 'apply_failed', bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0 + 3000 + k))));
  t.equal(r.state, 'held', 'the wave held');

  // A resume that raises the failure threshold changes the wave's thresholds in place.
  const resumed = resume(r, T0 + 4000, 'alice', everyone, { failureThreshold: 0.5 });
  if (!resumed.ok) return t.fail(resumed.message);
  const changes = ledger.changes(r, moved(resumed.effects));
  const wave0 = changes.find((c) => c.type === 'rollout.wave' && c.wave === 0) as Extract<Change, { type: 'rollout.wave' }> | undefined;
  t.equal(wave0?.set?.thresholds?.failureThreshold, 0.5, 'the new threshold goes to the store');
  await agrees('resumed', changes);

  for (const id of first.slice(3)) await agrees(`ack ${id}`, ledger.changes(r, moved(deviceAcked(r, id, { status: 'applied', bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0 + 5000))));
  t.not(r.waves[0].state, 'active', 'the wave was judged again once every member answered');
});
