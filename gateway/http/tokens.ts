// The API tokens in force, replaceable while the gateway runs (`pinwave gateway` reloads them from
// its config on SIGHUP). A token is `{ name, role, hash }` (auth.ts); what identifies it is its
// hash. Replacing the set revokes every token whose entry is gone or changed (a new role or name
// is a new grant: the holder signs in again), and tells the listeners, so that the console
// sessions it opened end with it and its open event streams close (docs/architecture.md §10).
//
//   const tokens = new ApiTokens(config.tokens);
//   tokens.onRevoked((gone) => sessions.endForTokens(gone.map((t) => t.hash)));
//   tokens.replace(reloaded.tokens);   // { added: ['carol'], removed: ['bob'], kept: 2 }
import { constantTimeEqualStrings, hashToken } from '../credentials.ts';
import type { ApiToken } from './auth.ts';

export interface TokenChange {
  /** names of the tokens that came in (new, or changed) */
  added: string[];
  /** names of the tokens revoked (gone, or changed) */
  removed: string[];
  /** how many stayed exactly as they were */
  kept: number;
}

/** The configured token that `token` is, or null; every hash is compared, in constant time each, with no early exit. */
export function findToken(tokens: readonly ApiToken[], token: string): ApiToken | null {
  const hash = hashToken(token);
  let found: ApiToken | null = null;
  for (const t of tokens) if (constantTimeEqualStrings(hash, t.hash) && found === null) found = t;
  return found;
}

const same = (a: ApiToken, b: ApiToken) => a.hash === b.hash && a.name === b.name && a.role === b.role;

export class ApiTokens {
  #tokens: readonly ApiToken[];
  readonly #listeners = new Set<(revoked: ApiToken[]) => void>();

  constructor(tokens: readonly ApiToken[] = []) {
    this.#tokens = tokens.map((t) => ({ ...t }));
  }

  /** The configured token that `token` is, or null (every hash compared in constant time, auth.ts). */
  find(token: string): ApiToken | null {
    return findToken(this.#tokens, token);
  }

  /** Whether this exact entry (hash, name and role) is still in force. */
  has(entry: ApiToken): boolean {
    return this.#tokens.some((t) => same(t, entry));
  }

  get size(): number {
    return this.#tokens.length;
  }

  /** Names and roles, never hashes: what a log line or a report may show. */
  names(): Array<{ name: string; role: ApiToken['role'] }> {
    return this.#tokens.map((t) => ({ name: t.name, role: t.role }));
  }

  /** Puts `next` in force at once; the revoked tokens' listeners are called before this returns. */
  replace(next: readonly ApiToken[]): TokenChange {
    const before = this.#tokens;
    const after = next.map((t) => ({ ...t }));
    const revoked = before.filter((t) => !after.some((n) => same(n, t)));
    const added = after.filter((n) => !before.some((t) => same(n, t)));
    this.#tokens = after;
    if (revoked.length > 0) for (const l of this.#listeners) l(revoked);
    return { added: added.map((t) => t.name), removed: revoked.map((t) => t.name), kept: after.length - added.length };
  }

  /** Calls `listener` with the entries each replace() revoked; returns the function that removes it. */
  onRevoked(listener: (revoked: ApiToken[]) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }
}
