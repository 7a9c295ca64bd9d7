import t, { type Test } from 'tap';
import pg from 'pg';
import { PostgresStore, plan, redactUrl } from '../../../gateway/store/postgres.ts';
import type { Change } from '../../../gateway/store/changes.ts';
import { device, hex, provision, rollout } from './fixtures/conformance.ts';
import { PG_ADMIN_URL, testDatabase } from './fixtures/pg-database.ts';
import { logger } from './fixtures/store-logger.ts';

async function opened(url: string) {
  const s = new PostgresStore({ url });
  await s.open();
  return s;
}

/**
 * Another gateway's session on the database, in a transaction of its own. Its deadlock check waits
 * longer than the store's (the default second), so where a cycle forms the database rolls back the
 * store's transaction.
 */
async function otherSession(t: Test, url: string): Promise<pg.Client> {
  const other = new pg.Client({ connectionString: url });
  await other.connect();
  t.teardown(() => other.end());
  await other.query("SET deadlock_timeout = '20s'");
  await other.query('BEGIN');
  return other;
}

/** A store on a database of its own holding devices d1 and d2, and another session on it (otherSession). */
async function twoDevicesAndAnotherSession(t: Test, o: Partial<ConstructorParameters<typeof PostgresStore>[0]> = {}) {
  const url = await testDatabase(t);
  const s = new PostgresStore({ url, ...o });
  await s.open();
  t.teardown(() => s.close());
  await s.apply(provision(device('d1'), device('d2')));
  return { s, other: await otherSession(t, url) };
}

/** Resolves once some session of the database waits for a lock (bounded). */
async function someoneWaits(c: pg.Client): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
    if (rows[0].n > 0) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('nobody waited for a lock');
}

/** Puts back the layout of history and telemetry that schema 7 had (postgres-schema.ts, migration 8 undone). */
/** Undoes migration 9: the waves' failing-unverified count (what a compacted rollout keeps, docs/storage.md). */
async function asSchema8(c: pg.Client): Promise<void> {
  await c.query('ALTER TABLE rollout_waves DROP COLUMN failing_unverified; DELETE FROM pinwave_schema WHERE version >= 9');
}

async function asSchema7(c: pg.Client): Promise<void> {
  await asSchema8(c);
  await c.query(`
    ALTER TABLE devices ADD COLUMN history_count bigint NOT NULL DEFAULT 0, ADD COLUMN telemetry_count bigint NOT NULL DEFAULT 0;
    UPDATE devices d SET history_count = coalesce((SELECT max(k) FROM device_history h WHERE h.device_id = d.id), 0),
                         telemetry_count = coalesce((SELECT max(k) FROM device_telemetry h WHERE h.device_id = d.id), 0);
    ALTER TABLE device_history DROP CONSTRAINT device_history_pkey, ADD COLUMN n bigserial PRIMARY KEY,
      ADD CONSTRAINT device_history_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE;
    CREATE INDEX device_history_device ON device_history (device_id, k);
    ALTER TABLE device_telemetry DROP CONSTRAINT device_telemetry_pkey, ADD COLUMN n bigserial PRIMARY KEY,
      ADD CONSTRAINT device_telemetry_device_id_fkey FOREIGN KEY (device_id) REFERENCES devices (id) ON DELETE CASCADE;
    CREATE INDEX device_telemetry_device ON device_telemetry (device_id, k);
    CREATE INDEX devices_bundle ON devices (bundle_id, id) WHERE bundle_id IS NOT NULL;
    ALTER TABLE devices RESET (fillfactor);
    ALTER TABLE rollout_members RESET (fillfactor);
    DELETE FROM pinwave_schema WHERE version >= 8;
  `);
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
  t.same((await c.query('SELECT version FROM pinwave_schema ORDER BY version')).rows, [{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }, { version: 5 }, { version: 6 }, { version: 7 }, { version: 8 }, { version: 9 }]);
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
  await asSchema7(c);
  await c.query('ALTER TABLE devices DROP COLUMN broker');
  await c.query('DROP TABLE replica_inbox, replica_actions, replicas, console_sessions, replica_leader');
  await c.query('DROP SEQUENCE rollout_event_ids');
  await c.query('DELETE FROM pinwave_schema WHERE version >= 3');
  const b = await opened(url);
  t.teardown(() => b.close());
  t.same(await b.getDevice('old-1'), device('old-1'), 'an existing device has no broker');
  t.same(await b.apply(provision(device('new-1', 'door-locks', { broker: 'mqtt://10.0.0.12:18830' }))), { ok: true, seqs: [] });
  t.same(await b.getDevice('new-1'), device('new-1', 'door-locks', { broker: 'mqtt://10.0.0.12:18830' }), 'a new one keeps the broker it was given');
  t.same((await c.query('SELECT version FROM pinwave_schema ORDER BY version')).rows.map((r) => r.version), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

t.test('a database of schema 8 gains the waves\' failing-unverified count: a rollout compacted before reads without it, one compacted after keeps it', async (t) => {
  const url = await testDatabase(t);
  const a = await opened(url);
  const ids = ['d1', 'd2', 'd3', 'd4'];
  await a.apply(provision(...ids.map((id) => device(id))));
  const finish = (id: string): Change[] => [
    { type: 'rollout.member', id, device: 'd1', status: 'failing', reason: 'unverified', at: 2 },
    { type: 'rollout.wave', id, wave: 0, add: { count: { pending: -1, failing: 1 } } },
    { type: 'rollout.patch', id, set: { state: 'completed', endedAt: 3 } },
    { type: 'rollout.compact', id, at: 4 },
  ];
  await a.apply([rollout('r-old', ids, 2, [{ size: '100%' }]).change]);
  t.match(await a.apply(finish('r-old')), { ok: true });
  await a.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  await asSchema8(c);
  const b = await opened(url);
  t.teardown(() => b.close());
  t.same((await c.query('SELECT version FROM pinwave_schema ORDER BY version')).rows.map((r) => r.version), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const old = (await b.getRollout('r-old'))!;
  t.equal(old.waves[0].count.failing, 1, 'its counts as they were');
  t.equal(old.waves[0].failingUnverified, undefined, 'compacted before: the count went with its members');
  await b.apply([rollout('r-new', ids, 3, [{ size: '100%' }]).change]);
  t.match(await b.apply(finish('r-new')), { ok: true });
  t.equal((await b.getRollout('r-new'))!.waves[0].failingUnverified, 1, 'compacted after: kept');
});

t.test("a database of schema 7 keeps each device's history and telemetry through migration 8, and appends number on from them", async (t) => {
  const url = await testDatabase(t);
  const a = await opened(url);
  const entry = (id: string, i: number): Change => ({ type: 'device.history', id, entry: { at: i, bundleId: hex(2), seq: i, event: 'sent' } });
  const report = (id: string, i: number): Change => ({ type: 'device.telemetry', id, report: { at: i, host: 'api.example.com', port: 443, failures: i } } as Change);
  await a.apply(provision(device('d1'), device('d2')));
  await a.apply([...Array.from({ length: 25 }, (_, i) => entry('d1', i)), entry('d2', 0), report('d1', 1), report('d1', 2)]);
  const before = [await a.getDevice('d1'), await a.getDevice('d2')];
  await a.close();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  await asSchema7(c);
  t.equal(Number((await c.query("SELECT history_count FROM devices WHERE id = 'd1'")).rows[0].history_count), 25, 'the schema 7 counter');
  // An entry numbered like an earlier one (schema 7 never wrote one): the later is kept.
  await c.query("INSERT INTO device_history (device_id, k, at, bundle_id, seq, event) VALUES ('d2', 1, 55, $1, 55, 'sent')", [hex(2)]);
  before[1]!.history = [{ at: 55, bundleId: hex(2), seq: 55, event: 'sent' }];
  const b = await opened(url);
  t.teardown(() => b.close());
  t.same([await b.getDevice('d1'), await b.getDevice('d2')], before, 'every device reads back as it was');
  await b.apply([entry('d1', 100), entry('d2', 100), report('d1', 3)]);
  const d1 = (await b.getDevice('d1'))!;
  t.same(d1.history.map((h) => h.seq), [...Array.from({ length: 19 }, (_, i) => 6 + i), 100], 'the cap keeps the newest, the new entry last');
  t.same(d1.telemetry.map((r) => (r as { failures?: number }).failures), [1, 2, 3]);
  t.same((await b.getDevice('d2'))!.history.map((h) => h.seq), [55, 100]);
  const cols = (await c.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'devices'")).rows.map((r) => r.column_name);
  t.notOk(cols.includes('history_count'), 'the counters are gone');
  const opts = (await c.query("SELECT relname, reloptions FROM pg_class WHERE relname IN ('devices', 'rollout_members') ORDER BY relname")).rows;
  t.same(opts, [{ relname: 'devices', reloptions: ['fillfactor=50'] }, { relname: 'rollout_members', reloptions: ['fillfactor=50'] }], 'room left for updates on the page');
});

t.test('two gateways appending to one device at once number its entries without a clash (the device row serialises them)', async (t) => {
  const url = await testDatabase(t);
  const a = await opened(url);
  const b = await opened(url);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.apply(provision(device('d1'), device('d2')));
  // Some batches patch one device first (its row is held from there), so two transactions can
  // each hold the device the other wants next: the database breaks the deadlock, the store retries.
  const entry = (i: number, patch: string | null): Change[] => [
    ...(patch !== null ? [{ type: 'device.patch', id: patch, set: { lastSeen: i } } as Change] : []),
    { type: 'device.history', id: 'd1', entry: { at: i, bundleId: hex(2), seq: i, event: 'sent' } },
    { type: 'device.history', id: 'd2', entry: { at: i, bundleId: hex(2), seq: i, event: 'sent' } },
  ];
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).apply(entry(i, i % 3 === 0 ? null : i % 2 === 0 ? 'd1' : 'd2'))));
  t.same(results.filter((r) => !r.ok), [], 'every append committed');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  const { rows } = await c.query("SELECT device_id, count(*)::int AS n, count(DISTINCT k)::int AS ks, max(k)::int AS top FROM device_history GROUP BY device_id ORDER BY device_id");
  t.same(rows, [{ device_id: 'd1', n: 20, ks: 20, top: 60 }, { device_id: 'd2', n: 20, ks: 20, top: 60 }], 'sixty entries numbered 1..60, the newest twenty kept');
});

t.test('a transaction the database rolls back for a deadlock with another gateway is retried, and commits', async (t) => {
  const { s, other } = await twoDevicesAndAnotherSession(t);
  await other.query("UPDATE devices SET last_seen = 1 WHERE id = 'd2'");
  // The store holds d1 (its patch), then waits for d2; the other transaction then wants d1.
  const applied = s.apply([{ type: 'device.patch', id: 'd1', set: { lastSeen: 2 } }, { type: 'device.history', id: 'd2', entry: { at: 2, bundleId: hex(2), seq: 2, event: 'sent' } }]);
  await someoneWaits(other);
  await other.query("SELECT 1 FROM devices WHERE id = 'd1' FOR UPDATE");
  await other.query('COMMIT');
  t.same(await applied, { ok: true, seqs: [] }, 'retried after the deadlock, it committed');
  const d1 = (await s.getDevice('d1'))!;
  t.equal(d1.lastSeen, 2);
  t.same((await s.getDevice('d2'))!.history.map((h) => h.seq), [2], 'once');
});

t.test("a replica's transaction locks its devices in id order first: it waits for another's, never in a cycle with it", async (t) => {
  const { log, lines } = logger();
  const { s, other } = await twoDevicesAndAnotherSession(t, { logger: log, fence: () => null });
  await other.query("SELECT 1 FROM devices WHERE id = 'd1' FOR NO KEY UPDATE");
  // Two statements, d2's first: without the locks up front the store would hold d2 while it waits for d1.
  const applied = s.apply([{ type: 'device.patch', id: 'd2', set: { lastSeen: 5 } }, { type: 'device.patch', id: 'd1', set: { seq: 5 } }]);
  await someoneWaits(other);
  await other.query("SELECT 1 FROM devices WHERE id = 'd2' FOR NO KEY UPDATE"); // the store holds nothing yet
  await other.query('COMMIT');
  t.same(await applied, { ok: true, seqs: [] });
  t.same(lines.filter((l) => /conflict/.test(l.msg)), [], 'no transaction was rolled back');
  t.equal((await s.getDevice('d1'))!.seq, 5);
});

t.test("deleting a device deletes its history and telemetry; provisioning the id again starts them empty", async (t) => {
  const url = await testDatabase(t);
  const s = await opened(url);
  t.teardown(() => s.close());
  await s.apply(provision(device('d1'), device('d2')));
  const entry = (id: string, i: number): Change => ({ type: 'device.history', id, entry: { at: i, bundleId: hex(2), seq: i, event: 'sent' } });
  await s.apply([entry('d1', 1), entry('d1', 2), entry('d2', 1), { type: 'device.telemetry', id: 'd1', report: { at: 1, host: 'api.example.com', port: 443 } } as Change]);
  t.same(await s.apply([entry('d1', 3), { type: 'device.delete', id: 'd1' }]), { ok: true, seqs: [] });
  t.match(await s.apply([entry('d1', 4)]), { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['d1'] }, 'a deleted device takes no entries');
  await s.apply(provision(device('d1')));
  t.same((await s.getDevice('d1'))!.history, [], 'nothing of the deleted device comes back');
  t.same((await s.getDevice('d1'))!.telemetry, []);
  t.same((await s.getDevice('d2'))!.history.map((h) => h.seq), [1], 'another device keeps its own');
});

t.test('a device deleted around the store (by hand, or by a gateway of schema 7) leaves entries that a device provisioned under its id does not inherit', async (t) => {
  const url = await testDatabase(t);
  const s = await opened(url);
  t.teardown(() => s.close());
  await s.apply(provision(device('d1')));
  await s.apply([{ type: 'device.history', id: 'd1', entry: { at: 1, bundleId: hex(2), seq: 1, event: 'sent' } }, { type: 'device.telemetry', id: 'd1', report: { at: 1, host: 'api.example.com', port: 443 } } as Change]);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  await c.query("DELETE FROM devices WHERE id = 'd1'");
  await s.apply(provision(device('d1', 'door-locks', { history: [{ at: 9, bundleId: hex(3), seq: 9, event: 'applied' }] })));
  const d1 = (await s.getDevice('d1'))!;
  t.same(d1.history.map((h) => h.seq), [9], 'only what it was provisioned with');
  t.same(d1.telemetry, []);
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

t.test('a deadlock while a refused group is re-run one batch at a time is retried too: the batch commits, the batches queued behind it are not failed', async (t) => {
  const { s, other } = await twoDevicesAndAnotherSession(t);
  await other.query("UPDATE devices SET last_seen = 1 WHERE id = 'd2'");
  // One group: the ghost's patch refuses it (before anything waits), so each batch is re-run in a
  // transaction of its own; the second holds d1 and waits for d2, and the other transaction then wants d1.
  const ghost = s.apply([{ type: 'device.patch', id: 'ghost', set: { lastSeen: 2 } }]);
  const applied = s
    .apply([{ type: 'device.patch', id: 'd1', set: { lastSeen: 2 } }, { type: 'device.history', id: 'd2', entry: { at: 2, bundleId: hex(2), seq: 2, event: 'sent' } }])
    .catch((e: Error) => e.message);
  await someoneWaits(other);
  await other.query("SELECT 1 FROM devices WHERE id = 'd1' FOR UPDATE");
  await other.query('COMMIT');
  t.match(await ghost, { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['ghost'] }, 'the refused batch alone is refused');
  t.same(await applied, { ok: true, seqs: [] }, 'retried after the deadlock, it committed');
  t.equal((await s.getDevice('d1'))!.lastSeen, 2);
  t.same((await s.getDevice('d2'))!.history.map((h) => h.seq), [2], 'once');
  t.equal(s.status().failures, 0, 'no batch was failed');
});

t.test('a store closed while it opens (a stop during start) is closed once open: no connection is left to the database', async (t) => {
  const url = await testDatabase(t);
  const s = new PostgresStore({ url });
  const opening = s.open();
  const closing = s.close();
  await opening;
  await closing;
  await t.rejects(s.apply([{ type: 'counter.add', name: 'acks', by: 1 }]), { code: 'PW_STORE_CLOSED' }, 'it takes nothing more');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    t.equal(rows[0].n, 0, "the store's pool was ended");
  } finally {
    await admin.end();
  }
});
