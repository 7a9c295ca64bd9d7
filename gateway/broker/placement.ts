// Which broker a new device is provisioned onto when the gateway runs on several (docs/architecture.md
// §8): the one holding the fewest devices, the earliest in the list on a tie, so the same fleet and
// the same list give the same placement. A device keeps its broker for good (its firmware was given
// that URL); only new devices are placed. Pure.
//
//   placeDevices([3, 1, 1], 4);   // → { picks: [1, 2, 1, 2], counts: [3, 3, 3] }

/** `n` picks (indexes into `counts`), each to the broker with the fewest devices so far; and the counts after. */
export function placeDevices(counts: readonly number[], n: number): { picks: number[]; counts: number[] } {
  if (counts.length === 0) throw new RangeError('placeDevices needs at least one broker');
  const after = [...counts];
  const picks: number[] = [];
  for (let k = 0; k < n; k++) {
    let best = 0;
    for (let i = 1; i < after.length; i++) if (after[i] < after[best]) best = i;
    after[best]++;
    picks.push(best);
  }
  return { picks, counts: after };
}
