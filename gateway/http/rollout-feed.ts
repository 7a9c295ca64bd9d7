// What a rollout's event stream sends (docs/architecture.md §10), apart from HTTP: a snapshot of the
// rollout when a client connects, then a change whenever the rollout's record changes, each event
// with an id, so that a client that reconnects with the last id it saw gets what it missed, in
// order, or a fresh snapshot when that is too old to replay.
//
// - Coalesced: the gateway reports every persist of a rollout (one per ack on a busy wave); a feed
//   sends at most one change per `minIntervalMs` (default 100 ms: ~10 a second), built from the
//   record as it stands then, and none when what a client would see has not changed. A
//   10,000-ack wave sends tens of events, not 10,000.
// - Ids: an event is replayed after Last-Event-ID only when that id is one this feed sent and
//   still keeps; any other id (too old, from before a restart, from another replica) gets a
//   snapshot, so a client is never told it missed nothing when it did. Ids come from an
//   EventIdSource: with one process, each rollout's start at the clock's epoch milliseconds when
//   this process first needs one, so ids given after a restart are above those given before it (a
//   rollout would need over 1,000 events a second for a restart to go back, and it sends at most
//   ~10); with replicas, a sequence in the database (pg-event-ids.ts), so no two replicas ever give
//   the same id and a browser a load balancer moves to another replica gets a snapshot there.
// - Bounded: a feed exists only while a client listens, and for `lingerMs` after the last one
//   leaves (so that a reconnect can still be replayed), and keeps its last `keep` events.
//
//   const feeds = new RolloutFeeds({ load: async (id) => JSON.stringify(await gw.getRollout(id)), now: Date.now });
//   gw.onRolloutChange((id) => feeds.changed(id));
//   const { backlog, unsubscribe } = await feeds.subscribe(id, lastEventId, subscriber);
export interface RolloutEvent {
  id: number;
  type: 'snapshot' | 'change';
  rolloutId: string;
  /** the rollout as the API shows it, serialised */
  data: string;
}

/** Where event ids come from: increasing per rollout and never given twice, across restarts (and, with the database's, across replicas). */
export interface EventIdSource {
  next(rolloutId: string): number | Promise<number>;
}

/** Ids from this process: each rollout's start at the clock's epoch ms, then one up per event. */
export class ClockEventIds implements EventIdSource {
  readonly #last = new Map<string, number>();
  constructor(readonly now: () => number) {}

  next(rolloutId: string): number {
    const id = Math.max((this.#last.get(rolloutId) ?? 0) + 1, Math.floor(this.now()));
    this.#last.set(rolloutId, id);
    return id;
  }
}

/** One listening client. */
export interface Subscriber {
  /** the configured hash of the token it authenticated with: it is closed when that token is revoked */
  tokenHash: string;
  /** the console session's key, when it came with one: it is closed when that session ends */
  session: string | null;
  send(event: RolloutEvent): void;
  /** ends the stream; the feed has forgotten the subscriber already */
  close(): void;
}

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms).unref(),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface FeedOptions {
  /** the rollout as the API shows it, serialised; null when there is no such rollout */
  load: (rolloutId: string) => Promise<string | null>;
  now: () => number;
  /** default ClockEventIds over `now` */
  ids?: EventIdSource;
  /** at most one change event per rollout this often, ms; default 100 */
  minIntervalMs?: number;
  /** events a feed keeps for replay; default 64 */
  keep?: number;
  /** how long a feed outlives its last client, ms; default 60 s */
  lingerMs?: number;
  /** default real, unref'd timers (tests inject theirs) */
  timers?: Timers;
  /** a load that failed; default none (the change is sent with the next one) */
  onError?: (err: Error, rolloutId: string) => void;
}

interface Feed {
  rolloutId: string;
  subscribers: Set<Subscriber>;
  buffer: RolloutEvent[];
  /** the data of the last change sent to every subscriber */
  lastData: string | null;
  lastSentAt: number;
  timer: unknown;
  flushing: boolean;
  again: boolean;
  linger: unknown;
  /** the event being built (a snapshot or a change): one at a time, so the buffer holds them in the order read */
  chain: Promise<unknown>;
  /** events being built or waiting to be */
  building: number;
}

export class RolloutFeeds {
  readonly #o: Required<Omit<FeedOptions, 'onError'>> & Pick<FeedOptions, 'onError'>;
  readonly #feeds = new Map<string, Feed>();

  constructor(o: FeedOptions) {
    this.#o = { ids: new ClockEventIds(o.now), minIntervalMs: 100, keep: 64, lingerMs: 60_000, timers: realTimers, ...o };
  }

  /** Clients listening now, over every rollout. */
  get streams(): number {
    let n = 0;
    for (const f of this.#feeds.values()) n += f.subscribers.size;
    return n;
  }

  /** The rollout's record changed: a change event follows within minIntervalMs, if anyone listens. O(1). */
  changed(rolloutId: string): void {
    const f = this.#feeds.get(rolloutId);
    if (f) this.#schedule(f);
  }

  /**
   * Adds a subscriber. `backlog` is what to send it first: the events after `lastEventId` when it
   * is one this feed sent and keeps (possibly none), else a snapshot. Null when there is no such rollout.
   */
  async subscribe(rolloutId: string, lastEventId: number | null, sub: Subscriber): Promise<{ backlog: RolloutEvent[]; unsubscribe: () => void } | null> {
    const f = this.#feeds.get(rolloutId) ?? this.#open(rolloutId);
    this.#o.timers.clear(f.linger);
    f.linger = null;
    const seen = lastEventId === null ? -1 : f.buffer.findIndex((e) => e.id === lastEventId);
    if (seen >= 0) {
      f.subscribers.add(sub);
      return { backlog: f.buffer.slice(seen + 1), unsubscribe: () => this.#leave(f, sub) };
    }
    // Built after any event being built and before any later one, the subscriber added with it: a
    // change read before the snapshot is never pushed (or replayed) after it, nor one after it missed.
    const snapshot = await this.#serial(f, async () => {
      const data = await this.#load(rolloutId);
      if (data === null) return null;
      // A brand-new feed with no change on its way: what this client sees is what all have seen.
      if (f.lastData === null && f.timer === null && !f.flushing) f.lastData = data;
      // No id to give (the database is down): the stream ends, and the client comes back (retry).
      const id = await this.#id(rolloutId);
      if (id === null) return null;
      const e: RolloutEvent = { id, type: 'snapshot', rolloutId, data };
      this.#push(f, e);
      f.subscribers.add(sub);
      return e;
    });
    if (snapshot === null) {
      this.#idle(f);
      return null;
    }
    return { backlog: [snapshot], unsubscribe: () => this.#leave(f, sub) };
  }

  /** Closes the subscribers that match (a revoked token's, an ended session's); how many. */
  closeWhere(match: (s: Subscriber) => boolean): number {
    let n = 0;
    for (const f of this.#feeds.values()) {
      for (const s of [...f.subscribers]) {
        if (!match(s)) continue;
        this.#leave(f, s);
        s.close();
        n++;
      }
    }
    return n;
  }

  /** Closes every stream and stops every timer (the server is closing). */
  closeAll(): void {
    this.closeWhere(() => true);
    for (const f of this.#feeds.values()) {
      this.#o.timers.clear(f.timer);
      this.#o.timers.clear(f.linger);
    }
    this.#feeds.clear();
  }

  #open(rolloutId: string): Feed {
    const f: Feed = { rolloutId, subscribers: new Set(), buffer: [], lastData: null, lastSentAt: -Infinity, timer: null, flushing: false, again: false, linger: null, chain: Promise.resolve(), building: 0 };
    this.#feeds.set(rolloutId, f);
    return f;
  }

  #leave(f: Feed, sub: Subscriber): void {
    if (f.subscribers.delete(sub) && f.subscribers.size === 0) this.#idle(f);
  }

  /** No one listens: the feed lingers for a reconnect, then goes. */
  #idle(f: Feed): void {
    if (f.subscribers.size > 0 || f.linger !== null) return;
    f.linger = this.#o.timers.set(() => {
      if (f.subscribers.size > 0 || this.#feeds.get(f.rolloutId) !== f) return;
      this.#o.timers.clear(f.timer);
      this.#feeds.delete(f.rolloutId);
    }, this.#o.lingerMs);
  }

  #schedule(f: Feed): void {
    if (f.flushing) {
      f.again = true;
      return;
    }
    if (f.timer !== null) return;
    const wait = Math.max(0, f.lastSentAt + this.#o.minIntervalMs - this.#o.now());
    f.timer = this.#o.timers.set(() => void this.#flush(f), wait);
  }

  async #flush(f: Feed): Promise<void> {
    f.timer = null;
    f.flushing = true;
    try {
      await this.#serial(f, async () => {
        const data = await this.#load(f.rolloutId);
        f.lastSentAt = this.#o.now();
        if (data === null || data === f.lastData || this.#feeds.get(f.rolloutId) !== f) return;
        const id = await this.#id(f.rolloutId);
        // Without an id the change is not sent (lastData is left as it was): it is tried again
        // after minIntervalMs while anyone listens, as the rollout's last change may be this one.
        if (id === null) {
          if (f.subscribers.size > 0) f.again = true;
          return;
        }
        if (this.#feeds.get(f.rolloutId) !== f) return;
        f.lastData = data;
        const event: RolloutEvent = { id, type: 'change', rolloutId: f.rolloutId, data };
        this.#push(f, event);
        for (const s of f.subscribers) s.send(event);
      });
    } finally {
      f.flushing = false;
      if (f.again) {
        f.again = false;
        this.#schedule(f);
      }
    }
  }

  /** Runs `step` after the feed's event being built, if any. */
  #serial<T>(f: Feed, step: () => Promise<T>): Promise<T> {
    const run = f.building === 0 ? step() : f.chain.then(step);
    f.building++;
    f.chain = run.then(
      () => void f.building--,
      () => void f.building--,
    );
    return run;
  }

  async #id(rolloutId: string): Promise<number | null> {
    try {
      return await this.#o.ids.next(rolloutId);
    } catch (err) {
      this.#o.onError?.(err as Error, rolloutId);
      return null;
    }
  }

  async #load(rolloutId: string): Promise<string | null> {
    try {
      return await this.#o.load(rolloutId);
    } catch (err) {
      this.#o.onError?.(err as Error, rolloutId);
      return null;
    }
  }

  #push(f: Feed, e: RolloutEvent): void {
    f.buffer.push(e);
    if (f.buffer.length > this.#o.keep) f.buffer.splice(0, f.buffer.length - this.#o.keep);
  }
}

/** An event as text/event-stream lines (WHATWG HTML §9.2.6); data is one line of JSON. */
export function formatEvent(e: RolloutEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${e.data}\n\n`;
}

/** A Last-Event-ID header as a number, or null when absent or not one of ours. */
export function parseLastEventId(v: string | string[] | undefined): number | null {
  if (typeof v !== 'string' || !/^[0-9]{1,15}$/.test(v.trim())) return null;
  return Number(v.trim());
}
