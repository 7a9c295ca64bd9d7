// Rollout event ids from PostgreSQL (docs/architecture.md §8, §10): with the PostgreSQL store every
// gateway replica takes the ids of its live streams from one sequence, `rollout_event_ids`
// (postgres-schema.ts), so no two replicas give the same id. A browser a load balancer sends to
// another replica comes with an id that replica never gave, and gets a snapshot there, never "you
// missed nothing" (rollout-feed.ts). A feed sends at most ~10 events a second: one nextval each.
//
//   const ids = new PgEventIds(pool);   // the pool of the console sessions (pg-session-store.ts)
//   const id = await ids.next('r-thermostats-3-abc');
import type pg from 'pg';
import type { EventIdSource } from './rollout-feed.ts';

export class PgEventIds implements EventIdSource {
  constructor(readonly pool: pg.Pool) {}

  async next(_rolloutId: string): Promise<number> {
    const { rows } = await this.pool.query<{ id: string }>("SELECT nextval('rollout_event_ids') AS id");
    return Number(rows[0].id);
  }
}
