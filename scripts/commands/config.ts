// `pinwave config check FILE`: the gateway's configuration as `pinwave gateway --config FILE` would
// load it (the file, then PINWAVE_* variables of this environment), checked whole before a start:
// every problem printed, each naming its key, exit 1; or a summary of what the gateway would run
// with, exit 0. Beyond what loading checks, it reads the signing key as the gateway will (its
// owner-only mode included) and checks the data dir can be used. Secrets are never printed: tokens
// by name and role, webhooks by their URL's origin.
import { redactUrl } from '../../gateway/store/redact-url.ts';
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, loadConfig, type GatewayConfig } from '../../gateway/config.ts';
import { hex } from '../../firmware-manifest/codec.ts';
import { manifestWarnings } from '../../firmware-manifest/manifest.ts';
import { endpointText } from '../../firmware-manifest/endpoint-text.ts';
import { loadSigningKey } from '../../gateway/signing-key.ts';
import { parse, UsageError, type Io } from '../args.ts';
import { startWarnings } from './gateway.ts';
import { clashProblem, listenersOf } from '../start-checks.ts';

const USAGE = `Usage:
  pinwave config check FILE [--json]

check   load FILE (JSON or YAML) and the PINWAVE_* environment as \`pinwave gateway --config FILE\` does,
        read the signing key, check the data dir and that no two listeners clash (as the gateway's
        start judges them): print every problem and exit 1, or a summary and its warnings (a
        cleartext listener, MQTT on 0.0.0.0 or :: without mqtt.deviceUrl, a configured manifest's) and exit 0. Run it as the user the gateway
        runs as (sudo -u pinwave pinwave config check …): what that user cannot read is a problem.
        docs/configuration.md describes every key.`;

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'check': return check(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

async function check(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('check takes exactly one config FILE', USAGE);
  const file = positionals[0];
  let config: GatewayConfig | null = null;
  const problems: string[] = [];
  try {
    config = loadConfig({ file, env: { ...io.env, PINWAVE_CONFIG: '' } });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // A file that cannot be read or parsed (`config: ...`) is the one problem: what else loading
    // said (dataDir required, ...) follows from the options it could not read.
    const ofFile = err.problems.filter((p) => p.startsWith('config: '));
    problems.push(...(ofFile.length > 0 ? ofFile : err.problems));
  }
  let kid: string | null = null;
  let nextKid: string | null = null;
  if (config) {
    try {
      if (config.keyPath !== null) kid = hex(loadSigningKey(config.keyPath, { strictMode: true }).kid);
    } catch (err) {
      problems.push(`keyPath: ${(err as Error).message}`);
    }
    try {
      if (config.nextKeyPath !== null) nextKid = hex(loadSigningKey(config.nextKeyPath, { strictMode: true }).kid);
    } catch (err) {
      problems.push(`nextKeyPath: ${(err as Error).message}`);
    }
    if (kid !== null && kid === nextKid) problems.push(`nextKeyPath: ${config.nextKeyPath} is the same key as keyPath ${config.keyPath} (kid ${kid}): the next key is a new key pair (pinwave keygen --out DIR)`);
    if (config.dataDir !== null) problems.push(...dataDirProblems(config.dataDir));
    // Two of its own listeners on one port, decided as the gateway's start decides; not whether a port is
    // free now: the gateway this file is for may be running and holding it.
    const clash = await clashProblem(listenersOf(config));
    if (clash !== null) problems.push(clash);
  }
  if (problems.length > 0) {
    if (values.json) io.out(JSON.stringify({ ok: false, file, problems }, null, 2));
    else {
      io.err(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:`);
      for (const p of problems) io.err(`  ${p}`);
    }
    return 1;
  }
  const c = config!;
  // A manifest's warnings, as the gateway logs them at start (gateway/manifests.ts).
  const warnings = [...startWarnings(c), ...c.manifests.flatMap((m, i) => manifestWarnings(m).map((w) => `config.manifests[${i}] (${m.model} ${m.firmware}): ${w.path}: ${w.message}`))];
  const summary = {
    ok: true,
    file: resolve(file),
    dataDir: c.dataDir,
    store: c.storeUrl === null ? 'embedded' : redactUrl(c.storeUrl),
    keyPath: c.keyPath,
    kid,
    nextKeyPath: c.nextKeyPath,
    nextKid,
    mqtt: { host: c.host, port: c.mqtt.port, ...(c.mqtt.tls && { tlsPort: c.mqtt.tls.port }), ...(c.mqtt.websocket && { websocket: c.mqtt.websocket }), ...(c.mqtt.deviceUrl !== undefined && { deviceUrl: c.mqtt.deviceUrl }) },
    http: { host: c.http.host, port: c.http.port, https: Boolean(c.http.tls), trustProxy: c.http.trustProxy },
    log: { level: c.logLevel, format: c.logFormat },
    shutdownTimeoutSeconds: c.shutdownTimeoutMs / 1000,
    tokens: c.tokens.map((t) => ({ name: t.name, role: t.role })),
    manifests: c.manifests.map((m) => ({ model: m.model, firmware: m.firmware })),
    waves: c.waves ?? null,
    bundleLifetimeSeconds: c.bundleLifetimeSeconds ?? null,
    webhooks: c.webhooks.map((w) => ({ origin: new URL(w.url).origin, events: w.events })),
    warnings,
  };
  if (values.json) return io.out(JSON.stringify(summary, null, 2)), 0;
  const mqtt = [`mqtt://${endpointText(c.host, c.mqtt.port)}`, c.mqtt.tls && `mqtts port ${c.mqtt.tls.port}`, c.mqtt.websocket && `ws port ${c.mqtt.websocket.port}${c.mqtt.websocket.path}`, c.mqtt.deviceUrl !== undefined && `devices are given ${c.mqtt.deviceUrl}`].filter(Boolean).join(', ');
  const rows: Array<[string, string]> = [
    c.storeUrl === null ? ['data dir', c.dataDir ?? ''] : ['store', `${redactUrl(c.storeUrl)} (PostgreSQL)`],
    ['signing key', c.keyPath === null ? 'none: upload-only, the gateway signs no bundle (pinwave bundle upload)' : `${c.keyPath} (kid ${kid})`],
    ...(c.nextKeyPath !== null ? [['next signing key', `${c.nextKeyPath} (kid ${nextKid}): signs a group's bundles once a rotation to it is its baseline`] as [string, string]] : []),
    ['mqtt', mqtt],
    ['http', `${c.http.tls ? 'https' : 'http'}://${endpointText(c.http.host, c.http.port)}${c.http.trustProxy ? ' (behind a proxy: X-Forwarded-For trusted)' : ''}`],
    ['log', `${c.logLevel}, ${c.logFormat}`],
    ['shutdown', `within ${c.shutdownTimeoutMs / 1000} s`],
    ['tokens', c.tokens.length === 0 ? 'none: every /v1 route answers 401' : c.tokens.map((t) => `${t.name} (${t.role})`).join(', ')],
    ['manifests', c.manifests.length === 0 ? 'none: pre-flight checks only groups' : c.manifests.map((m) => `${m.model} ${m.firmware}`).join(', ')],
    ['waves', c.waves ? c.waves.map((w) => String(w.size)).join(', ') : "the engine's default (1%, 10%, 50%, 100%)"],
    ['bundle lifetime', c.bundleLifetimeSeconds === undefined ? '30 days (default)' : `${c.bundleLifetimeSeconds} s`],
    ['webhooks', c.webhooks.length === 0 ? 'none' : c.webhooks.map((w, i) => `#${i} ${new URL(w.url).origin} (${w.events.join(', ')})`).join('; ')],
  ];
  io.out(`${file}: ok`);
  for (const [k, v] of rows) io.out(`  ${k.padEnd(16)}${v}`);
  for (const w of warnings) io.out(`  warning: ${w}`);
  return 0;
}

/** The gateway creates the data dir (0700) when it is missing: it needs a folder it can write, or a parent it can create one in. */
function dataDirProblems(dir: string): string[] {
  try {
    const st = statSync(dir);
    if (!st.isDirectory()) return [`dataDir: ${dir} is not a directory`];
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    return [];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return [`dataDir: ${dir} is not writable by this user`];
    if (code !== 'ENOENT') return [`dataDir: ${dir}: ${code ?? (err as Error).message}`];
  }
  try {
    accessSync(dirname(dir), constants.W_OK | constants.X_OK);
    return [];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return [`dataDir: ${dir} does not exist and ${dirname(dir)} ${code === 'ENOENT' ? 'does not exist either' : 'is not writable by this user'} (create it: install -d -m 0700 ${dir})`];
  }
}
