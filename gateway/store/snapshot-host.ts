// The one snapshot worker thread a process's embedded stores share (snapshot-worker.ts): started
// on first use and kept while the process lives, so reopening a store does not pay a thread's
// start-up again; it holds the process open only while a store is attached. Each store attaches under a number
// and gets only its own messages. A worker that dies is told to every store attached to it, once;
// the next attach starts a new one (each store attaches again after its backoff: embedded.ts).
import { Worker } from 'node:worker_threads';
import type { WorkerIn, WorkerOut } from './snapshot-worker.ts';

type Listener = (m: WorkerOut) => void;
type Failure = (err: Error) => void;

let worker: Worker | null = null;
let nextId = 1;
const listeners = new Map<number, { onMessage: Listener; onFailure: Failure }>();

function start(): Worker {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const w = new Worker(new URL(`./snapshot-worker${ext}`, import.meta.url));
  w.on('message', (m: WorkerOut) => listeners.get(m.store)?.onMessage(m));
  let failed = false;
  const fail = (err: Error) => {
    // 'error' is followed by 'exit': the stores hear of it once, and those attached to a worker
    // started in between are not told of this one's death.
    if (failed) return;
    failed = true;
    if (worker === w) worker = null;
    const told = [...listeners.values()];
    listeners.clear();
    for (const l of told) l.onFailure(err);
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`the snapshot worker exited (code ${code})`)));
  w.unref(); // after the listeners: adding one refs it again
  return w;
}

export interface SnapshotLink {
  readonly id: number;
  post(m: WorkerIn extends infer T ? (T extends { store: number } ? Omit<T, 'store'> : never) : never): void;
  /** Forgets this store's state in the worker; resolves once the worker has done what was sent before. */
  detach(): Promise<void>;
}

export function attach(onMessage: Listener, onFailure: Failure): SnapshotLink {
  worker ??= start();
  const w = worker;
  const id = nextId++;
  listeners.set(id, { onMessage, onFailure });
  w.ref();
  let detached: Promise<void> | null = null;
  return {
    id,
    post: (m) => w.postMessage({ ...m, store: id } as WorkerIn),
    detach: () =>
      (detached ??= new Promise<void>((resolve) => {
        if (!listeners.has(id)) return resolve();
        listeners.set(id, {
          onMessage: (m) => {
            if (m.type === 'closed') {
              listeners.delete(id);
              if (listeners.size === 0) w.unref();
              resolve();
            } else onMessage(m);
          },
          onFailure: () => resolve(),
        });
        w.postMessage({ type: 'close', store: id } satisfies WorkerIn);
      })),
  };
}

/**
 * For tests only: ends the current worker thread as a crash would (the stores attached to it are
 * told it exited). Resolves once it has; false when no worker runs.
 */
export async function terminateWorkerForTests(): Promise<boolean> {
  if (worker === null) return false;
  await worker.terminate();
  return true;
}
