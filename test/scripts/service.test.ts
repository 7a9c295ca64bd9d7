// Running pinwave as a service: the gateway started exactly as docs/examples/pinwave.service's
// ExecStart starts it (node on dist/scripts/pinwave.js, the example config), stopped with the
// unit's KillSignal, and gone; `pinwave config check` on the example config and on a broken one.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';
import { until } from '../fixtures/gateway.ts';
import { withoutCoverage } from '../fixtures/child-env.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const UNIT = readFileSync(join(ROOT, 'docs/examples/pinwave.service'), 'utf8');
const EXAMPLE = readFileSync(join(ROOT, 'docs/examples/pinwave.yaml'), 'utf8');
const ADMIN = 'admin-token-for-the-service-test-0123';

/** `Key=value` lines of the unit's [Service] section, in order. */
function service(): Array<[string, string]> {
  const section = UNIT.split(/^\[/m).find((s) => s.startsWith('Service]'))!;
  return section.split('\n').filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

function setup(t: { testdir(): string }) {
  const dir = t.testdir();
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
  const config = join(dir, 'pinwave.yaml');
  writeFileSync(config, EXAMPLE);
  // What /etc/pinwave and /var/lib/pinwave are on a server; ports any free ones (never 1883 here).
  const env = { PINWAVE_DATA_DIR: join(dir, 'data'), PINWAVE_KEY: keyPath, PINWAVE_MQTT_PORT: '0', PINWAVE_HTTP_PORT: '0' };
  return { dir, config, env };
}

const io = (env: NodeJS.ProcessEnv) => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l), env, tty: false } satisfies Io };
};

t.test("the unit's ExecStart runs node on the installed package's dist/scripts/pinwave.js, never npx or npm exec", async (t) => {
  const exec = service().filter(([k]) => k === 'ExecStart');
  t.equal(exec.length, 1);
  t.equal(exec[0][1], '/usr/bin/node /usr/lib/node_modules/pinwave/dist/scripts/pinwave.js gateway --config /etc/pinwave/pinwave.yaml');
  t.notMatch(UNIT, /^ExecStart=.*\b(npx|npm)\b/m);
  t.ok(existsSync(join(ROOT, 'dist/scripts/pinwave.js')), 'the path under the package exists in a build');
  t.same(service().find(([k]) => k === 'KillSignal'), ['KillSignal', 'SIGTERM']);
  const stopSec = Number(service().find(([k]) => k === 'TimeoutStopSec')![1]);
  const shutdown = Number(/^shutdownTimeout: (\d+)s/m.exec(EXAMPLE)![1]);
  t.ok(stopSec > shutdown, `systemd waits longer (${stopSec} s) than the gateway may take to stop (${shutdown} s)`);
});

t.test('started as the unit starts it, stopped with SIGTERM: it logs its start and stop once, exits 0, and the process is gone', async (t) => {
  const { config, env } = setup(t);
  const [node, ...args] = service().find(([k]) => k === 'ExecStart')![1]
    .replace('/usr/lib/node_modules/pinwave/', ROOT)
    .replace('/etc/pinwave/pinwave.yaml', config)
    .split(' ');
  t.equal(node, '/usr/bin/node');
  const unitEnv = Object.fromEntries(service().filter(([k]) => k === 'Environment').map(([, v]) => v.split('=') as [string, string]));
  const child = spawn(...withoutCoverage(process.execPath, args), { env: { PATH: process.env.PATH, ...unitEnv, ...env, PINWAVE_ADMIN_TOKEN: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  t.teardown(() => clearTimeout(killer));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await until(() => stdout.includes('http listening on'), 45_000, 'the gateway to listen');
  t.match(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').join(' '), /dist\/scripts\/pinwave\.js gateway --config /, 'the signalled process is the gateway itself');
  const api = /http listening on (\S+)/.exec(stdout)![1];
  t.equal((await fetch(`${api}/healthz`)).status, 200);
  t.equal((await fetch(`${api}/v1/info`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 200, 'the token from the environment file works');

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after SIGTERM');
  t.throws(() => process.kill(child.pid!, 0), { code: 'ESRCH' }, 'the process is gone');
  const logs = stderr.trim().split('\n').map((l) => JSON.parse(l));
  t.ok(logs.every((e) => typeof e.time === 'string' && new Date(e.time).toISOString() === e.time), 'JSON lines with ISO 8601 times');
  t.equal(logs.filter((e) => e.msg === 'pinwave gateway started').length, 1);
  t.match(logs.find((e) => e.msg === 'pinwave gateway started'), { version: /^\d+\.\d+\.\d+/, pid: child.pid, config });
  t.equal(logs.filter((e) => e.msg === 'stopped').length, 1);
  t.match(logs.find((e) => e.msg === 'stopped'), { code: 0 });
  t.notOk(stderr.includes(ADMIN), 'the token is not logged');
});

t.test('config check: the example config passes with a summary; a broken one lists every problem and exits 1', async (t) => {
  const { config, env, dir } = setup(t);
  const ok = io(env);
  t.equal(await run(['config', 'check', config], ok.io), 0, ok.err.join('\n'));
  t.match(ok.out[0], /pinwave\.yaml: ok$/);
  const text = ok.out.join('\n');
  t.match(text, /^ {2}signing key {5}.*signing\.key \(kid [0-9a-f]{16}\)$/m);
  t.match(text, /^ {2}waves {11}1%, 10%, 50%, 100%$/m);
  t.match(text, /^ {2}log {13}info, json$/m);

  const broken = join(dir, 'broken.yaml');
  const secret = 'a-webhook-secret-that-must-not-show';
  writeFileSync(broken, `dataDir: ${join(dir, 'no', 'such', 'dir')}\nkeyPath: ${join(dir, 'missing.key')}\nlogFormat: fancy\nmqtt: { port: 8080 }\nhttp: { port: 8080 }\nwebhooks: [{ url: "https://hooks.example.com/x", events: [rollout.exploded], secret: "${secret}" }]\ncolour: blue\n`);
  const bad = io({});
  t.equal(await run(['config', 'check', broken], bad.io), 1);
  t.same(bad.err.slice(1), [
    '  config.colour: unknown option (known: dataDir, store, keyPath, nextKeyPath, host, logLevel, logFormat, mqtt, http, tokens, manifests, waves, bundleLifetime, shutdownTimeout, console, webhooks, approval, preflight, broker)',
    '  config.logFormat: must be one of json, pretty, got "fancy"',
    '  config.webhooks[0].events: unknown event "rollout.exploded" (known: rollout.held, rollout.resumed, rollout.completed, rollout.aborted, rollout.at_risk, approval.requested)',
  ]);
  t.match(bad.err[0], /broken\.yaml: 3 problems:$/);
  t.notOk(bad.err.join('\n').includes(secret), 'a secret is never printed');

  // Loadable, but the gateway could not start with it: the key, the data dir, two listeners on one port.
  const unstartable = join(dir, 'unstartable.yaml');
  writeFileSync(unstartable, `dataDir: ${join(dir, 'no', 'such', 'dir')}\nkeyPath: ${join(dir, 'missing.key')}\nnextKeyPath: ${join(dir, 'missing-next.key')}\nmqtt: { port: 8080 }\nhttp: { port: 8080 }\n`);
  const u = io({});
  t.equal(await run(['config', 'check', unstartable], u.io), 1);
  t.match(u.err.join('\n'), /keyPath: cannot read the signing key .*missing\.key: ENOENT/);
  t.match(u.err.join('\n'), /nextKeyPath: cannot read the signing key .*missing-next\.key: ENOENT/);
  t.match(u.err.join('\n'), /dataDir: .*no\/such\/dir does not exist and .*no\/such does not exist either/);
  t.match(u.err.join('\n'), /config http\.port 8080: 127\.0\.0\.1:8080 is taken by config mqtt\.port 8080 already/);
  const json = io({});
  t.equal(await run(['config', 'check', unstartable, '--json'], json.io), 1);
  t.match(JSON.parse(json.out.join('\n')), { ok: false, problems: [/keyPath/, /nextKeyPath/, /dataDir/, /http\.port/] });
  t.equal(await run(['config', 'check'], io({}).io), 2, 'check needs a FILE');
});

t.test('config check: a file that cannot be read or parsed is the one problem named, not followed by what its options would have given', async (t) => {
  const dir = t.testdir();
  writeFileSync(join(dir, 'bad.yaml'), 'dataDir: [\n');
  for (const [file, problem] of [
    [join(dir, 'none.yaml'), new RegExp(`^  config: cannot read ${join(dir, 'none.yaml')}: ENOENT$`)],
    [join(dir, 'pinwave'), /^ {2}config: .*pinwave must end in \.json, \.yaml or \.yml, got no extension$/],
    [join(dir, 'bad.yaml'), /^ {2}config: .*bad\.yaml is not valid YAML: /],
  ] as Array<[string, RegExp]>) {
    const r = io({});
    t.equal(await run(['config', 'check', file], r.io), 1, file);
    t.equal(r.err[0], `${file}: 1 problem:`);
    t.match(r.err[1], problem);
    t.equal(r.err.length, 2, 'no "dataDir: required" after it');
  }
});
