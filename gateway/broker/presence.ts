// Which devices are connected (docs/architecture.md §5): a device is connected exactly while one of its
// sessions is open, a session being one accepted connection, known by its own object.
//
//   const presence = new Presence<Session>();
//   presence.open('meter-1', a);     // { first: true, others: [] }   → onConnect
//   presence.open('meter-1', b);     // { first: false, others: [a] } → a is taken over
//   presence.close('meter-1', a);    // false: b is still open
//   presence.close('meter-1', b);    // true: the device has gone  → onDisconnect
//
// Why sessions and not a flag per device id: aedes 1.2 keys its own client table by id, and its
// close path removes whatever client holds the id, not the one closing. In a reconnect storm (one
// id connecting and dropping, many at once) a connection that closes between its authentication
// and its registration removes the live session's entry, and is then registered itself although
// closed; the live one is then never announced as gone, and the dead one is never removed. A set
// per id of the session objects whose sockets are open cannot drift that way: each session is
// added once, removed once, by identity, and the device is connected while the set is not empty.
// Pure: no sockets, no timers; the broker feeds it.

export interface OpenResult<S> {
  /** The device had no open session before this one. */
  first: boolean;
  /** Sessions of the device that were open already (a takeover: [MQTT-3.1.4-2] closes them). */
  others: S[];
}

export class Presence<S> {
  readonly #sessions = new Map<string, Set<S>>();

  /** Records `session` of device `id` as open. Opening a session twice is a no-op the second time. */
  open(id: string, session: S): OpenResult<S> {
    let set = this.#sessions.get(id);
    if (!set) {
      set = new Set();
      this.#sessions.set(id, set);
    }
    const others = [...set].filter((s) => s !== session);
    const first = set.size === 0;
    set.add(session);
    return { first, others };
  }

  /** Records `session` of device `id` as closed; true when it was the device's last open session. */
  close(id: string, session: S): boolean {
    const set = this.#sessions.get(id);
    if (!set || !set.delete(session)) return false;
    if (set.size > 0) return false;
    this.#sessions.delete(id);
    return true;
  }

  /** True while device `id` has an open session. */
  has(id: string): boolean {
    return this.#sessions.has(id);
  }

  /** The open sessions of device `id` (a copy), oldest first. */
  sessions(id: string): S[] {
    return [...(this.#sessions.get(id) ?? [])];
  }

  /** How many devices have an open session. */
  get size(): number {
    return this.#sessions.size;
  }
}
