import t from 'tap';
import pg from 'pg';
import { PostgresStore, plan, redactUrl } from '../../../gateway/store/postgres.ts';
import type { Change } from '../../../gateway/store/changes.ts';
import { device, hex, provision } from './fixtures/conformance.ts';
import { PG_ADMIN_URL, testDatabase } from './fixtures/pg-database.ts';

async function opened(url: string) {
  const s = new PostgresStore({ url });
  await s.open();
  return s;
}

t.test('a database that cannot be reached is a clear error naming the URL without its password', async (t) => {
  const s = new PostgresStore({ url: 'postgres://pinwave:s3cret@127.0.0.1:1/pinwave' });
  const err = await s.open().then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_UNREACHABLE');
  t.match(err?.message, 'postgres://pinwave:***@127.0.0.1:1/pinwave');
  t.notMatch(err?.message, 's3cret');
  t.equal(redactUrl('postgres://u@h:5/d'), 'postgres://u@h:5/d');
  t.throws(() => new PostgresStore({ url: 'mysql://x' }), TypeError);
});

t.test('migrations are applied once and recorded; a newer schema is refused', async (t) => {
  const url = await testDatabase(t);
  const a = await opened(url);
  await a.close();
  const b = await opened(url);
  await b.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  t.same((await c.query('SELECT version FROM pinwave_schema ORDER BY version')).rows, [{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }, { version: 5 }, { version: 6 }, { version: 7 }]);
  const tables = (await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")).rows.map((r) => r.table_name);
  t.same(tables, ['bundles', 'console_sessions', 'counters', 'device_history', 'device_telemetry', 'devices', 'groups', 'items', 'pinwave_schema', 'replica_actions', 'replica_inbox', 'replica_leader', 'replicas', 'rollout_decisions', 'rollout_members', 'rollout_waves', 'rollouts', 'telemetry_buckets']);
  await c.query('INSERT INTO pinwave_schema (version) VALUES (99)');
  const err = await opened(url).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_VERSION');
});

t.test("a database of an earlier schema gains the devices' broker column; its devices read back without one", async (t) => {
  const url = await testDatabase(t);
  const a = await opened(url);
  await a.apply(provision(device('old-1')));
  await a.close();
  // what a database migrated by the release before looks like: no broker column, schema 2
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  await c.query('ALTER TABLE devices DROP COLUMN broker');
  await c.query('DROP TABLE replica_inbox, replica_actions, replicas, console_sessions, replica_leader');
  await c.query('DROP SEQUENCE rollout_event_ids');
  await c.query('DELETE FROM pinwave_schema WHERE version >= 3');
  const b = await opened(url);
  t.teardown(() => b.close());
  t.same(await b.getDevice('old-1'), device('old-1'), 'an existing device has no broker');
  t.same(await b.apply(provision(device('new-1', 'door-locks', { broker: 'mqtt://10.0.0.12:18830' }))), { ok: true, seqs: [] });
  t.same(await b.getDevice('new-1'), device('new-1', 'door-locks', { broker: 'mqtt://10.0.0.12:18830' }), 'a new one keeps the broker it was given');
  t.same((await c.query('SELECT version FROM pinwave_schema ORDER BY version')).rows.map((r) => r.version), [1, 2, 3, 4, 5, 6, 7]);
});

t.test('batches in flight share one transaction of multi-row statements; a refused one is refused alone', async (t) => {
  const url = await testDatabase(t);
  const s = await opened(url);
  t.teardown(() => s.close());
  const ids = Array.from({ length: 400 }, (_, i) => `d${i}`);
  await s.apply(provision(...ids.map((id) => device(id))));
  const before = s.status().writes;
  const acks = ids.map((id, i): Change[] => [
    { type: 'device.patch', id, set: { seq: 2, bundleId: hex(2), lastSeen: i } },
    { type: 'device.history', id, entry: { at: i, bundleId: hex(2), seq: 2, event: 'applied' } },
    { type: 'counter.add', name: 'acks', by: 1 },
  ]);
  const results = await Promise.all([...acks.map((a) => s.apply(a)), s.apply([{ type: 'device.patch', id: 'ghost', set: { seq: 1 } }])]);
  t.ok(results.slice(0, 400).every((r) => r.ok), 'every ack committed');
  t.match(results[400], { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['ghost'] }, 'the bad batch alone is refused');
  const writes = s.status().writes - before;
  t.ok(writes <= 410, `${writes} transactions for 401 batches (one refusal re-runs its group one by one)`);
  t.equal((await s.getCounters()).acks, 400);
  const more = await Promise.all(ids.map((id, i) => s.apply([{ type: 'device.patch', id, set: { lastSeen: 1000 + i } }, { type: 'counter.add', name: 'acks', by: 1 }])));
  t.ok(more.every((r) => r.ok));
  const w2 = s.status().writes - before - writes;
  t.ok(w2 <= 5, `400 batches in ${w2} transaction(s)`);
  const p = plan(acks.flat());
  t.same(p.map((b) => [b.kind, b.changes.length]), [['device.patch', 400], ['device.history', 400], ['counter.add', 400]], 'one statement per kind for 400 acks');
});

t.test('a dropped connection is replaced: the store carries on', async (t) => {
  const url = await testDatabase(t);
  const s = await opened(url);
  t.teardown(() => s.close());
  await s.apply(provision(device('d1')));
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  t.teardown(() => admin.end());
  const db = new URL(url).pathname.slice(1);
  const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [db]);
  t.ok((killed.rowCount ?? 0) >= 1, 'the store’s connections were terminated');
  await new Promise((r) => setTimeout(r, 100));
  t.same(await s.apply([{ type: 'device.patch', id: 'd1', set: { seq: 5 } }]), { ok: true, seqs: [] }, 'the next batch commits on a new connection');
  t.equal((await s.getDevice('d1'))!.seq, 5);
});

t.test('history past the cap in one batch: reads give the newest, the next append deletes the rest', async (t) => {
  const url = await testDatabase(t);
  const s = await opened(url);
  t.teardown(() => s.close());
  await s.apply(provision(device('d1')));
  const entry = (i: number): Change => ({ type: 'device.history', id: 'd1', entry: { at: i, bundleId: hex(2), seq: i, event: 'sent' } });
  await s.apply(Array.from({ length: 30 }, (_, i) => entry(i)));
  t.same((await s.getDevice('d1'))!.history.map((h) => h.seq), Array.from({ length: 20 }, (_, i) => 10 + i));
  await s.apply([entry(30)]);
  t.same((await s.getDevice('d1'))!.history.map((h) => h.seq), Array.from({ length: 20 }, (_, i) => 11 + i));
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  t.equal(Number((await c.query("SELECT count(*) AS n FROM device_history WHERE device_id = 'd1'")).rows[0].n), 20, 'storage holds the cap');
});
