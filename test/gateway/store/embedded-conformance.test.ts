import t from 'tap';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import { conformance } from './fixtures/conformance.ts';

conformance(t, {
  name: 'embedded',
  backing: async (t) => {
    const dir = join(t.testdir(), 'data');
    // A small snapshot threshold, so the suite runs across snapshots and journal rotations too.
    return { store: () => new EmbeddedStore({ dir, minSnapshotJournalBytes: 64 * 1024 }) };
  },
});
