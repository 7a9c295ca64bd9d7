// Latency histograms and merged summaries (device-sim/latency.ts): what `pinwave sim --processes N`
// adds up across its workers.
import t from 'tap';
import { BUCKETS, count, emptyHistogram, formatHistogram, mergeSummaries, quantile, record } from '../../device-sim/latency.ts';

t.test('samples fall in power-of-two buckets; quantiles are bucket upper bounds', async (t) => {
  const h = emptyHistogram();
  t.equal(h.length, BUCKETS);
  t.equal(quantile(h, 0.5), null, 'no samples, no quantile');
  t.equal(formatHistogram(h), 'none');
  for (const ms of [0.2, 1, 1.5, 3, 3, 4, 900, 2 ** 30]) record(h, ms);
  t.same(h.slice(0, 3), [2, 1, 3], '≤1 ms: 2; ≤2 ms: 1; ≤4 ms: 3');
  t.equal(h[10], 1, '900 ms in the ≤1024 ms bucket');
  t.equal(h[BUCKETS - 1], 1, 'the longest in the last bucket');
  t.equal(count(h), 8);
  t.equal(quantile(h, 0.5), 4);
  t.equal(quantile(h, 0.8), 1024);
  t.equal(quantile(h, 1), Infinity);
  t.match(formatHistogram(h), /^p50 ≤4 ms, p95 >\d+ ms, max >\d+ ms \(8\)$/);
});

t.test('summaries merge: numbers summed, maps key by key, arrays element by element; inputs untouched', async (t) => {
  const a = { devices: 2, seqs: { '0': 1, '1': 1 }, rejected: {}, latency: { connect: [1, 0, 1] } };
  const b = { devices: 3, seqs: { '1': 3 }, rejected: { apply_failed: 1 }, latency: { connect: [0, 2, 1] } };
  t.same(mergeSummaries([a, b]), { devices: 5, seqs: { '0': 1, '1': 4 }, rejected: { apply_failed: 1 }, latency: { connect: [1, 2, 2] } });
  t.same(a.seqs, { '0': 1, '1': 1 }, 'the first summary is not changed');
  t.same(mergeSummaries([b]), b);
  t.throws(() => mergeSummaries([]), /at least one/);
  t.throws(() => mergeSummaries([{ x: 1 }, { x: 'a' }]), /cannot merge/);
});
