// A query parameter a route does not declare is a 400 naming it, on every route: a single device,
// bundle or rollout, an action, a probe, as on the list routes (server.ts gives a route that
// declares no query the empty one, schemas.ts noQuery). A misspelt `?limt=` is never ignored.
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';

/** A URL of a route, its parameters filled in with values its schema takes. */
const example = (url: string) => url.replace(':id', 'abcdef12').replace(':name', 'app.js');

/** The console's page, where a person lands: any query is ignored (console.ts). */
const PAGES = ['/ui', '/ui/'];

t.test('every GET route but the console page refuses a parameter it does not declare, naming it', async (t) => {
  const a = await apiHarness(t);
  const gets = a.app.routeAccess.filter((r) => r.method === 'GET' && !PAGES.includes(r.url)).map((r) => r.url);
  for (const path of ['/v1/devices/:id', '/v1/bundles/:id', '/v1/rollouts/:id', '/v1/bundles/:id/raw', '/healthz', '/readyz', '/v1/info', '/metrics', '/docs', '/ui/assets/:name']) t.ok(gets.includes(path), `${path} is a GET route`);
  for (const path of gets) {
    const url = `${example(path)}?bogus=1`;
    const r = await a.call('GET', url, { as: 'admin' });
    t.equal(r.statusCode, 400, `${url}: 400`);
    t.match(r.json(), { code: 'PW_INVALID', message: 'querystring must NOT have unknown field "bogus"' }, `${url}: names the parameter`);
  }
});

t.test('routes that change something refuse one too, before changing anything', async (t) => {
  const a = await apiHarness(t);
  t.equal((await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats' }] } })).statusCode, 201);
  for (const [method, url] of [['DELETE', '/v1/devices/th-1?force=1'], ['POST', '/v1/devices/th-1/token?dryRun=1'], ['POST', '/v1/rollouts/abcdef12/pause?now=1']] as const) {
    const r = await a.call(method, url);
    t.equal(r.statusCode, 400, `${method} ${url}: 400`);
    t.match(r.json().message, /^querystring must NOT have unknown field "(force|dryRun|now)"$/, `${method} ${url}: names the parameter`);
  }
  t.equal((await a.call('GET', '/v1/devices/th-1')).json().state, 'never_connected', 'the device is not revoked');
});

t.test('a declared parameter still works, and the HEAD twin of a GET refuses the same', async (t) => {
  const a = await apiHarness(t);
  t.equal((await a.call('GET', '/v1/devices?limit=5', { as: 'viewer' })).statusCode, 200);
  t.equal((await a.call('HEAD', '/v1/info?x=1', { as: 'viewer' })).statusCode, 400);
  t.equal((await a.call('HEAD', '/v1/info', { as: 'viewer' })).statusCode, 200);
});
