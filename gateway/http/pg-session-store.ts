// Console sessions in PostgreSQL (docs/architecture.md §8, §10): with the PostgreSQL store every
// gateway replica reads and writes the same sessions, so a load balancer may send a browser to any
// of them, and a sign-out or a revoked token ends the session everywhere. The records are the
// memory store's (session-store.ts: the SHA-256 of the session id, never the id), one row each in
// `console_sessions` (postgres-schema.ts).
//
//   const sessions = PgSessionStore.open('postgres://…');   // the gateway's database; close() at the end
import pg from 'pg';
import type { SessionRecord, SessionStore } from './session-store.ts';

export class PgSessionStore implements SessionStore {
  constructor(readonly pool: pg.Pool) {}

  /** A store on a pool of its own (two connections) to the database at `url`. */
  static open(url: string): PgSessionStore {
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000 });
    // an idle connection the server dropped is replaced on next use
    pool.on('error', () => undefined);
    return new PgSessionStore(pool);
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  async put(s: SessionRecord): Promise<void> {
    await this.pool.query('INSERT INTO console_sessions (id, value, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at', [s.idHash, JSON.stringify(s), s.expiresAt]);
  }

  async get(idHash: string): Promise<SessionRecord | null> {
    const { rows } = await this.pool.query<{ value: SessionRecord }>('SELECT value FROM console_sessions WHERE id = $1', [idHash]);
    return rows[0]?.value ?? null;
  }

  async touch(idHash: string, at: number): Promise<void> {
    await this.pool.query("UPDATE console_sessions SET value = jsonb_set(value, '{lastSeenAt}', to_jsonb($2::bigint)) WHERE id = $1 AND (value->>'lastSeenAt')::bigint < $2", [idHash, at]);
  }

  async delete(idHash: string): Promise<SessionRecord | null> {
    const { rows } = await this.pool.query<{ value: SessionRecord }>('DELETE FROM console_sessions WHERE id = $1 RETURNING value', [idHash]);
    return rows[0]?.value ?? null;
  }

  async listByToken(tokenHash: string): Promise<SessionRecord[]> {
    const { rows } = await this.pool.query<{ value: SessionRecord }>("SELECT value FROM console_sessions WHERE value->>'tokenHash' = $1 ORDER BY (value->>'createdAt')::bigint, id", [tokenHash]);
    return rows.map((r) => r.value);
  }

  async deleteByTokens(tokenHashes: readonly string[]): Promise<SessionRecord[]> {
    if (tokenHashes.length === 0) return [];
    const { rows } = await this.pool.query<{ value: SessionRecord }>("DELETE FROM console_sessions WHERE value->>'tokenHash' = ANY($1::text[]) RETURNING value", [tokenHashes]);
    return rows.map((r) => r.value);
  }

  async deleteExpired(now: number, idleMs: number): Promise<SessionRecord[]> {
    const { rows } = await this.pool.query<{ value: SessionRecord }>("DELETE FROM console_sessions WHERE expires_at <= $1 OR $1 - (value->>'lastSeenAt')::bigint >= $2 RETURNING value", [now, idleMs]);
    return rows.map((r) => r.value);
  }
}
