// mosquitto.conf for external broker mode (docs/architecture.md §8) on Mosquitto 2.0 with its
// dynamic-security plugin: one listener, no anonymous clients, every client known to the plugin,
// persistence in the broker's own directory. Pure: the text of the file from its options.
//
//   mosquittoConf({ dir: '/var/lib/pinwave-broker', port: 18830 });
//
// The choices, and why (Mosquitto 2.0.11's defaults in brackets):
// - per_listener_settings false: the plugin then guards every listener, and a listener added
//   later cannot come up open.
// - persistent_client_expiration 7d [never]: a revoked device's session (its queue) is otherwise
//   kept for ever; it caps the gateway replicas' sessions as well.
// - max_queued_messages 1000000 [1000]: the limit is per client, and the gateway's session is the
//   one that queues: while a replica is away its share of every device message waits in its
//   session, and past the limit Mosquitto drops what devices were already told it took (PUBACK).
//   Devices queue next to nothing: the gateway publishes a bundle only to a device that is online.
// - max_packet_size 65536 [none: 256 MiB]: what a hostile client can make the broker buffer;
//   room for bundles (about 200 bytes plus 34 a pin) and the gateway's control batches.
// - autosave_interval 60 [1800]: Mosquitto persists by rewriting its whole database now and
//   then (and at a clean shutdown), not per message; this bounds what a broker crash loses to a
//   minute. A PUBACK from Mosquitto means "in its memory", never "on its disk".
// - set_tcp_nodelay true: small packets, latency over segment count (as the embedded broker).
// - user: Mosquitto started as root drops to the user `mosquitto`, which could then neither read
//   nor rewrite files created 0600 in a 0700 directory; naming the files' owner keeps it able to.

export interface MosquittoConfOptions {
  /** the broker's directory: holds the plugin's file and the persistence database. Required, absolute. */
  dir: string;
  /** TCP port of the listener. Required: 1883 is never assumed. */
  port: number;
  /** address the listener binds; default 127.0.0.1 */
  host?: string;
  /** the dynamic-security plugin; default Debian's path */
  pluginPath?: string;
  /** file name of the plugin's JSON file in `dir`; default dynamic-security.json */
  dynsecFile?: string;
  /** the user the broker runs as when started by root; default none (the line is left out) */
  user?: string;
  /** persistent_client_expiration, in Mosquitto's notation (`7d`, `12h`); default 7d */
  sessionExpiry?: string;
  /** max_queued_messages; default 1000000 */
  maxQueuedMessages?: number;
  /** max_packet_size in bytes; default 65536 */
  maxPacketBytes?: number;
  /** autosave_interval in seconds; default 60 */
  autosaveSeconds?: number;
}

export const DEFAULT_PLUGIN_PATH = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
export const DYNSEC_FILE = 'dynamic-security.json';
/** The listener port `pinwave broker mosquitto-config` writes when none is given (never 1883). */
export const DEFAULT_BROKER_PORT = 18830;

const DEFAULTS = {
  host: '127.0.0.1',
  sessionExpiry: '7d',
  maxQueuedMessages: 1_000_000,
  maxPacketBytes: 65_536,
  autosaveSeconds: 60,
};

/** The text of mosquitto.conf; throws a TypeError naming the option that cannot be written. */
export function mosquittoConf(o: MosquittoConfOptions): string {
  const dir = word(o.dir, 'dir').replace(/\/+$/, '');
  if (!dir.startsWith('/')) throw new TypeError(`expected dir to be an absolute path, got ${JSON.stringify(o.dir)}`);
  const port = o.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`expected port to be an integer from 1 to 65535, got ${port}`);
  const host = word(o.host ?? DEFAULTS.host, 'host');
  const plugin = word(o.pluginPath ?? DEFAULT_PLUGIN_PATH, 'pluginPath');
  const dynsec = word(o.dynsecFile ?? DYNSEC_FILE, 'dynsecFile');
  if (dynsec.includes('/')) throw new TypeError(`expected dynsecFile to be a file name in dir, got ${JSON.stringify(dynsec)}`);
  const expiry = o.sessionExpiry ?? DEFAULTS.sessionExpiry;
  if (!/^[1-9][0-9]*[hdwmy]$/.test(expiry)) throw new TypeError(`expected sessionExpiry like 7d or 12h, got ${JSON.stringify(expiry)}`);
  const queued = positive(o.maxQueuedMessages ?? DEFAULTS.maxQueuedMessages, 'maxQueuedMessages');
  const packet = positive(o.maxPacketBytes ?? DEFAULTS.maxPacketBytes, 'maxPacketBytes');
  const autosave = positive(o.autosaveSeconds ?? DEFAULTS.autosaveSeconds, 'autosaveSeconds');
  const lines = [
    '# Mosquitto for pinwave external broker mode (docs/architecture.md §8), written by',
    '# `pinwave broker mosquitto-config`. Device clients and their ACLs live in the',
    '# dynamic-security file below and are managed by the gateway; edit neither by hand',
    '# while the broker runs (the plugin rewrites its file on every change).',
    'per_listener_settings false',
    'allow_anonymous false',
    `listener ${port} ${host}`,
    `plugin ${plugin}`,
    `plugin_opt_config_file ${dir}/${dynsec}`,
    'persistence true',
    `persistence_location ${dir}`,
    'persistence_file mosquitto.db',
    `autosave_interval ${autosave}`,
    `persistent_client_expiration ${expiry}`,
    `max_queued_messages ${queued}`,
    `max_packet_size ${packet}`,
    'set_tcp_nodelay true',
  ];
  if (o.user !== undefined) lines.push(`user ${word(o.user, 'user')}`);
  return lines.join('\n') + '\n';
}

// Mosquitto splits a config line on spaces and has no quoting: a value must be one word.
function word(value: string, name: string): string {
  if (typeof value !== 'string' || value === '' || /[\s#]/.test(value)) {
    throw new TypeError(`expected ${name} without spaces or "#" (mosquitto.conf cannot quote them), got ${JSON.stringify(value)}`);
  }
  return value;
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`expected ${name} to be a positive integer, got ${value}`);
  return value;
}
