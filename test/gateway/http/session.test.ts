// Console sessions over the API: the cookie and its flags, the id kept hashed, roles exactly as the
// token's, idle and absolute expiry by the injected clock, sign-out, CSRF refusals, sign-in throttled
// like a bearer token, sessions that end with their token, and nothing secret in the logs.
import t from 'tap';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { apiHarness, API_TOKENS, TOKENS, type ApiHarness } from '../../fixtures/http.ts';
import { fleet, pin } from '../../fixtures/gateway.ts';
import { MemorySessionStore } from '../../../gateway/http/session-store.ts';
import type { Role } from '../../../gateway/http/auth.ts';

const COOKIE_RE = /^pinwave_session=([A-Za-z0-9_-]{43}); Path=\/; Max-Age=(\d+); HttpOnly; SameSite=Strict$/;

async function signIn(a: ApiHarness, as: Role, headers: Record<string, string> = {}) {
  const r = await a.app.inject({ method: 'POST', url: '/ui/session', headers: { 'content-type': 'application/json', ...headers }, payload: { token: TOKENS[as] } });
  const set = String(r.headers['set-cookie'] ?? '');
  const id = /=([A-Za-z0-9_-]{43});/.exec(set)?.[1] ?? '';
  return { r, id, cookie: `${set.split('=')[0]}=${id}`, csrf: r.json().csrf as string };
}

/** A request by cookie (no Authorization header), as the console makes it. */
const byCookie = (a: ApiHarness, method: 'GET' | 'POST' | 'DELETE', url: string, cookie: string, headers: Record<string, string> = {}, body?: unknown) =>
  a.app.inject({ method, url, headers: { cookie, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers }, ...(body !== undefined && { payload: body as object }) });

async function running(a: ApiHarness) {
  await fleet(a, 2);
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  return (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true } })).json();
}

t.test('sign-in exchanges a token for a session cookie: HttpOnly, SameSite=Strict, Path=/, 256 random bits, stored hashed', async (t) => {
  const store = new MemorySessionStore();
  const a = await apiHarness(t, { console: { sessions: store } });
  const { r, id, cookie, csrf } = await signIn(a, 'operator');
  t.equal(r.statusCode, 201);
  const m = COOKIE_RE.exec(String(r.headers['set-cookie']));
  t.ok(m, `Set-Cookie has the flags: ${r.headers['set-cookie']}`);
  t.equal(m![2], String(12 * 3600), 'Max-Age is the absolute lifetime');
  t.equal(Buffer.from(id, 'base64url').length, 32, 'a 256-bit id');
  t.equal(r.headers['cache-control'], 'no-store');
  t.same(r.json(), { name: 'olga', role: 'operator', csrf, expiresAt: a.clock.t + 12 * 3600_000, idleTimeoutSeconds: 3600 });
  t.match(csrf, /^[A-Za-z0-9_-]{43}$/);
  t.not(csrf, id, 'the anti-CSRF token is not the session id');

  const kept = await store.get(createHash('sha256').update(id).digest('base64url'));
  t.match(kept, { name: 'olga', role: 'operator', tokenHash: API_TOKENS[1].hash, createdAt: a.clock.t });
  t.notOk(JSON.stringify(kept).includes(id), 'the store holds the hash, never the id');
  t.notOk(JSON.stringify(kept).includes(TOKENS.operator), 'nor the token');

  const list = await byCookie(a, 'GET', '/v1/rollouts', cookie);
  t.equal(list.statusCode, 200, 'the cookie authenticates the same /v1 routes');
  t.same((await byCookie(a, 'GET', '/ui/session', cookie)).json(), r.json(), 'who am I: the same session');
  const bearer = await a.call('GET', '/ui/session', { as: 'viewer' });
  t.same(bearer.json(), { name: 'vera', role: 'viewer', csrf: null, expiresAt: null, idleTimeoutSeconds: null }, 'a bearer token is told who it is, with no session');
  t.equal((await a.app.inject({ method: 'GET', url: '/ui/session' })).statusCode, 401);
});

t.test('over HTTPS (here through a trusted proxy) the cookie is Secure and __Host- prefixed, and a plain one is not read', async (t) => {
  const a = await apiHarness(t, { trustProxy: true });
  const { r, id } = await signIn(a, 'viewer', { 'x-forwarded-proto': 'https' });
  t.match(String(r.headers['set-cookie']), /^__Host-pinwave_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure$/);
  const https = { 'x-forwarded-proto': 'https' };
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', `__Host-pinwave_session=${id}`, https)).statusCode, 200);
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', `pinwave_session=${id}`, https)).statusCode, 401, 'over HTTPS only the __Host- cookie counts');
});

t.test("a session has exactly its token's role, and its decisions carry the token's name", async (t) => {
  const a = await apiHarness(t);
  const ro = await running(a);
  const viewer = await signIn(a, 'viewer');
  const refused = await byCookie(a, 'POST', `/v1/rollouts/${ro.id}/pause`, viewer.cookie, { 'x-pinwave-csrf': viewer.csrf }, {});
  t.equal(refused.statusCode, 403);
  t.same(refused.json(), { statusCode: 403, error: 'Forbidden', code: 'PW_FORBIDDEN', message: 'this needs the operator role; token "vera" has viewer' });
  const operator = await signIn(a, 'operator');
  const paused = await byCookie(a, 'POST', `/v1/rollouts/${ro.id}/pause`, operator.cookie, { 'x-pinwave-csrf': operator.csrf }, {});
  t.equal(paused.statusCode, 200);
  t.match(paused.json().decisions.at(-1), { action: 'pause', actor: 'olga' });
  t.equal((await byCookie(a, 'POST', '/v1/devices', operator.cookie, { 'x-pinwave-csrf': operator.csrf }, { devices: [{ id: 'x-1', group: 'g' }] })).statusCode, 403, 'no more than the token');
});

t.test('a wrong token at sign-in is 401 with no cookie, and counts toward the bad-token throttle like a bearer token', async (t) => {
  const a = await apiHarness(t);
  const wrong = (n: number) => a.app.inject({ method: 'POST', url: '/ui/session', remoteAddress: '10.1.1.1', headers: { 'content-type': 'application/json' }, payload: { token: `guess-${n}-0123456789abcdef` } });
  const first = await wrong(0);
  t.equal(first.statusCode, 401);
  t.same(first.json(), { statusCode: 401, error: 'Unauthorized', code: 'PW_UNAUTHORIZED', message: 'the bearer token is not valid' });
  t.equal(first.headers['set-cookie'], undefined);
  for (let i = 1; i < 5; i++) await wrong(i);
  const throttled = await wrong(5);
  t.equal(throttled.statusCode, 429);
  t.equal(throttled.headers['retry-after'], '60');
  const bearer = await a.app.inject({ method: 'GET', url: '/v1/devices', remoteAddress: '10.1.1.1', headers: { authorization: 'Bearer guess-again-0123456789abcdef' } });
  t.equal(bearer.statusCode, 429, 'the same throttle as bearer tokens');
  const good = await a.app.inject({ method: 'POST', url: '/ui/session', remoteAddress: '10.1.1.1', headers: { 'content-type': 'application/json' }, payload: { token: TOKENS.viewer } });
  t.equal(good.statusCode, 201, 'a good token still signs in');
  const bad = await a.app.inject({ method: 'POST', url: '/ui/session', headers: { 'content-type': 'application/json' }, payload: { token: TOKENS.viewer, extra: 1 } });
  t.equal(bad.statusCode, 400, 'an unknown field is refused');
  const form = await a.app.inject({ method: 'POST', url: '/ui/session', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${TOKENS.viewer}` });
  t.equal(form.statusCode, 415, 'a form post (what another site could make a browser send) is not taken');
  t.equal((await a.app.inject({ method: 'POST', url: `/ui/session?token=${TOKENS.viewer}`, headers: { 'content-type': 'application/json' }, payload: {} })).statusCode, 400, 'a token in the URL is not taken');
});

t.test('a session ends after its idle timeout or its absolute lifetime, by the injected clock; its cookie is then cleared', async (t) => {
  const a = await apiHarness(t, { console: { sessionIdleMs: 60_000, sessionLifetimeMs: 300_000 } });
  const idle = await signIn(a, 'viewer');
  t.match(String(idle.r.headers['set-cookie']), /Max-Age=300;/);
  a.clock.advance(59_000);
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', idle.cookie)).statusCode, 200, 'in use within the idle timeout');
  a.clock.advance(59_000);
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', idle.cookie)).statusCode, 200, 'each request resets the idle clock');
  a.clock.advance(60_000);
  const ended = await byCookie(a, 'GET', '/v1/rollouts', idle.cookie);
  t.equal(ended.statusCode, 401);
  t.same(ended.json(), { statusCode: 401, error: 'Unauthorized', code: 'PW_UNAUTHORIZED', message: 'the console session has ended: sign in again' });
  t.equal(ended.headers['set-cookie'], 'pinwave_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict', 'the cookie is cleared');
  a.clock.advance(-59_000);
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', idle.cookie)).statusCode, 401, 'an ended session stays ended');

  const busy = await signIn(a, 'viewer');
  for (let i = 0; i < 5; i++) {
    a.clock.advance(50_000);
    t.equal((await byCookie(a, 'GET', '/v1/rollouts', busy.cookie)).statusCode, 200, `busy at ${(i + 1) * 50} s`);
  }
  a.clock.advance(50_000);
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', busy.cookie)).statusCode, 401, 'however busy, it ends at its absolute lifetime');
});

t.test('sign-out ends the session on the server and clears the cookie; it needs the anti-CSRF header', async (t) => {
  const a = await apiHarness(t);
  const s = await signIn(a, 'operator');
  const forged = await byCookie(a, 'DELETE', '/ui/session', s.cookie);
  t.equal(forged.statusCode, 403, 'a sign-out without the header is refused');
  t.equal(forged.json().code, 'PW_CSRF');
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', s.cookie)).statusCode, 200, 'and the session lives on');
  const out = await byCookie(a, 'DELETE', '/ui/session', s.cookie, { 'x-pinwave-csrf': s.csrf });
  t.equal(out.statusCode, 204);
  t.equal(out.headers['set-cookie'], 'pinwave_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict');
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', s.cookie)).statusCode, 401, 'the cookie no longer works');
  const bearer = await a.call('DELETE', '/ui/session', { as: 'viewer' });
  t.equal(bearer.statusCode, 400);
  t.match(bearer.json().message, /no console session to end/);
});

t.test('CSRF: a state-changing request by cookie needs its own session\'s X-Pinwave-CSRF, and an Origin (when sent) of this server', async (t) => {
  const a = await apiHarness(t);
  const ro = await running(a);
  const s = await signIn(a, 'operator');
  const other = await signIn(a, 'admin');
  const pause = (headers: Record<string, string>) => byCookie(a, 'POST', `/v1/rollouts/${ro.id}/pause`, s.cookie, headers, {});
  const none = await pause({});
  t.equal(none.statusCode, 403);
  t.same(none.json(), { statusCode: 403, error: 'Forbidden', code: 'PW_CSRF', message: "a console request that changes something must carry its session's x-pinwave-csrf header" });
  t.equal((await pause({ 'x-pinwave-csrf': other.csrf })).statusCode, 403, "another session's token is not this one's");
  const foreign = await pause({ 'x-pinwave-csrf': s.csrf, origin: 'http://evil.example' });
  t.equal(foreign.statusCode, 403);
  t.equal(foreign.json().message, 'the request comes from a page of another origin');
  t.equal((await pause({ 'x-pinwave-csrf': s.csrf, origin: 'null' })).statusCode, 403, 'an opaque origin neither');
  t.equal((await a.gw.listRollouts())[0].state, 'running', 'nothing refused was done');
  t.equal((await pause({ 'x-pinwave-csrf': s.csrf, origin: 'http://localhost:80', host: 'localhost:80' })).statusCode, 200, 'the right header from this origin');
  t.equal((await byCookie(a, 'GET', `/v1/rollouts/${ro.id}`, s.cookie, { origin: 'http://evil.example' })).statusCode, 200, 'reads need no header (SameSite keeps other sites from sending the cookie)');
  const signInForeign = await a.app.inject({ method: 'POST', url: '/ui/session', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, payload: { token: TOKENS.viewer } });
  t.equal(signInForeign.statusCode, 403, 'no sign-in from another origin (login CSRF)');
  const script = await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator', headers: { origin: 'http://evil.example' }, body: {} });
  t.equal(script.statusCode, 200, 'a bearer token is no ambient credential: no CSRF check');
  const metrics = (await a.call('GET', '/metrics', { as: null })).body;
  t.match(metrics, /pinwave_http_auth_refused_total\{reason="csrf"\} 4/);
});

t.test("a revoked token's sessions end with it; a token whose role changed ends its sessions too", async (t) => {
  const a = await apiHarness(t);
  const olga = await signIn(a, 'operator');
  const vera = await signIn(a, 'viewer');
  const adam = await signIn(a, 'admin');
  const change = a.app.apiTokens.replace([{ ...API_TOKENS[0], role: 'operator' }, API_TOKENS[2]]);
  t.same(change, { added: ['vera'], removed: ['vera', 'olga'], kept: 1 });
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', olga.cookie)).statusCode, 401, 'the revoked token\'s session ended');
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', vera.cookie)).statusCode, 401, 'a new role is a new grant: sign in again');
  t.equal((await byCookie(a, 'GET', '/v1/rollouts', adam.cookie)).statusCode, 200, 'untouched tokens keep their sessions');
  t.equal((await a.call('GET', '/v1/rollouts', { as: 'operator' })).statusCode, 401, 'and the token itself is refused');
  t.equal((await a.app.inject({ method: 'POST', url: '/ui/session', headers: { 'content-type': 'application/json' }, payload: { token: TOKENS.operator } })).statusCode, 401);
  t.equal((await signIn(a, 'viewer')).r.json().role, 'operator', 'vera signs in again with her new role');
});

t.test('no token, session id or anti-CSRF token reaches the log', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) });
  const a = await apiHarness(t, { logger: pino({ level: 'trace' }, sink) });
  const s = await signIn(a, 'operator');
  await byCookie(a, 'GET', '/v1/rollouts', s.cookie);
  await byCookie(a, 'DELETE', '/ui/session', s.cookie, { 'x-pinwave-csrf': s.csrf });
  await byCookie(a, 'GET', '/v1/rollouts', s.cookie);
  const log = lines.join('');
  t.match(log, /console sign-in/);
  for (const secret of [TOKENS.operator, s.id, s.csrf]) t.notOk(log.includes(secret), 'a secret in the log');
});

t.test('sessions one token holds are capped: signing in past the cap ends its oldest; cookies are parsed strictly', async (t) => {
  const { Sessions, readSessionCookie, sessionCookie } = await import('../../../gateway/http/sessions.ts');
  let now = 1000;
  const ended: string[] = [];
  const sessions = new Sessions({ now: () => now, perToken: 2 });
  sessions.onEnded((e) => ended.push(...e.map((s) => s.name)));
  const token = API_TOKENS[1];
  const first = await sessions.open(token);
  now++;
  const second = await sessions.open(token);
  now++;
  const third = await sessions.open(token);
  t.equal(await sessions.check(first.id), null, 'the oldest ended');
  t.ok(await sessions.check(second.id));
  t.ok(await sessions.check(third.id));
  t.same(ended, ['olga']);
  t.ok(sessions.csrfMatches(third.id, third.csrf));
  t.notOk(sessions.csrfMatches(third.id, second.csrf));
  t.notOk(sessions.csrfMatches(third.id, undefined));
  t.equal(await sessions.check('short'), null);
  t.equal(readSessionCookie(`a=1; pinwave_session=${third.id}; b=2`, false), third.id);
  t.equal(readSessionCookie(`pinwave_session=${third.id}x`, false), null, 'not an id of ours');
  t.equal(readSessionCookie(`__Host-pinwave_session=${third.id}`, false), null, 'the HTTPS name over HTTP');
  t.equal(readSessionCookie(undefined, false), null);
  t.equal(sessionCookie(third.id, { secure: true, maxAgeSeconds: 0.5 }), `__Host-pinwave_session=${third.id}; Path=/; Max-Age=1; HttpOnly; SameSite=Strict; Secure`);
  t.equal(await sessions.endForTokens([]), 0);
  t.equal(await sessions.endForTokens([token.hash]), 2);
  t.equal(await sessions.end(third.id), false, 'ended already');
});
