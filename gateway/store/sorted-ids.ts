// Ids kept in order for cursor pagination (docs/storage.md: pages are in id order by UTF-16 code
// unit), without sorting per page.
/**
 * Ids in order, for cursor pagination without sorting per page: sorted once on first use, kept
 * sorted by binary-search insertion for small inserts, dropped and re-sorted lazily after a bulk one.
 */
export class SortedIds {
  readonly #source: () => Iterable<string>;
  #ids: string[] | null = null;
  static readonly #SPLICE_MAX = 64; // past this, one sort beats many O(n) splices

  constructor(source: () => Iterable<string>) {
    this.#source = source;
  }

  get ids(): string[] {
    // Default sort compares UTF-16 code units, the same order as `<` in after() below.
    return (this.#ids ??= Array.from(this.#source()).sort());
  }

  /** Forgets the order: it is sorted again from the source on next use. */
  reset(): void {
    this.#ids = null;
  }

  addMany(ids: string[]): void {
    if (this.#ids === null) return;
    if (ids.length > SortedIds.#SPLICE_MAX) {
      this.#ids = null;
      return;
    }
    for (const id of ids) this.#ids.splice(this.after(id, true), 0, id);
  }

  remove(id: string): void {
    if (this.#ids === null) return;
    const i = this.after(id, true);
    if (this.#ids[i] === id) this.#ids.splice(i, 1);
  }

  /** Index of the first id > `cursor` (or >= it, with `inclusive`). */
  after(cursor: string, inclusive = false): number {
    const ids = this.ids;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ids[mid] < cursor || (!inclusive && ids[mid] === cursor)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
