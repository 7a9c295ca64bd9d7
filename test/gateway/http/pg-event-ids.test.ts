// Rollout event ids from PostgreSQL (docs/architecture.md §10): two replicas' pools on one database
// take ids from the same sequence, so neither ever gives an id the other gave, and the ids go up;
// a gateway on the PostgreSQL store hands that sequence to its live streams.
import t from 'tap';
import pg from 'pg';
import { PgEventIds } from '../../../gateway/http/pg-event-ids.ts';
import { PostgresStore } from '../../../gateway/store/postgres.ts';
import { testDatabase } from '../store/fixtures/pg-database.ts';
import { apiHarness, TOKENS } from '../../fixtures/http.ts';
import { pin } from '../../fixtures/gateway.ts';
import { openStream } from '../../fixtures/sse.ts';

t.test('two replicas on one database never give the same event id, and each gives them increasing', async (t) => {
  const url = await testDatabase(t);
  const store = new PostgresStore({ url });
  await store.open(); // the schema (migration 6: the sequence)
  await store.close();
  const pools = [new pg.Pool({ connectionString: url, max: 2 }), new pg.Pool({ connectionString: url, max: 2 })];
  t.teardown(() => Promise.all(pools.map((p) => p.end())));
  const [a, b] = pools.map((p) => new PgEventIds(p));
  const fromA: number[] = [];
  const fromB: number[] = [];
  for (let i = 0; i < 20; i++) {
    const [x, y] = await Promise.all([a.next('r1'), b.next('r1')]);
    fromA.push(x);
    fromB.push(y);
  }
  t.equal(new Set([...fromA, ...fromB]).size, 40, 'forty ids, all different');
  t.same(fromA, [...fromA].sort((p, q) => p - q), "a's go up");
  t.same(fromB, [...fromB].sort((p, q) => p - q), "b's go up");
  t.ok(fromA.every((id) => Number.isSafeInteger(id) && id > 0));
});

t.test("with the PostgreSQL store, the API's live streams take their ids from the database's sequence", async (t) => {
  const url = await testDatabase(t);
  const a = await apiHarness(t, {}, { store: new PostgresStore({ url }) });
  t.ok(a.gw.eventIds, 'the gateway gives the server its database ids');
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const address = a.app.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  await a.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const ro = (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }] } })).json();
  const s = await openStream(`${base}/v1/rollouts/${ro.id}/events`, { authorization: `Bearer ${TOKENS.viewer}` });
  t.teardown(() => s.close());
  const [snap] = await s.waitFor(1);
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  const { rows } = await c.query<{ last_value: string }>('SELECT last_value FROM rollout_event_ids');
  t.equal(snap.id, rows[0].last_value, "the snapshot's id is the sequence's last");
});
