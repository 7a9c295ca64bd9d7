// `pinwave rollout status` as a terminal shows it (scripts/progress.ts), from the API's summary of
// rollouts the engine drove: what a line says must be what the gate decided.
import t from 'tap';
import { abort, createRollout, deviceAcked, start, tick } from '../../gateway/rollout/engine.ts';
import { summary } from '../../gateway/rollout/summary.ts';
import type { Rollout } from '../../gateway/rollout/types.ts';
import { oneLine, renderRollout } from '../../scripts/progress.ts';

const T0 = 1_700_000_000_000;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };

function rollout(n: number, waves: unknown[]): Rollout {
  const c = createRollout({ id: 'r1', bundle: BUNDLE, target: { group: 'meters' }, deviceIds: Array.from({ length: n }, (_, i) => `dev-${i}`), plan: { waves, seed: 's' }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return c.rollout;
}

t.test('a wave held as dark shows its unreachable share against maxUnreachable, and an ack ratio over the reachable only', async (t) => {
  const r = rollout(10, [{ size: '100%', minDevices: 1 }]);
  const online = new Set(['dev-0', 'dev-1', 'dev-2', 'dev-3']);
  const res = start(r, T0, 'alice', (id) => online.has(id));
  if (!res.ok) throw new Error(res.message);
  for (const id of online) deviceAcked(r, id, { status: 'applied', bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0);
  tick(r, T0 + 3600_000, (id) => online.has(id));
  t.equal(r.state, 'held');
  t.match(r.decisions.at(-1), { action: 'hold', reason: 'max_unreachable' });

  const lines = renderRollout(summary(r));
  const wave = lines.find((l) => l.startsWith('wave 1/1'))!;
  t.match(wave, 'ack 100% of 4 reachable ≥ 95%', 'the 100% says what it is over');
  t.match(wave, 'unreachable 6/10 60% > 50%', 'the unreachable share, over its limit: what held the wave');
  t.match(lines, ['rollout r1  held  bundle seq 7', /./, 'held at wave 1: max_unreachable: 6/10 devices (60%) offline for the whole wave > 50%; the ack ratio counts only the 4 reachable (system)']);
  t.match(oneLine(summary(r)), 'unreachable 6 ack 100% of 4 reachable');
});

t.test('a wave held under its ack threshold says how many of the reachable acked', async (t) => {
  const r = rollout(10, [{ size: '100%', minDevices: 1 }]);
  const res = start(r, T0, 'alice', () => true);
  if (!res.ok) throw new Error(res.message);
  for (const id of ['dev-0', 'dev-1', 'dev-2']) deviceAcked(r, id, { status: 'applied', bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0);
  tick(r, T0 + 3600_000, () => true);
  const lines = renderRollout(summary(r));
  t.ok(lines.includes('held at wave 1: ack_threshold: 3/10 reachable devices acked (30%) < 95% (system)'), lines.join('\n'));
  t.notMatch(lines.join('\n'), 'reachable ≥', 'no unreachable member: the ack figure needs no qualifier');
});

t.test("an aborted rollout's waves show aborted and cancelled, never active or soaking", async (t) => {
  const r = rollout(100, [{ size: 10 }, { size: 50 }, { size: '100%' }]);
  const res = start(r, T0, 'alice', () => true);
  if (!res.ok) throw new Error(res.message);
  deviceAcked(r, r.waves[0].members[0], { status: 'applied', bundleId: BUNDLE.id, seq: BUNDLE.seq }, T0);
  abort(r, T0 + 1000, 'carol');
  const lines = renderRollout(summary(r));
  t.match(lines[1], /^wave 1\/3 {2}aborted {4}\[/);
  t.equal(lines[2], 'wave 2/3  cancelled  40 devices never sent: the rollout was aborted first');
  t.equal(lines[3], 'wave 3/3  cancelled  50 devices never sent: the rollout was aborted first');
  t.match(oneLine(summary(r)), /^r1 aborted wave 1\/3 aborted done 1\/10 applied 1 /, 'the one-line view names the wave that was running, not a cancelled one');
});
