// A query parameter a route does not declare is a 400 naming it, on every route: a single device,
// bundle or rollout, an action, a probe, as on the list routes (server.ts gives a route that
// declares no query the empty one, schemas.ts noQuery). A misspelt `?limt=` is never ignored.
// What a browser or a prober loads (the pages `/ui` and `/docs`, the console's assets, `/healthz`
// and `/readyz`) is the exception: it ignores any query, as a bookmark's `?utm_source=x`, a
// cache-buster's `?v=3` or a load balancer's `?probe=1` (schemas.ts ignoredQuery).
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';

/** A URL of a route, its parameters filled in with values its schema takes. */
const example = (url: string) => url.replace(':id', 'abcdef12').replace(':name', 'app.js');

/** The pages a browser loads: they take any query and ignore it. */
const PAGES = ['/ui', '/ui/', '/docs'];
/** What else a browser or a prober loads, and ignores the query of: the console's assets, the probes. */
const LOADED = ['/ui/assets/:name', '/healthz', '/readyz'];

t.test('every GET route refuses a parameter it does not declare, naming it', async (t) => {
  const a = await apiHarness(t);
  const gets = a.app.routeAccess.filter((r) => r.method === 'GET').map((r) => r.url);
  for (const path of ['/v1/devices/:id', '/v1/bundles/:id', '/v1/rollouts/:id', '/v1/bundles/:id/raw', '/healthz', '/readyz', '/v1/info', '/metrics', '/docs', '/ui', ...LOADED]) t.ok(gets.includes(path), `${path} is a GET route`);
  for (const path of gets.filter((p) => !PAGES.includes(p) && !LOADED.includes(p))) {
    const url = `${example(path)}?bogus=1`;
    const r = await a.call('GET', url, { as: 'admin' });
    t.equal(r.statusCode, 400, `${url}: 400`);
    t.match(r.json(), { code: 'PW_INVALID', message: 'querystring must NOT have unknown field "bogus"' }, `${url}: names the parameter`);
  }
});

t.test('a page a browser loads ignores its query: /ui and /docs with a bookmark\'s parameters load as without', async (t) => {
  const a = await apiHarness(t);
  const html = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
  for (const path of PAGES) {
    const plain = await a.call('GET', path, { as: null, headers: html });
    t.equal(plain.statusCode, 200, `${path}: 200`);
    for (const query of ['?utm_source=x', '?utm_source=x&utm_medium=mail', '?', '?a=1&a=2', '?%zz']) {
      const r = await a.call('GET', `${path}${query}`, { as: null, headers: html });
      t.equal(r.statusCode, 200, `${path}${query}: 200`);
      t.equal(r.headers['content-type'], plain.headers['content-type'], `${path}${query}: the page`);
      t.equal(r.body, plain.body, `${path}${query}: the same page`);
    }
  }
  t.equal((await a.call('GET', '/docs?x=1', { as: null })).json().openapi, '3.1.0', '/docs as JSON too');
  t.equal((await a.call('GET', '/docs/json?x=1', { as: null })).statusCode, 400, 'the document for tools keeps refusing');
  t.equal((await a.call('GET', '/v1/info?utm_source=x', { as: 'viewer' })).statusCode, 400, 'and the API');
});

t.test('the probes and the console\'s assets ignore their query: a load balancer\'s ?probe=1, a cache-buster\'s ?v=3', async (t) => {
  const a = await apiHarness(t);
  for (const path of LOADED.map(example)) {
    const plain = await a.call('GET', path, { as: null });
    t.equal(plain.statusCode, 200, `${path}: 200`);
    for (const query of ['?probe=1', '?v=3', '?v=3&v=4', '?', '?%zz']) {
      const r = await a.call('GET', `${path}${query}`, { as: null });
      t.equal(r.statusCode, 200, `${path}${query}: 200`);
      t.equal(r.headers['content-type'], plain.headers['content-type'], `${path}${query}: the same type`);
      t.equal(r.body, plain.body, `${path}${query}: the same body`);
    }
    t.equal((await a.call('HEAD', `${path}?probe=1`, { as: null })).statusCode, 200, `HEAD ${path}?probe=1: 200`);
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
