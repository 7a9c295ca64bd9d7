// Operator actions on rollouts, forwarded from a follower replica to the leader through the
// database (docs/architecture.md §8). The leader's engine is the one writer of rollout records:
// an action asked of a follower is a row in `replica_actions` (and a notification on
// `pinwave_actions`); the leader performs the rows one at a time, in order, as if asked directly,
// and writes each outcome (the answer, or the coded error) back, notifying
// `pinwave_action_done`. Two operators on two replicas are thereby two calls on one leader, in
// the order the database took them: they cannot race. A row the leader took but did not finish
// before dying is performed by the next one (an action may then be performed twice; the engine
// refuses a repeat of a state change as it would refuse it from one operator twice).
//
//   const summary = await actions.forward('pauseRollout', [id, 'alice']);   // follower: waits for the leader
//   await actions.serve((method, args) => gateway.perform(method, args));    // leader
import type pg from 'pg';
import { ERROR_STATUS, GatewayError, type GatewayErrorCode } from '../errors.ts';

export const ACTIONS_CHANNEL = 'pinwave_actions';
export const ACTION_DONE_CHANNEL = 'pinwave_action_done';

interface Outcome {
  result?: unknown;
  error?: { code: string; message: string; details?: unknown; statusCode?: number };
}

export class Actions {
  readonly #pool: pg.Pool;
  readonly #replica: string;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  readonly #waiting = new Map<number, () => void>();
  #serving: Promise<void> | null = null;
  #again = false;

  constructor(o: { pool: pg.Pool; replicaId: string; now: () => number; timeoutMs?: number }) {
    this.#pool = o.pool;
    this.#replica = o.replicaId;
    this.#now = o.now;
    this.#timeoutMs = o.timeoutMs ?? 30_000;
  }

  /** The leader wrote action `id`'s outcome (the `pinwave_action_done` notification). */
  done(id: number): void {
    this.#waiting.get(id)?.();
  }

  /** Asks the leader to perform `method(...args)`; resolves with its answer or rejects with its error (PW_LEADER_UNAVAILABLE after the timeout). */
  async forward(method: string, args: unknown[]): Promise<unknown> {
    const { rows } = await this.#pool.query<{ id: string }>(
      `WITH a AS (INSERT INTO replica_actions (replica, method, args, created_at) VALUES ($1, $2, $3, $4) RETURNING id) SELECT id, pg_notify('${ACTIONS_CHANNEL}', id::text) FROM a`,
      [this.#replica, method, JSON.stringify(args), this.#now()],
    );
    const id = Number(rows[0].id);
    let deadline = Date.now() + this.#timeoutMs;
    let taken = false;
    try {
      for (;;) {
        // woken by the notification, or every 500 ms: a notification is lost with a lock connection that drops
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 500);
          this.#waiting.set(id, () => (clearTimeout(timer), resolve()));
        });
        const { rows: done } = await this.#pool.query<{ result: unknown; error: Outcome['error'] | null; done_at: string | null }>('SELECT result, error, done_at FROM replica_actions WHERE id = $1', [id]);
        if (done[0]?.done_at != null) {
          await this.#pool.query('DELETE FROM replica_actions WHERE id = $1', [id]);
          if (done[0].error) throw rebuilt(done[0].error);
          return done[0].result;
        }
        if (Date.now() > deadline) {
          if (!taken) {
            // Withdrawn only while no leader has taken it: a leader that took it performs it (or
            // its successor does), so telling the caller to try again would have it done twice.
            const withdrawn = await this.#pool.query('DELETE FROM replica_actions WHERE id = $1 AND taken_at IS NULL AND done_at IS NULL', [id]);
            if (withdrawn.rowCount === 1) throw new GatewayError('PW_LEADER_UNAVAILABLE', `no leading replica performed ${method} within ${this.#timeoutMs} ms; try again`);
            // taken (or just done): wait for its outcome as long again
            taken = true;
            deadline = Date.now() + this.#timeoutMs;
            continue;
          }
          // the row stays: the leader still writes its outcome, and the caller must look before repeating
          throw new GatewayError('PW_LEADER_UNAVAILABLE', `the leading replica took ${method} but gave no answer within ${2 * this.#timeoutMs} ms: it may have been performed; look before repeating it`);
        }
      }
    } finally {
      this.#waiting.delete(id);
    }
  }

  /** Leader: performs every waiting action in order, one at a time, writing each outcome. One pass at a time; a call during one makes it go round again. */
  serve(perform: (method: string, args: unknown[]) => Promise<unknown>): Promise<void> {
    if (this.#serving) {
      this.#again = true;
      return this.#serving;
    }
    this.#serving = (async () => {
      try {
        do {
          this.#again = false;
          const { rows } = await this.#pool.query<{ id: string; method: string; args: unknown[] }>('SELECT id, method, args FROM replica_actions WHERE done_at IS NULL ORDER BY id');
          for (const row of rows) {
            // Taken before it is performed: a row its follower withdrew meanwhile (its caller was
            // told to try again) is never performed, and one taken is no longer withdrawn.
            const take = await this.#pool.query('UPDATE replica_actions SET taken_at = $2 WHERE id = $1 AND done_at IS NULL', [row.id, this.#now()]);
            if (take.rowCount !== 1) continue;
            let outcome: Outcome;
            try {
              outcome = { result: (await perform(row.method, row.args)) ?? null };
            } catch (err) {
              const e = err as Error & { code?: string; details?: unknown; statusCode?: number };
              outcome = { error: { code: e.code ?? 'PW_INTERNAL', message: e.message, ...(e.details !== undefined && { details: e.details }), ...(e.statusCode !== undefined && { statusCode: e.statusCode }) } };
            }
            await this.#pool.query(`UPDATE replica_actions SET done_at = $2, result = $3, error = $4 WHERE id = $1; `, [row.id, this.#now(), outcome.error ? null : JSON.stringify(outcome.result), outcome.error ? JSON.stringify(outcome.error) : null]);
            await this.#pool.query(`SELECT pg_notify('${ACTION_DONE_CHANNEL}', $1)`, [row.id]);
          }
        } while (this.#again);
      } finally {
        this.#serving = null;
      }
    })();
    return this.#serving;
  }
}

/** The leader's error as the follower's caller gets it: a GatewayError for a PW_ code of the gateway's, else an error with its status. */
function rebuilt(e: NonNullable<Outcome['error']>): Error {
  if (e.code in ERROR_STATUS) return new GatewayError(e.code as GatewayErrorCode, e.message, e.details);
  return Object.assign(new Error(e.message), { code: e.code, statusCode: e.statusCode ?? 500, details: e.details });
}
