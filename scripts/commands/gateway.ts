// `pinwave gateway`: the MQTT broker for devices and the HTTP API for operators, in one process,
// until SIGINT or SIGTERM; then the API stops taking requests, the gateway stops (work in flight
// finishes, the store is flushed) and the command exits 0. Logs are pino JSON lines on stderr;
// tokens, device tokens and keys never reach them (redacted, and never passed to the logger).
import { pino, type DestinationStream, type Logger } from 'pino';
import { ConfigError, loadConfig, type ConfigFlags } from '../../gateway/config.ts';
import { Gateway } from '../../gateway/gateway.ts';
import { buildServer } from '../../gateway/http/server.ts';
import { parse, uintFlag, UsageError, type Io } from '../args.ts';

const USAGE = `Usage:
  pinwave gateway --data DIR --key KEY.pem [--mqtt-port N] [--http-port N] [--host H] [--config FILE]

Serves MQTT (devices) and HTTP (operators: the API, /docs, /metrics) until SIGINT or SIGTERM.
  --data DIR        the fleet store's folder (PINWAVE_DATA_DIR, config dataDir)
  --key KEY.pem     the bundle signing key, mode 0600 (PINWAVE_KEY, config keyPath)
  --mqtt-port N     default 1883, 0 for any free port (PINWAVE_MQTT_PORT, config mqtt.port)
  --http-port N     default 8080, 0 for any free port (PINWAVE_HTTP_PORT, config http.port)
  --host H          listen address, default 127.0.0.1 (PINWAVE_HOST, config host)
  --config FILE     JSON or YAML config: TLS, WebSocket, API tokens, manifests, wave defaults (PINWAVE_CONFIG)
Flags override the environment, which overrides the config file.
PINWAVE_ADMIN_TOKEN sets one admin API token; others go in the config as hashes (pinwave token hash).`;

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
];

export interface ServeOptions {
  /** resolves when the gateway should stop; default: the first SIGINT or SIGTERM */
  until?: Promise<unknown>;
  /** where the JSON log goes; default stderr */
  log?: DestinationStream;
  /** the clock; default Date.now (tests inject one) */
  now?: () => number;
}

export function main(args: string[], io: Io): Promise<number> {
  return serve(args, io);
}

/** `pinwave gateway` with what a test needs to run it in-process: when to stop, where to log. */
export async function serve(args: string[], io: Io, o: ServeOptions = {}): Promise<number> {
  const { values } = parse(args, {
    data: { type: 'string' },
    key: { type: 'string' },
    'mqtt-port': { type: 'string' },
    'http-port': { type: 'string' },
    host: { type: 'string' },
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const port = (v: string | undefined, flag: string) => {
    if (v === undefined) return undefined;
    const n = uintFlag(v, flag, USAGE);
    if (n > 65535) throw new UsageError(`--${flag} must be 0 to 65535, got ${n}`, USAGE);
    return n;
  };
  const flags: ConfigFlags = {
    ...(values.data !== undefined && { dataDir: values.data }),
    ...(values.key !== undefined && { keyPath: values.key }),
    ...(values.host !== undefined && { host: values.host }),
    ...(values['mqtt-port'] !== undefined && { mqttPort: port(values['mqtt-port'], 'mqtt-port') }),
    ...(values['http-port'] !== undefined && { httpPort: port(values['http-port'], 'http-port') }),
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

  const log: Logger = pino(
    { level: config.logLevel, base: { name: 'pinwave' }, redact: { paths: REDACT, censor: '[redacted]' } },
    o.log ?? pino.destination({ fd: 2, sync: true }),
  );
  const stop = o.until ?? signalled(log);

  const gw = await Gateway.start({
    dataDir: config.dataDir,
    keyPath: config.keyPath,
    host: config.host,
    mqttPort: config.mqtt.port,
    mqttPlain: config.mqtt.plain,
    maxKeepaliveSeconds: config.mqtt.maxKeepaliveSeconds,
    tls: config.mqtt.tls,
    websocket: config.mqtt.websocket,
    maxPayloadBytes: config.mqtt.maxPayloadBytes,
    manifests: config.manifests,
    bundleLifetimeSeconds: config.bundleLifetimeSeconds,
    logger: log.child({ component: 'gateway' }),
    ...(o.now && { now: o.now }),
  });
  let app;
  try {
    app = await buildServer({
      gateway: gw,
      tokens: config.tokens,
      logger: log.child({ component: 'http' }),
      waveDefaults: config.waves,
      trustProxy: config.http.trustProxy,
      ...(o.now && { now: o.now }),
    });
    await app.listen({ host: config.host, port: config.http.port });
  } catch (err) {
    await app?.close();
    await gw.stop();
    throw err;
  }

  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const ports = gw.ports;
  const address = app.server.address();
  const httpPort = typeof address === 'object' && address !== null ? address.port : config.http.port;
  if (ports.tcp !== undefined) io.out(`mqtt listening on mqtt://${host}:${ports.tcp}`);
  if (ports.tls !== undefined) io.out(`mqtts listening on mqtts://${host}:${ports.tls}`);
  if (ports.ws !== undefined) io.out(`ws listening on ws://${host}:${ports.ws}${config.mqtt.websocket?.path ?? ''}`);
  io.out(`http listening on http://${host}:${httpPort}`);
  if (config.tokens.length === 0) io.err('warning: no API tokens configured: every /v1 route answers 401 (set PINWAVE_ADMIN_TOKEN, or tokens in --config)');
  log.info({ mqtt: ports, http: httpPort, host: config.host, tokens: config.tokens.length, manifests: config.manifests.length }, 'pinwave gateway listening');

  await stop;
  log.info({}, 'stopping');
  await app.close();
  await gw.stop();
  log.flush();
  return 0;
}

/** Resolves on the first SIGINT or SIGTERM; a second one during shutdown gets Node's default (exit at once). */
function signalled(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      log.info({ signal }, 'signal received');
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
