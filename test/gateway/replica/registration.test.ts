// A replica stays registered for as long as it runs (docs/architecture.md §8), on a PostgreSQL
// database of the test's own: when a follower's lock connection drops, the leader takes its own
// lock, drains its broker session and forgets it; the follower, once it holds its lock again, must
// be registered again, or the leader would never drain its session when it really dies (its share
// of device messages left in the broker until the session expires).
import t from 'tap';
import pg from 'pg';
import { Replica, type ReplicaHooks } from '../../../gateway/replica/replica.ts';
import { replicaKey } from '../../../gateway/replica/election.ts';
import { NO_LOG } from '../../../gateway/logger.ts';
import { until } from '../../fixtures/gateway.ts';
import { testDatabase } from '../store/fixtures/pg-database.ts';
import { PostgresStore } from '../../../gateway/store/postgres.ts';

const hooks: ReplicaHooks = {
  lead: async () => {},
  resume: async () => {},
  follow: () => {},
  handle: async () => {},
  perform: async () => null,
  changed: () => {},
};

/** The pid holding replica `id`'s own lock in this database, or null. */
const OWN_LOCK_HOLDER = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

t.test('a follower whose lock connection dropped is registered again once it holds its lock again', async (t) => {
  const url = await testDatabase(t);
  const s = new PostgresStore({ url });
  await s.open();
  await s.close();
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  const start = (id: string, retryMs: number) => Replica.start({ url, id, brokers: [], hooks, log: NO_LOG, now: Date.now, retryMs }).then((r) => (t.teardown(() => r.close()), r));
  // the leader looks for gone replicas every 50 ms; b opens its lock connection again after 500
  const a = await start('pinwave@a', 50);
  const b = await start('pinwave@b', 500);
  await a.elect();
  await b.elect();
  t.ok(a.leading, 'a leads');
  t.notOk(b.leading, 'b follows');
  const registered = async () => (await admin.query<{ id: string }>('SELECT id FROM replicas ORDER BY id')).rows.map((r) => r.id);
  t.same(await registered(), ['pinwave@a', 'pinwave@b']);

  const [k1, k2] = replicaKey('pinwave@b');
  const holder = async () => (await admin.query<{ pid: number }>(OWN_LOCK_HOLDER, [k1, k2 >>> 0])).rows[0]?.pid ?? null;
  const pid = await holder();
  t.ok(pid, "b holds its own lock");
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  // a takes b's lock (b is not running, as far as it can tell), drains it (no brokers here) and forgets it
  await until(async () => !(await registered()).includes('pinwave@b'), 5000, 'a forgot b');
  // b's lock connection comes back, with its own lock (not a's, which held it while draining)
  const leaderPid = (await admin.query<{ pid: number }>(OWN_LOCK_HOLDER, [0x70771, 0])).rows[0].pid;
  await until(async () => {
    const p = await holder();
    return p !== null && p !== pid && p !== leaderPid;
  }, 5000, 'b holds its own lock again');
  await until(async () => (await registered()).includes('pinwave@b'), 3000, 'b registered again').catch(() => undefined);
  t.same(await registered(), ['pinwave@a', 'pinwave@b'], 'b, running, is registered again: a drains its session if it dies');
});

t.test("a follower's message the leader could not commit is tried again without waiting for another notification", async (t) => {
  // docs/architecture.md §8: a row whose handler failed stays in replica_inbox; in a quiet fleet no
  // other message may come to notify the leader, and the last acks of a wave would wait forever.
  const url = await testDatabase(t);
  const s = new PostgresStore({ url });
  await s.open();
  await s.close();
  const handled: string[] = [];
  let failures = 1;
  const leaderHooks: ReplicaHooks = {
    ...hooks,
    handle: async (id, kind) => {
      if (failures-- > 0) throw new Error('the store is away for a moment');
      handled.push(`${id} ${kind}`);
    },
  };
  const a = await Replica.start({ url, id: 'pinwave@a', brokers: [], hooks: leaderHooks, log: NO_LOG, now: Date.now, retryMs: 50 });
  t.teardown(() => a.close());
  const b = await Replica.start({ url, id: 'pinwave@b', brokers: [], hooks, log: NO_LOG, now: Date.now, retryMs: 50 });
  t.teardown(() => b.close());
  await a.elect();
  await b.elect();
  await b.message('th-1', 'ack', Buffer.from('{}'));
  await until(() => failures < 0 || handled.length > 0, 3000, 'the leader tried it').catch(() => undefined);
  await until(() => handled.length === 1, 2000, 'handled at a later try').catch(() => undefined);
  t.same(handled, ['th-1 ack'], 'handled once the store is back, with no new notification');
  t.equal(await a.inboxWaiting(), 0, 'and its row gone');
});
