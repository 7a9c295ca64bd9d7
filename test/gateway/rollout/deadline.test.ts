// Deadline-aware rollouts (docs/architecture.md §9): parsing (a date, or a certificate's notAfter less a
// margin), the fit of the plan at creation, and the projection on_track → at_risk, with an injected clock.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { checkDeadline, createRollout, deviceAcked, start, tick } from '../../../gateway/rollout/engine.ts';
import { deadlineStatus, fit, parseDeadline } from '../../../gateway/rollout/deadline.ts';
import { summary } from '../../../gateway/rollout/summary.ts';
import type { Rollout, RolloutDeadline } from '../../../gateway/rollout/types.ts';
import { makeCertificate } from '../../../device-sim/endpoints.ts';

const T0 = Date.parse('2027-01-01T00:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };
const everyone = () => true;

function make(deadline: RolloutDeadline | null, waves: unknown[] = [{ size: 10, timeoutSeconds: 3600 }, { size: '100%', timeoutSeconds: 3600 }]): Rollout {
  const ids = Array.from({ length: 100 }, (_, i) => `dev-${i}`);
  const c = createRollout({ id: 'r1', bundle: BUNDLE, target: { group: 'meters' }, deviceIds: ids, plan: { waves, seed: 's' }, deadline, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return c.rollout;
}

const dated = (iso: string, targetRatio?: number): RolloutDeadline => {
  const d = parseDeadline({ deadline: iso, targetRatio });
  if (!d.ok || !d.deadline) throw new Error('bad deadline');
  return d.deadline;
};

t.test('a deadline is an ISO date with a zone, or a certificate\'s notAfter less marginDays', async (t) => {
  t.same(parseDeadline({}), { ok: true, deadline: null });
  t.match(parseDeadline({ deadline: '2027-03-01T00:00:00Z' }), { ok: true, deadline: { at: Date.parse('2027-03-01T00:00:00Z'), targetRatio: 0.95, source: { kind: 'date' }, status: null } });
  t.match(parseDeadline({ deadline: '2027-03-01', targetRatio: 0.9 }), { ok: true, deadline: { at: Date.parse('2027-03-01T00:00:00Z'), targetRatio: 0.9 } });
  t.match(parseDeadline({ deadline: '2027-03-01T00:00:00' }), { ok: false, errors: [/deadline must be an ISO 8601 date with a time zone/] }, 'no zone: refused, never read in local time');
  t.match(parseDeadline({ deadline: '2027-02-30T00:00:00Z' }), { ok: false, errors: [/deadline must be .*got "2027-02-30T00:00:00Z"/] }, 'a day the month lacks: refused, not moved to March');
  t.match(parseDeadline({ deadline: 'soon', targetRatio: 2 }), { ok: false, errors: [/targetRatio must be above 0 and at most 1, got 2/, /deadline must be/] });
  t.match(parseDeadline({ targetRatio: 0.9 }), { ok: false, errors: ['targetRatio needs a deadline'] });
  t.match(parseDeadline({ deadline: 'certificate' }), { ok: false, errors: [/certificate must be a PEM certificate/] });
  t.match(parseDeadline({ deadline: 'certificate', certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' }), { ok: false, errors: [/certificate does not parse/] });
  t.match(parseDeadline({ deadline: '2027-03-01Z', marginDays: 3 }), { ok: false, errors: ['marginDays is only for deadline "certificate"', /deadline must be/] });

  const pem = makeCertificate('telemetry.example', 90).cert;
  const notAfter = Date.parse(new X509Certificate(pem).validTo);
  const d = parseDeadline({ deadline: 'certificate', certificate: pem, marginDays: 14 });
  if (!d.ok || !d.deadline) throw new Error('expected a deadline');
  t.equal(d.deadline.at, notAfter - 14 * DAY, 'notAfter less the margin');
  t.match(d.deadline.source, { kind: 'certificate', notAfter, marginDays: 14, subject: /telemetry\.example/ });
  const dflt = parseDeadline({ deadline: 'certificate', certificate: pem });
  t.equal(dflt.ok && dflt.deadline?.at, notAfter - 7 * DAY, 'the default margin is 7 days');
  t.match(parseDeadline({ deadline: 'certificate', certificate: pem, marginDays: -1 }), { ok: false, errors: [/marginDays must be a number of days from 0 to 3650, got -1/] });
});

t.test('at creation: the plan\'s worst case against the deadline is a warning, never a refusal', async (t) => {
  const roomy = make(dated('2027-01-02T00:00:00Z'));
  t.same(fit(roomy, T0), { fits: true, plannedEnd: T0 + 2 * HOUR, warnings: [] });
  const tight = make(dated('2027-01-01T01:30:00Z'));
  t.match(fit(tight, T0), { fits: false, plannedEnd: T0 + 2 * HOUR, warnings: [/take up to 2\.0 h .* after the deadline 2027-01-01T01:30:00\.000Z/] });
  const soaks = make(dated('2027-01-01T02:30:00Z'), [{ size: 10, timeoutSeconds: 3600, soakSeconds: 1800 }, { size: '100%', timeoutSeconds: 3600 }]);
  t.match(fit(soaks, T0), { fits: true, plannedEnd: T0 + 2.5 * HOUR }, 'soaks count: ending exactly at the deadline is in time');
  const soaksLater = make(dated('2027-01-01T02:29:59Z'), [{ size: 10, timeoutSeconds: 3600, soakSeconds: 1800 }, { size: '100%', timeoutSeconds: 3600 }]);
  t.equal(fit(soaksLater, T0)?.fits, false);
  const passed = make(dated('2026-12-01T00:00:00Z'));
  t.match(fit(passed, T0), { fits: false, warnings: [/has passed/] });
  const low = make(dated('2027-02-01T00:00:00Z', 0.99));
  t.match(fit(low, T0), { fits: false, warnings: [/ack threshold of 0\.95, below the target share 0\.99/] });
  t.equal(fit(make(null), T0), null);
});

t.test('while it runs: on_track at the rate so far, at_risk once the projection passes the deadline, as a decision and an effect', async (t) => {
  // 100 devices, 95 needed by the deadline 10 h after the start.
  const r = make(dated('2027-01-01T10:00:00Z'), [{ size: 10, timeoutSeconds: 3600 }, { size: '100%', timeoutSeconds: 7200 }]);
  start(r, T0, 'alice', everyone);
  t.match(deadlineStatus(r, T0), { status: 'on_track', target: 95, done: 0, projected: null });
  t.same(checkDeadline(r, T0), [], 'on track at the start: nothing to record');
  // 10 devices in the first 30 min: 85 more at that rate take 4.25 h → on track.
  for (const id of r.waves[0].members) deviceAcked(r, id, { status: 'applied', bundleId: BUNDLE.id, seq: 7 }, T0 + HOUR / 2);
  tick(r, T0 + HOUR / 2, everyone);
  t.match(deadlineStatus(r, T0 + HOUR / 2), { status: 'on_track', done: 10, projected: T0 + HOUR / 2 + 4.25 * HOUR });
  // Nothing more for 8 h (wave 2's devices offline): 85 at 10 per 8.5 h → far after the deadline.
  const late = T0 + 8.5 * HOUR;
  const fx = checkDeadline(r, late);
  t.match(fx, [{ type: 'at_risk', deadline: Date.parse('2027-01-01T10:00:00Z') }, { type: 'persist' }]);
  t.match(r.decisions.at(-1), { action: 'at_risk', actor: 'system', reason: 'projected_after_deadline', deadline: Date.parse('2027-01-01T10:00:00Z'), projected: late + 72.25 * HOUR });
  t.equal(r.deadline?.status, 'at_risk');
  t.same(checkDeadline(r, late + 1000), [], 'recorded once');
  t.match(summary(r, late), { deadline: { status: 'at_risk', done: 10, target: 95 } });
  // The second wave comes back: 95 done, target reached → on_track, recorded, no at_risk effect.
  for (const id of r.waves[1].members.slice(0, 85)) deviceAcked(r, id, { status: 'applied', bundleId: BUNDLE.id, seq: 7 }, late + 1000);
  t.same(checkDeadline(r, late + 2000).map((e) => e.type), ['persist']);
  t.match(r.decisions.at(-1), { action: 'on_track', reason: 'projected_by_deadline' });
});

t.test('a held rollout is judged too; with no progress the plan\'s remaining worst case decides', async (t) => {
  const r = make(dated('2027-01-01T01:00:00Z'), [{ size: 10, timeoutSeconds: 1800 }, { size: '100%', timeoutSeconds: 1800 }]);
  start(r, T0, 'alice', () => false);
  t.match(deadlineStatus(r, T0), { status: 'on_track', projected: null, plannedEnd: T0 + HOUR });
  tick(r, T0 + 1800_000, () => false);
  t.equal(r.state, 'held', 'dark wave');
  const fx = checkDeadline(r, T0 + 1800_001);
  t.match(fx, [{ type: 'at_risk', projected: null }, { type: 'persist' }], 'a resume would restart the wave: past the deadline');
  t.match(r.decisions.at(-1), { action: 'at_risk', reason: 'plan_after_deadline', from: 'held', to: 'held' });
});

t.test('a rollout without a deadline, or one that ended, records nothing', async (t) => {
  const none = make(null);
  start(none, T0, 'alice', everyone);
  t.same(checkDeadline(none, T0 + DAY), []);
  t.equal(summary(none, T0).deadline, undefined);
  const pending = make(dated('2027-01-01T00:10:00Z'));
  t.same(checkDeadline(pending, T0), [], 'not started: nothing is judged');
});
