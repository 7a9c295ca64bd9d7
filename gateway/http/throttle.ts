// The bad-token throttle of the HTTP API: how many wrong tokens the API answers before it answers
// 429 instead, per source and in total. Pure: the caller passes the time.
//
//   const limiter = new FailureLimiter({ maxFailures: 5, windowMs: 60_000 });
//   if (limiter.blockedFor(request.ip, now) > 0) → 429 with Retry-After
//   on a wrong token: limiter.fail(request.ip, now)
//
// Two fixed windows, each opened by the first failure it counts:
// - per source: after `maxFailures` wrong tokens from one source within `windowMs`, that source is
//   refused until its window ends. A source is an IPv4 address, or an IPv6 /64 (one subscriber's
//   allocation, RFC 6177 §2: an attacker holding a /64 has 2^64 addresses to rotate through);
// - global: after `maxGlobalFailures` wrong tokens from all sources together within `windowMs`,
//   every source is refused until that window ends. This is what holds against many sources: a
//   botnet rotating through more addresses than the table tracks gets at most that many answers
//   per window, however many addresses it has.
// Memory is bounded: at most `maxTracked` sources are tracked. An entry is dropped only once its
// window has ended (entries are kept in the order their windows opened, so the expired ones are at
// the front), never to make room: a full table leaves a new source to the global count alone, so no
// amount of address rotation makes the throttle forget a source it is refusing.
import { isIPv6 } from 'node:net';

export interface AuthLimits {
  /** wrong tokens from one source (IPv4 address, IPv6 /64) before it is refused; default 5 */
  maxFailures?: number;
  /** the window failures are counted in, and how long a source (or everyone) is refused, ms; default 60 000 */
  windowMs?: number;
  /** sources tracked at most; a new source past this is counted only globally; default 10 000 */
  maxTracked?: number;
  /** wrong tokens from all sources together per window before every wrong or missing token is refused; default 100 */
  maxGlobalFailures?: number;
}

export const AUTH_LIMIT_DEFAULTS: Required<AuthLimits> = { maxFailures: 5, windowMs: 60_000, maxTracked: 10_000, maxGlobalFailures: 100 };

/** Why a request with no valid token is refused: its source, or all sources together. */
export type Blocked = { scope: 'source' | 'global'; ms: number } | null;

interface Window {
  first: number;
  count: number;
}

/** The throttle's key for a remote address: IPv4 as it is, IPv6 by its /64, IPv4-mapped IPv6 as IPv4. */
export function sourceOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head, tail = ''] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export class FailureLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxTracked: number;
  readonly #maxGlobal: number;
  /** source → its window; in the order the windows opened (a new window is re-inserted at the end) */
  readonly #seen = new Map<string, Window>();
  #global: Window | null = null;

  constructor(limits: AuthLimits = {}) {
    const l = { ...AUTH_LIMIT_DEFAULTS, ...limits };
    for (const [name, value] of Object.entries(l)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`expected ${name} to be a positive integer, got ${value}`);
    }
    this.#max = l.maxFailures;
    this.#windowMs = l.windowMs;
    this.#maxTracked = l.maxTracked;
    this.#maxGlobal = l.maxGlobalFailures;
  }

  /** Whether a request from `address` with no valid token is refused now, and for how long. */
  blocked(address: string, now: number): Blocked {
    this.#expire(now);
    const e = this.#seen.get(sourceOf(address));
    const own = e && e.count >= this.#max ? e.first + this.#windowMs - now : 0;
    const g = this.#global && this.#global.count >= this.#maxGlobal ? this.#global.first + this.#windowMs - now : 0;
    if (own <= 0 && g <= 0) return null;
    return own >= g ? { scope: 'source', ms: own } : { scope: 'global', ms: g };
  }

  /** How long `address` is still refused, ms; 0 when it is not. */
  blockedFor(address: string, now: number): number {
    return this.blocked(address, now)?.ms ?? 0;
  }

  /** Counts a wrong token from `address`. */
  fail(address: string, now: number): void {
    this.#expire(now);
    if (this.#global === null) this.#global = { first: now, count: 0 };
    this.#global.count++;
    const source = sourceOf(address);
    const e = this.#seen.get(source);
    if (e) {
      e.count++;
      return;
    }
    if (this.#seen.size < this.#maxTracked) this.#seen.set(source, { first: now, count: 1 });
  }

  /** Sources tracked now. */
  get tracked(): number {
    return this.#seen.size;
  }

  /** Drops the windows that have ended: the global one, and sources' from the front of the table. */
  #expire(now: number): void {
    if (this.#global && now - this.#global.first >= this.#windowMs) this.#global = null;
    for (const [source, e] of this.#seen) {
      if (now - e.first < this.#windowMs) break;
      this.#seen.delete(source);
    }
  }
}
