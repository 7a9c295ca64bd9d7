// Alert delivery over HTTP (docs/operations.md, alerts): each rollout event the gateway raises
// (gateway/alerts.ts) is POSTed as JSON to every configured webhook that wants it, signed with the
// webhook's secret, and retried with exponential backoff while the receiver is down.
//
//   const hooks = new Webhooks([{ url, events: ['rollout.held'], secret }], { gateway: { name, version }, logger });
//   hooks.emit(alert);        // returns at once: queued, delivered off the engine's path
//   hooks.counters();         // for /metrics
//   await hooks.close();      // at stop: in-flight attempts aborted, what is queued counted as dropped
//
// What a receiver gets: `Content-Type: application/json`, `X-Pinwave-Event: rollout.held`,
// `X-Pinwave-Delivery: <event id>` (the same on every retry and for every webhook: drop duplicates
// by it), `X-Pinwave-Attempt: <n>`, and `X-Pinwave-Signature: sha256=<hex>`, the HMAC-SHA256 of the
// exact body bytes under the webhook's secret (as GitHub's X-Hub-Signature-256). Check it in
// constant time before trusting the body.
//
// Never blocking the engine: emit() signs and queues and returns; each webhook has one delivery
// loop of its own, so a dead or slow receiver delays only its own later alerts (in order), never a
// hold, an ack, or another webhook. Queues are bounded (queueLimit per webhook, the oldest dropped
// and counted when full) and live in memory: alerts still queued when the gateway stops are lost,
// counted and logged. Secrets and URL paths (which often carry a token of their own) are never
// logged: a webhook is named by its index and its URL's origin.
import { createHmac, randomUUID } from 'node:crypto';
import { alertBody, type AlertEventName, type RolloutAlert } from './alerts.ts';

/** One webhook as configured (config `webhooks`). */
export interface WebhookTarget {
  url: string;
  /** the events it is sent; all of ALERT_EVENTS when the config leaves `events` out */
  events: readonly AlertEventName[];
  secret: string;
}

export interface WebhookOptions {
  /** who sends: in every body */
  gateway: { name: string; version: string };
  logger?: { warn(obj: object, msg?: string): void; info(obj: object, msg?: string): void; debug(obj: object, msg?: string): void };
  /** epoch ms; default Date.now */
  now?: () => number;
  /** one attempt's limit, ms; default 5000 */
  timeoutMs?: number;
  /** attempts per delivery, the first included; default 8 */
  attempts?: number;
  /** the wait before the second attempt, ms, doubled for each one after; default 1000 */
  backoffMs?: number;
  /** the longest wait between attempts, ms; default 300000 (5 min) */
  maxBackoffMs?: number;
  /** deliveries queued per webhook; default 1000 */
  queueLimit?: number;
  /** in [0, 1): spreads retries (a wait is between half and all of its backoff); default Math.random */
  random?: () => number;
}

export type AttemptResult = 'ok' | 'http_error' | 'network_error' | 'timeout';

export interface WebhookCounters {
  /** deliveries by how they ended: delivered (2xx), failed (attempts spent, or refused with a 4xx), dropped (queue full, or the gateway stopped) */
  deliveries: { delivered: number; failed: number; dropped: number };
  /** attempts by result */
  attempts: Record<AttemptResult, number>;
  /** per webhook, by index: deliveries waiting now (the one in progress included) */
  queued: number[];
}

interface Delivery {
  event: AlertEventName;
  id: string;
  body: string;
  signature: string;
  attempt: number;
}

interface Hook {
  index: number;
  target: WebhookTarget;
  origin: string;
  queue: Delivery[];
  running: boolean;
}

/** `sha256=<hex>` of HMAC-SHA256(secret, body): what X-Pinwave-Signature carries. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * A Retry-After header as ms from `now` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date; a date
 * past is 0); undefined when absent or neither.
 */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(header)) return Number(header) * 1000;
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** A redirect's Location for the log: origin and path, its query left out (it may carry a token, as a webhook URL's may). */
function shownLocation(location: string | null, base: string): string {
  if (location === null) return 'none given';
  try {
    const u = new URL(location, base);
    return `${u.origin}${u.pathname}${u.search === '' ? '' : '?…'}`;
  } catch {
    return 'not a URL';
  }
}

export class Webhooks {
  readonly #hooks: Hook[];
  readonly #o: Required<Omit<WebhookOptions, 'logger'>> & Pick<WebhookOptions, 'logger'>;
  readonly #counters: Omit<WebhookCounters, 'queued'> = {
    deliveries: { delivered: 0, failed: 0, dropped: 0 },
    attempts: { ok: 0, http_error: 0, network_error: 0, timeout: 0 },
  };
  readonly #closing = new AbortController();
  readonly #timers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  readonly #idle = new Set<() => void>();

  constructor(targets: readonly WebhookTarget[], o: WebhookOptions) {
    this.#o = {
      gateway: o.gateway,
      logger: o.logger,
      now: o.now ?? Date.now,
      timeoutMs: o.timeoutMs ?? 5000,
      attempts: o.attempts ?? 8,
      backoffMs: o.backoffMs ?? 1000,
      maxBackoffMs: o.maxBackoffMs ?? 300_000,
      queueLimit: o.queueLimit ?? 1000,
      random: o.random ?? Math.random,
    };
    this.#hooks = targets.map((target, index) => ({ index, target, origin: new URL(target.url).origin, queue: [], running: false }));
  }

  get size(): number {
    return this.#hooks.length;
  }

  /** Queues the alert for every webhook that wants it and returns: no I/O happens here. */
  emit(alert: RolloutAlert): void {
    if (this.#closing.signal.aborted) return;
    const hooks = this.#hooks.filter((h) => h.target.events.includes(alert.event));
    if (hooks.length === 0) return;
    const id = randomUUID();
    const body = JSON.stringify(alertBody(alert, { id, at: this.#o.now(), gateway: this.#o.gateway }));
    for (const h of hooks) {
      if (h.queue.length >= this.#o.queueLimit) {
        // The oldest waiting one goes (never the one in progress): the newest says most about now.
        const dropped = h.queue.splice(h.running ? 1 : 0, 1)[0];
        this.#counters.deliveries.dropped++;
        this.#o.logger?.warn({ webhook: h.index, origin: h.origin, event: dropped?.event, queueLimit: this.#o.queueLimit }, 'webhook queue full: oldest alert dropped');
      }
      h.queue.push({ event: alert.event, id, body, signature: webhookSignature(h.target.secret, body), attempt: 0 });
      if (!h.running) {
        h.running = true;
        // Off this call stack: the caller (the engine's effect) goes on at once.
        setImmediate(() => void this.#pump(h));
      }
    }
  }

  counters(): WebhookCounters {
    const c = this.#counters;
    return { deliveries: { ...c.deliveries }, attempts: { ...c.attempts }, queued: this.#hooks.map((h) => h.queue.length) };
  }

  /** Resolves once every queue is empty (tests; a stop does not wait for it). */
  idle(): Promise<void> {
    if (this.#hooks.every((h) => !h.running)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  /** Stops delivering: in-flight attempts are aborted, waits cut short, and what was still queued is counted dropped and logged. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    for (const t of this.#timers) {
      clearTimeout(t.timer);
      t.wake();
    }
    await this.idle();
  }

  async #pump(h: Hook): Promise<void> {
    while (h.queue.length > 0 && !this.#closing.signal.aborted) {
      const d = h.queue[0];
      d.attempt++;
      const result = await this.#attempt(h, d);
      if (this.#closing.signal.aborted) break;
      if (result.ok) {
        h.queue.shift();
        this.#counters.deliveries.delivered++;
        this.#o.logger?.debug({ webhook: h.index, origin: h.origin, event: d.event, delivery: d.id, attempt: d.attempt }, 'webhook delivered');
        continue;
      }
      const last = !result.retry || d.attempt >= this.#o.attempts;
      const wait = last ? 0 : this.#backoff(d.attempt, result.retryAfterMs);
      this.#o.logger?.warn(
        { webhook: h.index, origin: h.origin, event: d.event, delivery: d.id, attempt: d.attempt, ...(result.status !== undefined && { status: result.status }), error: result.error, ...(last ? { gaveUp: true } : { retryInMs: wait }) },
        last ? 'webhook delivery failed' : 'webhook delivery failed: will retry',
      );
      if (last) {
        h.queue.shift();
        this.#counters.deliveries.failed++;
        continue;
      }
      await this.#wait(wait);
    }
    if (this.#closing.signal.aborted && h.queue.length > 0) {
      this.#counters.deliveries.dropped += h.queue.length;
      this.#o.logger?.warn({ webhook: h.index, origin: h.origin, undelivered: h.queue.length }, 'webhook alerts left undelivered at stop');
      h.queue.length = 0;
    }
    h.running = false;
    if (this.#hooks.every((x) => !x.running)) {
      for (const resolve of this.#idle) resolve();
      this.#idle.clear();
    }
  }

  /** Waits before attempt n + 1: backoff · 2^(n−1), at most maxBackoff (or the receiver's Retry-After within it), between half and all of it. */
  #backoff(attempt: number, retryAfterMs?: number): number {
    const full = Math.min(this.#o.maxBackoffMs, this.#o.backoffMs * 2 ** (attempt - 1));
    if (retryAfterMs !== undefined) return Math.min(this.#o.maxBackoffMs, Math.max(retryAfterMs, full / 2));
    return Math.round(full / 2 + (this.#o.random() * full) / 2);
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => (this.#timers.delete(entry), resolve()), ms), wake: resolve };
      entry.timer.unref();
      this.#timers.add(entry);
    });
  }

  async #attempt(h: Hook, d: Delivery): Promise<{ ok: true } | { ok: false; retry: boolean; status?: number; error: string; retryAfterMs?: number }> {
    const timeout = AbortSignal.timeout(this.#o.timeoutMs);
    try {
      const res = await fetch(h.target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': `pinwave/${this.#o.gateway.version}`,
          'x-pinwave-event': d.event,
          'x-pinwave-delivery': d.id,
          'x-pinwave-attempt': String(d.attempt),
          'x-pinwave-signature': d.signature,
        },
        body: d.body,
        redirect: 'manual',
        signal: AbortSignal.any([timeout, this.#closing.signal]),
      });
      // The answer's body is of no use, and a receiver may send one without end: it is dropped
      // unread, so no answer can fill the gateway's memory or keep its webhook's queue waiting.
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) {
        this.#counters.attempts.ok++;
        return { ok: true };
      }
      this.#counters.attempts.http_error++;
      // Worth trying again: the receiver's own trouble (5xx), being slowed down (429), a timeout (408).
      const retry = res.status >= 500 || res.status === 429 || res.status === 408;
      const after = retryAfterMs(res.headers.get('retry-after'), this.#o.now());
      // Never followed (`redirect: 'manual'`): a receiver that moved is named so the config can follow it.
      const error = res.status >= 300 && res.status < 400 ? `HTTP ${res.status}: a redirect, which is not followed (Location: ${shownLocation(res.headers.get('location'), h.target.url)}): give the webhook's url the receiver's new address` : `HTTP ${res.status}`;
      return { ok: false, retry, status: res.status, error, ...(after !== undefined && { retryAfterMs: after }) };
    } catch (err) {
      const timedOut = timeout.aborted && !this.#closing.signal.aborted;
      this.#counters.attempts[timedOut ? 'timeout' : 'network_error']++;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      // Fetch (WHATWG fetch §2.9 "bad port") never connects to some ports, 6000 among them: no retry can help.
      if (cause?.message === 'bad port') return { ok: false, retry: false, error: `port ${new URL(h.target.url).port} is one fetch never connects to (a "bad port" of the Fetch standard): give the receiver another port` };
      return { ok: false, retry: true, error: timedOut ? `no answer within ${this.#o.timeoutMs} ms` : cause?.code ?? cause?.message ?? (err as Error).message };
    }
  }
}
