// Hostile input: malformed JSON, wrong types, huge bodies, odd ids, unknown fields, other media
// types. Each is refused with a 4xx error body naming what was wrong (never a 500), and nothing
// already stored changes: the store file is byte for byte what it was.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { pino } from 'pino';
import { join } from 'node:path';
import { apiHarness, TOKENS } from '../../fixtures/http.ts';
import { pin } from '../../fixtures/gateway.ts';
import { describeSchemaError, schemaErrorFormatter } from '../../../gateway/http/errors.ts';

type Case = { method: 'GET' | 'POST' | 'DELETE'; url: string; body?: string; type?: string; status: number; message?: RegExp };

const json = (v: unknown) => JSON.stringify(v);
const nested = (depth: number) => '{"devices":' + '['.repeat(depth) + ']'.repeat(depth) + '}';

t.test('hostile requests are refused with 4xx naming the problem, and nothing stored changes', async (t) => {
  const a = await apiHarness(t);
  await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats', model: 'th-100' }, { id: 'th-2', group: 'thermostats', model: 'th-100' }] } });
  const bundle = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const rollout = (await a.call('POST', '/v1/rollouts', { body: { bundle: bundle.id, target: { devices: ['th-1'] } } })).json();
  await a.gw.flush();
  // The whole data dir (journal, snapshots) but the lock, which holds no fleet data.
  const storeFiles = () => readdirSync(join(a.dir, 'data')).filter((f) => f !== 'pinwave.lock').sort().map((f) => `${f}\n${readFileSync(join(a.dir, 'data', f), 'latin1')}`).join('\n');
  const before = { file: storeFiles(), devices: (await a.call('GET', '/v1/devices')).body, device: structuredClone(await a.gw.getDevice('th-1')), rollout: (await a.call('GET', `/v1/rollouts/${rollout.id}`)).body };
  t.ok(before.file.includes('"th-1"'), 'the store files hold the fleet');

  const device = { id: 'th-9', group: 'thermostats' };
  const cases: Case[] = [
    // malformed JSON
    { method: 'POST', url: '/v1/devices', body: '{"devices": [', status: 400, message: /not valid JSON/ },
    { method: 'POST', url: '/v1/devices', body: json({ devices: [device] }) + 'garbage', status: 400, message: /not valid JSON/ },
    { method: 'POST', url: '/v1/devices', body: "{'devices': []}", status: 400, message: /not valid JSON/ },
    { method: 'POST', url: '/v1/devices', body: nested(50_000), status: 400 },
    { method: 'POST', url: '/v1/devices', body: '{"__proto__": {"role": "admin"}, "devices": []}', status: 400 },
    { method: 'POST', url: '/v1/devices', body: '{"constructor": {"prototype": {"x": 1}}, "devices": []}', status: 400 },
    // wrong types
    { method: 'POST', url: '/v1/devices', body: 'null', status: 400, message: /^body must be object$/ },
    { method: 'POST', url: '/v1/devices', body: '[]', status: 400, message: /^body must be object$/ },
    { method: 'POST', url: '/v1/devices', body: json({ devices: 'th-9' }), status: 400, message: /^body\/devices must be array$/ },
    { method: 'POST', url: '/v1/devices', body: json({ devices: [7] }), status: 400, message: /^body\/devices\/0 must be object$/ },
    { method: 'POST', url: '/v1/devices', body: json({ devices: [{ id: 9, group: null }] }), status: 400, message: /body\/devices\/0\/id must be string, body\/devices\/0\/group must be string/ },
    { method: 'POST', url: '/v1/devices', body: json({ devices: [device, { id: 'th-10', group: 'thermostats', model: 'x'.repeat(65) }] }), status: 400, message: /body\/devices\/1\/model must NOT have more than 64 characters/ },
    { method: 'POST', url: '/v1/bundles', body: json({ group: 'thermostats', pins: [{ host: 'api.example.com', port: '443', pins: [pin('a'), pin('b')] }] }), status: 400, message: /body\/pins\/0\/port must be integer/ },
    { method: 'POST', url: '/v1/bundles', body: json({ group: 'thermostats', pins: 'sha256/x' }), status: 400, message: /body\/pins must be array/ },
    { method: 'POST', url: '/v1/bundles', body: json({ group: 'thermostats', pins: [{ host: 'a.example', pins: [pin('a'), pin('b')] }], expiresIn: -1 }), status: 400, message: /body\/expiresIn/ },
    { method: 'POST', url: '/v1/rollouts', body: json({ bundle: bundle.id, target: 'thermostats' }), status: 400, message: /body\/target must be object/ },
    { method: 'POST', url: '/v1/rollouts', body: json({ bundle: bundle.id, target: { group: 'thermostats' }, start: 'yes' }), status: 400, message: /body\/start must be boolean/ },
    { method: 'POST', url: '/v1/rollouts', body: json({ bundle: bundle.id, target: { group: 'thermostats' }, waves: {} }), status: 400, message: /body\/waves must be array/ },
    { method: 'POST', url: `/v1/rollouts/${rollout.id}/resume`, body: json({ ackThreshold: '0.5' }), status: 400, message: /body\/ackThreshold must be number/ },
    { method: 'GET', url: '/v1/devices?limit=-1', status: 400, message: /querystring\/limit must be >= 1/ },
    { method: 'GET', url: '/v1/devices?limit=1e3x', status: 400, message: /querystring\/limit must be integer/ },
    // unknown fields
    { method: 'POST', url: '/v1/devices', body: json({ devices: [{ ...device, role: 'admin' }] }), status: 400, message: /body\/devices\/0 must NOT have unknown field "role"/ },
    { method: 'POST', url: '/v1/devices', body: json({ devices: [device], dryRun: true }), status: 400, message: /body must NOT have unknown field "dryRun"/ },
    { method: 'POST', url: '/v1/bundles', body: json({ group: 'thermostats', pins: [{ host: 'a.example', pins: [pin('a'), pin('b')], keyRotation: {} }] }), status: 400, message: /unknown field "keyRotation"/ },
    { method: 'POST', url: `/v1/rollouts/${rollout.id}/abort`, body: json({ reason: 'x', force: true }), status: 400, message: /unknown field "force"/ },
    { method: 'GET', url: '/v1/devices?admin=1', status: 400, message: /querystring must NOT have unknown field "admin"/ },
    // routes that take no body: one with fields is a slip to name, not a token rotated or a device revoked anyway
    { method: 'POST', url: '/v1/devices/th-1/token', body: json({ keepOld: true }), status: 400, message: /^body must NOT have unknown field "keepOld"$/ },
    { method: 'DELETE', url: '/v1/devices/th-1', body: json({ dryRun: true }), status: 400, message: /^body must NOT have unknown field "dryRun"$/ },
    // huge bodies
    { method: 'POST', url: '/v1/devices', body: json({ devices: [{ id: 'th-9', group: 'x'.repeat(5 * 1024 * 1024) }] }), status: 413, message: /too large/ },
    { method: 'POST', url: '/v1/bundles', body: json({ group: 'thermostats', pins: [], pad: 'x'.repeat(2 * 1024 * 1024) }), status: 413 },
    { method: 'POST', url: `/v1/rollouts/${rollout.id}/start`, body: json({ pad: 'x'.repeat(2 * 1024 * 1024) }), status: 413 },
    // odd ids
    { method: 'GET', url: '/v1/devices/..%2Fx', status: 400, message: /params\/id must match pattern/ },
    { method: 'GET', url: '/v1/devices/..', status: 404 },
    { method: 'GET', url: '/v1/devices/../x', status: 404 },
    { method: 'DELETE', url: '/v1/devices/%2e%2e', status: 404 },
    { method: 'DELETE', url: `/v1/devices/${'a'.repeat(200)}`, status: 400, message: /params\/id must NOT have more than 64 characters/ },
    { method: 'POST', url: `/v1/devices/${'a'.repeat(2000)}/token`, status: 414 },
    { method: 'GET', url: '/v1/devices/th-1%00', status: 400 },
    { method: 'GET', url: '/v1/devices/th-1%20', status: 400 },
    { method: 'GET', url: '/v1/devices/%C3%A9', status: 400 },
    { method: 'GET', url: '/v1/devices/__proto__', status: 404, message: /no device "__proto__"/ },
    { method: 'DELETE', url: '/v1/devices/constructor', status: 404 },
    { method: 'POST', url: '/v1/devices/hasOwnProperty/token', status: 404 },
    { method: 'GET', url: '/v1/bundles/..%2F..%2Fpinwave.json/raw', status: 400 },
    { method: 'GET', url: `/v1/rollouts/${rollout.id}%2F..`, status: 400 },
    { method: 'POST', url: '/v1/rollouts/__proto__/abort', status: 404 },
    // other media types
    { method: 'POST', url: '/v1/devices', body: 'devices=th-9', type: 'application/x-www-form-urlencoded', status: 415 },
    { method: 'POST', url: '/v1/devices', body: json({ devices: [device] }), type: 'text/plain', status: 415 },
  ];
  for (const c of cases) {
    const r = await a.app.inject({ method: c.method, url: c.url, payload: c.body, headers: { authorization: `Bearer ${TOKENS.admin}`, ...(c.body !== undefined && { 'content-type': c.type ?? 'application/json' }) } });
    const what = `${c.method} ${c.url.slice(0, 60)} ${c.body?.slice(0, 60) ?? ''}`;
    t.equal(r.statusCode, c.status, what);
    const e = r.json();
    t.equal(e.statusCode, c.status, `${what}: the body carries the status`);
    t.type(e.error, 'string');
    t.type(e.code, 'string');
    if (c.message) t.match(e.message, c.message, what);
  }

  t.equal(await a.call('POST', '/v1/devices', { as: null, body: { devices: [device] } }).then((r) => r.statusCode), 401);
  await a.gw.flush();
  t.equal((await a.call('GET', '/v1/devices')).body, before.devices, 'the device list is the same');
  t.same(await a.gw.getDevice('th-1'), before.device, 'a device record is the same');
  t.equal((await a.call('GET', `/v1/rollouts/${rollout.id}`)).body, before.rollout, 'the rollout is the same');
  t.equal(storeFiles(), before.file, 'the store files are byte for byte the same');
  t.equal((await a.call('GET', '/healthz', { as: null })).statusCode, 200, 'and the gateway still serves');
});

t.test('schema errors read as field and reason, and a long list is cut short', async (t) => {
  t.equal(describeSchemaError({ instancePath: '/devices/0', keyword: 'required', params: { missingProperty: 'group' } }, 'body'), 'body/devices/0 must have required field "group"');
  t.equal(describeSchemaError({ instancePath: '/mode', keyword: 'enum', params: { allowedValues: ['enforce', 'report-only'] } }, 'body'), 'body/mode must be one of "enforce", "report-only"');
  t.equal(describeSchemaError({ keyword: 'custom' }, 'querystring'), 'querystring fails custom');
  const many = Array.from({ length: 150 }, (_, i) => ({ instancePath: `/devices/${i}/id`, keyword: 'type', message: 'must be string' }));
  const err = schemaErrorFormatter(many, 'body') as Error & { details: { errors: string[] } };
  t.match(err.message, /^body\/devices\/0\/id must be string, .*body\/devices\/9\/id must be string, and 140 more$/);
  t.equal(err.details.errors.length, 100);
});

t.test('an unexpected failure is a 500 with a generic message; the detail goes to the log only', async (t) => {
  const lines: string[] = [];
  const a = await apiHarness(t, { logger: pino({ level: 'error' }, { write: (s: string) => void lines.push(s) }) });
  const listDevices = a.gw.listDevices;
  a.gw.listDevices = () => Promise.reject(new Error('disk on fire at /secret/path'));
  t.teardown(() => {
    a.gw.listDevices = listDevices;
  });
  const r = await a.call('GET', '/v1/devices');
  t.equal(r.statusCode, 500);
  t.same(r.json(), { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error', code: 'PW_INTERNAL' });
  t.match(lines.join(''), /disk on fire at \/secret\/path/);
  t.equal((await a.call('GET', '/v1/nothing-here', { as: null })).json().message, 'no route GET /v1/nothing-here');
});
