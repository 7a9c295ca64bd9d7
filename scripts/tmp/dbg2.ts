import { EmbeddedStore } from '../../gateway/store/embedded.ts';
import { mkdtempSync } from 'node:fs';
const dir = mkdtempSync('/tmp/emb-');
const mk = () => new EmbeddedStore({ dir, minSnapshotJournalBytes: 64 * 1024 });
const a = mk(); await a.open();
console.log(await a.apply([{ type: 'group.allocateSeq', group: 'g1' }]));
await a.close(); console.log('a closed');
const b = mk(); await b.open(); console.log('b open');
console.log(await Promise.all([1,2,3].map(() => b.apply([{ type: 'group.allocateSeq', group: 'g3' }]))));
try { await b.apply([{ type: 'group.allocateSeq', group: 'g1', seq: 7 } as any]); } catch (e) { console.log('threw', (e as Error).message); }
console.log('closing b'); await b.close(); console.log('b closed');
const c = mk(); await c.open(); console.log('c open');
console.log(await c.apply([{ type: 'group.allocateSeq', group: 'g3' }]));
await c.close(); console.log('c closed');
