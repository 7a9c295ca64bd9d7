// Health-checked devices in a rollout (docs/architecture.md §9): verified counting, requireVerified on
// and off, a mixed fleet, reverts holding at once, and reconciliation from a state whose
// provisional window is open.
import t from 'tap';
import { appliedDevices, createRollout, deviceAcked, deviceOnline, deviceState, pinFailure, rebuildCounters, resume, start, tick } from '../../../gateway/rollout/engine.ts';
import { waveFigures } from '../../../gateway/rollout/figures.ts';
import { hasHealthCheck, statusOfAck, statusOfState } from '../../../gateway/rollout/verification.ts';
import type { DeviceAck, Effect, Rollout } from '../../../gateway/rollout/types.ts';

const T0 = 1_700_000_000_000;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };
const PREVIOUS = 'cd'.repeat(32);
const everyone = () => true;

function make(n: number, wave0: Record<string, unknown> = {}): Rollout {
  const ids = Array.from({ length: n }, (_, i) => `dev-${i}`);
  const c = createRollout({ id: 'r1', bundle: BUNDLE, target: { group: 'meters' }, deviceIds: ids, plan: { waves: [{ size: 10, ...wave0 }, { size: '100%' }], seed: 's' }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  start(c.rollout, T0, 'alice', everyone);
  return c.rollout;
}

const base = { bundleId: BUNDLE.id, seq: BUNDLE.seq };
const verified = (r: Rollout, id: string, now = T0 + 1000) => deviceAcked(r, id, { ...base, status: 'verified', healthChecked: true }, now);
const applied = (r: Rollout, id: string, healthChecked: boolean, extra: Partial<DeviceAck> = {}) => deviceAcked(r, id, { ...base, status: 'applied', healthChecked, ...extra }, T0 + 1000);
const reverted = (r: Rollout, id: string, endpoint = 'telemetry.example:8443') => deviceAcked(r, id, { ...base, status: 'reverted', healthChecked: true, endpoint }, T0 + 2000);
const wave0 = (r: Rollout) => r.waves[0].members;
const types = (fx: Effect[]) => fx.map((e) => e.type);
const countersHold = (t: Pick<typeof import('tap').default, 'equal'>, r: Rollout) => t.equal(rebuildCounters(JSON.parse(JSON.stringify(r))), false, 'per-wave counters agree with the device records');

t.test('a device has a health check when its model\'s manifest declares one and it runs that firmware', async (t) => {
  const manifests = new Map([
    ['th-100', { model: 'th-100', firmware: '2.0.0', healthCheck: { commitTimeoutSeconds: 30 } }],
    ['th-50', { model: 'th-50', firmware: '1.0.0' }],
  ]);
  t.equal(hasHealthCheck(manifests, 'th-100', '2.0.0'), true);
  t.equal(hasHealthCheck(manifests, 'th-100', '1.9.0'), false, 'older firmware of the model: no health check');
  t.equal(hasHealthCheck(manifests, 'th-50', '1.0.0'), false, 'a manifest without one');
  t.equal(hasHealthCheck(manifests, 'lock-9', '1.0.0'), false, 'a model with no manifest');
  t.equal(hasHealthCheck(manifests, null, null), false, 'a device that never said');
});

t.test('requireVerified on: an applied ack of a health-checked device is verifying, and only verified counts', async (t) => {
  const r = make(20);
  const m = wave0(r);
  for (const id of m) applied(r, id, true);
  t.equal(r.waves[0].count.verifying, 10);
  t.match(waveFigures(r.waves[0]), { verifying: 10, acked: 0, ackRatio: 0, responded: 10 });
  t.equal(r.waves[0].state, 'active', 'verifying is not done');
  for (const id of m.slice(0, 9)) verified(r, id);
  t.equal(r.waves[0].state, 'active', '9 of 10 verified is under 0.95');
  const fx = verified(r, m[9]);
  t.equal(r.waves[0].state, 'soaking');
  t.ok(types(fx).includes('persist'));
  t.match(waveFigures(r.waves[0]), { verified: 10, verifying: 0, acked: 10, ackRatio: 1 });
  t.same(verified(r, m[9]), [], 'a duplicate verified changes nothing');
  countersHold(t, r);
});

t.test('requireVerified off: verifying and unverified devices count as applied did', async (t) => {
  const r = make(20, { requireVerified: false });
  const m = wave0(r);
  for (const id of m.slice(0, 5)) applied(r, id, true);
  for (const id of m.slice(5)) applied(r, id, true, { unverified: true });
  t.match(waveFigures(r.waves[0]), { verifying: 5, unverified: 5, acked: 10, ackRatio: 1 });
  t.equal(r.waves[0].state, 'soaking');
  countersHold(t, r);
});

t.test('an unverified commit does not count under requireVerified, and resuming with it off lets the wave pass', async (t) => {
  const r = make(20, { timeoutSeconds: 60 });
  for (const id of wave0(r)) applied(r, id, true, { unverified: true });
  t.match(waveFigures(r.waves[0]), { unverified: 10, acked: 0 });
  tick(r, T0 + 60_000, everyone);
  t.equal(r.state, 'held');
  t.match(r.decisions.at(-1), { action: 'hold', reason: 'ack_threshold' });
  const res = resume(r, T0 + 61_000, 'alice', everyone, { requireVerified: false });
  t.ok(res.ok);
  t.equal(r.waves[0].state, 'soaking', 'judged at once with the new setting');
  t.equal(r.waves[0].thresholds.requireVerified, false);
});

t.test('requireVerified must be a boolean in a plan', async (t) => {
  const c = createRollout({ id: 'r', bundle: BUNDLE, target: { group: 'meters' }, deviceIds: ['a'], plan: { waves: [{ size: '100%', requireVerified: 'yes' }] }, now: T0 });
  t.match(c, { ok: false, errors: ['waves[0].requireVerified must be true or false, got "yes"'] });
});

t.test('a mixed fleet: devices without a health check count applied, those with one count verified', async (t) => {
  const r = make(20);
  const m = wave0(r);
  // Older firmware (no health check) on half the wave.
  for (const id of m.slice(0, 5)) applied(r, id, false);
  for (const id of m.slice(5)) applied(r, id, true);
  t.match(waveFigures(r.waves[0]), { applied: 5, verifying: 5, acked: 5, ackRatio: 0.5 });
  for (const id of m.slice(5)) verified(r, id);
  t.match(waveFigures(r.waves[0]), { applied: 5, verified: 5, acked: 10, ackRatio: 1 });
  t.equal(r.waves[0].state, 'soaking');
  t.same(appliedDevices(r).sort(), [...m].sort(), 'every member runs the bundle: a rollback reaches them all');
  countersHold(t, r);
});

t.test('reverted counts against the failure ratio at once and holds inside the ack that crossed it, with the endpoint', async (t) => {
  const r = make(40, { failureThreshold: 0.1, minDevices: 5 });
  const m = wave0(r);
  for (const id of m.slice(0, 4)) verified(r, id);
  t.equal(r.state, 'running');
  const fx = reverted(r, m[4], 'telemetry.example:8443');
  t.same(types(fx), ['held', 'persist'], 'held in the handling of this ack: 1 of 5 responded > 0.1');
  t.match(fx[0], { type: 'held', wave: 0, reason: 'failure_threshold' });
  t.equal(r.state, 'held');
  t.match(r.decisions.at(-1), { action: 'hold', reason: 'failure_threshold', endpoint: 'telemetry.example:8443', figures: { reverted: 1, verified: 4, failureRatio: 0.2 } });
  t.match(r.devices[m[4]], { status: 'reverted', reason: 'telemetry.example:8443' });
  t.same(appliedDevices(r).includes(m[4]), false, 'a reverted device does not run the bundle');
  countersHold(t, r);
});

t.test('a revert under minDevices waits for enough responders, then the one that crosses holds', async (t) => {
  const r = make(40, { failureThreshold: 0.1, minDevices: 5 });
  const m = wave0(r);
  t.same(types(reverted(r, m[0])), ['persist'], 'one responder of five needed');
  for (const id of m.slice(1, 4)) verified(r, id);
  t.equal(r.state, 'running');
  t.same(types(verified(r, m[4])), ['held', 'persist'], 'the fifth responder makes the ratio count: 1/5 > 0.1');
});

t.test('a reverted device is never sent the bundle again: not on connect, not on its state, not on resume', async (t) => {
  const r = make(40, { failureThreshold: 0.5 });
  const m = wave0(r);
  reverted(r, m[0]);
  t.same(deviceOnline(r, m[0], T0 + 3000), []);
  t.same(deviceState(r, m[0], { seq: 3, bundleId: PREVIOUS, healthChecked: true }, T0 + 3000), [], 'on its previous seq, by its own choice');
  t.equal(r.devices[m[0]].status, 'reverted');
  // Held and resumed: the wave's behind members are sent, the reverted one is not.
  const held = make(40, { failureThreshold: 0, minDevices: 1, timeoutSeconds: 60 });
  const h = wave0(held);
  reverted(held, h[0]);
  t.equal(held.state, 'held');
  const res = resume(held, T0 + 5000, 'alice', everyone, { failureThreshold: 0.5 });
  if (!res.ok) throw new Error(res.message);
  const sent = res.effects.flatMap((e) => (e.type === 'send' ? e.deviceIds : []));
  t.notOk(sent.includes(h[0]), 'resume does not resend it');
  t.same(applied(held, h[0], true), [], 'a late applied ack does not undo the revert');
  t.same(verified(held, h[0]), [], 'nor a verified one');
  t.equal(held.devices[h[0]].status, 'reverted');
});

t.test('reconciliation from state: an open provisional window is verifying, never done', async (t) => {
  const r = make(20);
  const m = wave0(r);
  const window = { previousSeq: 3, previousBundleId: PREVIOUS };
  for (const id of m) deviceState(r, id, { seq: BUNDLE.seq, bundleId: BUNDLE.id, healthChecked: true, provisional: window }, T0 + 1000);
  t.match(waveFigures(r.waves[0]), { verifying: 10, acked: 0 });
  t.equal(r.waves[0].state, 'active');
  // A state with no window says nothing new of a verifying member: it waits for its verdict.
  t.same(deviceState(r, m[0], { seq: BUNDLE.seq, bundleId: BUNDLE.id, healthChecked: true }, T0 + 2000), []);
  t.equal(r.devices[m[0]].status, 'verifying');
  // One never seen to apply that runs it committed: unverified, not verified; its resent ack upgrades it.
  const late = r.waves[1].members[0];
  deviceState(r, late, { seq: BUNDLE.seq, bundleId: BUNDLE.id, healthChecked: true }, T0 + 2000);
  t.equal(r.devices[late].status, 'unverified');
  verified(r, late);
  t.equal(r.devices[late].status, 'verified');
  verified(r, m[0]);
  t.equal(r.devices[m[0]].status, 'verified');
  // A window reported again after the verdict changes nothing.
  t.same(deviceState(r, m[0], { seq: BUNDLE.seq, bundleId: BUNDLE.id, healthChecked: true, provisional: window }, T0 + 3000), []);
  // A device without a health check that holds the bundle is applied, as before.
  const plain = make(20);
  deviceState(plain, wave0(plain)[0], { seq: BUNDLE.seq, bundleId: BUNDLE.id }, T0 + 1000);
  t.equal(plain.devices[wave0(plain)[0]].status, 'applied');
  countersHold(t, r);
});

t.test('the status table: verdicts replace what they may, applied never moves a device back', async (t) => {
  const a = (status: DeviceAck['status'], extra: Partial<DeviceAck> = {}): DeviceAck => ({ ...base, status, ...extra });
  t.equal(statusOfAck('sent', a('applied', { healthChecked: true })), 'verifying');
  t.equal(statusOfAck('verifying', a('applied', { healthChecked: true, unverified: true })), 'unverified');
  t.equal(statusOfAck('verified', a('applied', { healthChecked: true })), null);
  t.equal(statusOfAck('verifying', a('verified')), 'verified');
  t.equal(statusOfAck('failing', a('verified')), null, 'telemetry proved it fails: a verified ack does not clear it');
  t.equal(statusOfAck('verified', a('reverted')), 'reverted');
  t.equal(statusOfAck('reverted', a('reverted')), null);
  t.equal(statusOfAck('verifying', a('rejected')), null, 'a rejection from a device that holds it is a replay');
  t.equal(statusOfAck('timed_out', a('applied')), 'applied');
  t.equal(statusOfState('sent', { seq: 7, bundleId: BUNDLE.id, healthChecked: true, provisional: { previousSeq: 3, previousBundleId: null } }), 'verifying');
  t.equal(statusOfState('verifying', { seq: 7, bundleId: BUNDLE.id, healthChecked: true }), null);
  t.equal(statusOfState('sent', { seq: 7, bundleId: BUNDLE.id, healthChecked: true }), 'unverified');
  t.equal(statusOfState('applied', { seq: 7, bundleId: BUNDLE.id }), null);
});

t.test('a record written before the health-check statuses existed takes them', async (t) => {
  const r = make(20);
  for (const w of r.waves) for (const k of ['verifying', 'verified', 'unverified', 'reverted'] as const) delete (w.count as Partial<typeof w.count>)[k];
  for (const w of r.waves) delete (w.thresholds as Partial<typeof w.thresholds>).requireVerified;
  const m = wave0(r);
  applied(r, m[0], true);
  t.equal(r.waves[0].count.verifying, 1);
  t.match(waveFigures(r.waves[0]), { verifying: 1, verified: 0, acked: 0 }, 'a missing requireVerified reads as on');
  countersHold(t, r);
});

t.test('a completed rollout resends its bundle to a member behind it, never to one that reverted', async (t) => {
  const ids = Array.from({ length: 10 }, (_, i) => `dev-${i}`);
  const c = createRollout({ id: 'r2', bundle: BUNDLE, target: { group: 'meters' }, deviceIds: ids, plan: { waves: [{ size: '100%', failureThreshold: 1, ackThreshold: 0.5 }], seed: 's' }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  const r = c.rollout;
  start(r, T0, 'alice', everyone);
  reverted(r, ids[0]);
  for (const id of ids.slice(1)) verified(r, id);
  tick(r, T0 + 5000, everyone);
  t.equal(r.state, 'completed');
  t.same(deviceState(r, ids[0], { seq: 3, bundleId: PREVIOUS, healthChecked: true }, T0 + 6000), [], 'reverted: on its previous pins by its own choice');
  t.same(
    deviceState(r, ids[1], { seq: 0, bundleId: null, healthChecked: true }, T0 + 6000).map((e) => e.type),
    ['send'],
    'reflashed: behind the rollout, sent it again',
  );
});

t.test('requireVerified on: a member that had not verified and reports pin failures does not start counting toward the ack ratio', async (t) => {
  const r = make(20, { failureThreshold: 0.5 });
  const m = wave0(r);
  for (const id of m.slice(0, 8)) verified(r, id);
  applied(r, m[8], true, { unverified: true });
  applied(r, m[9], true);
  t.match(waveFigures(r.waves[0]), { verified: 8, unverified: 1, verifying: 1, acked: 8, ackRatio: 0.8 });
  // Both fail on the new pins: evidence against the bundle, which must not be what lifts the wave
  // over its ack threshold.
  pinFailure(r, m[8], { bundleId: BUNDLE.id }, T0 + 3000);
  pinFailure(r, m[9], { bundleId: BUNDLE.id }, T0 + 3000);
  t.match(waveFigures(r.waves[0]), { failing: 2, unverified: 0, verifying: 0, acked: 8, ackRatio: 0.8 });
  t.equal(r.waves[0].state, 'active', 'pin failures do not pass the wave');
  // One that verified and fails later still counts, as one without a health check that applied does.
  pinFailure(r, m[0], { bundleId: BUNDLE.id }, T0 + 4000);
  t.match(waveFigures(r.waves[0]), { verified: 7, failing: 3, acked: 8 });
  // A health-checked device with no ack seen (still `sent`) that reports failures had not verified either.
  const r2 = make(20, { failureThreshold: 0.5 });
  pinFailure(r2, wave0(r2)[0], { bundleId: BUNDLE.id, healthChecked: true }, T0 + 3000);
  pinFailure(r2, wave0(r2)[1], { bundleId: BUNDLE.id, healthChecked: false }, T0 + 3000);
  t.match(waveFigures(r2.waves[0]), { failing: 2, acked: 1 }, 'one without a health check runs it: it applied, acked or not');
  countersHold(t, r);
  // The mark is the member's (stored with it); the count is rebuilt from the members at load.
  const loaded: Rollout = JSON.parse(JSON.stringify(r));
  delete loaded.waves[0].failingUnverified;
  rebuildCounters(loaded);
  t.match(waveFigures(loaded.waves[0]), { failing: 3, acked: 8 });
});

t.test('requireVerified off: a failing member counts as what it was, every holder of the bundle', async (t) => {
  const r = make(20, { failureThreshold: 0.5, requireVerified: false });
  const m = wave0(r);
  for (const id of m.slice(0, 9)) applied(r, id, true, { unverified: true });
  pinFailure(r, m[0], { bundleId: BUNDLE.id }, T0 + 3000);
  t.match(waveFigures(r.waves[0]), { unverified: 8, failing: 1, acked: 9 });
});
