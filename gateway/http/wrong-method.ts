// A path the API serves, asked with a method it does not take: 405 Method Not Allowed with an
// `Allow` header naming the methods it does take (RFC 9110 §15.5.6), in the API's error shape
// (errors.ts). A path the API does not serve stays 404.
//
// The answer is a route of its own per path, for every method the path lacks, added once every
// other route is (server.ts), and not for a method another path with a parameter answers for this one
// (alsoMatches). It declares the least access of the path's routes, so the access
// check comes first: a path any of whose methods is public answers 405 to anyone; one that needs a
// role answers 401 or 403 to a caller without it, as its own methods do, and 405 only to a caller
// who could have called one of them. Such routes are not in `routeAccess` nor in the OpenAPI
// document: they are no part of the API.
//
// Methods. fastify routes only the methods it knows (GET, HEAD, TRACE, DELETE, OPTIONS, PATCH, PUT,
// POST, QUERY) and answers any other with its not-found handler, 404, whatever the path: PROPFIND,
// SEARCH, LOCK and the rest of what Node's HTTP parser reads (http.METHODS) are taught to it here, so
// that a served path answers them 405 like any wrong method. CONNECT names no path (RFC 9110 §9.3.6):
// Node hands it to the server's 'connect' event, never to a route. A method Node's parser does not
// know (`BREW`) never reaches the router: the parser refuses the request line, and fastify's client
// error handler answers 400 before any path is read, so there is no path to name methods for.
import { METHODS } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ROLES, UNLISTED, type Role, type RouteAccess } from './auth.ts';
import { errorBody, sendError } from './errors.ts';

/** The access a wrong-method route of a path declares: public if any of its routes is, else the least role among them. */
function leastAccess(routes: readonly RouteAccess[]): { public: true } | { role: Role } {
  if (routes.some((r) => r.access === 'public')) return { public: true };
  return { role: ROLES[Math.min(...routes.map((r) => ROLES.indexOf(r.access as Role)))] };
}

/**
 * Whether a request for `url` (a route's path, its static segments as written) is one `other`, a path
 * with parameters, also matches. The router prefers a static segment to a parameter, so a
 * wrong-method route on `url` would take such a request from `other`: `DELETE /v1/devices/export`,
 * beside a `GET /v1/devices/export`, revokes the device `export`, and is no wrong method.
 */
function alsoMatches(other: string, url: string): boolean {
  const a = other.split('/');
  const b = url.split('/');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '*') return i < b.length;
    if (i >= b.length || (a[i] !== b[i] && !a[i].startsWith(':'))) return false;
  }
  return a.length === b.length;
}

/** Adds, for every path in `app.routeAccess`, a route answering 405 to the methods it lacks. Call after every other route. */
export function answerWrongMethods(app: FastifyInstance): void {
  for (const m of METHODS) if (m !== 'CONNECT' && !app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
  const byPath = new Map<string, RouteAccess[]>();
  for (const r of app.routeAccess) byPath.set(r.url, [...(byPath.get(r.url) ?? []), r]);
  for (const [url, routes] of byPath) {
    const taken = new Set(routes.map((r) => r.method));
    const elsewhere = (m: string) => app.routeAccess.some((r) => r.method === m && r.url !== url && alsoMatches(r.url, url));
    const others = app.supportedMethods.filter((m) => !taken.has(m) && !elsewhere(m));
    if (others.length === 0) continue;
    const allow = [...taken].join(', ');
    // onRequest, after the access check and before any body is read: a wrong method is 405 whatever it sends.
    const refuse = async (request: FastifyRequest, reply: FastifyReply) =>
      sendError(reply.header('allow', allow), errorBody(405, 'PW_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${url}: it takes ${allow}`));
    app.route({ method: others, url, exposeHeadRoute: false, config: { ...leastAccess(routes), [UNLISTED]: true }, schema: { hide: true }, onRequest: refuse, handler: refuse });
  }
}
