// Where console sessions are kept (sessions.ts decides what they mean). A handful of operations
// over plain records, so that a store shared by gateway replicas can take the memory one's place
// (docs/architecture.md §10). A record holds the SHA-256 of the session id, never the id: whoever
// reads the store cannot sign in with what it finds.
import type { Role } from './auth.ts';

export interface SessionRecord {
  /** base64url SHA-256 of the session id (the cookie's value); the key of the record */
  idHash: string;
  /** the API token's name: the actor of the decisions taken in this session */
  name: string;
  role: Role;
  /** the `hash` of the API token the session was opened with: the session ends with that token */
  tokenHash: string;
  /** epoch ms */
  createdAt: number;
  /** epoch ms of the last request the session authenticated (kept to within a few seconds) */
  lastSeenAt: number;
  /** epoch ms: createdAt + the absolute lifetime; the session ends then, however busy */
  expiresAt: number;
}

export interface SessionStore {
  put(s: SessionRecord): Promise<void>;
  get(idHash: string): Promise<SessionRecord | null>;
  /** Sets lastSeenAt; nothing when the session is gone. */
  touch(idHash: string, at: number): Promise<void>;
  /** Removes one; the removed record, or null when there was none. */
  delete(idHash: string): Promise<SessionRecord | null>;
  /** The sessions opened with a token, oldest first. */
  listByToken(tokenHash: string): Promise<SessionRecord[]>;
  /** Removes every session opened with one of these tokens; the removed records. */
  deleteByTokens(tokenHashes: readonly string[]): Promise<SessionRecord[]>;
  /** Removes every session past its absolute expiry, or idle for `idleMs` or more; the removed records. */
  deleteExpired(now: number, idleMs: number): Promise<SessionRecord[]>;
}

/** Sessions in this process's memory: they end when it stops (operators sign in again). */
export class MemorySessionStore implements SessionStore {
  readonly #byId = new Map<string, SessionRecord>();

  async put(s: SessionRecord): Promise<void> {
    this.#byId.set(s.idHash, { ...s });
  }

  async get(idHash: string): Promise<SessionRecord | null> {
    const s = this.#byId.get(idHash);
    return s ? { ...s } : null;
  }

  async touch(idHash: string, at: number): Promise<void> {
    const s = this.#byId.get(idHash);
    if (s && at > s.lastSeenAt) s.lastSeenAt = at;
  }

  async delete(idHash: string): Promise<SessionRecord | null> {
    const s = this.#byId.get(idHash);
    if (!s) return null;
    this.#byId.delete(idHash);
    return s;
  }

  async listByToken(tokenHash: string): Promise<SessionRecord[]> {
    return [...this.#byId.values()].filter((s) => s.tokenHash === tokenHash).sort((a, b) => a.createdAt - b.createdAt).map((s) => ({ ...s }));
  }

  async deleteByTokens(tokenHashes: readonly string[]): Promise<SessionRecord[]> {
    const set = new Set(tokenHashes);
    return this.#deleteIf((s) => set.has(s.tokenHash));
  }

  async deleteExpired(now: number, idleMs: number): Promise<SessionRecord[]> {
    return this.#deleteIf((s) => now >= s.expiresAt || now - s.lastSeenAt >= idleMs);
  }

  #deleteIf(match: (s: SessionRecord) => boolean): SessionRecord[] {
    const gone: SessionRecord[] = [];
    for (const [k, s] of this.#byId) {
      if (!match(s)) continue;
      this.#byId.delete(k);
      gone.push(s);
    }
    return gone;
  }
}
