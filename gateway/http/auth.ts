// Operator authentication: `Authorization: Bearer <token>`, tokens configured as hashes
// (`pinwave token hash` prints one) with a name and a role. Roles are ordered: a `viewer` reads,
// an `operator` also acts on bundles and rollouts, an `admin` also provisions and revokes devices.
//
// - Routes deny by default: every route declares, in its `config`, either the least role it needs
//   (`role: 'viewer'`) or that it is open to anyone (`public: true`). A route that declares neither,
//   or both, is refused when it is added, so `buildServer` throws naming it: the next route someone
//   adds cannot be open by omission. A request to a route that somehow escaped the check is 403.
// - The presented token is hashed once and compared with every configured hash in constant time
//   (constantTimeEqualStrings), with no early exit, so timing tells neither which token nor how
//   much of it matched.
// - Repeated bad tokens are throttled (throttle.ts): past the limit, a request with a missing or
//   wrong token gets 429 with Retry-After until the window ends, so guesses get no answer beyond
//   the limit, per source and from all sources together. A valid token still passes: operators
//   behind one NAT or proxy must be able to pause or abort a rollout while someone else's script
//   hammers a wrong token (tokens are at least 16 characters, `pinwave token new` makes 256-bit ones).
// - The caller's token `name` is the actor recorded in rollout decisions. No token, hash or header
//   is ever logged.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { constantTimeEqualStrings, hashToken } from '../credentials.ts';
import { errorBody, sendError } from './errors.ts';
import { FailureLimiter, type AuthLimits } from './throttle.ts';

export type { AuthLimits } from './throttle.ts';

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

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the least role the route needs; a route declares this or `public` */
    role?: Role;
    /** the route is open to anyone, with no token; a route declares this or `role` */
    public?: true;
  }
  interface FastifyRequest {
    /** the authenticated caller, on routes that need a role */
    caller: { name: string; role: Role } | null;
  }
  interface FastifyInstance {
    /** every route added, with what it declared: the least role, or `public` */
    routeAccess: readonly RouteAccess[];
  }
}

/** A route and who may call it. */
export interface RouteAccess {
  method: string;
  url: string;
  access: Role | 'public';
}

/** Thrown when a route is added without an access declaration (or with two). */
export class RouteAccessError extends Error {
  readonly code = 'PW_ROUTE_ACCESS';
  constructor(method: string, url: string, why: string) {
    super(`route ${method} ${url} ${why}: add config: { role: 'viewer' | 'operator' | 'admin' } or config: { public: true }`);
    this.name = 'RouteAccessError';
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

export interface AuthOptions {
  tokens: readonly ApiToken[];
  now: () => number;
  limits?: AuthLimits;
  /** counts refusals for /metrics */
  onRefused?: (reason: 'missing' | 'wrong' | 'forbidden' | 'throttled') => void;
}

/** What a route's config declares, or a RouteAccessError naming the route. */
export function declaredAccess(method: string, url: string, config: { role?: unknown; public?: unknown } | undefined): RouteAccess {
  const role = config?.role;
  const open = config?.public;
  if (role !== undefined && open !== undefined) throw new RouteAccessError(method, url, 'declares both a role and public');
  if (open !== undefined) {
    if (open !== true) throw new RouteAccessError(method, url, `declares public: ${JSON.stringify(open)}, not true`);
    return { method, url, access: 'public' };
  }
  if (role === undefined) throw new RouteAccessError(method, url, 'declares no access');
  if (!ROLES.includes(role as Role)) throw new RouteAccessError(method, url, `declares an unknown role ${JSON.stringify(role)}`);
  return { method, url, access: role as Role };
}

/**
 * The access check: every route added from now on must declare its access (else adding it
 * throws), and every request to a route that needs a role must bring a token that has it.
 * Register before any route.
 */
export function registerAuth(app: FastifyInstance, o: AuthOptions): void {
  const limiter = new FailureLimiter(o.limits);
  const tokens = [...o.tokens];
  const table: RouteAccess[] = [];
  app.decorate('routeAccess', table);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) table.push(declaredAccess(method, route.url, route.config));
  });
  app.decorateRequest('caller', null);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    // No route matched: the 404 handler answers, naming nothing that exists.
    if (request.is404) return;
    const config = request.routeOptions.config;
    if (config.public === true && config.role === undefined) return;
    const need = config.role;
    if (need === undefined || !ROLES.includes(need)) {
      return sendError(reply, errorBody(403, 'PW_FORBIDDEN', 'this route declares no access, so it is refused'));
    }
    const now = o.now();
    const token = bearerToken(request.headers.authorization);
    const found = token === null ? null : findToken(tokens, token);
    const blocked = found === null ? limiter.blocked(request.ip, now) : null;
    if (blocked !== null) {
      o.onRefused?.('throttled');
      const seconds = Math.ceil(blocked.ms / 1000);
      reply.header('retry-after', String(seconds));
      const from = blocked.scope === 'source' ? 'from this address' : 'from all addresses together';
      return sendError(reply, errorBody(429, 'PW_TOO_MANY_REQUESTS', `too many wrong tokens ${from}; retry in ${seconds} s`));
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
