// Bounded growth for rollouts (docs/storage.md): a rollout finished (completed or aborted) more
// than `olderThanMs` ago keeps its header, counts and decisions and drops its member rows. Who it
// reached is still known: each device record carries the bundle it reports, so a rollback of a
// compacted rollout targets `listDevices({ bundleId })`.
//
//   await compactFinishedRollouts(store, { now: Date.now(), olderThanMs: 30 * 86_400_000 });
import type { ChangeStore } from './changes.ts';

/** How long a finished rollout keeps its members by default: 30 days. */
export const DEFAULT_COMPACT_AFTER_MS = 30 * 86_400_000;

/** Compacts every rollout that finished before `now - olderThanMs` and is not compacted yet; returns their ids. */
export async function compactFinishedRollouts(store: ChangeStore, o: { now: number; olderThanMs?: number }): Promise<string[]> {
  const olderThan = o.olderThanMs ?? DEFAULT_COMPACT_AFTER_MS;
  if (!Number.isSafeInteger(olderThan) || olderThan < 0) throw new RangeError(`expected olderThanMs to be an integer >= 0, got ${olderThan}`);
  const due: string[] = [];
  for (const state of ['completed', 'aborted'] as const) {
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<ChangeStore['listRollouts']>> = await store.listRollouts({ state, cursor, limit: 1000 });
      for (const r of page.items) if (r.compactedAt === null && r.endedAt !== null && r.endedAt <= o.now - olderThan) due.push(r.id);
      cursor = page.next;
    } while (cursor !== null);
  }
  const done: string[] = [];
  for (const id of due) {
    // One batch each: a rollout that changed state meanwhile is refused alone, the others go on.
    const r = await store.apply([{ type: 'rollout.compact', id, at: o.now }]);
    if (r.ok) done.push(id);
  }
  return done;
}
