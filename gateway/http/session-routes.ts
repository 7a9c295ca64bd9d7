// /ui/session: the console's sign-in, who-am-I and sign-out (sessions.ts says what a session is).
//
//   POST /ui/session  { "token": "…" }   → 201, Set-Cookie, { name, role, csrf, expiresAt, idleTimeoutSeconds }
//   GET  /ui/session                    → 200, the same, for the session the cookie names
//   DELETE /ui/session                  → 204, the session ended on the server, the cookie cleared
//
// The token travels in a JSON body only (never a URL: the sign-in form posts it by script, and
// this route takes no query), is checked exactly as a bearer token is (same throttle for wrong
// ones), and is kept nowhere: the session keeps the token's hash. Sign-in is public; a sign-in
// from a page of another origin is refused (login CSRF), and a form post cannot reach it at all
// (only application/json bodies are taken).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.ts';
import { isSecure, sameOrigin, type Auth } from './auth.ts';
import { errorBody, sendError } from './errors.ts';
import { clearedCookie, readSessionCookie, sessionCookie, type SessionRecord } from './sessions.ts';
import { responses } from './schemas.ts';

export interface SessionRoutesOptions {
  auth: Auth;
}

const sessionInfo = {
  type: 'object',
  required: ['name', 'role', 'csrf', 'expiresAt', 'idleTimeoutSeconds'],
  properties: {
    name: { type: 'string', description: "the token's name: the actor of this session's decisions" },
    role: { type: 'string', enum: ['viewer', 'operator', 'admin'] },
    csrf: { type: ['string', 'null'], description: 'send as X-Pinwave-CSRF on every request that changes something; null for a bearer token' },
    expiresAt: { type: ['number', 'null'], description: 'epoch ms: the session ends then at the latest; null for a bearer token' },
    idleTimeoutSeconds: { type: ['number', 'null'], description: 'the session ends after this long without a request' },
  },
} as const;

const signInBody = {
  type: 'object',
  additionalProperties: false,
  required: ['token'],
  properties: { token: { type: 'string', minLength: 1, maxLength: 600, description: 'an API token (config tokens, PINWAVE_ADMIN_TOKEN)' } },
} as const;

export async function sessionRoutes(app: FastifyInstance, o: SessionRoutesOptions): Promise<void> {
  const { sessions } = o.auth;
  const info = (s: SessionRecord, id: string) => ({ name: s.name, role: s.role, csrf: sessions.csrf(id), expiresAt: s.expiresAt, idleTimeoutSeconds: sessions.idleMs / 1000 });
  const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store');

  app.post<{ Body: { token: string } }>(
    '/ui/session',
    {
      config: { public: true },
      schema: {
        tags: ['console'],
        summary: 'Sign in to the console: an API token in, a session cookie out',
        description: 'The cookie is HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS. A wrong token is 401 and counts toward the bad-token throttle like a wrong bearer token.',
        body: signInBody,
        response: responses({ 201: sessionInfo }),
      },
    },
    async (request, reply) => {
      if (!sameOrigin(request)) return sendError(reply, errorBody(403, 'PW_CSRF', 'the request comes from a page of another origin'));
      const token = o.auth.checkToken(request, reply, request.body.token);
      if (token === null) return reply;
      const secure = isSecure(request);
      const previous = readSessionCookie(request.headers.cookie, secure);
      if (previous !== null) await sessions.end(previous);
      const opened = await sessions.open(token);
      request.log.info({ name: token.name, role: token.role }, 'console sign-in');
      noStore(reply).header('set-cookie', sessionCookie(opened.id, { secure, maxAgeSeconds: sessions.lifetimeMs / 1000 }));
      return reply.code(201).send(info(opened.record, opened.id));
    },
  );

  app.get(
    '/ui/session',
    {
      config: { role: 'viewer' },
      schema: { tags: ['console'], summary: 'Who is signed in: name, role, and the anti-CSRF token of this session', response: responses({ 200: sessionInfo }) },
    },
    async (request: FastifyRequest, reply) => {
      const c = request.caller!;
      noStore(reply);
      const id = c.session === null ? null : readSessionCookie(request.headers.cookie, isSecure(request));
      const s = id === null ? null : await sessions.store.get(c.session!);
      if (id === null || s === null) return { name: c.name, role: c.role, csrf: null, expiresAt: null, idleTimeoutSeconds: null };
      return info(s, id);
    },
  );

  app.delete(
    '/ui/session',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['console'],
        summary: 'Sign out: the session ends on the server and its cookie is cleared',
        description: 'Needs X-Pinwave-CSRF like every state-changing console request. Its event streams close.',
        response: responses({ 204: { type: 'null', description: 'signed out' } }),
      },
    },
    async (request, reply) => {
      const c = request.caller!;
      if (c.session === null) throw new GatewayError('PW_INVALID', 'there is no console session to end: this request authenticated with a bearer token');
      const secure = isSecure(request);
      await sessions.end(readSessionCookie(request.headers.cookie, secure)!);
      request.log.info({ name: c.name }, 'console sign-out');
      return noStore(reply).header('set-cookie', clearedCookie(secure)).code(204).send();
    },
  );
}
