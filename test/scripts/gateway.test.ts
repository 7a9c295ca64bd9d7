// `pinwave gateway`: MQTT and HTTP in one process, real ports printed, config from file,
// environment and flags, a clean stop (store flushed, exit 0) on SIGINT/SIGTERM, JSON logs on
// stderr with no secret in them.
import { EmbeddedStore } from '../../gateway/store/embedded.ts';
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import { request as httpsRequest } from 'node:https';
import { connect as connectTcp } from 'node:net';
import { cleartextWarnings, isLoopback, serve, startWarnings } from '../../scripts/commands/gateway.ts';
import { loadConfig } from '../../gateway/config.ts';
import { chain } from '../fixtures/openssl.ts';
import { UsageError, type Io } from '../../scripts/args.ts';
import { hashToken } from '../../gateway/credentials.ts';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { pin, until } from '../fixtures/gateway.ts';

const ADMIN = 'admin-token-for-the-gateway-test-0123';

function fakeIo(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env, tty: false };
  return { io, out, err };
}

function logSink() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

function setup(t: { testdir(): string }) {
  const dir = t.testdir();
  const keyPath = join(dir, 'signing.key');
  const key = generateKeyPair();
  writeFileSync(keyPath, key.privatePem, { mode: 0o600 });
  return { dir, keyPath, key };
}

/** A stop switch for serve(). */
function switchOff() {
  let off!: () => void;
  const until = new Promise<void>((resolve) => (off = resolve));
  return { until, off };
}

const url = (out: string[], what: 'mqtt' | 'http') => {
  const line = out.find((l) => l.startsWith(`${what} listening on `));
  return line?.slice(`${what} listening on `.length);
};

t.test('without --key the gateway starts upload-only: it says so, and asks for a signed bundle instead of signing', async (t) => {
  const { dir } = setup(t);
  const { io, out, err } = fakeIo({ PINWAVE_ADMIN_TOKEN: ADMIN });
  const stop = switchOff();
  const done = serve(['--data', join(dir, 'data'), '--mqtt-port', '0', '--http-port', '0'], io, { until: stop.until, log: logSink().stream });
  await until(() => url(out, 'http') !== undefined, 10_000, 'the http line');
  t.match(err.join('\n'), /no signing key: this gateway is upload-only/);
  const api = url(out, 'http')!;
  const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  t.match(await (await fetch(`${api}/v1/info`, { headers: auth })).json(), { kid: null, publicKey: null });
  const pins = [{ host: 'api.example.com', pins: [`sha256/${'A'.repeat(43)}=`, `sha256/${'B'.repeat(43)}=`] }];
  const signed = await fetch(`${api}/v1/bundles`, { method: 'POST', headers: auth, body: JSON.stringify({ group: 'g', pins }) });
  t.equal(signed.status, 409);
  t.match(await signed.json(), { code: 'PW_NO_SIGNING_KEY', message: /this gateway has no signing key; upload a signed bundle/ });
  stop.off();
  t.equal(await done, 0);
});

t.test('serves MQTT and HTTP on the real ports, and stops cleanly with the store flushed', async (t) => {
  const { dir, keyPath } = setup(t);
  const { io, out, err } = fakeIo({ PINWAVE_ADMIN_TOKEN: ADMIN });
  const log = logSink();
  const stop = switchOff();
  const done = serve(['--data', join(dir, 'data'), '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], io, { until: stop.until, log: log.stream });
  await until(() => url(out, 'http') !== undefined, 10_000, 'the http line');
  t.match(out[0], /^mqtt listening on mqtt:\/\/127\.0\.0\.1:[1-9]\d*$/);
  t.match(out[1], /^http listening on http:\/\/127\.0\.0\.1:[1-9]\d*$/);
  t.same(err, []);
  const api = url(out, 'http')!;
  const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

  t.equal((await fetch(`${api}/healthz`)).status, 200);
  const info = await (await fetch(`${api}/v1/info`, { headers: auth })).json();
  t.equal(info.mqttUrl, url(out, 'mqtt'));
  const made = await fetch(`${api}/v1/devices`, { method: 'POST', headers: auth, body: JSON.stringify({ devices: [{ id: 'th-1', group: 'thermostats' }] }) });
  t.equal(made.status, 201);
  const { devices } = await made.json();

  const device = await mqtt.connectAsync(url(out, 'mqtt')!, { clientId: 'th-1', username: 'th-1', password: devices[0].token, clean: false, reconnectPeriod: 0, connectTimeout: 5000 });
  t.ok(device.connected, 'a device connects with its token to the printed MQTT URL');
  await until(async () => (await (await fetch(`${api}/v1/devices/th-1`, { headers: auth })).json()).connected === true, 5000, 'the device seen as connected');
  await device.endAsync();

  stop.off();
  t.equal(await done, 0);
  t.ok(await inStore(join(dir, 'data'), (s) => s.getDevice('th-1')), 'the store holds the device after the stop');
  await t.rejects(fetch(`${api}/healthz`, { signal: AbortSignal.timeout(2000) }), 'the API is closed');

  const entries = log.lines.map((l) => JSON.parse(l));
  t.ok(entries.every((e) => typeof e.level === 'number' && typeof e.msg === 'string'), 'pino JSON lines');
  t.ok(entries.every((e) => typeof e.time === 'string' && new Date(e.time).toISOString() === e.time), 'times in ISO 8601');
  t.equal(entries.filter((e) => e.msg === 'pinwave gateway started').length, 1, 'one line for the start');
  t.equal(entries.filter((e) => e.msg === 'stopped').length, 1, 'one line for the stop');
  t.ok(entries.some((e) => e.msg === 'request completed' && e.component === 'http'), 'requests are logged');
  const text = log.lines.join('\n');
  for (const secret of [ADMIN, devices[0].token, hashToken(ADMIN)]) t.notOk(text.includes(secret), 'no token or hash in the log');
});

t.test('a config file sets tokens, TLS-less options and wave defaults; flags override it', async (t) => {
  const { dir, keyPath } = setup(t);
  const operator = 'operator-token-for-the-gateway-test';
  const config = join(dir, 'pinwave.yaml');
  writeFileSync(config, `dataDir: data\nkeyPath: ${keyPath}\nmqtt: { port: 1 }\nhttp: { port: 2 }\nlogLevel: warn\ntokens:\n  - { name: olga, role: operator, hash: "${hashToken(operator)}" }\nwaves: [{ size: "100%", ackThreshold: 0.5 }]\n`);
  const { io, out, err } = fakeIo();
  const log = logSink();
  const stop = switchOff();
  const done = serve(['--config', config, '--mqtt-port', '0', '--http-port', '0'], io, { until: stop.until, log: log.stream, now: () => Date.UTC(2026, 0, 1) });
  t.teardown(() => stop.off());
  await until(() => url(out, 'http') !== undefined, 10_000, 'the http line');
  t.same(err, [], 'tokens configured: no warning');
  const api = url(out, 'http')!;
  const auth = { authorization: `Bearer ${operator}`, 'content-type': 'application/json' };
  t.equal((await fetch(`${api}/v1/devices`, { headers: auth })).status, 200, 'the operator token from the file works');
  t.equal((await fetch(`${api}/v1/devices`, { method: 'POST', headers: auth, body: '{"devices":[{"id":"a","group":"g"}]}' })).status, 403);
  t.equal((await fetch(`${api}/v1/devices`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 401, 'no admin token here');
  const b = await (await fetch(`${api}/v1/bundles`, { method: 'POST', headers: auth, body: JSON.stringify({ group: 'g', pins: [{ host: 'a.example.com', pins: [pin('a'), pin('b')] }] }) })).json();
  t.equal(b.iat, Date.UTC(2026, 0, 1) / 1000, 'the injected clock');
  t.equal(b.createdBy, 'olga');
  stop.off();
  t.equal(await done, 0);
  t.ok(log.lines.every((l) => JSON.parse(l).level >= 40), 'logLevel warn from the file');
  t.ok(await inStore(join(dir, 'data'), (s) => s.getBundle(b.id)), 'dataDir relative to the config file');
});

t.test('a bad config is exit 2 naming the key; bad flags are usage errors; no token is a warning', async (t) => {
  const { dir, keyPath } = setup(t);
  const config = join(dir, 'c.json');
  writeFileSync(config, JSON.stringify({ http: { port: 'abc' } }));
  const bad = fakeIo();
  t.equal(await serve(['--config', config, '--data', dir, '--key', keyPath], bad.io), 2);
  t.same(bad.err, [`pinwave gateway: invalid configuration (${config}):\n  config.http.port: must be an integer 0-65535, got "abc"`]);
  const missing = fakeIo();
  t.equal(await serve([], missing.io), 2);
  t.match(missing.err[0], /dataDir: required: give --data DIR/);
  await t.rejects(serve(['--http-port', 'abc'], fakeIo().io), { name: 'UsageError', message: '--http-port expects a non-negative integer, got "abc"' });
  await t.rejects(serve(['--mqtt-port', '70000'], fakeIo().io), { message: '--mqtt-port must be 0 to 65535, got 70000' });
  await t.rejects(serve(['--port', '1'], fakeIo().io), UsageError);
  // an empty value is an unset variable (--host "$BIND"): not every interface, not upload-only without a word
  for (const flag of ['--host', '--http-host', '--key', '--next-key', '--data', '--config']) {
    await t.rejects(serve([...(flag === '--data' ? [] : ['--data', dir]), flag, '', '--mqtt-port', '0', '--http-port', '0'], fakeIo().io, { log: logSink().stream, until: new Promise(() => {}) }), { name: 'UsageError', message: `${flag} needs a value, got an empty string` }, flag);
  }
  const help = fakeIo();
  t.equal(await serve(['--help'], help.io), 0);
  t.match(help.out[0], /^Usage:\n {2}pinwave gateway \(--data DIR \| --store postgres:\/\/USER@HOST:PORT\/DB\) \[--key KEY\.pem\] \[--next-key NEXT\.pem\]/);

  const { io, out, err } = fakeIo();
  const stop = switchOff();
  const done = serve(['--data', join(dir, 'data'), '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], io, { until: stop.until, log: logSink().stream });
  await until(() => url(out, 'http') !== undefined, 10_000, 'the http line');
  t.same(err, ['warning: no API tokens configured: every /v1 route answers 401 (set PINWAVE_ADMIN_TOKEN, or tokens in --config)']);
  stop.off();
  t.equal(await done, 0);
});

t.test('a key others can read, or an HTTP port in use, fails the start and leaves nothing running', async (t) => {
  const { dir, keyPath } = setup(t);
  chmodSync(keyPath, 0o644);
  await t.rejects(serve(['--data', join(dir, 'data'), '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], fakeIo().io, { log: logSink().stream, until: new Promise(() => {}) }), { name: 'SigningKeyError', message: /readable by group or others/ });
  chmodSync(keyPath, 0o600);
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => busy.close(resolve)));
  const port = (busy.address() as { port: number }).port;
  const busyIo = fakeIo();
  t.equal(await serve(['--data', join(dir, 'data'), '--key', keyPath, '--mqtt-port', '0', '--http-port', String(port)], busyIo.io, { log: logSink().stream, until: new Promise(() => {}) }), 1);
  t.match(busyIo.err, [`pinwave gateway: --http-port ${port}: address 127.0.0.1:${port} is already in use`]);
});

t.test('SIGTERM stops the process: exit 0, the listening lines on stdout, JSON logs on stderr', async (t) => {
  const { dir, keyPath } = setup(t);
  const runner = new URL('../fixtures/pinwave-gateway.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, [...process.execArgv, runner, '--data', join(dir, 'data'), '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], {
    env: { ...process.env, PINWAVE_ADMIN_TOKEN: ADMIN, PINWAVE_CONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  t.teardown(() => clearTimeout(killer));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await until(() => stdout.includes('http listening on'), 45_000, 'the gateway to listen');
  const api = /http listening on (\S+)/.exec(stdout)![1];
  t.equal((await fetch(`${api}/healthz`)).status, 200);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after SIGTERM');
  t.match(stdout, /^mqtt listening on mqtt:\/\/127\.0\.0\.1:\d+\nhttp listening on http:\/\/127\.0\.0\.1:\d+\n$/);
  const logs = stderr.trim().split('\n').map((l) => JSON.parse(l));
  t.ok(logs.some((e) => e.msg === 'signal received' && e.signal === 'SIGTERM'));
  t.ok(logs.some((e) => e.msg === 'stopped'));
  t.notOk(stderr.includes(ADMIN));
});

t.test('http.tls serves the API over HTTPS on its own host; a TLS handshake left half done does not hold the stop', async (t) => {
  const { dir, keyPath } = setup(t);
  const certs = chain(dir);
  const config = join(dir, 'pinwave.yaml');
  writeFileSync(config, `http: { host: 127.0.0.1, tls: { key: ${certs.leaf.key}, cert: ${certs.file} } }\nshutdownTimeout: 5\n`);
  const { io, out, err } = fakeIo({ PINWAVE_ADMIN_TOKEN: ADMIN });
  const log = logSink();
  const stop = switchOff();
  const done = serve(['--config', config, '--data', join(dir, 'data'), '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], io, { until: stop.until, log: log.stream });
  t.teardown(() => stop.off());
  await until(() => out.some((l) => l.startsWith('https listening on ')), 10_000, 'the https line');
  t.match(out[1], /^https listening on https:\/\/127\.0\.0\.1:[1-9]\d*$/);
  t.same(err, [], 'TLS on loopback: no warning');
  const api = new URL(out[1].slice('https listening on '.length));
  const get = (path: string) =>
    new Promise<{ status: number; body: string; protocol: string }>((resolve, reject) => {
      const req = httpsRequest({ host: api.hostname, port: api.port, path, ca: readFileSync(certs.root.pem), agent: false, headers: { authorization: `Bearer ${ADMIN}` } }, (res) => {
        const protocol = (res.socket as unknown as { getProtocol(): string }).getProtocol();
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, protocol }));
      });
      req.on('error', reject);
      req.end();
    });
  const info = await get('/v1/info');
  t.equal(info.status, 200, 'the certificate chain verifies against its root');
  t.match(info.protocol, /^TLSv1\.[23]$/);
  t.equal(JSON.parse(info.body).name, 'pinwave');
  await t.rejects(fetch(`http://${api.host}/healthz`, { signal: AbortSignal.timeout(3000) }), 'no plaintext HTTP on that port');

  const stalled = connectTcp(Number(api.port), api.hostname);
  stalled.on('error', () => {});
  await new Promise<void>((resolve) => stalled.once('connect', () => resolve()));
  stalled.write(Buffer.from([0x16, 0x03, 0x01])); // the first bytes of a ClientHello, and then nothing
  const closed = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
  stop.off();
  t.equal(await done, 0, 'stopped, nothing cut off');
  await closed;
  t.pass('the half-done handshake was closed');
});

t.test('a warning when tokens would travel in clear text on a non-loopback address', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) t.ok(isLoopback(h), `${h} is loopback`);
  for (const h of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', 'gateway.example.com', '128.0.0.1', '::ffff:10.0.0.1']) t.notOk(isLoopback(h), `${h} is not`);
  const cfg = (flags: { host?: string; httpHost?: string }, file?: string) => loadConfig({ file, flags: { dataDir: '/d', keyPath: '/k', ...flags } });
  t.same(cleartextWarnings(cfg({})), [], 'all on loopback: nothing to say');
  t.same(cleartextWarnings(cfg({ host: '0.0.0.0' })), [
    'the HTTP API listens on 0.0.0.0 without TLS: API tokens travel in clear text (set http.tls, or bind it to 127.0.0.1 behind a TLS proxy)',
    'MQTT listens on 0.0.0.0 without TLS (port 1883): device tokens travel in clear text (set mqtt.tls, or bind it to a loopback address)',
  ]);
  t.same(cleartextWarnings(cfg({ host: '0.0.0.0', httpHost: '127.0.0.1' })), ['MQTT listens on 0.0.0.0 without TLS (port 1883): device tokens travel in clear text (set mqtt.tls, or bind it to a loopback address)'], 'the API kept on loopback (behind a proxy)');
  t.same(cleartextWarnings(cfg({ httpHost: '::' })), ['the HTTP API listens on :: without TLS: API tokens travel in clear text (set http.tls, or bind it to 127.0.0.1 behind a TLS proxy)']);
  const { dir } = setup(t);
  writeFileSync(join(dir, 'k.pem'), 'KEY');
  writeFileSync(join(dir, 'c.pem'), 'CERT');
  const withTls = join(dir, 'tls.yaml');
  writeFileSync(withTls, 'host: 10.1.2.3\nmqtt: { tls: { key: k.pem, cert: c.pem }, websocket: true }\nhttp: { tls: { key: k.pem, cert: c.pem } }\n');
  t.same(cleartextWarnings(cfg({}, withTls)), ['MQTT listens on 10.1.2.3 without TLS (port 1883 and WebSocket port 8083): device tokens travel in clear text (point devices at the TLS port, or bind it to a loopback address)'], 'HTTPS is fine; the plaintext MQTT listener beside TLS is not');
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  const mutual = join(dir, 'mutual.yaml');
  writeFileSync(mutual, 'host: 10.1.2.3\nmqtt: { tls: { key: k.pem, cert: c.pem, ca: ca.pem, requireClientCert: true } }\nhttp: { tls: { key: k.pem, cert: c.pem } }\n');
  t.same(
    cleartextWarnings(cfg({}, mutual)),
    ['MQTT listens on 10.1.2.3 without TLS (port 1883): device tokens travel in clear text, and no client certificate is asked for there (mqtt.tls.requireClientCert binds the TLS port alone: set mqtt.plain: false) (point devices at the TLS port, or bind it to a loopback address)'],
    'mutual TLS beside a plaintext listener: a device can skip the certificate',
  );
  writeFileSync(mutual, 'host: 10.1.2.3\nmqtt: { plain: false, tls: { key: k.pem, cert: c.pem, ca: ca.pem, requireClientCert: true } }\nhttp: { tls: { key: k.pem, cert: c.pem } }\n');
  t.same(cleartextWarnings(cfg({}, mutual)), [], 'mutual TLS alone: nothing to say');
});

t.test('a warning when MQTT listens on a wildcard address and no mqtt.deviceUrl says what devices are told', async (t) => {
  const cfg = (flags: { host?: string; httpHost?: string; mqttDeviceUrl?: string }) => loadConfig({ flags: { dataDir: '/d', keyPath: '/k', httpHost: '127.0.0.1', ...flags } });
  const said = (host: string) => `MQTT listens on ${host}, which no device can connect to: GET /v1/info (pinwave sim --api) gives each caller the address its request came in on, which devices elsewhere may not reach (behind NAT or a proxy, or by a name a TLS certificate names); set mqtt.deviceUrl (--mqtt-device-url, PINWAVE_MQTT_DEVICE_URL) to the URL devices connect to`;
  for (const host of ['0.0.0.0', '::']) t.same(startWarnings(cfg({ host })), [...cleartextWarnings(cfg({ host })), said(host)], host);
  t.same(startWarnings(cfg({ host: '0.0.0.0', mqttDeviceUrl: 'mqtt://10.0.0.5:1883' })), cleartextWarnings(cfg({ host: '0.0.0.0' })), 'with mqtt.deviceUrl: none');
  t.same(startWarnings(cfg({ host: '10.0.0.5' })), cleartextWarnings(cfg({ host: '10.0.0.5' })), 'an address of its own: none');
  t.same(startWarnings(cfg({ httpHost: '0.0.0.0' })), cleartextWarnings(cfg({ httpHost: '0.0.0.0' })), 'the API on a wildcard, MQTT not: none');
});

t.test('pinwave gateway --host 0.0.0.0 warns naming mqtt.deviceUrl, and --mqtt-device-url is what GET /v1/info tells devices', async (t) => {
  const { dir, keyPath } = setup(t);
  for (const told of [undefined, 'mqtts://gw.example.com:8883']) {
    const { io, out, err } = fakeIo({ PINWAVE_ADMIN_TOKEN: ADMIN });
    const stop = switchOff();
    const done = serve(['--data', join(dir, told ? 'told' : 'wild'), '--key', keyPath, '--host', '0.0.0.0', '--http-host', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', ...(told ? ['--mqtt-device-url', told] : [])], io, { until: stop.until, log: logSink().stream });
    await until(() => url(out, 'http') !== undefined, 10_000, 'the http line');
    const info = await (await fetch(`${url(out, 'http')}/v1/info`, { headers: { authorization: `Bearer ${ADMIN}` } })).json();
    const port = /:(\d+)$/.exec(url(out, 'mqtt')!)![1];
    t.equal(info.mqttUrl, told ?? `mqtt://127.0.0.1:${port}`, told ? 'the URL given' : 'the address the request came in on');
    const warned = err.some((l) => /^warning: MQTT listens on 0\.0\.0\.0, which no device can connect to: .*set mqtt\.deviceUrl \(--mqtt-device-url, PINWAVE_MQTT_DEVICE_URL\)/.test(l));
    t.equal(warned, told === undefined, told ? 'no warning with it' : 'a warning naming the key');
    stop.off();
    t.equal(await done, 0);
  }
});

/** Reads the embedded store in `dataDir` (the gateway stopped: it takes the lock). */
async function inStore<T>(dataDir: string, read: (s: EmbeddedStore) => Promise<T>): Promise<T> {
  const s = new EmbeddedStore({ dir: dataDir });
  await s.open();
  try {
    return await read(s);
  } finally {
    await s.close();
  }
}
