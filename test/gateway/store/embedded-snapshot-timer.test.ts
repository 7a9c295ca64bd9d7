// The embedded store's timed snapshot (docs/storage.md): once `snapshotIntervalMs` has passed with
// anything journaled since the last one. The store's interval timer and clock are node:test's mock
// timers here, so the test moves time on without waiting for it.
import t from 'tap';
import { mock } from 'node:test';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import { counter, until } from './fixtures/mock-timers.ts';

t.test('an idle store takes no timed snapshot: a new journal holding only its empty start has nothing journaled', async (t) => {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
  t.teardown(() => mock.timers.reset());
  const dir = join(t.testdir(), 'data');
  const opened = async () => {
    const s = new EmbeddedStore({ dir, snapshotIntervalMs: 10_000, minSnapshotJournalBytes: 1 << 30 });
    await s.open();
    return s;
  };
  const files = async () => (await readdir(dir)).filter((n) => /^(journal|snapshot)-/.test(n)).sort();

  let s = await opened();
  await s.apply(counter(1));
  mock.timers.tick(10_000);
  await until(() => s.status().snapshots === 1, 'the timed snapshot');
  await s.snapshotSettled();
  t.equal(s.journalFile, join(dir, 'journal-0000000002.log'), 'something journaled: the interval rotated the journal');

  // An interval with nothing journaled; close waits for any write loop the timer started.
  mock.timers.tick(10_000);
  await s.close();
  t.same(await files(), ['journal-0000000001.log', 'journal-0000000002.log', 'snapshot-0000000002.json'], 'no second snapshot of the same state, no new journal');

  // A restart onto a journal holding only its empty start: nothing journaled either.
  s = await opened();
  mock.timers.tick(10_000);
  await s.close();
  t.same(await files(), ['journal-0000000001.log', 'journal-0000000002.log', 'snapshot-0000000002.json'], 'none after a restart either');

  // A restart onto a journal with a batch in it: that batch is not in a snapshot yet.
  s = await opened();
  await s.apply(counter(1));
  await s.close();
  s = await opened();
  mock.timers.tick(10_000);
  await until(() => s.status().snapshots === 1, 'the timed snapshot after the restart');
  await s.snapshotSettled();
  t.equal(s.journalFile, join(dir, 'journal-0000000003.log'));
  await s.close();
  s = await opened();
  t.same(await s.getCounters(), { acks: 2 });
  await s.close();
});
