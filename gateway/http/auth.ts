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
// - The console (docs/architecture.md §10) authenticates by a session cookie instead (sessions.ts):
//   a request with no Authorization header and a live session is the session's token, with that
//   token's name and role, through the same routes and the same role checks. A state-changing
//   request (any method but GET, HEAD, OPTIONS) authenticated by cookie must also carry the
//   session's anti-CSRF token in X-Pinwave-CSRF, and an Origin, when it sends one, of this server
//   (403 PW_CSRF otherwise): SameSite=Strict already keeps other sites' requests from carrying the
//   cookie; these two hold where a browser or a proxy does not. A session ends with its token:
//   one whose token is no longer configured is refused even before the revocation reaches it.
// - The caller's token `name` is the actor recorded in rollout decisions. No token, session id,
//   hash or header is ever logged.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, sendError } from './errors.ts';
import { clearedCookie, CSRF_HEADER, readSessionCookie, type SessionRecord, type Sessions } from './sessions.ts';
import { FailureLimiter, type AuthLimits } from './throttle.ts';
import type { ApiTokens } from './tokens.ts';

export type { AuthLimits } from './throttle.ts';
export { findToken } from './tokens.ts';

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

/** Who made a request, and with what: a token (Authorization) or a console session opened with one. */
export interface Caller {
  name: string;
  role: Role;
  /** the configured hash of the token (the token itself, or the one the session was opened with) */
  tokenHash: string;
  /** the session's store key, when the request came with a session cookie; null for a bearer token */
  session: string | null;
}

/** Marks a route that answers for the API but is no route of it (a path's wrong-method answer, wrong-method.ts): not listed in `routeAccess`. A symbol, so no route's config can set it by a name. */
export const UNLISTED: unique symbol = Symbol('pinwave: not a route of the API');

declare module 'fastify' {
  interface FastifyContextConfig {
    [UNLISTED]?: true;
    /** the least role the route needs; a route declares this or `public` */
    role?: Role;
    /** the route is open to anyone, with no token; a route declares this or `role` */
    public?: true;
  }
  interface FastifyRequest {
    /** the authenticated caller, on routes that need a role */
    caller: Caller | null;
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

/** Methods that change nothing (RFC 9110 §9.2.1): the only ones a cookie alone may authenticate. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Whether a request's Origin header, if it sends one, is this server's own origin (RFC 6454 §7). */
export function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  return origin.toLowerCase() === `${request.protocol}://${request.host}`.toLowerCase();
}

/** Whether the request came over HTTPS (directly, or per X-Forwarded-Proto from a trusted proxy). */
export const isSecure = (request: FastifyRequest) => request.protocol === 'https';

export type Refusal = 'missing' | 'wrong' | 'forbidden' | 'throttled' | 'session' | 'csrf';

export interface AuthOptions {
  tokens: ApiTokens;
  sessions: Sessions;
  now: () => number;
  limits?: AuthLimits;
  /** counts refusals for /metrics */
  onRefused?: (reason: Refusal) => void;
}

/** What the sign-in route needs of the access check: the same tokens, throttle and sessions. */
export interface Auth {
  tokens: ApiTokens;
  sessions: Sessions;
  /**
   * Checks a token presented at sign-in exactly as a bearer token is checked (constant-time
   * lookup, the bad-token throttle): the token entry, or the refusal already sent.
   */
  checkToken(request: FastifyRequest, reply: FastifyReply, token: string): ApiToken | null;
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
 * throws), and every request to a route that needs a role must bring a token, or a console
 * session, that has it. Register before any route.
 */
export function registerAuth(app: FastifyInstance, o: AuthOptions): Auth {
  const limiter = new FailureLimiter(o.limits);
  const { tokens, sessions } = o;
  const table: RouteAccess[] = [];
  app.decorate('routeAccess', table);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      const access = declaredAccess(method, route.url, route.config);
      // A path's wrong-method answer (wrong-method.ts) is no route of the API.
      if (route.config?.[UNLISTED] !== true) table.push(access);
    }
  });
  app.decorateRequest('caller', null);

  /** 429 when this source (or every source) sent too many wrong tokens; true when refused. */
  const throttled = (request: FastifyRequest, reply: FastifyReply, now: number): boolean => {
    const blocked = limiter.blocked(request.ip, now);
    if (blocked === null) return false;
    o.onRefused?.('throttled');
    const seconds = Math.ceil(blocked.ms / 1000);
    reply.header('retry-after', String(seconds));
    const from = blocked.scope === 'source' ? 'from this address' : 'from all addresses together';
    sendError(reply, errorBody(429, 'PW_TOO_MANY_REQUESTS', `too many wrong tokens ${from}; retry in ${seconds} s`));
    return true;
  };
  const wrongToken = (request: FastifyRequest, reply: FastifyReply, now: number) => {
    limiter.fail(request.ip, now);
    o.onRefused?.('wrong');
    request.log.warn({ remoteAddress: request.ip }, 'wrong API token');
    reply.header('www-authenticate', 'Bearer realm="pinwave", error="invalid_token"');
    sendError(reply, errorBody(401, 'PW_UNAUTHORIZED', 'the bearer token is not valid'));
  };
  const forbidden = (reply: FastifyReply, need: Role, have: { name: string; role: Role }) => {
    o.onRefused?.('forbidden');
    sendError(reply, errorBody(403, 'PW_FORBIDDEN', `this needs the ${need} role; token "${have.name}" has ${have.role}`));
  };

  /** The session a cookie names, when it is live and its token still in force. */
  const liveSession = async (id: string): Promise<SessionRecord | null> => {
    const s = await sessions.check(id);
    if (s === null) return null;
    if (tokens.has({ name: s.name, role: s.role, hash: s.tokenHash })) return s;
    await sessions.endForTokens([s.tokenHash]);
    return null;
  };

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
    // A request that names a token is judged by it alone, whatever cookie the client also holds.
    if (request.headers.authorization === undefined) {
      const secure = isSecure(request);
      const id = readSessionCookie(request.headers.cookie, secure);
      if (id !== null) {
        const s = await liveSession(id);
        if (s === null) {
          o.onRefused?.('session');
          reply.header('set-cookie', clearedCookie(secure));
          return sendError(reply, errorBody(401, 'PW_UNAUTHORIZED', 'the console session has ended: sign in again'));
        }
        if (!SAFE.has(request.method)) {
          if (!sessions.csrfMatches(id, request.headers[CSRF_HEADER])) {
            o.onRefused?.('csrf');
            return sendError(reply, errorBody(403, 'PW_CSRF', `a console request that changes something must carry its session's ${CSRF_HEADER} header`));
          }
          if (!sameOrigin(request)) {
            o.onRefused?.('csrf');
            return sendError(reply, errorBody(403, 'PW_CSRF', 'the request comes from a page of another origin'));
          }
        }
        if (!allows(s.role, need)) return forbidden(reply, need, s);
        request.caller = { name: s.name, role: s.role, tokenHash: s.tokenHash, session: s.idHash };
        return;
      }
    }
    const token = bearerToken(request.headers.authorization);
    const found = token === null ? null : tokens.find(token);
    if (found === null && throttled(request, reply, now)) return;
    if (token === null) {
      o.onRefused?.('missing');
      reply.header('www-authenticate', 'Bearer realm="pinwave"');
      return sendError(reply, errorBody(401, 'PW_UNAUTHORIZED', 'a bearer token is required: Authorization: Bearer <token>'));
    }
    if (found === null) return wrongToken(request, reply, now);
    if (!allows(found.role, need)) return forbidden(reply, need, found);
    request.caller = { name: found.name, role: found.role, tokenHash: found.hash, session: null };
  });

  return {
    tokens,
    sessions,
    checkToken(request, reply, token) {
      const now = o.now();
      const found = tokens.find(token);
      if (found !== null) return found;
      if (!throttled(request, reply, now)) wrongToken(request, reply, now);
      return null;
    },
  };
}
