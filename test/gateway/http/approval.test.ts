// Two-person approval over the API (docs/architecture.md §10): a rollout that removes a pin its
// target holds now cannot start until an operator other than its creator approves it; the creator
// and viewers cannot approve; each request and approval is a decision; adding pins, approval left
// unconfigured and rollbacks never wait; the approval outlives a restart; the others hear of it.
import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { apiHarness, API_TOKENS, type ApiHarness } from '../../fixtures/http.ts';
import { fleet, pin, until } from '../../fixtures/gateway.ts';
import { hashToken } from '../../../gateway/credentials.ts';
import type { GatewayOptions } from '../../../gateway/gateway.ts';

const POLICY = { removePin: 2, addPin: 1 };
const OTTO = 'otto-operator-token-0123456789abcdef';
const TOKENS = [...API_TOKENS, { name: 'otto', role: 'operator' as const, hash: hashToken(OTTO) }];
const asOtto = { as: null, headers: { authorization: `Bearer ${OTTO}` } };

// The harness's manifest ships api.example.com:443 with pins "old" and "backup".
const removing = [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }];
const adding = [{ host: 'api.example.com', pins: [pin('old'), pin('backup'), pin('new')] }];

async function setUp(t: Parameters<typeof apiHarness>[0], gw: Partial<GatewayOptions> = { approval: POLICY }) {
  const a = await apiHarness(t, { tokens: TOKENS }, gw);
  const sims = await fleet(a, 3);
  return { a, sims };
}

async function create(a: ApiHarness, pins: unknown, extra: Record<string, unknown> = {}) {
  const b = (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins } })).json();
  const r = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }], ...extra } });
  if (r.statusCode !== 201) throw new Error(`rollout: ${r.statusCode} ${r.body}`);
  return r.json();
}

const get = async (a: ApiHarness, id: string) => (await a.call('GET', `/v1/rollouts/${id}`, { as: 'viewer' })).json();

t.test('a pin-removing rollout waits: its creator cannot approve it, a viewer cannot, a second operator can, and then it starts', async (t) => {
  const { a } = await setUp(t);
  const ro = await create(a, removing, { start: true });
  t.equal(ro.state, 'pending', 'start: true does not start it');
  t.match(ro.approval, {
    needed: true,
    required: 2,
    remaining: 1,
    approvals: [],
    requestedBy: 'olga',
    removed: [{ host: 'api.example.com', port: 443, pins: [pin('old')], endpoint: false }],
    reason: 'removes 1 pin of api.example.com:443',
  });
  t.match(ro.decisions, [{ action: 'request_approval', actor: 'olga', reason: 'removes_pins', from: 'pending', to: 'pending', approval: { required: 2, removed: [{ pins: [pin('old')] }] } }]);

  const refused = await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'operator' });
  t.equal(refused.statusCode, 409);
  t.match(refused.json(), { code: 'PW_APPROVAL_REQUIRED', message: `rollout ${ro.id} removes 1 pin of api.example.com:443 and needs 1 more approval by an operator other than its creator olga before it starts (POST /v1/rollouts/${ro.id}/approve)`, details: { approval: { remaining: 1 } } });
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'admin' })).statusCode, 409, 'nor may an admin start it');

  const self = await a.call('POST', `/v1/rollouts/${ro.id}/approve`, { as: 'operator' });
  t.equal(self.statusCode, 403);
  t.match(self.json(), { code: 'PW_SELF_APPROVAL', message: `olga created rollout ${ro.id} and cannot approve it: an operator other than its creator must` });
  const viewer = await a.call('POST', `/v1/rollouts/${ro.id}/approve`, { as: 'viewer' });
  t.equal(viewer.statusCode, 403);
  t.match(viewer.json(), { code: 'PW_FORBIDDEN', message: 'this needs the operator role; token "vera" has viewer' });
  t.equal((await get(a, ro.id)).approval.remaining, 1, 'neither counted');

  a.clock.advance(1000);
  const ok = await a.call('POST', `/v1/rollouts/${ro.id}/approve`, asOtto);
  t.equal(ok.statusCode, 200);
  t.match(ok.json(), { state: 'pending', approval: { needed: false, remaining: 0, approvals: [{ actor: 'otto', at: a.clock.t }] } });
  const again = await a.call('POST', `/v1/rollouts/${ro.id}/approve`, asOtto);
  t.equal(again.statusCode, 200, 'approving twice is no error');
  t.equal(again.json().decisions.filter((d: { action: string }) => d.action === 'approve').length, 1, 'and counts once');

  const started = await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'operator' });
  t.equal(started.statusCode, 200, 'the creator starts it once approved');
  const now = started.json();
  t.equal(now.state, 'running');
  t.same(
    now.decisions.map((d: { action: string; actor: string }) => `${d.action} ${d.actor}`),
    ['request_approval olga', 'approve otto', 'start olga'],
    'the request, the approval and the start are decisions, each with who',
  );
  const late = await a.call('POST', `/v1/rollouts/${ro.id}/approve`, { as: 'admin' });
  t.equal(late.statusCode, 409);
  t.match(late.json(), { code: 'PW_INVALID_STATE', message: 'cannot approve a rollout that is running: approval is for a pending rollout' });
});

t.test('an admin other than the creator may approve; removePin 3 asks for two others', async (t) => {
  const { a } = await setUp(t, { approval: { removePin: 3, addPin: 1 } });
  const ro = await create(a, removing);
  t.match(ro.approval, { required: 3, remaining: 2 });
  t.match((await a.call('POST', `/v1/rollouts/${ro.id}/approve`, { as: 'admin' })).json(), { approval: { needed: true, remaining: 1, approvals: [{ actor: 'adam' }] } });
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'admin' })).statusCode, 409, 'one other is not enough');
  t.match((await a.call('POST', `/v1/rollouts/${ro.id}/approve`, asOtto)).json(), { approval: { needed: false, remaining: 0 } });
  t.equal((await a.call('POST', `/v1/rollouts/${ro.id}/start`, { as: 'admin' })).statusCode, 200);
});

t.test('a rollout that removes a whole endpoint needs approval too', async (t) => {
  const { a } = await setUp(t);
  const ro = await create(a, [{ host: 'other.example.com', pins: [pin('a'), pin('b')] }]);
  t.match(ro.approval, { needed: true, removed: [{ host: 'api.example.com', port: 443, pins: [pin('old'), pin('backup')], endpoint: true }], reason: 'removes endpoint api.example.com:443 (2 pins)' });
});

t.test('adding pins needs nobody else, and neither does anything with approval unconfigured', async (t) => {
  const { a } = await setUp(t);
  const add = await create(a, adding, { start: true });
  t.equal(add.state, 'running', 'add-only: the creator alone starts it');
  t.equal(add.approval, undefined);
  t.notOk(add.decisions.some((d: { action: string }) => d.action === 'request_approval'));
  const none = await a.call('POST', `/v1/rollouts/${add.id}/approve`, asOtto);
  t.equal(none.statusCode, 409);
  t.match(none.json(), { code: 'PW_INVALID_STATE', message: /needs no approval/ });

  const off = await setUp(t, {});
  const ro = await create(off.a, removing, { start: true });
  t.equal(ro.state, 'running', 'approval off: a pin-removing rollout starts at once');
  t.equal(ro.approval, undefined);
});

t.test('the baseline is what the target holds once a rollout completed: removing a pin only the firmware had needs nobody', async (t) => {
  const { a, sims } = await setUp(t);
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  await Promise.all(sims.map((s) => s.connect()));
  const first = await create(a, adding, { start: true });
  await until(async () => (a.gw.tick(), (await get(a, first.id)).state === 'completed'), 5000, 'the add-only rollout completes');
  // The baseline now holds old, backup and new: dropping "new" removes a pin, dropping nothing does not.
  const drop = await create(a, [{ host: 'api.example.com', pins: [pin('old'), pin('backup')] }]);
  t.match(drop.approval, { needed: true, removed: [{ pins: [pin('new')] }] });
});

t.test('a rollback never waits: it records the request and its own pass, and starts at once', async (t) => {
  const { a, sims } = await setUp(t);
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  await Promise.all(sims.map((s) => s.connect()));
  const done = async (id: string) => until(async () => (a.gw.tick(), (await get(a, id)).state === 'completed'), 5000, `${id} completes`);
  const first = await create(a, [{ host: 'api.example.com', pins: [pin('old'), pin('backup')] }], { start: true });
  await done(first.id);
  const second = await create(a, adding, { start: true });
  await done(second.id);
  // Rolling the second back goes back to old and backup: it removes "new", which the group holds now.
  const rb = await a.call('POST', `/v1/rollouts/${second.id}/rollback`, { as: 'operator' });
  t.equal(rb.statusCode, 201, rb.body.slice(0, 300));
  const rollback = rb.json().rollback;
  t.equal(rollback.state, 'running', 'started at once');
  t.match(rollback.approval, { needed: false, remaining: 0, passedBy: 'rollback', removed: [{ pins: [pin('new')] }] });
  t.same(
    rollback.decisions.map((d: { action: string; actor: string; reason: string }) => `${d.action} ${d.actor} ${d.reason}`),
    ['request_approval olga removes_pins', 'approve olga rollback', 'start olga operator'],
  );
});

t.test('approval outlives a restart: the request and each approval are on the rollout record', async (t) => {
  const { a } = await setUp(t);
  const ro = await create(a, removing);
  const gw = await a.restart({ approval: POLICY });
  await t.rejects(gw.startRollout(ro.id, 'olga'), { code: 'PW_APPROVAL_REQUIRED' }, 'still waiting after a restart');
  await gw.approveRollout(ro.id, 'otto');
  const again = await a.restart({ approval: POLICY });
  t.match(await again.getRollout(ro.id), { state: 'pending', approval: { needed: false, approvals: [{ actor: 'otto' }] } });
  await t.rejects(again.approveRollout(ro.id, 'olga'), { code: 'PW_SELF_APPROVAL' });
  t.equal((await again.startRollout(ro.id, 'olga')).state, 'running');
});

t.test('a rollout created before approval was configured is assessed when it first starts', async (t) => {
  const { a } = await setUp(t, {});
  const ro = await create(a, removing);
  const gw = await a.restart({ approval: POLICY });
  await t.rejects(gw.startRollout(ro.id, 'olga'), { code: 'PW_APPROVAL_REQUIRED' });
  t.match(await gw.getRollout(ro.id), { approval: { needed: true, requestedBy: 'olga' } });
});

t.test('approval.requested tells the others: the rollout, its creator and what it removes', async (t) => {
  const heard: Array<Record<string, unknown>> = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      heard.push(JSON.parse(body));
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  const { a } = await setUp(t, { approval: POLICY, webhooks: [{ url, events: ['approval.requested'], secret: 'webhook-secret-for-the-test-0123' }] });
  const add = await create(a, adding);
  await a.call('POST', `/v1/rollouts/${add.id}/abort`, { as: 'operator' });
  const ro = await create(a, removing);
  await a.gw.webhooksIdle();
  t.equal(heard.length, 1, 'once, for the removing rollout only');
  t.match(heard[0], {
    event: 'approval.requested',
    rollout: { id: ro.id, state: 'pending', bundle: { seq: 2 } },
    actor: 'olga',
    reason: 'removes_pins',
    approval: { creator: 'olga', required: 2, remaining: 1, removed: [{ host: 'api.example.com', port: 443, pins: [pin('old')], endpoint: false }] },
  });
});

t.test('the OpenAPI document describes the approve route and the approval summary', async (t) => {
  const { a } = await setUp(t);
  const doc = (await a.call('GET', '/docs/json', { as: null })).json();
  t.ok(doc.paths['/v1/rollouts/{id}/approve']?.post, 'POST /v1/rollouts/{id}/approve');
  t.ok(JSON.stringify(doc).includes('operators who must agree, the creator being one'));
});
