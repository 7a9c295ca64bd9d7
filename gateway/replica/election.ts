// Leader election among gateway replicas (docs/architecture.md §8): one PostgreSQL session advisory
// lock, held on a connection of its own. The replica holding it leads (runs the rollout engine);
// the others try again every `retryMs`. The lock lives and dies with that connection: when it is
// lost (the server restarted, the network broke, the process was killed) the leadership is lost at
// once, and the database gives the lock to the next replica that asks. The same connection
// LISTENs for the replicas' notifications, so a notification can never outlive the leadership it
// was meant for.
//
// Each replica also holds a lock of its own (`replicaKey(id)`) for as long as it runs: a leader that
// takes another replica's lock knows that replica is gone, and may drain its broker session
// (`sessions.ts`) without kicking a live one.
//
//   const e = await Election.open({ url, replicaId: 'pinwave@gw-1', channels: ['pinwave_inbox'],
//     onLead: () => …, onLose: () => …, onNotify: (channel, payload) => … });   // this replica's own lock
//   await e.run();   // tries for the leadership now, then every retryMs
//   e.leading;       // true while this replica holds the lock
//   e.epoch;         // the leadership epoch it took (replica_leader), which fences its commits
import pg from 'pg';
import type { Logger } from '../logger.ts';

/** pg_advisory_lock's two-key form: (class, object). The class names pinwave's locks. */
const LOCK_CLASS = 0x70770; // "pw", then the kind
export const LEADER_KEY: readonly [number, number] = [LOCK_CLASS + 1, 0];

export interface ElectionOptions {
  /** `postgres://…`, the store's database */
  url: string;
  /** this replica's id (its broker client id) */
  replicaId: string;
  /** LISTEN channels; their notifications reach `onNotify` on every replica */
  channels: readonly string[];
  /** how often a follower asks for the lock, and a lost connection is opened again, ms; default 1000 */
  retryMs?: number;
  /** how long start() waits for this replica's own lock (a leader may be draining its session), ms; default 30000 */
  ownLockTimeoutMs?: number;
  /** this replica took the lock; may be async: the next try waits for it */
  onLead: (c: pg.Client) => void | Promise<void>;
  /** this replica lost the lock (its connection is gone): stop engine work now */
  onLose: (reason: string) => void;
  onNotify: (channel: string, payload: string) => void;
  /**
   * called on the lock's connection each time this replica holds its own lock, at open and again
   * after a lost connection: a leader that took the lock meanwhile took this replica for gone and
   * forgot it (replica.ts registers it here again)
   */
  onOwnLock?: (c: pg.Client) => Promise<void>;
  /** called every `retryMs` while leading, on the lock's connection (dead-replica checks) */
  onLeaderTick?: (c: pg.Client) => Promise<void>;
  log: Logger;
}

export class Election {
  readonly #o: ElectionOptions & { retryMs: number };
  #client: pg.Client | null = null;
  #leading = false;
  #epoch = 0;
  #closed = false;
  #timer: NodeJS.Timeout | null = null;
  #busy: Promise<void> = Promise.resolve();

  /**
   * Connects and takes this replica's own lock, waiting while a leader drains its session; rejects
   * when another process holds it past `ownLockTimeoutMs`. Before this replica opens its broker
   * link: two processes under one client id would kick each other off the broker.
   */
  static async open(o: ElectionOptions): Promise<Election> {
    const e = new Election(o);
    await e.#connect(o.ownLockTimeoutMs ?? 30_000);
    return e;
  }

  /** Tries for the leadership now (resolving once a leadership taken is taken over, or that failed: logged), then every `retryMs`. */
  async run(): Promise<void> {
    try {
      await this.#try();
    } catch (err) {
      this.#o.log.warn({ replica: this.#o.replicaId, err: (err as Error).message }, 'replica: election round failed; trying again');
    }
    this.#schedule();
  }

  private constructor(o: ElectionOptions) {
    this.#o = { ...o, retryMs: o.retryMs ?? 1000 };
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** The leadership epoch while this replica leads (raised by each takeover), else null. */
  get epoch(): number | null {
    return this.#leading ? this.#epoch : null;
  }

  /** The lock's connection (for a leader's queries that must hold while it leads), or null while it is down. */
  get client(): pg.Client | null {
    return this.#client;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#busy.catch(() => undefined);
    const c = this.#client;
    this.#client = null;
    this.#leading = false;
    // Ending the session releases both locks: a follower takes the leadership at its next try.
    await c?.end().catch(() => undefined);
  }

  async #connect(ownLockTimeoutMs: number): Promise<void> {
    const c = new pg.Client({ connectionString: this.#o.url, connectionTimeoutMillis: 10_000, keepAlive: true });
    c.on('error', (err) => this.#lost(c, err.message));
    c.on('end', () => this.#lost(c, 'the connection ended'));
    c.on('notification', (n) => this.#o.onNotify(n.channel, n.payload ?? ''));
    await c.connect();
    const [k1, k2] = replicaKey(this.#o.replicaId);
    const deadline = Date.now() + ownLockTimeoutMs;
    for (;;) {
      const { rows } = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [k1, k2]);
      if (rows[0].ok) break;
      if (Date.now() > deadline) {
        await c.end().catch(() => undefined);
        throw new Error(`replica ${this.#o.replicaId}: another process holds this replica id (or a leader is still draining its broker session); give each replica its own --broker-client-id`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    try {
      await this.#o.onOwnLock?.(c);
      for (const ch of this.#o.channels) await c.query(`LISTEN ${ch}`);
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    this.#client = c;
  }

  #lost(c: pg.Client, reason: string): void {
    if (this.#client !== c) return;
    this.#client = null;
    c.end().catch(() => undefined);
    if (this.#closed) return;
    this.#o.log.warn({ replica: this.#o.replicaId, reason }, 'replica: the lock connection was lost');
    if (this.#leading) {
      this.#leading = false;
      this.#o.onLose(reason);
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#busy = this.#round().finally(() => this.#schedule());
    }, this.#o.retryMs);
    this.#timer.unref();
  }

  async #round(): Promise<void> {
    try {
      if (this.#client === null) await this.#connect(this.#o.retryMs * 5);
      if (!this.#leading) await this.#try();
      else if (this.#o.onLeaderTick && this.#client) await this.#o.onLeaderTick(this.#client);
    } catch (err) {
      this.#o.log.warn({ replica: this.#o.replicaId, err: (err as Error).message }, 'replica: election round failed; trying again');
    }
  }

  async #try(): Promise<void> {
    const c = this.#client;
    if (c === null || this.#closed) return;
    const { rows } = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [...LEADER_KEY]);
    if (!rows[0].ok || this.#client !== c) return;
    // A new epoch: what the last leader's batches were fenced by no longer commits. The UPDATE
    // waits for any of its transactions in flight (they hold the row FOR SHARE), so whatever it
    // landed is in the database before onLead reads it.
    let led: Array<{ epoch: string }>;
    try {
      ({ rows: led } = await c.query<{ epoch: string }>(
        `INSERT INTO replica_leader (one, epoch, holder, since) VALUES (true, 1, $1, $2)
         ON CONFLICT (one) DO UPDATE SET epoch = replica_leader.epoch + 1, holder = EXCLUDED.holder, since = EXCLUDED.since RETURNING epoch`,
        [this.#o.replicaId, Date.now()],
      ));
    } catch (err) {
      // Session advisory locks stack: one kept here would outlive the next round's unlock.
      await c.query('SELECT pg_advisory_unlock($1, $2)', [...LEADER_KEY]).catch(() => undefined);
      throw err;
    }
    if (this.#client !== c) return;
    this.#epoch = Number(led[0].epoch);
    this.#leading = true;
    this.#o.log.info({ replica: this.#o.replicaId }, 'replica: leading');
    try {
      await this.#o.onLead(c);
    } catch (err) {
      // A leader that could not take over (the rollouts could not be read) gives the lock back.
      this.#leading = false;
      this.#o.onLose(`taking over failed: ${(err as Error).message}`);
      await c.query('SELECT pg_advisory_unlock($1, $2)', [...LEADER_KEY]).catch(() => undefined);
      throw err;
    }
  }
}

/** A replica's own lock: the class, and a 32-bit hash of its id (hashtext would need a round trip). */
export function replicaKey(id: string): [number, number] {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return [LOCK_CLASS + 2, h | 0];
}
