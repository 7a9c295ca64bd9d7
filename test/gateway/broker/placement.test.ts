// Which broker a new device goes to (docs/architecture.md §8): the least loaded, the first on a tie.
import t from 'tap';
import { placeDevices } from '../../../gateway/broker/placement.ts';

t.test('each device goes to the broker holding the fewest, the earliest on a tie', async (t) => {
  t.same(placeDevices([0, 0], 5), { picks: [0, 1, 0, 1, 0], counts: [3, 2] }, 'an empty pair alternates, the first first');
  t.same(placeDevices([3, 1, 1], 4), { picks: [1, 2, 1, 2], counts: [3, 3, 3] }, 'a new broker fills up before the others get more');
  t.same(placeDevices([5], 2), { picks: [0, 0], counts: [7] }, 'one broker takes them all');
  t.same(placeDevices([2, 2], 0), { picks: [], counts: [2, 2] });
  const counts = [4, 0];
  placeDevices(counts, 3);
  t.same(counts, [4, 0], 'the counts given are not changed');
  t.same(placeDevices([0, 0, 0], 6), placeDevices([0, 0, 0], 6), 'the same counts give the same placement');
  t.throws(() => placeDevices([], 1), RangeError);
});
