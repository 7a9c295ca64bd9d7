// A path with an empty segment where a route takes an id (`/v1/devices/`, `/v1/rollouts//events`)
// names nothing: 404 PW_NOT_FOUND like any path the API does not serve, whatever the method and
// the token; never a 400 about an empty id, nor a 405 (gateway/http/errors.ts).
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;

t.test('every route with a parameter, that parameter empty: 404 for every method, before the access check', async (t) => {
  const a = await apiHarness(t);
  const paths = [...new Set(a.app.routeAccess.map((r) => r.url).filter((u) => /:\w+/.test(u)))];
  t.ok(paths.includes('/v1/devices/:id') && paths.includes('/v1/bundles/:id') && paths.includes('/v1/rollouts/:id'), paths.join(' '));
  for (const path of paths) {
    const url = path.replace(/:\w+/g, '');
    for (const method of METHODS) {
      for (const as of ['admin', null] as const) {
        const r = await a.call(method, url, { as });
        t.equal(r.statusCode, 404, `${method} ${url} (${path}) as ${as ?? 'nobody'}: 404`);
        if (method !== 'HEAD') t.match(r.json(), { code: 'PW_NOT_FOUND', message: `no route ${method} ${url}` });
        t.equal(r.headers.allow, undefined, 'no Allow');
      }
    }
  }
});

t.test('the list routes beside them still answer, and a real id still reaches its route', async (t) => {
  const a = await apiHarness(t);
  for (const url of ['/v1/devices', '/v1/bundles', '/v1/rollouts']) t.equal((await a.call('GET', url, { as: 'viewer' })).statusCode, 200, url);
  t.equal((await a.call('GET', '/v1/devices/nobody', { as: 'viewer' })).json().code, 'PW_NOT_FOUND', 'an unknown device: its own 404');
  t.equal((await a.call('GET', '/v1/devices/a%20b', { as: 'viewer' })).statusCode, 400, 'a malformed id: still the schema\'s 400');
  t.equal((await a.call('GET', '/ui/', { as: null })).statusCode, 200, 'the console\'s own trailing-slash page');
});
