// The embedded store's snapshot worker (docs/storage.md): a worker thread that keeps its own copy
// of the fleet state, fed the same committed batches as the store, and writes it as a snapshot
// when told, so serialising 100,000 devices never blocks the gateway's event loop. Loading its
// copy (snapshot + journal replay) runs in parallel with the store's own. One worker serves every
// embedded store of a process (snapshot-host.ts); each message names its store by number.
//
// The batches come from the journal file, not through the message port: the store says how far
// the journal is durable, and the worker reads the records up to there. The event loop copies
// nothing of a batch to the worker, and a worker that falls behind holds offsets, not batches.
// It runs at a lower CPU priority than the event loop (on Linux a thread's nice value is its own):
// on a machine with fewer free cores than busy threads, writing a snapshot must not take the
// event loop's core (docs/architecture.md §7: the loop is never blocked for long by a snapshot).
//
// Messages in:  { type: 'load', base: { kind: 'snapshot' | 'legacy' | 'empty', path }, journals: [{ path, end }], held? }
//                                                            at open, and for a new worker after one died: the
//                                                            copy is rebuilt from the files; `held` ({ path, end }):
//                                                            a snapshot of it failed and is owed, the copy is held
//                                                            as after a failed one, the journal after it durable to `end`
//               { type: 'journaled', path, end }             the journal at `path` is durable up to byte `end`
//               { type: 'snapshot', gen, path }              write the state as it stands now (after a failed
//                                                            one: the same snapshot again, the copy held at it)
//               { type: 'close' }                            forget the store's state
// Messages out: { type: 'loaded' } | { type: 'failed', message }
//               { type: 'snapshot', gen, ok: true, bytes, fsyncs, ms } | { type: 'snapshot', gen, ok: false, code, message }
import { closeSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import type { Change } from './changes.ts';
import { FleetState } from './fleet-state.ts';
import { readJournal } from './journal.ts';
import { SnapshotFile, readSnapshot } from './snapshot.ts';
import { readLegacyFile } from './upgrade.ts';

export type WorkerIn = { store: number } & (
  | { type: 'load'; base: { kind: 'snapshot' | 'legacy' | 'empty'; path: string | null }; journals: Array<{ path: string; end: number }>; held?: { path: string; end: number } }
  | { type: 'journaled'; path: string; end: number }
  | { type: 'snapshot'; gen: number; path: string }
  | { type: 'close' }
);

export type WorkerOut = { store: number } & (
  | { type: 'loaded' }
  | { type: 'failed'; message: string }
  | { type: 'snapshot'; gen: number; ok: true; bytes: number; fsyncs: number; ms: number }
  | { type: 'snapshot'; gen: number; ok: false; code: string; message: string }
  | { type: 'closed' }
);

const port = parentPort!;
if (parentPort === null) throw new Error('snapshot-worker.ts runs as a worker thread');

/** How nice the worker thread is: below the event loop, yet not starved by other busy processes. */
const NICE = 10;
try {
  setPriority(NICE);
} catch {
  // not permitted here: it runs at the process's priority
}

/** A store's copy of the state, and how far into which journal it has read. */
interface Copy {
  state: FleetState;
  journal: { path: string; pos: number; fd: number } | null;
  /** why the copy stopped following the journal: snapshots then fail with it */
  broken: string | null;
  /**
   * While a snapshot that failed is owed: the store asks for the same snapshot again (it starts no
   * journal per attempt, nor any other until that one is written), so the copy stays the state it
   * is of, and `behind` notes how far the journal after it is durable; the copy reads on from
   * there once the snapshot is written.
   */
  held: boolean;
  behind: { path: string; end: number } | null;
}

const copies = new Map<number, Copy>();
// Messages are handled one at a time, in order: a snapshot holds exactly the batches sent before it.
let chain: Promise<void> = Promise.resolve();
const send = (m: WorkerOut) => port.postMessage(m);

port.on('message', (m: WorkerIn) => {
  chain = chain.then(() => handle(m));
});

function forget(c: Copy | undefined): void {
  if (c?.journal) closeSync(c.journal.fd);
}

/** Reads and applies the records of `path` up to `end` that the copy has not seen. */
function follow(c: Copy, path: string, end: number): void {
  if (c.journal?.path !== path) {
    // A new journal begins at 0; the store is done with the one before (messages come in order).
    forget(c);
    c.journal = { path, pos: 0, fd: openSync(path, 'r') };
  }
  const j = c.journal;
  if (end <= j.pos) return;
  const bytes = Buffer.allocUnsafe(end - j.pos);
  let got = 0;
  while (got < bytes.length) {
    const n = readSync(j.fd, bytes, got, bytes.length - got, j.pos + got);
    if (n === 0) throw new Error(`${path} ends at byte ${j.pos + got}, before the ${end} the store wrote`);
    got += n;
  }
  // Whole records only: the store says `end` once the records before it are durable.
  for (const r of readJournal(bytes, path, false).records) c.state.commit(JSON.parse(r.body) as Change[]);
  j.pos = end;
}

/** follow(), a failure of which breaks the copy: snapshots then fail with it. */
function catchUp(c: Copy, path: string, end: number): void {
  try {
    follow(c, path, end);
  } catch (err) {
    c.broken = `the snapshot worker could not read the journal: ${(err as Error).message}`;
  }
}

async function handle(m: WorkerIn): Promise<void> {
  const store = m.store;
  const c = copies.get(store);
  switch (m.type) {
    case 'load':
      try {
        let state = new FleetState();
        if (m.base.kind === 'snapshot') state = (await readSnapshot(m.base.path!)).state;
        else if (m.base.kind === 'legacy') state = await readLegacyFile(m.base.path!);
        for (const j of m.journals) {
          const bytes = (await readFile(j.path)).subarray(0, j.end);
          for (const r of readJournal(bytes, j.path, true).records) state.commit(JSON.parse(r.body) as Change[]);
        }
        state.reindex();
        const last = m.journals.at(-1);
        copies.set(store, { state, journal: last === undefined ? null : { path: last.path, pos: last.end, fd: openSync(last.path, 'r') }, broken: null, held: m.held !== undefined, behind: m.held ?? null });
        send({ store, type: 'loaded' });
      } catch (err) {
        send({ store, type: 'failed', message: (err as Error).message });
      }
      return;
    case 'close':
      forget(c);
      copies.delete(store);
      send({ store, type: 'closed' });
      return;
    case 'journaled':
      if (c === undefined || c.broken !== null) return;
      if (c.held) {
        c.behind = { path: m.path, end: m.end };
        return;
      }
      catchUp(c, m.path, m.end);
      return;
    case 'snapshot': {
      const file = new SnapshotFile(m.path);
      try {
        if (c === undefined) throw new Error('the snapshot worker holds no state for this store');
        if (c.broken !== null) throw Object.assign(new Error(c.broken), { code: 'PW_STORE_CORRUPT' });
        await file.write({ journal: m.gen, state: c.state });
        const f = file.last!;
        send({ store, type: 'snapshot', gen: m.gen, ok: true, bytes: f.bytes, fsyncs: f.fsyncs, ms: f.ms });
      } catch (err) {
        send({ store, type: 'snapshot', gen: m.gen, ok: false, code: (err as NodeJS.ErrnoException).code ?? 'EIO', message: (err as Error).message });
        if (c !== undefined) c.held = true;
        return;
      }
      const behind = c.behind;
      c.held = false;
      c.behind = null;
      if (behind !== null) catchUp(c, behind.path, behind.end);
      return;
    }
  }
}
