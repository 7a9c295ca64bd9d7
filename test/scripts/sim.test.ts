// `pinwave sim`: flags checked before anything runs (a UsageError naming the flag), a fleet from
// credentials and a manifest against a real gateway, and one provisioned over the HTTP API (here a
// small stand-in serving the API routes from a real gateway).
import t from 'tap';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { chain, issued, selfSigned } from '../fixtures/openssl.ts';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { backupPin, defaultHealthCheck, HEALTH_CHECK_BY_DEFAULT, main } from '../../scripts/commands/sim.ts';
import type { Io } from '../../scripts/args.ts';
import { harness, newPins, pin, until, type Harness } from '../fixtures/gateway.ts';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import type { GatewayError } from '../../gateway/errors.ts';
import { startTlsEndpoint } from '../../device-sim/endpoints.ts';
import type { Fleet } from '../../device-sim/fleet.ts';

function fakeIo(env: NodeJS.ProcessEnv = {}, tty = false) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env, tty };
  return { io, out, err };
}

t.test('wrong flags are usage errors that name the flag, before anything runs', async (t) => {
  const cases: Array<[string[], RegExp, NodeJS.ProcessEnv?]> = [
    [[], /either --api URL or --tokens FILE/],
    [['--api', 'http://a', '--gateway', 'mqtt://b'], /either --api URL or --gateway/],
    [['--gateway', 'mqtt://127.0.0.1:1883'], /--gateway needs --tokens FILE/],
    [['--api', 'http://127.0.0.1:1', '--credentials', 'c.json'], /--tokens is for devices provisioned elsewhere/, { PINWAVE_TOKEN: 't' }],
    [['--tokens', 'a.json', '--credentials', 'c.json'], /the same flag/],
    [['--tokens', 'a.json', '--processes', '0'], /--processes expects 1 to 64/],
    [['--tokens', 'a.json', '--processes', 'two'], /--processes expects a non-negative integer/],
    [['--tokens', 'a.json', '--connect-rate', '0'], /--connect-rate expects connects a second above 0, got "0"/],
    [['--tokens', 'a.json', '--connect-rate', 'fast'], /--connect-rate expects/],
    [['--api', 'http://127.0.0.1:1', '--devices', '5', '--group', 'g'], /PINWAVE_TOKEN/],
    [['--api', 'ftp://x'], /--api expects an http:\/\/ or https:\/\/ URL/],
    [['--api', 'not a url'], /--api expects a URL/],
    [['--gateway', 'http://x:1', '--credentials', 'c'], /--gateway expects mqtt:\/\/HOST:PORT/],
    [['--gateway', 'nope', '--credentials', 'c'], /--gateway expects mqtt:\/\/HOST:PORT/],
    [['--api', 'http://a', '--silent-rate', '1.5'], /--silent-rate expects a rate from 0 to 1, got "1.5"/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--reject-rate', 'half'], /--reject-rate expects a rate from 0 to 1, got "half"/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--offline-rate=-1'], /--offline-rate expects a rate from 0 to 1, got "-1"/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--ack-delay-ms', '200-10'], /--ack-delay-ms: MAX \(10\) is below MIN \(200\)/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--ack-delay-ms', 'fast'], /--ack-delay-ms expects MIN-MAX/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--ack-delay-ms', '10-99999999999'], /--ack-delay-ms must be at most 3600000 \(an hour\), got "10-99999999999"/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--devices', 'many'], /--devices expects a non-negative integer, got "many"/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--devices', '0'], /--devices expects at least 1/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--devices', '99999999999', '--group', 'g'], /^--devices expects at most 1000000, got "99999999999"/, { PINWAVE_TOKEN: 't' }],
    [['--tokens', 'a.json', '--devices', '1000001'], /^--devices expects at most 1000000, got "1000001"/],
    [['--api', 'http://a', '--duration', 'soon'], /--duration expects a duration/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--duration', '0s'], /--duration must be more than 0, got "0s"/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--duration', '30d'], /--duration must be at most 24d, got "30d"/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--group', 'a/b'], /--group expects/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--model', 'a b'], /--model expects/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--frobnicate'], /frobnicate/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--group', 'g'], /--api needs --devices N/, { PINWAVE_TOKEN: 't' }],
    [['--api', 'http://a', '--devices', '3'], /--api needs --group G/, { PINWAVE_TOKEN: 't' }],
  ];
  for (const [args, message, env] of cases) {
    const { io } = fakeIo(env);
    await t.rejects(main(args, io), { name: 'UsageError', message }, args.join(' ') || '(no flags)');
  }
  const { io, out } = fakeIo();
  t.equal(await main(['--help'], io), 0);
  t.match(out.join('\n'), /--api URL[\s\S]*--tokens FILE[\s\S]*"broker"[\s\S]*--no-health-check[\s\S]*--handshake-each[\s\S]*--processes N[\s\S]*--connect-rate R[\s\S]*--no-presence/);
  t.equal(await main(['-h'], io), 0);
});

/** A credentials file and a manifest file for n devices provisioned on the harness gateway. */
async function provisioned(t: Tap.Test, h: Harness, n: number, extra: Record<string, unknown> = {}) {
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `th-${i}`, group: 'thermostats', model: 'th-100' })));
  const dir = t.testdir();
  const credentials = join(dir, 'credentials.json');
  writeFileSync(credentials, JSON.stringify({ devices: devices.map((d) => ({ ...d, ...extra })) }));
  const manifest = join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify(h.manifest));
  return { credentials, manifest, dir };
}

/** Runs `pinwave sim` until `done(fleet)` holds, then stops it as SIGINT would. */
async function simUntil(t: Tap.Test, args: string[], io: Io, done: (fleet: Fleet) => Promise<boolean> | boolean, what: string): Promise<number> {
  const stop = new AbortController();
  let fleet: Fleet | undefined;
  const running = main(args, io, { signal: stop.signal, onFleet: (f) => (fleet = f) });
  try {
    await until(async () => fleet !== undefined && (await done(fleet)), 10_000, what);
  } catch (err) {
    if (fleet) t.comment(`the fleet when it timed out: ${JSON.stringify(fleet.summary())}`);
    throw err;
  } finally {
    stop.abort();
  }
  return running;
}

t.test('--gateway with --credentials and --manifest runs the devices against a gateway, and --json prints the summary', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const { credentials, manifest } = await provisioned(t, h, 12);
  const { io, out, err } = fakeIo();
  let rollout = '';
  const code = await simUntil(
    t,
    ['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--devices', '10', '--group', 'thermostats', '--reject-rate', '0.3', '--ack-delay-ms', '0-5', '--seed', 'cli', '--json'],
    io,
    async (fleet) => {
      if (!rollout) {
        if (h.gw.connectedCount() < 10) return false;
        const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
        rollout = (await h.gw.createRollout({ bundle: bundle.id, target: { devices: fleet.devices.map((d) => d.id) }, waves: [{ size: '100%' }], start: true }, 'alice')).rollout.id;
      }
      const s = fleet.summary();
      return s.acked + (s.rejected.apply_failed ?? 0) === 10;
    },
    'every device to answer',
  );
  t.equal(code, 0, err.join('\n'));
  t.equal(out.length, 1, 'one summary object, no live view');
  const s = JSON.parse(out[0]);
  t.match(s, { seed: 'cli', devices: 10, connected: 10, verifications: { performed: 1 } });
  t.ok(s.rejected.apply_failed > 0 && s.acked > 0, `acked ${s.acked}, rejected ${JSON.stringify(s.rejected)}`);
  t.equal(s.seqs['1'], s.acked);
  await until(() => h.gw.connectedCount() === 0, 2000, 'a clean disconnect');
});

t.test('without a terminal the live view is one line per change; with one it redraws in place', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const { credentials, manifest } = await provisioned(t, h, 3);
  const plain = fakeIo();
  t.equal(await simUntil(t, ['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--group', 'thermostats'], plain.io, () => plain.out.some((l) => /3 connected/.test(l)), 'a progress line'), 0);
  t.match(plain.out.at(-1), /^sim: 3 devices, 3 connected \| seq 0: 3 \| acked 0, rejected 0 \| failing 0, pin failures 0 \(0 reported\)$/);
  t.equal(new Set(plain.out).size, plain.out.length, 'a line only when something changed');
  const tty = fakeIo({}, true);
  t.equal(await simUntil(t, ['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--group', 'thermostats'], tty.io, () => tty.out.some((l) => /connected +3/.test(l)), 'a redraw'), 0);
  t.match(tty.out[0], /^pinwave sim  3 devices  00:0\d\n  connected/);
  if (tty.out.length > 1) t.match(tty.out[1], /^\x1b\[\d+F\x1b\[J/, 'later frames move up over the last and clear it');
  t.match(tty.out.at(-1), /\n  latency  connect p50 ≤\d+ m?s, p95 ≤\d+ m?s, max ≤\d+ m?s \(3\)   bundle → ack none$/, 'connect latencies of the three');
});

t.test('--gateway needs a manifest for every model, and credentials it can read', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const { credentials, manifest, dir } = await provisioned(t, h, 2, { model: 'zz-9', group: 'thermostats' });
  const { io } = fakeIo();
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--group', 'g'], io), { name: 'UsageError', message: /firmware manifest for model "sim-1"/ });
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--model', 'other'], io), { name: 'UsageError', message: /--model is "other" but the --manifest is for model "th-100"/ });
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest], io), /device th-0 \(entry 0\) is of model "zz-9"/);
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--devices', '5'], io), { name: 'UsageError', message: /--devices is 5 but .* holds 2 devices/ });
  writeFileSync(join(dir, 'nogroup.json'), JSON.stringify([{ id: 'a', token: 'b' }]));
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', join(dir, 'nogroup.json'), '--manifest', manifest], io), { name: 'UsageError', message: /device a names no group: give --group G/ });
  writeFileSync(join(dir, 'notoken.json'), JSON.stringify({ devices: [{ id: 'a' }] }));
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', join(dir, 'notoken.json'), '--manifest', manifest], io), /\/devices\/0 needs "id" and "token"/);
  writeFileSync(join(dir, 'empty.json'), '[]');
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', join(dir, 'empty.json'), '--manifest', manifest], io), /with at least one device/);
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', join(dir, 'missing.json'), '--manifest', manifest], io), /cannot read it \(ENOENT\)/);
  writeFileSync(join(dir, 'bad-manifest.json'), JSON.stringify({ ...h.manifest, pins: [] }));
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', join(dir, 'bad-manifest.json')], io), /--manifest .* is not valid:\n\/pins: /);
  writeFileSync(join(dir, 'broken.json'), '{');
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', join(dir, 'broken.json')], io), /not JSON/);
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', join(dir, 'broken.json'), '--manifest', manifest], io), /not JSON/);
  writeFileSync(join(dir, 'bad-scenario.json'), JSON.stringify({ behaviours: { silentRate: 3 } }));
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--scenario', join(dir, 'bad-scenario.json')], io), /scenario .* is not valid:\n\/behaviours\/silentRate: must be <= 1/);
  writeFileSync(join(dir, 'two-models.json'), JSON.stringify({ models: [{ model: 'a' }, { model: 'b' }] }));
  await t.rejects(main(['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--model', 'a', '--scenario', join(dir, 'two-models.json')], io), { name: 'UsageError', message: /--model cannot be combined/ });
});

t.test('--client-cert and --client-key: the devices show a certificate to a gateway that asks for one (mutual TLS)', async (t) => {
  const dir = t.testdir();
  const server = chain(dir);
  const deviceCa = selfSigned(dir, 'device-ca', 'p256', '/O=pinwave test/CN=device-ca');
  const device = issued(dir, 'fleet-cert', 'p256', deviceCa, false, 10);
  const other = selfSigned(dir, 'other', 'p256');
  const tls = { port: 0, key: readFileSync(server.leaf.key), cert: readFileSync(server.file), ca: readFileSync(deviceCa.pem), requestCert: true as const, rejectUnauthorized: true as const };
  const h = await harness(t, { now: Date.now, mqttPlain: false, tls }); // the CLI's devices run on the real clock
  t.match(h.gw.mqttUrl, /^mqtts:/);
  const { devices } = await h.gw.provision(Array.from({ length: 3 }, (_, i) => ({ id: `th-${i}`, group: 'thermostats', model: 'th-100' })));
  const credentials = join(dir, 'credentials.json');
  writeFileSync(credentials, JSON.stringify({ devices }));
  const manifest = join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify({ ...h.manifest, gatewayCa: readFileSync(server.root.pem, 'utf8') }));
  const base = ['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--group', 'thermostats'];
  const { io } = fakeIo();
  await t.rejects(main([...base, '--client-cert', device.pem], io), { name: 'UsageError', message: '--client-cert needs --client-key FILE, its private key' });
  await t.rejects(main([...base, '--client-key', device.key], io), { name: 'UsageError', message: '--client-key needs --client-cert FILE, the certificate it is the key of' });
  await t.rejects(main([...base, '--client-cert', join(dir, 'none.pem'), '--client-key', device.key], io), { message: `--client-cert ${join(dir, 'none.pem')}: cannot read it (ENOENT)` });
  await t.rejects(main([...base, '--client-cert', device.key, '--client-key', device.key], io), { message: /^--client-cert .*: not a PEM certificate/ });
  await t.rejects(main([...base, '--client-cert', device.pem, '--client-key', device.pem], io), { message: /^--client-key .*: not a PEM private key/ });
  await t.rejects(main([...base, '--client-cert', device.pem, '--client-key', other.key], io), { message: /^--client-key .* is not the key of --client-cert .* \(O=pinwave test, CN=fleet-cert\)$/ });
  const run = fakeIo();
  const code = await simUntil(t, [...base, '--client-cert', device.pem, '--client-key', device.key, '--json'], run.io, (fleet) => fleet.summary().connected === 3 && h.gw.connectedCount() === 3, 'three devices over mutual TLS');
  t.equal(code, 0, run.err.join('\n'));
  t.match(JSON.parse(run.out[0]), { devices: 3, connected: 3 });
});

t.test('devices that cannot connect make the run fail, after a clean stop', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const { dir, manifest } = await provisioned(t, h, 1);
  writeFileSync(join(dir, 'wrong.json'), JSON.stringify([{ id: 'th-0', token: 'wrong', group: 'thermostats' }]));
  const { io, err } = fakeIo();
  const code = await simUntil(t, ['--gateway', h.gw.mqttUrl, '--credentials', join(dir, 'wrong.json'), '--manifest', manifest, '--json'], io, (f) => f.summary().connects.failed > 0, 'a refused connect');
  t.equal(code, 1);
  t.match(err.join('\n'), /no device could connect \(\d+ attempts? refused or failed: Connection refused: Bad username or password \(\d+\)\)/, 'with why: the gateway refused the token');
  t.notMatch(err.join('\n'), /th-0/, 'each reason once, not once per device');
  const [, n, word] = /\((\d+) (attempts?) refused/.exec(err.join('\n')) ?? [];
  t.equal(word, n === '1' ? 'attempt' : 'attempts', `"${n} ${word}": singular for one`);
});

/** The two API routes the simulator uses, served from a real gateway, with a bearer token. */
async function fakeApi(t: Tap.Test, h: Harness, token: string) {
  const calls: string[] = [];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    calls.push(`${req.method} ${req.url}`);
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.headers.authorization !== `Bearer ${token}`) return send(401, { statusCode: 401, error: 'Unauthorized', message: 'a valid bearer token is required' });
    if (req.method === 'GET' && req.url === '/v1/info') return send(200, { name: 'pinwave', version: '0.1.0', mqttUrl: h.gw.mqttUrl, kid: h.gw.signing!.kid, publicKey: h.gw.signing!.publicPem });
    if (req.method === 'POST' && req.url!.startsWith('/v1/manifests')) {
      let body = '';
      for await (const chunk of req) body += chunk;
      try {
        const r = await h.gw.pushManifest(JSON.parse(body), 'adam', { replace: !req.url!.endsWith('?replace=false') });
        return send(r.status === 'created' ? 201 : 200, { status: r.status });
      } catch (err) {
        const e = err as GatewayError;
        return send(e.statusCode, { statusCode: e.statusCode, code: e.code, message: e.message, details: e.details });
      }
    }
    if (req.method === 'POST' && req.url === '/v1/devices') {
      let body = '';
      for await (const chunk of req) body += chunk;
      try {
        return send(201, await h.gw.provision(JSON.parse(body).devices));
      } catch (err) {
        return send(400, { statusCode: 400, error: 'Bad Request', message: (err as Error).message });
      }
    }
    return send(404, { statusCode: 404, error: 'Not Found', message: 'no such route' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

t.test('--api provisions the devices, builds a default manifest from the gateway key, and runs a scenario of two models', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const api = await fakeApi(t, h, 'admin-token');
  const endpoint = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => endpoint.close());
  const dir = t.testdir();
  const scenario = join(dir, 'scenario.json');
  writeFileSync(
    scenario,
    JSON.stringify({
      group: 'meters',
      devices: 8,
      seed: 3,
      models: [{ model: 'mt-1', weight: 3, firmware: '0.1.0' }, { model: 'mt-2', behaviours: { silentRate: 1 } }],
      endpoints: [{ host: 'api.example.com', connect: `127.0.0.1:${endpoint.address.port}` }],
      callHomeSeconds: 3600,
    }),
  );
  const { io, out, err } = fakeIo({ PINWAVE_TOKEN: 'admin-token' });
  let fleetRef: Fleet | undefined;
  let rollout = '';
  const code = await simUntil(t, ['--api', api.url, '--scenario', scenario, '--handshake-each', '--verify-each', '--json'], io, async (fleet) => {
    fleetRef = fleet;
    if (!rollout) {
      if (h.gw.connectedCount() < 8) return false;
      const bundle = await h.gw.createBundle({ group: 'meters', endpoints: [{ host: 'api.example.com', pins: [endpoint.pins[0], endpoint.backupPin] }] }, 'alice');
      rollout = (await h.gw.createRollout({ bundle: bundle.id, target: { group: 'meters' }, waves: [{ size: '100%' }], start: true }, 'alice')).rollout.id;
    }
    // The default manifests check the scenario's endpoint: every device verifies (the silent ones too, unacked).
    const s = fleet.summary();
    return s.verified === 8 && s.handshakes.performed >= 8;
  }, 'the rollout and the pin checks');
  t.equal(code, 0, err.join('\n'));
  t.same(api.calls, ['GET /v1/info', 'POST /v1/manifests?replace=false', 'POST /v1/manifests?replace=false', 'POST /v1/devices'], 'the manifests the devices are born with are registered, then the devices provisioned');
  t.same(h.gw.listManifests().filter((e) => e.source === 'pushed').map((e) => [e.manifest.model, e.manifest.firmware, e.manifest.trustedKeys]), [['mt-1', '0.1.0', [h.gw.signing!.publicPem]], ['mt-2', '1.0.0', [h.gw.signing!.publicPem]]]);
  const s = JSON.parse(out[0]);
  t.match(s, { seed: 3, devices: 8, healthChecked: 8, verified: 8, reverted: {}, failing: 0, pinFailures: { observed: 0 }, verifications: { performed: 8, shared: 0 } });
  const models = fleetRef!.devices.map((d) => (h.gw.store.getDevice(d.id) as Promise<{ model: string | null } | null>));
  t.same((await Promise.all(models)).map((d) => d?.model), ['mt-1', 'mt-1', 'mt-1', 'mt-1', 'mt-1', 'mt-1', 'mt-2', 'mt-2'], 'provisioned by weight, with their models');
  t.ok(fleetRef!.devices.every((d) => /^sim-[a-z0-9]+-\d$/.test(d.id)), 'run-scoped ids');
  t.same(fleetRef!.devices[0].state.endpoints[0].pins.slice(0, 1), [endpoint.pins[0].slice(7)], 'born pinning what the endpoint serves');
});

t.test('--api reports what the API said when it refuses, and a default manifest with nothing to pin', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const api = await fakeApi(t, h, 'right');
  const { io } = fakeIo({ PINWAVE_TOKEN: 'wrong' });
  await t.rejects(main(['--api', api.url, '--devices', '2', '--group', 'g'], io), /GET http:\/\/127\.0\.0\.1:\d+\/v1\/info: 401 a valid bearer token is required/);
  const closed = createServer().listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  await t.rejects(main(['--api', `http://127.0.0.1:${port}`, '--devices', '2', '--group', 'g'], io), new RegExp(`GET http://127\\.0\\.0\\.1:${port}/v1/info: .*ECONNREFUSED`));
  const ok = fakeIo({ PINWAVE_TOKEN: 'right' });
  let fleetRef: Fleet | undefined;
  t.equal(await simUntil(t, ['--api', `${api.url}/`, '--devices', '2', '--group', 'g', '--model', 'mx-1', '--duration', '60s'], ok.io, (f) => ((fleetRef = f), f.summary().connected === 2), 'two devices'), 0);
  t.same(fleetRef!.devices[0].state.endpoints.map((e) => e.host), ['pinwave-sim.invalid']);
  const endpointDown = join(t.testdir(), 's.json');
  writeFileSync(endpointDown, JSON.stringify({ endpoints: [{ host: 'api.example.com', connect: '127.0.0.1:1' }] }));
  await t.rejects(main(['--api', api.url, '--devices', '2', '--group', 'g', '--scenario', endpointDown], ok.io), /cannot read what api\.example\.com:443 serves/);
});

t.test('--api never replaces a different manifest the gateway holds for the model and firmware: it stops before provisioning, unless --replace-manifests', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const api = await fakeApi(t, h, 'admin-token');
  const operators = { model: 'mx-1', firmware: '1.0.0', trustedKeys: [h.gw.signing!.publicPem], pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] };
  await h.gw.pushManifest(operators, 'olga');
  const { io } = fakeIo({ PINWAVE_TOKEN: 'admin-token' });
  await t.rejects(
    main(['--api', api.url, '--devices', '1', '--group', 'g', '--model', 'mx-1'], io),
    { message: 'the gateway holds a different manifest for model "mx-1" firmware "1.0.0" (a manifest pushed by olga; it differs in pins): no device was provisioned. To go on, give the devices a manifest of another firmware version (--manifest FILE, or "firmware" per model in the scenario), or --replace-manifests to replace the one the gateway holds' },
  );
  t.notOk(api.calls.includes('POST /v1/devices'), 'no device provisioned');
  const pushed = () => h.gw.listManifests().filter((e) => e.source === 'pushed');
  t.same(pushed().map((e) => [e.manifest, e.pushedBy]), [[operators, 'olga']], "the operator's manifest is kept");
  // The same manifest as the one held: the run goes on; --replace-manifests replaces a different one.
  const same = join(t.testdir(), 'same.json');
  writeFileSync(same, JSON.stringify(operators));
  t.equal(await simUntil(t, ['--api', api.url, '--devices', '1', '--group', 'g', '--manifest', same, '--duration', '60s'], io, (f) => f.summary().connected === 1, 'one device'), 0);
  t.equal(await simUntil(t, ['--api', api.url, '--devices', '1', '--group', 'g', '--model', 'mx-1', '--replace-manifests', '--duration', '60s'], io, (f) => f.summary().connected === 1, 'one device'), 0);
  t.same(pushed().map((e) => [e.manifest.pins.map((p) => p.host), e.pushedBy]), [[['pinwave-sim.invalid'], 'adam']], 'replaced when asked');
  t.equal(api.calls.at(-2), 'POST /v1/manifests', 'a plain push');
});

t.test('a scenario with a health check: its devices verify with real handshakes, and --no-health-check turns it off', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  const endpoint = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => endpoint.close());
  const { credentials, dir } = await provisioned(t, h, 6);
  const manifest = join(dir, 'manifest-pinning-endpoint.json');
  writeFileSync(manifest, JSON.stringify({ ...h.manifest, pins: [{ host: 'api.example.com', pins: [endpoint.pins[0], endpoint.backupPin] }] }));
  const scenario = join(dir, 'health-check.json');
  writeFileSync(
    scenario,
    JSON.stringify({
      endpoints: [{ host: 'api.example.com', connect: `127.0.0.1:${endpoint.address.port}` }],
      callHomeSeconds: 0,
      models: [{ model: 'th-100', healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' }, withoutHealthCheck: { share: 0.5, firmware: '0.9.0' } }],
    }),
  );
  const rollouts: string[] = [];
  const push = async (fleet: Fleet) => {
    // (This gateway counts applied and rejected acks only: the first rollout is still running when the second comes.)
    for (const id of rollouts.splice(0)) await h.gw.abortRollout(id, 'alice');
    const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [endpoint.pins[0], endpoint.backupPin] }] }, 'alice');
    rollouts.push((await h.gw.createRollout({ bundle: bundle.id, target: { devices: fleet.devices.map((d) => d.id) }, waves: [{ size: '100%' }], start: true }, 'alice')).rollout.id);
  };
  const checked = fakeIo();
  let sent = false;
  let older = 0;
  t.equal(
    await simUntil(t, ['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--group', 'thermostats', '--scenario', scenario, '--seed', 'hc'], checked.io, async (fleet) => {
      if (!sent) {
        if (h.gw.connectedCount() < 6) return false;
        sent = true;
        await push(fleet);
      }
      const s = fleet.summary();
      older = fleet.devices.filter((d) => d.healthCheck === null).length;
      return s.healthChecked === 6 - older && s.verified === 6 - older && s.acked === older;
    }, 'health-checked devices to verify and the older ones to apply'),
    0,
  );
  t.ok(older > 0 && older < 6, `${older} of 6 on older firmware`);
  t.match(checked.out.at(-1), new RegExp(`\\| health-checked ${6 - older}: verifying 0, verified ${6 - older}, reverted 0 \\|`), 'the live view shows the health checks');
  const off = fakeIo();
  sent = false;
  t.equal(
    await simUntil(t, ['--gateway', h.gw.mqttUrl, '--credentials', credentials, '--manifest', manifest, '--group', 'thermostats', '--scenario', scenario, '--no-health-check', '--json'], off.io, async (fleet) => {
      if (!sent) {
        if (h.gw.connectedCount() < 6) return false;
        sent = true;
        await push(fleet);
      }
      return fleet.summary().acked === 6;
    }, 'every device to apply at once'),
    0,
  );
  t.match(JSON.parse(off.out[0]), { healthChecked: 0, verified: 0, acked: 6 });
});

t.test('a manifest pinwave sim builds declares a health check of the scenario endpoints by default; the switch turns it off', async (t) => {
  t.equal(HEALTH_CHECK_BY_DEFAULT, true, 'on: the gateway counts verified and reverted');
  const endpoints = [{ host: 'api.example.com', port: 443, connect: { host: '127.0.0.1', port: 8443 } }, { host: 'ota.example.com', port: 8883 }, { host: 'api.example.com', port: 443 }];
  t.equal(defaultHealthCheck(endpoints, false), undefined);
  t.same(defaultHealthCheck(endpoints), defaultHealthCheck(endpoints, true));
  t.same(defaultHealthCheck(endpoints, true), { endpoints: [{ host: 'api.example.com', port: 443 }, { host: 'ota.example.com', port: 8883 }], commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' });
  t.equal(defaultHealthCheck([], true), undefined, 'a fleet with nothing to call acks at once');
});

t.test('--processes 2 runs the fleet in two workers with one summary; each device connects to the broker its tokens file names', async (t) => {
  const h = await harness(t, { now: Date.now }); // the CLI's devices run on the real clock
  // every device names its broker; --gateway names a closed port, for devices that name none
  const { credentials, manifest, dir } = await provisioned(t, h, 6, { broker: h.gw.mqttUrl });
  const { io, out, err } = fakeIo();
  const stop = new AbortController();
  const running = main(['--gateway', 'mqtt://127.0.0.1:1', '--tokens', credentials, '--manifest', manifest, '--group', 'thermostats', '--processes', '2', '--connect-rate', '50', '--json'], io, { signal: stop.signal });
  try {
    await until(() => h.gw.connectedCount() === 6, 20_000, 'six devices connected from two processes');
    const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
    const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
    await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 6, 10_000, 'six applied');
    // the workers report every 250 ms: wait for the report that carries the acks
    await new Promise((r) => setTimeout(r, 600));
  } finally {
    stop.abort();
  }
  t.equal(await running, 0, err.join('\n'));
  const s = JSON.parse(out[0]);
  t.match(s, { devices: 6, connected: 6, acked: 6, seqs: { '1': 6 }, connects: { ok: 6, failed: 0 } });
  t.equal(s.verifications.performed, 2, 'one verification per process');
  t.equal(s.latency.connect.reduce((a: number, b: number) => a + b, 0), 6, 'six connect latencies');
  t.equal(s.latency.bundle.reduce((a: number, b: number) => a + b, 0), 6, 'six bundle latencies');
  await until(() => h.gw.connectedCount() === 0, 5000, 'a clean disconnect');

  // a device that names no broker, with no --gateway; a broker that is not an MQTT URL
  writeFileSync(join(dir, 'nobroker.json'), JSON.stringify([{ id: 'th-0', token: 'x', group: 'thermostats' }]));
  await t.rejects(main(['--tokens', join(dir, 'nobroker.json'), '--manifest', manifest], io), { name: 'UsageError', message: /device th-0 \(entry 0\) names no "broker": give --gateway/ });
  writeFileSync(join(dir, 'badbroker.json'), JSON.stringify([{ id: 'th-0', token: 'x', broker: 'http://x' }]));
  await t.rejects(main(['--tokens', join(dir, 'badbroker.json'), '--manifest', manifest], io), /\/devices\/0\/broker expects mqtt:\/\/HOST:PORT/);
  writeFileSync(join(dir, 'numbroker.json'), JSON.stringify([{ id: 'th-0', token: 'x', broker: 7 }]));
  await t.rejects(main(['--tokens', join(dir, 'numbroker.json'), '--manifest', manifest], io), /\/devices\/0\/broker must be an mqtt:\/\/ URL string/);
});

t.test('a tokens entry whose id, group or model the gateway would refuse is named before any device connects', async (t) => {
  const dir = t.testdir({ 'manifest.json': JSON.stringify({ model: 'th-100', firmware: '1.0.0', trustedKeys: [generateKeyPair().publicPem], pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] }) });
  const manifest = join(dir, 'manifest.json');
  const cases: Array<[unknown, RegExp]> = [
    [{ id: 'a/b', token: 't' }, /--tokens .*bad\.json: \/devices\/0\/id: device id may hold only A-Z a-z 0-9 \. _ : -, got "\/" \(U\+002F\) at index 1/],
    [{ id: '#', token: 't' }, /\/devices\/0\/id: /],
    [{ id: '..', token: 't' }, /\/devices\/0\/id: /],
    [{ id: 'ok', token: 't', group: 'a b' }, /\/devices\/0\/group must be 1 to 64 characters of A-Z a-z 0-9 \. _ : -, got "a b"/],
    [{ id: 'ok', token: 't', group: 5 }, /\/devices\/0\/group must be .*, got 5/],
    [{ id: 'ok', token: 't', model: 5 }, /\/devices\/0\/model must be 1 to 64 printable ASCII characters, got 5/],
  ];
  for (const [entry, message] of cases) {
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ devices: [entry] }));
    const { io } = fakeIo();
    await t.rejects(main(['--gateway', 'mqtt://127.0.0.1:9', '--tokens', join(dir, 'bad.json'), '--manifest', manifest, '--group', 'g', '--duration', '1s'], io), { message }, JSON.stringify(entry));
  }
});

t.test('a tokens file others may read is warned about (its tokens are secrets, as a signing key); a device listed twice is named with both entries', async (t) => {
  const dir = t.testdir({ 'manifest.json': JSON.stringify({ model: 'th-100', firmware: '1.0.0', trustedKeys: [generateKeyPair().publicPem], pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] }) });
  const manifest = join(dir, 'manifest.json');
  const file = join(dir, 'twice.json');
  writeFileSync(file, JSON.stringify({ devices: [{ id: 'th-0', token: 't' }, { id: 'th-1', token: 't' }, { id: 'th-0', token: 'u' }] }), { mode: 0o644 });
  chmodSync(file, 0o644);
  const loose = fakeIo();
  await t.rejects(main(['--gateway', 'mqtt://127.0.0.1:9', '--tokens', file, '--manifest', manifest, '--group', 'g', '--duration', '1s'], loose.io), { message: `--tokens ${file}: /devices/2/id: device th-0 is /devices/0 too` });
  t.same(loose.err, [`warning: --tokens ${file} is readable by group or others (mode 0644): it holds device tokens; run: chmod 600 ${file}`]);
  chmodSync(file, 0o600);
  const tight = fakeIo();
  await t.rejects(main(['--gateway', 'mqtt://127.0.0.1:9', '--tokens', file, '--manifest', manifest, '--group', 'g', '--duration', '1s'], tight.io), { message: /is \/devices\/0 too/ });
  t.same(tight.err, [], 'mode 0600: no warning');
});

t.test("a default manifest's backup pin is the one earlier releases derived, an IPv6 endpoint's too: a run after an upgrade pushes the same manifest", async (t) => {
  const { createHash } = await import('node:crypto');
  const earlier = (label: string) => `sha256/${createHash('sha256').update(`pinwave sim placeholder ${label}`).digest('base64')}`;
  t.equal(backupPin('api.example.com', 443), earlier('backup api.example.com:443'));
  t.equal(backupPin('::1', 8443), earlier('backup ::1:8443'), 'not seeded by the bracketed text people read');
});
