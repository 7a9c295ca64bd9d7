// Reading the gateway's in-memory parts again from the store after a commit failed
// (docs/architecture.md §7: a change the store could not commit has no effect anywhere, in memory
// either). The rollout records and the telemetry book are changed in memory before their batch
// commits; when one fails (a StoreError, or a batch the store refused), every part is read again
// from the store once no batch is in flight, and `reloading` is set meanwhile: device messages and
// operator actions wait for it before they change a part.
//
//   const reloads = new Reloads(store, log);
//   reloads.add(() => rollouts.load());
//   new Rollouts({ store: reloads.store, reloads, ... });   // commits through it are watched
import type { Logger } from './logger.ts';
import { StoreRefusal } from './fleet-reads.ts';
import type { Applied, ApplyOptions, Change, ChangeStore } from './store/changes.ts';

export class Reloads {
  /** The store, its batches watched: what the parts that change memory first commit through. */
  readonly store: ChangeStore;
  readonly #log: Logger;
  /** the store itself, unwatched */
  readonly #store: ChangeStore;
  readonly #loads: Array<() => Promise<void>> = [];
  #inFlight = 0;
  #failed = false;
  #reloading: Promise<void> | null = null;
  /** what waits for the read after a failure whose read has not started (a batch is still in flight) */
  readonly #waiters: Array<() => void> = [];

  constructor(store: ChangeStore, log: Logger) {
    this.#log = log;
    this.#store = store;
    const apply = (changes: readonly Change[], options?: ApplyOptions) => this.#apply(store, changes, options);
    const bound = new Map<PropertyKey, unknown>();
    this.store = new Proxy(store, {
      get(target, prop) {
        if (prop === 'apply') return apply;
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        let f = bound.get(prop);
        if (f === undefined) bound.set(prop, (f = (v as (...a: unknown[]) => unknown).bind(target)));
        return f;
      },
    });
  }

  /** A part to read again after a failed commit. */
  add(load: () => Promise<void>): void {
    this.#loads.push(load);
  }

  /** Set while the parts are read again; a caller about to change one waits for it first. */
  get reloading(): Promise<void> | null {
    return this.#reloading;
  }

  /**
   * True from a failed commit until the parts are read again after it: what memory holds then may
   * not be in the store (a read that copied it meanwhile copies it again, Rollouts.committed).
   */
  get dirty(): boolean {
    return this.#failed || this.#reloading !== null;
  }

  /** Resolves once the parts have been read again (or that read failed) after the failures so far. */
  settled(): Promise<void> {
    if (this.#reloading) return this.#reloading;
    if (!this.#failed) return Promise.resolve();
    if (this.#inFlight === 0) {
      // The last read failed ("trying at the next commit"): a reader waiting for one tries now.
      this.#reload();
      return this.#reloading!;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * A promise chained with handlers made once, not an async function: every device message's
   * batch goes through here, and what waits for its fsync beside it is what the collector copies.
   */
  #apply(store: ChangeStore, changes: readonly Change[], options?: ApplyOptions): Promise<Applied> {
    // A lazy batch (presence) changes no part in memory, and may wait a second for its write.
    if (options?.durable === false) return store.apply(changes, options);
    this.#inFlight++;
    let applying: Promise<Applied>;
    try {
      applying = store.apply(changes, options);
    } catch (err) {
      applying = Promise.reject(err as Error);
    }
    return applying.then(this.#committed, this.#notCommitted);
  }

  /**
   * fleet-reads.ts `commit` through the watched store, in one step: a durable batch whose refusal
   * is a StoreRefusal. The rollouts' path of every ack: one promise for both, not one each.
   */
  commit(changes: readonly Change[]): Promise<number[]> {
    this.#inFlight++;
    let applying: Promise<Applied>;
    try {
      applying = this.#store.apply(changes);
    } catch (err) {
      applying = Promise.reject(err as Error);
    }
    return applying.then(this.#seqs, this.#notCommitted);
  }

  readonly #seqs = (r: Applied): number[] => {
    if (!r.ok) {
      this.#failed = true;
      this.#settle();
      throw new StoreRefusal(this.#store.status().name, r);
    }
    this.#settle();
    return r.seqs;
  };

  readonly #committed = (r: Applied): Applied => {
    if (!r.ok) this.#failed = true;
    this.#settle();
    return r;
  };

  readonly #notCommitted = (err: unknown): never => {
    this.#failed = true;
    this.#settle();
    throw err;
  };

  #settle(): void {
    if (--this.#inFlight === 0 && this.#failed && this.#reloading === null) this.#reload();
  }

  #reload(): void {
    this.#failed = false;
    const waiters = this.#waiters.splice(0);
    this.#log.warn({}, 'a change was not committed: reading the rollouts and the telemetry book again from the store');
    this.#reloading = Promise.all(this.#loads.map((load) => load())).then(
      () => {
        this.#reloading = null;
        for (const w of waiters) w();
      },
      (err: Error) => {
        this.#reloading = null;
        this.#failed = true;
        this.#log.error({ err: err.message }, 'reading the rollouts and the telemetry book again from the store failed; trying at the next commit');
        for (const w of waiters) w();
      },
    );
  }
}
