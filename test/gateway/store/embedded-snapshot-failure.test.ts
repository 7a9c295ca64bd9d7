// The embedded store when its snapshots keep failing (docs/storage.md, snapshots): the failure is
// logged and shown in the store's status, the same snapshot is retried with backoff, and no new
// journal is started for each attempt, so the journal files stay what the next successful snapshot
// needs; none a restart needs is removed. The snapshot is made to fail where it is written: a
// directory in the way of its temp file (EISDIR from the worker's open). The store's interval timer
// and clock are node:test's mock timers, so the test moves time on without waiting for it.
import t, { type Test } from 'tap';
import { mock } from 'node:test';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import { counter, until } from './fixtures/mock-timers.ts';
import { snapshotName } from '../../../gateway/store/snapshot.ts';
import { logger } from './fixtures/store-logger.ts';
import { metricsText } from '../../../gateway/http/metrics.ts';
import { harness } from '../../fixtures/gateway.ts';

/** A store on mock timers (its interval 10 s, no snapshot for size), logging to `lines`. */
async function store(t: Test) {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
  t.teardown(() => mock.timers.reset());
  const dir = join(t.testdir(), 'data');
  const { log, lines } = logger();
  const s = new EmbeddedStore({ dir, snapshotIntervalMs: 10_000, minSnapshotJournalBytes: 1 << 30, logger: log });
  await s.open();
  const failed = () => lines.filter((l) => l.msg.startsWith('store: a snapshot failed')).length;
  return { dir, s, lines, failed };
}

t.test('snapshots that keep failing: logged, shown, retried with backoff, and no journal piles up', async (t) => {
  const { dir, s, lines, failed } = await store(t);
  // Whichever snapshot the store tries, its temp file cannot be written.
  const blocked = Array.from({ length: 12 }, (_, i) => join(dir, `${snapshotName(i + 2)}.tmp`));
  for (const p of blocked) await mkdir(p);
  const journals = async () => (await readdir(dir)).filter((n) => n.startsWith('journal-')).sort();

  let acks = 0;
  for (let attempt = 1; attempt <= 6; attempt++) {
    await s.apply(counter(1));
    acks++;
    mock.timers.tick(2 * 3_600_000); // past any backoff, and past the interval: a snapshot is due
    await until(() => failed() === attempt, `failed attempt ${attempt}`);
  }
  t.same(await journals(), ['journal-0000000001.log', 'journal-0000000002.log'], 'the retries started no journal of their own');
  const st = s.status();
  t.equal(st.snapshots, 0);
  t.equal(st.snapshotFailures, 6, 'every failed attempt is counted');
  t.match(st.lastSnapshotError, { code: 'EISDIR', message: /snapshot-0000000002\.json\.tmp/ }, 'the last failure is shown, naming the file');
  t.equal(st.journalsSinceSnapshot, 2, 'a restart replays both journals');
  t.ok(st.writable, 'the journal is written as ever: the store is writable');
  const line = lines.find((l) => l.msg.startsWith('store: a snapshot failed'))!;
  t.equal(line.level, 'error');
  t.match(line.obj, { store: dir, code: 'EISDIR', failures: 1 });

  // The snapshot can be written again: the next retry writes it, and the journals it holds go.
  for (const p of blocked) await rm(p, { recursive: true });
  mock.timers.tick(2 * 3_600_000);
  await until(() => s.status().snapshots === 1, 'the snapshot after the failures');
  await s.snapshotSettled();
  t.equal(s.status().lastSnapshotError, null, 'cleared once a snapshot is written');
  t.equal(s.status().snapshotFailures, 6, 'the failures stay counted');
  t.equal(s.status().journalsSinceSnapshot, 1);
  // The worker read on from where it was held (no write since to tell it): the next snapshot it
  // writes holds every batch.
  await s.snapshotNow();
  t.equal(s.status().snapshots, 2);
  await s.apply(counter(1));
  acks++;
  await s.close();
  let again = new EmbeddedStore({ dir });
  await again.open();
  t.same(await again.getCounters(), { acks }, 'nothing was lost');
  await again.close();
  const last = (await journals()).at(-1)!;
  for (const n of await journals()) if (n !== last) await rm(join(dir, n));
  again = new EmbeddedStore({ dir });
  await again.open();
  t.same(await again.getCounters(), { acks }, `from the newest snapshot and ${last} alone`);
  await again.close();
});

t.test('the retries back off: a minute after the first failure, doubling to an hour', async (t) => {
  const { dir, s, failed } = await store(t);
  t.teardown(() => s.close());
  await mkdir(join(dir, `${snapshotName(2)}.tmp`));
  await s.apply(counter(1));
  mock.timers.tick(10_000);
  const waits = [];
  for (let attempt = 1; attempt <= 8; attempt++) {
    await until(() => failed() === attempt, `failed attempt ${attempt}`);
    const st = s.status();
    waits.push(st.nextSnapshotAttemptAt! - Date.now());
    mock.timers.tick(st.nextSnapshotAttemptAt! - Date.now());
  }
  t.same(waits, [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000]);
});

t.test("a failing snapshot is in the gateway's /metrics; the store stays writable (the journal is written)", async (t) => {
  const h = await harness(t);
  const store = h.gw.store as EmbeddedStore;
  const gen = Number(/(\d+)\.log$/.exec(store.journalFile)![1]) + 1;
  await mkdir(join(store.dir, `${snapshotName(gen)}.tmp`));
  await store.snapshotNow();
  const metrics = metricsText(h.gw, {});
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
  t.equal(value('pinwave_store_snapshot_failures_total'), 1);
  t.equal(value('pinwave_store_snapshot_failing'), 1);
  t.equal(value('pinwave_store_journal_files_replayed'), 2, 'the journal before the failed snapshot and the one after');
  t.equal(value('pinwave_store_writable'), 1);
  t.match(h.gw.storeStatus().lastSnapshotError, { code: 'EISDIR' });

  await rm(join(store.dir, `${snapshotName(gen)}.tmp`), { recursive: true });
  await store.snapshotNow(); // the failed one, written now
  const after = metricsText(h.gw, {});
  t.match(after, /^pinwave_store_snapshot_failing 0$/m, 'written: no longer failing');
  t.match(after, /^pinwave_store_journal_files_replayed 1$/m);
  t.match(after, /^pinwave_store_snapshot_failures_total 1$/m, 'the failure stays counted');
});

t.test('a snapshot asked for while one is being started, which then fails: the failed one is retried, no later one is written without its journal', async (t) => {
  // The rotation to journal 2 closes journal 1 before it asks the worker for snapshot 2: a second
  // snapshot asked for in that moment, and a batch (it goes to journal 2), come through a journal's close.
  let closing: (() => void) | null = null;
  const fsp = await import('node:fs/promises');
  const { EmbeddedStore: Store } = await t.mockImport<typeof import('../../../gateway/store/embedded.ts')>('../../../gateway/store/embedded.ts', {
    'node:fs/promises': {
      ...fsp,
      open: async (...args: Parameters<typeof fsp.open>) => {
        const fh = await fsp.open(...args);
        if (!String(args[0]).includes('journal-')) return fh;
        const close = fh.close.bind(fh);
        fh.close = () => {
          const hook = closing;
          closing = null;
          hook?.();
          return close();
        };
        return fh;
      },
    },
  });
  const dir = join(t.testdir(), 'data');
  const s = new Store({ dir, snapshotIntervalMs: 3_600_000, minSnapshotJournalBytes: 1 << 30 });
  await s.open();
  let acks = 0;
  await s.apply(counter(1));
  acks++;
  await mkdir(join(dir, `${snapshotName(2)}.tmp`));
  let second: Promise<void> | undefined;
  let applied: Promise<unknown> | undefined;
  closing = () => {
    second = s.snapshotNow();
    applied = s.apply(counter(1));
  };
  await s.snapshotNow();
  t.ok(second, 'the second snapshot was asked for while journal 1 was being closed');
  await second;
  await applied;
  acks++;
  t.equal(s.status().snapshots, 0);
  t.match(s.status().lastSnapshotError, { code: 'EISDIR' }, 'snapshot 2 failed');

  // Snapshot 2 could be written now. The next batch starts no journal 3 with a snapshot 3 of the
  // state the worker is held at (before journal 2's batch), which a restart would take as covering
  // journal 2.
  await rm(join(dir, `${snapshotName(2)}.tmp`), { recursive: true });
  await s.apply(counter(1));
  acks++;
  await s.snapshotSettled();
  await s.close();
  let again = new EmbeddedStore({ dir });
  await again.open();
  t.same(await again.getCounters(), { acks }, 'every batch is there after a restart');
  // and a snapshot written then holds them all
  await again.snapshotNow();
  t.equal(again.status().snapshots, 1);
  await again.close();
  again = new EmbeddedStore({ dir });
  await again.open();
  t.same(await again.getCounters(), { acks }, 'and from the snapshot');
  await again.close();
});

t.test('two snapshots asked for at once while one is owed: it is written once, of the state it is of', async (t) => {
  const dir = join(t.testdir(), 'data');
  const s = new EmbeddedStore({ dir, snapshotIntervalMs: 3_600_000, minSnapshotJournalBytes: 1 << 30 });
  await s.open();
  await s.apply(counter(1));
  await mkdir(join(dir, `${snapshotName(2)}.tmp`));
  await s.snapshotNow();
  t.match(s.status().lastSnapshotError, { code: 'EISDIR' }, 'snapshot 2 failed: it is owed');
  await rm(join(dir, `${snapshotName(2)}.tmp`), { recursive: true });
  await s.apply(counter(1)); // journal 2, after the snapshot
  await Promise.all([s.snapshotNow(), s.snapshotNow()]);
  t.equal(s.status().snapshots, 1);
  await s.close();
  const again = new EmbeddedStore({ dir });
  await again.open();
  t.same(await again.getCounters(), { acks: 2 }, 'snapshot 2 holds journal 1, and journal 2 is replayed onto it once');
  await again.close();
});
