// `pinwave gateway` refusing to start: a port in use, a host that does not resolve, a data dir that
// is a file, a next key that is the key. One line naming the flag (or variable, or config key) and
// the address, exit 1 (2 for the keys: a usage error), and nothing written: no journal begun, no lock.
import t from 'tap';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { serve } from '../../scripts/commands/gateway.ts';
import { main as configMain } from '../../scripts/commands/config.ts';
import { listenFailure } from '../../scripts/start-checks.ts';
import type { Io } from '../../scripts/args.ts';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { readOnly, tmpfs } from '../fixtures/tmpfs.ts';

const IN_USE = '(another gateway or broker? give another port, or 0 for any free one)';

function fakeIo(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env, tty: false };
  return { io, out, err };
}

function setup(t: { testdir(o?: object): string }) {
  const dir = t.testdir({ data: {} });
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
  return { dir, keyPath, data: join(dir, 'data') };
}

/** A port someone else holds on 127.0.0.1. */
async function busyPort(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const busy: Server = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => busy.close(resolve)));
  return (busy.address() as { port: number }).port;
}

// A start that got this far would keep serving: `until` never resolves, so a test that wrongly
// starts shows as a hang (tap's timeout), never as a pass.
const start = (args: string[], io: Io) => serve(args, io, { until: new Promise(() => {}), log: { write: () => true } as never });

t.test('an MQTT port in use names --mqtt-port and the address, and writes nothing into the data dir', async (t) => {
  const { keyPath, data } = setup(t);
  const port = await busyPort(t);
  const { io, out, err } = fakeIo();
  t.equal(await start(['--data', data, '--key', keyPath, '--mqtt-port', String(port), '--http-port', '0'], io), 1);
  t.same(err, [`pinwave gateway: --mqtt-port ${port}: address 127.0.0.1:${port} is already in use ${IN_USE}`]);
  t.same(out, []);
  t.same(readdirSync(data), [], 'no journal begun, no lock left');
});

t.test('an HTTP port in use is named as it was set: PINWAVE_HTTP_PORT, or the config key; a missing data dir is not made', async (t) => {
  const { dir, keyPath, data } = setup(t);
  const port = await busyPort(t);
  const fromEnv = fakeIo({ PINWAVE_HTTP_PORT: String(port) });
  t.equal(await start(['--data', data, '--key', keyPath, '--mqtt-port', '0'], fromEnv.io), 1);
  t.same(fromEnv.err, [`pinwave gateway: PINWAVE_HTTP_PORT=${port}: address 127.0.0.1:${port} is already in use ${IN_USE}`]);
  t.same(readdirSync(data), []);

  const config = join(dir, 'c.json');
  writeFileSync(config, JSON.stringify({ mqtt: { port } }));
  const fresh = join(dir, 'fresh');
  const fromFile = fakeIo();
  t.equal(await start(['--config', config, '--data', fresh, '--key', keyPath, '--http-port', '0'], fromFile.io), 1);
  t.same(fromFile.err, [`pinwave gateway: config mqtt.port ${port}: address 127.0.0.1:${port} is already in use ${IN_USE}`]);
  t.notOk(existsSync(fresh), 'the data dir was not created');
});

/** Holds 127.0.0.1:`port` for the test; one someone else holds already is as good (the gateway finds it in use all the same). */
async function holdPort(t: { teardown(fn: () => unknown): void }, port: number): Promise<void> {
  const held: Server = createServer();
  const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    held.once('error', resolve);
    held.listen(port, '127.0.0.1', () => resolve(null));
  });
  if (err && err.code !== 'EADDRINUSE') throw err;
  if (!err) t.teardown(() => new Promise((resolve) => held.close(resolve)));
}

t.test('a port is named where it was set: a config key that gives the default value is the key, a port nobody set is the default', async (t) => {
  const { dir, keyPath, data } = setup(t);
  writeFileSync(join(dir, 'tls.key'), 'KEY PEM');
  writeFileSync(join(dir, 'tls.crt'), 'CERT PEM');
  await holdPort(t, 8080);
  await holdPort(t, 8883);

  const keyed = join(dir, 'keyed.json');
  writeFileSync(keyed, JSON.stringify({ http: { port: 8080 } }));
  const fromFile = fakeIo();
  t.equal(await start(['--config', keyed, '--data', data, '--key', keyPath, '--mqtt-port', '0'], fromFile.io), 1);
  t.same(fromFile.err, [`pinwave gateway: config http.port 8080: address 127.0.0.1:8080 is already in use ${IN_USE}`]);

  const unset = fakeIo();
  t.equal(await start(['--data', data, '--key', keyPath, '--mqtt-port', '0'], unset.io), 1);
  t.same(unset.err, [`pinwave gateway: the default HTTP port 8080 (set by --http-port, PINWAVE_HTTP_PORT or config http.port): address 127.0.0.1:8080 is already in use ${IN_USE}`]);

  const tls = join(dir, 'tls.json');
  writeFileSync(tls, JSON.stringify({ mqtt: { port: 0, tls: { key: 'tls.key', cert: 'tls.crt' } }, http: { port: 0 } }));
  const defaulted = fakeIo();
  t.equal(await start(['--config', tls, '--data', data, '--key', keyPath], defaulted.io), 1);
  t.same(defaulted.err, [`pinwave gateway: the default MQTT TLS port 8883 (set by config mqtt.tls.port): address 127.0.0.1:8883 is already in use ${IN_USE}`]);
  t.same(readdirSync(data), [], 'no journal begun, no lock left');
});

t.test('the MQTT and HTTP listeners given one port: the second names the first', async (t) => {
  const { keyPath, data } = setup(t);
  const port = await busyPort(t);
  const { io, err } = fakeIo();
  // the port is held by the test, but the clash is the gateway's own and is named first
  t.equal(await start(['--data', data, '--key', keyPath, '--mqtt-port', String(port), '--http-port', String(port)], io), 1);
  t.same(err, [`pinwave gateway: --http-port ${port}: 127.0.0.1:${port} is taken by --mqtt-port ${port} already: give each listener a port of its own`]);
});

t.test('a --host or --http-host that does not resolve is named, and nothing is written', async (t) => {
  const { keyPath, data } = setup(t);
  for (const flag of ['--host', '--http-host']) {
    const { io, err } = fakeIo();
    t.equal(await start(['--data', data, '--key', keyPath, '--mqtt-port', '0', '--http-port', '0', flag, 'nosuch.invalid'], io), 1, flag);
    t.equal(err.length, 1);
    t.match(err[0], new RegExp(`^pinwave gateway: ${flag} nosuch\\.invalid: cannot resolve that name \\((ENOTFOUND|EAI_AGAIN)\\): give an address of this machine`), flag);
  }
  t.same(readdirSync(data), []);
});

t.test('--data naming a folder the gateway cannot write (a read-only mount) is refused naming --data and the path, before the store is opened', async (t) => {
  const { keyPath } = setup(t);
  const mnt = await tmpfs(t, 'size=1m');
  const data = join(mnt, 'data');
  mkdirSync(data);
  readOnly(mnt);
  const why = `the gateway cannot write there (EROFS: a read-only file system): the data dir is where it keeps its store`;
  const { io, err } = fakeIo();
  t.equal(await start(['--data', data, '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], io), 1);
  t.same(err, [`pinwave gateway: --data ${data}: ${why}`]);
  const fromEnv = fakeIo({ PINWAVE_DATA_DIR: data });
  t.equal(await start(['--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], fromEnv.io), 1);
  t.same(fromEnv.err, [`pinwave gateway: PINWAVE_DATA_DIR=${data}: ${why}`]);
});

t.test('--data naming a regular file is refused naming --data, and the file is left as it was', async (t) => {
  const { dir, keyPath } = setup(t);
  const file = join(dir, 'notes.txt');
  writeFileSync(file, 'mine');
  const { io, err } = fakeIo();
  t.equal(await start(['--data', file, '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], io), 1);
  t.same(err, [`pinwave gateway: --data ${file}: a file is there, not a directory: the data dir is a folder the gateway keeps its store in (created if missing)`]);
  t.equal(readFileSync(file, 'utf8'), 'mine');
  t.same(readdirSync(dir).sort(), ['data', 'notes.txt', 'signing.key'], 'no lock or journal beside it');
  const under = fakeIo({ PINWAVE_DATA_DIR: join(file, 'x') });
  t.equal(await start(['--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], under.io), 1);
  t.same(under.err, [`pinwave gateway: PINWAVE_DATA_DIR=${join(file, 'x')}: a part of that path is a file, not a directory`]);
});

t.test('--next-key holding the same key as --key is a usage error naming both; config check reports it too', async (t) => {
  const { dir, keyPath, data } = setup(t);
  const copy = join(dir, 'next.key');
  copyFileSync(keyPath, copy);
  await t.rejects(start(['--data', data, '--key', keyPath, '--next-key', copy, '--mqtt-port', '0', '--http-port', '0'], fakeIo().io), {
    name: 'UsageError',
    message: new RegExp(`^--next-key ${copy} is the same key as --key ${keyPath} \\(kid [0-9a-f]{16}\\): the next key is a new key pair`),
  });
  await t.rejects(start(['--data', data, '--key', keyPath, '--mqtt-port', '0', '--http-port', '0'], fakeIo({ PINWAVE_NEXT_KEY: keyPath }).io), {
    message: new RegExp(`^PINWAVE_NEXT_KEY=${keyPath} is the same key as --key ${keyPath} `),
  });
  t.same(readdirSync(data), []);

  const config = join(dir, 'c.json');
  writeFileSync(config, JSON.stringify({ dataDir: data, keyPath, nextKeyPath: copy, mqtt: { port: 0 }, http: { port: 0 } }));
  const checked = fakeIo();
  t.equal(await configMain(['check', config], checked.io), 1);
  t.match(checked.err.join('\n'), `nextKeyPath: ${copy} is the same key as keyPath ${keyPath}`);
});

t.test('a port taken between the check and the listen is named all the same', async (t) => {
  const listeners = [
    { host: '127.0.0.1', port: 883, portName: '--mqtt-port 883', hostName: '--host 127.0.0.1' },
    { host: '::1', port: 8081, portName: 'config http.port 8081', hostName: 'config http.host ::1' },
  ];
  const inUse = Object.assign(new Error('listen EADDRINUSE: address already in use ::1:8081'), { code: 'EADDRINUSE', syscall: 'listen', address: '::1', port: 8081 });
  t.equal(listenFailure(inUse, listeners), `config http.port 8081: address [::1]:8081 is already in use ${IN_USE}`);
  t.equal(listenFailure(Object.assign(new Error('x'), { code: 'EACCES', syscall: 'listen', address: '127.0.0.1', port: 883 }), listeners), '--mqtt-port 883: not allowed to listen on 127.0.0.1:883 (EACCES: a port below 1024 needs privileges)');
  t.equal(listenFailure(new Error('something else'), listeners), null, 'another error is not dressed up as a listen problem');
});

t.test('with one listener (external broker mode) a file the start cannot open is not blamed on the HTTP port', async (t) => {
  const only = [{ host: '127.0.0.1', port: 8080, portName: 'the default HTTP port 8080 (set by --http-port, PINWAVE_HTTP_PORT or config http.port)', hostName: 'the default listen address 127.0.0.1 (set by --host, PINWAVE_HOST or config host)' }];
  const denied = Object.assign(new Error("EACCES: permission denied, open '/srv/pw/signing.key'"), { code: 'EACCES', syscall: 'open', path: '/srv/pw/signing.key' });
  t.equal(listenFailure(denied, only), null, 'the error stays as it is, naming the file');
  const taken = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:8080'), { code: 'EADDRINUSE', syscall: 'listen', address: '127.0.0.1', port: 8080 });
  t.match(listenFailure(taken, only), /^the default HTTP port 8080 \(set by --http-port, PINWAVE_HTTP_PORT or config http\.port\): address 127\.0\.0\.1:8080 is already in use/, 'a listen error still names the port');
});
