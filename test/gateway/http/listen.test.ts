// The API over a real socket (127.0.0.1, an ephemeral port) with fetch, as the CLI and other
// services reach it: status codes, content types, the error shape, and a body over the limit.
import t from 'tap';
import { apiHarness, TOKENS } from '../../fixtures/http.ts';
import { pin } from '../../fixtures/gateway.ts';

t.test('the API answers over a real port', async (t) => {
  const a = await apiHarness(t);
  await a.app.listen({ host: '127.0.0.1', port: 0 });
  const address = a.app.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const call = (path: string, init: RequestInit & { as?: keyof typeof TOKENS | null } = {}) =>
    fetch(base + path, {
      ...init,
      signal: AbortSignal.timeout(5000),
      headers: { ...(init.as !== null && { authorization: `Bearer ${TOKENS[init.as ?? 'admin']}` }), ...(init.body !== undefined && { 'content-type': 'application/json' }), ...(init.headers as Record<string, string>) },
    });

  const health = await call('/healthz', { as: null });
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });

  const denied = await call('/v1/devices', { as: null });
  t.equal(denied.status, 401);
  t.match(denied.headers.get('content-type'), /^application\/json/);
  t.match(await denied.json(), { statusCode: 401, error: 'Unauthorized', code: 'PW_UNAUTHORIZED' });

  const made = await call('/v1/devices', { method: 'POST', body: JSON.stringify({ devices: [{ id: 'th-1', group: 'thermostats', model: 'th-100' }] }) });
  t.equal(made.status, 201);
  t.match(await made.json(), { devices: [{ id: 'th-1', token: /^[A-Za-z0-9_-]{43}$/ }] });
  t.match(await (await call('/v1/devices', { as: 'viewer' })).json(), { items: [{ id: 'th-1', state: 'never_connected' }], next: null });

  const bundle = await (await call('/v1/bundles', { method: 'POST', as: 'operator', body: JSON.stringify({ group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] }) })).json();
  const raw = await call(`/v1/bundles/${bundle.id}/raw`, { as: 'viewer' });
  t.equal(raw.headers.get('content-type'), 'application/cose');
  t.equal((await raw.arrayBuffer()).byteLength, bundle.size);

  const rollout = await call('/v1/rollouts', { method: 'POST', as: 'operator', body: JSON.stringify({ bundle: bundle.id, target: { group: 'thermostats' }, start: true }) });
  t.equal(rollout.status, 201);
  const { id } = await rollout.json();
  const csv = await call(`/v1/stuck?rollout=${id}`, { as: 'viewer', headers: { accept: 'text/csv' } });
  t.equal(csv.headers.get('content-type'), 'text/csv; charset=utf-8');
  t.match(await csv.text(), /^id,group,model,seq,bundle,targetSeq,reason,since,connected\r\nth-1,thermostats,th-100,,,1,never_connected,/);
  const again = await call(`/v1/rollouts/${id}/start`, { method: 'POST', as: 'operator' });
  t.equal(again.status, 409);
  t.match(await again.json(), { code: 'PW_INVALID_STATE', message: 'cannot start a rollout that is running' });

  const huge = await call('/v1/bundles', { method: 'POST', as: 'operator', body: JSON.stringify({ group: 'thermostats', pins: [], pad: 'x'.repeat(1_200_000) }) });
  t.equal(huge.status, 413);
  t.match(await huge.json(), { statusCode: 413, error: 'Payload Too Large' });
  const bad = await call('/v1/devices', { method: 'POST', body: '{"devices": [' });
  t.equal(bad.status, 400);
  t.match(await (await call('/metrics', { as: null })).text(), /# TYPE pinwave_connected_devices gauge/);
  const docs = await (await call('/docs', { as: null })).json();
  t.ok(docs.paths['/v1/rollouts/{id}/rollback'].post);
});

t.test('GET /v1/info on a wildcard MQTT listen gives the address the request came in on, and mqtt.deviceUrl when set', async (t) => {
  const info = async (a: Awaited<ReturnType<typeof apiHarness>>, host: string) => {
    await a.app.listen({ host, port: 0 });
    const address = a.app.server.address();
    const res = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${typeof address === 'object' && address ? address.port : 0}/v1/info`, { signal: AbortSignal.timeout(5000), headers: { authorization: `Bearer ${TOKENS.viewer}` } });
    return ((await res.json()) as { mqttUrl: string }).mqttUrl;
  };
  const v4 = await apiHarness(t, {}, { host: '0.0.0.0' });
  t.equal(await info(v4, '127.0.0.1'), `mqtt://127.0.0.1:${v4.gw.ports.tcp}`, '0.0.0.0: the IPv4 address the request came to');
  const v6 = await apiHarness(t, {}, { host: '::' });
  t.equal(await info(v6, '::1'), `mqtt://[::1]:${v6.gw.ports.tcp}`, '::, by IPv6');
  const mapped = await apiHarness(t, {}, { host: '::' });
  t.equal(await info(mapped, '127.0.0.1'), `mqtt://127.0.0.1:${mapped.gw.ports.tcp}`, '::, by IPv4: the address, not its IPv4-mapped form');
  const told = await apiHarness(t, {}, { host: '0.0.0.0', mqttDeviceUrl: 'mqtts://gw.example.com:8883' });
  t.equal(await info(told, '127.0.0.1'), 'mqtts://gw.example.com:8883', 'mqtt.deviceUrl wins');
  t.equal(told.gw.mqttUrl, 'mqtts://gw.example.com:8883');
});
