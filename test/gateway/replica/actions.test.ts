// Operator actions forwarded from a follower to the leader (docs/architecture.md §8,
// gateway/replica/actions.ts), on a PostgreSQL database of the test's own: an action the follower
// gave up on before the leader took it is never performed; one the leader took is not withdrawn
// behind its back, so the caller is never told "try again" about an action that runs.
import t from 'tap';
import pg from 'pg';
import { Actions } from '../../../gateway/replica/actions.ts';
import { testDatabase } from '../store/fixtures/pg-database.ts';
import { PostgresStore } from '../../../gateway/store/postgres.ts';

async function pool(t: Parameters<typeof testDatabase>[0] & { teardown(fn: () => unknown): void }): Promise<pg.Pool> {
  const url = await testDatabase(t);
  const s = new PostgresStore({ url });
  await s.open();
  await s.close();
  const p = new pg.Pool({ connectionString: url, max: 4 });
  t.teardown(() => p.end());
  return p;
}

t.test('an action the leader took when the follower times out is answered, not withdrawn and performed anyway', async (t) => {
  const p = await pool(t);
  const follower = new Actions({ pool: p, replicaId: 'pinwave@b', now: Date.now, timeoutMs: 400 });
  const leader = new Actions({ pool: p, replicaId: 'pinwave@a', now: Date.now });
  let performed = 0;
  const asked = follower.forward('create', [{ bundle: 'b1' }, 'alice']);
  // the leader takes it at once and needs longer than the follower's timeout
  await new Promise((r) => setTimeout(r, 50));
  const served = leader.serve(async () => {
    performed++;
    await new Promise((r) => setTimeout(r, 600));
    return { rollout: 'r-1' };
  });
  const outcome = await asked.then(
    (v) => ({ ok: true as const, v }),
    (err: Error & { code?: string }) => ({ ok: false as const, code: err.code, message: err.message }),
  );
  await served;
  t.equal(performed, 1, 'the leader performed it once');
  t.same(outcome, { ok: true, v: { rollout: 'r-1' } }, 'the caller gets the outcome of the action that ran, not "try again"');
});

t.test('an action withdrawn after the leader read the queue, but before it started on it, is not performed', async (t) => {
  const p = await pool(t);
  const follower = new Actions({ pool: p, replicaId: 'pinwave@b', now: Date.now, timeoutMs: 300 });
  const leader = new Actions({ pool: p, replicaId: 'pinwave@a', now: Date.now });
  const calls: string[] = [];
  const first = follower.forward('pause', ['r-0', 'bob']).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 30));
  const second = follower.forward('create', [{ bundle: 'b1' }, 'alice']);
  await new Promise((r) => setTimeout(r, 30));
  // the leader reads both rows, then spends long on the first: the second is withdrawn meanwhile
  const served = leader.serve(async (m) => {
    calls.push(m);
    if (m === 'pause') await new Promise((r) => setTimeout(r, 1200));
    return null;
  });
  const second_ = await second.then(
    () => 'answered',
    (err: Error & { code?: string }) => err.code,
  );
  await first;
  await served;
  if (second_ === 'PW_LEADER_UNAVAILABLE') t.same(calls, ['pause'], 'a withdrawn action (its caller told to try again) is never performed');
  else t.same(calls, ['pause', 'create'], 'an action answered was performed');
});
