// Console sessions (docs/architecture.md §10): an API token is exchanged once for a session, and the
// browser holds only the session's cookie. What a session is:
//
// - an id of 256 random bits, in a cookie that is HttpOnly (no script reads it), SameSite=Strict
//   (no other site's page makes the browser send it), Path=/ (the console calls the same /v1
//   routes as scripts do), and Secure with the `__Host-` prefix when served over HTTPS (RFC 6265bis
//   §4.1.3.2: then no subdomain or plain-HTTP page can set or shadow it);
// - kept hashed (SHA-256) in a SessionStore, with the token's name and role and the token's hash,
//   so it ends with that token (tokens.ts) and carries exactly its role;
// - ended by sign-out, by its idle timeout (no request for that long; default 1 h) or its absolute
//   lifetime (default 12 h), whichever comes first; an ended session answers 401 and its cookie
//   is cleared;
// - the key of its own anti-CSRF token: SHA-256 over a label and the id, given to the page (not a
//   cookie), sent back in `X-Pinwave-CSRF` on every state-changing request. Derived, so nothing more
//   is stored, and the store's hashes do not yield it.
import { createHash, randomBytes } from 'node:crypto';
import { constantTimeEqualStrings } from '../credentials.ts';
import type { ApiToken } from './auth.ts';
import { MemorySessionStore, type SessionRecord, type SessionStore } from './session-store.ts';

export type { SessionRecord, SessionStore } from './session-store.ts';

export interface SessionOptions {
  /** where sessions live; default in this process's memory */
  store?: SessionStore;
  /** the clock, epoch ms */
  now: () => number;
  /** a session with no request for this long ends, ms; default 1 h */
  idleMs?: number;
  /** a session ends this long after sign-in whatever it does, ms; default 12 h */
  lifetimeMs?: number;
  /** sessions one token may hold at once; signing in past it ends that token's oldest; default 50 */
  perToken?: number;
}

export const SESSION_DEFAULTS = { idleMs: 3600_000, lifetimeMs: 12 * 3600_000, perToken: 50 } as const;

/** The header a state-changing console request carries its session's anti-CSRF token in. */
export const CSRF_HEADER = 'x-pinwave-csrf';

/** 32 random bytes, base64url: what a cookie may carry. */
const ID_RE = /^[A-Za-z0-9_-]{43}$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest('base64url');

/** The store key of a session id. */
export const sessionKey = (id: string) => sha256(id);

/** The cookie's name: `__Host-` bound to this origin over HTTPS. */
export const cookieName = (secure: boolean) => (secure ? '__Host-pinwave_session' : 'pinwave_session');

/** The session id in a Cookie header (RFC 6265 §5.4), or null. */
export function readSessionCookie(header: string | undefined, secure: boolean): string | null {
  if (typeof header !== 'string') return null;
  const name = cookieName(secure);
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return ID_RE.test(value) ? value : null;
  }
  return null;
}

/** The Set-Cookie value that gives the browser a session. */
export function sessionCookie(id: string, o: { secure: boolean; maxAgeSeconds: number }): string {
  return `${cookieName(o.secure)}=${id}; Path=/; Max-Age=${Math.max(1, Math.floor(o.maxAgeSeconds))}; HttpOnly; SameSite=Strict${o.secure ? '; Secure' : ''}`;
}

/** The Set-Cookie value that removes it. */
export function clearedCookie(secure: boolean): string {
  return `${cookieName(secure)}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export interface OpenedSession {
  /** the cookie's value; shown to no one else, stored nowhere */
  id: string;
  csrf: string;
  record: SessionRecord;
}

export class Sessions {
  readonly store: SessionStore;
  readonly idleMs: number;
  readonly lifetimeMs: number;
  readonly #now: () => number;
  readonly #perToken: number;
  /** lastSeenAt is written at most this often per session: idle expiry is exact to within it */
  readonly #touchMs: number;
  readonly #listeners = new Set<(ended: SessionRecord[]) => void>();

  constructor(o: SessionOptions) {
    this.store = o.store ?? new MemorySessionStore();
    this.#now = o.now;
    this.idleMs = o.idleMs ?? SESSION_DEFAULTS.idleMs;
    this.lifetimeMs = o.lifetimeMs ?? SESSION_DEFAULTS.lifetimeMs;
    this.#perToken = o.perToken ?? SESSION_DEFAULTS.perToken;
    this.#touchMs = Math.min(10_000, Math.floor(this.idleMs / 10));
  }

  /** The anti-CSRF token of a session id. */
  csrf(id: string): string {
    return sha256(`pinwave console csrf\0${id}`);
  }

  /** Whether `presented` is the anti-CSRF token of session `id` (constant time). */
  csrfMatches(id: string, presented: unknown): boolean {
    return typeof presented === 'string' && constantTimeEqualStrings(presented, this.csrf(id));
  }

  /** A new session for a token that was just checked; ended ones are swept first. */
  async open(token: ApiToken): Promise<OpenedSession> {
    const now = this.#now();
    this.#ended(await this.store.deleteExpired(now, this.idleMs));
    const held = await this.store.listByToken(token.hash);
    for (const old of held.slice(0, Math.max(0, held.length - this.#perToken + 1))) this.#ended([await this.store.delete(old.idHash)]);
    const id = randomBytes(32).toString('base64url');
    const record: SessionRecord = { idHash: sessionKey(id), name: token.name, role: token.role, tokenHash: token.hash, createdAt: now, lastSeenAt: now, expiresAt: now + this.lifetimeMs };
    await this.store.put(record);
    return { id, csrf: this.csrf(id), record };
  }

  /** The live session with this id, its idle clock reset; null when there is none or it has ended (then it is removed). */
  async check(id: string): Promise<SessionRecord | null> {
    if (!ID_RE.test(id)) return null;
    const s = await this.store.get(sessionKey(id));
    if (!s) return null;
    const now = this.#now();
    if (now >= s.expiresAt || now - s.lastSeenAt >= this.idleMs) {
      this.#ended([await this.store.delete(s.idHash)]);
      return null;
    }
    if (now - s.lastSeenAt >= this.#touchMs) await this.store.touch(s.idHash, now);
    return s;
  }

  /** Whether the session with this key is still live, without counting as activity (event streams ask this). */
  async alive(idHash: string): Promise<boolean> {
    const s = await this.store.get(idHash);
    if (!s) return false;
    const now = this.#now();
    if (now < s.expiresAt && now - s.lastSeenAt < this.idleMs) return true;
    this.#ended([await this.store.delete(idHash)]);
    return false;
  }

  /** Sign-out: ends the session now; false when it had ended already. */
  async end(id: string): Promise<boolean> {
    const s = await this.store.delete(sessionKey(id));
    this.#ended([s]);
    return s !== null;
  }

  /** Ends every session opened with one of these tokens (revoked ones); how many there were. */
  async endForTokens(tokenHashes: readonly string[]): Promise<number> {
    if (tokenHashes.length === 0) return 0;
    const gone = await this.store.deleteByTokens(tokenHashes);
    this.#ended(gone);
    return gone.length;
  }

  /** Calls `listener` with the sessions that end (sign-out, expiry, revoked token); returns the function that removes it. */
  onEnded(listener: (ended: SessionRecord[]) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  #ended(records: Array<SessionRecord | null>): void {
    const ended = records.filter((r): r is SessionRecord => r !== null);
    if (ended.length > 0) for (const l of this.#listeners) l(ended);
  }
}
