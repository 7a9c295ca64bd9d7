// The Store of changes without a disk (changes.ts), for tests of the parts above it. Committed
// batches are kept as the JSON text a journal would hold, in a MemoryDisk: a second store opened
// on the same disk replays them, so a "restart" reads back exactly what was committed, as copies.
//
//   const disk = new MemoryDisk();
//   const a = new MemoryChangeStore({ disk }); await a.open(); await a.apply([...]); await a.close();
//   const b = new MemoryChangeStore({ disk }); await b.open();   // sees what a committed
import type { Applied, ApplyOptions, Change, ChangeStore, StoreStatus } from './changes.ts';
import { FleetState, applied } from './fleet-state.ts';
import { StateReads } from './state-reads.ts';
import { StoreError } from './types.ts';

export class MemoryDisk {
  /** Each committed batch, as JSON. */
  readonly batches: string[] = [];
}

export interface MemoryStoreOptions {
  /** Share one between instances to simulate a restart; default a fresh one. */
  disk?: MemoryDisk;
  name?: string;
}

export class MemoryChangeStore extends StateReads implements ChangeStore {
  protected readonly name: string;
  readonly #disk: MemoryDisk;
  #batches = 0;
  #lastDurableAt: number | null = null;

  constructor(o: MemoryStoreOptions = {}) {
    super();
    this.#disk = o.disk ?? new MemoryDisk();
    this.name = o.name ?? 'memory';
  }

  async open(): Promise<void> {
    if (this.phase !== 'new') throw new StoreError('PW_STORE_CLOSED', `store ${this.name} was opened already`);
    this.state = new FleetState();
    for (const [i, body] of this.#disk.batches.entries()) {
      const batch = JSON.parse(body) as Change[];
      const c = this.state.check(batch, null, true);
      if (!c.ok) throw new StoreError('PW_STORE_CORRUPT', `${this.name}: batch ${i} does not replay: ${c.message}`);
      this.state.commit(batch);
    }
    this.state.reindex();
    this.phase = 'open';
  }

  async close(): Promise<void> {
    this.phase = 'closed';
  }

  async apply(changes: readonly Change[], _options?: ApplyOptions): Promise<Applied> {
    this.assertOpen();
    const c = this.state.check(changes, null);
    if (!c.ok) return c;
    const body = JSON.stringify(c.resolved);
    this.#disk.batches.push(body);
    this.state.commit(JSON.parse(body) as Change[]);
    this.#batches++;
    this.#lastDurableAt = Date.now();
    return applied(c);
  }

  status(): StoreStatus {
    return {
      name: this.name,
      writable: true,
      failures: 0,
      lastError: null,
      lastDurableAt: this.#lastDurableAt,
      batches: this.#batches,
      writes: this.#batches,
      fsyncs: 0,
      bytesWritten: 0,
      snapshots: 0,
      lastSnapshotMs: null,
      snapshotFailures: 0,
      snapshotWorkerRestarts: 0,
      lastSnapshotError: null,
      nextSnapshotAttemptAt: null,
      journalsSinceSnapshot: 0,
      queued: 0,
    };
  }
}
