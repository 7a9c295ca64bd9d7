// `pinwave gateway`: the MQTT broker for devices and the HTTP API for operators, in one process,
// until SIGINT or SIGTERM. Logs are pino JSON lines on stderr; tokens, device tokens and keys never
// reach them (redacted, and never passed to the logger).
//
// A stop always ends, within the shutdown timeout (default 10 s), and loses nothing the gateway
// acknowledged (docs/architecture.md §7: a 2xx or a PUBACK is a promise):
//   1. nothing new is taken: the listeners close, device CONNECT/SUBSCRIBE/PUBLISH are refused (a
//      refused PUBLISH is not acked, so the device sends it again later), and HTTP connections with
//      no request in a handler (idle ones, half-sent requests) are closed at once;
//   2. the store is flushed: a supervisor that kills the process after this loses nothing before it;
//   3. the work in flight (requests in their handlers, device messages already PUBACKed, what they
//      started) gets until 80% of the timeout to finish, with the store still open; what is still
//      running then is cut off (its client gets no answer, so nothing it did was acknowledged);
//   4. the gateway stops and the store is flushed again, and the process exits: 0 when everything
//      finished and was written, 1 when work was cut off or the store could not be written (that
//      is reported on stderr; it never holds the exit up). A second signal exits at once.
//
// SIGHUP reloads the API tokens (see reloadTokens below): nothing else of the config changes.
import { constants } from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';
import { ConfigError, loadConfig, type ConfigFlags, type GatewayConfig } from '../../gateway/config.ts';
import { Gateway } from '../../gateway/gateway.ts';
import { deviceUrlWarning } from '../../gateway/device-url.ts';
import { buildServer } from '../../gateway/http/server.ts';
import type { ApiTokens } from '../../gateway/http/tokens.ts';
import { durationFlag, parse, uintFlag, UsageError, type Io } from '../args.ts';
import { prettyDestination } from '../log-pretty.ts';
import { packageVersion } from '../../gateway/http/info.ts';
import { LOG_FORMATS, settingText, type LogFormat, type Setting } from '../../gateway/config.ts';
import { loadSigningKey } from '../../gateway/signing-key.ts';
import { dataDirProblem, listenersOf, listenFailure, listenProblem } from '../start-checks.ts';
import { hex } from '../../firmware-manifest/codec.ts';
import { endpointText } from '../../firmware-manifest/endpoint-text.ts';

const USAGE = `Usage:
  pinwave gateway (--data DIR | --store postgres://USER@HOST:PORT/DB) [--key KEY.pem] [--next-key NEXT.pem] [--mqtt-port N] [--http-port N] [--host H] [--http-host H]
                  [--mqtt-device-url mqtt(s)://HOST:PORT]
                  [--shutdown-timeout T] [--log-format json|pretty] [--config FILE]
                  [--broker mqtt://HOST:PORT --broker-auth FILE [--broker-ca FILE] [--broker-client-id ID]] (--broker repeatable)

Serves MQTT (devices) and HTTP (operators: the API, /docs, /metrics) until SIGINT or SIGTERM.
  --data DIR        the embedded store's folder: journal and snapshots, one gateway at a time (PINWAVE_DATA_DIR, config dataDir)
  --store URL       postgres://USER[:PASSWORD]@HOST:PORT/DB: the fleet in PostgreSQL instead (PINWAVE_STORE, config store.url);
                    docs/storage.md says how to move a data dir there (pinwave store migrate)
  --key KEY.pem     the bundle signing key, mode 0600 (PINWAVE_KEY, config keyPath); without one the gateway
                    is upload-only: it signs nothing and takes bundles signed elsewhere (pinwave bundle upload)
  --next-key NEXT.pem   the next signing key, mode 0600, another than --key's (PINWAVE_NEXT_KEY, config nextKeyPath): a
                    group's bundles are signed with it once a rotation to it (bundle push --rotate-keys) is the group's baseline
  --mqtt-port N     default 1883, 0 for any free port (PINWAVE_MQTT_PORT, config mqtt.port)
  --http-port N     default 8080, 0 for any free port (PINWAVE_HTTP_PORT, config http.port)
  --host H          listen address of MQTT, and of HTTP unless --http-host; default 127.0.0.1 (PINWAVE_HOST, config host)
  --http-host H     listen address of the HTTP API; default --host (PINWAVE_HTTP_HOST, config http.host)
  --mqtt-device-url URL   the MQTT URL devices are given (GET /v1/info, pinwave sim --api), mqtt:// or mqtts://HOST:PORT,
                    where they reach the gateway by another address than --host (PINWAVE_MQTT_DEVICE_URL, config
                    mqtt.deviceUrl); default the listener's URL, and with --host 0.0.0.0 or :: the address each
                    request came in on (the start warns: set it for a fleet)
  --shutdown-timeout T   how long a stop may take, e.g. 10s, 2m; default 10s (PINWAVE_SHUTDOWN_TIMEOUT, config shutdownTimeout)
  --broker URL      external broker mode (docs/external-broker.md): devices connect to this Mosquitto (mqtt://
                    or mqtts://HOST:PORT), which holds their credentials; the gateway is its client and opens
                    no MQTT listener of its own (config broker.url). Several brokers: --broker again, or a
                    comma list; each device is provisioned onto one, the least loaded (config broker.urls)
  --broker-auth FILE   the gateway's broker credentials, mode 0600, as \`pinwave broker mosquitto-config\`
                    writes them (config broker.auth); with several brokers one for all, or one per --broker in order
  --broker-ca FILE  PEM CA of an mqtts:// broker; default the system's (config broker.ca); one, or one per --broker
  --broker-client-id ID   this gateway's client id at the broker(s), stable across restarts, with an "@";
                    default pinwave@<host name> (config broker.clientId). With --store postgres://… every
                    gateway on the broker and database is a replica (docs/deployment.md): each needs its own id;
                    one leads (runs the rollout engine), the others take device messages and API calls
  --log-format F    json (pino's JSON lines, ISO 8601 times; the default) or pretty (one readable line each, for people) (PINWAVE_LOG_FORMAT, config logFormat)
  --config FILE     JSON or YAML config: TLS for MQTT and HTTP, WebSocket, API tokens, manifests, wave defaults, webhooks (PINWAVE_CONFIG);
                    docs/configuration.md has every key; check a file with \`pinwave config check FILE\`
Flags override the environment, which overrides the config file.
A port in use, a host that does not resolve or a --data that is a file: one line naming the flag (or variable,
or config key, or the default if nothing set it) and the address, exit 1, before the store is opened.
PINWAVE_ADMIN_TOKEN sets one admin API token; others go in the config as hashes (pinwave token hash).
On SIGINT or SIGTERM: no new requests or device messages, work in flight finishes within the shutdown
timeout, the store is written, exit 0 (1 if work was cut off or the store could not be written).
A second signal exits at once.
On SIGHUP: the API tokens are read again from the config and PINWAVE_ADMIN_TOKEN; a token no longer
there stops working at once, with its console sessions. A config with problems is reported and the
tokens in force stay. Nothing else of the config is reloaded.`;

/** Log fields that may carry a secret: censored wherever they appear. */
export const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'token',
  'password',
  'key',
  'seed',
  'hash',
  '*.token',
  '*.password',
  '*.key',
  '*.seed',
  '*.hash',
  'devices[*].token',
  '*.devices[*].token',
  'secret',
  '*.secret',
];

export interface ServeOptions {
  /** resolves when the gateway should stop; default: the first SIGINT or SIGTERM (a second one exits at once) */
  until?: Promise<unknown>;
  /** where the JSON log goes; default stderr */
  log?: DestinationStream;
  /** the clock; default Date.now (tests inject one) */
  now?: () => number;
  /** called with the exit code once a gateway that served has stopped (the process entry exits); default none */
  exit?: (code: number) => void;
  /** how a token reload is asked for: calls the handler on each request, returns how to stop listening; default SIGHUP */
  reload?: (handler: () => void) => () => void;
}

/** The process entry: serves until a signal; after the stop the process exits, whatever handles are left open. */
export function main(args: string[], io: Io): Promise<number> {
  // After a stop nothing of the gateway may keep the process: a store that cannot be written
  // retries on a timer, a half-closed socket waits on its peer. The stop itself is bounded.
  return serve(args, io, { exit: (code) => process.exit(code) });
}

/** `pinwave gateway` with what a test needs to run it in-process: when to stop, where to log. */
export async function serve(args: string[], io: Io, o: ServeOptions = {}): Promise<number> {
  const { values } = parse(args, {
    data: { type: 'string' },
    store: { type: 'string' },
    key: { type: 'string' },
    'next-key': { type: 'string' },
    'mqtt-port': { type: 'string' },
    'http-port': { type: 'string' },
    host: { type: 'string' },
    'http-host': { type: 'string' },
    'mqtt-device-url': { type: 'string' },
    'shutdown-timeout': { type: 'string' },
    config: { type: 'string' },
    'log-format': { type: 'string' },
    broker: { type: 'string', multiple: true },
    'broker-auth': { type: 'string', multiple: true },
    'broker-ca': { type: 'string', multiple: true },
    'broker-client-id': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  // An empty value is an unset variable (--host "$BIND"), not an order: "" would listen on every
  // interface, and an empty --key would start the gateway upload-only without a word.
  for (const [name, v] of Object.entries(values)) if (v === '') throw new UsageError(`--${name} needs a value, got an empty string`, USAGE);
  const port = (v: string | undefined, flag: string) => {
    if (v === undefined) return undefined;
    const n = uintFlag(v, flag, USAGE);
    if (n > 65535) throw new UsageError(`--${flag} must be 0 to 65535, got ${n}`, USAGE);
    return n;
  };
  const flags: ConfigFlags = {
    ...(values.data !== undefined && { dataDir: values.data }),
    ...(values.store !== undefined && { storeUrl: values.store }),
    ...(values.key !== undefined && { keyPath: values.key }),
    ...(values['next-key'] !== undefined && { nextKeyPath: values['next-key'] }),
    ...(values.host !== undefined && { host: values.host }),
    ...(values['mqtt-port'] !== undefined && { mqttPort: port(values['mqtt-port'], 'mqtt-port') }),
    ...(values['http-port'] !== undefined && { httpPort: port(values['http-port'], 'http-port') }),
    ...(values['http-host'] !== undefined && { httpHost: values['http-host'] }),
    ...(values['mqtt-device-url'] !== undefined && { mqttDeviceUrl: values['mqtt-device-url'] }),
    ...(values['shutdown-timeout'] !== undefined && { shutdownTimeout: durationFlag(values['shutdown-timeout'], 'shutdown-timeout', USAGE) }),
    ...(values['log-format'] !== undefined && { logFormat: logFormatFlag(values['log-format']) }),
    ...(values.broker !== undefined && { brokerUrl: values.broker }),
    ...(values['broker-auth'] !== undefined && { brokerAuth: values['broker-auth'] }),
    ...(values['broker-ca'] !== undefined && { brokerCa: values['broker-ca'] }),
    ...(values['broker-client-id'] !== undefined && { brokerClientId: values['broker-client-id'] }),
  };

  let config;
  try {
    config = loadConfig({ file: values.config ?? null, env: io.env, flags });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`pinwave gateway: ${err.message}`);
      return 2;
    }
    throw err;
  }
  // A value as the operator set it (the flag, the variable, the config key or the default), for a message to name it.
  const setting = (name: Setting, value: string | number) => settingText(config, name, value);
  const sameKey = sameSigningKey(config.keyPath, config.nextKeyPath);
  if (sameKey !== null) {
    // A rotation to the key already in use would move the fleet nowhere, and read as done.
    throw new UsageError(`${setting('nextKeyPath', config.nextKeyPath!)} is the same key as ${setting('keyPath', config.keyPath!)} (kid ${sameKey}): the next key is a new key pair (pinwave keygen --out DIR)`);
  }

  // Checked before the store is opened: a start refused here has written nothing (scripts/start-checks.ts).
  const listeners = listenersOf(config);
  const problem = (config.dataDir !== null ? await dataDirProblem(config.dataDir, setting('dataDir', config.dataDir)) : null) ?? (await listenProblem(listeners));
  if (problem !== null) {
    io.err(`pinwave gateway: ${problem}`);
    return 1;
  }

  // JSON lines with ISO 8601 times by default (journald and log shippers parse them); pretty for people.
  const log: Logger = pino(
    { level: config.logLevel, base: { name: 'pinwave' }, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACT, censor: '[redacted]' } },
    config.logFormat === 'pretty' ? prettyDestination(o.log ?? process.stderr) : (o.log ?? pino.destination({ fd: 2, sync: true })),
  );
  const stop = o.until ?? signalled(log);

  // A port taken between the check and the start is named all the same.
  const refused = (err: unknown) => {
    const line = listenFailure(err, listeners);
    if (line === null) throw err;
    io.err(`pinwave gateway: ${line}`);
    return 1;
  };
  let gw: Gateway;
  try {
    gw = await Gateway.start({
      dataDir: config.dataDir,
      storeUrl: config.storeUrl,
      keyPath: config.keyPath,
      nextKeyPath: config.nextKeyPath,
      host: config.host,
      ...(config.mqtt.deviceUrl !== undefined && { mqttDeviceUrl: config.mqtt.deviceUrl }),
      mqttPort: config.mqtt.port,
      mqttPlain: config.mqtt.plain,
      maxKeepaliveSeconds: config.mqtt.maxKeepaliveSeconds,
      tls: config.mqtt.tls,
      websocket: config.mqtt.websocket,
      maxPayloadBytes: config.mqtt.maxPayloadBytes,
      manifests: config.manifests,
      bundleLifetimeSeconds: config.bundleLifetimeSeconds,
      webhooks: config.webhooks,
      preflight: config.preflight,
      ...(config.approval && { approval: config.approval }),
      ...(config.broker && { broker: config.broker }),
      logger: log.child({ component: 'gateway' }),
      ...(o.now && { now: o.now }),
    });
  } catch (err) {
    return refused(err);
  }
  let app;
  try {
    app = await buildServer({
      gateway: gw,
      tokens: config.tokens,
      logger: log.child({ component: 'http' }),
      waveDefaults: config.waves,
      trustProxy: config.http.trustProxy,
      ...(config.http.tls && { https: config.http.tls }),
      ...(o.now && { now: o.now }),
      console: config.console,
    });
    await app.listen({ host: config.http.host, port: config.http.port });
  } catch (err) {
    await app?.close();
    await gw.stop();
    return refused(err);
  }

  const ports = gw.ports;
  const address = app.server.address();
  const httpPort = typeof address === 'object' && address !== null ? address.port : config.http.port;
  const scheme = config.http.tls ? 'https' : 'http';
  for (const [i, b] of (config.broker ?? []).entries()) io.out(`devices connect to the broker at ${gw.brokers[i]} (the gateway is its client ${b.username})`);
  const replica = gw.replica;
  if (replica) io.out(`replica ${replica.id}: ${replica.leader ? 'leading (runs the rollout engine)' : 'following (another replica leads; this one takes over if it stops)'}`);
  if (ports.tcp !== undefined) io.out(`mqtt listening on mqtt://${endpointText(config.host, ports.tcp)}`);
  if (ports.tls !== undefined) io.out(`mqtts listening on mqtts://${endpointText(config.host, ports.tls)}`);
  if (ports.ws !== undefined) io.out(`ws listening on ws://${endpointText(config.host, ports.ws)}${config.mqtt.websocket?.path ?? ''}`);
  io.out(`${scheme} listening on ${scheme}://${endpointText(config.http.host, httpPort)}`);
  if (config.keyPath === null) io.err('note: no signing key: this gateway is upload-only (bundles are signed elsewhere: pinwave bundle create, then pinwave bundle upload)');
  if (config.tokens.length === 0) io.err('warning: no API tokens configured: every /v1 route answers 401 (set PINWAVE_ADMIN_TOKEN, or tokens in --config)');
  for (const w of startWarnings(config)) {
    io.err(`warning: ${w}`);
    log.warn({}, w);
  }
  // The one line of a start; `stopped` is the one line of its end.
  log.info(
    { version: packageVersion(), pid: process.pid, config: config.file, mqtt: ports, ...(config.broker && { broker: gw.mqttUrl, brokers: gw.brokers }), http: httpPort, host: config.host, httpHost: config.http.host, https: Boolean(config.http.tls), tokens: config.tokens.length, manifests: config.manifests.length, webhooks: config.webhooks.length },
    'pinwave gateway started',
  );

  const reloading = (o.reload ?? onSighup)(() => reloadTokens(app.apiTokens, () => loadConfig({ file: values.config ?? null, env: io.env, flags }), log, io));
  await stop;
  reloading();
  const code = await shutdown({ app, gw, log, io, timeoutMs: config.shutdownTimeoutMs });
  log.flush();
  o.exit?.(code);
  return code;
}

// ---------------------------------------------------------------- token reload (SIGHUP)

/**
 * Reads the config again and puts its API tokens in force (docs/architecture.md §10): tokens added
 * work at once; a token gone, or whose name or role changed, stops working at once, and its
 * console sessions end and their event streams close. A config with any problem changes nothing:
 * it is reported, and the tokens in force stay. Names are reported, never tokens or hashes.
 */
export function reloadTokens(tokens: ApiTokens, load: () => GatewayConfig, log: Logger, io: Io): boolean {
  let next: GatewayConfig;
  try {
    next = load();
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
    log.error({ problems }, 'token reload refused: the config has problems; the tokens in force stay');
    io.err(`pinwave gateway: token reload refused, the tokens in force stay: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
    return false;
  }
  const change = tokens.replace(next.tokens);
  log.info({ added: change.added, removed: change.removed, kept: change.kept }, 'API tokens reloaded');
  const names = (list: string[]) => (list.length === 0 ? '' : ` (${list.join(', ')})`);
  io.err(`pinwave gateway: tokens reloaded: ${change.added.length} added${names(change.added)}, ${change.removed.length} revoked${names(change.removed)}, ${change.kept} kept`);
  if (tokens.size === 0) io.err('warning: no API tokens configured now: every /v1 route answers 401');
  return true;
}

/** Calls `handler` on each SIGHUP until the returned function is called. */
function onSighup(handler: () => void): () => void {
  const h = () => handler();
  process.on('SIGHUP', h);
  return () => void process.off('SIGHUP', h);
}

/** The kid both keys share, or null when they differ (or one is not given, or cannot be read: the start says why). */
function sameSigningKey(keyPath: string | null, nextKeyPath: string | null): string | null {
  if (keyPath === null || nextKeyPath === null) return null;
  const kid = (path: string) => {
    try {
      return hex(loadSigningKey(path, { strictMode: false }).kid);
    } catch {
      return null;
    }
  };
  const a = kid(keyPath);
  return a !== null && a === kid(nextKeyPath) ? a : null;
}

function logFormatFlag(v: string): LogFormat {
  if (!LOG_FORMATS.includes(v as LogFormat)) throw new UsageError(`--log-format expects ${LOG_FORMATS.join(' or ')}, got "${v}"`, USAGE);
  return v as LogFormat;
}

/** Whether `host` is a loopback address (or localhost): what is sent to it never leaves the machine. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^(0{1,4}:){7}0{0,3}1$/.test(h);
}

/** The warnings a start (and `pinwave config check`) gives: tokens in clear text, and no URL to tell devices on a wildcard listen. */
export function startWarnings(c: Pick<GatewayConfig, 'host' | 'mqtt' | 'http'> & Partial<Pick<GatewayConfig, 'broker'>>): string[] {
  const devices = deviceUrlWarning(c);
  return [...cleartextWarnings(c), ...(devices === null ? [] : [devices])];
}

/** The warnings a configuration deserves because tokens would cross a network in clear text. */
export function cleartextWarnings(c: Pick<GatewayConfig, 'host' | 'mqtt' | 'http'> & Partial<Pick<GatewayConfig, 'broker'>>): string[] {
  const out: string[] = [];
  if (!c.http.tls && !isLoopback(c.http.host)) {
    out.push(`the HTTP API listens on ${c.http.host} without TLS: API tokens travel in clear text (set http.tls, or bind it to 127.0.0.1 behind a TLS proxy)`);
  }
  // With `mqtt.plain: false` no plaintext listener runs, so nothing travels in clear text there.
  if (c.broker) {
    // the dynamic-security plugin takes device tokens in clear over its control topic (docs/external-broker.md)
    for (const b of c.broker) {
      const u = new URL(b.url);
      if (u.protocol === 'mqtt:' && !isLoopback(u.hostname)) out.push(`the broker ${b.url} is reached without TLS: the gateway's password and every device token it provisions travel in clear text (use mqtts://, or a broker on loopback)`);
    }
  } else if (c.mqtt.plain !== false && !isLoopback(c.host)) {
    const ws = c.mqtt.websocket ? ` and WebSocket port ${c.mqtt.websocket.port}` : '';
    // Mutual TLS binds only the TLS listener: a device that skips it skips the certificate too.
    const mutual = c.mqtt.tls?.requestCert === true ? ', and no client certificate is asked for there (mqtt.tls.requireClientCert binds the TLS port alone: set mqtt.plain: false)' : '';
    out.push(`MQTT listens on ${c.host} without TLS (port ${c.mqtt.port}${ws}): device tokens travel in clear text${mutual} (${c.mqtt.tls ? 'point devices at the TLS port' : 'set mqtt.tls'}, or bind it to a loopback address)`);
  }
  return out;
}

/** How the shutdown timeout is shared: in-flight work until 80% of it, then the final store write and close until 95% (the rest is the process's exit). */
export function shutdownDeadlines(timeoutMs: number): { drainMs: number; stopMs: number } {
  return { drainMs: Math.floor(timeoutMs * 0.8), stopMs: Math.floor(timeoutMs * 0.95) };
}

type Outcome<T> = { done: true; value: T; error?: undefined } | { done: false; error?: Error };

/** `p`, or not done when `ms` pass first (its timer does not hold the process). */
function within<T>(p: Promise<T>, ms: number): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ done: false }), ms);
    p.then(
      (value) => (clearTimeout(timer), resolve({ done: true, value })),
      (error: Error) => (clearTimeout(timer), resolve({ done: false, error })),
    );
  });
}

interface Stopping {
  app: Awaited<ReturnType<typeof buildServer>>;
  gw: Gateway;
  log: Logger;
  io: Io;
  timeoutMs: number;
}

/** The stop described at the top of this file; resolves with the exit code within the timeout. */
async function shutdown({ app, gw, log, io, timeoutMs }: Stopping): Promise<number> {
  const started = performance.now();
  const { drainMs, stopMs } = shutdownDeadlines(timeoutMs);
  const left = (ms: number) => Math.max(0, ms - (performance.now() - started));
  let code = 0;
  let storeReported = false;
  const storeFailed = (err: Error) => {
    code = 1;
    log.error({ err: err.message }, 'the store could not be written');
    if (storeReported) return;
    storeReported = true;
    io.err(`pinwave gateway: the store could not be written: ${err.message}; changes since its last successful write are lost`);
  };

  log.info({ timeoutMs, httpConnections: app.connections.open, httpRequests: app.connections.working, devices: gw.connectedCount() }, 'stopping: no new requests or device messages');
  gw.stopAccepting();
  const closed = app.close();
  app.connections.closeIdle();

  const first = await within(gw.flush(), left(drainMs));
  if (first.error) storeFailed(first.error);

  const drained = await within(
    (async () => {
      await app.connections.whenIdle();
      await gw.settled();
    })(),
    left(drainMs),
  );
  if (!drained.done) {
    code = 1;
    const cut = { httpRequests: app.connections.working, deviceTasks: gw.pendingTasks };
    log.warn(cut, 'work in flight cut off at the shutdown timeout');
    io.err(`pinwave gateway: ${cut.httpRequests} request(s) and ${cut.deviceTasks} device task(s) still running at ${drainMs} ms were cut off; their clients got no answer`);
  }
  app.connections.destroyAll();

  const stopped = await within(gw.stop(), left(stopMs));
  if (stopped.error) storeFailed(stopped.error);
  else if (!stopped.done) {
    code = 1;
    log.error({}, 'the gateway did not stop within the shutdown timeout');
    io.err(`pinwave gateway: the gateway did not stop within ${timeoutMs} ms; exiting anyway`);
  }
  await within(closed, left(stopMs));
  log.info({ ms: Math.round(performance.now() - started), code }, 'stopped');
  return code;
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once (128 + its number, as a shell reports it). */
function signalled(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    const second = (signal: NodeJS.Signals) => {
      log.warn({ signal }, 'second signal: exiting at once');
      log.flush();
      process.exit(128 + constants.signals[signal]);
    };
    const first = (signal: NodeJS.Signals) => {
      process.off('SIGINT', first);
      process.off('SIGTERM', first);
      process.on('SIGINT', second);
      process.on('SIGTERM', second);
      log.info({ signal }, 'signal received');
      resolve(signal);
    };
    process.on('SIGINT', first);
    process.on('SIGTERM', first);
  });
}
