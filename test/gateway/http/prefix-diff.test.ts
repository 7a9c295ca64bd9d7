// Ids by unique prefix on every route that takes one (404 none, 409 naming the candidates, 400
// under 8 characters), a bundle's pins against its group's baseline, and resume `for`.
import t from 'tap';
import { apiHarness, type ApiHarness } from '../../fixtures/http.ts';
import { fleet, pin, until } from '../../fixtures/gateway.ts';

const pins = (a: string, b = 'backup') => [{ host: 'api.example.com', pins: [pin(a), pin(b)] }];
const bundle = async (a: ApiHarness, p = pins('new')) => (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: p } })).json();

t.test('a bundle id may be a unique prefix of 8+ hex digits: GET, raw, and rollout create', async (t) => {
  const a = await apiHarness(t);
  await fleet(a, 2);
  const b = await bundle(a);
  const got = await a.call('GET', `/v1/bundles/${b.id.slice(0, 8)}`, { as: 'viewer' });
  t.equal(got.statusCode, 200);
  t.equal(got.json().id, b.id);
  t.equal((await a.call('GET', `/v1/bundles/${b.id.slice(0, 10)}/raw`)).rawPayload.length, b.size);
  const short = await a.call('GET', `/v1/bundles/${b.id.slice(0, 7)}`);
  t.equal(short.statusCode, 400);
  t.match(short.json(), { code: 'PW_INVALID', message: `bundle id "${b.id.slice(0, 7)}" is neither a bundle id nor a prefix of at least 8 characters` });
  const none = b.id.startsWith('0') ? 'ffffffff' : '00000000';
  t.match((await a.call('GET', `/v1/bundles/${none}`)).json(), { statusCode: 404, code: 'PW_NOT_FOUND', message: `no bundle "${none}"` });

  const ro = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id.slice(0, 8), target: { group: 'thermostats' } } });
  t.equal(ro.statusCode, 201, ro.body);
  t.equal(ro.json().bundle.id, b.id, 'the rollout holds the whole id');
});

t.test('an ambiguous bundle prefix is 409 naming the candidates', async (t) => {
  const a = await apiHarness(t);
  const real = await bundle(a);
  const stored = await a.gw.store.getBundle(real.id);
  // Two records whose ids share 8 digits (real ids are SHA-256 and never would, by chance).
  const ids = ['deadbeef' + '0'.repeat(56), 'deadbeef' + '1'.repeat(56)];
  for (const id of ids) await a.gw.store.apply([{ type: 'bundle.put', bundle: { ...stored!, id } }]);
  const r = await a.call('GET', '/v1/bundles/deadbeef');
  t.equal(r.statusCode, 409);
  t.match(r.json(), { code: 'PW_AMBIGUOUS', message: `bundle id prefix "deadbeef" is ambiguous: it starts ${ids[0]}, ${ids[1]}; give more characters`, details: { candidates: ids } });
  const create = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: 'deadbeef', target: { group: 'thermostats' } } });
  t.equal(create.statusCode, 409, 'rollout create too');
  t.equal((await a.call('GET', '/v1/bundles/deadbeef1')).json().id, ids[1], 'one more digit settles it');
});

t.test('a rollout id may be a unique prefix of 8+ characters: show, actions, stuck and pin failures; ambiguity names them', async (t) => {
  const a = await apiHarness(t);
  await fleet(a, 2, 'th');
  await fleet(a, 2, 'lk', () => ({}), 'locks');
  const b1 = await bundle(a);
  const b2 = (await a.call('POST', '/v1/bundles', { body: { group: 'locks', pins: pins('lock') } })).json();
  const r1 = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b1.id, target: { group: 'thermostats' } } })).json();
  const r2 = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b2.id, target: { group: 'locks' } } })).json();
  t.equal((await a.call('GET', '/v1/rollouts/r-thermostats')).json().id, r1.id);
  t.equal((await a.call('GET', '/v1/rollouts/r-thermo')).json().id, r1.id, '8 characters, only one starts so');
  const short = await a.call('GET', '/v1/rollouts/r-therm');
  t.equal(short.statusCode, 400, 'under 8 characters');
  t.match(short.json().message, /^rollout id "r-therm" is neither a rollout id nor a prefix of at least 8 characters$/);
  await fleet(a, 1, 'lz', () => ({}), 'locks');
  const b3 = (await a.call('POST', '/v1/bundles', { body: { group: 'locks', pins: pins('lock3') } })).json();
  const r3 = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b3.id, target: { devices: ['lz-0000'] } } })).json();
  t.match(r3.id, /^r-locks-2-/);
  const two = await a.call('GET', '/v1/rollouts/r-locks-');
  t.equal(two.statusCode, 409);
  t.match(two.json(), { code: 'PW_AMBIGUOUS', details: { candidates: [r2.id, r3.id].sort() } });
  t.match(two.json().message, `rollout id prefix "r-locks-" is ambiguous: it starts ${[r2.id, r3.id].sort().join(', ')}; give more characters`);
  t.equal((await a.call('GET', '/v1/rollouts/r-locks-1')).json().id, r2.id);
  t.equal((await a.call('GET', '/v1/rollouts/r-nothing-here')).statusCode, 404);

  const started = await a.call('POST', `/v1/rollouts/${r1.id.slice(0, 15)}/start`, { as: 'operator' });
  t.equal(started.statusCode, 200, started.body);
  t.equal(started.json().id, r1.id);
  t.equal((await a.call('GET', `/v1/stuck?rollout=${r1.id.slice(0, 15)}`)).statusCode, 200);
  t.equal((await a.call('GET', `/v1/telemetry/pin-failures?rollout=${r1.id.slice(0, 15)}`)).statusCode, 200);
  t.equal((await a.call('GET', '/v1/telemetry/pin-failures?rollout=r-none-1-x')).statusCode, 404, 'a rollout that does not exist is not an empty list');
  t.equal((await a.call('POST', '/v1/rollouts/r-locks-/abort', { as: 'operator' })).statusCode, 409, 'an action on an ambiguous prefix does nothing');
  t.equal((await a.call('GET', `/v1/rollouts/${r2.id}`)).json().state, 'pending');
});

t.test("GET /v1/bundles/:id: the bundle's pins against the group's baseline once a rollout completed", async (t) => {
  const a = await apiHarness(t);
  const sims = await fleet(a, 2);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b1 = await bundle(a, pins('one', 'backup'));
  const first = (await a.call('GET', `/v1/bundles/${b1.id}`)).json();
  t.same(first.diff, { against: { kind: 'none' }, endpoints: [{ host: 'api.example.com', port: 443, change: 'added', added: [pin('one'), pin('backup')], removed: [], kept: [] }] });
  const ro = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b1.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true } })).json();
  await until(async () => (a.gw.tick(), (await a.call('GET', `/v1/rollouts/${ro.id}`)).json().state === 'completed'), 5000, 'completion');
  const b2 = await bundle(a, [...pins('two', 'backup'), { host: 'mqtt.example.com', port: 8883, pins: [pin('m1'), pin('m2')] }]);
  const d = (await a.call('GET', `/v1/bundles/${b2.id}`, { as: 'viewer' })).json().diff;
  t.same(d, {
    against: { kind: 'baseline', bundleId: b1.id, seq: 1 },
    endpoints: [
      { host: 'api.example.com', port: 443, change: 'changed', added: [pin('two')], removed: [pin('one')], kept: [pin('backup')] },
      { host: 'mqtt.example.com', port: 8883, change: 'added', added: [pin('m1'), pin('m2')], removed: [], kept: [] },
    ],
  });
  t.same((await a.call('GET', `/v1/bundles/${b1.id}`)).json().diff.endpoints[0].change, 'unchanged', 'the baseline against itself');
});

t.test('resume `for`: remaining changes the held wave and every later one; anything else is a 400', async (t) => {
  const a = await apiHarness(t);
  await fleet(a, 10);
  const b = await bundle(a);
  const ro = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: 2 }, { size: 5 }, { size: '100%' }], start: true } })).json();
  await a.call('POST', `/v1/rollouts/${ro.id}/pause`, { as: 'operator' });
  const bad = await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator', body: { failureThreshold: 0.5, for: 'all' } });
  t.equal(bad.statusCode, 400);
  t.match(bad.json().message, /body\/for must be one of "held", "remaining"/);
  const r = await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator', body: { failureThreshold: 0.5, for: 'remaining' } });
  t.equal(r.statusCode, 200, r.body);
  const v = r.json();
  t.same(v.waves.map((w: { thresholds: { failureThreshold: number } }) => w.thresholds.failureThreshold), [0.5, 0.5, 0.5]);
  t.same(v.waves.map((w: { number: number; index: number }) => [w.number, w.index]), [[1, 0], [2, 1], [3, 2]], 'waves carry their number from 1 beside their index from 0');
  t.match(v.decisions.at(-1), { action: 'resume', scope: 'remaining', actor: 'olga' });
  await a.call('POST', `/v1/rollouts/${ro.id}/pause`, { as: 'operator' });
  const held = (await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator', body: { ackThreshold: 0.5 } })).json();
  t.same(held.waves.map((w: { thresholds: { ackThreshold: number } }) => w.thresholds.ackThreshold), [0.5, 0.95, 0.95], 'held by default');
  t.match(held.decisions.at(-1), { scope: 'held' });
});
