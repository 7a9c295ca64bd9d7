// /healthz, /v1/info, /metrics (Prometheus text with HELP and TYPE), the access every route declares,
// and /docs: the OpenAPI 3.1 document generated from the route schemas (valid under an independent
// validator, every route listed with who may call it, what the routes serve matches it) and the
// page a browser gets.
import t from 'tap';
import { createHash } from 'node:crypto';
import { Ajv2020 } from 'ajv/dist/2020.js';
import SwaggerParser from '@apidevtools/swagger-parser';
import mqtt from 'mqtt';
import type { FastifyInstance } from 'fastify';
import { apiHarness, API_TOKENS, TOKENS } from '../../fixtures/http.ts';
import { fleet, harness, pin, until } from '../../fixtures/gateway.ts';
import { buildServer } from '../../../gateway/http/server.ts';
import { renderDocsPage } from '../../../gateway/http/docs-page.ts';
import { prefersHtml } from '../../../gateway/http/docs.ts';
import { Exposition } from '../../../gateway/http/metrics.ts';
import { packageVersion } from '../../../gateway/http/info.ts';

/** Every route of the API and who may call it: the least role, or public (no token). */
const ROUTES: Array<[string, string, string]> = [
  ['GET', '/healthz', 'public'],
  ['GET', '/v1/info', 'viewer'],
  ['GET', '/metrics', 'public'],
  ['GET', '/readyz', 'public'],
  ['POST', '/v1/devices', 'admin'],
  ['GET', '/v1/devices', 'viewer'],
  ['GET', '/v1/devices/:id', 'viewer'],
  ['POST', '/v1/devices/:id/token', 'admin'],
  ['DELETE', '/v1/devices/:id', 'admin'],
  ['POST', '/v1/bundles', 'operator'],
  ['GET', '/v1/bundles', 'viewer'],
  ['POST', '/v1/manifests', 'admin'],
  ['GET', '/v1/manifests', 'viewer'],
  ['GET', '/v1/bundles/:id', 'viewer'],
  ['GET', '/v1/bundles/:id/raw', 'viewer'],
  ['POST', '/v1/rollouts', 'operator'],
  ['GET', '/v1/rollouts', 'viewer'],
  ['GET', '/v1/rollouts/:id', 'viewer'],
  ['POST', '/v1/rollouts/:id/start', 'operator'],
  ['POST', '/v1/rollouts/:id/pause', 'operator'],
  ['POST', '/v1/rollouts/:id/resume', 'operator'],
  ['POST', '/v1/rollouts/:id/abort', 'operator'],
  ['POST', '/v1/rollouts/:id/rollback', 'operator'],
  ['POST', '/v1/rollouts/:id/approve', 'operator'],
  ['GET', '/v1/telemetry/pin-failures', 'viewer'],
  ['GET', '/v1/stuck', 'viewer'],
  ['GET', '/v1/forecast', 'viewer'],
  ['GET', '/v1/rollouts/:id/events', 'viewer'],
  ['GET', '/v1/groups', 'viewer'],
  ['GET', '/docs', 'public'],
  ['GET', '/docs/json', 'public'],
  // The console (docs/architecture.md §10): its page and assets, and sign-in, are all that is public.
  ['POST', '/ui/session', 'public'],
  ['GET', '/ui/session', 'viewer'],
  ['DELETE', '/ui/session', 'viewer'],
  ['GET', '/ui', 'public'],
  ['GET', '/ui/', 'public'],
  ['GET', '/ui/assets/:name', 'public'],
];

/** A URL of a route, its parameter filled in. */
const example = (url: string) => url.replace(':id', 'x').replace(':name', 'app.js');

/** `/v1/devices/:id` as OpenAPI writes it: `/v1/devices/{id}`. */
const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

t.test('healthz answers ok without a token; info gives the MQTT URL, version, kid and SPKI PEM key', async (t) => {
  const a = await apiHarness(t);
  const h = await a.call('GET', '/healthz', { as: null });
  t.equal(h.statusCode, 200);
  t.same(h.json(), { status: 'ok' });
  const r = await a.call('GET', '/v1/info', { as: 'viewer' });
  t.equal(r.statusCode, 200);
  const info = r.json();
  t.same(info, {
    name: 'pinwave',
    version: packageVersion(),
    mqttUrl: a.gw.mqttUrl,
    broker: 'embedded',
    mqttPorts: { tcp: a.gw.ports.tcp },
    kid: a.gw.signing!.kid,
    publicKey: a.gw.signing!.publicPem,
    store: { writable: true, lastError: null },
  }, 'a viewer: the store without its name');
  t.match(info.version, /^\d+\.\d+\.\d+/);
  t.match(info.publicKey, /^-----BEGIN PUBLIC KEY-----\n/);
  t.match(info.kid, /^[0-9a-f]{16}$/);
  t.equal(packageVersion('/'), '0.0.0', 'no package.json above: a placeholder');
});

t.test('metrics are Prometheus text: HELP and TYPE for every metric, and the counts follow the fleet', async (t) => {
  const a = await apiHarness(t);
  const sims = await fleet(a, 2);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const intruder = mqtt.connect(a.gw.mqttUrl, { clientId: 'th-0000', username: 'th-0000', password: 'wrong', reconnectPeriod: 0 });
  await new Promise((resolve) => intruder.once('error', resolve));
  intruder.end(true);
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const ro = (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true } })).json();
  await until(async () => (a.gw.tick(), (await a.call('GET', `/v1/rollouts/${ro.id}`)).json().state === 'completed'), 5000, 'completion');

  const r = await a.call('GET', '/metrics', { as: null });
  t.equal(r.statusCode, 200);
  t.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  const samples = new Map<string, number>();
  for (const line of r.body.trimEnd().split('\n')) {
    if (line === '') continue; // the format ignores empty lines; prom-client puts one between metrics
    let m = /^# HELP (\w+) .+$/.exec(line);
    if (m) {
      helped.add(m[1]);
      continue;
    }
    m = /^# TYPE (\w+) (counter|gauge|histogram|summary)$/.exec(line);
    if (m) {
      t.ok(helped.has(m[1]), `HELP before TYPE for ${m[1]}`);
      typed.set(m[1], m[2]);
      continue;
    }
    m = /^(\w+)(\{[a-z_]+="[^"\\\n]*"(?:,[a-z_]+="[^"\\\n]*")*\})? (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|NaN|[+-]Inf)$/.exec(line);
    t.ok(m, `a sample line: ${line}`);
    if (!m) continue;
    // A histogram's or summary's samples carry its name with _bucket, _sum or _count.
    const family = typed.has(m[1]) ? m[1] : m[1].replace(/_(bucket|sum|count)$/, '');
    t.ok(typed.has(family), `${m[1]} has a TYPE line`);
    if (family !== m[1]) t.match(typed.get(family), /^(histogram|summary)$/, `${m[1]} belongs to a histogram or summary`);
    if (typed.get(m[1]) === 'counter') t.match(m[1], /_total$/, 'counters end in _total');
    samples.set(m[1] + (m[2] ?? ''), Number(m[3]));
  }
  t.equal(samples.get('pinwave_connected_devices'), 2);
  t.equal(samples.get('pinwave_acks_total{status="applied"}'), 2);
  t.equal(samples.get('pinwave_acks_total{status="rejected"}'), 0);
  t.equal(samples.get('pinwave_rollouts{state="completed"}'), 1);
  t.equal(samples.get('pinwave_held_waves'), 0);
  t.equal(samples.get('pinwave_bundles_sent_total'), 2);
  t.ok(samples.get('pinwave_device_messages_received_total{kind="ack"}')! >= 2);
  t.ok(samples.get('pinwave_mqtt_messages_sent_total')! >= 2);
  t.equal(samples.get('pinwave_mqtt_connections_refused_total{reason="bad_credentials"}'), 1);
  t.equal(samples.get('pinwave_mqtt_acl_denied_total{kind="subscribe"}'), 0);
  t.equal(samples.get('pinwave_pin_failure_reports_total'), 0);
  t.ok(samples.get('pinwave_store_writes_total')! > 0);
  t.equal(samples.get('pinwave_webhook_deliveries_total{outcome="failed"}'), 0, 'webhook metrics are there without webhooks');
  // Process and runtime metrics (prom-client's default collectors) follow the gateway's own.
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(typed.has(name), `${name} is exposed`);
  }
  t.ok(samples.get('process_resident_memory_bytes')! > 1e6, 'the resident memory is measured');
  for (const name of ['pinwave_connected_devices', 'pinwave_device_messages_received_total', 'pinwave_mqtt_messages_sent_total', 'pinwave_acks_total', 'pinwave_rollouts', 'pinwave_held_waves', 'pinwave_pin_failure_reports_total', 'pinwave_mqtt_connections_refused_total', 'pinwave_mqtt_acl_denied_total', 'pinwave_store_writes_total']) {
    t.ok(typed.has(name), `${name} is exposed`);
  }
});

t.test('label values are escaped as the exposition format requires', async (t) => {
  const text = new Exposition().add('x_total', 'counter', 'a \\ help\nline', [[{ reason: 'a"b\\c\nd' }, 1], [null, Number.NaN]]).toString();
  t.equal(text, '# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\nx_total{reason="a\\"b\\\\c\\nd"} 1\nx_total 0\n');
});

t.test('readyz names neither the store nor its error, with or without a token; /v1/info gives them to an operator, and to a viewer only whether it writes and the code', async (t) => {
  const a = await apiHarness(t);
  const path = a.gw.storeStatus().name;
  t.ok(path.startsWith('/'), `the store is a folder (${path})`);
  const ready = await a.call('GET', '/readyz', { as: null });
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), { status: 'ready' }, 'ready, and no path');

  const real = a.gw.store.status.bind(a.gw.store);
  const lastError = { code: 'PW_STORE_FULL', message: `store ${path}: writing ${path}/journal-000001.log failed (ENOSPC: no space left on device)`, at: Date.parse('2026-03-01T12:00:00Z') };
  a.gw.store.status = () => ({ ...real(), writable: false, lastError });
  for (const as of [null, 'admin'] as const) {
    const r = await a.call('GET', '/readyz', { as });
    t.equal(r.statusCode, 503, `${as ?? 'no token'}: 503`);
    t.same(r.json(), { status: 'unavailable', reason: 'store cannot write' }, `${as ?? 'no token'}: a generic reason`);
    t.notMatch(r.body, path, 'no path');
    t.notMatch(r.body, /ENOSPC|journal|PW_STORE/, 'nor the error');
  }
  t.same((await a.call('GET', '/healthz', { as: null })).json(), { status: 'ok' }, 'healthz says ok and nothing more');
  t.notMatch((await a.call('GET', '/metrics', { as: null })).body, path, 'nor does /metrics');
  for (const as of ['operator', 'admin'] as const) {
    const info = await a.call('GET', '/v1/info', { as });
    t.same(info.json().store, { name: path, writable: false, lastError }, `/v1/info to an ${as} names the store and its error`);
  }
  const viewed = await a.call('GET', '/v1/info', { as: 'viewer' });
  t.equal(viewed.statusCode, 200);
  t.same(viewed.json().store, { writable: false, lastError: { code: 'PW_STORE_FULL', at: lastError.at } }, 'to a viewer: whether it writes, and the code');
  t.notMatch(viewed.body, path, 'no data dir path for a viewer');
  t.equal((await a.call('GET', '/v1/info', { as: null })).statusCode, 401, 'and needs a token');
});

t.test('every route declares who may call it: the table lists them all, HEAD twins included', async (t) => {
  const a = await apiHarness(t);
  const table = a.app.routeAccess.map((r) => [r.method, r.url, r.access]);
  const heads = table.filter(([m]) => m === 'HEAD');
  for (const [, url, access] of heads) t.ok(table.some(([m, u, x]) => m === 'GET' && u === url && x === access), `HEAD ${url} mirrors GET ${url} (${access})`);
  t.same(
    table.filter(([m]) => m !== 'HEAD').sort(),
    ROUTES.map((r) => [...r]).sort(),
  );
  t.equal(heads.length, ROUTES.filter(([m]) => m === 'GET').length, 'every GET has its HEAD');
  t.notOk(table.some(([, u, x]) => u.startsWith('/v1/') && x === 'public'), 'nothing under /v1 is public');
  // What the table says is what the server does: public routes answer without a token, the others 401.
  for (const [method, url, access] of ROUTES) {
    const r = await a.call(method as 'GET', example(url), { as: null, ...(method === 'POST' && { body: { token: 'not-a-token-0123456789' } }) });
    // Sign-in is open to anyone, and answers a wrong token as such.
    if (method === 'POST' && url === '/ui/session') t.equal(r.statusCode, 401, `${method} ${url} is open, and refuses a wrong token`);
    else if (access === 'public') t.equal(r.statusCode, 200, `${method} ${url} is open`);
    else t.equal(r.statusCode, 401, `${method} ${url} needs a token`);
  }
});

t.test('a route that declares no access, or both a role and public, makes buildServer throw naming it', async (t) => {
  const h = await harness(t);
  const undeclared = async (app: FastifyInstance) => void app.get('/v1/forgotten', async () => 'open by omission');
  await t.rejects(buildServer({ gateway: h.gw, plugins: [undeclared] }), {
    name: 'RouteAccessError',
    code: 'PW_ROUTE_ACCESS',
    message: "route GET /v1/forgotten declares no access: add config: { role: 'viewer' | 'operator' | 'admin' } or config: { public: true }",
  });
  const both = async (app: FastifyInstance) => void app.post('/v1/both', { config: { role: 'admin', public: true } }, async () => 'x');
  await t.rejects(buildServer({ gateway: h.gw, plugins: [both] }), { message: /^route POST \/v1\/both declares both a role and public/ });
  const notTrue = async (app: FastifyInstance) => void app.get('/v1/maybe', { config: { public: 'yes' as unknown as true } }, async () => 'x');
  await t.rejects(buildServer({ gateway: h.gw, plugins: [notTrue] }), { message: /^route GET \/v1\/maybe declares public: "yes", not true/ });
  const badRole = async (app: FastifyInstance) => void app.get('/v1/root', { config: { role: 'root' as 'admin' } }, async () => 'x');
  await t.rejects(buildServer({ gateway: h.gw, plugins: [badRole] }), { message: /^route GET \/v1\/root declares an unknown role "root"/ });

  const declared = async (app: FastifyInstance) => void app.get('/v1/extra', { config: { role: 'operator' } }, async () => ({ ok: true }));
  // A config key of the plugin's own, whatever its name, does not take a route out of the table.
  const ownKey = async (app: FastifyInstance) => void app.get('/v1/own', { config: { public: true, allow: 'GET' } as never }, async () => ({ ok: true }));
  const app = await buildServer({ gateway: h.gw, tokens: API_TOKENS, plugins: [declared, ownKey] });
  t.same(app.routeAccess.find((r) => r.url === '/v1/own' && r.method === 'GET'), { method: 'GET', url: '/v1/own', access: 'public' }, 'a route with its own `allow` key is listed');
  t.teardown(() => app.close());
  t.throws(() => app.get('/v1/late', async () => 'x'), { name: 'RouteAccessError', message: /^route GET \/v1\/late declares no access/ }, 'a route added later is refused too');
  t.same(app.routeAccess.find((r) => r.url === '/v1/extra' && r.method === 'GET'), { method: 'GET', url: '/v1/extra', access: 'operator' });
  t.equal((await app.inject({ url: '/v1/extra', headers: { authorization: `Bearer ${TOKENS.viewer}` } })).statusCode, 403, 'a declared role is enforced');
});

/** Every Schema Object in an OpenAPI document, with where it is. */
function schemaObjects(doc: Record<string, any>): Array<[string, Record<string, unknown>]> {
  const found: Array<[string, Record<string, unknown>]> = Object.entries(doc.components?.schemas ?? {}).map(([n, s]) => [`components.schemas.${n}`, s as Record<string, unknown>]);
  for (const [path, ops] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      const at = `${method.toUpperCase()} ${path}`;
      for (const p of op.parameters ?? []) found.push([`${at} parameter ${p.name}`, p.schema]);
      for (const [type, c] of Object.entries<any>(op.requestBody?.content ?? {})) found.push([`${at} body ${type}`, c.schema]);
      for (const [status, r] of Object.entries<any>(op.responses ?? {})) for (const [type, c] of Object.entries<any>(r.content ?? {})) found.push([`${at} ${status} ${type}`, c.schema]);
    }
  }
  return found;
}

t.test('/docs is an OpenAPI 3.1 document an independent validator accepts, listing every route with who may call it', async (t) => {
  const a = await apiHarness(t);
  const r = await a.call('GET', '/docs', { as: null });
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  t.equal(r.headers.vary, 'Accept');
  const doc = r.json();
  t.same((await a.call('GET', '/docs/json', { as: null })).json(), doc, '/docs/json is the same document');
  t.same((await a.call('GET', '/docs', { as: null, headers: { accept: '*/*' } })).json(), doc, 'curl and fetch (Accept */*) get JSON');

  // @apidevtools/swagger-parser: the OpenAPI 3.1 schema, $refs resolved. (Under 3.0.3 this same
  // document had 260 errors: numeric exclusiveMinimum and `type: [T, "null"]` are 2020-12, not 3.0.)
  await t.resolves(SwaggerParser.validate(structuredClone(doc)), 'swagger-parser validates it');
  t.equal(doc.openapi, '3.1.0');
  t.match(doc.info, { title: 'pinwave', version: packageVersion() });
  t.same(doc.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' } });

  // swagger-parser does not look inside 3.1 Schema Objects: each is checked here as what 3.1 says
  // it is, JSON Schema 2020-12, against its meta-schema and compiled by Ajv in strict mode (an
  // unknown or misplaced keyword fails), with $refs to the components resolved.
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true, validateFormats: false });
  const asDefs = (v: unknown) => JSON.parse(JSON.stringify(v).replaceAll('"#/components/schemas/', '"#/$defs/'));
  const defs = asDefs(doc.components.schemas);
  const objects = schemaObjects(doc);
  t.ok(objects.length > 100, `${objects.length} Schema Objects`);
  for (const [where, schema] of objects) {
    t.ok(ajv.validateSchema(schema), `${where} is JSON Schema 2020-12: ${ajv.errorsText(ajv.errors)}`);
    t.doesNotThrow(() => ajv.compile({ ...asDefs(schema), $defs: defs }), `${where} compiles strictly`);
  }

  for (const [method, url, access] of ROUTES) {
    const path = openApiPath(url);
    const op = doc.paths[path]?.[method.toLowerCase()];
    t.ok(op, `${method} ${path} is listed`);
    if (!op) continue;
    t.ok(op.summary, `${path} has a summary`);
    t.ok(op.responses && Object.keys(op.responses).some((s) => /^2/.test(s)), `${method} ${path} documents its success`);
    for (const name of path.match(/\{(\w+)\}/g) ?? []) {
      t.ok(op.parameters?.some((p: { in: string; name: string; required: boolean }) => p.in === 'path' && `{${p.name}}` === name && p.required), `${path} declares ${name}`);
    }
    t.equal(op['x-pinwave-access'], access, `${method} ${path}: ${access}`);
    if (access === 'public') t.notOk(op.security, `${path} needs no token`);
    else {
      t.same(op.security, [{ bearer: [] }], `${path} needs a bearer token`);
      t.match(op.description, new RegExp(`Role: ${access} or above\\.$`));
    }
  }
  const listed = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p}`));
  t.same(listed.sort(), ROUTES.map(([m, u]) => `${m} ${openApiPath(u)}`).sort(), 'no route beyond those');
});

t.test('the routes serve what the document describes', async (t) => {
  const a = await apiHarness(t);
  const doc = (await a.call('GET', '/docs/json', { as: null })).json();
  const refs = new Set([...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]));
  t.ok(refs.size >= 8, 'the shared shapes are referenced');
  for (const ref of refs) t.ok(ref.startsWith('#/components/schemas/') && doc.components.schemas[ref.slice(21)], `${ref} resolves`);
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: 'openapi', $defs: JSON.parse(JSON.stringify(doc.components.schemas).replaceAll('"#/components/schemas/', '"openapi#/$defs/')) });
  const check = (name: string, value: unknown) => {
    const validate = ajv.getSchema(`openapi#/$defs/${name}`)!;
    t.ok(validate(value), `${name} matches: ${ajv.errorsText(validate.errors)}`);
  };
  const sims = await fleet(a, 2);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  check('BundleDetail', b);
  const ro = (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: 1 }, { size: '100%' }], start: true } })).json();
  check('RolloutCreated', ro);
  await until(async () => (await a.call('GET', `/v1/rollouts/${ro.id}`)).json().waves[0].applied === 1, 5000, 'the first wave acks');
  check('Rollout', (await a.call('GET', `/v1/rollouts/${ro.id}`)).json());
  const applied = sims.find((s) => s.state.seq === 1)!;
  const detail = (await a.call('GET', `/v1/devices/${applied.id}`)).json();
  t.match(detail, { seq: 1, rollout: { id: ro.id, status: 'applied' }, history: [{ event: 'applied' }] });
  check('DeviceDetail', detail);
  for (const d of (await a.call('GET', '/v1/devices')).json().items) check('Device', d);
  for (const s of (await a.call('GET', '/v1/stuck?group=thermostats')).json().items) check('StuckDevice', s);
  for (const s of (await a.call('GET', '/v1/bundles')).json().items) check('Bundle', s);
  check('Error', (await a.call('GET', '/v1/devices/nope')).json());
});

t.test('/docs in a browser is a page for people: every operation with who may call it, its fields and limits; no script, nothing fetched', async (t) => {
  const a = await apiHarness(t);
  const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
  const r = await a.call('GET', '/docs', { as: null, headers: { accept: browser } });
  t.equal(r.statusCode, 200);
  t.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(r.headers.vary, 'Accept');
  const csp = String(r.headers['content-security-policy']);
  t.match(csp, /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*';/);
  const html = r.body;
  const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1];
  t.equal(csp.match(/'sha256-([^']+)'/)![1], createHash('sha256').update(style).digest('base64'), 'the CSP allows exactly its one style');
  t.match(html, /^<!doctype html><html lang="en">/);
  t.notMatch(html, /<script|<link|<img|<iframe|\son\w+=/i, 'no script, no external resource, no handler');
  t.notMatch(html, /(src|href)="(https?:)?\/\//i, 'nothing from another origin');
  t.match(html, /<title>pinwave API \d+\.\d+\.\d+<\/title>/);
  for (const [method, url, access] of ROUTES) {
    const path = openApiPath(url);
    const at = html.indexOf(`<span class="method m-${method.toLowerCase()}">${method}</span> <code>${path}</code>`);
    t.ok(at > 0, `${method} ${path} is on the page`);
    const section = html.slice(at, html.indexOf('</section>', at));
    t.match(section, access === 'public' ? /no token needed/ : new RegExp(`role <b>${access}</b> or above`), `${method} ${path}: ${access}`);
  }
  const create = html.slice(html.indexOf('<code>/v1/rollouts</code></h3><p class="summary">Create'));
  t.match(create, /<code>timeoutSeconds<\/code><\/td><td><div class="type">number, &gt; 0, ≤ 31536000<\/div><p>from the wave start to its deadline; default 3600<\/p>/, 'a field with its type, limits and description');
  t.match(create, /<code>bundle<\/code> <span class="req">required<\/span>/);
  t.match(create, /<code>onMiss<\/code><\/td><td><div class="type"><code>&quot;hold&quot;<\/code> \| <code>&quot;abort&quot;<\/code>/);
  t.match(html, /<div class="schema" id="schema-device"><h3>Device<\/h3>/, 'the shared schemas');
  t.match(html, /<a href="#schema-rolloutcreated">RolloutCreated<\/a>/, 'a reference links to its schema');
  t.equal((await a.call('GET', '/docs', { as: null, headers: { accept: 'text/html;q=0.5, application/json' } })).headers['content-type'], 'application/json; charset=utf-8', 'JSON preferred: JSON');
  t.equal((await a.call('GET', '/docs', { as: null, headers: { accept: 'text/html' } })).headers['content-type'], 'text/html; charset=utf-8');
});

t.test('the page escapes what the document says', async (t) => {
  const { html } = renderDocsPage({
    openapi: '3.1.0',
    info: { title: '<b>x</b>', version: '1"' },
    paths: { '/a/<x>': { get: { summary: '<img src=x onerror=alert(1)>', description: 'a `<code>` & more', responses: { 200: { description: '<i>ok</i>' } } } } },
  });
  t.notMatch(html, /<img|<b>x|<i>ok/);
  t.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
  t.match(html, /<code>&lt;code&gt;<\/code> &amp; more/);
  t.match(html, /<code>\/a\/&lt;x&gt;<\/code>/);
});

t.test('prefersHtml follows the Accept header: the most specific range decides, ties keep JSON', async (t) => {
  t.notOk(prefersHtml(undefined));
  t.notOk(prefersHtml('*/*'));
  t.notOk(prefersHtml('application/json'));
  t.ok(prefersHtml('text/html'));
  t.ok(prefersHtml('text/*'));
  t.ok(prefersHtml('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'));
  t.notOk(prefersHtml('text/html;q=0, */*'), 'html refused');
  t.notOk(prefersHtml('text/html;q=0.5, application/json;q=0.5'), 'a tie');
  t.ok(prefersHtml('text/html;q=0.6, application/*;q=0.5'));
  t.notOk(prefersHtml('text/html;q=abc'), 'an unreadable q counts as 0');
});
