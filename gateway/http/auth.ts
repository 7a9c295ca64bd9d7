// Operator authentication: `Authorization: Bearer <token>`, tokens configured as hashes
// (`pinwave token hash` prints one) with a name and a role. Roles are ordered: a `viewer` reads,
// an `operator` also acts on bundles and rollouts, an `admin` also provisions and revokes devices.
// A route names the least role it needs in its `config.role`; a route without one is open.
//
// - The presented token is hashed once and compared with every configured hash in constant time
//   (constantTimeEqualStrings), with no early exit, so timing tells neither which token nor how
//   much of it matched.
// - Repeated bad tokens from one address are slowed down: after `maxFailures` wrong tokens within
//   `windowMs`, a request from that address with a missing or wrong token gets 429 with
//   Retry-After until the window ends, so guesses get no answer beyond maxFailures per window. A
//   valid token still passes: operators behind one NAT or proxy must be able to pause or abort a
//   rollout while someone else's script hammers a wrong token (tokens are at least 16 characters,
//   `pinwave token new` makes 256-bit ones). The table of addresses is bounded (oldest forgotten first).
// - The caller's token `name` is the actor recorded in rollout decisions. No token, hash or header
//   is ever logged.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { constantTimeEqualStrings, hashToken } from '../credentials.ts';
import { errorBody, sendError } from './errors.ts';

export type Role = 'viewer' | 'operator' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/** One API token as the config holds it. */
export interface ApiToken {
  /** who holds it; recorded as the actor of their decisions */
  name: string;
  role: Role;
  /** `sha256:<base64url>`, as `pinwave token hash` prints it; never the token itself */
  hash: string;
}

export interface AuthLimits {
  /** wrong tokens from one address before it is refused; default 5 */
  maxFailures?: number;
  /** the window those failures are counted in, and how long an address is refused, ms; default 60 000 */
  windowMs?: number;
  /** addresses tracked at most; the oldest is forgotten first; default 10 000 */
  maxTracked?: number;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the least role the route needs; absent: open */
    role?: Role;
  }
  interface FastifyRequest {
    /** the authenticated caller, on routes that need a role */
    caller: { name: string; role: Role } | null;
  }
}

const rank = (r: Role) => ROLES.indexOf(r);

/** Whether `have` may do what needs `need`. */
export const allows = (have: Role, need: Role): boolean => rank(have) >= rank(need);

/** The token in an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme is case-insensitive), or null. */
export function bearerToken(header: string | undefined): string | null {
  if (typeof header !== 'string') return null;
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return m ? m[1] : null;
}

/** The configured token that `token` is, or null; every hash is compared, in constant time each. */
export function findToken(tokens: readonly ApiToken[], token: string): ApiToken | null {
  const hash = hashToken(token);
  let found: ApiToken | null = null;
  for (const t of tokens) if (constantTimeEqualStrings(hash, t.hash) && found === null) found = t;
  return found;
}

/** Wrong tokens per remote address in a fixed window that opens at the first failure. */
export class FailureLimiter {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxTracked: number;
  readonly #seen = new Map<string, { first: number; count: number }>();

  constructor(limits: AuthLimits = {}) {
    this.#max = limits.maxFailures ?? 5;
    this.#windowMs = limits.windowMs ?? 60_000;
    this.#maxTracked = limits.maxTracked ?? 10_000;
  }

  /** How long `addr` is still refused, ms; 0 when it is not. */
  blockedFor(addr: string, now: number): number {
    const e = this.#seen.get(addr);
    if (!e) return 0;
    const left = e.first + this.#windowMs - now;
    if (left <= 0) {
      this.#seen.delete(addr);
      return 0;
    }
    return e.count >= this.#max ? left : 0;
  }

  fail(addr: string, now: number): void {
    const e = this.#seen.get(addr);
    if (e && now - e.first < this.#windowMs) {
      e.count++;
      return;
    }
    this.#seen.delete(addr);
    // Bounded: a flood of addresses forgets the oldest entries (Map keeps insertion order).
    while (this.#seen.size >= this.#maxTracked) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(addr, { first: now, count: 1 });
  }

  get tracked(): number {
    return this.#seen.size;
  }
}

export interface AuthOptions {
  tokens: readonly ApiToken[];
  now: () => number;
  limits?: AuthLimits;
  /** counts refusals for /metrics */
  onRefused?: (reason: 'missing' | 'wrong' | 'forbidden' | 'throttled') => void;
}

/** Adds the check to every route that names a role in its config. */
export function registerAuth(app: FastifyInstance, o: AuthOptions): void {
  const limiter = new FailureLimiter(o.limits);
  const tokens = [...o.tokens];
  app.decorateRequest('caller', null);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const need = request.routeOptions.config.role;
    if (need === undefined) return;
    const now = o.now();
    const token = bearerToken(request.headers.authorization);
    const found = token === null ? null : findToken(tokens, token);
    const wait = found === null ? limiter.blockedFor(request.ip, now) : 0;
    if (wait > 0) {
      o.onRefused?.('throttled');
      const seconds = Math.ceil(wait / 1000);
      reply.header('retry-after', String(seconds));
      return sendError(reply, errorBody(429, 'PW_TOO_MANY_REQUESTS', `too many wrong tokens from this address; retry in ${seconds} s`));
    }
    if (token === null) {
      o.onRefused?.('missing');
      reply.header('www-authenticate', 'Bearer realm="pinwave"');
      return sendError(reply, errorBody(401, 'PW_UNAUTHORIZED', 'a bearer token is required: Authorization: Bearer <token>'));
    }
    if (found === null) {
      limiter.fail(request.ip, now);
      o.onRefused?.('wrong');
      request.log.warn({ remoteAddress: request.ip }, 'wrong API token');
      reply.header('www-authenticate', 'Bearer realm="pinwave", error="invalid_token"');
      return sendError(reply, errorBody(401, 'PW_UNAUTHORIZED', 'the bearer token is not valid'));
    }
    if (!allows(found.role, need)) {
      o.onRefused?.('forbidden');
      return sendError(reply, errorBody(403, 'PW_FORBIDDEN', `this needs the ${need} role; token "${found.name}" has ${found.role}`));
    }
    request.caller = { name: found.name, role: found.role };
  });
}
