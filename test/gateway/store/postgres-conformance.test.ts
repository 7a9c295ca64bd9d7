import t from 'tap';
import { PostgresStore } from '../../../gateway/store/postgres.ts';
import { conformance } from './conformance.ts';
import { testDatabase } from './pg-database.ts';

conformance(t, {
  name: 'postgres',
  backing: async (t) => {
    const url = await testDatabase(t);
    return { store: () => new PostgresStore({ url }) };
  },
});
