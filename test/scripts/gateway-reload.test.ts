// `pinwave gateway` reloading its API tokens on SIGHUP, as its own process: a token added works at
// once; a token removed stops at once, with its console session and its event stream; a config
// with problems is reported and changes nothing; the gateway keeps serving and still stops cleanly.
// reloadTokens itself, in process: what it reports, and never a token or a hash.
import { transpileTree } from '../fixtures/transpile.ts';
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { hashToken } from '../../gateway/credentials.ts';
import { ApiTokens } from '../../gateway/http/tokens.ts';
import { ConfigError, type GatewayConfig } from '../../gateway/config.ts';
import { reloadTokens } from '../../scripts/commands/gateway.ts';
import { pin, until } from '../fixtures/gateway.ts';
import { openStream } from '../fixtures/sse.ts';

// The child runs the sources transpiled once for this file (test/fixtures/transpile.ts): tap's
// loader would type-check the whole gateway again in every child, seconds each on a busy machine.
const CHILD_DIR = mkdtempSync(join(tmpdir(), 'pinwave-child-'));
const RUNNER = transpileTree(new URL('../fixtures/pinwave-gateway.ts', import.meta.url).pathname, CHILD_DIR);
t.teardown(() => rmSync(CHILD_DIR, { recursive: true, force: true }));
const ALICE = 'alice-token-0123456789abcdef-reload';
const BOB = 'bob-token-0123456789abcdef-reload';

const configText = (keyPath: string, dataDir: string, tokens: Array<[string, string, string]>) =>
  [`dataDir: ${dataDir}`, `keyPath: ${keyPath}`, 'tokens:', ...tokens.map(([name, role, token]) => `  - { name: ${name}, role: ${role}, hash: "${hashToken(token)}" }`), ''].join('\n');

t.test('SIGHUP puts the config\'s new tokens in force; a removed token\'s session and stream end; a bad config changes nothing', async (t) => {
  const dir = t.testdir();
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
  const config = join(dir, 'pinwave.yaml');
  writeFileSync(config, configText(keyPath, join(dir, 'data'), [['alice', 'operator', ALICE]]));
  const child = spawn(process.execPath, [RUNNER, '--config', config, '--mqtt-port', '0', '--http-port', '0'], {
    env: { ...process.env, PINWAVE_ADMIN_TOKEN: '', PINWAVE_CONFIG: '', PINWAVE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  t.teardown(() => {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await until(() => /http listening on (\S+)/.test(stdout), 30_000, 'the gateway to listen');
  const api = /http listening on (\S+)/.exec(stdout)![1];
  const as = (token: string) => ({ authorization: `Bearer ${token}` });

  t.equal((await fetch(`${api}/v1/rollouts`, { headers: as(ALICE) })).status, 200);
  t.equal((await fetch(`${api}/v1/rollouts`, { headers: as(BOB) })).status, 401, 'bob is not configured yet');
  const signIn = await fetch(`${api}/ui/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: ALICE }) });
  t.equal(signIn.status, 201);
  const cookie = signIn.headers.get('set-cookie')!.split(';')[0];
  // A rollout to watch: a bundle for a group of one device.
  const admin = { ...as(ALICE), 'content-type': 'application/json' };
  writeFileSync(config, configText(keyPath, join(dir, 'data'), [['alice', 'admin', ALICE]]));
  child.kill('SIGHUP');
  await until(() => stderr.includes('tokens reloaded: 1 added (alice), 1 revoked (alice), 0 kept'), 10_000, 'the first reload');
  t.equal((await fetch(`${api}/v1/rollouts`, { headers: { cookie } })).status, 401, "a token whose role changed ends its sessions");
  t.equal((await fetch(`${api}/v1/devices`, { method: 'POST', headers: admin, body: JSON.stringify({ devices: [{ id: 'd-1', group: 'g' }] }) })).status, 201, 'alice is an admin now');
  const bundle = await (await fetch(`${api}/v1/bundles`, { method: 'POST', headers: admin, body: JSON.stringify({ group: 'g', pins: [{ host: 'a.example', pins: [pin('a'), pin('b')] }] }) })).json();
  const ro = await (await fetch(`${api}/v1/rollouts`, { method: 'POST', headers: admin, body: JSON.stringify({ bundle: bundle.id, target: { group: 'g' } }) })).json();
  t.match(ro, { id: /^r-g-1-/ }, 'a rollout to watch');
  const session = await fetch(`${api}/ui/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: ALICE }) });
  const aliceCookie = session.headers.get('set-cookie')!.split(';')[0];
  const stream = await openStream(`${api}/v1/rollouts/${ro.id}/events`, as(ALICE));
  const sessionStream = await openStream(`${api}/v1/rollouts/${ro.id}/events`, { cookie: aliceCookie });
  await stream.waitFor(1);
  await sessionStream.waitFor(1);

  writeFileSync(config, configText(keyPath, join(dir, 'data'), [['bob', 'viewer', BOB]]));
  child.kill('SIGHUP');
  await until(() => stderr.includes('tokens reloaded: 1 added (bob), 1 revoked (alice), 0 kept'), 10_000, 'the second reload');
  t.equal((await fetch(`${api}/v1/rollouts`, { headers: as(BOB) })).status, 200, 'bob works at once');
  t.equal((await fetch(`${api}/v1/rollouts`, { headers: as(ALICE) })).status, 401, 'alice is refused at once');
  t.equal((await fetch(`${api}/v1/rollouts`, { headers: { cookie: aliceCookie } })).status, 401, "and so is her console session");
  await stream.ended;
  await sessionStream.ended;
  t.pass('her event streams closed');

  writeFileSync(config, 'tokens: [ { name: carol, role: root, hash: "sha256:nope" } ]\n');
  child.kill('SIGHUP');
  await until(() => stderr.includes('token reload refused, the tokens in force stay'), 10_000, 'the refusal');
  t.match(stderr, /config\.tokens\[0\]\.role: must be one of viewer, operator, admin, got "root"/);
  t.match(stderr, /dataDir: required/);
  t.equal((await fetch(`${api}/v1/rollouts`, { headers: as(BOB) })).status, 200, 'the tokens in force stay');
  writeFileSync(config, ': not yaml [\n');
  child.kill('SIGHUP');
  await until(() => stderr.split('token reload refused').length === 3, 10_000, 'the second refusal');
  t.equal((await fetch(`${api}/v1/rollouts`, { headers: as(BOB) })).status, 200);
  t.notOk(stderr.includes(BOB) || stderr.includes(ALICE) || stderr.includes(hashToken(BOB)), 'no token or hash on stderr');

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'and it still stops cleanly');
});

t.test('reloadTokens reports names, never tokens; a config that fails to load changes nothing', async (t) => {
  const tokens = new ApiTokens([{ name: 'alice', role: 'operator', hash: hashToken(ALICE) }]);
  const said: string[] = [];
  const logged: Array<[object, string]> = [];
  const io = { out: () => {}, err: (s: string) => void said.push(s), env: {} };
  const log = { info: (o: object, m: string) => void logged.push([o, m]), error: (o: object, m: string) => void logged.push([o, m]) } as never;
  const ok = reloadTokens(tokens, () => ({ tokens: [{ name: 'bob', role: 'viewer', hash: hashToken(BOB) }] }) as GatewayConfig, log, io as never);
  t.equal(ok, true);
  t.same(said, ['pinwave gateway: tokens reloaded: 1 added (bob), 1 revoked (alice), 0 kept']);
  t.same(logged[0], [{ added: ['bob'], removed: ['alice'], kept: 0 }, 'API tokens reloaded']);
  t.equal(tokens.find(BOB)?.name, 'bob');
  const refused = reloadTokens(tokens, () => {
    throw new ConfigError(['config.tokens[0].hash: must be a hash'], 'x.yaml');
  }, log, io as never);
  t.equal(refused, false);
  t.equal(tokens.find(BOB)?.name, 'bob', 'the tokens in force stay');
  t.match(said[1], /^pinwave gateway: token reload refused, the tokens in force stay: invalid configuration \(x\.yaml\)/);
  reloadTokens(tokens, () => ({ tokens: [] }) as unknown as GatewayConfig, log, io as never);
  t.equal(said.at(-1), 'warning: no API tokens configured now: every /v1 route answers 401');
  t.notOk(JSON.stringify([said, logged]).includes(hashToken(BOB)), 'no hash reported');
});
