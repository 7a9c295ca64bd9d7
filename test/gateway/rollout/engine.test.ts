import t from 'tap';
import {
  abort,
  appliedDevices,
  createRollout,
  deviceAcked,
  deviceOnline,
  deviceState,
  nextDeadline,
  pause,
  pinFailure,
  rebuildCounters,
  resume,
  rollBack,
  settleWaves,
  start,
  tick,
} from '../../../gateway/rollout/engine.ts';
import { waveFigures } from '../../../gateway/rollout/figures.ts';
import type { ActionResult, Effect, IsOnline, Rollout } from '../../../gateway/rollout/types.ts';

// Time is a number: these tests move it by hand.
const T0 = 1_700_000_000_000;
const SEC = 1000;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };
const OTHER_BUNDLE = 'cd'.repeat(32);

const everyone: IsOnline = () => true;
const nobody: IsOnline = () => false;
const onlyThese = (ids: Iterable<string>): IsOnline => {
  const set = new Set(ids);
  return (id) => set.has(id);
};
const allBut = (ids: Iterable<string>): IsOnline => {
  const set = new Set(ids);
  return (id) => !set.has(id);
};

function deviceIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `dev-${i}`);
}

function make(n: number, plan?: unknown, id = 'r1'): Rollout {
  const c = createRollout({ id, bundle: BUNDLE, target: { group: 'meters' }, deviceIds: deviceIds(n), plan, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return c.rollout;
}

/** Two waves: `first` devices, then the rest; thresholds of the first wave as given. */
function twoWaves(n: number, first: number, wave0: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Rollout {
  return make(n, { waves: [{ size: first, ...wave0 }, { size: '100%' }], seed: 's', ...extra });
}

function effects(res: ActionResult): Effect[] {
  if (!res.ok) throw new Error(res.message);
  return res.effects;
}

function sentTo(fx: Effect[]): string[] {
  return fx.flatMap((e) => (e.type === 'send' ? e.deviceIds : []));
}

function ack(r: Rollout, id: string, now: number, status: 'applied' | 'rejected' = 'applied', reason?: string): Effect[] {
  return deviceAcked(r, id, { status, reason, bundleId: BUNDLE.id, seq: BUNDLE.seq }, now);
}

function ackAll(r: Rollout, ids: readonly string[], now: number): Effect[] {
  return ids.flatMap((id) => ack(r, id, now));
}

const members = (r: Rollout, wave: number) => r.waves[wave].members;
const types = (fx: Effect[]) => fx.map((e) => e.type);

/** The counters must always equal a recount from the device records. */
function countersHold(t: Pick<typeof import('tap').default, 'equal'>, r: Rollout): void {
  const copy: Rollout = JSON.parse(JSON.stringify(r));
  t.equal(rebuildCounters(copy), false, 'per-wave counters agree with the device records');
}

t.test('a healthy rollout passes every wave and completes', async (t) => {
  const r = make(200, { seed: 's' });
  t.same(
    r.waves.map((w) => w.members.length),
    [2, 18, 80, 100],
  );
  let now = T0;
  let fx = effects(start(r, now, 'alice', everyone));
  t.same(sentTo(fx), members(r, 0), 'start sends to wave 0 only');
  t.same(fx.at(-1), { type: 'persist', members: members(r, 0) }, 'persist names every member the call moved (wave 0 sent)');
  t.equal(r.state, 'running');

  for (let i = 0; i < r.waves.length; i++) {
    now += 10 * SEC;
    const acked = ackAll(r, members(r, i), now);
    t.notOk(sentTo(acked).length, `acks alone send nothing to wave ${i + 1}`);
    t.equal(r.waves[i].state, 'soaking', `wave ${i} soaks once its acks are in`);
    t.equal(nextDeadline(r), now, 'a soak of 0 ends at the next tick');
    now += SEC;
    fx = tick(r, now, everyone);
    t.equal(r.waves[i].state, 'passed');
    if (i + 1 < r.waves.length) t.same(sentTo(fx), members(r, i + 1), `wave ${i + 1} starts when wave ${i} passes`);
  }
  t.same(types(fx), ['completed', 'persist']);
  t.equal(r.state, 'completed');
  t.equal(r.endedAt, now);
  t.same(
    r.decisions.map((d) => `${d.action}${d.wave ?? ''}`),
    ['start', 'soak0', 'pass0', 'soak1', 'pass1', 'soak2', 'pass2', 'soak3', 'pass3', 'complete'],
  );
  t.equal(r.decisions[0].actor, 'alice');
  t.equal(r.decisions[1].actor, 'system');
  t.equal(appliedDevices(r).length, 200);
  countersHold(t, r);
});

t.test('a soaking wave passes only when its soak ends', async (t) => {
  const r = twoWaves(10, 5, { soakSeconds: 600 });
  effects(start(r, T0, 'alice', everyone));
  ackAll(r, members(r, 0), T0 + SEC);
  t.equal(r.waves[0].soakUntil, T0 + SEC + 600 * SEC);
  t.equal(nextDeadline(r), T0 + SEC + 600 * SEC);
  t.same(tick(r, T0 + 600 * SEC, everyone), [], 'nothing due before the soak ends');
  t.equal(r.waves[0].state, 'soaking');
  const fx = tick(r, T0 + 601 * SEC, everyone);
  t.same(sentTo(fx), members(r, 1));
  t.equal(r.waves[0].state, 'passed');
});

t.test('a wave below its ack threshold at its timeout is held', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0.slice(0, 18), T0 + SEC);
  t.equal(r.waves[0].state, 'active', '18 of 20 is below 0.95');
  const deadline = T0 + 3600 * SEC;
  t.equal(nextDeadline(r), deadline);
  t.same(tick(r, deadline - 1, everyone), [], 'nothing happens before the deadline');
  const fx = tick(r, deadline, everyone);
  t.match(fx, [{ type: 'held', wave: 0, reason: 'ack_threshold' }, { type: 'persist' }]);
  t.equal(r.state, 'held');
  t.equal(r.waves[0].state, 'missed');
  t.equal(r.waves[0].count.timed_out, 2, 'sent and silent at the deadline: timed out');
  const d = r.decisions.at(-1)!;
  t.match(d, { at: deadline, actor: 'system', action: 'hold', reason: 'ack_threshold', from: 'running', to: 'held', wave: 0 });
  t.match(d.figures, { members: 20, acked: 18, timedOut: 2, ackRatio: 0.9 });
  t.equal(r.waves[1].state, 'pending', 'nothing sent to the next wave');
  t.equal(nextDeadline(r), null, 'timers stop while held');
  countersHold(t, r);
});

t.test('a wave crossing its failure threshold is held at once, and nothing reaches the next wave while held', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0.slice(0, 4), T0 + SEC);
  const fx = ack(r, wave0[4], T0 + 2 * SEC, 'rejected', 'weak_pin_set');
  t.match(fx, [{ type: 'held', wave: 0, reason: 'failure_threshold' }, { type: 'persist' }], 'held inside the ack call');
  t.equal(r.state, 'held');
  t.equal(r.waves[0].state, 'missed');
  const d = r.decisions.at(-1)!;
  t.match(d, { at: T0 + 2 * SEC, action: 'hold', reason: 'failure_threshold', wave: 0 });
  t.match(d.figures, { responded: 5, rejected: 1, failureRatio: 0.2, failureCounted: true });
  t.same(r.waves[0].rejectedByReason, { weak_pin_set: 1 });

  t.same(sentTo(ackAll(r, wave0.slice(5), T0 + 3 * SEC)), [], 'the rest of the wave acking sends nothing');
  t.same(tick(r, T0 + 9999 * SEC, everyone), [], 'a tick while held does nothing');
  t.same(deviceOnline(r, members(r, 1)[0], T0 + 9999 * SEC), [], 'a next-wave device coming online is not sent');
  t.ok(
    r.waves[1].members.every((id) => r.devices[id].status === 'pending'),
    'every next-wave member is still pending',
  );
  countersHold(t, r);
});

t.test('pin failures on the new bundle hold a wave, even while it soaks', async (t) => {
  const r = twoWaves(40, 20, { soakSeconds: 3600, failureThreshold: 0.05 });
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0, T0 + SEC);
  t.equal(r.waves[0].state, 'soaking');
  t.match(pinFailure(r, wave0[0], { bundleId: BUNDLE.id }, T0 + 2 * SEC), [{ type: 'persist' }], '1 in 20 is within 0.05');
  t.equal(r.devices[wave0[0]].status, 'failing');
  t.equal(waveFigures(r.waves[0]).acked, 20, 'a failing device still counts as acked');
  t.same(pinFailure(r, wave0[0], { bundleId: BUNDLE.id }, T0 + 3 * SEC), [], 'a repeated report changes nothing');
  t.same(pinFailure(r, wave0[1], { bundleId: OTHER_BUNDLE }, T0 + 3 * SEC), [], 'failures on another bundle are not this one’s');
  const fx = pinFailure(r, wave0[1], { bundleId: BUNDLE.id }, T0 + 4 * SEC);
  t.match(fx, [{ type: 'held', wave: 0, reason: 'failure_threshold' }, { type: 'persist' }]);
  t.match(r.decisions.at(-1), { waveFrom: 'soaking', waveTo: 'missed' });
  t.same(tick(r, T0 + 3601 * SEC + SEC, everyone), [], 'the soak end passes nothing while held');
  t.equal(r.waves[1].state, 'pending');
  countersHold(t, r);
});

t.test('minDevices delays the failure ratio', async (t) => {
  const r = twoWaves(100, 20, { minDevices: 10 });
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  t.match(ack(r, wave0[0], T0 + SEC, 'rejected', 'expired'), [{ type: 'persist' }], '1 of 1 rejected, but too few responses to judge');
  ackAll(r, wave0.slice(1, 9), T0 + SEC);
  t.equal(r.state, 'running', '9 responses: still not counted');
  t.notOk(waveFigures(r.waves[0]).failureCounted);
  const fx = ack(r, wave0[9], T0 + 2 * SEC);
  t.same(types(fx), ['held', 'persist'], 'the 10th response makes the ratio count: 1/10 > 0.02');

  const small = make(3, { waves: [{ size: '100%', minDevices: 5 }], seed: 's' });
  effects(start(small, T0, 'alice', everyone));
  ack(small, members(small, 0)[0], T0, 'rejected');
  ack(small, members(small, 0)[1], T0);
  t.equal(small.state, 'running');
  ack(small, members(small, 0)[2], T0);
  t.equal(small.state, 'held', 'a wave smaller than minDevices counts once every member responded');
  t.same(small.waves[0].rejectedByReason, { unspecified: 1 }, 'a rejection without a reason');
});

t.test('unreachable members are counted apart and left out of the ack ratio; a returning one is sent its bundle', async (t) => {
  const r = twoWaves(100, 20);
  const wave0 = members(r, 0);
  const dark = wave0.slice(0, 2);
  const late = wave0[2];
  let fx = effects(start(r, T0, 'alice', allBut([...dark, late])));
  t.same(sentTo(fx), wave0.slice(3), 'offline members are not sent');
  t.equal(r.waves[0].count.pending, 3);

  fx = deviceOnline(r, late, T0 + 10 * SEC);
  t.same(sentTo(fx), [late], 'a member coming online before the deadline is sent the bundle');
  ackAll(r, wave0.slice(3), T0 + 20 * SEC);
  t.equal(r.waves[0].state, 'active', '17 of 20 acked');

  fx = tick(r, T0 + 3600 * SEC, allBut(dark));
  t.equal(r.devices[dark[0]].status, 'unreachable');
  t.equal(r.devices[late].status, 'timed_out', 'online during the wave: timed out, not unreachable');
  const f = waveFigures(r.waves[0]);
  t.match(f, { unreachable: 2, timedOut: 1, acked: 17 });
  t.equal(f.ackRatio, 17 / 18, 'unreachable members are out of the denominator');
  t.equal(r.state, 'held', '17/18 is still below 0.95');

  // With the late device's ack the same wave would pass: 18/18.
  const r2 = twoWaves(100, 20);
  effects(start(r2, T0, 'alice', allBut(dark)));
  ackAll(r2, members(r2, 0).filter((id) => !dark.includes(id)), T0 + SEC);
  t.equal(r2.waves[0].state, 'active', '18/20 before the deadline: nobody is unreachable yet');
  fx = tick(r2, T0 + 3600 * SEC, allBut(dark));
  t.same(
    r2.decisions.slice(-2).map((d) => d.action),
    ['soak', 'pass'],
    'at the deadline 18/18 reachable members acked, and a soak of 0 ends in the same tick',
  );
  t.equal(r2.waves[0].state, 'passed');
  t.same(sentTo(fx), members(r2, 1).filter((id) => !dark.includes(id)));

  fx = deviceOnline(r2, dark[0], T0 + 4000 * SEC);
  t.match(fx, [{ type: 'send', deviceIds: [dark[0]] }, { type: 'persist' }], 'a returning unreachable device is sent its bundle');
  t.equal(r2.devices[dark[0]].status, 'sent');
  ack(r2, dark[0], T0 + 4001 * SEC);
  t.equal(r2.devices[dark[0]].status, 'applied');
  t.same(deviceOnline(r2, dark[0], T0 + 4002 * SEC), [], 'a device that applied is not sent again');
  countersHold(t, r2);
});

t.test('maxUnreachable holds a dark wave, even under onMiss abort', async (t) => {
  for (const onMiss of ['hold', 'abort']) {
    const r = twoWaves(100, 20, {}, { onMiss });
    const wave0 = members(r, 0);
    const online = wave0.slice(0, 8);
    effects(start(r, T0, 'alice', onlyThese(online)));
    ackAll(r, online, T0 + SEC);
    const fx = tick(r, T0 + 3600 * SEC, onlyThese(online));
    t.match(fx, [{ type: 'held', wave: 0, reason: 'max_unreachable' }, { type: 'persist' }], `onMiss ${onMiss}`);
    t.match(r.decisions.at(-1)?.figures, { unreachable: 12, unreachableRatio: 0.6, ackRatio: 1 });
  }
  const allDark = twoWaves(100, 20);
  effects(start(allDark, T0, 'alice', nobody));
  tick(allDark, T0 + 3600 * SEC, nobody);
  t.match(allDark.decisions.at(-1), { reason: 'max_unreachable', figures: { unreachableRatio: 1, ackRatio: 1 } }, 'no reachable member: ack ratio 1');
});

t.test('resume with a new threshold proceeds', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  ackAll(r, members(r, 0).slice(0, 18), T0 + SEC);
  tick(r, T0 + 3600 * SEC, everyone);
  t.equal(r.state, 'held');

  const now = T0 + 4000 * SEC;
  const fx = effects(resume(r, now, 'bob', nobody, { ackThreshold: 0.85 }));
  t.equal(r.state, 'running');
  t.equal(r.waves[0].state, 'soaking', '0.9 meets the new 0.85 at once');
  t.equal(r.waves[0].thresholds.ackThreshold, 0.85);
  t.equal(r.waves[1].thresholds.ackThreshold, 0.95, 'only the held wave changes');
  t.same(types(fx), ['persist']);
  t.match(r.decisions.at(-2), {
    at: now,
    actor: 'bob',
    action: 'resume',
    from: 'held',
    to: 'running',
    wave: 0,
    waveFrom: 'missed',
    waveTo: 'active',
    thresholds: { ackThreshold: 0.85 },
  });
  t.match(r.decisions.at(-1), { action: 'soak', wave: 0 });
  t.same(sentTo(tick(r, now + SEC, everyone)), members(r, 1), 'the next wave starts');
});

t.test('resume re-sends to timed-out members that are online', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0.slice(0, 18), T0 + SEC);
  tick(r, T0 + 3600 * SEC, everyone);
  t.same([r.devices[wave0[18]].status, r.devices[wave0[19]].status], ['timed_out', 'timed_out']);

  const now = T0 + 5000 * SEC;
  const fx = effects(resume(r, now, 'bob', onlyThese([wave0[18]])));
  t.match(fx, [{ type: 'send', deviceIds: [wave0[18]] }, { type: 'persist' }]);
  t.equal(r.waves[0].state, 'active');
  t.equal(r.waves[0].deadline, now + 3600 * SEC, 'a fresh deadline');
  t.equal(nextDeadline(r), now + 3600 * SEC);
  ack(r, wave0[18], now + SEC);
  t.equal(r.waves[0].state, 'soaking', '19/20 meets 0.95');
});

t.test('resume with invalid thresholds is refused with the field named', async (t) => {
  const r = twoWaves(10, 5);
  effects(start(r, T0, 'alice', everyone));
  effects(pause(r, T0, 'alice'));
  const res = resume(r, T0, 'bob', everyone, { ackThreshold: 2, bogus: 1 } as never);
  t.same(res, {
    ok: false,
    code: 'PW_INVALID_PLAN',
    message: 'ackThreshold must be between 0 and 1, got 2; bogus is not a known field',
    errors: ['ackThreshold must be between 0 and 1, got 2', 'bogus is not a known field'],
  });
  t.equal(r.state, 'held', 'nothing changed');
});

t.test('resume holds again at once when the failure ratio is still over', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0.slice(0, 4), T0);
  ack(r, wave0[4], T0, 'rejected', 'bad_signature');
  t.equal(r.state, 'held');
  const fx = effects(resume(r, T0 + SEC, 'bob', nobody, { minDevices: 6, ackThreshold: undefined }));
  t.equal(r.waves[0].thresholds.ackThreshold, 0.95, 'a field given as undefined is left as it was');
  t.equal(r.state, 'running', 'minDevices 6: 5 responses do not count yet');
  t.same(types(fx), ['persist']);
  effects(pause(r, T0 + 2 * SEC, 'bob'));
  const again = effects(resume(r, T0 + 3 * SEC, 'bob', nobody, { minDevices: 5 }));
  t.match(again, [{ type: 'held', wave: 0, reason: 'failure_threshold' }, { type: 'persist' }]);
  t.same(
    r.decisions.slice(-2).map((d) => d.action),
    ['resume', 'hold'],
  );
});

t.test('abort stops the rollout; late acks are still recorded for rollback', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0.slice(0, 3), T0);
  pinFailure(r, wave0[3], { bundleId: BUNDLE.id }, T0);
  const fx = effects(abort(r, T0 + SEC, 'carol', 'rollback'));
  t.match(fx, [{ type: 'aborted', reason: 'rollback' }, { type: 'persist' }]);
  t.match(r.decisions.at(-1), { at: T0 + SEC, actor: 'carol', action: 'abort', reason: 'rollback', from: 'running', to: 'aborted' });
  t.equal(r.endedAt, T0 + SEC);
  t.same(tick(r, T0 + 9999 * SEC, everyone), []);
  t.same(nextDeadline(r), null);
  t.same(deviceOnline(r, members(r, 0)[10], T0 + 2 * SEC), [], 'never sent after abort');
  t.same(deviceState(r, members(r, 0)[10], { seq: 1, bundleId: OTHER_BUNDLE }, T0 + 2 * SEC), []);
  ack(r, wave0[5], T0 + 3 * SEC);
  t.same(appliedDevices(r).sort(), [...wave0.slice(0, 4), wave0[5]].sort(), 'applied and failing devices, late ones too');

  const pending = make(5);
  t.match(effects(abort(pending, T0, 'carol')), [{ type: 'aborted', reason: 'operator' }, { type: 'persist' }], 'a pending rollout can be aborted');
});

t.test("an aborted rollout's waves end with it: the wave in progress is aborted, the ones not reached cancelled", async (t) => {
  const r = make(100, { waves: [{ size: 10 }, { size: 50 }, { size: '100%' }], seed: 's' });
  effects(start(r, T0, 'alice', everyone));
  ackAll(r, members(r, 0).slice(0, 3), T0);
  effects(abort(r, T0 + SEC, 'carol'));
  t.same(r.waves.map((w) => w.state), ['aborted', 'cancelled', 'cancelled']);
  t.equal(r.waves[0].endedAt, T0 + SEC, 'the wave in progress ended with the rollout');
  t.same([r.waves[1].startedAt, r.waves[1].endedAt], [null, null], 'a cancelled wave never started');
  t.match(r.decisions.at(-1), { action: 'abort', wave: 0, waveFrom: 'active', waveTo: 'aborted' });
  t.equal(r.waves[0].count.applied, 3, 'what the aborted wave reached stays counted');

  const soaking = make(100, { waves: [{ size: 10, soakSeconds: 600 }, { size: '100%' }], seed: 's' });
  effects(start(soaking, T0, 'alice', everyone));
  ackAll(soaking, members(soaking, 0), T0);
  t.equal(soaking.waves[0].state, 'soaking');
  effects(rollBack(soaking, T0 + SEC, 'carol'));
  t.same(soaking.waves.map((w) => w.state), ['aborted', 'cancelled'], 'a rollback aborts a soaking wave');

  const paused = twoWaves(100, 20);
  effects(start(paused, T0, 'alice', everyone));
  effects(pause(paused, T0, 'alice'));
  effects(abort(paused, T0 + SEC, 'carol'));
  t.same(paused.waves.map((w) => w.state), ['aborted', 'cancelled'], 'a paused wave is aborted too');

  const pending = make(5);
  effects(abort(pending, T0, 'carol'));
  t.ok(pending.waves.every((w) => w.state === 'cancelled'), 'a rollout aborted before it started cancels every wave');
});

t.test('a wave that missed keeps its verdict when the rollout is aborted; the later ones are cancelled', async (t) => {
  const held = twoWaves(100, 20);
  effects(start(held, T0, 'alice', everyone));
  tick(held, T0 + 3600 * SEC, everyone);
  t.equal(held.state, 'held');
  effects(abort(held, T0 + 3601 * SEC, 'carol'));
  t.same(held.waves.map((w) => w.state), ['missed', 'cancelled']);
  t.equal(held.waves[0].endedAt, T0 + 3600 * SEC, 'it ended when it missed');

  const onMiss = twoWaves(100, 20, {}, { onMiss: 'abort' });
  effects(start(onMiss, T0, 'alice', everyone));
  tick(onMiss, T0 + 3600 * SEC, everyone);
  t.equal(onMiss.state, 'aborted');
  t.same(onMiss.waves.map((w) => w.state), ['missed', 'cancelled'], 'onMiss abort cancels the waves after the one that missed');
});

t.test('an aborted rollout written before its waves ended with it is settled at load', async (t) => {
  const r = make(100, { waves: [{ size: 10 }, { size: '100%' }], seed: 's' });
  effects(start(r, T0, 'alice', everyone));
  // As an older writer left it: the rollout aborted, its waves as they were.
  r.state = 'aborted';
  r.endedAt = T0 + 5 * SEC;
  t.equal(settleWaves(r), true);
  t.same(r.waves.map((w) => [w.state, w.endedAt]), [['aborted', T0 + 5 * SEC], ['cancelled', null]]);
  t.equal(settleWaves(r), false, 'nothing more to settle');
  const running = twoWaves(100, 20);
  effects(start(running, T0, 'alice', everyone));
  t.equal(settleWaves(running), false, 'a running rollout is left as it is');
  t.same(running.waves.map((w) => w.state), ['active', 'pending']);
});

t.test('onMiss abort aborts instead of holding', async (t) => {
  const r = twoWaves(100, 20, {}, { onMiss: 'abort' });
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0.slice(0, 4), T0);
  const fx = ack(r, wave0[4], T0, 'rejected', 'wrong_group');
  t.match(fx, [{ type: 'aborted', reason: 'failure_threshold' }, { type: 'persist' }]);
  t.equal(r.state, 'aborted');
  t.match(r.decisions.at(-1), { actor: 'system', action: 'abort', reason: 'failure_threshold', to: 'aborted', wave: 0 });

  const slow = twoWaves(100, 20, {}, { onMiss: 'abort' });
  effects(start(slow, T0, 'alice', everyone));
  t.same(types(tick(slow, T0 + 3600 * SEC, everyone)), ['aborted', 'persist'], 'an ack threshold missed at the deadline aborts');
});

t.test('pause holds the rollout until resume; resume sends to members that came online meanwhile', async (t) => {
  const r = twoWaves(100, 20);
  const wave0 = members(r, 0);
  const off = wave0.slice(0, 5);
  effects(start(r, T0, 'alice', allBut(off)));
  let fx = effects(pause(r, T0 + SEC, 'alice'));
  t.match(fx, [{ type: 'held', wave: 0, reason: 'paused' }, { type: 'persist' }]);
  t.match(r.decisions.at(-1), { action: 'pause', reason: 'paused', from: 'running', to: 'held', waveFrom: 'active', waveTo: 'active' });
  t.equal(r.waves[0].state, 'active', 'the wave keeps its state while paused');
  t.same(deviceOnline(r, off[0], T0 + 2 * SEC), [], 'a device coming online while held waits for resume');
  ackAll(r, wave0.slice(5), T0 + 3 * SEC);
  t.equal(r.waves[0].state, 'active', 'acks are counted while held but do not move the wave');
  t.equal(r.waves[0].count.applied, 15);
  t.same(tick(r, T0 + 7200 * SEC, everyone), [], 'the deadline does not run while paused');

  fx = effects(resume(r, T0 + 8000 * SEC, 'alice', onlyThese(off.slice(0, 2))));
  t.same(sentTo(fx), off.slice(0, 2));
  t.equal(r.waves[0].deadline, T0 + 8000 * SEC + 3600 * SEC);
  ackAll(r, off, T0 + 8001 * SEC);
  t.equal(r.waves[0].state, 'soaking');
});

t.test('a sent member that said while held it does not hold the bundle is sent it again on resume', async (t) => {
  // Its publish was lost (the broker's sessions died with a restart); its state came while held,
  // when nothing is sent (docs/architecture.md §5 reconciliation, §6 holds).
  const r = twoWaves(100, 20);
  const wave0 = members(r, 0);
  effects(start(r, T0, 'alice', everyone));
  effects(pause(r, T0 + SEC, 'alice'));
  t.same(deviceState(r, wave0[0], { seq: 1, bundleId: OTHER_BUNDLE }, T0 + 2 * SEC), [], 'nothing is sent while held');
  const fx = effects(resume(r, T0 + 3 * SEC, 'alice', onlyThese([wave0[0]])));
  t.same(sentTo(fx), [wave0[0]], 'resume sends it again');
  t.equal(r.devices[wave0[0]].status, 'sent');
  t.equal(r.waves[0].count.sent, 20, 'its counts do not move');
  t.equal(r.devices[wave0[0]].at, T0, 'nor its entry: it was sent the bundle before');
});

t.test('forbidden transitions give PW_INVALID_STATE naming the state', async (t) => {
  const r = twoWaves(10, 5);
  t.same(pause(r, T0, 'x'), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot pause a rollout that is pending' });
  t.same(resume(r, T0, 'x', everyone), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot resume a rollout that is pending' });
  t.same(tick(r, T0 + 1e9, everyone), [], 'a pending rollout has no timers');
  effects(start(r, T0, 'x', everyone));
  t.same(start(r, T0, 'x', everyone), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot start a rollout that is running' });
  t.same(resume(r, T0, 'x', everyone), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot resume a rollout that is running' });
  effects(pause(r, T0, 'x'));
  t.same(pause(r, T0, 'x'), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot pause a rollout that is held' });
  effects(abort(r, T0, 'x'));
  t.same(abort(r, T0, 'x'), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot abort a rollout that is aborted' });
  t.same(start(r, T0, 'x', everyone), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot start a rollout that is aborted' });

  const done = make(1);
  effects(start(done, T0, 'x', everyone));
  ack(done, members(done, 0)[0], T0);
  tick(done, T0, everyone);
  t.equal(done.state, 'completed');
  t.same(abort(done, T0, 'x'), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot abort a rollout that is completed' });
});

t.test('the same seed gives the same waves', async (t) => {
  const ids = deviceIds(300);
  const a = createRollout({ id: 'a', bundle: BUNDLE, target: { devices: ids }, deviceIds: ids, plan: { seed: 'k' }, now: T0 });
  const b = createRollout({ id: 'b', bundle: BUNDLE, target: { devices: ids }, deviceIds: [...ids].reverse(), plan: { seed: 'k' }, now: T0 });
  t.ok(a.ok && b.ok);
  if (!a.ok || !b.ok) return;
  t.same(
    a.rollout.waves.map((w) => w.members),
    b.rollout.waves.map((w) => w.members),
  );
  for (const w of a.rollout.waves) for (const id of w.members) t.equal(a.rollout.devices[id].wave, w.index);
  const c = make(300, undefined, 'a');
  t.same(c.plan.seed, 'a', 'with no seed the rollout id is the seed');
  const d = make(300, { seed: 'other' }, 'a');
  t.notSame(d.waves[0].members, c.waves[0].members);
});

t.test('a rollout reloaded from JSON mid-wave goes on exactly as if it had never stopped', async (t) => {
  const plan = { waves: [{ size: 10 }, { size: 30, soakSeconds: 60, failureThreshold: 0.2 }, { size: '100%' }], seed: 's' };
  const live = make(50, plan);
  const off = new Set(['dev-3', 'dev-17', 'dev-41']);
  const online = allBut(off);
  effects(start(live, T0, 'alice', online));
  ackAll(live, members(live, 0).filter((id) => !off.has(id)), T0 + SEC);
  tick(live, T0 + 3600 * SEC, online);
  tick(live, T0 + 3601 * SEC, online);
  const wave1 = members(live, 1);
  ackAll(live, wave1.slice(0, 5), T0 + 3602 * SEC);
  ack(live, wave1[5], T0 + 3602 * SEC, 'rejected', 'not_yet_valid');
  t.equal(live.waves[1].state, 'active');

  const restored: Rollout = JSON.parse(JSON.stringify(live));
  const script = (r: Rollout): Effect[][] => [
    ackAll(r, wave1.slice(6).filter((id) => !off.has(id)), T0 + 3603 * SEC),
    deviceOnline(r, 'dev-3', T0 + 3604 * SEC),
    tick(r, T0 + 3604 * SEC + 60 * SEC, online),
    ackAll(r, members(r, 2), T0 + 3700 * SEC),
    tick(r, T0 + 3701 * SEC, online),
  ];
  const liveFx = script(live);
  const restoredFx = script(restored);
  t.same(restoredFx, liveFx, 'same effects');
  t.same(restored, JSON.parse(JSON.stringify(live)), 'same record');
  t.equal(restored.state, live.state);
  countersHold(t, restored);
});

t.test('a deadline that passed while the gateway was down is evaluated at the first tick', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  ackAll(r, members(r, 0).slice(0, 10), T0 + SEC);
  const saved = JSON.stringify(r);

  const restored: Rollout = JSON.parse(saved);
  const later = T0 + 86_400 * SEC;
  t.ok(nextDeadline(restored)! < later, 'the deadline is already past');
  const fx = tick(restored, later, everyone);
  t.match(fx, [{ type: 'held', wave: 0, reason: 'ack_threshold' }, { type: 'persist' }]);
  t.equal(restored.decisions.at(-1)?.at, later);

  const healthy = twoWaves(100, 20);
  effects(start(healthy, T0, 'alice', everyone));
  ackAll(healthy, members(healthy, 0), T0 + SEC);
  const back: Rollout = JSON.parse(JSON.stringify(healthy));
  t.same(sentTo(tick(back, later, everyone)), members(back, 1), 'a soak that ended during downtime passes at the first tick');
  t.equal(back.waves[1].deadline, later + 3600 * SEC, 'the next wave gets its full timeout from now');
});

t.test('duplicate acks are idempotent', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  const [a, b] = members(r, 0);
  t.match(ack(r, a, T0), [{ type: 'persist' }]);
  const before = JSON.stringify(r);
  t.same(ack(r, a, T0 + SEC), [], 'a second applied ack');
  t.same(deviceState(r, a, { seq: BUNDLE.seq, bundleId: BUNDLE.id }, T0 + SEC), [], 'a state report of what it holds');
  ack(r, b, T0, 'rejected', 'expired');
  const afterReject = JSON.stringify(r);
  t.same(ack(r, b, T0 + SEC, 'rejected', 'expired'), [], 'a second rejection');
  t.same(ack(r, b, T0 + SEC, 'rejected', 'replayed'), [], 'a second rejection with another reason');
  t.equal(JSON.stringify(r), afterReject);
  t.same(ack(r, a, T0 + SEC, 'rejected', 'replayed'), [], 'a re-delivery refused by a device that applied it');
  t.equal(r.devices[a].status, 'applied');
  t.not(before, afterReject);
  t.equal(waveFigures(r.waves[0]).applied, 1);
  countersHold(t, r);
});

t.test('an ack for another bundle, or from a device outside the rollout, is ignored', async (t) => {
  const r = twoWaves(100, 20);
  effects(start(r, T0, 'alice', everyone));
  const a = members(r, 0)[0];
  const before = JSON.stringify(r);
  t.same(deviceAcked(r, a, { status: 'applied', bundleId: OTHER_BUNDLE, seq: 6 }, T0), []);
  t.same(ack(r, 'stranger', T0), []);
  t.same(deviceOnline(r, 'stranger', T0), []);
  t.same(deviceState(r, 'stranger', { seq: 1, bundleId: OTHER_BUNDLE }, T0), []);
  t.same(pinFailure(r, 'stranger', { bundleId: BUNDLE.id }, T0), []);
  t.same(ack(r, 'toString', T0), [], 'a device id named like an Object.prototype member');
  t.same(deviceAcked(r, a, { status: 'bogus', bundleId: BUNDLE.id, seq: 7 } as never, T0), [], 'an unknown ack status');
  t.equal(JSON.stringify(r), before);
});

t.test('the state a device reports on connect heals a lost ack or sends what it lacks', async (t) => {
  const r = twoWaves(100, 20);
  const wave0 = members(r, 0);
  effects(start(r, T0, 'alice', onlyThese(wave0.slice(0, 2))));
  t.same(
    deviceState(r, wave0[0], { seq: 7, bundleId: BUNDLE.id }, T0 + SEC),
    [{ type: 'persist', members: [wave0[0]] }],
    'it holds the bundle: applied, though its ack was lost',
  );
  t.equal(r.devices[wave0[0]].status, 'applied');
  t.same(
    deviceState(r, wave0[1], { seq: 6, bundleId: OTHER_BUNDLE }, T0 + SEC),
    [{ type: 'send', deviceIds: [wave0[1]] }, { type: 'persist', members: [wave0[1]] }],
    'sent but it says it has not got it: sent again',
  );
  t.same(
    deviceState(r, wave0[2], { seq: 6, bundleId: OTHER_BUNDLE }, T0 + SEC),
    [{ type: 'send', deviceIds: [wave0[2]] }, { type: 'persist', members: [wave0[2]] }],
    'a pending member is sent, as on deviceOnline',
  );
  t.same(deviceState(r, members(r, 1)[0], { seq: 6, bundleId: OTHER_BUNDLE }, T0 + SEC), [], 'a next-wave member waits for its wave');
  t.same(
    deviceState(r, members(r, 1)[1], { seq: 7, bundleId: BUNDLE.id }, T0 + SEC),
    [{ type: 'persist', members: [members(r, 1)[1]] }],
    'a next-wave member that already holds it (by reconciliation) counts',
  );
  t.equal(r.waves[1].count.applied, 1);
  countersHold(t, r);
});

t.test('a rejection can give way to an applied bundle', async (t) => {
  const r = twoWaves(100, 20, { failureThreshold: 1 });
  effects(start(r, T0, 'alice', everyone));
  const a = members(r, 0)[0];
  ack(r, a, T0, 'rejected', 'not_yet_valid');
  t.same(r.waves[0].rejectedByReason, { not_yet_valid: 1 });
  ack(r, a, T0 + SEC);
  t.equal(r.devices[a].status, 'applied');
  t.equal(r.devices[a].reason, undefined);
  t.same(r.waves[0].rejectedByReason, {}, 'the tally by reason follows');
  countersHold(t, r);
});

t.test('a wave whose members acked before it started passes without a send', async (t) => {
  const r = twoWaves(4, 2);
  const [x, y] = members(r, 1);
  deviceState(r, x, { seq: 7, bundleId: BUNDLE.id }, T0);
  deviceState(r, y, { seq: 7, bundleId: BUNDLE.id }, T0);
  effects(start(r, T0, 'alice', everyone));
  ackAll(r, members(r, 0), T0);
  const fx = tick(r, T0 + SEC, everyone);
  t.same(sentTo(fx), [], 'nobody left to send to');
  t.equal(r.waves[1].state, 'soaking');
  t.same(types(tick(r, T0 + 2 * SEC, everyone)), ['completed', 'persist']);
});

t.test('late devices of a passed wave are swept at its deadline, and a completed rollout still delivers', async (t) => {
  const r = make(40, { waves: [{ size: 20, ackThreshold: 0.5 }, { size: '100%', ackThreshold: 0.5 }], seed: 's' });
  const wave0 = members(r, 0);
  const off = wave0.slice(0, 5);
  effects(start(r, T0, 'alice', allBut(off)));
  ackAll(r, wave0.slice(5, 15), T0 + SEC);
  tick(r, T0 + 2 * SEC, everyone);
  t.equal(r.waves[0].state, 'passed', 'passed with 10 of 20 acked and 5 still offline');
  t.equal(r.waves[0].count.pending, 5);
  ackAll(r, members(r, 1), T0 + 3 * SEC);
  tick(r, T0 + 4 * SEC, everyone);
  t.equal(r.state, 'completed');
  t.equal(nextDeadline(r), T0 + 3600 * SEC, 'wave 0 still has a deadline to sweep');
  const fx = tick(r, T0 + 3600 * SEC, everyone);
  t.same(types(fx), ['persist'], 'accounting only: no decision on a passed wave');
  t.equal(r.waves[0].count.unreachable, 5);
  t.equal(r.waves[0].count.timed_out, 5);
  t.equal(nextDeadline(r), T0 + 3600 * SEC + 2 * SEC, "wave 1's deadline");
  tick(r, T0 + 9999 * SEC, everyone);
  t.equal(nextDeadline(r), null);
  t.match(deviceOnline(r, off[0], T0 + 9999 * SEC), [{ type: 'send', deviceIds: [off[0]] }, { type: 'persist' }]);
  countersHold(t, r);
});

t.test('counters are plain data that a recount rebuilds', async (t) => {
  const r = twoWaves(30, 10);
  effects(start(r, T0, 'alice', everyone));
  ack(r, members(r, 0)[0], T0, 'rejected', 'expired');
  const copy: Rollout = JSON.parse(JSON.stringify(r));
  copy.waves[0].count.applied = 99;
  copy.waves[0].rejectedByReason = {};
  t.equal(rebuildCounters(copy), true, 'drift is found');
  t.same(copy.waves[0].count, r.waves[0].count);
  t.same(copy.waves[0].rejectedByReason, { expired: 1 });
  t.equal(rebuildCounters(copy), false);
  delete copy.devices[members(r, 0)[0]].reason;
  copy.waves[0].rejectedByReason = { expired: 1 };
  t.equal(rebuildCounters(copy), true, 'a rejection without its reason');
  t.same(copy.waves[0].rejectedByReason, { unspecified: 1 });
});

t.test('late acks from a passed wave are counted without judging that wave again', async (t) => {
  const r = make(40, { waves: [{ size: 20, ackThreshold: 0.5 }, { size: '100%' }], seed: 's' });
  effects(start(r, T0, 'alice', everyone));
  const wave0 = members(r, 0);
  ackAll(r, wave0.slice(0, 10), T0);
  tick(r, T0 + SEC, everyone);
  t.equal(r.waves[0].state, 'passed');
  const fx = ackAll(r, wave0.slice(10, 13), T0 + 2 * SEC);
  ack(r, wave0[13], T0 + 2 * SEC, 'rejected', 'expired');
  t.same(types(fx), ['persist', 'persist', 'persist']);
  t.equal(r.state, 'running', 'a passed wave is not judged again');
  t.equal(r.waves[0].count.applied, 13);
  t.equal(r.waves[1].state, 'active');
});

t.test('device ids and reasons named like Object.prototype members are plain keys', async (t) => {
  const ids = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'dev-1'];
  const c = createRollout({ id: 'p', bundle: BUNDLE, target: { devices: ids }, deviceIds: ids, plan: { waves: [{ size: '100%', failureThreshold: 1 }] }, now: T0 });
  t.ok(c.ok);
  if (!c.ok) return;
  let r = c.rollout;
  t.same(sentTo(effects(start(r, T0, 'alice', everyone))).sort(), [...ids].sort());
  r = JSON.parse(JSON.stringify(r));
  ack(r, '__proto__', T0, 'rejected', '__proto__');
  ack(r, 'constructor', T0, 'rejected', 'constructor');
  t.equal(r.devices['__proto__'].status, 'rejected');
  t.equal(r.waves[0].rejectedByReason['__proto__'], 1);
  t.equal(Object.getPrototypeOf(r.waves[0].rejectedByReason), Object.prototype, 'no prototype was replaced');
  ack(r, '__proto__', T0);
  t.notOk(Object.hasOwn(r.waves[0].rejectedByReason, '__proto__'));
  t.same(appliedDevices(r), ['__proto__']);
  countersHold(t, r);
});

t.test('createRollout refuses bad input, each error naming its field', async (t) => {
  const bad = createRollout({
    id: '',
    bundle: { id: 'ABC', seq: -1, group: '' },
    target: { devices: [] },
    deviceIds: [],
    plan: { waves: [{ size: 5, ackThreshold: 3 }] },
    now: T0,
  });
  t.same(bad, {
    ok: false,
    errors: [
      'id must be a non-empty string, got ""',
      'bundle.id must be 64 lowercase hex digits (SHA-256), got "ABC"',
      'bundle.seq must be a non-negative integer, got -1',
      'bundle.group must be a non-empty string, got ""',
      'target resolved to no devices',
      'seed must be a non-empty string, got undefined',
      'waves[0].ackThreshold must be between 0 and 1, got 3',
    ],
  });
  t.same(createRollout({ id: 'x', bundle: BUNDLE, target: { group: 'g' }, deviceIds: ['a', ''], now: T0 }), {
    ok: false,
    errors: ['deviceIds must be non-empty strings, got ""'],
  });
  t.same(
    createRollout({ id: 'x', bundle: BUNDLE, target: { group: 'g' }, deviceIds: deviceIds(100), plan: { waves: [{ size: 50 }, { size: '10%' }] }, now: T0 }),
    {
      ok: false,
      errors: ['waves[1].size "10%" (10 of 100 devices) must not be below waves[0].size 50 (50 devices): sizes are cumulative'],
    },
  );
  const dup = createRollout({ id: 'x', bundle: BUNDLE, target: { group: 'g' }, deviceIds: ['a', 'b', 'a'], now: T0 });
  t.ok(dup.ok && Object.keys(dup.rollout.devices).length === 2, 'duplicate ids are one device');
});

t.test('10,000 devices: every ack is taken and the rollout completes', async (t) => {
  const r = make(10_000);
  let now = T0;
  let sent = sentTo(effects(start(r, now, 'alice', everyone)));
  let acks = 0;
  while (r.state === 'running') {
    now += SEC;
    for (const id of sent) {
      ack(r, id, now);
      acks++;
    }
    now += SEC;
    sent = sentTo(tick(r, now, everyone));
  }
  t.equal(r.state, 'completed');
  t.equal(acks, 10_000);
  t.same(
    r.waves.map((w) => w.members.length),
    [100, 900, 4000, 5000],
  );
  t.equal(appliedDevices(r).length, 10_000);
  countersHold(t, r);
});

t.test('resume for the remaining waves: the held wave and every later one take the new thresholds; the decision says so', async (t) => {
  const r = make(100, { waves: [{ size: 10 }, { size: 40 }, { size: '100%' }], seed: 's' });
  effects(start(r, T0, 'alice', everyone));
  ackAll(r, members(r, 0).slice(0, 8), T0 + SEC);
  tick(r, T0 + 3600 * SEC, everyone);
  t.equal(r.state, 'held', '8/10 misses 0.95');
  const fx = effects(resume(r, T0 + 4000 * SEC, 'bob', nobody, { ackThreshold: 0.8, failureThreshold: 0.9 }, 'remaining'));
  t.same(types(fx), ['persist']);
  t.same(r.waves.map((w) => [w.thresholds.ackThreshold, w.thresholds.failureThreshold]), [[0.8, 0.9], [0.8, 0.9], [0.8, 0.9]], 'every wave from the held one on');
  t.match(r.decisions.find((d) => d.action === 'resume'), { scope: 'remaining', wave: 0, thresholds: { ackThreshold: 0.8, failureThreshold: 0.9 } });
  t.equal(r.waves[0].thresholds.minDevices, 5, 'a threshold not given stays as it was');
});

t.test('resume for the held wave (the default) leaves later waves as planned, and records the scope', async (t) => {
  const r = make(100, { waves: [{ size: 10 }, { size: 40 }, { size: '100%', failureThreshold: 0.1 }], seed: 's' });
  effects(start(r, T0, 'alice', everyone));
  effects(pause(r, T0, 'alice'));
  effects(resume(r, T0 + SEC, 'bob', nobody, { failureThreshold: 0.5 }));
  t.same(r.waves.map((w) => w.thresholds.failureThreshold), [0.5, 0.02, 0.1]);
  t.match(r.decisions.at(-1), { action: 'resume', scope: 'held' });
  effects(pause(r, T0 + 2 * SEC, 'bob'));
  const bad = resume(r, T0 + 3 * SEC, 'bob', nobody, {}, 'all' as never);
  t.same(bad, { ok: false, code: 'PW_INVALID_PLAN', message: 'for must be one of held, remaining, got "all"', errors: ['for must be one of held, remaining, got "all"'] });
  t.equal(r.state, 'held', 'a wrong scope changes nothing');
});

t.test('resume for the remaining waves starting at a later wave leaves the passed ones as they ran', async (t) => {
  const r = make(20, { waves: [{ size: 10 }, { size: 15 }, { size: '100%' }], seed: 's' });
  effects(start(r, T0, 'alice', everyone));
  ackAll(r, members(r, 0), T0 + SEC);
  tick(r, T0 + 2 * SEC, everyone);
  t.equal(r.wave, 1, 'wave 2 in progress');
  effects(pause(r, T0 + 3 * SEC, 'alice'));
  effects(resume(r, T0 + 4 * SEC, 'bob', nobody, { ackThreshold: 0.5 }, 'remaining'));
  t.same(r.waves.map((w) => w.thresholds.ackThreshold), [0.95, 0.5, 0.5]);
});

t.test('a member that rejected a completed rollout is not sent its bundle again on every connect; one that applied and lost it is', async (t) => {
  const r = make(20, { waves: [{ size: '100%', failureThreshold: 0.5 }], seed: 's' });
  effects(start(r, T0, 'alice', everyone));
  const [rejecter, reflashed, ...rest] = members(r, 0);
  ack(r, rejecter, T0 + SEC, 'rejected', 'weak_pin_set');
  ackAll(r, [reflashed, ...rest], T0 + SEC);
  tick(r, T0 + 2 * SEC, everyone);
  t.equal(r.state, 'completed');
  // The device that refused it still runs what it ran (seq below the rollout's) and says so on
  // every connect: the same bundle would be refused the same way, and sent for ever.
  for (let i = 0; i < 3; i++) t.same(sentTo(deviceState(r, rejecter, { seq: 3, bundleId: OTHER_BUNDLE }, T0 + (10 + i) * SEC)), [], `connect ${i + 1}: nothing sent`);
  t.equal(r.devices[rejecter].status, 'rejected');
  t.same(sentTo(deviceState(r, reflashed, { seq: 0, bundleId: null }, T0 + 20 * SEC)), [reflashed], 'a member that took it and reports less (reflashed) is sent it again');
  countersHold(t, r);
});
