// Bearer-token auth: 401 without or with a wrong token, 403 for the wrong role, open health and
// metrics; repeated bad tokens are refused for a while, per source and from all sources together,
// in bounded memory that forgets no source it refuses; logs never carry a token, device token,
// hash or query value.
import t from 'tap';
import { pino } from 'pino';
import { apiHarness, API_TOKENS, TOKENS } from '../../fixtures/http.ts';
import { allows, bearerToken, findToken } from '../../../gateway/http/auth.ts';
import { FailureLimiter, sourceOf } from '../../../gateway/http/throttle.ts';
import { redactQuery } from '../../../gateway/http/request-log.ts';
import { REDACT } from '../../../scripts/commands/gateway.ts';

t.test('no token or a wrong one is 401; the wrong role is 403 naming the role needed; open routes need none', async (t) => {
  const a = await apiHarness(t);
  const none = await a.call('GET', '/v1/devices', { as: null });
  t.equal(none.statusCode, 401);
  t.same(none.json(), { statusCode: 401, error: 'Unauthorized', message: 'a bearer token is required: Authorization: Bearer <token>', code: 'PW_UNAUTHORIZED' });
  t.equal(none.headers['www-authenticate'], 'Bearer realm="pinwave"');
  const wrong = await a.call('GET', '/v1/devices', { as: null, headers: { authorization: 'Bearer not-a-configured-token-at-all' } });
  t.equal(wrong.statusCode, 401);
  t.equal(wrong.json().message, 'the bearer token is not valid');
  t.equal((await a.call('GET', '/v1/devices', { as: null, headers: { authorization: `Basic ${TOKENS.admin}` } })).statusCode, 401, 'only the Bearer scheme');
  t.equal((await a.call('GET', '/v1/devices', { as: null, headers: { authorization: `bearer ${TOKENS.viewer}` } })).statusCode, 200, 'the scheme is case-insensitive');

  const forbidden = await a.call('POST', '/v1/devices', { as: 'operator', body: { devices: [{ id: 'x', group: 'g' }] } });
  t.equal(forbidden.statusCode, 403);
  t.same(forbidden.json(), { statusCode: 403, error: 'Forbidden', message: 'this needs the admin role; token "olga" has operator', code: 'PW_FORBIDDEN' });
  t.equal((await a.call('GET', '/v1/devices/x', { as: 'viewer' })).statusCode, 404, 'the role check comes first, then the lookup');
  t.equal((await a.call('POST', '/v1/bundles', { as: 'viewer', body: { nonsense: true } })).statusCode, 403, 'a forbidden body is not even validated');
  for (const url of ['/healthz', '/metrics', '/docs']) t.equal((await a.call('GET', url, { as: null })).statusCode, 200, `${url} is open`);
  t.equal((await a.call('GET', '/v1/info', { as: null })).statusCode, 401, '/v1/info is not');
  t.match((await a.call('GET', '/v1/nowhere', { as: null })).json(), { statusCode: 404, code: 'PW_NOT_FOUND', message: 'no route GET /v1/nowhere' }, 'no route: 404, whatever the token');
});

t.test('roles are ordered viewer < operator < admin', async (t) => {
  t.ok(allows('admin', 'viewer'));
  t.ok(allows('operator', 'operator'));
  t.notOk(allows('viewer', 'operator'));
  t.notOk(allows('operator', 'admin'));
});

t.test('after 5 wrong tokens in a minute an address gets 429 with Retry-After for wrong tokens; a good token still passes', async (t) => {
  const a = await apiHarness(t);
  const from = (remoteAddress: string, token: string) => a.app.inject({ method: 'GET', url: '/v1/devices', remoteAddress, headers: { authorization: `Bearer ${token}` } });
  for (let i = 0; i < 5; i++) t.equal((await from('10.0.0.9', `guess-number-${i}-0123456789`)).statusCode, 401);
  a.clock.advance(20_000);
  t.equal((await from('10.0.0.9', TOKENS.viewer)).statusCode, 200, 'an operator behind the same address is not locked out');
  const refused = await from('10.0.0.9', 'guess-number-6-0123456789');
  t.equal(refused.statusCode, 429);
  t.equal(refused.headers['retry-after'], '40');
  t.match(refused.json(), { statusCode: 429, error: 'Too Many Requests', code: 'PW_TOO_MANY_REQUESTS', message: 'too many wrong tokens from this address; retry in 40 s' });
  t.equal((await from('10.0.0.10', 'guess-number-7-0123456789')).statusCode, 401, 'another address is not throttled');
  t.equal((await a.app.inject({ method: 'GET', url: '/healthz', remoteAddress: '10.0.0.9' })).statusCode, 200, 'open routes stay open');
  a.clock.advance(40_000);
  t.equal((await from('10.0.0.9', 'guess-number-8-0123456789')).statusCode, 401, 'the window over, a wrong token is answered again');
  const metrics = (await a.call('GET', '/metrics', { as: null })).body;
  t.match(metrics, /pinwave_http_auth_refused_total\{reason="wrong"\} 7/);
  t.match(metrics, /pinwave_http_auth_refused_total\{reason="throttled"\} 1/);
});

t.test('the bad-token table is bounded and forgets no source it refuses, however many others fail', async (t) => {
  const l = new FailureLimiter({ maxFailures: 2, windowMs: 1000, maxTracked: 3, maxGlobalFailures: 1_000_000 });
  l.fail('10.0.0.1', 0);
  l.fail('10.0.0.1', 0);
  t.equal(l.blockedFor('10.0.0.1', 0), 1000, 'two failures: refused for the window');
  for (let i = 0; i < 20_000; i++) l.fail(`10.1.${i >> 8}.${i & 255}`, 1);
  t.equal(l.tracked, 3, 'the table stays at its bound');
  t.equal(l.blockedFor('10.0.0.1', 500), 500, 'still refused: a flood of other sources does not push it out');
  t.equal(l.blockedFor('10.0.0.1', 1000), 0, 'the window ends');
  t.equal(l.tracked, 2, 'its entry is dropped');
  t.equal(l.blockedFor('10.0.0.1', 1001), 0);
  t.equal(l.tracked, 0, 'and the others once theirs end');
  l.fail('10.0.0.9', 2000);
  l.fail('10.0.0.9', 2001);
  t.ok(l.blockedFor('10.0.0.9', 2001) > 0, 'a fresh window after the old ones ended');
  t.throws(() => new FailureLimiter({ maxFailures: 0 }), { message: 'expected maxFailures to be a positive integer, got 0' });
});

t.test('a global limit: sources the table cannot hold, or a botnet rotating addresses, get at most maxGlobalFailures answers per window', async (t) => {
  const l = new FailureLimiter({ maxFailures: 5, windowMs: 60_000, maxTracked: 100, maxGlobalFailures: 50 });
  let answered = 0;
  // 11,953 rotating sources, 10 guesses each (what once got 119,530 answers through).
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < 11_953; i++) {
      const addr = `198.18.${i >> 8}.${i & 255}`;
      if (l.blockedFor(addr, round) > 0) continue;
      answered++;
      l.fail(addr, round);
    }
  }
  t.equal(answered, 50, 'the global limit holds whatever the number of sources');
  t.ok(l.tracked <= 100);
  t.same(l.blocked('192.0.2.1', 100), { scope: 'global', ms: 59_900 }, 'everyone is refused until the window ends');
  t.equal(l.blockedFor('192.0.2.1', 60_000), 0, 'then answered again');
});

t.test('an IPv6 source is its /64; IPv4-mapped addresses are IPv4', async (t) => {
  t.equal(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(sourceOf('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  t.equal(sourceOf('2001:db8::7'), '2001:db8:0:0::/64');
  t.equal(sourceOf('::1'), '0:0:0:0::/64');
  t.equal(sourceOf('::ffff:192.0.2.7'), '192.0.2.7');
  t.equal(sourceOf('192.0.2.7'), '192.0.2.7');
  const l = new FailureLimiter({ maxFailures: 2, windowMs: 1000 });
  l.fail('2001:db8:1:2::a', 0);
  l.fail('2001:db8:1:2::b', 0);
  t.ok(l.blockedFor('2001:db8:1:2:ffff::9', 0) > 0, 'another address of the same /64 is refused too');
  t.equal(l.blockedFor('2001:db8:1:3::a', 0), 0, 'the next /64 is not');
});

t.test('over HTTP: rotating addresses hit the global limit; a valid token still passes', async (t) => {
  const a = await apiHarness(t, { authLimits: { maxGlobalFailures: 20 } });
  const from = (remoteAddress: string, token: string) => a.app.inject({ method: 'GET', url: '/v1/devices', remoteAddress, headers: { authorization: `Bearer ${token}` } });
  const codes: number[] = [];
  for (let i = 0; i < 60; i++) codes.push((await from(`203.0.113.${i}`, `guess-${i}-0123456789abcdef`)).statusCode);
  t.equal(codes.filter((c) => c === 401).length, 20, 'twenty answers');
  t.equal(codes.filter((c) => c === 429).length, 40);
  const refused = await from('203.0.113.200', 'guess-x-0123456789abcdef');
  t.match(refused.json(), { statusCode: 429, code: 'PW_TOO_MANY_REQUESTS', message: 'too many wrong tokens from all addresses together; retry in 60 s' });
  t.equal(refused.headers['retry-after'], '60');
  t.equal((await a.app.inject({ method: 'GET', url: '/v1/devices', remoteAddress: '203.0.113.201' })).statusCode, 429, 'no token at all: refused too');
  t.equal((await from('203.0.113.202', TOKENS.viewer)).statusCode, 200, 'an operator with a valid token is not locked out');
  a.clock.advance(60_000);
  t.equal((await from('203.0.113.203', 'guess-y-0123456789abcdef')).statusCode, 401, 'the window over, answered again');
});

t.test('query strings are redacted in request logs: a token in ?access_token= never reaches them', async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: 'trace', redact: { paths: REDACT, censor: '[redacted]' } }, { write: (s: string) => void lines.push(s) });
  const a = await apiHarness(t, { logger });
  const secret = 'query-token-0123456789abcdef-SECRET';
  for (const url of [`/v1/devices?access_token=${secret}`, `/healthz?access_token=${secret}`, `/v1/nowhere?access_token=${secret}`, `/v1/devices?limit=5&${secret}`, `/v1/stuck?group=g&token=${secret}`]) {
    await a.call('GET', url, { as: null });
    await a.call('GET', url, { as: 'viewer' });
  }
  await a.call('GET', `/v1/devices?access_token=${secret}`, { as: null, headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } });
  const log = lines.join('');
  t.ok(log.includes('"url":"/v1/devices?access_token=[redacted]"'), 'the parameter name is kept, its value is not');
  t.ok(log.includes('"url":"/v1/devices?limit=[redacted]&[redacted]"'), 'a name the API does not know may be the secret itself');
  t.ok(log.includes('"url":"/v1/stuck?group=[redacted]&[redacted]"'));
  t.ok(log.includes('request completed'));
  t.notOk(log.includes(secret), 'the token appears nowhere in the log');
  t.notOk(log.includes('SECRET'));
});

t.test('redactQuery keeps the path and the names the API knows, nothing else', async (t) => {
  const known = new Set(['group', 'limit']);
  t.equal(redactQuery('/v1/devices', known), '/v1/devices');
  t.equal(redactQuery('/v1/devices?', known), '/v1/devices?');
  t.equal(redactQuery('/v1/stuck?group=th&access_token=abc', known), '/v1/stuck?group=[redacted]&access_token=[redacted]');
  t.equal(redactQuery('/a?just-a-token', known), '/a?[redacted]');
  t.equal(redactQuery('/a?limit&x%3Dy=1&&=2', known), '/a?limit=[redacted]&[redacted]&[redacted]&[redacted]');
  t.equal(redactQuery('/a?group=1'), '/a?[redacted]', 'no names known: only access_token is named');
});

t.test('bearer tokens parse per RFC 6750; a token is found by its hash only', async (t) => {
  t.equal(bearerToken('Bearer abc.DEF-_~+/=='), 'abc.DEF-_~+/==');
  t.equal(bearerToken('BEARER   tok  '), 'tok');
  t.equal(bearerToken('Bearer'), null);
  t.equal(bearerToken('Bearer a b'), null);
  t.equal(bearerToken('Bearer tök'), null);
  t.equal(bearerToken(undefined), null);
  t.equal(findToken(API_TOKENS, TOKENS.operator)?.name, 'olga');
  t.equal(findToken(API_TOKENS, TOKENS.operator + 'x'), null);
  t.equal(findToken(API_TOKENS, API_TOKENS[0].hash), null, 'the hash is not a token');
  t.equal(findToken([], TOKENS.admin), null);
});

t.test('logs never contain API tokens, device tokens or hashes', async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: 'trace', redact: { paths: REDACT, censor: '[redacted]' } }, { write: (s: string) => void lines.push(s) });
  const a = await apiHarness(t, { logger }, { logger: logger.child({ component: 'gateway' }) });
  const { devices } = (await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats' }] } })).json();
  const { token: rotated } = (await a.call('POST', '/v1/devices/th-1/token')).json();
  const sim = a.device('th-1', rotated);
  await sim.connect();
  await sim.disconnect();
  await a.call('GET', '/v1/devices', { as: null, headers: { authorization: 'Bearer wrong-token-0123456789-secret' } });
  await a.call('GET', '/v1/devices', { as: 'operator' });
  await a.call('POST', '/v1/devices', { as: 'admin', body: '{"devices": [', headers: { 'content-type': 'application/json' } });
  const log = lines.join('');
  t.ok(log.includes('incoming request') && log.includes('wrong API token'), 'requests were logged');
  for (const secret of [...Object.values(TOKENS), 'wrong-token-0123456789-secret', devices[0].token, rotated, ...API_TOKENS.map((x) => x.hash)]) {
    t.notOk(log.includes(secret), `no ${secret.slice(0, 6)}… in the log`);
  }
  t.notOk(/sha256:[A-Za-z0-9_-]{43}/.test(log), 'no token hash at all');
});
