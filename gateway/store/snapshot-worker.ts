// The embedded store's snapshot worker (docs/storage.md): a worker thread that keeps its own copy
// of the fleet state, fed the same committed batches as the store, and writes it as a snapshot
// when told, so serialising 100,000 devices never blocks the gateway's event loop. Loading its
// copy (snapshot + journal replay) runs in parallel with the store's own. One worker serves every
// embedded store of a process (snapshot-host.ts); each message names its store by number.
//
// Messages in:  { type: 'load', base: { kind: 'snapshot' | 'legacy' | 'empty', path }, journals: [{ path, end }] }
//               { type: 'batches', bodies }                  committed batches, in commit order, one JSON a line
//               { type: 'snapshot', gen, path }              write the state as it stands now
//               { type: 'close' }                            forget the store's state
// Messages out: { type: 'loaded' } | { type: 'failed', message }
//               { type: 'snapshot', gen, ok: true, bytes, fsyncs, ms } | { type: 'snapshot', gen, ok: false, code, message }
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import type { Change } from './changes.ts';
import { FleetState } from './fleet-state.ts';
import { readJournal } from './journal.ts';
import { SnapshotFile, readSnapshot } from './snapshot.ts';
import { readLegacyFile } from './upgrade.ts';

export type WorkerIn = { store: number } & (
  | { type: 'load'; base: { kind: 'snapshot' | 'legacy' | 'empty'; path: string | null }; journals: Array<{ path: string; end: number }> }
  | { type: 'batches'; bodies: string }
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

const states = new Map<number, FleetState>();
// Messages are handled one at a time, in order: a snapshot holds exactly the batches sent before it.
let chain: Promise<void> = Promise.resolve();
const send = (m: WorkerOut) => port.postMessage(m);

port.on('message', (m: WorkerIn) => {
  chain = chain.then(() => handle(m));
});

async function handle(m: WorkerIn): Promise<void> {
  const store = m.store;
  let state = states.get(store) ?? new FleetState();
  switch (m.type) {
    case 'load':
      try {
        if (m.base.kind === 'snapshot') state = (await readSnapshot(m.base.path!)).state;
        else if (m.base.kind === 'legacy') state = await readLegacyFile(m.base.path!);
        states.set(store, state);
        for (const j of m.journals) {
          const bytes = (await readFile(j.path)).subarray(0, j.end);
          for (const r of readJournal(bytes, j.path, true).records) state.commit(JSON.parse(r.body) as Change[]);
        }
        state.reindex();
        send({ store, type: 'loaded' });
      } catch (err) {
        states.delete(store);
        send({ store, type: 'failed', message: (err as Error).message });
      }
      return;
    case 'close':
      states.delete(store);
      send({ store, type: 'closed' });
      return;
    case 'batches':
      for (const body of m.bodies.split('\n')) state.commit(JSON.parse(body) as Change[]);
      return;
    case 'snapshot': {
      const file = new SnapshotFile(m.path);
      try {
        await file.write({ journal: m.gen, state });
        const f = file.last!;
        send({ store, type: 'snapshot', gen: m.gen, ok: true, bytes: f.bytes, fsyncs: f.fsyncs, ms: f.ms });
      } catch (err) {
        send({ store, type: 'snapshot', gen: m.gen, ok: false, code: (err as NodeJS.ErrnoException).code ?? 'EIO', message: (err as Error).message });
      }
      return;
    }
  }
}
