import t from 'tap';
import { createRollout, deviceAcked, pinFailure, start, tick } from '../../../gateway/rollout/engine.ts';
import { summary } from '../../../gateway/rollout/summary.ts';
import type { Rollout } from '../../../gateway/rollout/types.ts';

const T0 = 1_700_000_000_000;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };
const ids = Array.from({ length: 40 }, (_, i) => `dev-${i}`);

function rollout(): Rollout {
  const c = createRollout({
    id: 'r1',
    bundle: BUNDLE,
    target: { group: 'meters' },
    deviceIds: ids,
    plan: { waves: [{ size: 20, failureThreshold: 0.5 }, { size: '100%' }], seed: 's' },
    now: T0,
  });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return c.rollout;
}

const ack = (r: Rollout, id: string, status: 'applied' | 'rejected', reason?: string) =>
  deviceAcked(r, id, { status, reason, bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0 + 1000);

t.test('the summary shows each wave against its thresholds, and the decisions', async (t) => {
  const r = rollout();
  const wave0 = r.waves[0].members;
  const offline = new Set(wave0.slice(16));
  start(r, T0, 'alice', (id) => !offline.has(id));
  wave0.slice(0, 12).forEach((id) => ack(r, id, 'applied'));
  ack(r, wave0[12], 'rejected', 'expired');
  ack(r, wave0[13], 'rejected', 'expired');
  ack(r, wave0[14], 'rejected', 'wrong_group');
  pinFailure(r, wave0[0], { bundleId: BUNDLE.id }, T0 + 2000);

  const s = summary(r);
  t.match(s, {
    id: 'r1',
    state: 'running',
    bundle: BUNDLE,
    target: { group: 'meters' },
    onMiss: 'hold',
    devices: 40,
    wave: 0,
    createdAt: T0,
    startedAt: T0,
    endedAt: null,
    nextDeadline: T0 + 3600_000,
  });
  t.same(s.waves[0], {
    index: 0,
    number: 1,
    state: 'active',
    plannedSize: 20,
    size: 20,
    members: 20,
    pending: 4,
    sent: 1,
    applied: 11,
    rejected: 3,
    failing: 1,
    timedOut: 0,
    unreachable: 0,
    verifying: 0,
    verified: 0,
    unverified: 0,
    reverted: 0,
    acked: 12,
    responded: 15,
    ackRatio: 12 / 20,
    failureRatio: 4 / 15,
    failureCounted: true,
    unreachableRatio: 0,
    rejectedByReason: { expired: 2, wrong_group: 1 },
    thresholds: { ackThreshold: 0.95, failureThreshold: 0.5, minDevices: 5, maxUnreachable: 0.5, timeoutSeconds: 3600, soakSeconds: 0, requireVerified: true },
    startedAt: T0,
    deadline: T0 + 3600_000,
    soakUntil: null,
    endedAt: null,
  });
  t.match(s.waves[1], { index: 1, state: 'pending', size: 20, pending: 20, ackRatio: 0, failureRatio: 0, deadline: null });
  t.same(
    s.decisions.map((d) => d.action),
    ['start'],
  );

  tick(r, T0 + 3600_000, () => true);
  const after = summary(r);
  t.equal(after.state, 'held');
  t.match(after.waves[0], { state: 'missed', unreachable: 4, timedOut: 1, ackRatio: 12 / 16, endedAt: T0 + 3600_000 });
  t.equal(after.nextDeadline, null);
  t.match(after.decisions.at(-1), { action: 'hold', reason: 'ack_threshold', wave: 0 });
});

t.test('a summary is detached from the record it was made from', async (t) => {
  const r = rollout();
  start(r, T0, 'alice', () => true);
  ack(r, r.waves[0].members[0], 'rejected', 'expired');
  const s = summary(r);
  s.waves[0].thresholds.ackThreshold = 0;
  s.waves[0].rejectedByReason.expired = 99;
  s.decisions[0].actor = 'mallory';
  s.bundle.seq = 0;
  t.equal(r.waves[0].thresholds.ackThreshold, 0.95);
  t.same(r.waves[0].rejectedByReason, { expired: 1 });
  t.equal(r.decisions[0].actor, 'alice');
  t.equal(r.bundle.seq, 7);
  t.same(JSON.parse(JSON.stringify(s)), s, 'plain JSON for the API');
});

t.test('a compacted rollout (its members dropped, its counts kept) is shown from its counts, with finite ratios', async (t) => {
  // docs/storage.md, bounded growth: the record comes back from the store with no members.
  const r = rollout();
  const wave0 = r.waves[0].members;
  const offline = new Set(wave0.slice(16));
  start(r, T0, 'alice', (id) => !offline.has(id));
  for (const id of wave0.slice(0, 16)) ack(r, id, 'applied');
  tick(r, T0 + 3600_000, () => true);
  const before = summary(r, T0 + 3600_000).waves;
  t.equal(before[0].unreachable, 4);
  r.devices = Object.create(null);
  for (const w of r.waves) w.members = [];
  const s = summary(r, T0 + 3600_000);
  for (const [i, w] of s.waves.entries()) {
    t.equal(w.members, before[i].members, `wave ${i}: its members are counted from its counts`);
    t.equal(w.size, before[i].size);
    t.equal(w.ackRatio, before[i].ackRatio, `wave ${i}: the ack ratio is what it was`);
    t.equal(w.unreachableRatio, before[i].unreachableRatio, `wave ${i}: the unreachable ratio is a number`);
    t.equal(w.failureCounted, before[i].failureCounted);
  }
  t.equal(s.devices, 40);
  t.doesNotThrow(() => JSON.parse(JSON.stringify(s)));
});
