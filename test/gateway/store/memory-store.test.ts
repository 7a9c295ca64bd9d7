import t from 'tap';
import { MemoryChangeStore, MemoryDisk } from '../../../gateway/store/memory-store.ts';
import { conformance } from './fixtures/conformance.ts';

conformance(t, {
  name: 'memory',
  backing: async () => {
    const disk = new MemoryDisk();
    return { store: () => new MemoryChangeStore({ disk }) };
  },
});
