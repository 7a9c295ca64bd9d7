// `pinwave broker mosquitto-config`: a directory a real Mosquitto starts from, with the gateway's
// credentials beside it, and an embedded fleet moved over with the token hashes it has.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';
import { hashDeviceToken, hashToken, newToken } from '../../gateway/credentials.ts';
import { readBrokerAuth } from '../../gateway/broker/broker-auth.ts';
import { ExternalBroker } from '../../gateway/broker/external.ts';
import { EmbeddedStore } from '../../gateway/store/embedded.ts';
import { newDeviceRecord } from '../../gateway/store/types.ts';
import { freePort, startMosquitto } from '../../scripts/mosquitto-process.ts';
import { runClient } from '../fixtures/mosquitto.ts';

function fakeIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, tty: false };
  return { io, out, err };
}

const mode = (path: string) => statSync(path).mode & 0o777;

function tempDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-broker-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('mosquitto-config writes a broker dir Mosquitto starts from, and prints the two commands that follow', async (t) => {
  const dir = join(tempDir(t), 'broker');
  const port = await freePort();
  const { io, out } = fakeIo();
  t.equal(await run(['broker', 'mosquitto-config', '--out', dir, '--port', String(port)], io), 0);
  t.equal(mode(dir), 0o700);
  for (const f of ['mosquitto.conf', 'dynamic-security.json', 'gateway-broker.json']) t.equal(mode(join(dir, f)), 0o600, f);
  t.ok(out.includes(`  mosquitto -c ${join(dir, 'mosquitto.conf')}`), 'the broker command');
  t.ok(out.some((l) => l.startsWith(`  pinwave gateway --broker mqtt://127.0.0.1:${port} --broker-auth ${join(dir, 'gateway-broker.json')}`)), 'the gateway command');
  const auth = readBrokerAuth(join(dir, 'gateway-broker.json'));
  t.equal(auth.username, 'pinwave@gateway');
  t.notOk(out.join('\n').includes(auth.password), 'the password is not printed');
  t.notOk(readFileSync(join(dir, 'dynamic-security.json'), 'utf8').includes(auth.password), 'the plugin file holds its hash only');

  const broker = await startMosquitto({ confPath: join(dir, 'mosquitto.conf'), port });
  t.teardown(() => broker.kill());
  const gw = await ExternalBroker.start({ url: `mqtt://127.0.0.1:${port}`, username: auth.username, password: auth.password, clientId: 'pinwave@cli' });
  t.ok(gw.linkUp, 'the gateway\'s credentials work and its role grants its subscriptions');
  await gw.credentials.provision([{ id: 'dev-1', token: 'token-1' }]);
  await gw.close();
  await broker.stop();
  t.match(readFileSync(join(dir, 'dynamic-security.json'), 'utf8'), /"username":\s*"dev-1"/, 'the plugin keeps its changes in the dir');
  t.equal(mode(join(dir, 'dynamic-security.json')), 0o600, 'and its rewrite keeps the file private');
  t.ok(statSync(join(dir, 'mosquitto.db')).isFile(), 'persistence lives in the dir');

  const again = fakeIo();
  t.equal(await run(['broker', 'mosquitto-config', '--out', dir, '--port', String(port)], again.io), 1, 'an earlier run is not replaced by accident');
  t.match(again.err.join('\n'), /already holds mosquitto\.conf, dynamic-security\.json, gateway-broker\.json: pass --force/);
  t.equal(await run(['broker', 'mosquitto-config', '--out', dir, '--port', String(port), '--force'], fakeIo().io), 0);
  t.not(readBrokerAuth(join(dir, 'gateway-broker.json')).password, auth.password, '--force makes new credentials');
});

t.test('an --out DIR that exists keeps its mode (a note says so); a file is refused; --force never replaces a mosquitto.conf it did not write', async (t) => {
  const root = tempDir(t);
  const shared = join(root, 'shared');
  mkdirSync(shared, { mode: 0o755 });
  chmodSync(shared, 0o755);
  writeFileSync(join(shared, 'notes.txt'), 'the operator\'s');
  const { io, err } = fakeIo();
  t.equal(await run(['broker', 'mosquitto-config', '--out', shared], io), 0, err.join('\n'));
  t.equal(mode(shared), 0o755, 'a directory that was there before keeps its mode');
  t.match(err.join('\n'), new RegExp(`^note: ${shared.replace(/[.]/g, '\\.')} was there before: its mode 0755 is left as it is \\(every file written is 0600\\); chmod 700`));
  for (const f of ['mosquitto.conf', 'dynamic-security.json', 'gateway-broker.json']) t.equal(mode(join(shared, f)), 0o600, f);
  t.equal(readFileSync(join(shared, 'notes.txt'), 'utf8'), 'the operator\'s');

  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  const onFile = fakeIo();
  t.equal(await run(['broker', 'mosquitto-config', '--out', file], onFile.io), 1);
  t.match(onFile.err.join('\n'), /a-file is not a directory: give --out a directory/);

  const distro = join(root, 'distro');
  mkdirSync(distro);
  writeFileSync(join(distro, 'mosquitto.conf'), 'include_dir /etc/mosquitto/conf.d\n');
  const forced = fakeIo();
  t.equal(await run(['broker', 'mosquitto-config', '--out', distro, '--force'], forced.io), 1);
  t.match(forced.err.join('\n'), /mosquitto\.conf was not written by pinwave broker mosquitto-config: --force replaces only an earlier run's files/);
  t.equal(readFileSync(join(distro, 'mosquitto.conf'), 'utf8'), 'include_dir /etc/mosquitto/conf.d\n', 'left as it was');
});

t.test('--from-data moves an embedded fleet with the hashes the store holds; who could not be moved is named', async (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  const store = new EmbeddedStore({ dir: data });
  await store.open();
  const tokens = { moved: newToken(), legacy: newToken(), revoked: newToken() };
  const provision = (id: string, tokenHash: string) => ({ type: 'device.provision' as const, device: newDeviceRecord({ id, group: 'g', tokenHash, createdAt: 1 }) });
  t.match(
    await store.apply([
      provision('dev-moved', hashDeviceToken(tokens.moved)),
      provision('dev-legacy', hashToken(tokens.legacy)),
      provision('dev-revoked', hashDeviceToken(tokens.revoked)),
      { type: 'device.patch', id: 'dev-revoked', set: { revokedAt: 2 } },
    ]),
    { ok: true },
  );
  await store.close();

  const dir = join(root, 'broker');
  const port = await freePort();
  const { io, out } = fakeIo();
  t.equal(await run(['broker', 'mosquitto-config', '--out', dir, '--port', String(port), '--from-data', data], io), 0);
  const text = out.join('\n');
  t.match(text, /devices: 1 written with the token hashes the store holds \(no new tokens\), 2 left out/);
  t.match(text, /1 legacy_hash: dev-legacy\n {4}stored by an earlier release/);
  t.match(text, /1 revoked: dev-revoked/);

  const broker = await startMosquitto({ confPath: join(dir, 'mosquitto.conf'), port });
  t.teardown(() => broker.kill());
  const pub = (id: string, token: string) => runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-i', id, '-u', id, '-P', token, '-t', `pinwave/v1/devices/${id}/state`, '-m', 'x', '-q', '1']);
  t.equal((await pub('dev-moved', tokens.moved)).code, 0, 'a moved device connects with the token it always had');
  t.not((await pub('dev-legacy', tokens.legacy)).code, 0, 'a legacy hash cannot be checked by Mosquitto');
  t.not((await pub('dev-revoked', tokens.revoked)).code, 0, 'a revoked device is not in the broker');
});

t.test('--of-broker writes the devices recorded on that broker (and with --with-unrecorded those with none)', async (t) => {
  const root = tempDir(t);
  const data = join(root, 'data');
  const store = new EmbeddedStore({ dir: data });
  await store.open();
  const A = 'mqtt://10.0.0.11:18830';
  const B = 'mqtt://10.0.0.12:18830';
  await store.apply(
    [
      newDeviceRecord({ id: 'dev-a', group: 'g', tokenHash: hashDeviceToken(newToken()), createdAt: 1, broker: A }),
      newDeviceRecord({ id: 'dev-b', group: 'g', tokenHash: hashDeviceToken(newToken()), createdAt: 1, broker: B }),
      newDeviceRecord({ id: 'dev-none', group: 'g', tokenHash: hashDeviceToken(newToken()), createdAt: 1 }),
    ].map((device) => ({ type: 'device.provision' as const, device })),
  );
  await store.close();
  const clients = async (dir: string) => (JSON.parse(readFileSync(join(dir, 'dynamic-security.json'), 'utf8')).clients as Array<{ username: string }>).map((c) => c.username).filter((u) => u.startsWith('dev-')).sort();
  t.equal(await run(['broker', 'mosquitto-config', '--out', join(root, 'a'), '--from-data', data, '--of-broker', A, '--with-unrecorded'], fakeIo().io), 0);
  t.same(await clients(join(root, 'a')), ['dev-a', 'dev-none'], 'the first broker: its own and the unrecorded');
  t.equal(await run(['broker', 'mosquitto-config', '--out', join(root, 'b'), '--from-data', data, '--of-broker', B], fakeIo().io), 0);
  t.same(await clients(join(root, 'b')), ['dev-b'], 'another: its own only');
  for (const [args, message] of [
    [['--of-broker', A], /--of-broker needs --from-data/],
    [['--from-data', data, '--with-unrecorded'], /--with-unrecorded needs --of-broker/],
    [['--from-data', data, '--of-broker', 'broker-b'], /--of-broker must be a broker URL/],
  ] as Array<[string[], RegExp]>) {
    const { io, err } = fakeIo();
    t.equal(await run(['broker', 'mosquitto-config', '--out', join(root, 'x'), ...args], io), 2, args.join(' '));
    t.match(err.join('\n'), message);
  }
});

t.test('bad flags are usage errors that name what was wrong; nothing is written', async (t) => {
  const root = tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['broker', 'mosquitto-config'], /missing required flag --out/],
    [['broker', 'mosquitto-config', '--out', join(root, 'a'), '--port', '0'], /--port must be 1 to 65535, got 0/],
    [['broker', 'mosquitto-config', '--out', join(root, 'a'), '--port', 'x'], /--port expects a non-negative integer, got "x"/],
    [['broker', 'mosquitto-config', '--out', join(root, 'a'), '--from-data', join(root, 'nope')], /no pinwave store there/],
    [['broker', 'mosquitto-config', '--out', join(root, 'with space')], /without spaces/],
    [['broker', 'mosquitto-config', '--out', join(root, 'a'), '--user', 'Not A User'], /--user must be a user name/],
    [['broker', 'mosquitto-config', '--out', join(root, 'a'), '--plugin', join(root, 'none.so')], /no such file/],
    [['broker', 'nope'], /unknown subcommand "nope"/],
  ];
  for (const [args, message] of cases) {
    const { io, err } = fakeIo();
    t.equal(await run(args, io), 2, args.join(' '));
    t.match(err.join('\n'), message);
  }
  t.throws(() => statSync(join(root, 'a')), 'no directory was made');

  const dflt = join(root, 'default');
  t.equal(await run(['broker', 'mosquitto-config', '--out', dflt], fakeIo().io), 0);
  t.match(readFileSync(join(dflt, 'mosquitto.conf'), 'utf8'), /^listener 18830 127\.0\.0\.1$/m, 'the default port is 18830, never 1883');
  const help = fakeIo();
  t.equal(await run(['broker', '--help'], help.io), 0);
  t.match(help.out.join('\n'), /mosquitto-config --out DIR/);
  writeFileSync(join(root, 'loose.json'), '{"username":"u","password":"p"}', { mode: 0o644 });
  t.throws(() => readBrokerAuth(join(root, 'loose.json')), /readable by group or others \(mode 0644\); run: chmod 600/);
  writeFileSync(join(root, 'extra.json'), '{"username":"u","password":"p","url":"x"}', { mode: 0o600 });
  t.throws(() => readBrokerAuth(join(root, 'extra.json')), /unknown key "url"/);
  writeFileSync(join(root, 'bad.json'), '{"username":"u"', { mode: 0o600 });
  t.throws(() => readBrokerAuth(join(root, 'bad.json')), /is not JSON/);
  writeFileSync(join(root, 'empty.json'), '{"username":"u","password":""}', { mode: 0o600 });
  t.throws(() => readBrokerAuth(join(root, 'empty.json')), /"password" must be a non-empty string/);
  t.throws(() => readBrokerAuth(join(root, 'missing.json')), /cannot read the broker credentials .*ENOENT/);
});
