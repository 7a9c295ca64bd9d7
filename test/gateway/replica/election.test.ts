// Leader election among replicas (docs/architecture.md §8), on a PostgreSQL database of the test's
// own: one leads; another takes over once its lock is released or its connection is cut (and the
// one cut off is told at once); a replica id in use by a running process is refused, naming why.
import t from 'tap';
import pg from 'pg';
import { Election, type ElectionOptions } from '../../../gateway/replica/election.ts';
import { NO_LOG } from '../../../gateway/logger.ts';
import { until } from '../../fixtures/gateway.ts';
import { testDatabase } from '../store/fixtures/pg-database.ts';
import { PostgresStore } from '../../../gateway/store/postgres.ts';
import { device } from '../store/fixtures/conformance.ts';

/** Who holds the leader lock in this database: advisory locks are per database, pg_locks is the whole cluster's (other tests run beside). */
const LEADER_HOLDER = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 0 AND classid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/** A database of the test's own with pinwave's schema (the store migrates it), as every replica finds it. */
async function database(t: Parameters<typeof testDatabase>[0]): Promise<string> {
  const url = await testDatabase(t);
  const s = new PostgresStore({ url });
  await s.open();
  await s.close();
  return url;
}

function replica(t: { teardown(fn: () => unknown): void }, url: string, id: string, over: Partial<ElectionOptions> = {}) {
  const events: string[] = [];
  const open = Election.open({ url, replicaId: id, channels: ['pinwave_test'], retryMs: 50, log: NO_LOG, onLead: () => void events.push('lead'), onLose: (why) => void events.push(`lose: ${why}`), onNotify: (ch, p) => void events.push(`${ch} ${p}`), ...over }).then((e) => {
    t.teardown(() => e.close());
    return e;
  });
  return { open, events };
}

/** Replicas a and b on a fresh database, a asking first: a leads, b follows. */
async function twoReplicas(t: Parameters<typeof testDatabase>[0] & { teardown(fn: () => unknown): void }) {
  const url = await database(t);
  const a = replica(t, url, 'pinwave@a');
  const b = replica(t, url, 'pinwave@b');
  const [ea, eb] = await Promise.all([a.open, b.open]);
  await ea.run();
  await eb.run();
  return { url, a, b, ea, eb };
}

t.test('one replica leads; the next takes over when it stops, and when its lock connection is cut', async (t) => {
  const { url, a, b, ea, eb } = await twoReplicas(t);
  t.ok(ea.leading, 'the first to ask leads');
  t.notOk(eb.leading, 'the second follows');
  t.same(a.events, ['lead']);
  // a notification reaches every replica on its lock connection
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query("SELECT pg_notify('pinwave_test', 'hello')");
  await until(() => a.events.includes('pinwave_test hello') && b.events.includes('pinwave_test hello'), 2000, 'the notification on both');

  await ea.close();
  await until(() => eb.leading, 2000, 'b leads once a stopped');
  t.same(b.events.filter((e) => e === 'lead'), ['lead']);

  const c = replica(t, url, 'pinwave@c');
  const ec = await c.open;
  await ec.run();
  t.notOk(ec.leading, 'c follows b');
  // b's lock connection is cut by the server (a network break, a server restart): b is told, c leads
  const { rows } = await admin.query<{ pid: number }>(LEADER_HOLDER, [0x70771]);
  t.equal(rows.length, 1, 'one backend holds the leader lock');
  await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
  await until(() => b.events.some((e) => e.startsWith('lose: ')), 2000, 'b told it lost the lead');
  // the lock is free: whoever asks first takes it (b, on its new connection, or c)
  await until(() => ec.leading || eb.leading, 2000, 'a leader again');
  t.notOk(ec.leading && eb.leading, 'never two leaders');
});

t.test('a replica id a running process holds is refused, saying so', async (t) => {
  const url = await database(t);
  await replica(t, url, 'pinwave@same').open;
  const second = replica(t, url, 'pinwave@same', { ownLockTimeoutMs: 300 });
  await t.rejects(second.open, { message: 'replica pinwave@same: another process holds this replica id (or a leader is still draining its broker session); give each replica its own --broker-client-id' });
});

t.test('a leader that cannot take over gives the lock back', async (t) => {
  const url = await database(t);
  let fail = true;
  const a = replica(t, url, 'pinwave@a', { onLead: () => (fail ? Promise.reject(new Error('rollouts unreadable')) : undefined) });
  const ea = await a.open;
  const b = replica(t, url, 'pinwave@b');
  const eb = await b.open;
  await ea.run();
  t.notOk(ea.leading);
  t.match(a.events, ['lose: taking over failed: rollouts unreadable']);
  await eb.run();
  t.ok(eb.leading, 'the lock was given back');
  fail = false;
});

t.test('each takeover raises the leadership epoch, and a batch applied under an old one lands nothing', async (t) => {
  const { url, a, b, ea, eb } = await twoReplicas(t);
  const first = ea.epoch;
  t.ok(first !== null && first >= 1, `the leader has an epoch (${first})`);
  t.equal(eb.epoch, null, 'a follower has none');

  // a's store: its batches are fenced by the epoch a leads under when they are applied
  let leadingUnder: number | null = first;
  const store = new PostgresStore({ url, fence: () => leadingUnder });
  await store.open();
  t.teardown(() => store.close());
  t.same(await store.apply([{ type: 'device.provision', device: device('d-1') }]), { ok: true, seqs: [] }, 'committed while a leads');

  // a's lock connection is cut; b takes over, and a, not told yet, still thinks it leads
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  const { rows } = await admin.query<{ pid: number }>(LEADER_HOLDER, [0x70771]);
  await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
  await until(() => eb.leading, 3000, 'b leads');
  t.equal(eb.epoch, first! + 1, 'the takeover raised the epoch');
  const late = await store.apply([{ type: 'device.patch', id: 'd-1', set: { seq: 9 } }, { type: 'device.provision', device: device('d-2') }]);
  t.match(late, { ok: false, code: 'PW_STORE_CONFLICT', ids: ['replica_leader'] }, 'a batch applied under the old epoch is refused');
  t.same(await store.getDevice('d-1'), device('d-1'), 'nothing of it landed: the device as provisioned');
  t.equal(await store.getDevice('d-2'), null, 'nor the device it provisioned');

  // not leading (no epoch): a replica's own writes, such as provisioning, are not fenced
  leadingUnder = null;
  t.same(await store.apply([{ type: 'device.provision', device: device('d-3') }]), { ok: true, seqs: [] }, 'an unfenced batch commits');
  // under the current epoch, fenced batches commit again
  leadingUnder = eb.epoch;
  t.same(await store.apply([{ type: 'device.patch', id: 'd-1', set: { seq: 2 } }]), { ok: true, seqs: [] }, 'committed under the current epoch');
});

t.test('a replica whose takeover fails before it leads gives the lock back whole', async (t) => {
  // docs/architecture.md §8: session advisory locks stack; a lock taken by a round that then failed
  // (the epoch's UPDATE refused) and taken again by the next stays held after one unlock, so a
  // replica whose takeovers keep failing would keep every other one from leading.
  const url = await database(t);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  await admin.query('ALTER TABLE replica_leader RENAME TO replica_leader_away');
  const a = replica(t, url, 'pinwave@a', {
    onLead: () => {
      throw new Error('the rollouts cannot be read here');
    },
  });
  const ea = await a.open;
  await ea.run(); // the epoch cannot be raised: this round fails after taking the lock
  await admin.query('ALTER TABLE replica_leader_away RENAME TO replica_leader');
  const b = replica(t, url, 'pinwave@b');
  const eb = await b.open;
  await eb.run();
  await until(() => eb.leading, 3000, 'b to lead while a cannot take over').catch(() => undefined);
  t.ok(eb.leading, 'b leads');
});
