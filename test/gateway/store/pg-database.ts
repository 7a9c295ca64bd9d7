// A PostgreSQL database of its own for a test: created with a random name on 127.0.0.1:5432 (user
// postgres, trust auth, as on the project's machines and in .ci/run) and dropped when `t` ends.
// When no server answers, the test fails saying so: it is never skipped.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Test } from 'tap';

export const PG_ADMIN_URL = process.env.PINWAVE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function testDatabase(t: Test): Promise<string> {
  const name = `pinwave_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`PostgreSQL is not reachable at ${PG_ADMIN_URL} (${(err as Error).message}): the PostgreSQL store's tests need it; .ci/run starts it`);
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  });
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}
