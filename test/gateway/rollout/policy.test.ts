import t from 'tap';
import { abort, createRollout, deviceAcked, deviceState, rollBack, start, tick } from '../../../gateway/rollout/engine.ts';
import { baselineAfterRollback, baselineOffer, reachedMembers, rollbackEligibility, rollbackTargets, type RollbackSubject } from '../../../gateway/rollout/policy.ts';
import type { Effect, IsOnline, Rollout } from '../../../gateway/rollout/types.ts';

// Time is a number: these tests move it by hand.
const T0 = 1_700_000_000_000;
const SEC = 1000;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };
const BASELINE = 'cd'.repeat(32);
const NEWER = 'ef'.repeat(32);
const everyone: IsOnline = () => true;
const onlyThese = (ids: Iterable<string>): IsOnline => {
  const set = new Set(ids);
  return (id) => set.has(id);
};

function make(n: number, target: Rollout['target'] = { group: 'meters' }, previousBundle: string | null = BASELINE): RollbackSubject {
  const deviceIds = Array.from({ length: n }, (_, i) => `dev-${i}`);
  const c = createRollout({ id: 'r1', bundle: BUNDLE, target, deviceIds, plan: { waves: [{ size: '100%', minDevices: 1 }], seed: 's' }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return { ...c.rollout, previousBundle };
}

function applied(r: Rollout, ids: string[], at: number): void {
  for (const id of ids) deviceAcked(r, id, { status: 'applied', bundleId: BUNDLE.id, seq: BUNDLE.seq }, at);
}

/** A rollout of `n` devices, all acked and completed. */
function completed(n: number, target?: Rollout['target']): RollbackSubject {
  const r = make(n, target);
  start(r, T0, 'alice', everyone);
  applied(r, Object.keys(r.devices), T0 + SEC);
  tick(r, T0 + 2 * SEC, everyone);
  if (r.state !== 'completed') throw new Error(`expected completed, got ${r.state}`);
  return r;
}

const types = (fx: Effect[]) => fx.map((e) => e.type);

// ------------------------------------------------------------------------------ baseline offers

t.test('a device behind its group baseline and in no rollout is offered the baseline', async (t) => {
  t.equal(baselineOffer({ seq: 2, bundleId: 'old' }, false, { id: BASELINE, seq: 5 }), BASELINE);
  t.equal(baselineOffer({ seq: 0, bundleId: null }, false, { id: BASELINE, seq: 5 }), BASELINE, 'the firmware initial pins are behind too');
});

t.test('no baseline offer to a device in a rollout, without a baseline, or that never reported', async (t) => {
  t.equal(baselineOffer({ seq: 2, bundleId: 'old' }, true, { id: BASELINE, seq: 5 }), null, 'its rollout decides what it gets');
  t.equal(baselineOffer({ seq: 2, bundleId: 'old' }, false, null), null, 'no completed rollout: nothing to offer');
  t.equal(baselineOffer({ seq: null, bundleId: null }, false, { id: BASELINE, seq: 5 }), null, 'a device that never said what it runs');
});

t.test('no baseline offer to a device on the baseline or ahead of it', async (t) => {
  t.equal(baselineOffer({ seq: 5, bundleId: BASELINE }, false, { id: BASELINE, seq: 5 }), null, 'runs it');
  t.equal(baselineOffer({ seq: 9, bundleId: NEWER }, false, { id: BASELINE, seq: 5 }), null, 'ahead of it');
  t.equal(baselineOffer({ seq: 5, bundleId: NEWER }, false, { id: BASELINE, seq: 5 }), null, 'the same seq is not behind');
  t.equal(baselineOffer({ seq: 1, bundleId: BASELINE }, false, { id: BASELINE, seq: 5 }), null, 'a device reporting the baseline id runs it, whatever seq it claims');
});

// ------------------------------------------------------------------------------ completed rollouts re-send

t.test('a member that applied a completed rollout and reports a lower seq is sent the bundle again, its status kept', async (t) => {
  const r = completed(3);
  const fx = deviceState(r, 'dev-1', { seq: 2, bundleId: BASELINE }, T0 + 10 * SEC);
  t.same(fx, [{ type: 'send', deviceIds: ['dev-1'] }], 'a send, and nothing to persist');
  t.equal(r.devices['dev-1'].status, 'applied');
  t.same(deviceState(r, 'dev-1', { seq: 0, bundleId: null }, T0 + 11 * SEC), [{ type: 'send', deviceIds: ['dev-1'] }], 'wiped to the firmware pins');
});

t.test('a member of a completed rollout on its bundle, or ahead of it, is sent nothing', async (t) => {
  const r = completed(3);
  t.same(deviceState(r, 'dev-1', { seq: BUNDLE.seq, bundleId: BUNDLE.id }, T0 + 10 * SEC), []);
  t.same(deviceState(r, 'dev-1', { seq: 9, bundleId: NEWER }, T0 + 10 * SEC), [], 'a later bundle reached it');
});

t.test('a member of a rollout in progress that applied and reports less is left to its rollout (no re-send while running)', async (t) => {
  const r = make(10, { group: 'meters' });
  r.plan.waves[0].ackThreshold = 1;
  r.waves[0].thresholds.ackThreshold = 1;
  start(r, T0, 'alice', everyone);
  applied(r, ['dev-1'], T0 + SEC);
  t.equal(r.state, 'running');
  t.same(deviceState(r, 'dev-1', { seq: 2, bundleId: BASELINE }, T0 + 2 * SEC), []);
});

// ------------------------------------------------------------------------------ rollback eligibility

t.test('rollback is refused while pending and once rolled back, not once aborted; without a previous bundle it returns to the initial pins', async (t) => {
  const pending = make(3);
  t.same(rollbackEligibility(pending), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot roll back a rollout that is pending' });
  const aborted = make(3);
  start(aborted, T0, 'alice', everyone);
  abort(aborted, T0 + SEC, 'alice');
  t.same(rollbackEligibility(aborted), { ok: true, returnTo: aborted.previousBundle }, 'an abort stops the sending: what it sent before may be undone');
  const done = completed(3);
  done.rolledBackBy = 'r2';
  t.same(rollbackEligibility(done), { ok: false, code: 'PW_INVALID_STATE', message: 'rollout r1 was rolled back already by r2' });
  const initial = make(3, { group: 'meters' }, null);
  start(initial, T0, 'alice', everyone);
  t.same(rollbackEligibility(initial), { ok: true, returnTo: null }, "a group's first rollout returns to its firmware's initial pins (no bundle)");
});

t.test('a running, held or completed rollout returns to the bundle its group ran before', async (t) => {
  const running = make(3);
  start(running, T0, 'alice', everyone);
  t.same(rollbackEligibility(running), { ok: true, returnTo: BASELINE });
  const done = completed(3);
  t.same(rollbackEligibility(done), { ok: true, returnTo: BASELINE });
});

t.test('a rollback goes to the live members the bundle reached: never to pending or unreachable ones, nor revoked ones', async (t) => {
  const r = make(4);
  start(r, T0, 'alice', onlyThese(['dev-0', 'dev-1', 'dev-2']));
  applied(r, ['dev-0'], T0 + SEC);
  deviceAcked(r, 'dev-1', { status: 'rejected', reason: 'expired', bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0 + SEC);
  t.same(reachedMembers(r).sort(), ['dev-0', 'dev-1', 'dev-2'], 'dev-3 was never sent it');
  t.same(rollbackTargets(r, (id) => id !== 'dev-2'), { ok: true, devices: reachedMembers(r).filter((id) => id !== 'dev-2') }, 'dev-2 is revoked');
  const none = make(2);
  start(none, T0, 'alice', () => false);
  t.same(rollbackTargets(none, () => true), { ok: false, code: 'PW_INVALID_STATE', message: 'rollout r1 has not sent its bundle to any device: abort it instead' });
});

// ------------------------------------------------------------------------------ the baseline after a rollback

t.test('the rollback bundle replaces a completed rollout as its group baseline, and nothing else moves the baseline', async (t) => {
  const done = completed(3);
  t.equal(baselineAfterRollback(done, true, BUNDLE.id, NEWER), NEWER);
  t.equal(baselineAfterRollback(done, true, BASELINE, NEWER), null, 'another baseline was set since: it stands');
  t.equal(baselineAfterRollback(done, false, BUNDLE.id, NEWER), null, 'a rollout that never completed never was the baseline');
  const listed = completed(3, { devices: ['dev-0', 'dev-1', 'dev-2'] });
  t.equal(baselineAfterRollback(listed, true, BUNDLE.id, NEWER), null, 'a device list has no group baseline');
});

// ------------------------------------------------------------------------------ the rollback decision

t.test('rolling back a completed rollout records a rollback decision and keeps it completed', async (t) => {
  const r = completed(3);
  const before = r.decisions.length;
  const res = rollBack(r, T0 + 60 * SEC, 'carol');
  t.same(res, { ok: true, effects: [{ type: 'persist', members: [] }] }, 'a decision alone: no member moved');
  t.equal(r.state, 'completed');
  t.equal(r.decisions.length, before + 1);
  t.same(r.decisions.at(-1), { at: T0 + 60 * SEC, actor: 'carol', action: 'rollback', reason: 'rollback', from: 'completed', to: 'completed' });
});

t.test('rolling back a rollout in progress aborts it with the reason rollback', async (t) => {
  const r = make(3);
  start(r, T0, 'alice', everyone);
  const res = rollBack(r, T0 + SEC, 'carol');
  t.ok(res.ok);
  t.same(types(res.ok ? res.effects : []), ['aborted', 'persist']);
  t.equal(r.state, 'aborted');
  t.match(r.decisions.at(-1), { actor: 'carol', action: 'abort', reason: 'rollback', from: 'running', to: 'aborted' });
});

t.test('rolling back a pending rollout is refused and records nothing; an aborted one stays aborted and records the rollback', async (t) => {
  const r = make(3);
  t.same(rollBack(r, T0, 'carol'), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot roll back a rollout that is pending' });
  t.equal(r.decisions.length, 0);
  start(r, T0, 'alice', everyone);
  abort(r, T0 + SEC, 'alice');
  const res = rollBack(r, T0 + 2 * SEC, 'carol');
  t.ok(res.ok);
  t.same(types(res.ok ? res.effects : []), ['persist']);
  t.equal(r.state, 'aborted');
  t.match(r.decisions.at(-1), { actor: 'carol', action: 'rollback', reason: 'rollback', from: 'aborted', to: 'aborted' });
  const unsent = make(3);
  abort(unsent, T0, 'alice');
  t.match(rollbackTargets(unsent, () => true), { ok: false, message: `rollout ${unsent.id} has not sent its bundle to any device: nothing to roll back` });
});

t.test('a rollback whose bundle is the baseline hands it on when it is rolled back itself, completed or not', async (t) => {
  // A rollback of a completed rollout is a device list whose bundle the rollback made the baseline
  // (docs/architecture.md §6): undoing it must move the baseline on, or late joiners get the pins undone.
  const listed = { ...completed(3, { devices: ['dev-0', 'dev-1', 'dev-2'] }), rollbackOf: 'r0' };
  t.equal(baselineAfterRollback(listed, true, BUNDLE.id, NEWER), NEWER, 'a completed rollback');
  const running = { ...make(3, { devices: ['dev-0', 'dev-1', 'dev-2'] }), rollbackOf: 'r0' };
  start(running, T0, 'alice', everyone);
  t.equal(baselineAfterRollback(running, false, BUNDLE.id, NEWER), NEWER, 'a rollback in progress whose bundle is the baseline');
  t.equal(baselineAfterRollback(running, false, BASELINE, NEWER), null, 'a rollback whose bundle never became the baseline leaves it');
});
