// The console's page and assets as the gateway serves them: from the package (nothing from another
// origin), under a strict CSP, with gzip and ETags; a clear 503 when the scripts were never built.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { apiHarness } from '../../../fixtures/http.ts';
import { CONSOLE_CSP } from '../../../../gateway/http/console.ts';

t.test('GET /ui is one page that loads only its own scripts and style, under a CSP that allows nothing else', async (t) => {
  const a = await apiHarness(t);
  const r = await a.call('GET', '/ui', { as: null });
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /^text\/html/);
  t.equal(r.headers['content-security-policy'], CONSOLE_CSP);
  t.match(CONSOLE_CSP, /script-src 'self';/);
  t.notMatch(CONSOLE_CSP, /unsafe/);
  t.equal(r.headers['x-frame-options'], 'DENY');
  t.equal(r.headers['x-content-type-options'], 'nosniff');
  const html = r.body;
  t.notMatch(html, /<script(?![^>]*\bsrc=)/, 'no inline script');
  t.notMatch(html, /style=/, 'no inline style');
  const refs = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]);
  t.ok(refs.length > 3);
  t.ok(refs.every((u) => u.startsWith('/ui/') || u === '#main' || u === '/docs'), `every reference is this server's: ${refs.join(' ')}`);
  const modules = refs.filter((u) => u.endsWith('.js'));
  t.ok(modules.includes('/ui/assets/app.js'));
  t.notOk(modules.includes('/ui/assets/types.js'), 'a module of types only is not sent');
  for (const m of [...new Set(modules)]) {
    const js = await a.call('GET', m, { as: null });
    t.equal(js.statusCode, 200, m);
    t.match(js.headers['content-type'], /^text\/javascript/);
    t.notMatch(js.body, /from ['"](?!\.\/)/, `${m} imports only its siblings`);
  }
  t.equal((await a.call('GET', '/ui/', { as: null })).body, html, '/ui/ is the same page');
  for (const url of ['/ui?utm_source=mail', '/ui/?x=1&x=2']) {
    const withQuery = await a.call('GET', url, { as: null });
    t.equal(withQuery.statusCode, 200, `${url}: a query on the page is ignored`);
    t.equal(withQuery.body, html, `${url}: the same page`);
  }
  const css = await a.call('GET', '/ui/assets/console.css', { as: null });
  t.match(css.headers['content-type'], /^text\/css/);
  t.match(css.body, /:focus-visible/);
});

t.test('assets come gzipped when asked, with an ETag that answers 304; unknown names are 404, odd ones 400', async (t) => {
  const a = await apiHarness(t);
  const plain = await a.call('GET', '/ui/assets/app.js', { as: null });
  const zipped = await a.call('GET', '/ui/assets/app.js', { as: null, headers: { 'accept-encoding': 'gzip, br' } });
  t.equal(zipped.headers['content-encoding'], 'gzip');
  t.equal(zipped.headers.vary, 'Accept-Encoding');
  t.equal(gunzipSync(zipped.rawPayload).toString(), plain.body);
  t.ok(zipped.rawPayload.length < plain.rawPayload.length / 2, 'gzip at least halves it');
  t.equal(plain.headers['cache-control'], 'no-cache');
  const again = await a.call('GET', '/ui/assets/app.js', { as: null, headers: { 'if-none-match': String(plain.headers.etag) } });
  t.equal(again.statusCode, 304);
  t.equal(again.body, '');
  const missing = await a.call('GET', '/ui/assets/nope.js', { as: null });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().message, 'no console asset nope.js');
  t.equal((await a.call('GET', '/ui/assets/..%2Fpackage.json', { as: null })).statusCode, 400, 'no path out of the assets');
  t.equal((await a.call('GET', '/ui/assets/x.html', { as: null })).statusCode, 400);
});

t.test('a package whose console scripts were never built answers 503 naming the build command; the API still works', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'pinwave-nobuild-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const a = await apiHarness(t, { console: { root } });
  const r = await a.call('GET', '/ui', { as: null });
  t.equal(r.statusCode, 503);
  t.match(r.json(), { code: 'PW_CONSOLE_NOT_BUILT', message: /run npm run build/ });
  t.equal((await a.call('GET', '/ui/assets/app.js', { as: null })).statusCode, 503);
  t.equal((await a.call('GET', '/v1/rollouts', { as: 'viewer' })).statusCode, 200);
});
