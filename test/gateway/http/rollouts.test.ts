// /v1/rollouts: creation behind pre-flight (422 naming the devices), the rollout shape wave by wave,
// operator actions with the caller's token name as the actor, and 409 naming the state that forbids one.
import t from 'tap';
import { apiHarness, type ApiHarness } from '../../fixtures/http.ts';
import { fleet, pin, until } from '../../fixtures/gateway.ts';

const pins = (label: string) => [{ host: 'api.example.com', pins: [pin(label), pin('backup')] }];

async function provisioned(a: ApiHarness, n: number, model = 'th-100', prefix = 'th') {
  const body = { devices: Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, group: 'thermostats', model })) };
  return (await a.call('POST', '/v1/devices', { body })).json().devices as Array<{ id: string; token: string }>;
}

/** `n` simulated devices of group thermostats, connected, disconnected at teardown. */
async function connected(t: { teardown(fn: () => unknown): void }, a: ApiHarness, n: number) {
  const sims = await fleet(a, n);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  return sims;
}

/** A one-wave rollout of `bundleId` to the group, started and ticked until it completed. */
async function completed(a: ApiHarness, bundleId: string) {
  const r = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: bundleId, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true } })).json();
  await until(async () => (a.gw.tick(), (await a.call('GET', `/v1/rollouts/${r.id}`)).json().state === 'completed'), 5000, `rollout ${r.id} completed`);
  return r;
}

const bundle = async (a: ApiHarness, label = 'new') => (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: pins(label) } })).json();

t.test('an operator creates and starts a rollout: 201 with the pre-flight result and the rollout shape', async (t) => {
  const a = await apiHarness(t);
  const devs = await provisioned(a, 4);
  const sims = devs.map((d) => a.device(d.id, d.token));
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b = await bundle(a);
  const r = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: 2, minDevices: 1 }, { size: '100%', timeoutSeconds: 60 }], onMiss: 'hold', start: true } });
  t.equal(r.statusCode, 201);
  const ro = r.json();
  t.match(ro, { id: /^r-thermostats-1-/, state: 'running', bundle: { id: b.id, seq: 1, group: 'thermostats' }, target: { group: 'thermostats' }, createdBy: 'olga', devices: 4, preflight: { ok: true, targeted: 4, problems: [] } });
  t.equal(ro.waves.length, 2);
  t.match(ro.waves[0], { state: 'active', size: 2, sent: 2, applied: 0, rejected: 0, failing: 0, unreachable: 0, timedOut: 0, ackRatio: 0, failureRatio: 0, rejectedByReason: {}, thresholds: { minDevices: 1, ackThreshold: 0.95 } });
  t.match(ro.waves[1], { state: 'pending', thresholds: { timeoutSeconds: 60 } });
  t.match(ro.decisions, [{ action: 'start', actor: 'olga' }]);

  await until(async () => (await a.call('GET', `/v1/rollouts/${ro.id}`, { as: 'viewer' })).json().waves[0].applied === 2, 5000, 'wave 0 acks');
  await until(async () => (a.gw.tick(), (await a.call('GET', `/v1/rollouts/${ro.id}`)).json().state === 'completed'), 5000, 'completion');
  const done = (await a.call('GET', `/v1/rollouts/${ro.id}`, { as: 'viewer' })).json();
  t.match(done.waves, [{ state: 'passed', applied: 2, ackRatio: 1 }, { state: 'passed', applied: 2, ackRatio: 1 }]);
  t.ok(done.decisions.some((d: { action: string; actor: string }) => d.action === 'complete' && d.actor === 'system'));
  t.equal((await a.call('POST', '/v1/rollouts', { as: 'viewer', body: { bundle: b.id, target: { group: 'thermostats' } } })).statusCode, 403, 'viewers do not create rollouts');
});

t.test('pre-flight refusal is 422 with the offending devices; nothing is created', async (t) => {
  const a = await apiHarness(t);
  a.gw.addManifest({ ...a.manifest, model: 'tiny-1', maxBundleBytes: 128 });
  await provisioned(a, 2);
  await provisioned(a, 3, 'tiny-1', 'tn');
  const b = await bundle(a);
  const r = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' } } });
  t.equal(r.statusCode, 422);
  const e = r.json();
  t.match(e, { statusCode: 422, error: 'Unprocessable Entity', code: 'PW_PREFLIGHT', message: /too_large/ });
  t.match(e.details, { ok: false, targeted: 5, problems: [{ code: 'too_large', devices: ['tn-0', 'tn-1', 'tn-2'], count: 3 }] });
  t.same((await a.call('GET', '/v1/rollouts')).json(), { items: [], next: null });
});

t.test('an action the state forbids is 409 naming the state; pause, resume with new thresholds, abort with a reason', async (t) => {
  const a = await apiHarness(t);
  await provisioned(a, 3);
  const b = await bundle(a);
  const ro = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { devices: ['th-0', 'th-1'] }, waves: [{ size: '100%' }] } })).json();
  t.equal(ro.state, 'pending');
  t.same(ro.target, { devices: ['th-0', 'th-1'] });
  const early = await a.call('POST', `/v1/rollouts/${ro.id}/pause`, { as: 'operator' });
  t.equal(early.statusCode, 409);
  t.match(early.json(), { statusCode: 409, error: 'Conflict', code: 'PW_INVALID_STATE', message: 'cannot pause a rollout that is pending' });

  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'viewer' })).statusCode, 403);
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'operator' })).json().state, 'running');
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/pause`, { as: 'operator', body: {} })).json().state, 'held');
  const badResume = await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator', body: { ackThreshold: 1.5, ackThreshhold: 0.5 } });
  t.equal(badResume.statusCode, 400);
  t.match(badResume.json().details.errors, ['body must NOT have unknown field "ackThreshhold"', 'body/ackThreshold must be <= 1']);
  const resumed = await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator', body: { ackThreshold: 0.5, timeoutSeconds: 120 } });
  t.equal(resumed.statusCode, 200);
  const rr = resumed.json();
  t.equal(rr.state, 'running');
  t.match(rr.waves[0].thresholds, { ackThreshold: 0.5, timeoutSeconds: 120 });
  t.match(rr.decisions.at(-1), { action: 'resume', actor: 'olga', thresholds: { ackThreshold: 0.5 } });
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'operator' })).statusCode, 409, 'a running rollout does not start again');

  const busy = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' } } });
  t.equal(busy.statusCode, 409, 'a device already in a running rollout');
  t.match(busy.json(), { code: 'PW_CONFLICT', message: `2 targeted devices are already in rollout ${ro.id}, which is running: th-0, th-1`, details: { devices: ['th-0', 'th-1'], rollouts: [{ id: ro.id, state: 'running', devices: 2 }] } });

  const aborted = await a.call('POST', `/v1/rollouts/${ro.id}/abort`, { as: 'operator', body: { reason: 'wrong pins' } });
  t.equal(aborted.statusCode, 200);
  t.match(aborted.json().decisions.at(-1), { action: 'abort', actor: 'olga', reason: 'wrong pins', waveFrom: 'active', waveTo: 'aborted' });
  t.match((await a.call('GET', `/v1/rollouts/${ro.id}`, { as: 'viewer' })).json().waves, [{ state: 'aborted', endedAt: a.clock.now() }], 'the wave in progress shows aborted, not active');
  t.match((await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator' })).json(), { statusCode: 409, message: 'cannot resume a rollout that is aborted' });
  t.match((await a.call('POST', `/v1/rollouts/${ro.id}/rollback`, { as: 'operator' })).json(), { statusCode: 409, message: `rollout ${ro.id} has not sent its bundle to any device: nothing to roll back` }, 'an aborted rollout that reached no device has nothing to roll back');
  t.equal((await a.call('POST', '/v1/rollouts/r-none-1-x/start', { as: 'operator' })).statusCode, 404);
  t.equal((await a.call('GET', '/v1/rollouts/r-none-1-x')).statusCode, 404);
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'operator', body: { now: true } })).statusCode, 400, 'start takes no fields');
});

t.test('rollback: a new bundle of the previous pins to every device reached, this rollout aborted', async (t) => {
  const a = await apiHarness(t);
  const sims = await connected(t, a, 3);
  const b1 = await bundle(a, 'one');
  await completed(a, b1.id);
  const b2 = await bundle(a, 'two');
  const r2 = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b2.id, target: { group: 'thermostats' }, waves: [{ size: '100%', soakSeconds: 3600 }], start: true } })).json();
  t.equal(r2.previousBundle, b1.id);
  await until(async () => (await a.call('GET', `/v1/rollouts/${r2.id}`)).json().waves[0].applied === 3, 5000, 'the second rollout applied');
  const r = await a.call('POST', `/v1/rollouts/${r2.id}/rollback`, { as: 'operator' });
  t.equal(r.statusCode, 201);
  const { aborted, rollback } = r.json();
  t.match(aborted, { id: r2.id, state: 'aborted', waves: [{ state: 'aborted' }] });
  t.match((await a.call('GET', `/v1/rollouts/${r2.id}`)).json().waves, [{ state: 'aborted' }], 'the rolled-back wave shows aborted, not soaking');
  t.match(rollback, { state: 'running', rollbackOf: r2.id, createdBy: 'olga', bundle: { seq: 3, group: 'thermostats' } });
  t.same([...rollback.target.devices].sort(), ['th-0000', 'th-0001', 'th-0002']);
  const restored = (await a.call('GET', `/v1/bundles/${rollback.bundle.id}`)).json();
  t.same(restored.endpoints[0].pins, [pin('one'), pin('backup')], 'the pins the group ran before');
  await until(() => sims.every((s) => s.state.seq === 3), 5000, 'devices back on the old pins');
});

t.test("a rollout of a bundle whose seq is not above its devices' is 422 naming both seqs; forced with a reason it is created and the decision recorded", async (t) => {
  const a = await apiHarness(t);
  await connected(t, a, 3);
  const older = await bundle(a, 'one');
  const r2 = await completed(a, (await bundle(a, 'two')).id);

  const r = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: older.id, target: { group: 'thermostats' } } });
  t.equal(r.statusCode, 422, 'devices refuse a seq not above theirs: such a rollout could only fail');
  t.match(r.json(), {
    code: 'PW_PREFLIGHT',
    message: 'bundle seq 1 is not above what 3 devices report (seq 2): they would reject it as replayed',
    details: { ok: false, problems: [{ code: 'ahead', devices: ['th-0000', 'th-0001', 'th-0002'], count: 3 }] },
  });
  t.same((await a.call('GET', '/v1/rollouts')).json().items.map((x: { id: string }) => x.id), [r2.id], 'nothing created');

  const forced = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: older.id, target: { devices: ['th-0000'] }, force: true, reason: 'th-0000 was reflashed' } });
  t.equal(forced.statusCode, 201);
  t.match(forced.json(), { state: 'pending', preflight: { ok: false, forced: { by: 'olga', reason: 'th-0000 was reflashed' } } });
  t.match(forced.json().decisions, [{ action: 'force', actor: 'olga', reason: 'th-0000 was reflashed', findings: [/^bundle seq 1 is not above what 1 device reports \(seq 2\)/] }]);
});

t.test('rollouts list oldest first in pages, by state and group; a wave plan default comes from the server options', async (t) => {
  const a = await apiHarness(t, { waveDefaults: [{ size: '50%', ackThreshold: 0.9 }, { size: '100%' }] });
  await provisioned(a, 4);
  const b = await bundle(a);
  const ids: string[] = [];
  for (const dev of ['th-0', 'th-1', 'th-2']) {
    a.clock.advance(1000);
    ids.push((await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { devices: [dev] } } })).json().id);
  }
  await a.call('POST', `/v1/rollouts/${ids[1]}/abort`, { as: 'operator' });
  const first = (await a.call('GET', '/v1/rollouts?limit=2', { as: 'viewer' })).json();
  t.same(first.items.map((r: { id: string }) => r.id), ids.slice(0, 2));
  t.equal(first.next, ids[1]);
  const rest = (await a.call('GET', `/v1/rollouts?limit=2&cursor=${first.next}`)).json();
  t.same(rest.items.map((r: { id: string }) => r.id), [ids[2]]);
  t.equal(rest.next, null);
  t.same((await a.call('GET', '/v1/rollouts?state=aborted')).json().items.map((r: { id: string }) => r.id), [ids[1]]);
  t.equal((await a.call('GET', '/v1/rollouts?group=locks')).json().items.length, 0);
  t.equal((await a.call('GET', '/v1/rollouts?cursor=r-unknown')).statusCode, 400);
  t.equal((await a.call('GET', '/v1/rollouts?state=sleeping')).statusCode, 400);

  const planned = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { devices: ['th-3'] } } })).json();
  t.same(planned.waves.map((w: { plannedSize: string }) => w.plannedSize), ['50%'], 'one device: 50% rounds up to it, and the 100% wave gives nobody new');
  const two = (await a.call('GET', `/v1/rollouts/${ids[0]}`)).json();
  t.equal(two.waves[0].thresholds.ackThreshold, 0.9, 'the server default plan applied');
});

t.test('an invalid wave plan is a 400 naming the wave; an unknown bundle is a 404', async (t) => {
  const a = await apiHarness(t);
  await provisioned(a, 2);
  const b = await bundle(a);
  const down = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '50%' }, { size: '10%' }] } });
  t.equal(down.statusCode, 400);
  t.match(down.json(), { code: 'PW_INVALID_PLAN', message: /waves\[1\]\.size must not be below waves\[0\]\.size/ });
  const gone = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: 'a'.repeat(64), target: { group: 'thermostats' } } });
  t.equal(gone.statusCode, 404);
  const both = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats', devices: ['th-0'] } } });
  t.equal(both.statusCode, 400);
  t.match(both.json().message, /body\/target must NOT have more than 1 properties/);
  const none = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { devices: ['th-0', 'ghost'] } } });
  t.equal(none.statusCode, 400);
  t.match(none.json(), { message: /target\.devices: unknown or revoked device: ghost/, details: { devices: ['ghost'] } });
});

t.test('validation before state: a malformed plan is 400 naming the field whatever rollout the target is in; a conflict names the real state', async (t) => {
  const a = await apiHarness(t);
  await provisioned(a, 3);
  const b = await bundle(a);
  const pending = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' } } })).json();
  t.equal(pending.state, 'pending');
  const create = (body: object) => a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' }, ...body } });

  const over = await create({ waves: [{ size: '150%' }] });
  t.equal(over.statusCode, 400, 'not 409: the plan is wrong before anything is in the way');
  t.match(over.json(), { code: 'PW_INVALID_PLAN', message: 'waves[0].size must be above 0% and at most 100%, got "150%"' });
  const shrinking = await create({ waves: [{ size: 3 }, { size: '50%' }] });
  t.equal(shrinking.statusCode, 400, 'a plan wrong only against the target size is 400 too');
  t.match(shrinking.json().message, /^waves\[1\]\.size "50%" \(2 of 3 devices\) must not be below waves\[0\]\.size 3/);
  const unknownBundle = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: 'b'.repeat(64), target: { group: 'thermostats' }, waves: [{ size: '0%' }] } });
  t.equal(unknownBundle.statusCode, 400, 'a malformed plan is 400 before the bundle is even looked up');
  t.equal((await create({ waves: [{ size: '100%', ackTreshold: 1 }] })).statusCode, 400, 'a misspelt threshold');

  const busy = await create({ waves: [{ size: '100%' }] });
  t.equal(busy.statusCode, 409);
  t.match(busy.json(), { code: 'PW_CONFLICT', message: `3 targeted devices are already in rollout ${pending.id}, which is pending: th-0, th-1, th-2`, details: { rollouts: [{ id: pending.id, state: 'pending', devices: 3 }] } });
  await a.call('POST', `/v1/rollouts/${pending.id}/start`, { as: 'operator' });
  await a.call('POST', `/v1/rollouts/${pending.id}/pause`, { as: 'operator' });
  t.match((await create({})).json(), { statusCode: 409, message: new RegExp(`already in rollout ${pending.id}, which is held:`) });
  t.match((await create({ waves: [{ size: '150%' }] })).json(), { statusCode: 400, code: 'PW_INVALID_PLAN' }, 'still 400 while held');

  // Two rollouts in the way: each is named with its state.
  await a.call('POST', `/v1/rollouts/${pending.id}/abort`, { as: 'operator' });
  const one = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { devices: ['th-0'] } } })).json();
  const two = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { devices: ['th-1', 'th-2'] }, start: true } })).json();
  const both = (await create({})).json();
  t.equal(both.statusCode, 409);
  t.match(both.message, new RegExp(`^3 targeted devices are already in other rollouts: (1 in ${one.id} \\(pending\\), 2 in ${two.id} \\(running\\)|2 in ${two.id} \\(running\\), 1 in ${one.id} \\(pending\\)): `));
});

t.test('resume: bad thresholds are a 400 whatever the state', async (t) => {
  const a = await apiHarness(t);
  await provisioned(a, 1);
  const b = await bundle(a);
  const ro = (await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' } } })).json();
  await t.rejects(a.gw.resumeRollout(ro.id, 'olga', { ackThreshold: 2 }), { code: 'PW_INVALID_PLAN', message: 'ackThreshold must be between 0 and 1, got 2' }, 'pending, yet the thresholds are judged first');
  await t.rejects(a.gw.resumeRollout(ro.id, 'olga', { ackThreshold: 0.5 }), { code: 'PW_INVALID_STATE', message: 'cannot resume a rollout that is pending' });
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/resume`, { as: 'operator', body: { ackThreshold: 2 } })).statusCode, 400);
});
