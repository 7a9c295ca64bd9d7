// A path the API serves, asked with a method it does not take, is 405 Method Not Allowed with an
// Allow header (RFC 9110 §15.5.6) in the API's error shape, after the access check; a path it does
// not serve is 404 whatever the method (wrong-method.ts).
import t from 'tap';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { apiHarness } from '../../fixtures/http.ts';

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** A URL of a route, its parameters filled in. */
const example = (url: string) => url.replace(':id', 'x').replace(':name', 'app.js');

t.test('every path answers each method it does not take with 405 and Allow naming those it does', async (t) => {
  const a = await apiHarness(t);
  const byPath = new Map<string, string[]>();
  for (const r of a.app.routeAccess) byPath.set(r.url, [...(byPath.get(r.url) ?? []), r.method]);
  t.ok(byPath.size >= 30, `${byPath.size} paths`);
  for (const [path, taken] of byPath) {
    for (const method of METHODS.filter((m) => !taken.includes(m))) {
      const r = await a.call(method, example(path), { as: 'admin' });
      t.equal(r.statusCode, 405, `${method} ${path}: 405`);
      t.same(r.headers.allow!.split(', ').sort(), [...taken].sort(), `${method} ${path}: Allow ${taken.join(', ')}`);
      t.same(r.json(), { statusCode: 405, error: 'Method Not Allowed', code: 'PW_METHOD_NOT_ALLOWED', message: `${method} is not allowed on ${path}: it takes ${r.headers.allow}` }, `${method} ${path}: the error shape`);
    }
  }
  const del = await a.call('PUT', '/v1/devices/th-1', { as: 'admin' });
  t.equal(del.headers.allow, 'GET, HEAD, DELETE');
});

t.test('a method fastify does not route by default (PROPFIND, SEARCH, LOCK) is 405 with Allow on a served path, not 404', async (t) => {
  const a = await apiHarness(t);
  for (const method of ['PROPFIND', 'SEARCH', 'LOCK', 'MKCOL', 'PURGE', 'REPORT', 'M-SEARCH']) {
    const r = await a.call(method as 'GET', '/v1/devices/th-1', { as: 'admin' });
    t.equal(r.statusCode, 405, `${method}: 405`);
    t.equal(r.headers.allow, 'GET, HEAD, DELETE', `${method}: Allow`);
    t.same(r.json(), { statusCode: 405, error: 'Method Not Allowed', code: 'PW_METHOD_NOT_ALLOWED', message: `${method} is not allowed on /v1/devices/:id: it takes GET, HEAD, DELETE` });
    t.equal((await a.call(method as 'GET', '/v1/devices/th-1', { as: null })).statusCode, 401, `${method}: the access check first`);
    t.equal((await a.call(method as 'GET', '/v1/nothing', { as: 'admin' })).statusCode, 404, `${method} on a path not served: 404`);
  }
  t.equal((await a.call('PROPFIND' as 'GET', '/healthz', { as: null })).headers.allow, 'GET, HEAD', 'a public path: 405 to anyone');

  // Over a socket: a method Node's HTTP parser does not know is refused by the parser, before any path is read.
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (a.app.server.address() as net.AddressInfo).port;
  const statusLine = (method: string) =>
    new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(`${method} /v1/devices/th-1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer x\r\nconnection: close\r\n\r\n`));
      let got = '';
      s.on('data', (c) => (got += c)).on('error', reject).on('close', () => resolve(got.split('\r\n')[0]));
    });
  t.equal(await statusLine('PROPFIND'), 'HTTP/1.1 401 Unauthorized', 'PROPFIND reaches the route over a socket too');
  t.equal(await statusLine('BREW'), 'HTTP/1.1 400 Bad Request', 'a made-up method: the parser\'s 400, no path to answer for');
});

t.test('a path the API does not serve stays 404, whatever the method', async (t) => {
  const a = await apiHarness(t);
  for (const [method, url] of [['GET', '/v1/nothing'], ['PUT', '/v1/nothing'], ['DELETE', '/v1/devices/x/nothing'], ['POST', '/v1/devicesx'], ['PATCH', '/']] as const) {
    const r = await a.call(method, url, { as: 'admin' });
    t.equal(r.statusCode, 404, `${method} ${url}: 404`);
    t.equal(r.json().code, 'PW_NOT_FOUND');
    t.equal(r.headers.allow, undefined, 'no Allow');
  }
});

t.test('the access check comes first: a caller without the role learns what the right method would tell them, no more', async (t) => {
  const a = await apiHarness(t);
  const none = await a.call('PUT', '/v1/devices/x', { as: null });
  t.equal(none.statusCode, 401, 'no token: 401, as GET says');
  t.equal(none.headers.allow, undefined, 'and no Allow');
  t.equal((await a.call('GET', '/v1/devices/x', { as: null })).statusCode, 401);
  const wrong = await a.call('PATCH', '/v1/rollouts', { as: null, headers: { authorization: 'Bearer not-a-token-of-this-gateway' } });
  t.equal(wrong.statusCode, 401, 'a wrong token: 401');
  const viewer = await a.call('GET', '/v1/devices/x/token', { as: 'viewer' });
  t.equal(viewer.statusCode, 403, 'a path only an admin may call: 403 to a viewer, as POST says');
  t.equal(viewer.headers.allow, undefined);
  t.equal((await a.call('GET', '/v1/devices/x/token', { as: 'admin' })).statusCode, 405, 'and 405 to an admin');
  t.equal((await a.call('PUT', '/v1/devices/x', { as: 'viewer' })).statusCode, 405, 'a path a viewer may read: 405 to a viewer');
  const open = await a.call('POST', '/healthz', { as: null });
  t.equal(open.statusCode, 405, 'a public path: 405 to anyone');
  t.equal(open.headers.allow, 'GET, HEAD');
});

t.test('a wrong method is 405 whatever body it sends, and its route is no part of the API', async (t) => {
  const a = await apiHarness(t);
  const r = await a.call('PUT', '/v1/devices/x', { body: '{not json', headers: { 'content-type': 'application/json' } });
  t.equal(r.statusCode, 405, 'malformed JSON: still 405');
  t.equal((await a.call('PUT', '/v1/devices/x', { body: 'x', headers: { 'content-type': 'text/plain' } })).statusCode, 405, 'another media type: still 405');
  t.notOk(a.app.routeAccess.some((r) => r.method === 'PUT' || r.method === 'PATCH'), 'routeAccess lists no wrong-method route');
  const doc = (await a.call('GET', '/docs/json', { as: null })).json() as { paths: Record<string, Record<string, unknown>> };
  t.notOk(Object.values(doc.paths).some((ops) => 'put' in ops || 'patch' in ops || 'options' in ops), 'nor does the OpenAPI document');
});

t.test("a plugin's path beside a path with a parameter takes none of that path's requests", async (t) => {
  // GET /v1/devices/export is a deployment's own route; DELETE /v1/devices/export still revokes the
  // device `export` (DELETE /v1/devices/:id), as before the wrong-method routes were added.
  const exportRoute = async (app: FastifyInstance) => void app.get('/v1/devices/export', { config: { role: 'viewer' } }, async () => ({ exported: true }));
  const a = await apiHarness(t, { plugins: [exportRoute] });
  t.equal((await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'export', group: 'thermostats' }] } })).statusCode, 201);
  t.same((await a.call('GET', '/v1/devices/export', { as: 'viewer' })).json(), { exported: true }, "GET is the plugin's");
  const revoked = await a.call('DELETE', '/v1/devices/export');
  t.equal(revoked.statusCode, 200, 'DELETE revokes the device export');
  t.equal(revoked.json().id, 'export');
  t.not(revoked.json().revokedAt, null);
  const put = await a.call('PUT', '/v1/devices/export');
  t.equal(put.statusCode, 405, 'a method neither path takes is 405');
  t.equal(put.headers.allow, 'GET, HEAD');
});
