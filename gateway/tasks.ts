// The gateway's work in flight (docs/architecture.md §1, "Stopping"): device tasks and effects the
// parts start without waiting on them. Each is tracked so that stop and `settled()` wait for it, and
// a failure is logged, never thrown at whoever started it.
import type { Logger } from './logger.ts';

export class Tasks {
  readonly #pending = new Set<Promise<unknown>>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Waits for `p` at stop; returns a promise that settles with it and never rejects. */
  track<T>(p: Promise<T> | void): Promise<void> | undefined {
    if (!p) return;
    const tracked = p.then(
      () => undefined,
      (err: Error) => this.#log.error({ err: err.message }, 'gateway task failed'),
    );
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
    return tracked;
  }

  /** Resolves once every task tracked has ended, those they started too. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Resolves once the tasks in flight now have ended (not those they start). */
  async current(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }

  get size(): number {
    return this.#pending.size;
  }
}
