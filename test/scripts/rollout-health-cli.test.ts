// The CLI's side of health checks and deadlines (docs/architecture.md §9): rollout create with
// --require-verified and --deadline-cert (the PEM sent, the gateway's warnings printed), and the
// status view with verified and reverted counts, the endpoint of a revert hold and the deadline line.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveCli } from '../fixtures/cli.ts';
import { fleet, pin } from '../fixtures/gateway.ts';
import { makeCertificate } from '../../device-sim/endpoints.ts';
import { deadlineLine, oneLine, renderRollout, type RolloutView } from '../../scripts/progress.ts';

t.test('rollout create --require-verified false --deadline-cert FILE; bad flags are usage errors', async (t) => {
  const { h, pinwave } = await liveCli(t);
  await fleet(h, 2);
  const pushed = JSON.parse((await pinwave(['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('new')}`, '--pin', `api.example.com=${pin('backup')}`, '--json'])).stdout);
  const cert = join(h.dir, 'api.pem');
  writeFileSync(cert, makeCertificate('api.example.com', 1).cert);
  h.clock.advance(Date.now() - h.clock.now()); // the certificate's dates are the real clock's
  const created = await pinwave(['rollout', 'create', '--bundle', pushed.id, '--group', 'thermostats', '--waves', '100%', '--timeout', '2d', '--require-verified', 'false', '--deadline-cert', cert, '--margin-days', '0', '--target-ratio', '90%']);
  t.equal(created.code, 0, created.stderr);
  t.match(created.stderr, /^warning: deadline: the plan's waves take up to 48\.0 h/m, 'the plan does not fit a certificate that expires tomorrow');
  t.match(created.stdout, /^deadline \d{4}-\d\d-\d\d \d\d:\d\dZ {2}(on track|AT RISK) {2}no progress yet {2}0\/2 devices of 90%$/m);
  const r = (await h.gw.listRollouts())[0];
  t.equal(r.waves[0].thresholds.requireVerified, false);
  t.match(r.deadline, { targetRatio: 0.9, source: { kind: 'certificate', marginDays: 0 } });
  t.equal((await pinwave(['rollout', 'create', '--bundle', pushed.id, '--group', 'thermostats', '--require-verified', 'maybe'])).code, 2);
  t.equal((await pinwave(['rollout', 'create', '--bundle', pushed.id, '--group', 'thermostats', '--deadline', '2027-01-01Z', '--deadline-cert', cert])).code, 2);
  t.equal((await pinwave(['rollout', 'create', '--bundle', pushed.id, '--group', 'thermostats', '--deadline-cert', join(h.dir, 'missing.pem')])).code, 2);
});

t.test('the status view shows verified and reverted beside applied, the endpoint of a revert hold, and the deadline', async (t) => {
  const r: RolloutView = {
    id: 'r-1',
    state: 'held',
    bundle: { id: 'ab'.repeat(32), seq: 2, group: 'thermostats' },
    devices: 10,
    waves: [{ index: 0, state: 'missed', size: 10, sent: 0, applied: 2, rejected: 0, failing: 0, unreachable: 0, timedOut: 0, verifying: 1, verified: 2, unverified: 0, reverted: 5, acked: 4, ackRatio: 0.4, failureRatio: 0.5, thresholds: { ackThreshold: 0.95, failureThreshold: 0.02 } }],
    decisions: [{ at: Date.UTC(2027, 0, 1), actor: 'system', action: 'hold', reason: 'failure_threshold', wave: 0, endpoint: 'api.example.com:443' }],
    deadline: { status: 'at_risk', at: Date.UTC(2027, 1, 1), targetRatio: 0.95, target: 10, done: 4, projected: Date.UTC(2027, 2, 1) },
  };
  const lines = renderRollout(r);
  t.match(lines[1], /4\/10 done .*applied 2 {2}verified 2 {2}verifying 1 {2}reverted 5/);
  t.equal(lines[2], deadlineLine(r.deadline!));
  t.equal(lines[2], 'deadline 2027-02-01 00:00Z  AT RISK  projected 2027-03-01 00:00Z  4/10 devices of 95%');
  t.match(lines[3], /hold wave 1: failure_threshold on api\.example\.com:443 \(system\)$/);
  t.match(oneLine(r), /missed done 4\/10 applied 2 verified 2 verifying 1 reverted 5 .* deadline at_risk$/, 'the one-line view counts what is done out of the wave, as the terminal view');
  const all = { ...r, state: 'completed', waves: [{ ...r.waves[0], state: 'passed', applied: 0, verifying: 0, reverted: 0, verified: 10, acked: 10, ackRatio: 1, failureRatio: 0 }] };
  t.match(oneLine(all), ' passed done 10/10 applied 0 verified 10 ', 'a wave every device verified is 10/10 done, not "applied 0/10"');
});
