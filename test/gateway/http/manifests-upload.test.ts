// /v1/manifests (push: admin, list: viewer) and POST /v1/bundles with `cose` (a bundle signed
// offline), as the API answers them, and as the OpenAPI document describes them.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { generateKeyPair, hex, kid, parsePin, privateKeyFromPem, signBundle } from '../../../firmware-manifest/index.ts';
import { apiHarness } from '../../fixtures/http.ts';
import { pin } from '../../fixtures/gateway.ts';

t.test('POST /v1/manifests: 400 lists every problem, 409 when the config has another, 200 when identical, 201 when new; GET lists them', async (t) => {
  const a = await apiHarness(t);
  const bad = await a.call('POST', '/v1/manifests', { body: { ...a.manifest, model: 'lk-1', color: 'red', pins: [{ host: 'x.example.com', pins: [pin('a'), 'sha256/AAAA'] }] } });
  t.equal(bad.statusCode, 400);
  t.match(bad.json(), { code: 'PW_INVALID', details: { errors: [{ path: '', message: 'unknown field "color"' }, { path: '/pins/0/pins/1', message: /32 bytes/ }] } });
  const conflict = await a.call('POST', '/v1/manifests', { body: { ...a.manifest, maxBundleBytes: 512 } });
  t.equal(conflict.statusCode, 409);
  t.match(conflict.json(), { code: 'PW_CONFLICT', details: { conflict: { model: 'th-100', firmware: '1.0.0', source: 'config' } } });
  const same = await a.call('POST', '/v1/manifests', { body: a.manifest });
  t.equal(same.statusCode, 200);
  t.match(same.json(), { status: 'unchanged', source: 'config' });
  t.equal((await a.call('POST', '/v1/manifests', { body: { ...a.manifest, model: 'lk-1' }, as: 'operator' })).statusCode, 403, 'an admin pushes');
  const created = await a.call('POST', '/v1/manifests', { body: { ...a.manifest, model: 'lk-1' } });
  t.equal(created.statusCode, 201, created.body);
  t.match(created.json(), { status: 'created', model: 'lk-1', firmware: '1.0.0', source: 'pushed', pushedBy: 'adam', manifest: { model: 'lk-1', pins: [{ host: 'api.example.com' }] } });
  const list = await a.call('GET', '/v1/manifests', { as: 'viewer' });
  t.same(list.json().items.map((e: { model: string; source: string }) => `${e.model} ${e.source}`), ['th-100 config', 'lk-1 pushed']);
});

t.test('POST /v1/manifests?replace=false keeps a different pushed manifest: a 409 naming it and the fields that differ', async (t) => {
  const a = await apiHarness(t);
  const first = { ...a.manifest, model: 'lk-1' };
  t.equal((await a.call('POST', '/v1/manifests', { body: first })).statusCode, 201);
  const other = { ...first, maxBundleBytes: 512 };
  const kept = await a.call('POST', '/v1/manifests?replace=false', { body: other });
  t.equal(kept.statusCode, 409, kept.body);
  t.match(kept.json(), { code: 'PW_CONFLICT', message: /different manifest for model "lk-1" firmware "1.0.0", pushed by adam \(it differs in maxBundleBytes\)/, details: { conflict: { model: 'lk-1', firmware: '1.0.0', source: 'pushed', pushedBy: 'adam', differs: ['maxBundleBytes'] } } });
  t.match((await a.call('POST', '/v1/manifests?replace=false', { body: first })).json(), { status: 'unchanged' }, 'an identical one goes through');
  t.same((await a.call('GET', '/v1/manifests')).json().items.find((e: { model: string }) => e.model === 'lk-1').manifest, first, 'the pushed one is kept');
  t.match((await a.call('POST', '/v1/manifests', { body: other })).json(), { status: 'replaced' }, 'by default a push replaces it');
  t.equal((await a.call('POST', '/v1/manifests?replace=maybe', { body: other })).statusCode, 400);
});

t.test('POST /v1/manifests takes initial pins too large for one bundle, with a warning naming the size and the limit', async (t) => {
  const a = await apiHarness(t);
  const pins = Array.from({ length: 100 }, (_, i) => ({ host: `h${i}.example.com`, pins: [pin(`a${i}`), pin(`b${i}`)] }));
  const r = await a.call('POST', '/v1/manifests', { body: { ...a.manifest, model: 'lk-1', pins } });
  t.equal(r.statusCode, 201, r.body);
  t.match(r.json(), { status: 'created', warnings: [{ path: '/pins', message: /need a bundle of at least \d+ bytes, above the 4096 bytes this firmware takes/ }] });
  t.notOk('warnings' in (await a.call('POST', '/v1/manifests', { body: { ...a.manifest, model: 'lk-2' } })).json(), 'none for a pin set that fits');
});

t.test('POST /v1/manifests refuses a manifest listing one trusted key twice (PEM and base64 alike), naming the kid and both places as the config does', async (t) => {
  const key = generateKeyPair();
  const twice = { model: 'lk-1', firmware: '1.0.0', pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }], trustedKeys: [key.publicPem, generateKeyPair().publicPem, Buffer.from(key.publicKey).toString('base64')] };
  const a = await apiHarness(t);
  const r = await a.call('POST', '/v1/manifests', { body: twice });
  t.equal(r.statusCode, 400, r.body);
  const message = new RegExp(`^trustedKeys\\[2\\] is the same key as trustedKeys\\[0\\] \\(kid ${hex(kid(key.publicKey))}\\): list each key once$`);
  t.match(r.json(), { code: 'PW_INVALID', details: { errors: [{ path: '/trustedKeys/2', message }] } });
  t.same((await a.call('GET', '/v1/manifests')).json().items.map((e: { model: string }) => e.model), ['th-100'], 'nothing was kept');
});

t.test('POST /v1/bundles with cose: 201 for a bundle a device of the group would take, 422 with the verifier reason otherwise', async (t) => {
  const a = await apiHarness(t);
  const seed = privateKeyFromPem(readFileSync(a.keyPath, 'utf8'));
  const iat = Math.floor(a.clock.now() / 1000);
  const sign = (seq: number) => Buffer.from(signBundle({ seq, iat, exp: iat + 86400, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [parsePin(pin('x')), parsePin(pin('y'))] }] }, seed).bytes).toString('base64');
  const ok = await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', cose: sign(1) }, as: 'operator' });
  t.equal(ok.statusCode, 201, ok.body);
  t.match(ok.json(), { group: 'thermostats', seq: 1, kid: a.gw.signing!.kid, createdBy: 'olga', endpoints: [{ host: 'api.example.com', pins: [pin('x'), pin('y')] }] });
  const stale = await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', cose: sign(1) }, as: 'operator' });
  t.equal(stale.statusCode, 422);
  t.match(stale.json(), { code: 'PW_UPLOAD_REFUSED', details: { reason: 'replayed', nextSeq: 2 } });
  const both = await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', cose: sign(2), pins: [{ host: 'a.example.com', pins: [pin('1'), pin('2')] }] }, as: 'operator' });
  t.equal(both.statusCode, 400);
  t.match(both.json().message, /give exactly one of pins .* or cose/);
  t.equal((await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', cose: 'not base64!' }, as: 'operator' })).statusCode, 400);
  const doc = (await a.call('GET', '/docs/json', { as: null })).json();
  const body = doc.paths['/v1/bundles'].post.requestBody.content['application/json'].schema;
  t.match(body.properties.cose.description, /signed elsewhere .*PW_UPLOAD_REFUSED/, 'the OpenAPI document describes the upload');
  t.ok(doc.paths['/v1/manifests'].post && doc.paths['/v1/manifests'].get, 'and the manifests routes');
});
