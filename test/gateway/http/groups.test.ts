// GET /v1/groups: per group its devices by seq, model and connected, revoked ones apart, the
// baseline once a rollout completed, the rollout under way; pages by group name; a viewer's route.
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';
import { pin, until } from '../../fixtures/gateway.ts';
import { ordered, tallyDevice, type GroupSummary } from '../../../gateway/http/groups.ts';
import { newDeviceRecord } from '../../../gateway/store/types.ts';

t.test('the fleet by group: devices by seq, model and connected, the baseline, the rollout under way', async (t) => {
  const a = await apiHarness(t);
  const devices = [
    ...Array.from({ length: 4 }, (_, i) => ({ id: `th-${i}`, group: 'thermostats', model: 'th-100' })),
    { id: 'th-9', group: 'thermostats', model: 'th-200' },
    { id: 'lk-0', group: 'locks', model: 'lk-1' },
  ];
  const tokens = (await a.call('POST', '/v1/devices', { body: { devices } })).json().devices as Array<{ id: string; token: string }>;
  await a.call('DELETE', '/v1/devices/th-9');
  // th-0 and th-1 apply; th-2 applies but never says so (it still reports seq 0); th-3 never connects.
  const sims = tokens.filter((d) => d.id.startsWith('th-') && d.id !== 'th-9').slice(0, 3).map((d) => a.device(d.id, d.token, { silent: d.id === 'th-2' }));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  await Promise.all(sims.map((s) => s.connect()));
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const ro = (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1, ackThreshold: 0.5 }], start: true } })).json();
  await until(async () => (await a.call('GET', `/v1/rollouts/${ro.id}`)).json().waves[0].applied === 2, 5000, 'two acks');

  const running = (await a.call('GET', '/v1/groups', { as: 'viewer' })).json();
  t.same(running.items.map((g: GroupSummary) => g.group), ['locks', 'thermostats'], 'by name');
  t.same(running.next, null);
  const th = running.items[1];
  t.same(th, {
    group: 'thermostats',
    devices: 4,
    connected: 3,
    revoked: 1,
    neverConnected: 1,
    bySeq: [
      { seq: 0, devices: 1, connected: 1 },
      { seq: 1, devices: 2, connected: 2 },
      { seq: null, devices: 1, connected: 0 },
    ],
    byModel: [{ model: 'th-100', devices: 4, connected: 3 }],
    baseline: null,
    rollout: { id: ro.id, state: 'running', bundleSeq: 1 },
  });
  t.match(running.items[0], { group: 'locks', devices: 1, connected: 0, neverConnected: 1, bySeq: [{ seq: null, devices: 1 }], byModel: [{ model: 'lk-1', devices: 1 }], baseline: null, rollout: null });

  await until(async () => (a.gw.tick(), (await a.gw.listRollouts())[0].state === 'completed'), 5000, 'completion');
  await a.gw.flush();
  const done = (await a.call('GET', '/v1/groups?limit=1&cursor=locks')).json();
  t.equal(done.items.length, 1);
  t.match(done.items[0], { group: 'thermostats', baseline: { bundle: b.id, seq: 1 }, rollout: null });
  t.same((await a.call('GET', '/v1/groups?limit=1')).json().next, 'locks', 'pages by group name');
  t.same((await a.call('GET', '/v1/groups?cursor=zzz')).json(), { items: [], next: null });
  t.equal((await a.call('GET', '/v1/groups', { as: null })).statusCode, 401);
  t.equal((await a.call('GET', '/v1/groups?limit=0')).statusCode, 400);
});

t.test('tallies in display order: lowest seq first, never-reported last; models by name, unknown last', async (t) => {
  const groups = new Map<string, GroupSummary>();
  const d = (id: string, seq: number | null, model: string | null) => ({ ...newDeviceRecord({ id, group: 'g', tokenHash: 'x', createdAt: 0, ...(model && { model }) }), seq, lastSeen: seq === null ? null : 1 });
  tallyDevice(groups, d('a', 3, 'm2'), true);
  tallyDevice(groups, d('b', null, null), false);
  tallyDevice(groups, d('c', 1, 'm1'), false);
  tallyDevice(groups, d('e', 3, 'm2'), false);
  const [g] = ordered(groups);
  t.same(g.bySeq.map((s) => [s.seq, s.devices, s.connected]), [[1, 1, 0], [3, 2, 1], [null, 1, 0]]);
  t.same(g.byModel.map((m) => [m.model, m.devices]), [['m1', 1], ['m2', 2], [null, 1]]);
  t.equal(g.neverConnected, 1);
});
