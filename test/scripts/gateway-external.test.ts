// `pinwave gateway --broker URL --broker-auth FILE` (docs/external-broker.md): the gateway as a
// client of a Mosquitto of the test's own; GET /v1/info gives devices the broker, and
// `pinwave sim --api` connects there with retained presence. Bad broker options are refused with
// the option named.
import t from 'tap';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { serve } from '../../scripts/commands/gateway.ts';
import { main as sim } from '../../scripts/commands/sim.ts';
import { ConfigError, loadConfig } from '../../gateway/config.ts';
import type { Io } from '../../scripts/args.ts';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { until } from '../fixtures/gateway.ts';
import { mosquitto, runClient } from '../fixtures/mosquitto.ts';
import { testDatabase } from '../gateway/store/fixtures/pg-database.ts';

const ADMIN = 'admin-token-for-the-external-test-0123';

function fakeIo(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env, tty: false };
  return { io, out, err };
}

const sink = () => new Writable({ write: (_c, _e, done) => done() });

t.test('pinwave gateway --broker: devices are given the broker, and the simulator connects there with retained presence', async (t) => {
  const b = await mosquitto(t);
  const dir = t.testdir();
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
  const { io, out } = fakeIo({ PINWAVE_ADMIN_TOKEN: ADMIN });
  let off!: () => void;
  const stopped = new Promise<void>((resolve) => (off = resolve));
  const done = serve(['--data', join(dir, 'data'), '--key', keyPath, '--http-port', '0', '--broker', b.url, '--broker-auth', b.dir.authPath], io, { until: stopped, log: sink() });
  await until(() => out.some((l) => l.startsWith('http listening on ')), 10_000, 'the http line');
  t.ok(out.includes(`devices connect to the broker at ${b.url} (the gateway is its client pinwave@gateway)`), out.join('\n'));
  t.notOk(out.some((l) => l.startsWith('mqtt listening')), 'no MQTT listener of its own');
  const api = out.find((l) => l.startsWith('http listening on '))!.slice('http listening on '.length);
  const info = await (await fetch(`${api}/v1/info`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
  t.match(info, { mqttUrl: b.url, broker: 'external' });

  const simIo = fakeIo({ PINWAVE_TOKEN: ADMIN });
  const code = await sim(['--api', api, '--devices', '4', '--group', 'g', '--duration', '2s', '--json'], simIo.io);
  t.equal(code, 0, simIo.err.join('\n'));
  const summary = JSON.parse(simIo.out.at(-1)!);
  t.equal(summary.connected ?? summary.devices, 4, simIo.out.at(-1));
  // their presence was retained, and set offline when they disconnected cleanly (no will then)
  const retained = await runClient('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv5', '-i', 'pinwave@presence-reader', '-u', b.gateway.username, '-P', b.gateway.password, '-t', 'pinwave/v1/devices/+/presence', '-W', '1', '-F', '%r %p']);
  const lines = retained.stdout.toString().trim().split('\n').filter(Boolean);
  t.equal(lines.length, 4, `one retained presence per device: ${lines.join(' | ')}`);
  t.ok(lines.every((l) => l === '1 offline'), 'retained, and offline after a clean disconnect');
  off();
  t.equal(await done, 0);
});

t.test('a broker that refuses the gateway credentials stops the start, saying so', async (t) => {
  const b = await mosquitto(t);
  const dir = t.testdir();
  const authPath = join(dir, 'gateway-broker.json');
  writeFileSync(authPath, JSON.stringify({ username: 'pinwave@gateway', password: 'not-the-password-0123' }), { mode: 0o600 });
  const { io } = fakeIo({ PINWAVE_ADMIN_TOKEN: ADMIN });
  await t.rejects(serve(['--data', join(dir, 'data'), '--http-port', '0', '--broker', b.url, '--broker-auth', authPath], io, { until: new Promise(() => {}), log: sink() }), {
    message: `the broker at ${b.url} refused the gateway's credentials (pinwave@gateway): Connection refused: Not authorized`,
  });
});

/** The problems loadConfig names for these flags (and file), in a data dir `dir`; none: []. */
const problemsIn = (dir: string) => (flags: Parameters<typeof loadConfig>[0]['flags'], file?: string) => {
  try {
    loadConfig({ file: file ?? null, flags: { dataDir: dir, ...flags } });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
};

t.test('bad broker options are refused, each named', async (t) => {
  const dir = t.testdir();
  const authPath = join(dir, 'gateway-broker.json');
  writeFileSync(authPath, JSON.stringify({ username: 'pinwave@gateway', password: 'secret-password-0123' }), { mode: 0o600 });
  const problems = problemsIn(dir);
  t.match(problems({ brokerUrl: 'mqtt://127.0.0.1' }), ['--broker: must name the port (1883 is never assumed), got "mqtt://127.0.0.1"', /^--broker: needs the gateway's broker credentials/]);
  t.match(problems({ brokerUrl: 'http://127.0.0.1:1' }), [/^--broker: must be mqtt:\/\/HOST:PORT or mqtts:\/\/HOST:PORT/]);
  t.match(problems({ brokerUrl: 'mqtt://127.0.0.1:18830' }), [/^--broker: needs the gateway's broker credentials: --broker-auth FILE/]);
  t.match(problems({ brokerAuth: authPath }), [/^--broker-auth: needs the broker's URL/]);
  t.match(problems({ brokerUrl: 'mqtt://127.0.0.1:18830', brokerAuth: authPath, brokerCa: authPath }), [/^--broker-ca: a CA is for an mqtts:\/\/ broker/]);
  chmodSync(authPath, 0o644);
  t.match(problems({ brokerUrl: 'mqtt://127.0.0.1:18830', brokerAuth: authPath }), [/^--broker-auth: the broker credentials .* are readable by group or others \(mode 0644\); run: chmod 600/]);
  chmodSync(authPath, 0o600);
  const ok = loadConfig({ flags: { dataDir: dir, brokerUrl: 'mqtt://127.0.0.1:18830', brokerAuth: authPath } });
  t.same(ok.broker, [{ url: 'mqtt://127.0.0.1:18830', username: 'pinwave@gateway', password: 'secret-password-0123' }]);
  // the file's keys, paths relative to it
  const conf = join(dir, 'pinwave.json');
  writeFileSync(conf, JSON.stringify({ broker: { url: 'mqtts://broker.example.com:8883', auth: 'gateway-broker.json', clientId: 'gw-1', colour: 'blue' } }));
  t.match(problems({}, conf), ['config.broker.colour: unknown option (known: url, urls, auth, ca, clientId, deviceUrl)', /^config.broker.clientId: must be 1 to 128 characters holding an "@"/]);
  writeFileSync(conf, JSON.stringify({ broker: { url: 'mqtts://broker.example.com:8883', auth: 'gateway-broker.json', clientId: 'pinwave@gw-1', deviceUrl: 'mqtts://devices.example.com:8883' } }));
  t.match(loadConfig({ file: conf, flags: { dataDir: dir } }).broker, [{ url: 'mqtts://broker.example.com:8883', clientId: 'pinwave@gw-1', deviceUrl: 'mqtts://devices.example.com:8883', username: 'pinwave@gateway' }]);
});

t.test('several brokers: --broker repeated or a comma list, one credentials file for all or one each', async (t) => {
  const dir = t.testdir();
  const authA = join(dir, 'a.json');
  const authB = join(dir, 'b.json');
  writeFileSync(authA, JSON.stringify({ username: 'pinwave@gateway', password: 'password-of-broker-a' }), { mode: 0o600 });
  writeFileSync(authB, JSON.stringify({ username: 'pinwave@gateway', password: 'password-of-broker-b' }), { mode: 0o600 });
  const problems = problemsIn(dir);
  const A = 'mqtt://127.0.0.1:18831';
  const B = 'mqtt://127.0.0.1:18832';
  const shared = loadConfig({ flags: { dataDir: dir, brokerUrl: [A, B], brokerAuth: authA } }).broker!;
  t.same(shared.map((b) => [b.url, b.password]), [[A, 'password-of-broker-a'], [B, 'password-of-broker-a']], 'one file serves every broker');
  const each = loadConfig({ flags: { dataDir: dir, brokerUrl: `${A},${B}`, brokerAuth: [authA, authB] } }).broker!;
  t.same(each.map((b) => [b.url, b.password]), [[A, 'password-of-broker-a'], [B, 'password-of-broker-b']], 'a comma list, a file each in the same order');
  t.match(problems({ brokerUrl: [A, B, 'mqtt://127.0.0.1:18833'], brokerAuth: [authA, authB] }), ['--broker-auth: give one (for every broker) or one per --broker (3), got 2']);
  t.match(problems({ brokerUrl: [A, A], brokerAuth: authA }), [`--broker #2: ${A} is given twice (--broker #1): each broker once`]);
  t.match(problems({ brokerUrl: [A, 'mqtt://127.0.0.1'], brokerAuth: authA }), ['--broker #2: must name the port (1883 is never assumed), got "mqtt://127.0.0.1"']);
  // the file: urls, each a URL or an entry with its own auth; broker.auth for those that name none
  const conf = join(dir, 'pinwave.json');
  writeFileSync(conf, JSON.stringify({ broker: { auth: 'a.json', urls: [A, { url: B, auth: 'b.json', deviceUrl: 'mqtt://broker-b.example.com:18830' }] } }));
  t.same(loadConfig({ file: conf, flags: { dataDir: dir } }).broker!.map((b) => [b.url, b.password, b.deviceUrl]), [[A, 'password-of-broker-a', undefined], [B, 'password-of-broker-b', 'mqtt://broker-b.example.com:18830']]);
  writeFileSync(conf, JSON.stringify({ broker: { url: A, urls: [B], auth: 'a.json' } }));
  t.match(problems({}, conf), ['config.broker.url: give url (one broker) or urls (several), not both']);
  writeFileSync(conf, JSON.stringify({ broker: { urls: [A, { url: B, colour: 'blue' }] } }));
  t.match(problems({}, conf), ['config.broker.urls[1].colour: unknown option (known: url, auth, ca, deviceUrl)', /^config.broker.urls\[0\]: needs the gateway's broker credentials/, /^config.broker.urls\[1\].url: needs the gateway's broker credentials/]);
  writeFileSync(conf, JSON.stringify({ broker: { urls: [] } }));
  t.match(problems({}, conf), [/^config.broker.urls: must be a non-empty list/]);
});

t.test('pinwave gateway --store postgres:// --broker: a replica, named by --broker-client-id, in its start line, /v1/info and /metrics', async (t) => {
  const b = await mosquitto(t);
  const url = await testDatabase(t);
  const dir = t.testdir();
  const { io, out } = fakeIo({ PINWAVE_ADMIN_TOKEN: ADMIN });
  let off!: () => void;
  const stopped = new Promise<void>((resolve) => (off = resolve));
  const done = serve(['--store', url, '--http-port', '0', '--broker', b.url, '--broker-auth', b.dir.authPath, '--broker-client-id', 'pinwave@cli-a'], io, { until: stopped, log: sink() });
  await until(() => out.some((l) => l.startsWith('http listening on ')), 20_000, 'the http line');
  t.ok(out.includes('replica pinwave@cli-a: leading (runs the rollout engine)'), out.join('\n'));
  const api = out.find((l) => l.startsWith('http listening on '))!.slice('http listening on '.length);
  const info = await (await fetch(`${api}/v1/info`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
  t.same(info.replica, { id: 'pinwave@cli-a', leader: true });
  const metrics = await (await fetch(`${api}/metrics`)).text();
  t.match(metrics, /^pinwave_replica_leader\{replica="pinwave@cli-a"\} 1$/m);
  off();
  t.equal(await done, 0);
  t.match(problemsOf({ brokerUrl: b.url, brokerAuth: b.dir.authPath, brokerClientId: 'gw-no-at' }), ['--broker-client-id: must be 1 to 128 characters holding an "@" (so no device can take it), got "gw-no-at"']);
});

function problemsOf(flags: Parameters<typeof loadConfig>[0]['flags']): string[] {
  try {
    loadConfig({ file: null, flags: { dataDir: '/nonexistent', ...flags } });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
}
