// A rollback passes the approval gate as a recorded decision (docs/architecture.md §6, §10) because
// what it sends is fixed: the previous bundle's pins, or the manifests' initial pins. A rollback
// that names its bundle (`bundle`, for a gateway without a signing key) is taken only when that
// bundle carries those pins; any other bundle would ride the rollback's pass past two-person
// approval, so it is refused and has to go out as a rollout of its own.
import t from 'tap';
import { apiHarness, API_TOKENS, type ApiHarness } from '../../fixtures/http.ts';
import { fleet, pin, until } from '../../fixtures/gateway.ts';

const POLICY = { removePin: 2, addPin: 1 };
// The harness's manifest ships api.example.com:443 with pins "old" and "backup".
const adding = [{ host: 'api.example.com', pins: [pin('old'), pin('backup'), pin('new')] }];
const get = async (a: ApiHarness, id: string) => (await a.call('GET', `/v1/rollouts/${id}`, { as: 'viewer' })).json();

t.test('a rollback with a bundle of other pins is refused; one with the pins it restores is taken', async (t) => {
  const a = await apiHarness(t, { tokens: API_TOKENS }, { approval: POLICY });
  const sims = await fleet(a, 3);
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  await Promise.all(sims.map((s) => s.connect()));
  const bundle = async (pins: unknown) => (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins } })).json();

  const add = await bundle(adding);
  const ro = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: add.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }], start: true } })).json();
  t.equal(ro.state, 'running', 'adding a pin needs no second operator');
  await until(async () => (a.gw.tick(), (await get(a, ro.id)).state === 'completed'), 5000, 'the rollout completes');

  // Removes "old" and "new", which every device holds now: a rollout of it would wait for a second operator.
  const evil = await bundle([{ host: 'api.example.com', pins: [pin('evil'), pin('backup')] }]);
  const direct = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: evil.id, target: { group: 'thermostats' }, start: true } })).json();
  t.match(direct, { state: 'pending', approval: { needed: true } }, 'as a rollout it waits for approval');
  t.equal((await a.call('POST', `/v1/rollouts/${direct.id}/abort`, { as: 'operator' })).statusCode, 200, 'and is aborted');

  const rb = await a.call('POST', `/v1/rollouts/${ro.id}/rollback`, { as: 'operator', body: { bundle: evil.id } });
  t.equal(rb.statusCode, 409, rb.body.slice(0, 300));
  t.match(rb.json(), { code: 'PW_INVALID_STATE', message: new RegExp(`${evil.id}.*does not carry the pins a rollback of ${ro.id} restores`), details: { pins: [{ host: 'api.example.com', port: 443, pins: [pin('old'), pin('backup')] }] } });
  t.equal((await get(a, ro.id)).rolledBackBy, undefined, 'nothing was rolled back');
  t.notOk(sims.some((s) => s.state.endpoints[0].pins.includes(pin('evil').slice(7))), 'no device got the other pins');

  // The pins it restores, in another order: taken.
  const restore = await bundle([{ host: 'api.example.com', pins: [pin('backup'), pin('old')] }]);
  const ok = await a.call('POST', `/v1/rollouts/${ro.id}/rollback`, { as: 'operator', body: { bundle: restore.id } });
  t.equal(ok.statusCode, 201, ok.body.slice(0, 300));
  t.match(ok.json().rollback, { state: 'running', bundle: { id: restore.id }, approval: { passedBy: 'rollback' } });
});
