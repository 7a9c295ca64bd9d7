import { writeLegacyStore } from '../../test/fixtures/legacy-store.ts';
await writeLegacyStore(process.argv[2]);
