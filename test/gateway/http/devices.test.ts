// /v1/devices: provisioning all or nothing, the device shape (never its token hash), lookup with
// history and telemetry, token rotation and revocation, over fastify inject.
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';
import { pin, until } from '../../fixtures/gateway.ts';

const devices = (n: number, prefix = 'th', group = 'thermostats') => Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, group, model: 'th-100', firmware: '1.0.0' }));

t.test('provisioning returns each token once, with 201; the devices list in id order without token hashes', async (t) => {
  const a = await apiHarness(t);
  const r = await a.call('POST', '/v1/devices', { body: { devices: devices(3) } });
  t.equal(r.statusCode, 201);
  t.equal(r.headers['cache-control'], 'no-store', 'no cache on the way keeps the tokens');
  const body = r.json();
  t.same(body.devices.map((d: { id: string }) => d.id), ['th-0', 'th-1', 'th-2']);
  t.ok(body.devices.every((d: { token: string }) => /^[A-Za-z0-9_-]{43}$/.test(d.token)), 'tokens are 43 characters of base64url');

  const list = await a.call('GET', '/v1/devices', { as: 'viewer' });
  t.equal(list.statusCode, 200);
  const page = list.json();
  t.equal(page.next, null);
  t.same(page.items.map((d: { id: string }) => d.id), ['th-0', 'th-1', 'th-2']);
  t.match(page.items[0], { id: 'th-0', group: 'thermostats', model: 'th-100', firmware: '1.0.0', seq: null, bundle: null, connected: false, lastSeen: null, state: 'never_connected', revokedAt: null });
  t.notOk(list.body.includes('tokenHash') || list.body.includes('sha256:') || list.body.includes('$7$'), 'no token hash goes out');
  t.notOk(list.body.includes(body.devices[0].token), 'no token goes out twice');
});

t.test('a device list pages with limit and cursor, and filters by group, model and seq', async (t) => {
  const a = await apiHarness(t);
  await a.call('POST', '/v1/devices', { body: { devices: [...devices(5), ...devices(2, 'lk', 'locks').map((d) => ({ ...d, model: 'lk-1' }))] } });
  const first = (await a.call('GET', '/v1/devices?limit=2&group=thermostats')).json();
  t.same(first.items.map((d: { id: string }) => d.id), ['th-0', 'th-1']);
  t.equal(first.next, 'th-1');
  const second = (await a.call('GET', `/v1/devices?limit=2&group=thermostats&cursor=${first.next}`)).json();
  t.same(second.items.map((d: { id: string }) => d.id), ['th-2', 'th-3']);
  const last = (await a.call('GET', `/v1/devices?limit=2&group=thermostats&cursor=${second.next}`)).json();
  t.same(last.items.map((d: { id: string }) => d.id), ['th-4']);
  t.equal(last.next, null);
  t.same((await a.call('GET', '/v1/devices?model=lk-1')).json().items.map((d: { id: string }) => d.id), ['lk-0', 'lk-1']);
  t.equal((await a.call('GET', '/v1/devices?seq=none')).json().items.length, 7, 'seq=none: never reported');
  t.equal((await a.call('GET', '/v1/devices?seq=3')).json().items.length, 0);
  const bad = await a.call('GET', '/v1/devices?limit=1001');
  t.equal(bad.statusCode, 400);
  t.match(bad.json(), { code: 'PW_INVALID', message: 'querystring/limit must be <= 1000' });
});

t.test('an id that exists already is refused with 409 naming it, and nothing of the call is stored', async (t) => {
  const a = await apiHarness(t);
  await a.call('POST', '/v1/devices', { body: { devices: devices(2) } });
  const r = await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'new-1', group: 'thermostats' }, { id: 'th-1', group: 'thermostats' }] } });
  t.equal(r.statusCode, 409);
  t.match(r.json(), { statusCode: 409, error: 'Conflict', code: 'PW_CONFLICT', message: /th-1/, details: { ids: ['th-1'] } });
  t.equal((await a.call('GET', '/v1/devices/new-1')).statusCode, 404, 'the rest of the call was not stored');
  const twice = await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'x-1', group: 'g' }, { id: 'x-1', group: 'g' }] } });
  t.equal(twice.statusCode, 400);
  t.match(twice.json().message, /devices\[1\]\.id: "x-1" appears twice/);
});

t.test('10,000 devices fit in one provisioning call, every field at its longest; 10,001 are refused naming the limit', async (t) => {
  const a = await apiHarness(t);
  const long = (s: string) => s.padEnd(64, 'x');
  const many = Array.from({ length: 10_000 }, (_, i) => ({ id: long(`meter-${String(i).padStart(5, '0')}-`), group: long('meters-'), model: long('mt-200-'), firmware: long('2.14.1-') }));
  const body = JSON.stringify({ devices: many });
  t.ok(body.length > 3_000_000, `the worst case is ${body.length} bytes`);
  const r = await a.call('POST', '/v1/devices', { body, headers: { 'content-type': 'application/json' } });
  t.equal(r.statusCode, 201);
  t.equal(r.json().devices.length, 10_000);
  const over = await a.call('POST', '/v1/devices', { body: { devices: [...many.slice(0, 9_999).map((d, i) => ({ id: `m-${i}`, group: 'g' })), { id: 'one-more', group: 'g' }, { id: 'two-more', group: 'g' }] } });
  t.equal(over.statusCode, 400);
  t.equal(over.json().message, 'body/devices must NOT have more than 10000 items');
});

t.test('a device shows its state, seq, last seen, rollout history and recent telemetry', async (t) => {
  const a = await apiHarness(t);
  const { devices: [d] } = (await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }] } })).json();
  const sim = a.device('th-1', d.token);
  await sim.connect();
  t.teardown(() => sim.disconnect());
  const bundle = (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const rollout = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: bundle.id, target: { devices: ['th-1'] }, waves: [{ size: '100%' }], start: true } })).json();
  await until(async () => (await a.call('GET', '/v1/devices/th-1')).json().seq === 1, 5000, 'the ack');
  sim.recordHandshake('api.example.com', 443, [pin('evil')]);
  await sim.flushTelemetry();
  await until(async () => (await a.call('GET', '/v1/devices/th-1')).json().telemetry.length === 1, 5000, 'the report');

  const r = await a.call('GET', '/v1/devices/th-1', { as: 'viewer' });
  t.equal(r.statusCode, 200);
  const dev = r.json();
  t.match(dev, { id: 'th-1', connected: true, state: 'connected', seq: 1, bundle: bundle.id, lastSeen: a.clock.t });
  t.match(dev.rollout, { id: rollout.id, status: 'failing', wave: 0 });
  t.same(dev.history.map((h: { event: string }) => h.event), ['applied'], 'the ack; the send is in the rollout record');
  t.match(dev.history[0], { rolloutId: rollout.id, bundleId: bundle.id, seq: 1 });
  t.match(dev.telemetry[0], { hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: [pin('evil')], rolloutId: rollout.id });
  t.notOk(r.body.includes('tokenHash'));
});

t.test('rotating a token returns a new one that works, and the old one stops working (admin only)', async (t) => {
  const a = await apiHarness(t);
  const { devices: [d] } = (await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats' }] } })).json();
  t.equal((await a.call('POST', '/v1/devices/th-1/token', { as: 'operator' })).statusCode, 403);
  const r = await a.call('POST', '/v1/devices/th-1/token', { headers: { 'content-type': 'application/json' } });
  t.equal(r.statusCode, 200, 'an empty JSON body is no body');
  t.equal(r.headers['cache-control'], 'no-store', 'no cache on the way keeps the new token');
  const { id, token } = r.json();
  t.equal(id, 'th-1');
  t.not(token, d.token);
  const old = a.device('th-1', d.token);
  await t.rejects(old.connect(), 'the old token is refused');
  await old.disconnect();
  const fresh = a.device('th-1', token);
  await fresh.connect();
  await fresh.disconnect();
  t.equal((await a.call('POST', '/v1/devices/nope/token')).statusCode, 404);
});

t.test('revoking disconnects the device and refuses it after; the shape says revoked', async (t) => {
  const a = await apiHarness(t);
  const { devices: [d] } = (await a.call('POST', '/v1/devices', { body: { devices: [{ id: 'th-1', group: 'thermostats' }] } })).json();
  const sim = a.device('th-1', d.token);
  await sim.connect();
  t.teardown(() => sim.disconnect());
  t.equal((await a.call('DELETE', '/v1/devices/th-1', { as: 'operator' })).statusCode, 403, 'operators do not revoke');
  const r = await a.call('DELETE', '/v1/devices/th-1');
  t.equal(r.statusCode, 200);
  t.match(r.json(), { id: 'th-1', state: 'revoked', connected: false, revokedAt: a.clock.t });
  await until(() => !a.gw.isConnected('th-1'), 5000, 'the disconnect');
  const revokedAt = a.clock.t;
  a.clock.t += 60_000;
  const again = await a.call('DELETE', '/v1/devices/th-1');
  t.equal(again.statusCode, 200, 'revoking is idempotent (README)');
  t.match(again.json(), { id: 'th-1', state: 'revoked', revokedAt }, "the first revocation's time stands");
  t.equal((await a.call('POST', '/v1/devices/th-1/token')).statusCode, 409, 'a revoked device gets no new token');
  t.match((await a.call('POST', '/v1/devices/th-1/token')).json().message, /revoked/);
  t.equal((await a.call('DELETE', '/v1/devices/nope')).statusCode, 404);
});
