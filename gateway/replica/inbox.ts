// Device messages a follower replica took from the broker, committed for the leader
// (docs/architecture.md §8). A follower's share of the shared subscription is written here, one
// row a message, and PUBACKed to the broker once the row is committed: from then the database
// holds it. The insert notifies `pinwave_inbox`; the leader reads the rows in order, hands each to
// the same ingest path its own share takes, and deletes those handled. A leader that dies between
// handling a row and deleting it leaves the row for the next one: a message may be handled twice,
// as MQTT's QoS 1 may deliver it twice, and the ingest path takes a repeat as the same fact.
//
//   await inbox.put('th-1', 'ack', payload);           // follower: committed, then PUBACK
//   await inbox.drain((id, kind, payload) => ingest.onMessage(id, kind, payload));   // leader
import type pg from 'pg';
import type { DeviceMessageKind } from '../topics.ts';

export const INBOX_CHANNEL = 'pinwave_inbox';

export interface InboxRow {
  seq: number;
  device: string;
  kind: DeviceMessageKind;
  payload: Buffer;
}

export class Inbox {
  readonly #pool: pg.Pool;
  readonly #replica: string;
  readonly #now: () => number;
  readonly #batch: number;
  #draining: Promise<number> | null = null;
  #again = false;

  constructor(o: { pool: pg.Pool; replicaId: string; now: () => number; batch?: number }) {
    this.#pool = o.pool;
    this.#replica = o.replicaId;
    this.#now = o.now;
    this.#batch = o.batch ?? 500;
  }

  /** Commits one device message for the leader and notifies it; resolves once committed. */
  async put(device: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
    // One statement: the row and its notification commit together (NOTIFY is sent at commit).
    await this.#pool.query(`WITH i AS (INSERT INTO replica_inbox (device, kind, payload, replica, at) VALUES ($1, $2, $3, $4, $5) RETURNING seq) SELECT pg_notify('${INBOX_CHANNEL}', '') FROM i`, [device, kind, payload, this.#replica, this.#now()]);
  }

  /** Rows waiting (metrics, tests). */
  async waiting(): Promise<number> {
    const { rows } = await this.#pool.query<{ n: string }>('SELECT count(*) AS n FROM replica_inbox');
    return Number(rows[0].n);
  }

  /**
   * Hands every waiting row to `handle`, oldest first, one device's rows in order and devices side
   * by side, and deletes the rows handled; resolves with how many. One drain at a time: a call
   * while one runs makes it go round once more (a row committed late, behind a lower seq, is read
   * then). A row whose handler rejects stays for the next drain.
   */
  drain(handle: (device: string, kind: DeviceMessageKind, payload: Buffer) => Promise<void>): Promise<number> {
    if (this.#draining) {
      this.#again = true;
      return this.#draining;
    }
    this.#draining = (async () => {
      let total = 0;
      try {
        do {
          this.#again = false;
          for (;;) {
            const { rows } = await this.#pool.query<InboxRow>('SELECT seq, device, kind, payload FROM replica_inbox ORDER BY seq LIMIT $1', [this.#batch]);
            if (rows.length === 0) break;
            const done: number[] = [];
            await Promise.all(rows.map((r) => handle(r.device, r.kind, r.payload).then(() => void done.push(Number(r.seq)), () => undefined)));
            if (done.length > 0) await this.#pool.query('DELETE FROM replica_inbox WHERE seq = ANY($1::bigint[])', [done]);
            total += done.length;
            // a handler that failed: its row waits for the next drain, not this loop
            if (done.length < rows.length) return total;
          }
        } while (this.#again);
        return total;
      } finally {
        this.#draining = null;
      }
    })();
    return this.#draining;
  }
}
