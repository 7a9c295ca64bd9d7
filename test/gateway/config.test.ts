// The gateway's config: a JSON or YAML file, then the environment, then flags; every problem
// reported at once, each naming its key; tokens kept only as hashes.
import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DEFAULTS, loadConfig, settingText } from '../../gateway/config.ts';
import { hashToken } from '../../gateway/credentials.ts';
import { generateKeyPair } from '../../firmware-manifest/index.ts';
import { pin } from '../fixtures/gateway.ts';

const HASH = hashToken('operator-token-0123456789abcdef');
const manifest = () => ({ model: 'th-100', firmware: '1.0.0', trustedKeys: [generateKeyPair().publicPem], pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] });

/** The problems a load reports, or [] when it succeeds. */
function problems(o: Parameters<typeof loadConfig>[0]): string[] {
  try {
    loadConfig(o);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

t.test('with only the required flags, every option takes its default', async (t) => {
  const c = loadConfig({ flags: { dataDir: '/d', keyPath: '/k.pem' } });
  t.same(c, { dataDir: '/d', storeUrl: null, keyPath: '/k.pem', nextKeyPath: null, host: '127.0.0.1', logLevel: 'info', logFormat: 'json', mqtt: { port: 1883 }, http: { port: 8080, host: '127.0.0.1', trustProxy: false }, shutdownTimeoutMs: 10_000, tokens: [], manifests: [], webhooks: [], preflight: { endpoints: {} }, file: null, origins: { dataDir: 'flag', storeUrl: 'default', keyPath: 'flag', nextKeyPath: 'default', host: 'default', httpHost: 'inherited', mqttPort: 'default', httpPort: 'default', tlsPort: 'default', wsPort: 'default' } });
  t.equal(DEFAULTS.httpPort, 8080);
});

t.test('a value is named where it came from: the flag, the variable, the file key (even one that repeats the default) or the default', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ host: '127.0.0.1', http: { host: '127.0.0.1', port: 8080 }, mqtt: { websocket: true } }), 'd.json': '{}' });
  const c = loadConfig({ file: join(dir, 'c.json'), env: { PINWAVE_MQTT_PORT: '1884', PINWAVE_HOST: '' }, flags: { dataDir: '/d' } });
  t.equal(settingText(c, 'dataDir', '/d'), '--data /d');
  t.equal(settingText(c, 'mqttPort', c.mqtt.port), 'PINWAVE_MQTT_PORT=1884');
  t.equal(settingText(c, 'host', c.host), 'config host 127.0.0.1', 'an empty variable is unset');
  t.equal(settingText(c, 'httpHost', c.http.host), 'config http.host 127.0.0.1', 'set to what host is, still its own key');
  t.equal(settingText(c, 'httpPort', c.http.port), 'config http.port 8080', 'the default value, set by the file');
  t.equal(settingText(c, 'wsPort', c.mqtt.websocket!.port), 'the default MQTT WebSocket port 8083 (set by config mqtt.websocket.port)');
  const d = loadConfig({ file: join(dir, 'd.json'), flags: { dataDir: '/d', host: '::1' } });
  t.equal(settingText(d, 'httpHost', d.http.host), '--host ::1', 'an HTTP host not set itself is the host it takes');
  t.equal(settingText(d, 'httpPort', d.http.port), 'the default HTTP port 8080 (set by --http-port, PINWAVE_HTTP_PORT or config http.port)');
});

t.test('a YAML file sets every option; its relative paths are relative to the file', async (t) => {
  const dir = t.testdir({ tls: { 'server.key': 'KEY PEM', 'server.crt': 'CERT PEM', 'ca.crt': 'CA PEM' }, manifests: { 'th-100.json': JSON.stringify(manifest()) } });
  const file = join(dir, 'pinwave.yaml');
  writeFileSync(
    file,
    `# the gateway
dataDir: data
keyPath: /etc/pinwave/signing.key
host: 0.0.0.0
logLevel: debug
mqtt:
  port: 1884
  maxPayloadBytes: 8192
  tls: { port: 8884, key: tls/server.key, cert: tls/server.crt, ca: tls/ca.crt }
  websocket: true
http:
  port: 9090
  trustProxy: true
tokens:
  - { name: alice, role: operator, hash: "${HASH}" }
manifests: [manifests/th-100.json]
waves: [{ size: "5%" }, { size: "100%", ackThreshold: 0.99 }]
bundleLifetime: 12h
`,
  );
  const c = loadConfig({ file });
  t.equal(c.dataDir, join(dir, 'data'));
  t.equal(c.keyPath, '/etc/pinwave/signing.key');
  t.equal(c.host, '0.0.0.0');
  t.equal(c.logLevel, 'debug');
  t.same(c.mqtt, { port: 1884, maxPayloadBytes: 8192, tls: { port: 8884, key: Buffer.from('KEY PEM'), cert: Buffer.from('CERT PEM'), ca: Buffer.from('CA PEM') }, websocket: { port: 8083, path: '/mqtt' } });
  t.same(c.http, { port: 9090, host: '0.0.0.0', trustProxy: true }, 'the HTTP API binds the MQTT host unless http.host says otherwise');
  t.same(c.tokens, [{ name: 'alice', role: 'operator', hash: HASH }]);
  t.equal(c.manifests[0].model, 'th-100');
  t.same(c.waves, [{ size: '5%' }, { size: '100%', ackThreshold: 0.99 }]);
  t.equal(c.bundleLifetimeSeconds, 12 * 3600);
  t.equal(c.file, file);
});

t.test('a JSON file works the same; the environment overrides it, and flags override both', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ dataDir: '/file/data', keyPath: '/file/key', host: '10.0.0.1', mqtt: { port: 1, websocket: { port: 9001, path: '/ws' } }, http: { port: 2 }, logLevel: 'warn' }) });
  const file = join(dir, 'c.json');
  const fromFile = loadConfig({ file });
  t.match(fromFile, { dataDir: '/file/data', host: '10.0.0.1', mqtt: { port: 1, websocket: { port: 9001, path: '/ws' } }, http: { port: 2 }, logLevel: 'warn' });
  const env = { PINWAVE_DATA_DIR: '/env/data', PINWAVE_KEY: '/env/key', PINWAVE_HOST: '10.0.0.2', PINWAVE_MQTT_PORT: '3', PINWAVE_HTTP_PORT: '4', PINWAVE_LOG_LEVEL: 'error', PINWAVE_CONFIG: file };
  t.match(loadConfig({ env }), { dataDir: '/env/data', keyPath: '/env/key', host: '10.0.0.2', mqtt: { port: 3 }, http: { port: 4 }, logLevel: 'error', file }, 'PINWAVE_CONFIG names the file');
  t.match(loadConfig({ file, env, flags: { dataDir: '/flag/data', keyPath: '/flag/key', host: '::1', mqttPort: 0, httpPort: 0 } }), { dataDir: '/flag/data', keyPath: '/flag/key', host: '::1', mqtt: { port: 0 }, http: { port: 0 } });
  t.match(loadConfig({ file, env: { PINWAVE_HTTP_PORT: '', PINWAVE_DATA_DIR: '' } }), { dataDir: '/file/data', http: { port: 2 } }, 'an empty variable is unset');
});

t.test('a bad value is reported with its key and what came; every problem at once', async (t) => {
  const dir = t.testdir({ 'c.yaml': 'http:\n  port: abc\nmqtt:\n  port: 70000\n  tls: { key: nope.key, requireClientCert: true }\n  websocket: { path: ws }\nhots: 1\nlogLevel: loud\nbundleLifetime: 3w\nwaves: [{ size: "50%" }, { size: "10%" }]\n' });
  const file = join(dir, 'c.yaml');
  const list = problems({ file, env: { PINWAVE_MQTT_PORT: 'x' } });
  t.same(list, [
    'config.hots: unknown option (known: dataDir, store, keyPath, nextKeyPath, host, logLevel, logFormat, mqtt, http, tokens, manifests, waves, bundleLifetime, shutdownTimeout, console, webhooks, approval, preflight, broker)',
    'config.logLevel: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    'config.mqtt.port: must be an integer 0-65535, got 70000',
    'config.http.port: must be an integer 0-65535, got "abc"',
    `config.mqtt.tls.key: cannot read ${join(dir, 'nope.key')}: ENOENT`,
    'config.mqtt.tls.cert: required',
    "config.mqtt.tls.requireClientCert: needs config.mqtt.tls.ca, the CA that issued the devices' certificates",
    'config.mqtt.websocket.path: must start with "/", got "ws"',
    'config.waves[1].size: must not be below config.waves[0].size (sizes are cumulative), got "10%"',
    'config.bundleLifetime: must be a number of seconds above 0 and at most 3153600000 s or a duration like "12h" or "30d", got "3w"',
    'PINWAVE_MQTT_PORT: must be an integer 0-65535, got "x"',
    'dataDir: required: give --data DIR, PINWAVE_DATA_DIR or config.dataDir (or a PostgreSQL store: --store postgres://…)',
  ]);
  try {
    loadConfig({ file });
    t.fail('should throw');
  } catch (err) {
    t.match((err as Error).message, new RegExp(`^invalid configuration \\(${file}\\):\\n  config\\.hots: unknown option`));
  }
});

t.test('bundleLifetime is at most 100 years, as a bundle\'s expiresIn: a longer one is refused by its key, not signed into a bundle no view can show', async (t) => {
  const flags = { dataDir: '/tmp/pinwave-x' };
  t.same(problems({ file: write(t, 'l.json', { bundleLifetime: '999999999d' }), flags }), [
    'config.bundleLifetime: must be a number of seconds above 0 and at most 3153600000 s or a duration like "12h" or "30d", got "999999999d"',
  ]);
  t.match(problems({ file: write(t, 'n.json', { bundleLifetime: 100 * 365 * 86400 + 1 }), flags }), [/^config\.bundleLifetime: /]);
  t.match(loadConfig({ file: write(t, 'ok.json', { bundleLifetime: '36500d' }), flags }), { bundleLifetimeSeconds: 36500 * 86400 });
});

t.test('a listen address that is no IP address or host name, and a store URL that is no postgres:// one, are named by where they came from', async (t) => {
  const dataDir = '/tmp/pinwave-x';
  const file = write(t, 'h.json', { host: 'not a host!!', http: { host: 'a b' } });
  t.same(problems({ file, flags: { dataDir } }), [
    'config.host: must be an IP address or a host name to listen on, got "not a host!!"',
    'config.http.host: must be an IP address or a host name to listen on, got "a b"',
  ]);
  t.same(problems({ env: { PINWAVE_HOST: ' ', PINWAVE_HTTP_HOST: 'x/y' }, flags: { dataDir } }), [
    'PINWAVE_HOST: must be an IP address or a host name to listen on, got " "',
    'PINWAVE_HTTP_HOST: must be an IP address or a host name to listen on, got "x/y"',
  ]);
  t.same(problems({ file, flags: { dataDir, host: '127.0.0.1:1883', httpHost: '::1' } }), ['--host: must be an IP address or a host name to listen on, got "127.0.0.1:1883"']);
  for (const host of ['0.0.0.0', '::', 'fe80::1', 'localhost', 'gw-1.internal.example.com', 'pinwave_gw.', '10.0.0.7']) {
    t.same(problems({ flags: { dataDir, host } }), [], `${host} is taken`);
  }
  t.same(problems({ env: { PINWAVE_STORE: 'mysql://u:pw@db/x' } }), ['PINWAVE_STORE: must be a postgres://USER@HOST:PORT/DB URL, got "mysql://u:***@db/x"']);
  t.same(problems({ flags: { storeUrl: 'sqlite:x' } }), ['--store: must be a postgres://USER@HOST:PORT/DB URL, got "sqlite:x"']);
  t.same(problems({ file: write(t, 's.json', { store: { url: 'http://db' } }) }), ['config.store.url: must be a postgres://USER@HOST:PORT/DB URL, got "http://db/"']);
});

t.test('tokens must be { name, role, hash }; a pasted token is refused without being echoed', async (t) => {
  const tokens = [
    { name: 'alice', role: 'operator', hash: HASH },
    { name: 'alice', role: 'viewer', hash: hashToken('another-token-0123456789') },
    { name: 'bob', role: 'root', hash: 'operator-token-0123456789abcdef' },
    { name: 'carol', role: 'admin', hash: HASH },
    'dave',
    { name: 'eve smith', role: 'viewer', hash: hashToken('x'), extra: 1 },
  ];
  const list = problems({ file: write(t, 'c.json', { tokens }), flags: { dataDir: '/d', keyPath: '/k' } });
  t.same(list, [
    'config.tokens[1].name: "alice" is used by another token',
    'config.tokens[2].role: must be one of viewer, operator, admin, got "root"',
    'config.tokens[2].hash: must be a hash as `pinwave token hash` prints it (sha256:<43 characters>), not the token itself',
    'config.tokens[3].hash: the same token as another entry',
    'config.tokens[4]: must be { name, role, hash }, got a string (not shown: it may be a secret)',
    'config.tokens[5].extra: unknown option (known: name, role, hash)',
    'config.tokens[5].name: must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -, got "eve smith"',
  ]);
  t.notOk(list.join('\n').includes('operator-token-0123456789abcdef'), 'the pasted token is not repeated');
  t.same(problems({ file: write(t, 'd.json', { tokens: {} }), flags: { dataDir: '/d', keyPath: '/k' } }), ['config.tokens: must be a list of { name, role, hash }, got an object']);
});

t.test('PINWAVE_ADMIN_TOKEN adds one admin token, kept only as its hash', async (t) => {
  const secret = 'admin-token-from-env-0123456789';
  const c = loadConfig({ env: { PINWAVE_ADMIN_TOKEN: secret }, flags: { dataDir: '/d', keyPath: '/k' } });
  t.same(c.tokens, [{ name: 'admin', role: 'admin', hash: hashToken(secret) }]);
  t.notOk(JSON.stringify(c).includes(secret));
  const short = problems({ env: { PINWAVE_ADMIN_TOKEN: 'hunter2' }, flags: { dataDir: '/d', keyPath: '/k' } });
  t.match(short, [/^PINWAVE_ADMIN_TOKEN: must be 16 to 512 characters/]);
  t.notOk(short.join('').includes('hunter2'));
  const clash = problems({ file: write(t, 'c.json', { tokens: [{ name: 'admin', role: 'viewer', hash: HASH }] }), env: { PINWAVE_ADMIN_TOKEN: secret }, flags: { dataDir: '/d', keyPath: '/k' } });
  t.same(clash, ['PINWAVE_ADMIN_TOKEN: config.tokens already has a token named "admin"']);
});

t.test('manifests are read and validated; a bad one is named with its path and the problem', async (t) => {
  const dir = t.testdir({ 'good.json': JSON.stringify(manifest()), 'bad.json': JSON.stringify({ ...manifest(), pins: [{ host: 'api.example.com', pins: [pin('a'), 'sha256/AAAA'] }] }), 'text.json': 'not json', 'again.json': JSON.stringify(manifest()) });
  const ok = loadConfig({ file: write(t, 'c.json', { manifests: [join(dir, 'good.json')] }), flags: { dataDir: '/d', keyPath: '/k' } });
  t.equal(ok.manifests.length, 1);
  const list = problems({ file: write(t, 'd.json', { manifests: [join(dir, 'good.json'), join(dir, 'bad.json'), join(dir, 'text.json'), join(dir, 'gone.json'), join(dir, 'again.json'), 7] }), flags: { dataDir: '/d', keyPath: '/k' } });
  t.equal(list.length, 5);
  t.match(list[0], /^config\.manifests\[1\]: .*bad\.json is not a valid firmware manifest: \/pins\/0\/pins\/1: expected 32 bytes after base64 decoding, got 3; /);
  t.match(list[1], /^config\.manifests\[2\]: .*text\.json is not JSON/);
  t.match(list[2], /^config\.manifests\[3\]: cannot read .*gone\.json: ENOENT$/);
  t.equal(list[3], 'config.manifests[4]: model "th-100" has a manifest already');
  t.equal(list[4], 'config.manifests[5]: must be a non-empty string, got 7');
  t.same(problems({ file: write(t, 'e.json', { manifests: 'good.json' }), flags: { dataDir: '/d', keyPath: '/k' } }), ['config.manifests: must be a list of firmware manifest JSON files, got "good.json"']);
});

t.test('a manifest listing one trusted key twice is refused at load, naming the key and both places', async (t) => {
  const key = generateKeyPair();
  const raw = Buffer.from(key.publicKey).toString('base64');
  const other = generateKeyPair().publicPem;
  const dir = t.testdir({ 'twice.json': JSON.stringify({ ...manifest(), trustedKeys: [key.publicPem, other, raw] }), 'once.json': JSON.stringify({ ...manifest(), trustedKeys: [key.publicPem, other] }) });
  const list = problems({ file: write(t, 'c.json', { manifests: [join(dir, 'twice.json')] }), flags: { dataDir: '/d', keyPath: '/k' } });
  t.equal(list.length, 1);
  t.match(list[0], new RegExp(`^config\\.manifests\\[0\\]: .*twice\\.json: trustedKeys\\[2\\] is the same key as trustedKeys\\[0\\] \\(kid [0-9a-f]{16}\\): list each key once$`), 'PEM and base64 of one key are one key');
  t.equal(loadConfig({ file: write(t, 'd.json', { manifests: [join(dir, 'once.json')] }), flags: { dataDir: '/d', keyPath: '/k' } }).manifests[0].trustedKeys.length, 2);
});

t.test('the file itself: its extension, that it can be read and parsed, and that it is a mapping', async (t) => {
  const dir = t.testdir({ 'c.toml': 'x = 1', 'bad.yaml': 'a: [1, 2', 'bad.json': '{', 'list.yml': '- 1\n- 2\n', 'empty.yaml': '' });
  const flags = { dataDir: '/d', keyPath: '/k' };
  t.match(problems({ file: join(dir, 'c.toml'), flags }), [/^config: .*c\.toml must end in \.json, \.yaml or \.yml, got "\.toml"$/]);
  t.match(problems({ file: join(dir, 'none.yaml'), flags }), [/^config: cannot read .*none\.yaml: ENOENT$/]);
  t.match(problems({ file: join(dir, 'bad.yaml'), flags }), [/^config: .*bad\.yaml is not valid YAML: /]);
  t.match(problems({ file: join(dir, 'bad.json'), flags }), [/^config: .*bad\.json is not valid JSON: /]);
  t.same(problems({ file: join(dir, 'list.yml'), flags }), ['config: must be a mapping of options, got an array']);
  t.same(problems({ file: join(dir, 'empty.yaml'), flags }), [], 'an empty file is no options');
  t.same(problems({ file: write(t, 'o.json', { mqtt: 5, http: { trustProxy: 'yes' }, host: '', mqtt2: 1 }), flags }), [
    'config.mqtt2: unknown option (known: dataDir, store, keyPath, nextKeyPath, host, logLevel, logFormat, mqtt, http, tokens, manifests, waves, bundleLifetime, shutdownTimeout, console, webhooks, approval, preflight, broker)',
    'config.host: must be a non-empty string, got ""',
    'config.mqtt: must be a mapping, got 5',
    'config.http.trustProxy: must be true or false, got "yes"',
  ]);
  t.match(loadConfig({ file: write(t, 'w.json', { mqtt: { websocket: false }, bundleLifetime: 600 }), flags }), { mqtt: { port: 1883 }, bundleLifetimeSeconds: 600 });
});

/** Writes a JSON config into the test's own folder (made, and removed after the test, by tap). */
function write(t: { testdirName: string; testdir(): string }, name: string, value: unknown): string {
  if (!existsSync(t.testdirName)) t.testdir();
  const file = join(t.testdirName, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

t.test('the HTTP listener of its own (http.host, http.tls) and the shutdown bound: file, environment, flags', async (t) => {
  const dir = t.testdir({ 'api.key': 'API KEY PEM', 'api.crt': 'API CERT PEM' });
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'dataDir: d\nkeyPath: k\nhost: 0.0.0.0\nshutdownTimeout: 2m\nhttp: { host: 127.0.0.1, tls: { key: api.key, cert: api.crt } }\n');
  const c = loadConfig({ file });
  t.equal(c.host, '0.0.0.0', 'MQTT on every address');
  t.same(c.http, { port: 8080, host: '127.0.0.1', tls: { key: Buffer.from('API KEY PEM'), cert: Buffer.from('API CERT PEM') }, trustProxy: false }, 'the API on loopback, over HTTPS');
  t.equal(c.shutdownTimeoutMs, 120_000);
  t.match(loadConfig({ file, env: { PINWAVE_HTTP_HOST: '::1', PINWAVE_SHUTDOWN_TIMEOUT: '30' } }), { http: { host: '::1' }, shutdownTimeoutMs: 30_000 });
  t.match(loadConfig({ file, env: { PINWAVE_SHUTDOWN_TIMEOUT: '45s' }, flags: { httpHost: '127.0.0.2', shutdownTimeout: 3 } }), { http: { host: '127.0.0.2' }, shutdownTimeoutMs: 3000 }, 'flags win');
  t.equal(loadConfig({ flags: { dataDir: 'd', keyPath: 'k', host: '::1' } }).http.host, '::1', '--host moves both listeners');

  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ dataDir: 'd', keyPath: 'k', shutdownTimeout: '2h', http: { host: '', tls: { key: 'missing.key', pem: 'x' } } }));
  t.throws(() => loadConfig({ file: bad, env: { PINWAVE_SHUTDOWN_TIMEOUT: '0' }, flags: { shutdownTimeout: 0 } }), {
    name: 'ConfigError',
    problems: [
      'config.http.host: must be a non-empty string, got ""',
      'config.http.tls.pem: unknown option (known: key, cert)',
      `config.http.tls.key: cannot read ${join(dir, 'missing.key')}: ENOENT`,
      'config.http.tls.cert: required',
      'config.shutdownTimeout: must be a number of seconds above 0 and at most 3600 s or a duration like "10s" or "2m", got "2h"',
      'PINWAVE_SHUTDOWN_TIMEOUT: must be a number of seconds above 0 and at most 3600 s or a duration like "10s" or "2m", got 0',
      '--shutdown-timeout: must be from 1 s to 3600 s, got 0 s',
    ],
  });
});

t.test('console sessions: idle and absolute timeouts as durations, checked', async (t) => {
  const dir = t.testdir({ 'ok.yaml': 'console: { sessionIdle: 30m, sessionLifetime: 8h }\n', 'bad.yaml': 'console: { sessionIdle: 2d, sessionLifetime: 1d, sesionIdle: 1 }\n', 'worse.yaml': 'console: { sessionIdle: soon, sessionLifetime: 400d }\n' });
  const flags = { dataDir: '/d', keyPath: '/k.pem' };
  t.same(loadConfig({ file: join(dir, 'ok.yaml'), flags }).console, { sessionIdleMs: 30 * 60_000, sessionLifetimeMs: 8 * 3600_000 });
  t.equal(loadConfig({ flags }).console, undefined, 'absent: the defaults');
  t.throws(() => loadConfig({ file: join(dir, 'bad.yaml'), flags }), {
    problems: ['config.console.sesionIdle: unknown option (known: sessionIdle, sessionLifetime)', 'config.console.sessionIdle: must not be longer than sessionLifetime (172800 s > 86400 s)'],
  });
  t.throws(() => loadConfig({ file: join(dir, 'worse.yaml'), flags }), {
    problems: [
      'config.console.sessionIdle: must be a number of seconds above 0 and at most 2592000 s or a duration like "30m" or "1h", got "soon"',
      'config.console.sessionLifetime: must be a number of seconds above 0 and at most 31536000 s or a duration like "12h" or "7d", got "400d"',
    ],
  });
});

t.test('console sessions: one timeout alone is judged against the other\'s default', async (t) => {
  const flags = { dataDir: '/d', keyPath: '/k.pem' };
  // One alone is judged against the other's default (sessionIdle 1h, sessionLifetime 12h).
  const dir = t.testdir({ 'idle.yaml': 'console: { sessionIdle: 1d }\n', 'life.yaml': 'console: { sessionLifetime: 30m }\n', 'fine.yaml': 'console: { sessionIdle: 2h }\n' });
  t.throws(() => loadConfig({ file: join(dir, 'idle.yaml'), flags }), { problems: ['config.console.sessionIdle: must not be longer than sessionLifetime (86400 s > 43200 s (the default))'] });
  t.throws(() => loadConfig({ file: join(dir, 'life.yaml'), flags }), { problems: ['config.console.sessionIdle: must not be longer than sessionLifetime (3600 s (the default) > 1800 s)'] });
  t.same(loadConfig({ file: join(dir, 'fine.yaml'), flags }).console, { sessionIdleMs: 2 * 3600_000 });
});

t.test('approval: off unless configured; removePin and addPin count operators, the creator being one, with defaults 2 and 1', async (t) => {
  const flags = { dataDir: '/d', keyPath: '/k' };
  t.equal(loadConfig({ flags }).approval, undefined, 'off by default');
  t.same(loadConfig({ file: write(t, 'a.json', { approval: {} }), flags }).approval, { removePin: 2, addPin: 1 });
  t.same(loadConfig({ file: write(t, 'b.json', { approval: { removePin: 3, addPin: 2 } }), flags }).approval, { removePin: 3, addPin: 2 });
  t.same(problems({ file: write(t, 'c.json', { approval: { removePin: 0, addPin: 1.5, quorum: 2 } }), flags }), [
    'config.approval.quorum: unknown option (known: removePin, addPin)',
    'config.approval.removePin: must be an integer 1-10, got 0',
    'config.approval.addPin: must be an integer 1-10, got 1.5',
  ]);
  t.same(problems({ file: write(t, 'd.json', { approval: { removePin: 1, addPin: 2 } }), flags }), ['config.approval.addPin: must not be more than removePin (2 > 1): removing a pin is never the smaller risk']);
  t.same(problems({ file: write(t, 'e.json', { approval: true }), flags }), ['config.approval: must be { removePin, addPin }, got true']);
});

t.test('webhooks: url, events (all of them when left out) and a secret; every problem named, the secret never shown', async (t) => {
  const flags = { dataDir: '/d', keyPath: '/k' };
  const secret = 'a-webhook-secret-0123456789';
  const c = loadConfig({ file: write(t, 'w.json', { webhooks: [{ url: 'https://alerts.example.com/pinwave', secret }, { url: 'http://127.0.0.1:9000/h', events: ['rollout.held', 'rollout.held'], secret }] }), flags });
  t.same(c.webhooks, [
    { url: 'https://alerts.example.com/pinwave', events: ['rollout.held', 'rollout.resumed', 'rollout.completed', 'rollout.aborted', 'rollout.at_risk', 'approval.requested'], secret },
    { url: 'http://127.0.0.1:9000/h', events: ['rollout.held'], secret },
  ]);
  const list = problems({ file: write(t, 'bad.json', { webhooks: [{ url: 'ftp://x/y', events: ['rollout.exploded'], secret: 'short' }, { events: [], secret, colour: 1 }, 'x'] }), flags });
  t.same(list, [
    'config.webhooks[0].url: must be http:// or https://, got ftp://',
    'config.webhooks[0].events: unknown event "rollout.exploded" (known: rollout.held, rollout.resumed, rollout.completed, rollout.aborted, rollout.at_risk, approval.requested)',
    'config.webhooks[0].secret: required: a string of at least 16 characters (the HMAC-SHA256 key receivers check signatures with)',
    'config.webhooks[1].colour: unknown option (known: url, events, secret)',
    'config.webhooks[1].url: required: an http:// or https:// URL',
    'config.webhooks[1].events: must be a non-empty list of rollout.held, rollout.resumed, rollout.completed, rollout.aborted, rollout.at_risk, approval.requested (leave it out for all of them), got an array',
    'config.webhooks[2]: must be { url, events, secret }, got a string (not shown: it may be a secret)',
  ]);
  t.same(problems({ file: write(t, 'cred.json', { webhooks: [{ url: 'https://bob:hunter2@hooks.example.com/x', secret }] }), flags }), [
    'config.webhooks[0].url: must not carry a user name or password (fetch refuses them; receivers check the signature instead)',
  ]);
  t.same(problems({ file: write(t, 'port.json', { webhooks: [{ url: 'http://127.0.0.1:0/hooks', secret }] }), flags }), ['config.webhooks[0].url: port 0 is no port to connect to (a TCP port is 1 to 65535)']);
  t.notOk(list.join('\n').includes('short'), 'the secret is not echoed');
  // One URL twice (as URL parsing writes it: case and default port aside) would be posted every alert twice.
  t.same(problems({ file: write(t, 'twice.json', { webhooks: [{ url: 'https://hooks.example.com/a', secret }, { url: 'https://other.example.com/a', secret }, { url: 'HTTPS://hooks.example.com:443/a', events: ['rollout.held'], secret }] }), flags }), [
    'config.webhooks[2].url: the same URL as config.webhooks[0].url (each alert would be posted to it twice): give it once, with the events of both',
  ]);
});

t.test('logFormat: json by default, pretty from the file, PINWAVE_LOG_FORMAT or the flag, in that order of precedence', async (t) => {
  const flags = { dataDir: '/d', keyPath: '/k' };
  const file = write(t, 'l.json', { logFormat: 'pretty' });
  t.equal(loadConfig({ file, flags }).logFormat, 'pretty');
  t.equal(loadConfig({ file, flags, env: { PINWAVE_LOG_FORMAT: 'json' } }).logFormat, 'json');
  t.equal(loadConfig({ file, flags: { ...flags, logFormat: 'json' }, env: { PINWAVE_LOG_FORMAT: 'pretty' } }).logFormat, 'json');
  t.same(problems({ file: write(t, 'b.json', { logFormat: 'xml' }), flags, env: { PINWAVE_LOG_FORMAT: 'yaml' } }), [
    'config.logFormat: must be one of json, pretty, got "xml"',
    'PINWAVE_LOG_FORMAT: must be one of json, pretty, got "yaml"',
  ]);
});

t.test('preflight: the endpoints read live, each with where to dial it, and the two switches; every problem named', async (t) => {
  const dir = t.testdir({
    'ok.yaml': 'preflight:\n  endpoints:\n    "telemetry.example.com:443": { connect: "127.0.0.1:8443" }\n    "api.example.com:443": null\n    "[::1]:8443": {}\n  probeAll: true\n  requireOverlap: true\n',
    'bad.yaml': 'preflight:\n  endpoints:\n    "no-port.example.com": null\n    "a.example.com:443": { connect: "10.0.0.1" }\n    "b.example.com:443": { conect: "10.0.0.1:1" }\n    "c.example.com:70000": null\n  probeAll: yes\n  requireOverlap: 1\n  probe: all\n',
    'list.yaml': 'preflight: { endpoints: [a.example.com:443] }\n',
  });
  const flags = { dataDir: '/d', keyPath: '/k.pem' };
  t.same(loadConfig({ file: join(dir, 'ok.yaml'), flags }).preflight, {
    probeAll: true,
    requireOverlap: true,
    endpoints: { 'telemetry.example.com:443': { host: '127.0.0.1', port: 8443 }, 'api.example.com:443': null, '[::1]:8443': null },
  });
  t.same(problems({ file: join(dir, 'bad.yaml'), flags }), [
    'config.preflight.probe: unknown option (known: endpoints, probeAll, requireOverlap)',
    'config.preflight.probeAll: must be true or false, got "yes"',
    'config.preflight.requireOverlap: must be true or false, got 1',
    'config.preflight.endpoints.no-port.example.com: must be named HOST:PORT (a port 1-65535), e.g. "api.example.com:443"',
    'config.preflight.endpoints.a.example.com:443.connect: must be ADDR:PORT (a port 1-65535), e.g. "10.0.0.7:8443", got "10.0.0.1"',
    'config.preflight.endpoints.b.example.com:443.conect: unknown option (known: connect)',
    'config.preflight.endpoints.c.example.com:70000: must be named HOST:PORT (a port 1-65535), e.g. "api.example.com:443"',
  ]);
  t.same(problems({ file: join(dir, 'list.yaml'), flags }), ['config.preflight.endpoints: must be a mapping of "HOST:PORT" to { connect: "ADDR:PORT" } or null, got an array']);
});

t.test('store.url: the fleet in PostgreSQL instead of a data dir; a bad URL is named without its password', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ store: { url: 'postgres://pinwave@db:5432/fleet' }, keyPath: '/k' }) });
  t.match(loadConfig({ file: join(dir, 'c.json') }), { dataDir: null, storeUrl: 'postgres://pinwave@db:5432/fleet' }, 'no data dir needed');
  t.match(loadConfig({ flags: { dataDir: '/d', storeUrl: 'postgres://a@b/c' } }), { dataDir: '/d', storeUrl: 'postgres://a@b/c' }, 'the flag');
  t.match(loadConfig({ env: { PINWAVE_STORE: 'postgres://e@f/g', PINWAVE_DATA_DIR: '/d' } }), { storeUrl: 'postgres://e@f/g' }, 'the environment');
  const bad = (() => {
    try {
      loadConfig({ flags: { storeUrl: 'mysql://root:hunter2@db/x' } });
    } catch (err) {
      return (err as Error).message;
    }
    return '';
  })();
  t.match(bad, /--store: must be a postgres:\/\/USER@HOST:PORT\/DB URL, got "mysql:\/\/root:\*\*\*@db\/x"/);
  t.notMatch(bad, /hunter2/, 'the password is never shown');
  t.throws(() => loadConfig({ file: join(t.testdir({ 'c.json': JSON.stringify({ store: { url: 'postgres://a@b/c', pool: 3 } }) }), 'c.json') }), /config\.store\.pool: unknown option/);
});

t.test('a secret given where a mapping belongs is refused without being echoed: a token, a webhook URL, a database or broker URL', async (t) => {
  const flags = { dataDir: '/d', keyPath: '/k' };
  const list = problems({
    file: write(t, 'c.json', {
      tokens: ['pasted-api-token-0123456789abcdef'],
      webhooks: ['https://alerts.example.com/hook?key=webhook-secret-0123'],
      store: 'postgres://pinwave:db-password-0123@db:5432/fleet',
    }),
    flags,
  });
  t.same(list, [
    'config.store: must be { url }, got a string (not shown: it may be a secret)',
    'config.tokens[0]: must be { name, role, hash }, got a string (not shown: it may be a secret)',
    'config.webhooks[0]: must be { url, events, secret }, got a string (not shown: it may be a secret)',
  ]);
  for (const secret of ['pasted-api-token', 'webhook-secret', 'db-password']) t.notOk(list.join('\n').includes(secret), `${secret} is not repeated`);
  const broker = problems({ file: write(t, 'b.json', { broker: { url: 'mqtt://gw:broker-password-0123@127.0.0.1', auth: 'a.json' } }), flags });
  t.match(broker, [/^config\.broker\.url: must name the port \(1883 is never assumed\), got "mqtt:\/\/gw:\*\*\*@127\.0\.0\.1"$/]);
  t.notOk(broker.join('\n').includes('broker-password'), 'the broker password is not repeated');
  const flag = problems({ flags: { ...flags, brokerUrl: 'https://gw:broker-password-0123@127.0.0.1:1883', brokerAuth: '/nonexistent.json' } });
  t.notOk(flag.join('\n').includes('broker-password'), 'nor from --broker');
});
