// Console sessions in PostgreSQL (docs/architecture.md §8, §10): the same answers as the memory
// store for the same operations, and a session written through one replica's pool is read, touched
// and ended through another's.
import t from 'tap';
import { MemorySessionStore, type SessionRecord, type SessionStore } from '../../../gateway/http/session-store.ts';
import { PgSessionStore } from '../../../gateway/http/pg-session-store.ts';
import { PostgresStore } from '../../../gateway/store/postgres.ts';
import { testDatabase } from '../store/fixtures/pg-database.ts';

const rec = (idHash: string, tokenHash: string, createdAt: number, over: Partial<SessionRecord> = {}): SessionRecord => ({ idHash, name: `op-${tokenHash}`, role: 'operator', tokenHash, createdAt, lastSeenAt: createdAt, expiresAt: createdAt + 10_000, ...over });

async function script(s: SessionStore) {
  const out: unknown[] = [];
  await s.put(rec('s1', 'tA', 1000));
  await s.put(rec('s2', 'tA', 500));
  await s.put(rec('s3', 'tB', 2000, { expiresAt: 2500 }));
  out.push(await s.get('s1'), await s.get('nope'));
  await s.touch('s1', 4000);
  await s.touch('s1', 3000); // never backwards
  await s.touch('nope', 1);
  out.push((await s.get('s1'))?.lastSeenAt);
  out.push((await s.listByToken('tA')).map((r) => r.idHash));
  out.push((await s.deleteExpired(3000, 2400)).map((r) => r.idHash).sort());
  out.push(await s.delete('s1'), await s.delete('s1'));
  await s.put(rec('s4', 'tC', 5000));
  await s.put(rec('s5', 'tD', 5000));
  out.push((await s.deleteByTokens(['tC', 'tD', 'tZ'])).map((r) => r.idHash).sort(), await s.deleteByTokens([]));
  return out;
}

t.test('the PostgreSQL session store answers as the memory one does', async (t) => {
  const url = await testDatabase(t);
  const store = new PostgresStore({ url });
  await store.open(); // the schema
  await store.close();
  const pg = PgSessionStore.open(url);
  t.teardown(() => pg.close());
  const want = await script(new MemorySessionStore());
  t.same(await script(pg), want);
  t.same(want[4], ['s2', 's3'], 's3 past its expiry, s2 idle 2,500 ms');
});

t.test("a session written through one replica's pool is read and ended through another's", async (t) => {
  const url = await testDatabase(t);
  const store = new PostgresStore({ url });
  await store.open();
  await store.close();
  const a = PgSessionStore.open(url);
  const b = PgSessionStore.open(url);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.put(rec('shared', 'tA', 1000));
  t.match(await b.get('shared'), { idHash: 'shared', tokenHash: 'tA', role: 'operator' });
  await b.touch('shared', 1500);
  t.equal((await a.get('shared'))?.lastSeenAt, 1500);
  await a.delete('shared');
  t.equal(await b.get('shared'), null, 'signed out on one, gone on the other');
});
