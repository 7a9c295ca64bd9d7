// /healthz, /v1/info, /metrics (Prometheus text with HELP and TYPE) and /docs (the OpenAPI document
// generated from the route schemas: every route listed, and what the routes serve matches it).
import t from 'tap';
import { Ajv } from 'ajv';
import mqtt from 'mqtt';
import { apiHarness } from '../../fixtures/http.ts';
import { fleet, pin, until } from '../../fixtures/gateway.ts';
import { Exposition } from '../../../gateway/http/metrics.ts';
import { packageVersion } from '../../../gateway/http/info.ts';

/** The routes the API documents, exactly. */
const ROUTES: Array<[string, string]> = [
  ['get', '/healthz'],
  ['get', '/v1/info'],
  ['post', '/v1/devices'],
  ['get', '/v1/devices'],
  ['get', '/v1/devices/{id}'],
  ['post', '/v1/devices/{id}/token'],
  ['delete', '/v1/devices/{id}'],
  ['post', '/v1/bundles'],
  ['get', '/v1/bundles'],
  ['get', '/v1/bundles/{id}'],
  ['get', '/v1/bundles/{id}/raw'],
  ['post', '/v1/rollouts'],
  ['get', '/v1/rollouts'],
  ['get', '/v1/rollouts/{id}'],
  ['post', '/v1/rollouts/{id}/start'],
  ['post', '/v1/rollouts/{id}/pause'],
  ['post', '/v1/rollouts/{id}/resume'],
  ['post', '/v1/rollouts/{id}/abort'],
  ['post', '/v1/rollouts/{id}/rollback'],
  ['get', '/v1/telemetry/pin-failures'],
  ['get', '/v1/stuck'],
  ['get', '/metrics'],
  ['get', '/docs'],
];

t.test('healthz answers ok without a token; info gives the MQTT URL, version, kid and SPKI PEM key', async (t) => {
  const a = await apiHarness(t);
  const h = await a.call('GET', '/healthz', { as: null });
  t.equal(h.statusCode, 200);
  t.same(h.json(), { status: 'ok' });
  const r = await a.call('GET', '/v1/info', { as: 'viewer' });
  t.equal(r.statusCode, 200);
  const info = r.json();
  t.same(info, { name: 'pinwave', version: packageVersion(), mqttUrl: a.gw.mqttUrl, mqttPorts: { tcp: a.gw.ports.tcp }, kid: a.gw.signing.kid, publicKey: a.gw.signing.publicPem });
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
    let m = /^# HELP (\w+) .+$/.exec(line);
    if (m) {
      helped.add(m[1]);
      continue;
    }
    m = /^# TYPE (\w+) (counter|gauge)$/.exec(line);
    if (m) {
      t.ok(helped.has(m[1]), `HELP before TYPE for ${m[1]}`);
      typed.set(m[1], m[2]);
      continue;
    }
    m = /^(\w+)(\{[a-z_]+="[^"\\\n]*"(?:,[a-z_]+="[^"\\\n]*")*\})? (\d+(?:\.\d+)?)$/.exec(line);
    t.ok(m, `a sample line: ${line}`);
    if (!m) continue;
    t.ok(typed.has(m[1]), `${m[1]} has a TYPE line`);
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
  for (const name of ['pinwave_connected_devices', 'pinwave_device_messages_received_total', 'pinwave_mqtt_messages_sent_total', 'pinwave_acks_total', 'pinwave_rollouts', 'pinwave_held_waves', 'pinwave_pin_failure_reports_total', 'pinwave_mqtt_connections_refused_total', 'pinwave_mqtt_acl_denied_total', 'pinwave_store_writes_total']) {
    t.ok(typed.has(name), `${name} is exposed`);
  }
});

t.test('label values are escaped as the exposition format requires', async (t) => {
  const text = new Exposition().add('x_total', 'counter', 'a \\ help\nline', [[{ reason: 'a"b\\c\nd' }, 1], [null, Number.NaN]]).toString();
  t.equal(text, '# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\nx_total{reason="a\\"b\\\\c\\nd"} 1\nx_total 0\n');
});

t.test('/docs is an OpenAPI 3 document listing every route, and the routes serve what it describes', async (t) => {
  const a = await apiHarness(t);
  const r = await a.call('GET', '/docs', { as: null });
  t.equal(r.statusCode, 200);
  const doc = r.json();
  t.match(doc.openapi, /^3\.\d+\.\d+$/);
  t.match(doc.info, { title: 'pinwave', version: packageVersion() });
  t.same(doc.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' } });
  for (const [method, path] of ROUTES) {
    const op = doc.paths[path]?.[method];
    t.ok(op, `${method.toUpperCase()} ${path} is listed`);
    if (!op) continue;
    t.ok(op.summary, `${path} has a summary`);
    t.ok(op.responses && Object.keys(op.responses).some((s) => /^2/.test(s)), `${method} ${path} documents its success`);
    for (const name of path.match(/\{(\w+)\}/g) ?? []) {
      t.ok(op.parameters?.some((p: { in: string; name: string; required: boolean }) => p.in === 'path' && `{${p.name}}` === name && p.required), `${path} declares ${name}`);
    }
    const open = ['/healthz', '/metrics', '/docs'].includes(path);
    t.equal(Boolean(op.security), !open, `${path} ${open ? 'is open' : 'needs a bearer token'}`);
  }
  const listed = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m} ${p}`));
  t.same(listed.sort(), ROUTES.map(([m, p]) => `${m} ${p}`).sort(), 'no route beyond those');

  // Every $ref resolves, and every component is a schema Ajv compiles (OpenAPI 3.0 `nullable` included).
  const refs = new Set([...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]));
  t.ok(refs.size >= 8, 'the shared shapes are referenced');
  for (const ref of refs) t.ok(ref.startsWith('#/components/schemas/') && doc.components.schemas[ref.slice(21)], `${ref} resolves`);
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addSchema({ ...doc, $id: 'openapi' });
  const check = (name: string, value: unknown) => {
    const validate = ajv.getSchema(`openapi#/components/schemas/${name}`)!;
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
