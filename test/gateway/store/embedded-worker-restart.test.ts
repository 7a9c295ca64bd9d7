// The embedded store when its snapshot worker dies (docs/storage.md, snapshots): the death is
// logged and counted, a new worker is started after a backoff (a second, doubling to a minute)
// and rebuilds its copy from the files, every store of the process is attached to it again, and
// snapshots go on; a snapshot under way when it died is a failed one, retried as it is. The worker
// is killed through the host's test hooks; the restart's timer is the store's `restartTimer`, fired
// by hand, so no test waits for it.
import t, { type Test } from 'tap';
import { mock } from 'node:test';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedStore, type EmbeddedStoreOptions, type RestartTimer } from '../../../gateway/store/embedded.ts';
import * as host from '../../../gateway/store/snapshot-host.ts';
import { counter, until } from './fixtures/mock-timers.ts';
import { logger } from './fixtures/store-logger.ts';
import { metricsText } from '../../../gateway/http/metrics.ts';
import { harness } from '../../fixtures/gateway.ts';

/** A restart timer that only records: the test fires what is due. */
function manualTimer() {
  const due: Array<{ fn: () => void; ms: number }> = [];
  const timer: RestartTimer = (fn, ms) => {
    const h = { fn, ms };
    due.push(h);
    return () => {
      const i = due.indexOf(h);
      if (i >= 0) due.splice(i, 1);
    };
  };
  return {
    due,
    timer,
    /** Runs the one restart due; returns the wait it was set for. */
    fire(): number {
      if (due.length !== 1) throw new Error(`expected one restart due, found ${due.length}`);
      const h = due.shift()!;
      h.fn();
      return h.ms;
    },
  };
}

/** The message type whose post kills the worker instead of reaching it (killOn), or null. */
let killType: 'load' | 'snapshot' | null = null;

/** The store's way to the worker (EmbeddedStoreOptions.attach), which ends the worker when a store posts `killType`. */
const killable: typeof host.attach = (onMessage, onFailure) => {
  const link = host.attach(onMessage, onFailure);
  return { ...link, post: (m) => (m.type === killType ? void host.terminateWorkerForTests() : link.post(m)) };
};

/** A worker that dies whenever a store opened here posts `type` to it: while loading, or with a snapshot under way. */
function killOn(t: Test, type: 'load' | 'snapshot' | null): void {
  killType = type;
  t.teardown(() => void (killType = null));
}

async function opened(dir: string, more: Partial<EmbeddedStoreOptions> = {}) {
  const s = new EmbeddedStore({ dir, snapshotIntervalMs: 3_600_000, minSnapshotJournalBytes: 1 << 30, attach: killable, ...more });
  await s.open();
  return s;
}

const journals = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith('journal-')).sort();

/** Opens the dir as a restart would, and reads the counter; then again from the newest snapshot and the last journal alone. */
async function reloaded(t: Test, dir: string, acks: number): Promise<void> {
  let again = await opened(dir);
  t.same(await again.getCounters(), { acks }, 'a restart loads every batch');
  await again.close();
  const last = (await journals(dir)).at(-1)!;
  for (const n of await journals(dir)) if (n !== last) await rm(join(dir, n));
  again = await opened(dir);
  t.same(await again.getCounters(), { acks }, `and from the newest snapshot and ${last} alone: the snapshot holds every batch before it`);
  await again.close();
}

t.test('a snapshot worker that dies is replaced: snapshots resume, the journal rotates, and nothing is lost', async (t) => {
  const dir = join(t.testdir(), 'data');
  const { log, lines } = logger();
  const timer = manualTimer();
  const s = await opened(dir, { logger: log, restartTimer: timer.timer });
  let acks = 0;
  const ack = async () => {
    await s.apply(counter(1));
    acks++;
  };
  await ack();
  await s.snapshotNow();
  await ack(); // in journal 2, after snapshot 2: the new worker reads it from there

  t.ok(await host.terminateWorkerForTests(), 'the worker was killed');
  await until(() => timer.due.length === 1, 'a restart of the worker');
  const died = lines.find((l) => l.msg.startsWith('store: the snapshot worker died'));
  t.equal(died?.level, 'warn', 'logged as a warning');
  t.match(died?.obj, { store: dir, err: /the snapshot worker exited \(code 1\)/, restartInMs: 1000 }, 'naming the cause and when it is started again');
  t.equal(s.status().snapshotFailures, 0, 'no snapshot was under way: none failed');
  await ack(); // the store stays writable meanwhile
  t.equal(s.status().writable, true);

  t.equal(timer.fire(), 1000, 'started again after a second');
  t.equal(s.status().snapshotWorkerRestarts, 1, 'the restart is counted');
  await ack();
  await s.snapshotNow();
  t.equal(s.status().snapshots, 2, 'a snapshot is written after the restart');
  t.equal(s.journalFile, join(dir, 'journal-0000000003.log'), 'and the journal rotated');
  t.equal(s.status().lastSnapshotError, null);
  t.equal(s.status().journalsSinceSnapshot, 1);
  await ack();
  await s.close();
  t.same(timer.due, [], 'nothing is left due');
  await reloaded(t, dir, acks);
});

t.test('a snapshot under way when the worker dies is a failed one: retried as it is, after the backoff, by the new worker', async (t) => {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
  t.teardown(() => mock.timers.reset());
  const dir = join(t.testdir(), 'data');
  const timer = manualTimer();
  const s = await opened(dir, { restartTimer: timer.timer });
  await s.apply(counter(1));
  killOn(t, 'snapshot');
  await s.snapshotNow(); // journal 2 begins; snapshot 2 is asked for, and the worker dies with it
  killOn(t, null);
  let st = s.status();
  t.equal(st.snapshots, 0);
  t.equal(st.snapshotFailures, 1, 'the snapshot under way counts as failed');
  t.match(st.lastSnapshotError, { code: 'PW_STORE_IO', message: /snapshot-0000000002\.json.*the snapshot worker exited/ });
  t.equal(st.journalsSinceSnapshot, 2);
  await s.apply(counter(1)); // journal 2: after snapshot 2, which the new worker must not hold

  timer.fire();
  st = s.status();
  t.equal(st.nextSnapshotAttemptAt! - Date.now(), 60_000, 'retried a minute later, as any failed snapshot');
  mock.timers.tick(60_000);
  await until(() => s.status().snapshots === 1, 'the retried snapshot');
  await s.snapshotSettled();
  t.equal(s.status().lastSnapshotError, null);
  t.same(await journals(dir), ['journal-0000000001.log', 'journal-0000000002.log'], 'the retry started no journal of its own');
  await s.snapshotNow(); // and the worker read on from where it was held: snapshot 3 holds journal 2
  t.equal(s.status().snapshots, 2);
  await s.close();
  await reloaded(t, dir, 2);
});

t.test('a worker that dies at once each time is started again after 1 s, then twice as long each time, up to a minute', async (t) => {
  const dir = join(t.testdir(), 'data');
  const timer = manualTimer();
  const s = await opened(dir, { restartTimer: timer.timer });
  t.teardown(() => s.close());
  await s.apply(counter(1));
  killOn(t, 'load');
  await host.terminateWorkerForTests();
  const waits = [];
  for (let i = 0; i < 8; i++) {
    await until(() => timer.due.length === 1, `restart ${i + 1}`);
    waits.push(timer.fire());
  }
  t.same(waits, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  t.equal(s.status().snapshotWorkerRestarts, 8);
  await until(() => timer.due.length === 1, 'restart 9');
  await t.rejects(s.snapshotNow(), { code: 'PW_STORE_IO', message: /the snapshot worker is being started again/ }, 'no snapshot while there is no worker');

  // One that loads: snapshots go on, and the next death waits a second again.
  killOn(t, null);
  t.equal(timer.fire(), 60_000);
  await s.apply(counter(1));
  await s.snapshotNow();
  t.equal(s.status().snapshots, 1);
  await host.terminateWorkerForTests();
  await until(() => timer.due.length === 1, 'a restart after one that loaded');
  t.equal(timer.fire(), 1000, 'a worker that loaded resets the backoff');
  await s.snapshotNow();
  t.equal(s.status().snapshots, 2);
});

t.test('a new worker that cannot load the files is started again later; the store keeps writing', async (t) => {
  const dir = join(t.testdir(), 'data');
  const { log, lines } = logger();
  const timer = manualTimer();
  const s = await opened(dir, { logger: log, restartTimer: timer.timer });
  await s.apply(counter(1));
  await s.snapshotNow();
  await s.apply(counter(1));
  const snap = join(dir, 'snapshot-0000000002.json');
  const aside = join(dir, '..', 'aside.json');
  await rename(snap, aside);
  await host.terminateWorkerForTests();
  await until(() => timer.due.length === 1, 'the first restart');
  timer.fire();
  await until(() => timer.due.length === 1, 'a restart after the failed load');
  const failed = lines.at(-1);
  t.match(failed, { level: 'warn', msg: /^store: the new snapshot worker could not load the files/, obj: { err: /snapshot-0000000002\.json/, restartInMs: 2000 } }, 'logged, naming the file, and backed off');
  await s.apply(counter(1));
  await rename(aside, snap);
  t.equal(timer.fire(), 2000);
  await s.apply(counter(1));
  await s.snapshotNow();
  t.equal(s.status().snapshots, 2);
  await s.close();
  await reloaded(t, dir, 4);
});

t.test('every store of the process is attached to the new worker', async (t) => {
  const timers = [manualTimer(), manualTimer(), manualTimer()];
  const dirs = timers.map((_, i) => join(t.testdir(), `data-${i}`));
  const stores = await Promise.all(dirs.map((dir, i) => opened(dir, { restartTimer: timers[i].timer })));
  for (const s of stores) await s.apply(counter(1));
  await host.terminateWorkerForTests();
  await until(() => timers.every((tm) => tm.due.length === 1), 'a restart for every store');
  for (const tm of timers) tm.fire();
  for (const s of stores) await s.apply(counter(2));
  await Promise.all(stores.map((s) => s.snapshotNow()));
  for (const [i, s] of stores.entries()) {
    t.equal(s.status().snapshots, 1, `store ${i}: a snapshot after the restart`);
    await s.close();
  }
  for (const dir of dirs) await reloaded(t, dir, 3);
});

t.test('a worker that dies while the store opens does not stop the start: the store loads the files itself, and a new worker follows', async (t) => {
  const dir = join(t.testdir(), 'data');
  const first = await opened(dir);
  await first.apply(counter(1));
  await first.close();
  const { log, lines } = logger();
  const timer = manualTimer();
  killOn(t, 'load');
  const s = await opened(dir, { logger: log, restartTimer: timer.timer });
  killOn(t, null);
  t.same(await s.getCounters(), { acks: 1 }, 'opened with what the files hold');
  await s.apply(counter(1));
  await until(() => timer.due.length === 1, 'a restart of the worker');
  t.match(lines.find((l) => l.msg.startsWith('store: the snapshot worker died')), { level: 'warn', obj: { err: /exited/, restartInMs: 1000 } }, 'logged as any death');
  t.equal(timer.fire(), 1000);
  await s.apply(counter(1));
  await s.snapshotNow();
  t.equal(s.status().snapshots, 1, 'snapshots go on with the new worker');
  await s.apply(counter(1));
  await s.close();
  await reloaded(t, dir, 4);
});

t.test('a store closed while its new worker is due starts none', async (t) => {
  const timer = manualTimer();
  const s = await opened(join(t.testdir(), 'data'), { restartTimer: timer.timer });
  await host.terminateWorkerForTests();
  await until(() => timer.due.length === 1, 'a restart of the worker');
  await s.close();
  t.same(timer.due, [], 'the restart is cancelled');
});

t.test("the restarts are in the gateway's /metrics", async (t) => {
  const timer = manualTimer();
  const dir = join(t.testdir(), 'data');
  const h = await harness(t, { store: new EmbeddedStore({ dir, restartTimer: timer.timer }) });
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metricsText(h.gw, {}))?.[1]);
  t.equal(value('pinwave_store_snapshot_worker_restarts_total'), 0);
  await host.terminateWorkerForTests();
  await until(() => timer.due.length === 1, 'a restart of the worker');
  timer.fire();
  t.equal(value('pinwave_store_snapshot_worker_restarts_total'), 1);
  t.equal(value('pinwave_store_snapshot_failures_total'), 0, 'no snapshot was under way');
  await (h.gw.store as EmbeddedStore).snapshotNow();
  t.equal(value('pinwave_store_snapshots_total'), 1);
});
