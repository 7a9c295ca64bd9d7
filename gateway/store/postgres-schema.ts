// The PostgreSQL store's tables (docs/storage.md), as numbered migrations applied at start, each
// once, recorded in pinwave_schema. Ids are `COLLATE "C"` so that pages come in the same order as
// the other stores' (UTF-16 code units and bytes agree on the ASCII ids the API allows). Times are
// epoch milliseconds in bigint columns.
export const MIGRATIONS: readonly string[] = [
  // 1: the fleet
  `
  CREATE TABLE devices (
    id text COLLATE "C" PRIMARY KEY,
    grp text COLLATE "C" NOT NULL,
    model text,
    firmware text,
    token_hash text NOT NULL,
    created_at bigint NOT NULL,
    revoked_at bigint,
    last_seen bigint,
    last_connect_at bigint,
    last_disconnect_at bigint,
    seq bigint,
    bundle_id text COLLATE "C",
    key_epoch bigint,
    key_epoch_set boolean NOT NULL DEFAULT false,
    -- entries ever appended, numbering each device's history and telemetry (k) so the cap is a range delete
    history_count bigint NOT NULL DEFAULT 0,
    telemetry_count bigint NOT NULL DEFAULT 0
  );
  CREATE INDEX devices_grp ON devices (grp, id);
  CREATE INDEX devices_bundle ON devices (bundle_id, id) WHERE bundle_id IS NOT NULL;

  CREATE TABLE device_history (
    n bigserial PRIMARY KEY,
    device_id text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    k bigint NOT NULL,
    at bigint NOT NULL,
    rollout_id text,
    bundle_id text NOT NULL,
    seq bigint NOT NULL,
    event text NOT NULL,
    reason text
  );
  CREATE INDEX device_history_device ON device_history (device_id, k);

  CREATE TABLE device_telemetry (
    n bigserial PRIMARY KEY,
    device_id text COLLATE "C" NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    k bigint NOT NULL,
    at bigint NOT NULL,
    report jsonb NOT NULL
  );
  CREATE INDEX device_telemetry_device ON device_telemetry (device_id, k);

  CREATE TABLE bundles (
    id text COLLATE "C" PRIMARY KEY,
    grp text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    size integer NOT NULL,
    created_at bigint NOT NULL,
    bytes text NOT NULL,
    created_by text,
    meta jsonb
  );
  CREATE INDEX bundles_grp ON bundles (grp, id);

  CREATE TABLE groups (
    name text COLLATE "C" PRIMARY KEY,
    seq bigint NOT NULL DEFAULT 0,
    baseline text
  );

  CREATE TABLE rollouts (
    ord bigserial UNIQUE NOT NULL,
    id text COLLATE "C" PRIMARY KEY,
    format integer NOT NULL,
    bundle_id text NOT NULL,
    bundle_seq bigint NOT NULL,
    bundle_group text COLLATE "C" NOT NULL,
    target jsonb NOT NULL,
    plan jsonb NOT NULL,
    state text NOT NULL,
    created_at bigint NOT NULL,
    started_at bigint,
    ended_at bigint,
    wave integer NOT NULL,
    created_by text NOT NULL,
    previous_bundle text,
    rollback_of text,
    rolled_back_by text,
    compacted_at bigint
  );
  CREATE INDEX rollouts_state ON rollouts (state, ord);

  CREATE TABLE rollout_waves (
    rollout_id text COLLATE "C" NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    idx integer NOT NULL,
    plan_index integer NOT NULL,
    size jsonb NOT NULL,
    thresholds jsonb NOT NULL,
    state text NOT NULL,
    started_at bigint,
    deadline bigint,
    soak_until bigint,
    ended_at bigint,
    swept boolean NOT NULL,
    member_count integer NOT NULL,
    pending integer NOT NULL,
    sent integer NOT NULL,
    applied integer NOT NULL,
    rejected integer NOT NULL,
    timed_out integer NOT NULL,
    failing integer NOT NULL,
    unreachable integer NOT NULL,
    rejected_by_reason jsonb NOT NULL,
    PRIMARY KEY (rollout_id, idx)
  );

  CREATE TABLE rollout_members (
    rollout_id text COLLATE "C" NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    device_id text COLLATE "C" NOT NULL,
    wave integer NOT NULL,
    ord integer NOT NULL,
    status text NOT NULL,
    reason text,
    at bigint,
    PRIMARY KEY (rollout_id, device_id)
  );
  CREATE INDEX rollout_members_device ON rollout_members (device_id);

  CREATE TABLE rollout_decisions (
    n bigserial PRIMARY KEY,
    rollout_id text COLLATE "C" NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    at bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    reason text NOT NULL,
    from_state text NOT NULL,
    to_state text NOT NULL,
    wave integer,
    detail jsonb NOT NULL
  );
  CREATE INDEX rollout_decisions_rollout ON rollout_decisions (rollout_id, n);

  CREATE TABLE telemetry_buckets (
    key text COLLATE "C" PRIMARY KEY,
    bundle_id text,
    host text NOT NULL,
    port integer NOT NULL,
    updated_at bigint NOT NULL,
    bucket jsonb NOT NULL
  );

  CREATE TABLE counters (
    name text COLLATE "C" PRIMARY KEY,
    value double precision NOT NULL
  );

  CREATE TABLE items (
    collection text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value jsonb NOT NULL,
    PRIMARY KEY (collection, key)
  );

  -- Adds two reason tallies, dropping a reason whose count reaches 0 (as the engine does).
  CREATE FUNCTION pw_tally_add(a jsonb, b jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, s), '{}'::jsonb) FROM (
      SELECT k, sum(v) AS s FROM (
        SELECT key AS k, value::numeric AS v FROM jsonb_each_text(a)
        UNION ALL SELECT key, value::numeric FROM jsonb_each_text(b)
      ) x GROUP BY k HAVING sum(v) <> 0
    ) y
  $$;
  `,
  // 2: the health-check statuses of rollout members (docs/architecture.md §9)
  `
  ALTER TABLE rollout_waves
    ADD COLUMN verifying integer NOT NULL DEFAULT 0,
    ADD COLUMN verified integer NOT NULL DEFAULT 0,
    ADD COLUMN unverified integer NOT NULL DEFAULT 0,
    ADD COLUMN reverted integer NOT NULL DEFAULT 0;
  `,
  // 3: the broker each device was provisioned onto (docs/architecture.md §8); null for devices
  // provisioned before, on the embedded broker or the first of several
  `
  ALTER TABLE devices ADD COLUMN broker text;
  `,
  // 4: gateway replicas (docs/architecture.md §8): device messages a follower committed for the
  // leader's engine, operator actions forwarded to the leader, the replicas that ever ran (whose
  // broker sessions a new leader drains), and console sessions shared by every replica
  `
  CREATE TABLE replica_inbox (
    seq bigserial PRIMARY KEY,
    device text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    payload bytea NOT NULL,
    replica text COLLATE "C" NOT NULL,
    at bigint NOT NULL
  );

  CREATE TABLE replica_actions (
    id bigserial PRIMARY KEY,
    replica text COLLATE "C" NOT NULL,
    method text NOT NULL,
    args jsonb NOT NULL,
    created_at bigint NOT NULL,
    done_at bigint,
    result jsonb,
    error jsonb
  );
  CREATE INDEX replica_actions_open ON replica_actions (id) WHERE done_at IS NULL;

  CREATE TABLE replicas (
    id text COLLATE "C" PRIMARY KEY,
    started_at bigint NOT NULL
  );

  CREATE TABLE console_sessions (
    id text COLLATE "C" PRIMARY KEY,
    value jsonb NOT NULL,
    expires_at bigint NOT NULL
  );
  `,
  // 5: the leadership epoch of gateway replicas (docs/architecture.md §8): one row, raised by each
  // replica that takes the lead, and read FOR SHARE by every batch a leader commits, so a replica
  // that lost the lead can land nothing after its successor took over
  `
  CREATE TABLE replica_leader (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint NOT NULL,
    holder text COLLATE "C" NOT NULL,
    since bigint NOT NULL
  );
  `,
  // 6: the ids of the rollouts' live event streams (docs/architecture.md §10), one sequence for
  // every replica, so that no two give the same id (gateway/http/pg-event-ids.ts)
  `
  CREATE SEQUENCE rollout_event_ids;
  `,
  // 7: when the leader took a forwarded operator action (docs/architecture.md §8): a follower
  // withdraws only an action no leader has taken, so its caller is never told to try again about
  // one that is being performed
  `
  ALTER TABLE replica_actions ADD COLUMN taken_at bigint;
  `,
  // 8: ack ingest writes less (docs/storage.md). Room is left in the pages of the rows an ack
  // updates, so the update stays on its page (a HOT update: no new index entries, and a WAL record
  // of only what changed). History and telemetry entries are keyed by (device, k), numbered from
  // the device's highest k, so an append no longer updates the device's row a second time (the
  // counters go) nor takes a foreign key's lock on it per entry: the store locks the row once per
  // transaction and deletes a device's entries with it (postgres.ts, #append). Schema 7 numbered a
  // device's entries from its counter under its row's lock, so (device, k) is unique already; an
  // entry sharing its number with a later one would stop the migration, and is dropped first. The
  // index of devices by bundle goes: an ack that moves a device onto a rollout's bundle changed an
  // indexed column, which made every such update a new row version with an entry in each index;
  // its one reader (the devices of a compacted rollout, docs/storage.md) asks within a group, which
  // the group index serves.
  `
  DROP INDEX devices_bundle;
  ALTER TABLE devices SET (fillfactor = 50);
  ALTER TABLE rollout_members SET (fillfactor = 50);
  ALTER TABLE device_history DROP CONSTRAINT device_history_device_id_fkey;
  DELETE FROM device_history a USING device_history b WHERE a.device_id = b.device_id AND a.k = b.k AND a.n < b.n;
  ALTER TABLE device_history DROP COLUMN n;
  ALTER TABLE device_history ADD PRIMARY KEY (device_id, k);
  DROP INDEX device_history_device;
  ALTER TABLE device_telemetry DROP CONSTRAINT device_telemetry_device_id_fkey;
  DELETE FROM device_telemetry a USING device_telemetry b WHERE a.device_id = b.device_id AND a.k = b.k AND a.n < b.n;
  ALTER TABLE device_telemetry DROP COLUMN n;
  ALTER TABLE device_telemetry ADD PRIMARY KEY (device_id, k);
  DROP INDEX device_telemetry_device;
  ALTER TABLE devices DROP COLUMN history_count, DROP COLUMN telemetry_count;
  `,
  // 9: what a compacted rollout keeps of its members beyond their counts (docs/storage.md, bounded
  // growth): each wave's failing members that had not verified, which under requireVerified are not
  // acked (docs/architecture.md §9). 0 while the rollout keeps its members (they are counted from
  // those), and for a rollout compacted before: its members are gone, the count with them.
  `
  ALTER TABLE rollout_waves ADD COLUMN failing_unverified integer NOT NULL DEFAULT 0;
  `,
];
