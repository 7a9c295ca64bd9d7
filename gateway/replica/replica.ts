// One gateway replica among several on one broker and one PostgreSQL database
// (docs/architecture.md §8): which role it has now, and what each role does with what comes in.
//
// - Every replica takes its share of device messages from the broker's shared subscription. The
//   leader hands its share to the ingest path as a single gateway does; a follower commits each
//   message to the inbox (`inbox.ts`) and the broker is PUBACKed once that row is committed. The
//   leader drains the inbox when notified (`pinwave_inbox`), so a hold crossed by a follower's
//   message is decided within a commit and a notification of it.
// - Only the leader runs the engine: the timer's tick, deliveries, webhooks. It notifies
//   `pinwave_rollouts` (coalesced, at most every 100 ms) when it committed a rollout change; a
//   follower reads the rollouts again then, for its API.
// - Operator actions asked of a follower are forwarded to the leader (`actions.ts`).
// - Leadership (`election.ts`) is a session advisory lock. Taking it: the rollouts are read again
//   from the database (what the last leader committed), the inbox and the forwarded actions are
//   drained, and the broker sessions of replicas that are gone are drained (`sessions.ts`).
//   Losing it (its connection dropped): engine work stops at once.
//
//   const replica = await Replica.start({ url, id: 'pinwave@gw-1', brokers, hooks, log, now });   // its own lock
//   transport.onMessage = (id, kind, payload) => replica.message(id, kind, payload);
//   await replica.elect();   // once the broker link is up
import pg from 'pg';
import type { ExternalTransportOptions } from '../broker/external-transport.ts';
import type { Logger } from '../logger.ts';
import type { DeviceMessageKind } from '../topics.ts';
import { ACTION_DONE_CHANNEL, ACTIONS_CHANNEL, Actions } from './actions.ts';
import { Election, replicaKey } from './election.ts';
import { INBOX_CHANNEL, Inbox } from './inbox.ts';
import { drainSession } from './sessions.ts';

export const ROLLOUTS_CHANNEL = 'pinwave_rollouts';

/** What the gateway does for each role change and each thing a replica is handed. */
export interface ReplicaHooks {
  /** This replica leads now: read the rollouts again from the database and start the engine's timer. */
  lead(): Promise<void>;
  /** Everything waiting was taken over: send each online device what it should hold (not awaited). */
  resume(): Promise<void>;
  /** This replica no longer leads: stop the engine's work now. */
  follow(reason: string): void;
  /** A device message, on the leader (the ingest path); resolves once committed. */
  handle(device: string, kind: DeviceMessageKind, payload: Buffer): Promise<void>;
  /** A forwarded operator action, on the leader. */
  perform(method: string, args: unknown[]): Promise<unknown>;
  /** A follower: the leader committed rollout changes. */
  changed(): void;
}

export interface ReplicaOptions {
  /** the store's `postgres://` URL */
  url: string;
  /** this replica's id: its broker client id */
  id: string;
  /** the brokers (one, or the fleet's shards), for draining the sessions of replicas that are gone on each */
  brokers: readonly ExternalTransportOptions[];
  hooks: ReplicaHooks;
  log: Logger;
  now: () => number;
  /** how often a follower asks for the leadership; default 1000 ms */
  retryMs?: number;
  /** how long a forwarded action waits for the leader; default 30000 ms */
  actionTimeoutMs?: number;
}

export class Replica {
  readonly #o: ReplicaOptions;
  readonly #pool: pg.Pool;
  readonly #inbox: Inbox;
  readonly #actions: Actions;
  #election!: Election;
  #notifyTimer: NodeJS.Timeout | null = null;
  #closed = false;
  #leading = false;
  /** set while a leadership is being taken (the lead hook reads what the last leader committed); resolves once it has */
  #taking: Promise<void> | null = null;
  /** leaderships taken by this process, and what it took over (metrics) */
  #terms = 0;
  readonly #counters = { inboxIn: 0, inboxHandled: 0, forwarded: 0, sessionsDrained: 0, drainedMessages: 0 };
  readonly #draining = new Set<string>();

  /** Takes this replica's own lock and registers it (again whenever it takes that lock again); it follows until elect(). */
  static async start(o: ReplicaOptions): Promise<Replica> {
    const r = new Replica(o);
    try {
      r.#election = await r.#open();
    } catch (err) {
      await r.close();
      throw err;
    }
    return r;
  }

  /** Tries for the leadership now (a leadership taken is taken over before this resolves), then every second. */
  elect(): Promise<void> {
    return this.#election.run();
  }

  #open(): Promise<Election> {
    const r = this;
    const o = this.#o;
    return Election.open({
      url: o.url,
      replicaId: o.id,
      channels: [INBOX_CHANNEL, ACTIONS_CHANNEL, ACTION_DONE_CHANNEL, ROLLOUTS_CHANNEL],
      retryMs: o.retryMs,
      log: o.log,
      onLead: (c) => r.#lead(c),
      onLose: (reason) => {
        r.#leading = false;
        r.#o.hooks.follow(reason);
      },
      onNotify: (channel, payload) => r.#notified(channel, payload),
      onLeaderTick: async (c) => {
        // What a failed handler or action left waits for no notification: a quiet fleet sends none.
        await r.#drainInbox();
        await r.#serveActions();
        await r.#drainGone(c);
      },
      // Registered whenever it holds its own lock: a lock connection that dropped let the leader
      // take this replica for gone and forget it, and one forgotten is never drained when it dies.
      onOwnLock: async (c) => {
        await c.query('INSERT INTO replicas (id, started_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at', [o.id, o.now()]);
      },
    });
  }

  /**
   * Registers the replica before its election starts (so a leader finds it), with its own
   * connection pool for the inbox and the forwarded actions.
   */
  private constructor(o: ReplicaOptions) {
    this.#o = o;
    this.#pool = new pg.Pool({ connectionString: o.url, max: 4, connectionTimeoutMillis: 10_000 });
    this.#pool.on('error', (err) => o.log.warn({ err: err.message }, 'replica: a database connection was lost; reconnecting on next use'));
    this.#inbox = new Inbox({ pool: this.#pool, replicaId: o.id, now: o.now });
    this.#actions = new Actions({ pool: this.#pool, replicaId: o.id, now: o.now, timeoutMs: o.actionTimeoutMs });
  }

  get id(): string {
    return this.#o.id;
  }

  get leading(): boolean {
    return !this.#closed && this.#leading;
  }

  /** Whether this replica leads and has taken over: the lead hook has read what the last leader committed. */
  get ready(): boolean {
    return this.leading && this.#taking === null;
  }

  /** Resolves once a leadership being taken has been (the lead hook done, or failed); at once when none is. */
  async taken(): Promise<void> {
    await this.#taking?.catch(() => undefined);
  }

  /** The leadership epoch while this replica leads, else null: what its commits are fenced by (election.ts). */
  get epoch(): number | null {
    return this.#election?.epoch ?? null;
  }

  /** Leaderships this process took. */
  get terms(): number {
    return this.#terms;
  }

  /** What this process committed for the leader, handled of followers' messages, forwarded, and drained of replicas that were gone. */
  counters(): { inboxIn: number; inboxHandled: number; forwarded: number; sessionsDrained: number; drainedMessages: number } {
    return { ...this.#counters };
  }

  /** A device message from this replica's share: handled here when leading, else committed for the leader. */
  message(device: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
    if (this.leading) return this.#o.hooks.handle(device, kind, payload);
    this.#counters.inboxIn++;
    return this.#inbox.put(device, kind, payload);
  }

  /** A follower's operator action, performed by the leader. */
  forward(method: string, args: unknown[]): Promise<unknown> {
    this.#counters.forwarded++;
    return this.#actions.forward(method, args);
  }

  /** Leader: a rollout change was committed; followers are told (coalesced). */
  changed(): void {
    if (!this.leading || this.#notifyTimer) return;
    this.#notifyTimer = setTimeout(() => {
      this.#notifyTimer = null;
      this.#pool.query(`SELECT pg_notify('${ROLLOUTS_CHANNEL}', $1)`, [this.#o.id]).catch((err: Error) => this.#o.log.warn({ err: err.message }, 'replica: notifying the followers failed'));
    }, 100);
    this.#notifyTimer.unref();
  }

  /** Device messages committed by followers and not yet handled (metrics, tests). */
  inboxWaiting(): Promise<number> {
    return this.#inbox.waiting();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#leading = false;
    if (this.#notifyTimer) clearTimeout(this.#notifyTimer);
    await this.#election?.close();
    await this.#pool.end().catch(() => undefined);
  }

  async #lead(c: pg.Client): Promise<void> {
    this.#leading = true;
    this.#terms++;
    const h = this.#o.hooks;
    // An action performed here before the hook has read the last leader's commits (a manifest push
    // writes the whole set) would drop what it did not read: actions wait for `taken()`.
    const taking = h.lead();
    this.#taking = taking;
    try {
      await taking;
    } finally {
      if (this.#taking === taking) this.#taking = null;
    }
    const taken = await this.#drainInbox();
    await this.#serveActions();
    await this.#drainGone(c);
    this.#o.log.info({ replica: this.#o.id, inbox: taken }, 'replica: took over the engine');
    // Not awaited: a large fleet's resend must not hold the election round (the dead-replica checks).
    h.resume().catch((err: Error) => this.#o.log.warn({ err: err.message }, 'replica: sending devices what they should hold failed'));
  }

  #notified(channel: string, payload: string): void {
    if (this.#closed) return;
    if (channel === ACTION_DONE_CHANNEL) return this.#actions.done(Number(payload));
    if (channel === ROLLOUTS_CHANNEL) {
      if (payload !== this.#o.id && !this.leading) this.#o.hooks.changed();
      return;
    }
    if (!this.leading) return;
    if (channel === INBOX_CHANNEL) void this.#drainInbox();
    else if (channel === ACTIONS_CHANNEL) void this.#serveActions();
  }

  #drainInbox(): Promise<number> {
    const handle = (d: string, k: DeviceMessageKind, p: Buffer) => (this.leading ? this.#o.hooks.handle(d, k, p).then(() => void this.#counters.inboxHandled++) : Promise.reject(new Error('no longer leading')));
    return this.#inbox.drain(handle).catch((err: Error) => {
      this.#o.log.warn({ err: err.message }, 'replica: reading the inbox failed; trying at the next notification');
      return 0;
    });
  }

  #serveActions(): Promise<void> {
    return this.#actions.serve((m, a) => (this.leading ? this.#o.hooks.perform(m, a) : Promise.reject(new Error('no longer leading')))).catch((err: Error) => {
      this.#o.log.warn({ err: err.message }, 'replica: performing forwarded actions failed; trying at the next notification');
    });
  }

  /**
   * Leader, every election round: a replica whose own lock can be taken is not running. Its broker
   * session is drained under its client id, then it is forgotten (it registers again if it comes
   * back). Holding its lock meanwhile keeps it from starting while its session is in use here.
   */
  async #drainGone(c: pg.Client): Promise<void> {
    const { rows } = await this.#pool.query<{ id: string }>('SELECT id FROM replicas WHERE id <> $1', [this.#o.id]);
    for (const { id } of rows) {
      if (this.#draining.has(id) || !this.leading) continue;
      const [k1, k2] = replicaKey(id);
      const { rows: got } = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [k1, k2]);
      if (!got[0].ok) continue;
      this.#draining.add(id);
      try {
        for (const b of this.#o.brokers) this.#counters.drainedMessages += await drainSession(b, id, (d, k, p) => this.message(d, k, p), this.#o.log);
        await this.#pool.query('DELETE FROM replicas WHERE id = $1', [id]);
        // counted once the replica is forgotten too: what the counter says is done is done
        this.#counters.sessionsDrained++;
      } catch (err) {
        this.#o.log.warn({ replica: id, err: (err as Error).message }, 'replica: draining the session of a replica that is gone failed; trying again');
      } finally {
        this.#draining.delete(id);
        await c.query('SELECT pg_advisory_unlock($1, $2)', [k1, k2]).catch(() => undefined);
      }
    }
  }
}
