// Latencies of a fleet as fixed buckets, so that the histograms of fleets in several processes add
// up exactly (`pinwave sim --processes N`, docs/architecture.md §8): bucket k counts the samples of
// at most 2^k ms (bucket 0: 1 ms or less), the last bucket everything above. Pure: no clock.
//
//   const h = emptyHistogram();
//   record(h, 3.2);                  // counted in the 4 ms bucket
//   quantile(h, 0.95);               // 4: the upper bound of the bucket holding the 95th percentile
//   mergeSummaries([a, b]);          // every count summed, maps and bucket arrays too

/** 2^0 … 2^20 ms (about 17 minutes), then one bucket for everything longer. */
export const BUCKETS = 22;

/** Counts per bucket; JSON as it is, summed element by element. */
export type Histogram = number[];

export function emptyHistogram(): Histogram {
  return new Array<number>(BUCKETS).fill(0);
}

export function record(h: Histogram, ms: number): void {
  const k = ms <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log2(ms)));
  h[k]++;
}

export function count(h: Histogram): number {
  return h.reduce((a, b) => a + b, 0);
}

/** The upper bound in ms of the bucket holding quantile `q` (0..1); Infinity in the last bucket, null with no samples. */
export function quantile(h: Histogram, q: number): number | null {
  const n = count(h);
  if (n === 0) return null;
  const rank = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (let k = 0; k < h.length; k++) {
    seen += h[k];
    if (seen >= rank) return k === BUCKETS - 1 ? Infinity : 2 ** k;
  }
  return Infinity;
}

/** `p50 ≤4 ms, p95 ≤16 ms, max ≤64 ms (n)`, or `none` with no samples. */
export function formatHistogram(h: Histogram): string {
  const n = count(h);
  if (n === 0) return 'none';
  const ms = (x: number | null) => (x === null ? '-' : x === Infinity ? `>${2 ** (BUCKETS - 2)} ms` : x >= 1000 ? `≤${(x / 1000).toFixed(x >= 10_000 ? 0 : 1)} s` : `≤${x} ms`);
  return `p50 ${ms(quantile(h, 0.5))}, p95 ${ms(quantile(h, 0.95))}, max ${ms(quantile(h, 1))} (${n})`;
}

/**
 * Several fleets' summaries as one: every number summed, maps merged key by key, arrays (the
 * histograms) element by element. Summaries of one shape only: what Fleet.summary() returns.
 */
export function mergeSummaries<T>(parts: readonly T[]): T {
  if (parts.length === 0) throw new TypeError('expected at least one summary to merge');
  return parts.slice(1).reduce((a, b) => add(a, b) as T, structuredClone(parts[0]));
}

function add(a: unknown, b: unknown): unknown {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === undefined) return structuredClone(b);
  if (b === undefined) return a;
  if (Array.isArray(a) && Array.isArray(b)) return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => add(a[i], b[i]));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const out = a as Record<string, unknown>;
    for (const [k, v] of Object.entries(b)) out[k] = add(out[k], v);
    return out;
  }
  throw new TypeError(`cannot merge ${JSON.stringify(a)} with ${JSON.stringify(b)}`);
}
