// `pinwave config check FILE` decides what `pinwave gateway`'s start-up checks decide (scripts/start-checks.ts):
// two of its own listeners that cannot share a port, judged by address as the system judges them, and the
// warnings the gateway logs at start for a configured manifest.
import t from 'tap';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

const io = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l), env: {}, tty: false } satisfies Io };
};

/** `config check` of a file with these lines (and a data dir, no signing key): its exit status and output. */
async function check(t: { testdir(): string }, lines: string[]) {
  const dir = t.testdir();
  const file = join(dir, 'pinwave.yaml');
  writeFileSync(file, [`dataDir: ${join(dir, 'data')}`, ...lines, ''].join('\n'));
  const o = io();
  const status = await run(['config', 'check', file], o.io);
  return { status, dir, file, ...o };
}

t.test('config check: listeners on 0.0.0.0 and :: with one port clash, as the gateway refuses them at start', async (t) => {
  const r = await check(t, ['host: 0.0.0.0', 'mqtt: { port: 18830 }', 'http: { host: "::", port: 18830 }']);
  t.equal(r.status, 1);
  t.same(r.err.slice(1), ['  config http.port 18830: [::]:18830 is taken by config mqtt.port 18830 already: give each listener a port of its own']);
});

t.test('config check: localhost and 127.0.0.1 on one port clash (localhost is 127.0.0.1 to the listen)', async (t) => {
  const r = await check(t, ['host: localhost', 'mqtt: { port: 18831 }', 'http: { host: 127.0.0.1, port: 18831 }']);
  t.equal(r.status, 1);
  t.same(r.err.slice(1), ['  config http.port 18831: 127.0.0.1:18831 is taken by config mqtt.port 18831 already: give each listener a port of its own']);
});

t.test('config check: 0.0.0.0 and ::1 on one port do not clash (the system lets them share it)', async (t) => {
  const r = await check(t, ['host: 0.0.0.0', 'mqtt: { port: 18832 }', 'http: { host: "::1", port: 18832 }']);
  t.equal(r.status, 0, r.err.join('\n'));
});

t.test('config check: with an external broker, mqtt.port is no listener of the gateway and clashes with nothing', async (t) => {
  const dir = t.testdir();
  const auth = join(dir, 'gateway-broker.json');
  writeFileSync(auth, JSON.stringify({ username: 'gw', password: 'secret-password-0123' }), { mode: 0o600 });
  const file = join(dir, 'pinwave.yaml');
  writeFileSync(file, `dataDir: ${join(dir, 'data')}\nmqtt: { port: 18833 }\nhttp: { port: 18833 }\nbroker: { url: "mqtt://broker.example.com:1883", auth: ${auth} }\n`);
  const o = io();
  t.equal(await run(['config', 'check', file], o.io), 0, o.err.join('\n'));
});

t.test("config check: a configured manifest's warnings are printed, as the gateway logs them at start", async (t) => {
  const dir = t.testdir();
  const pin = (s: string) => `sha256/${createHash('sha256').update(s).digest('base64')}`;
  const manifest = join(dir, 'th-200.json');
  writeFileSync(manifest, JSON.stringify({ model: 'th-200', firmware: '2.0.0', trustedKeys: [generateKeyPair().publicPem], maxBundleBytes: 128, pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] }));
  const file = join(dir, 'pinwave.yaml');
  writeFileSync(file, `dataDir: ${join(dir, 'data')}\nmqtt: { port: 0 }\nhttp: { port: 0 }\nmanifests: [th-200.json]\n`);
  const text = io();
  t.equal(await run(['config', 'check', file], text.io), 0, 'a warning, not a problem');
  t.match(text.out.filter((l) => l.includes('warning:')), [/^  warning: config\.manifests\[0\] \(th-200 2\.0\.0\): \/pins: the initial pins \(1 endpoint\) need a bundle of at least \d+ bytes, above the 128 bytes this firmware takes \(maxBundleBytes\)/]);
  const json = io();
  t.equal(await run(['config', 'check', file, '--json'], json.io), 0);
  t.match(JSON.parse(json.out.join('\n')).warnings, [/^config\.manifests\[0\] \(th-200 2\.0\.0\): \/pins: the initial pins/]);
});

t.test('config check: MQTT on a wildcard address without mqtt.deviceUrl is a warning naming the key, as at start', async (t) => {
  const wild = await check(t, ['host: 0.0.0.0', 'mqtt: { port: 0 }', 'http: { host: 127.0.0.1, port: 0 }']);
  t.equal(wild.status, 0, wild.err.join('\n'));
  t.match(wild.out.filter((l) => l.includes('warning:')), [/without TLS/, /^  warning: MQTT listens on 0\.0\.0\.0, which no device can connect to: .*set mqtt\.deviceUrl/]);
  const told = await check(t, ['host: 0.0.0.0', 'mqtt: { port: 0, deviceUrl: "mqtts://gw.example.com:8883" }', 'http: { host: 127.0.0.1, port: 0 }']);
  t.equal(told.status, 0, told.err.join('\n'));
  t.notMatch(told.out.join('\n'), /no device can connect/, 'with it: no warning');
  t.match(told.out.join('\n'), /^  mqtt {12}mqtt:\/\/0\.0\.0\.0:0, devices are given mqtts:\/\/gw\.example\.com:8883$/m, 'the summary names it');
});
