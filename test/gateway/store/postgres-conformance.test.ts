import t from 'tap';
import { PostgresStore } from '../../../gateway/store/postgres.ts';
import { conformance } from './fixtures/conformance.ts';
import { testDatabase } from './fixtures/pg-database.ts';

conformance(t, {
  name: 'postgres',
  backing: async (t) => {
    const url = await testDatabase(t);
    return { store: () => new PostgresStore({ url }) };
  },
});
