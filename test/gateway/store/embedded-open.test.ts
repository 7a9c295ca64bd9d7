// An open() that was refused leaves the store as new (docs/storage.md, "when the store refuses to
// start"): once the cause is fixed, the same store opens with exactly what the dir holds.
import t from 'tap';
import { readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import { frame } from '../../../gateway/store/journal.ts';
import { journalName } from '../../../gateway/store/snapshot.ts';

t.test('a start refused on a damaged journal, retried on the same store once the journal is cut by hand, replays nothing twice', async (t) => {
  const dir = join(t.testdir(), 'data');
  const a = new EmbeddedStore({ dir });
  await a.open();
  await a.apply([{ type: 'counter.add', name: 'acks', by: 1 }]);
  await a.apply([{ type: 'counter.add', name: 'acks', by: 1 }]);
  await a.close();
  const path = join(dir, journalName(1));
  const good = (await readFile(path)).length;
  const { appendFile } = await import('node:fs/promises');
  await appendFile(path, Buffer.concat([frame('not json'), frame(JSON.stringify([{ type: 'counter.add', name: 'acks', by: 1 }]))]));
  const s = new EmbeddedStore({ dir });
  const err = await s.open().then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_CORRUPT');
  t.match(err?.message, `byte ${good}`);
  await truncate(path, good); // what docs/storage.md tells the operator to do
  await s.open();
  t.same(await s.getCounters(), { acks: 2 }, 'each record once');
  await s.close();
});

t.test('a data dir made by the first start is made durable in its parent, and each parent made with it, before the store answers', async (t) => {
  const root = t.testdir();
  const dir = join(root, 'a', 'b', 'data');
  const synced: string[] = [];
  const s = new EmbeddedStore({ dir, io: { syncDir: async (d) => void synced.push(d) } });
  await s.open();
  for (const parent of [root, join(root, 'a'), join(root, 'a', 'b')]) t.ok(synced.includes(parent), `${parent.slice(root.length) || 'the test dir'} fsync'd: it holds a dir made now`);
  t.ok(synced.includes(dir), 'and the data dir itself, for the journal made in it');
  const again = new EmbeddedStore({ dir: join(root, 'a', 'b', 'data'), io: { syncDir: async (d) => void synced.push(d) } });
  await s.close();
  synced.length = 0;
  await again.open();
  t.notOk(synced.includes(join(root, 'a', 'b')), 'a dir that exists already is not synced again in its parent');
  await again.close();
});

t.test('a store closed while it opens (a stop during start) is closed once open: its lock released, its files whole', async (t) => {
  const dir = join(t.testdir(), 'data');
  const first = new EmbeddedStore({ dir });
  await first.open();
  await first.apply([{ type: 'counter.add', name: 'acks', by: 1 }]);
  await first.close();
  const s = new EmbeddedStore({ dir });
  const opening = s.open();
  const closing = s.close();
  await opening;
  await closing;
  t.equal(s.phase, 'closed');
  await t.rejects(s.apply([{ type: 'counter.add', name: 'acks', by: 1 }]), { code: 'PW_STORE_CLOSED' }, 'it takes nothing more');
  const again = new EmbeddedStore({ dir });
  await again.open(); // the lock was released
  t.same(await again.getCounters(), { acks: 1 });
  await again.close();
});
