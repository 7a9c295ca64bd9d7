// The gateway's configuration: one file (JSON, or YAML by its extension), then
// environment variables, then command-line flags, each overriding the one before; every option
// validated at start, every problem reported at once with the key it concerns:
//
//   config.http.port: must be an integer 0-65535, got "abc"
//   PINWAVE_MQTT_PORT: must be an integer 0-65535, got "x"
//
// Paths in the file are relative to the file's own folder. API tokens are stored as hashes (what
// `pinwave token hash` prints); the one plain token accepted, PINWAVE_ADMIN_TOKEN, is hashed here
// and not kept.
//
//   const config = loadConfig({ file: 'pinwave.yaml', env: process.env, flags: { httpPort: 0 } });
//
// A YAML example with every option (defaults shown where there are any):
//
//   dataDir: /var/lib/pinwave          # the embedded store (docs/storage.md); required unless store.url (or PINWAVE_DATA_DIR / --data)
//   store: { url: "postgres://pinwave@db.example.com:5432/pinwave" }   # the fleet in PostgreSQL (or PINWAVE_STORE / --store)
//   keyPath: /etc/pinwave/signing.key  # or PINWAVE_KEY / --key; without one the gateway is upload-only (signs no bundle)
//   nextKeyPath: /etc/pinwave/next.key # or PINWAVE_NEXT_KEY / --next-key: signs a group's bundles once a rotation to it is the group's baseline
//   host: 127.0.0.1
//   logLevel: info
//   logFormat: json                    # or pretty: one readable line per entry, for people
//   shutdownTimeout: 10s               # or seconds; in-flight work gets this long after SIGTERM
//   mqtt:
//     port: 1883
//     plain: true                      # false: no plaintext listener (needs tls)
//     maxKeepaliveSeconds: 1200
//     maxPayloadBytes: 16384
//     tls: { port: 8883, key: tls/server.key, cert: tls/server.crt }   # requireClientCert: true + ca: mutual TLS
//     websocket: { port: 8083, path: /mqtt }
//     deviceUrl: mqtts://gw.example.com:8883   # what devices are told (GET /v1/info); default the listener's own URL (or PINWAVE_MQTT_DEVICE_URL / --mqtt-device-url)
//   http:
//     port: 8080
//     host: 127.0.0.1                  # default: host above
//     tls: { key: tls/api.key, cert: tls/api.crt }   # HTTPS; default off
//     trustProxy: false
//   tokens:
//     - { name: alice, role: operator, hash: "sha256:..." }
//   manifests: [manifests/th-100.json]
//   waves: [{ size: "5%" }, { size: "25%", ackThreshold: 0.98 }, { size: "100%" }]
//   bundleLifetime: 30d
//   console:                           # the operator console at /ui (docs/architecture.md §10)
//     sessionIdle: 1h                  # a session with no request for this long ends
//     sessionLifetime: 12h             # a session ends this long after sign-in, however busy
//   preflight:                         # pin continuity before a rollout (docs/pin-safety.md#pre-flight-pin-continuity)
//     endpoints:                       # the endpoints read by live TLS; nothing else is dialled
//       "telemetry.example.com:443": { connect: "10.0.0.7:8443" }   # connect: where to dial; default the name
//     probeAll: false                  # true: read every endpoint of a new bundle, by name
//     requireOverlap: false            # true: refuse, not warn, a set sharing no pin with what runs now
//   webhooks:
//     - { url: "https://alerts.example.com/pinwave", events: [rollout.held], secret: "at least 16 characters" }
//   approval: { removePin: 2, addPin: 1 }   # operators who must agree, the creator being one; default off
//   broker:                            # external broker mode (docs/external-broker.md); default: aedes, embedded
//     url: mqtt://127.0.0.1:18830      # or --broker; mqtts:// for TLS
//     auth: broker/gateway-broker.json # or --broker-auth: the gateway's broker credentials, mode 0600
//     ca: broker/ca.pem                # or --broker-ca: for mqtts://; default the system's CAs
//     clientId: pinwave@gw-1           # this replica's client id, stable across restarts; default pinwave@<host name>
//     deviceUrl: mqtts://broker.example.com:8883   # what devices are told (GET /v1/info); default url
//     # several brokers instead of url (docs/external-broker.md): each device is provisioned onto one
//     # urls: [mqtt://10.0.0.11:18830, { url: mqtt://10.0.0.12:18830, auth: broker-b/gateway-broker.json }]
//
// docs/configuration.md is the reference of every key (a test checks it names each one in CONFIG_KEYS).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { duplicateTrustedKey, formatManifestErrors, validateManifest, type FirmwareManifest } from '../firmware-manifest/index.ts';
import { ALERT_EVENT_NAMES, type AlertEventName } from './alerts.ts';
import { hashToken } from './credentials.ts';
import { redactUrl } from './store/redact-url.ts';
import { ROLES, type ApiToken, type Role } from './http/auth.ts';
import { validatePlan, WAVE_DEFAULTS } from './rollout/plan.ts';
import type { WavePlanInput } from './rollout/types.ts';
import type { PreflightOptions } from './preflight.ts';
import { BrokerAuthError, readBrokerAuth } from './broker/broker-auth.ts';
import { isDeviceId } from './device-id.ts';
import { isWildcardHost } from './device-url.ts';
import { APPROVAL_DEFAULTS, MAX_APPROVERS, type ApprovalPolicy } from './rollout/approval.ts';
import { SESSION_DEFAULTS } from './http/sessions.ts';
import { MAX_BUNDLE_LIFETIME_SECONDS } from './bundles.ts';

/** The config file: every option, with its default. All are optional in the file. */
export interface ConfigFile {
  /** the embedded store's folder (journal and snapshots, docs/storage.md); required here, in PINWAVE_DATA_DIR or as --data, unless `store.url` is set */
  dataDir?: string;
  /** `url`: postgres://USER[:PASSWORD]@HOST:PORT/DB, the fleet in PostgreSQL instead of the data dir (PINWAVE_STORE, --store); default the embedded store */
  store?: { url?: string };
  /** the bundle signing key, PKCS#8 PEM, readable by its owner only; required here, in PINWAVE_KEY or as --key */
  keyPath?: string;
  /** the next signing key (key rotation, docs/operations.md): a group's bundles are signed with it once a rotation listing it is the group's baseline; default none (PINWAVE_NEXT_KEY, --next-key) */
  nextKeyPath?: string;
  /** the address the MQTT listeners bind, and the HTTP one unless `http.host` is set; default 127.0.0.1 (PINWAVE_HOST, --host) */
  host?: string;
  /** after SIGTERM or SIGINT, how long the gateway may take to stop: in-flight work gets most of it, the last store write the rest; seconds or "10s", "2m"; default 10s (PINWAVE_SHUTDOWN_TIMEOUT, --shutdown-timeout) */
  shutdownTimeout?: number | string;
  /** pino level of the JSON log on stderr: fatal, error, warn, info, debug, trace or silent; default info (PINWAVE_LOG_LEVEL) */
  logLevel?: LogLevel;
  /** the log on stderr: json (pino's JSON lines, ISO 8601 times) or pretty (one readable line each, for people); default json (PINWAVE_LOG_FORMAT, --log-format) */
  logFormat?: LogFormat;
  mqtt?: {
    /** plain MQTT TCP port, 0 for an ephemeral one; default 1883 (PINWAVE_MQTT_PORT, --mqtt-port) */
    port?: number;
    /** whether the plaintext MQTT listener runs; `false` turns it off and needs `tls`; default true */
    plain?: boolean;
    /**
     * the largest keepalive a device is held to, seconds, 1-65535: a device asking for 0 (none) or
     * more gets this, and a connection silent for 1.5 times its keepalive is closed; default 1200
     */
    maxKeepaliveSeconds?: number;
    /** the largest payload a device may publish, bytes; default 16384 */
    maxPayloadBytes?: number;
    /** MQTT over TLS; default off. `key` and `cert` are PEM files, `ca` an optional PEM bundle */
    tls?: { port?: number; key: string; cert: string; ca?: string };
    /** MQTT over WebSocket: `true` or `{ port, path }`; default off (port 8083, path /mqtt) */
    websocket?: boolean | { port?: number; path?: string };
    /**
     * the MQTT URL devices are given (GET /v1/info), `mqtt://HOST:PORT` or `mqtts://HOST:PORT`, where they
     * reach the broker by another address than `host` (a wildcard, NAT, a name their TLS check needs);
     * default the listener's URL, on a wildcard `host` the address each request came in on
     * (PINWAVE_MQTT_DEVICE_URL, --mqtt-device-url). External broker mode has `broker.deviceUrl` instead
     */
    deviceUrl?: string;
  };
  http?: {
    /** the HTTP API port, 0 for an ephemeral one; default 8080 (PINWAVE_HTTP_PORT, --http-port) */
    port?: number;
    /** the address the HTTP API binds; default `host` (PINWAVE_HTTP_HOST, --http-host) */
    host?: string;
    /** serve the API over HTTPS; `key` and `cert` are PEM files (the cert file may hold the chain); default off */
    tls?: { key: string; cert: string };
    /** take the caller's address from X-Forwarded-For (behind a reverse proxy); default false */
    trustProxy?: boolean;
  };
  /** API tokens as `{ name, role, hash }`: role viewer, operator or admin; hash as `pinwave token hash` prints it. Default none */
  tokens?: ApiToken[];
  /** firmware manifest JSON files of the fleet's models, for pre-flight checks; default none */
  manifests?: string[];
  /** the wave plan of rollouts created without one; default 1%, 10%, 50%, 100% with the engine's thresholds */
  waves?: WavePlanInput[];
  /** lifetime of a bundle created without `expiresIn`: seconds, or "12h", "30d"; default 30d */
  bundleLifetime?: number | string;
  /** the operator console's sessions (docs/architecture.md §10) */
  console?: {
    /** a session with no request for this long ends: seconds, or "30m", "1h"; default 1h */
    sessionIdle?: number | string;
    /** a session ends this long after sign-in, however busy: seconds, or "12h"; default 12h */
    sessionLifetime?: number | string;
  };
  /** where rollout alerts are POSTed: `{ url, events, secret }`; events default to all of gateway/alerts.ts ALERT_EVENTS; default none */
  webhooks?: Array<{ url: string; events?: string[]; secret: string }>;
  /** pin continuity before a rollout (docs/pin-safety.md#pre-flight-pin-continuity) */
  preflight?: {
    /** by "HOST:PORT": the endpoints read by live TLS, `connect: "ADDR:PORT"` where the name is not the way there; default none */
    endpoints?: Record<string, { connect?: string } | null>;
    /** read every endpoint of a new bundle by name; default false */
    probeAll?: boolean;
    /** refuse, not warn, a pin set that keeps no pin of what the target runs now; default false */
    requireOverlap?: boolean;
  };
  /**
   * two-person approval of pin changes (docs/architecture.md §10): how many operators must agree,
   * the creator being one; default off (a one-operator install could never approve anything)
   */
  approval?: {
    /** for a rollout that removes a pin or an endpoint its target holds now; default 2 (the creator and one other) */
    removePin?: number;
    /** for any other rollout; default 1 (the creator alone) */
    addPin?: number;
  };
  /** external broker mode (docs/architecture.md §8): devices connect to this broker, the gateway is its client; default off (aedes, embedded) */
  broker?: {
    /** `mqtt://HOST:PORT` or `mqtts://HOST:PORT`, the port named (--broker) */
    url?: string;
    /** several brokers, the fleet sharded across them (each device provisioned onto one): URLs, or entries with their own auth, ca, deviceUrl (--broker A --broker B) */
    urls?: Array<string | { url: string; auth?: string; ca?: string; deviceUrl?: string }>;
    /** the gateway's broker credentials, JSON `{ username, password }`, mode 0600, as `pinwave broker mosquitto-config` writes it (--broker-auth) */
    auth?: string;
    /** PEM CA bundle the broker's certificate is checked against, for mqtts://; default the system's (--broker-ca) */
    ca?: string;
    /** this replica's client id, stable across restarts, with an `@` (never a device id); default `pinwave@<host name>` */
    clientId?: string;
    /** the broker URL devices are given (GET /v1/info); default `url` */
    deviceUrl?: string;
  };
}

export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** What the gateway runs with: file, environment and flags merged, defaults filled in, files read. */
export interface GatewayConfig {
  /** null only with `storeUrl` */
  dataDir: string | null;
  /** postgres://…: the PostgreSQL store; null: the embedded store in dataDir */
  storeUrl: string | null;
  /** null: no signing key, the gateway takes only bundles signed elsewhere (docs/operations.md) */
  keyPath: string | null;
  /** null: no key rotation under way */
  nextKeyPath: string | null;
  host: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  mqtt: {
    port: number;
    /** present (false) only when the plaintext listener is off */
    plain?: false;
    maxKeepaliveSeconds?: number;
    maxPayloadBytes?: number;
    /** requestCert and rejectUnauthorized: mutual TLS (`requireClientCert`) */
    tls?: { port: number; key: Buffer; cert: Buffer; ca?: Buffer; requestCert?: true; rejectUnauthorized?: true };
    websocket?: { port: number; path: string };
    /** what devices are told (GET /v1/info); absent: the listener's own URL (gateway/device-url.ts) */
    deviceUrl?: string;
  };
  http: { port: number; host: string; tls?: { key: Buffer; cert: Buffer }; trustProxy: boolean };
  /** how long a shutdown may take, ms */
  shutdownTimeoutMs: number;
  tokens: ApiToken[];
  manifests: FirmwareManifest[];
  waves?: WavePlanInput[];
  bundleLifetimeSeconds?: number;
  /** console session timeouts, ms; absent: the defaults (1 h idle, 12 h in all) */
  console?: { sessionIdleMs?: number; sessionLifetimeMs?: number };
  webhooks: Array<{ url: string; events: AlertEventName[]; secret: string }>;
  /** pin continuity (gateway/preflight.ts PreflightOptions) */
  preflight: PreflightOptions;
  /** present only when configured */
  approval?: ApprovalPolicy;
  /** present only in external broker mode: each broker, in order, with the credentials file read (docs/architecture.md §8) */
  broker?: Array<{ url: string; username: string; password: string; ca?: Buffer; clientId?: string; deviceUrl?: string }>;
  /** the config file read, if any */
  file: string | null;
  /** where each value a start-up message names came from: a flag, a variable, a key of the file, or the default (settingText) */
  origins: Record<Setting, Origin>;
}

/** The values a start-up check may have to name, and every way of setting each (docs/configuration.md). */
export const SETTINGS = {
  dataDir: { flag: '--data', env: 'PINWAVE_DATA_DIR', key: 'dataDir', what: 'data dir' },
  storeUrl: { flag: '--store', env: 'PINWAVE_STORE', key: 'store.url', what: 'store' },
  keyPath: { flag: '--key', env: 'PINWAVE_KEY', key: 'keyPath', what: 'signing key' },
  nextKeyPath: { flag: '--next-key', env: 'PINWAVE_NEXT_KEY', key: 'nextKeyPath', what: 'next signing key' },
  host: { flag: '--host', env: 'PINWAVE_HOST', key: 'host', what: 'listen address' },
  httpHost: { flag: '--http-host', env: 'PINWAVE_HTTP_HOST', key: 'http.host', what: 'HTTP listen address' },
  mqttPort: { flag: '--mqtt-port', env: 'PINWAVE_MQTT_PORT', key: 'mqtt.port', what: 'MQTT port' },
  httpPort: { flag: '--http-port', env: 'PINWAVE_HTTP_PORT', key: 'http.port', what: 'HTTP port' },
  tlsPort: { key: 'mqtt.tls.port', what: 'MQTT TLS port' },
  wsPort: { key: 'mqtt.websocket.port', what: 'MQTT WebSocket port' },
} as const satisfies Record<string, { flag?: string; env?: string; key: string; what: string }>;
export type Setting = keyof typeof SETTINGS;
/** How a value was set; `inherited`: not set itself, it takes another's (http.host takes host's). */
export type Origin = 'flag' | 'env' | 'file' | 'default' | 'inherited';

/**
 * A value named as the operator set it, for a message: `--http-port 8080`, `PINWAVE_HTTP_PORT=8080`,
 * `config http.port 8080`, or for one nobody set `the default HTTP port 8080 (set by --http-port,
 * PINWAVE_HTTP_PORT or config http.port)`. An HTTP host not set itself is named as the host it takes.
 */
export function settingText(c: Pick<GatewayConfig, 'origins'>, name: Setting, value: string | number): string {
  const s: { flag?: string; env?: string; key: string; what: string } = SETTINGS[name];
  switch (c.origins[name]) {
    case 'flag':
      return `${s.flag} ${value}`;
    case 'env':
      return `${s.env}=${value}`;
    case 'file':
      return `config ${s.key} ${value}`;
    case 'inherited':
      return settingText(c, 'host', value);
    case 'default': {
      const ways = [s.flag, s.env, `config ${s.key}`].filter((w) => w !== undefined);
      return `the default ${s.what} ${value} (set by ${ways.length === 1 ? ways[0] : `${ways.slice(0, -1).join(', ')} or ${ways.at(-1)}`})`;
    }
  }
}

/** Command-line flags of `pinwave gateway`: they override the environment and the file. */
export interface ConfigFlags {
  dataDir?: string;
  storeUrl?: string;
  keyPath?: string;
  nextKeyPath?: string;
  host?: string;
  mqttPort?: number;
  httpPort?: number;
  httpHost?: string;
  /** seconds */
  shutdownTimeout?: number;
  logFormat?: LogFormat;
  /** external broker mode: --broker, --broker-auth, --broker-ca; each repeatable or a comma list (several brokers) */
  brokerUrl?: string | readonly string[];
  brokerAuth?: string | readonly string[];
  brokerCa?: string | readonly string[];
  /** --broker-client-id: this replica's client id (docs/architecture.md §8) */
  brokerClientId?: string;
  /** --mqtt-device-url: the MQTT URL devices are given (config mqtt.deviceUrl) */
  mqttDeviceUrl?: string;
}

export const DEFAULTS = { host: '127.0.0.1', mqttPort: 1883, httpPort: 8080, tlsPort: 8883, wsPort: 8083, wsPath: '/mqtt', logLevel: 'info' as LogLevel, logFormat: 'json' as LogFormat, shutdownTimeoutSeconds: 10 };
/** The longest shutdown timeout, seconds: a supervisor waits this long at most for a gateway to stop. */
export const MAX_SHUTDOWN_SECONDS = 3600;

/** Every problem found, one per line, each naming its key. */
export class ConfigError extends Error {
  constructor(readonly problems: string[], file: string | null) {
    super(`invalid configuration${file ? ` (${file})` : ''}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const TOP_KEYS = ['dataDir', 'store', 'keyPath', 'nextKeyPath', 'host', 'logLevel', 'logFormat', 'mqtt', 'http', 'tokens', 'manifests', 'waves', 'bundleLifetime', 'shutdownTimeout', 'console', 'webhooks', 'approval', 'preflight', 'broker', '$schema'];
const BROKER_KEYS = ['url', 'urls', 'auth', 'ca', 'clientId', 'deviceUrl'];
const BROKER_ENTRY_KEYS = ['url', 'auth', 'ca', 'deviceUrl'];
const PREFLIGHT_KEYS = ['endpoints', 'probeAll', 'requireOverlap'];
const APPROVAL_KEYS = ['removePin', 'addPin'];
const CONSOLE_KEYS = ['sessionIdle', 'sessionLifetime'];
const MQTT_KEYS = ['port', 'plain', 'maxKeepaliveSeconds', 'maxPayloadBytes', 'tls', 'websocket', 'deviceUrl'];
const TLS_KEYS = ['port', 'key', 'cert', 'ca', 'requireClientCert'];
const WS_KEYS = ['port', 'path'];
const HTTP_KEYS = ['port', 'host', 'tls', 'trustProxy'];
const HTTP_TLS_KEYS = ['key', 'cert'];
const TOKEN_KEYS = ['name', 'role', 'hash'];
const WEBHOOK_KEYS = ['url', 'events', 'secret'];
/** A wave of `waves` takes these (gateway/rollout/types.ts WavePlanInput). */
const WAVE_KEYS = ['size', ...Object.keys(WAVE_DEFAULTS)];
/** Shorter than this a webhook secret is a password, not a key. */
export const MIN_WEBHOOK_SECRET = 16;

/** Every key the config file takes, as dotted paths (`mqtt.tls.port`, `tokens[].hash`): what docs/configuration.md must describe. */
export const CONFIG_KEYS: readonly string[] = [
  ...TOP_KEYS.filter((k) => k !== '$schema'),
  'store.url',
  ...MQTT_KEYS.map((k) => `mqtt.${k}`),
  ...TLS_KEYS.map((k) => `mqtt.tls.${k}`),
  ...WS_KEYS.map((k) => `mqtt.websocket.${k}`),
  ...HTTP_KEYS.map((k) => `http.${k}`),
  ...HTTP_TLS_KEYS.map((k) => `http.tls.${k}`),
  ...TOKEN_KEYS.map((k) => `tokens[].${k}`),
  ...WAVE_KEYS.map((k) => `waves[].${k}`),
  ...WEBHOOK_KEYS.map((k) => `webhooks[].${k}`),
  ...PREFLIGHT_KEYS.map((k) => `preflight.${k}`),
  'preflight.endpoints.*.connect',
  ...APPROVAL_KEYS.map((k) => `approval.${k}`),
  ...BROKER_KEYS.map((k) => `broker.${k}`),
];
/** what hashToken() writes: `sha256:` and 32 bytes of base64url */
const HASH_RE = /^sha256:[A-Za-z0-9_-]{43}$/;
/** RFC 6750 token68 characters, and long enough not to be guessed */
export const API_TOKEN_RE = /^[A-Za-z0-9\-._~+/]{16,512}=*$/;
const NAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const DURATION_RE = /^([0-9]{1,9})(s|m|h|d)$/;
const UNIT = { s: 1, m: 60, h: 3600, d: 86400 } as const;

const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v));
/** "host:port" (an IPv6 address in brackets) → its parts, or null. */
function hostPort(s: string): { host: string; port: number } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):([0-9]{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : 0;
  return m && port >= 1 && port <= 65535 ? { host: m[1].replace(/^\[(.*)\]$/, '$1'), port } : null;
}
/** What a listener can bind: an IP address, or a host name of dot-separated labels (RFC 1123 §2.1; `_` let through, as resolvers do). */
const isBindAddress = (h: string): boolean => isIP(h) !== 0 || (h.length <= 253 && /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/.test(h));
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads, merges and validates; throws ConfigError listing every problem. */
export function loadConfig(o: { file?: string | null; env?: NodeJS.ProcessEnv; flags?: ConfigFlags } = {}): GatewayConfig {
  const env = o.env ?? {};
  const flags = o.flags ?? {};
  const fileName = o.file ?? (env.PINWAVE_CONFIG || null);
  const problems: string[] = [];
  const raw = fileName === null ? {} : readConfigFile(fileName, problems);
  const base = fileName === null ? process.cwd() : dirname(resolve(fileName));
  const path = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const c = new Checker(problems);

  c.keys(raw, TOP_KEYS, 'config');
  // ---- the file
  const fileDataDir = c.string(raw.dataDir, 'config.dataDir');
  const storeSection = c.record(raw.store, 'config.store', ['url'], '{ url }');
  const fileStoreUrl = c.string(storeSection.url, 'config.store.url');
  const fileKeyPath = c.string(raw.keyPath, 'config.keyPath');
  const fileNextKeyPath = c.string(raw.nextKeyPath, 'config.nextKeyPath');
  const fileHost = c.string(raw.host, 'config.host');
  const fileLevel = c.oneOf(raw.logLevel, LOG_LEVELS, 'config.logLevel');
  const fileFormat = c.oneOf(raw.logFormat, LOG_FORMATS, 'config.logFormat');
  const mqtt = c.record(raw.mqtt, 'config.mqtt', MQTT_KEYS);
  const http = c.record(raw.http, 'config.http', HTTP_KEYS);
  const fileMqttPort = c.port(mqtt.port, 'config.mqtt.port');
  const fileHttpPort = c.port(http.port, 'config.http.port');
  const maxPayloadBytes = c.int(mqtt.maxPayloadBytes, 'config.mqtt.maxPayloadBytes', 64, 256 * 1024 * 1024);
  const plain = c.bool(mqtt.plain, 'config.mqtt.plain') ?? true;
  const maxKeepaliveSeconds = c.int(mqtt.maxKeepaliveSeconds, 'config.mqtt.maxKeepaliveSeconds', 1, 65535);
  if (!plain && mqtt.tls === undefined) problems.push('config.mqtt.plain: false turns the plaintext listener off and needs config.mqtt.tls: with neither, no device could connect');
  const trustProxy = c.bool(http.trustProxy, 'config.http.trustProxy') ?? false;
  // ---- the HTTP listener of its own, and the shutdown bound
  const fileHttpHost = c.string(http.host, 'config.http.host');
  let httpTls: GatewayConfig['http']['tls'];
  if (http.tls !== undefined) {
    const t = c.record(http.tls, 'config.http.tls', HTTP_TLS_KEYS, '{ key, cert }');
    const key = c.file(c.string(t.key, 'config.http.tls.key', true), 'config.http.tls.key', path);
    const cert = c.file(c.string(t.cert, 'config.http.tls.cert', true), 'config.http.tls.cert', path);
    if (key && cert) httpTls = { key, cert };
  }
  const fileShutdown = c.duration(raw.shutdownTimeout, 'config.shutdownTimeout', MAX_SHUTDOWN_SECONDS, '"10s" or "2m"');

  let tls: GatewayConfig['mqtt']['tls'];
  let tlsPortSet = false;
  if (mqtt.tls !== undefined) {
    const t = c.record(mqtt.tls, 'config.mqtt.tls', TLS_KEYS);
    const key = c.file(c.string(t.key, 'config.mqtt.tls.key', true), 'config.mqtt.tls.key', path);
    const cert = c.file(c.string(t.cert, 'config.mqtt.tls.cert', true), 'config.mqtt.tls.cert', path);
    const ca = c.file(c.string(t.ca, 'config.mqtt.tls.ca'), 'config.mqtt.tls.ca', path);
    const filePort = c.port(t.port, 'config.mqtt.tls.port');
    tlsPortSet = filePort !== undefined;
    const port = filePort ?? DEFAULTS.tlsPort;
    // Mutual TLS, as Mosquitto's require_certificate: each device also shows a certificate `ca` issued.
    const requireClientCert = c.bool(t.requireClientCert, 'config.mqtt.tls.requireClientCert') ?? false;
    if (requireClientCert && t.ca === undefined) problems.push('config.mqtt.tls.requireClientCert: needs config.mqtt.tls.ca, the CA that issued the devices\' certificates');
    if (key && cert) tls = { port, key, cert, ...(ca && { ca }), ...(requireClientCert && { requestCert: true, rejectUnauthorized: true }) };
  }

  let websocket: GatewayConfig['mqtt']['websocket'];
  let wsPortSet = false;
  if (mqtt.websocket === true) websocket = { port: DEFAULTS.wsPort, path: DEFAULTS.wsPath };
  else if (mqtt.websocket !== undefined && mqtt.websocket !== false) {
    const w = c.record(mqtt.websocket, 'config.mqtt.websocket', WS_KEYS, 'true, false or { port, path }');
    const wsPath = c.string(w.path, 'config.mqtt.websocket.path');
    if (wsPath !== undefined && !wsPath.startsWith('/')) problems.push(`config.mqtt.websocket.path: must start with "/", got ${shown(wsPath)}`);
    const filePort = c.port(w.port, 'config.mqtt.websocket.port');
    wsPortSet = filePort !== undefined;
    websocket = { port: filePort ?? DEFAULTS.wsPort, path: wsPath ?? DEFAULTS.wsPath };
  }

  const tokens = c.tokens(raw.tokens);
  const manifests = c.manifests(raw.manifests, path);
  let waves: WavePlanInput[] | undefined;
  if (raw.waves !== undefined) {
    const plan = validatePlan({ waves: raw.waves }, 'config');
    // The plan's errors read "waves[1].size must ...": written as every config problem is, "config.waves[1].size: must ...".
    // Another wave an error names is a key of the file as well: "below config.waves[0].size".
    if (!plan.ok) problems.push(...plan.errors.map((e) => e.replace(/(^|[^\w.])waves\[/g, '$1config.waves[').replace(/^(\S+) /, '$1: ')));
    else waves = raw.waves as WavePlanInput[];
  }
  const bundleLifetimeSeconds = c.duration(raw.bundleLifetime, 'config.bundleLifetime', MAX_BUNDLE_LIFETIME_SECONDS);
  const consoleOpts = c.record(raw.console, 'config.console', CONSOLE_KEYS);
  const sessionIdle = c.duration(consoleOpts.sessionIdle, 'config.console.sessionIdle', 30 * 86400, '"30m" or "1h"');
  const sessionLifetime = c.duration(consoleOpts.sessionLifetime, 'config.console.sessionLifetime', 365 * 86400, '"12h" or "7d"');
  // Either one alone is judged against the other's default: an idle timeout past the lifetime would never end a session.
  if (sessionIdle !== undefined || sessionLifetime !== undefined) {
    const idle = sessionIdle ?? SESSION_DEFAULTS.idleMs / 1000;
    const lifetime = sessionLifetime ?? SESSION_DEFAULTS.lifetimeMs / 1000;
    const which = (given: number | undefined) => (given === undefined ? ' (the default)' : '');
    if (idle > lifetime) problems.push(`config.console.sessionIdle: must not be longer than sessionLifetime (${idle} s${which(sessionIdle)} > ${lifetime} s${which(sessionLifetime)})`);
  }
  const webhooks = c.webhooks(raw.webhooks);
  const preflight = c.preflight(raw.preflight);
  let approval: ApprovalPolicy | undefined;
  if (raw.approval !== undefined) {
    const a = c.record(raw.approval, 'config.approval', APPROVAL_KEYS, '{ removePin, addPin }');
    const removePin = c.int(a.removePin, 'config.approval.removePin', 1, MAX_APPROVERS) ?? APPROVAL_DEFAULTS.removePin;
    const addPin = c.int(a.addPin, 'config.approval.addPin', 1, MAX_APPROVERS) ?? APPROVAL_DEFAULTS.addPin;
    if (addPin > removePin) problems.push(`config.approval.addPin: must not be more than removePin (${addPin} > ${removePin}): removing a pin is never the smaller risk`);
    approval = { removePin, addPin };
  }

  // ---- the environment
  const envPort = (name: string) => (env[name] === undefined || env[name] === '' ? undefined : c.port(/^[0-9]{1,5}$/.test(env[name]!) ? Number(env[name]) : env[name], name));
  const envMqttPort = envPort('PINWAVE_MQTT_PORT');
  const envHttpPort = envPort('PINWAVE_HTTP_PORT');
  const envLevel = env.PINWAVE_LOG_LEVEL ? c.oneOf(env.PINWAVE_LOG_LEVEL, LOG_LEVELS, 'PINWAVE_LOG_LEVEL') : undefined;
  const envFormat = env.PINWAVE_LOG_FORMAT ? c.oneOf(env.PINWAVE_LOG_FORMAT, LOG_FORMATS, 'PINWAVE_LOG_FORMAT') : undefined;
  if (flags.logFormat !== undefined && !LOG_FORMATS.includes(flags.logFormat)) problems.push(`--log-format: must be one of ${LOG_FORMATS.join(', ')}, got ${shown(flags.logFormat)}`);
  const envShutdown = env.PINWAVE_SHUTDOWN_TIMEOUT ? c.duration(/^[0-9]+$/.test(env.PINWAVE_SHUTDOWN_TIMEOUT) ? Number(env.PINWAVE_SHUTDOWN_TIMEOUT) : env.PINWAVE_SHUTDOWN_TIMEOUT, 'PINWAVE_SHUTDOWN_TIMEOUT', MAX_SHUTDOWN_SECONDS, '"10s" or "2m"') : undefined;
  if (flags.shutdownTimeout !== undefined && !(flags.shutdownTimeout > 0 && flags.shutdownTimeout <= MAX_SHUTDOWN_SECONDS)) {
    problems.push(`--shutdown-timeout: must be from 1 s to ${MAX_SHUTDOWN_SECONDS} s, got ${flags.shutdownTimeout} s`);
  }
  const admin = env.PINWAVE_ADMIN_TOKEN;
  if (admin !== undefined && admin !== '') {
    if (!API_TOKEN_RE.test(admin)) problems.push('PINWAVE_ADMIN_TOKEN: must be 16 to 512 characters of A-Z a-z 0-9 - . _ ~ + / (make one with `pinwave token new`)');
    else if (tokens.some((t) => t.name === 'admin')) problems.push('PINWAVE_ADMIN_TOKEN: config.tokens already has a token named "admin"');
    else tokens.push({ name: 'admin', role: 'admin', hash: hashToken(admin) });
  }

  const broker = c.broker(raw.broker, flags, path);
  // External broker mode as asked for, whether or not its settings passed: then mqtt.deviceUrl would tell devices nothing.
  const external = flags.brokerUrl !== undefined || (isRecord(raw.broker) && (raw.broker.url !== undefined || raw.broker.urls !== undefined));
  const deviceUrl = c.deviceUrl(flags.mqttDeviceUrl ?? (env.PINWAVE_MQTT_DEVICE_URL || undefined) ?? mqtt.deviceUrl, flags.mqttDeviceUrl !== undefined ? '--mqtt-device-url' : env.PINWAVE_MQTT_DEVICE_URL ? 'PINWAVE_MQTT_DEVICE_URL' : 'config.mqtt.deviceUrl', external);

  const dataDir = flags.dataDir ?? (env.PINWAVE_DATA_DIR || undefined) ?? (fileDataDir === undefined ? undefined : path(fileDataDir));
  const keyPath = flags.keyPath ?? (env.PINWAVE_KEY || undefined) ?? (fileKeyPath === undefined ? undefined : path(fileKeyPath));
  const storeUrl = flags.storeUrl ?? (env.PINWAVE_STORE || undefined) ?? fileStoreUrl;
  // Where each value came from, flag over variable over the file's key; a message names that (settingText).
  const origin = (flagValue: unknown, variable: string | null, fileValue: unknown, otherwise: Origin = 'default'): Origin =>
    flagValue !== undefined ? 'flag' : variable !== null && env[variable] ? 'env' : fileValue !== undefined ? 'file' : otherwise;
  const origins: Record<Setting, Origin> = {
    dataDir: origin(flags.dataDir, 'PINWAVE_DATA_DIR', fileDataDir),
    storeUrl: origin(flags.storeUrl, 'PINWAVE_STORE', fileStoreUrl),
    keyPath: origin(flags.keyPath, 'PINWAVE_KEY', fileKeyPath),
    nextKeyPath: origin(flags.nextKeyPath, 'PINWAVE_NEXT_KEY', fileNextKeyPath),
    host: origin(flags.host, 'PINWAVE_HOST', fileHost),
    httpHost: origin(flags.httpHost, 'PINWAVE_HTTP_HOST', fileHttpHost, 'inherited'),
    mqttPort: origin(flags.mqttPort, 'PINWAVE_MQTT_PORT', fileMqttPort),
    httpPort: origin(flags.httpPort, 'PINWAVE_HTTP_PORT', fileHttpPort),
    tlsPort: tlsPortSet ? 'file' : 'default',
    wsPort: wsPortSet ? 'file' : 'default',
  };
  // A problem names the flag, the variable or the file's key (config.store.url) it came from.
  const at = (name: Setting) => {
    const s: { flag?: string; env?: string; key: string } = SETTINGS[name];
    return origins[name] === 'flag' ? s.flag : origins[name] === 'env' ? s.env : `config.${s.key}`;
  };
  if (storeUrl !== undefined && !/^postgres(ql)?:\/\/[^\s]+$/.test(storeUrl)) problems.push(`${at('storeUrl')}: must be a postgres://USER@HOST:PORT/DB URL, got ${JSON.stringify(redactUrl(storeUrl))}`);
  const host = flags.host ?? (env.PINWAVE_HOST || undefined) ?? fileHost ?? DEFAULTS.host;
  if (!isBindAddress(host)) problems.push(`${at('host')}: must be an IP address or a host name to listen on, got ${shown(host)}`);
  const httpHost = flags.httpHost ?? (env.PINWAVE_HTTP_HOST || undefined) ?? fileHttpHost ?? host;
  if (httpHost !== host && !isBindAddress(httpHost)) problems.push(`${at('httpHost')}: must be an IP address or a host name to listen on, got ${shown(httpHost)}`);
  if (dataDir === undefined && storeUrl === undefined) problems.push('dataDir: required: give --data DIR, PINWAVE_DATA_DIR or config.dataDir (or a PostgreSQL store: --store postgres://…)');

  if (problems.length > 0) throw new ConfigError(problems, fileName);
  return {
    dataDir: dataDir ?? null,
    storeUrl: storeUrl ?? null,
    keyPath: keyPath ?? null,
    nextKeyPath: flags.nextKeyPath ?? (env.PINWAVE_NEXT_KEY || undefined) ?? (fileNextKeyPath === undefined ? null : path(fileNextKeyPath)),
    host,
    logLevel: envLevel ?? fileLevel ?? DEFAULTS.logLevel,
    logFormat: flags.logFormat ?? envFormat ?? fileFormat ?? DEFAULTS.logFormat,
    mqtt: {
      port: flags.mqttPort ?? envMqttPort ?? fileMqttPort ?? DEFAULTS.mqttPort,
      ...(!plain && { plain: false as const }),
      ...(maxKeepaliveSeconds !== undefined && { maxKeepaliveSeconds }),
      ...(maxPayloadBytes !== undefined && { maxPayloadBytes }),
      ...(tls && { tls }),
      ...(websocket && { websocket }),
      ...(deviceUrl !== undefined && { deviceUrl }),
    },
    http: {
      port: flags.httpPort ?? envHttpPort ?? fileHttpPort ?? DEFAULTS.httpPort,
      host: httpHost,
      ...(httpTls && { tls: httpTls }),
      trustProxy,
    },
    shutdownTimeoutMs: 1000 * (flags.shutdownTimeout ?? envShutdown ?? fileShutdown ?? DEFAULTS.shutdownTimeoutSeconds),
    tokens,
    manifests,
    ...(waves && { waves }),
    ...(bundleLifetimeSeconds !== undefined && { bundleLifetimeSeconds }),
    ...((sessionIdle !== undefined || sessionLifetime !== undefined) && {
      console: { ...(sessionIdle !== undefined && { sessionIdleMs: sessionIdle * 1000 }), ...(sessionLifetime !== undefined && { sessionLifetimeMs: sessionLifetime * 1000 }) },
    }),
    webhooks,
    preflight,
    ...(approval && { approval }),
    ...(broker && { broker }),
    file: fileName,
    origins,
  };
}

function readConfigFile(file: string, problems: string[]): Record<string, unknown> {
  const ext = extname(file).toLowerCase();
  if (ext !== '.json' && ext !== '.yaml' && ext !== '.yml') {
    problems.push(`config: ${file} must end in .json, .yaml or .yml, got ${ext ? JSON.stringify(ext) : 'no extension'}`);
    return {};
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`config: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return {};
  }
  let value: unknown;
  try {
    value = ext === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    problems.push(`config: ${file} is not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
    return {};
  }
  if (value === null || value === undefined) return {};
  if (!isRecord(value)) {
    problems.push(`config: must be a mapping of options, got ${shown(value)}`);
    return {};
  }
  return value;
}

/** Typed reads that record a problem naming the key instead of throwing. */
class Checker {
  constructor(readonly problems: string[]) {}

  keys(v: Record<string, unknown>, known: readonly string[], at: string): void {
    for (const k of Object.keys(v)) if (!known.includes(k)) this.problems.push(`${at}.${k}: unknown option (known: ${known.filter((x) => x !== '$schema').join(', ')})`);
  }

  record(v: unknown, at: string, known: readonly string[], expected = 'a mapping'): Record<string, unknown> {
    if (v === undefined) return {};
    if (!isRecord(v)) {
      // A string where a mapping belongs is often a secret pasted one level too high (a token for
      // its { name, role, hash }, a postgres:// URL with its password for { url }): never echoed.
      this.problems.push(`${at}: must be ${expected}, got ${typeof v === 'string' ? 'a string (not shown: it may be a secret)' : shown(v)}`);
      return {};
    }
    this.keys(v, known, at);
    return v;
  }

  string(v: unknown, at: string, required = false): string | undefined {
    if (v === undefined) {
      if (required) this.problems.push(`${at}: required`);
      return undefined;
    }
    if (typeof v !== 'string' || v === '') {
      this.problems.push(`${at}: must be a non-empty string, got ${shown(v)}`);
      return undefined;
    }
    return v;
  }

  int(v: unknown, at: string, min: number, max: number): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.problems.push(`${at}: must be an integer ${min}-${max}, got ${shown(v)}`);
      return undefined;
    }
    return v;
  }

  port(v: unknown, at: string): number | undefined {
    return this.int(v, at, 0, 65535);
  }

  bool(v: unknown, at: string): boolean | undefined {
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') {
      this.problems.push(`${at}: must be true or false, got ${shown(v)}`);
      return undefined;
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, allowed: readonly T[], at: string): T | undefined {
    if (v === undefined) return undefined;
    if (!allowed.includes(v as T)) {
      this.problems.push(`${at}: must be one of ${allowed.join(', ')}, got ${shown(v)}`);
      return undefined;
    }
    return v as T;
  }

  duration(v: unknown, at: string, max = Number.MAX_SAFE_INTEGER, examples = '"12h" or "30d"'): number | undefined {
    if (v === undefined) return undefined;
    const m = typeof v === 'string' ? DURATION_RE.exec(v) : null;
    const seconds = typeof v === 'number' && Number.isSafeInteger(v) ? v : m ? Number(m[1]) * UNIT[m[2] as keyof typeof UNIT] : NaN;
    if (seconds > 0 && seconds <= max) return seconds;
    const limit = max === Number.MAX_SAFE_INTEGER ? '' : ` and at most ${max} s`;
    this.problems.push(`${at}: must be a number of seconds above 0${limit} or a duration like ${examples}, got ${shown(v)}`);
    return undefined;
  }

  file(p: string | undefined, at: string, path: (p: string) => string): Buffer | undefined {
    if (p === undefined) return undefined;
    try {
      return readFileSync(path(p));
    } catch (err) {
      this.problems.push(`${at}: cannot read ${path(p)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
  }

  tokens(v: unknown): ApiToken[] {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.problems.push(`config.tokens: must be a list of { name, role, hash }, got ${shown(v)}`);
      return [];
    }
    const out: ApiToken[] = [];
    v.forEach((t: unknown, i) => {
      const at = `config.tokens[${i}]`;
      const r = this.record(t, at, TOKEN_KEYS, '{ name, role, hash }');
      if (!isRecord(t)) return;
      const before = this.problems.length;
      if (typeof r.name !== 'string' || !NAME_RE.test(r.name)) this.problems.push(`${at}.name: must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -, got ${shown(r.name)}`);
      else if (out.some((o) => o.name === r.name)) this.problems.push(`${at}.name: "${r.name}" is used by another token`);
      if (!ROLES.includes(r.role as Role)) this.problems.push(`${at}.role: must be one of ${ROLES.join(', ')}, got ${shown(r.role)}`);
      // Never echo what came: someone may have pasted the token itself here.
      if (typeof r.hash !== 'string' || !HASH_RE.test(r.hash)) this.problems.push(`${at}.hash: must be a hash as \`pinwave token hash\` prints it (sha256:<43 characters>), not the token itself`);
      else if (out.some((o) => o.hash === r.hash)) this.problems.push(`${at}.hash: the same token as another entry`);
      if (this.problems.length === before) out.push({ name: r.name as string, role: r.role as Role, hash: r.hash as string });
    });
    return out;
  }

  webhooks(v: unknown): GatewayConfig['webhooks'] {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.problems.push(`config.webhooks: must be a list of { url, events, secret }, got ${shown(v)}`);
      return [];
    }
    const out: GatewayConfig['webhooks'] = [];
    /** index by URL (as WHATWG URL writes it): one URL twice would be sent every alert twice */
    const seen = new Map<string, number>();
    v.forEach((w: unknown, i) => {
      const at = `config.webhooks[${i}]`;
      const r = this.record(w, at, WEBHOOK_KEYS, '{ url, events, secret }');
      if (!isRecord(w)) return;
      const before = this.problems.length;
      let url: URL | null = null;
      if (typeof r.url !== 'string') this.problems.push(`${at}.url: required: an http:// or https:// URL`);
      else {
        try {
          url = new URL(r.url);
        } catch {
          url = null;
        }
        // Named by origin only: a webhook URL's path or query often carries a token of its own.
        if (!url) this.problems.push(`${at}.url: must be an absolute http:// or https:// URL`);
        else if (url.protocol !== 'http:' && url.protocol !== 'https:') this.problems.push(`${at}.url: must be http:// or https://, got ${url.protocol}//`);
        else if (url.username !== '' || url.password !== '') this.problems.push(`${at}.url: must not carry a user name or password (fetch refuses them; receivers check the signature instead)`);
        else if (url.port === '0') this.problems.push(`${at}.url: port 0 is no port to connect to (a TCP port is 1 to 65535)`);
        else if (seen.has(url.href)) this.problems.push(`${at}.url: the same URL as config.webhooks[${seen.get(url.href)}].url (each alert would be posted to it twice): give it once, with the events of both`);
        else seen.set(url.href, i);
      }
      let events: AlertEventName[] = [...ALERT_EVENT_NAMES];
      if (r.events !== undefined) {
        if (!Array.isArray(r.events) || r.events.length === 0) this.problems.push(`${at}.events: must be a non-empty list of ${ALERT_EVENT_NAMES.join(', ')} (leave it out for all of them), got ${shown(r.events)}`);
        else {
          const unknown = r.events.filter((e) => !ALERT_EVENT_NAMES.includes(e as AlertEventName));
          if (unknown.length > 0) this.problems.push(`${at}.events: unknown event${unknown.length === 1 ? '' : 's'} ${unknown.map(shown).join(', ')} (known: ${ALERT_EVENT_NAMES.join(', ')})`);
          events = [...new Set(r.events as AlertEventName[])];
        }
      }
      // Never echo the secret, nor a hint of it.
      if (typeof r.secret !== 'string' || r.secret.length < MIN_WEBHOOK_SECRET) this.problems.push(`${at}.secret: required: a string of at least ${MIN_WEBHOOK_SECRET} characters (the HMAC-SHA256 key receivers check signatures with)`);
      if (this.problems.length === before) out.push({ url: r.url as string, events, secret: r.secret as string });
    });
    return out;
  }

  /**
   * External broker mode from config.broker and the flags; undefined when neither names a URL.
   * Several brokers (docs/architecture.md §8): `--broker` given more than once or as a comma list
   * (or `config.broker.urls`); one `--broker-auth`/`--broker-ca` serves them all, or one each in
   * the same order (a `urls` entry may name its own `auth`, `ca`, `deviceUrl`).
   */
  broker(v: unknown, flags: ConfigFlags, path: (p: string) => string): GatewayConfig['broker'] {
    const r = this.record(v, 'config.broker', BROKER_KEYS);
    const list = (f: string | readonly string[] | undefined) => (f === undefined ? undefined : (typeof f === 'string' ? [f] : f).flatMap((x) => x.split(',')).map((x) => x.trim()));
    const flagUrls = list(flags.brokerUrl);
    const flagAuths = list(flags.brokerAuth);
    const flagCas = list(flags.brokerCa);
    const clientIdAt = flags.brokerClientId !== undefined ? '--broker-client-id' : 'config.broker.clientId';
    const clientId = flags.brokerClientId ?? this.string(r.clientId, 'config.broker.clientId');
    const deviceUrl = this.string(r.deviceUrl, 'config.broker.deviceUrl');
    type Entry = { url: { value: string | undefined; at: string }; auth?: { value: string | undefined; at: string; file: boolean }; ca?: { value: string | undefined; at: string; file: boolean }; deviceUrl?: string };
    const shared = (key: 'auth' | 'ca', f: string[] | undefined, name: string, n: number): Array<Entry['auth']> => {
      if (f !== undefined) {
        if (f.length !== 1 && f.length !== n) this.problems.push(`${name}: give one (for every broker) or one per --broker (${n}), got ${f.length}`);
        return Array.from({ length: n }, (_, i) => ({ value: f.length === 1 ? f[0] : f[i], at: f.length === 1 ? name : `${name} #${i + 1}`, file: false }));
      }
      const value = r[key] === undefined ? undefined : this.string(r[key], `config.broker.${key}`);
      return Array.from({ length: n }, () => (value === undefined ? undefined : { value, at: `config.broker.${key}`, file: true }));
    };
    let entries: Entry[];
    if (flagUrls !== undefined) {
      entries = flagUrls.map((u, i) => ({ url: { value: u, at: flagUrls.length === 1 ? '--broker' : `--broker #${i + 1}` } }));
    } else if (r.urls !== undefined) {
      if (r.url !== undefined) this.problems.push('config.broker.url: give url (one broker) or urls (several), not both');
      if (deviceUrl !== undefined) this.problems.push('config.broker.deviceUrl: with urls, give each entry its own deviceUrl');
      if (!Array.isArray(r.urls) || r.urls.length === 0) {
        this.problems.push(`config.broker.urls: must be a non-empty list of broker URLs or { url, auth, ca, deviceUrl }, got ${shown(r.urls)}`);
        return undefined;
      }
      entries = r.urls.map((e: unknown, i: number) => {
        const at = `config.broker.urls[${i}]`;
        if (typeof e === 'string') return { url: { value: this.string(e, at), at } };
        const o = this.record(e, at, BROKER_ENTRY_KEYS, 'a broker URL or { url, auth, ca, deviceUrl }');
        const own = (key: 'auth' | 'ca') => (o[key] === undefined ? undefined : { value: this.string(o[key], `${at}.${key}`), at: `${at}.${key}`, file: true });
        const d = this.string(o.deviceUrl, `${at}.deviceUrl`);
        return { url: { value: this.string(o.url, `${at}.url`, true), at: `${at}.url` }, auth: own('auth'), ca: own('ca'), ...(d !== undefined && { deviceUrl: d }) };
      });
    } else if (r.url !== undefined) {
      entries = [{ url: { value: this.string(r.url, 'config.broker.url'), at: 'config.broker.url' }, ...(deviceUrl !== undefined && { deviceUrl }) }];
    } else {
      const given = [flagAuths && '--broker-auth', flagCas && '--broker-ca', r.auth !== undefined && 'config.broker.auth', r.ca !== undefined && 'config.broker.ca', clientId !== undefined && clientIdAt, deviceUrl !== undefined && 'config.broker.deviceUrl'].filter(Boolean);
      if (given.length > 0) this.problems.push(`${given[0]}: needs the broker's URL (--broker mqtt://HOST:PORT or config.broker.url)`);
      return undefined;
    }
    if (flagUrls !== undefined && deviceUrl !== undefined) entries[0].deviceUrl = deviceUrl;
    const before = this.problems.length;
    const auths = shared('auth', flagAuths, '--broker-auth', entries.length);
    const cas = shared('ca', flagCas, '--broker-ca', entries.length);
    if (clientId !== undefined && (clientId.length > 128 || isDeviceId(clientId))) this.problems.push(`${clientIdAt}: must be 1 to 128 characters holding an "@" (so no device can take it), got ${shown(clientId)}`);
    const out: NonNullable<GatewayConfig['broker']> = [];
    const seen = new Map<string, string>();
    for (const [i, e] of entries.entries()) {
      const auth = flagAuths !== undefined ? auths[i] : (e.auth ?? auths[i]);
      const ca = flagCas !== undefined ? cas[i] : (e.ca ?? cas[i]);
      const scheme = e.url.value === undefined ? null : this.brokerUrl(e.url.value, e.url.at);
      if (e.deviceUrl !== undefined) this.brokerUrl(e.deviceUrl, entries.length === 1 && r.urls === undefined ? 'config.broker.deviceUrl' : `config.broker.urls[${i}].deviceUrl`);
      const devicesSee = e.deviceUrl ?? e.url.value;
      if (devicesSee !== undefined && seen.has(devicesSee)) this.problems.push(`${e.url.at}: ${devicesSee} is given twice (${seen.get(devicesSee)}): each broker once`);
      if (devicesSee !== undefined) seen.set(devicesSee, e.url.at);
      // a CA shared by several brokers serves the mqtts:// ones; one given to a plain broker alone is a mistake
      const caShared = ca !== undefined && entries.length > 1 && (flagCas !== undefined ? flagCas.length === 1 : e.ca === undefined);
      if (scheme === 'mqtt:' && ca !== undefined && !caShared) this.problems.push(`${ca.at}: a CA is for an mqtts:// broker, but ${e.url.at} is ${e.url.value}`);
      let creds: { username: string; password: string } | undefined;
      if (auth === undefined) this.problems.push(`${e.url.at}: needs the gateway's broker credentials: --broker-auth FILE or config.broker.auth (pinwave broker mosquitto-config writes gateway-broker.json)`);
      else if (auth.value !== undefined) {
        try {
          creds = readBrokerAuth(auth.file ? path(auth.value) : auth.value);
        } catch (err) {
          if (!(err instanceof BrokerAuthError)) throw err;
          this.problems.push(`${auth.at}: ${err.message}`);
        }
      }
      const caFile = ca === undefined || (caShared && scheme !== 'mqtts:') ? undefined : this.file(ca.value, ca.at, ca.file ? path : (p) => p);
      if (creds && e.url.value !== undefined) out.push({ url: e.url.value, ...creds, ...(caFile && { ca: caFile }), ...(clientId !== undefined && { clientId }), ...(e.deviceUrl !== undefined && { deviceUrl: e.deviceUrl }) });
    }
    if (this.problems.length > before) return undefined;
    return out;
  }

  /**
   * The embedded broker's URL for devices (`mqtt.deviceUrl`): a broker URL as `broker.deviceUrl` is, on an
   * address a device can connect to (not a wildcard), and only for the embedded broker.
   */
  deviceUrl(v: unknown, at: string, external: boolean): string | undefined {
    const url = this.string(v, at);
    if (url === undefined) return undefined;
    if (external) this.problems.push(`${at}: is the embedded broker's; in external broker mode devices are given broker.deviceUrl (default broker.url)`);
    else if (this.brokerUrl(url, at) === null) return undefined;
    else if (isWildcardHost(new URL(url).hostname)) this.problems.push(`${at}: must name an address devices can connect to, not the wildcard ${new URL(url).hostname}, got ${shown(url)}`);
    else return url;
    return undefined;
  }

  /** `mqtt://HOST:PORT` or `mqtts://HOST:PORT`; its scheme, or null after recording the problem. */
  brokerUrl(value: string, at: string): 'mqtt:' | 'mqtts:' | null {
    let u: URL | null;
    try {
      u = new URL(value);
    } catch {
      u = null;
    }
    // Shown without its password: the gateway's broker password belongs in the --broker-auth file.
    const seen = shown(u && u.password !== '' ? redactUrl(value) : value);
    if (!u || (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:')) this.problems.push(`${at}: must be mqtt://HOST:PORT or mqtts://HOST:PORT, got ${seen}`);
    else if (!u.port) this.problems.push(`${at}: must name the port (1883 is never assumed), got ${seen}`);
    else if (u.username !== '' || u.password !== '') this.problems.push(`${at}: must not carry a user name or password (they go in the --broker-auth file)`);
    else return u.protocol;
    return null;
  }

  preflight(v: unknown): PreflightOptions {
    const r = this.record(v, 'config.preflight', PREFLIGHT_KEYS);
    const out: PreflightOptions = {};
    const probeAll = this.bool(r.probeAll, 'config.preflight.probeAll');
    const requireOverlap = this.bool(r.requireOverlap, 'config.preflight.requireOverlap');
    if (probeAll !== undefined) out.probeAll = probeAll;
    if (requireOverlap !== undefined) out.requireOverlap = requireOverlap;
    let endpoints: Record<string, unknown> = {};
    if (isRecord(r.endpoints)) endpoints = r.endpoints;
    else if (r.endpoints !== undefined) this.problems.push(`config.preflight.endpoints: must be a mapping of "HOST:PORT" to { connect: "ADDR:PORT" } or null, got ${shown(r.endpoints)}`);
    out.endpoints = {};
    for (const [where, e] of Object.entries(endpoints)) {
      const at = `config.preflight.endpoints.${where}`;
      if (!hostPort(where)) {
        this.problems.push(`${at}: must be named HOST:PORT (a port 1-65535), e.g. "api.example.com:443"`);
        continue;
      }
      const opts = e === null ? {} : this.record(e, at, ['connect'], '{ connect: "ADDR:PORT" } or null');
      if (opts.connect === undefined) {
        out.endpoints[where] = null;
        continue;
      }
      const dial = typeof opts.connect === 'string' ? hostPort(opts.connect) : null;
      if (!dial) this.problems.push(`${at}.connect: must be ADDR:PORT (a port 1-65535), e.g. "10.0.0.7:8443", got ${shown(opts.connect)}`);
      else out.endpoints[where] = dial;
    }
    return out;
  }

  manifests(v: unknown, path: (p: string) => string): FirmwareManifest[] {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      this.problems.push(`config.manifests: must be a list of firmware manifest JSON files, got ${shown(v)}`);
      return [];
    }
    const out: FirmwareManifest[] = [];
    v.forEach((p: unknown, i) => {
      const at = `config.manifests[${i}]`;
      const file = this.string(p, at, true);
      if (file === undefined) return;
      let text: string;
      try {
        text = readFileSync(path(file), 'utf8');
      } catch (err) {
        this.problems.push(`${at}: cannot read ${path(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        this.problems.push(`${at}: ${path(file)} is not JSON: ${(err as Error).message}`);
        return;
      }
      const r = validateManifest(json);
      if (!r.ok) {
        this.problems.push(`${at}: ${path(file)} is not a valid firmware manifest: ${formatManifestErrors(r.errors).replace(/\n/g, '; ')}`);
        return;
      }
      // A key listed twice (the same key as PEM and as base64, say) leaves the model one key short of
      // what the file seems to trust: refused here, where the operator can fix the file.
      const twice = duplicateTrustedKey(r.manifest);
      if (twice) this.problems.push(`${at}: ${path(file)}: ${twice.message}`);
      else if (out.some((m) => m.model === r.manifest.model)) this.problems.push(`${at}: model "${r.manifest.model}" has a manifest already`);
      else out.push(r.manifest);
    });
    return out;
  }
}
