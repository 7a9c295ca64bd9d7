// Support queries: pin failures aggregated by endpoint and observed pin; stuck devices with their
// reasons, oldest first, in pages or as CSV.
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';
import { fleet, pin, until } from '../../fixtures/gateway.ts';
import { csvField, stuckCsv, wantsCsv } from '../../../gateway/http/telemetry.ts';

t.test('pin failures are aggregated by endpoint and observed pin, filtered by rollout, group and host', async (t) => {
  const a = await apiHarness(t);
  const sims = await fleet(a, 3);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const ro = (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 10 }], start: true } })).json();
  await until(() => sims.every((s) => s.state.seq === 1), 5000, 'every device applied');
  for (const s of sims) s.recordHandshake('api.example.com', 443, [pin('evil')]);
  sims[0].recordHandshake('API.example.com', 443, [pin('other')]);
  await Promise.all(sims.map((s) => s.flushTelemetry()));
  await until(async () => (await a.call('GET', '/v1/telemetry/pin-failures')).json().items.reduce((n: number, i: { failures: number }) => n + i.failures, 0) === 4, 5000, 'the reports');

  const r = await a.call('GET', `/v1/telemetry/pin-failures?rollout=${ro.id}`, { as: 'viewer' });
  t.equal(r.statusCode, 200);
  const { items, next } = r.json();
  t.equal(next, null);
  t.equal(items.length, 2);
  t.match(items[0], { host: 'api.example.com', port: 443, result: 'pin_mismatch', observedPin: pin('evil'), bundleId: b.id, rollouts: [ro.id], groups: ['thermostats'], devices: 3, failures: 3 });
  t.match(items[1], { observedPin: pin('other'), devices: 1 });
  t.equal((await a.call('GET', '/v1/telemetry/pin-failures?host=API.EXAMPLE.COM&group=thermostats')).json().items.length, 2, 'host matched without regard to case');
  t.equal((await a.call('GET', '/v1/telemetry/pin-failures?host=other.example.com')).json().items.length, 0);
  const paged = (await a.call('GET', '/v1/telemetry/pin-failures?limit=1')).json();
  t.equal(paged.items.length, 1);
  t.equal(paged.next, '1');
  t.equal((await a.call('GET', `/v1/telemetry/pin-failures?limit=1&cursor=${paged.next}`)).json().next, null);
  t.equal((await a.call('GET', '/v1/telemetry/pin-failures?cursor=x')).statusCode, 400);
  t.equal((await a.call('GET', '/v1/telemetry/pin-failures?rollout=../x')).statusCode, 400);
});

t.test('stuck devices come with their reasons, oldest first, in pages or as CSV', async (t) => {
  const a = await apiHarness(t);
  const sims = await fleet(a, 4, 'th', (i) => ({ flashFails: i === 1 }));
  // th-0000 stays offline (never connected); th-0001 rejects; th-0002 and th-0003 apply
  await Promise.all(sims.slice(1).map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  const ro = (await a.call('POST', '/v1/rollouts', { body: { bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 10 }], start: true } })).json();
  await until(async () => (await a.call('GET', `/v1/rollouts/${ro.id}`)).json().waves[0].responded === 3, 5000, 'three answers');

  const r = await a.call('GET', `/v1/stuck?rollout=${ro.id}`, { as: 'viewer' });
  t.equal(r.statusCode, 200);
  t.match(r.headers['content-type'], /^application\/json/);
  const { items, next } = r.json();
  t.equal(next, null);
  t.same(items.map((s: { id: string; reason: string }) => [s.id, s.reason]), [['th-0000', 'never_connected'], ['th-0001', 'rejected:apply_failed']]);
  t.match(items[1], { group: 'thermostats', model: 'th-100', seq: 0, targetSeq: 1, connected: true });
  t.same((await a.call('GET', '/v1/stuck?group=thermostats')).json().items.map((s: { id: string }) => s.id), ['th-0000', 'th-0001']);
  const first = (await a.call('GET', `/v1/stuck?rollout=${ro.id}&limit=1`)).json();
  t.same(first.items.map((s: { id: string }) => s.id), ['th-0000']);
  t.same((await a.call('GET', `/v1/stuck?rollout=${ro.id}&limit=1&cursor=${first.next}`)).json().items.map((s: { id: string }) => s.id), ['th-0001']);

  const csv = await a.call('GET', `/v1/stuck?rollout=${ro.id}`, { as: 'viewer', headers: { accept: 'text/csv' } });
  t.equal(csv.statusCode, 200);
  t.equal(csv.headers['content-type'], 'text/csv; charset=utf-8');
  const lines = csv.body.split('\r\n');
  t.equal(lines[0], 'id,group,model,seq,bundle,targetSeq,reason,since,connected');
  t.equal(lines[1], `th-0000,thermostats,th-100,,,1,never_connected,${new Date(a.clock.t).toISOString()},false`);
  t.match(lines[2], /^th-0001,thermostats,th-100,0,,1,rejected:apply_failed,2026-01-01T00:00:00\.000Z,true$/);
  t.equal(lines[3], '');
  const page = await a.call('GET', `/v1/stuck?rollout=${ro.id}&limit=1`, { headers: { accept: 'text/html, text/csv;q=0.5' } });
  t.equal(page.body.split('\r\n').length, 3, 'header, one row, end');
  t.equal(page.headers['x-next-cursor'], '1');

  const neither = await a.call('GET', '/v1/stuck');
  t.equal(neither.statusCode, 400);
  t.match(neither.json(), { code: 'PW_INVALID', message: 'querystring must have exactly one of "group" or "rollout"' });
  t.equal((await a.call('GET', `/v1/stuck?group=thermostats&rollout=${ro.id}`)).statusCode, 400);
  t.equal((await a.call('GET', '/v1/stuck?rollout=r-unknown')).statusCode, 404);
  t.same((await a.call('GET', '/v1/stuck?group=nobody')).json(), { items: [], next: null }, 'a group with no target: nobody stuck');
});

t.test('CSV fields are escaped (RFC 4180) and defused against spreadsheet formulas', async (t) => {
  t.equal(csvField('plain'), 'plain');
  t.equal(csvField(null), '');
  t.equal(csvField('a,b'), '"a,b"');
  t.equal(csvField('say "hi"'), '"say ""hi"""');
  t.equal(csvField('two\nlines'), '"two\nlines"');
  t.equal(csvField('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  t.equal(csvField('-1'), "'-1");
  t.equal(csvField(false), 'false');
  t.equal(stuckCsv([{ id: 'a', group: 'g', model: 'm,1', seq: null, bundle: null, targetSeq: 2, reason: 'rejected:bad_signature', since: null, connected: false }]), 'id,group,model,seq,bundle,targetSeq,reason,since,connected\r\na,g,"m,1",,,2,rejected:bad_signature,,false\r\n');
  t.equal(wantsCsv('text/csv'), true);
  t.equal(wantsCsv('application/json, TEXT/CSV; charset=utf-8'), true);
  t.equal(wantsCsv('text/csv;q=0'), false);
  t.equal(wantsCsv('application/json'), false);
  t.equal(wantsCsv(undefined), false);
});
