// Bearer-token auth: 401 without or with a wrong token, 403 for the wrong role, open health and
// metrics; repeated bad tokens from one address are refused for a while (bounded memory); logs
// never carry a token, device token or hash.
import t from 'tap';
import { pino } from 'pino';
import { apiHarness, API_TOKENS, TOKENS } from '../../fixtures/http.ts';
import { allows, bearerToken, FailureLimiter, findToken } from '../../../gateway/http/auth.ts';
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

t.test('the bad-token table is bounded: the oldest addresses are forgotten first', async (t) => {
  const l = new FailureLimiter({ maxFailures: 2, windowMs: 1000, maxTracked: 3 });
  for (const addr of ['a', 'b', 'c', 'd', 'e']) l.fail(addr, 0);
  t.equal(l.tracked, 3);
  l.fail('e', 10);
  t.equal(l.blockedFor('e', 10), 990);
  t.equal(l.blockedFor('a', 10), 0, 'a was forgotten');
  t.equal(l.blockedFor('c', 10), 0, 'one failure is not enough');
  t.equal(l.blockedFor('e', 1000), 0, 'the window ends');
  t.equal(l.tracked, 2, 'an ended window is dropped when looked at');
  l.fail('d', 2000);
  l.fail('d', 2001);
  t.ok(l.blockedFor('d', 2001) > 0, 'a fresh window after the old one ended');
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
