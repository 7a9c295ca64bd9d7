// `pinwave broker mosquitto-config --out DIR`: a Mosquitto 2.0 for external broker mode
// (docs/architecture.md §8) in one directory: DIR/mosquitto.conf, the dynamic-security plugin's
// file (the gateway's client and role, and optionally a fleet moved from an embedded data dir with
// the token hashes it has, so no device needs a new token), and DIR/gateway-broker.json, the
// gateway's own broker credentials. DIR is created 0700, every file 0600: the plugin's file holds
// token hashes and the credentials file a password. A DIR that exists keeps its mode and owner.
import { existsSync } from 'node:fs';
import { chown, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { hashDeviceToken, newToken } from '../../gateway/credentials.ts';
import { buildDynsecFile, GATEWAY_USERNAME, serializeDynsecFile, type BuiltDynsecFile, type FleetDevice } from '../../gateway/broker/dynsec-file.ts';
import { DEFAULT_BROKER_PORT, DEFAULT_PLUGIN_PATH, DYNSEC_FILE, mosquittoConf } from '../../gateway/broker/mosquitto-conf.ts';
import { BROKER_AUTH_FILE, formatBrokerAuth } from '../../gateway/broker/broker-auth.ts';
import { EmbeddedStore } from '../../gateway/store/embedded.ts';
import { isDataDir, notADataDir } from '../data-dir.ts';
import { MAX_PAGE_LIMIT } from '../../gateway/store/types.ts';
import { isBrokerUrl } from '../../gateway/broker/broker-url.ts';
import { parse, required, uintFlag, UsageError, type Io } from '../args.ts';
import { replaceFile, syncDir } from '../out-file.ts';
import { endpointText } from '../../firmware-manifest/endpoint-text.ts';

const USAGE = `Usage:
  pinwave broker mosquitto-config --out DIR [--port N] [--host H] [--from-data DATA_DIR [--of-broker URL [--with-unrecorded]]]
                                  [--user NAME] [--plugin PATH] [--force]

Writes a Mosquitto 2.0 configuration for external broker mode into DIR (created 0700 if missing;
a DIR that exists keeps its mode and owner, with a note when others can list it):
  DIR/mosquitto.conf           one listener, no anonymous clients, the dynamic-security plugin,
                               persistence in DIR
  DIR/${DYNSEC_FILE}    the plugin's clients and roles: the gateway's, and with
                               --from-data every device of that fleet with the token hash it has
  DIR/gateway-broker.json      the gateway's own broker username and password (mode 0600)

  --out DIR           the broker's directory
  --port N            the listener's port; default ${DEFAULT_BROKER_PORT}
  --host H            the listener's address; default 127.0.0.1
  --from-data DIR     an embedded gateway's data dir (stopped): move its fleet to the broker.
                      Stop that gateway first: a token rotated after this is not in the broker.
  --of-broker URL     with --from-data, a fleet sharded over several brokers: only the devices
                      recorded on the broker URL (as devices are given it)
  --with-unrecorded   with --of-broker, also the devices with no broker recorded (they belong to
                      the first broker of the gateway's list)
  --user NAME         the user Mosquitto runs as when started by root (it reads and rewrites
                      the plugin's file); default the user running this command. As root, a
                      different NAME also gets the broker's files (not gateway-broker.json)
  --plugin PATH       the dynamic-security plugin; default ${DEFAULT_PLUGIN_PATH}
  --force             replace the files of an earlier run in DIR (the broker must be stopped:
                      its clients, sessions and credentials there are replaced); never a
                      mosquitto.conf this command did not write`;

export interface BrokerDirOptions {
  dir: string;
  port: number;
  host?: string;
  pluginPath?: string;
  user?: string;
  /** devices to write into the plugin's file */
  fleet?: Iterable<FleetDevice>;
  /** replace the files of an earlier run */
  force?: boolean;
}

export interface BrokerDir {
  dir: string;
  confPath: string;
  dynsecPath: string;
  authPath: string;
  username: string;
  password: string;
  built: BuiltDynsecFile;
  /** what the operator should know: an existing DIR's mode or owner, left as they were */
  notes: string[];
}

const FILES = ['mosquitto.conf', DYNSEC_FILE, BROKER_AUTH_FILE];
/** In the header of every mosquitto.conf this command writes (gateway/broker/mosquitto-conf.ts). */
const CONF_MARK = '# `pinwave broker mosquitto-config`.';

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'mosquitto-config': return mosquittoConfig(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

async function mosquittoConfig(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, {
    out: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    'from-data': { type: 'string' },
    'of-broker': { type: 'string' },
    'with-unrecorded': { type: 'boolean', default: false },
    user: { type: 'string' },
    plugin: { type: 'string' },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const dir = resolve(required(values.out, 'out', USAGE));
  const port = values.port === undefined ? DEFAULT_BROKER_PORT : uintFlag(values.port, 'port', USAGE);
  if (port < 1 || port > 65535) throw new UsageError(`--port must be 1 to 65535, got ${port}`, USAGE);
  if (values.user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(values.user)) throw new UsageError(`--user must be a user name, got "${values.user}"`, USAGE);
  if (values.plugin !== undefined && !existsSync(values.plugin)) throw new UsageError(`--plugin ${values.plugin}: no such file`, USAGE);
  const ofBroker = values['of-broker'];
  if (ofBroker !== undefined && values['from-data'] === undefined) throw new UsageError('--of-broker needs --from-data DATA_DIR', USAGE);
  if (values['with-unrecorded'] && ofBroker === undefined) throw new UsageError('--with-unrecorded needs --of-broker URL', USAGE);
  if (ofBroker !== undefined && !isBrokerUrl(ofBroker)) throw new UsageError(`--of-broker must be a broker URL as devices are given it (mqtt://HOST:PORT), got "${ofBroker}"`, USAGE);
  const all = values['from-data'] === undefined ? undefined : await readFleet(resolve(values['from-data']));
  // docs/external-broker.md: each broker of a sharded fleet holds the devices recorded on it
  const fleet = ofBroker === undefined ? all : all!.filter((d) => (d.broker === undefined ? values['with-unrecorded'] : d.broker === ofBroker));

  let out: BrokerDir;
  try {
    out = await writeBrokerDir({ dir, port, host: values.host, pluginPath: values.plugin, user: values.user, fleet, force: values.force });
  } catch (err) {
    if (err instanceof TypeError) throw new UsageError(err.message, USAGE);
    throw err;
  }
  const { built } = out;
  for (const n of out.notes) io.err(`note: ${n}`);
  io.out(`wrote ${out.confPath}, ${out.dynsecPath} and ${out.authPath} (the gateway's broker password: keep it secret)`);
  if (fleet !== undefined) {
    io.out(`devices: ${built.devices} written with the token hashes the store holds (no new tokens)${built.skipped.length ? `, ${built.skipped.length} left out` : ''}`);
    for (const [reason, ids] of groupSkipped(built.skipped)) {
      io.out(`  ${ids.length} ${reason}: ${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', …' : ''}${SKIP_ADVICE[reason] ? `\n    ${SKIP_ADVICE[reason]}` : ''}`);
    }
  }
  io.out('');
  io.out('Then start the broker, and the gateway against it:');
  io.out(`  mosquitto -c ${out.confPath}`);
  io.out(`  pinwave gateway --broker mqtt://${endpointText(values.host ?? '127.0.0.1', port)} --broker-auth ${out.authPath} --data … --key …`);
  if (process.getuid?.() === 0 && (values.user ?? 'root') === 'root') {
    io.err('note: Mosquitto will run as root (user root in mosquitto.conf); --user mosquitto gives it the broker\'s files and runs it unprivileged');
  }
  return 0;
}

const SKIP_ADVICE: Record<string, string> = {
  legacy_hash: 'stored by an earlier release (sha256:): connect each once to the embedded gateway (it re-hashes the token) or give it a new token, then run this again',
  malformed_hash: 'the stored hash is damaged: give these devices new tokens',
};

function groupSkipped(skipped: BuiltDynsecFile['skipped']): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const s of skipped) groups.set(s.reason, [...(groups.get(s.reason) ?? []), s.id]);
  return groups;
}

/** Every device of an embedded data dir, read with the store that wrote it. */
async function readFleet(dataDir: string): Promise<Array<FleetDevice & { broker?: string }>> {
  if (!isDataDir(dataDir)) throw new UsageError(notADataDir('--from-data', dataDir), USAGE);
  const store = new EmbeddedStore({ dir: dataDir });
  await store.open();
  try {
    const fleet: Array<FleetDevice & { broker?: string }> = [];
    let cursor: string | null = null;
    do {
      const page = await store.listDevices({ limit: MAX_PAGE_LIMIT, cursor });
      for (const d of page.items) fleet.push({ id: d.id, tokenHash: d.tokenHash, revokedAt: d.revokedAt, ...(d.broker !== undefined && { broker: d.broker }) });
      cursor = page.next;
    } while (cursor !== null);
    return fleet;
  } finally {
    await store.close();
  }
}

/**
 * Writes the three files into `dir` (0700), each 0600, each durable (temp file, fsync, rename,
 * fsync of the directory) so a crash leaves the old file or the new one. Refuses to replace the
 * files of an earlier run unless `force`. Throws a TypeError for an option mosquitto.conf cannot hold.
 */
export async function writeBrokerDir(o: BrokerDirOptions): Promise<BrokerDir> {
  const dir = resolve(o.dir);
  const user = o.user ?? userInfo().username;
  const conf = mosquittoConf({ dir, port: o.port, host: o.host, pluginPath: o.pluginPath, user });
  const password = newToken();
  const built = buildDynsecFile({ gateway: { tokenHash: hashDeviceToken(password) }, devices: o.fleet });
  const owner = process.getuid?.() === 0 && user !== 'root' ? await ownerOf(user) : null;
  const before = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (before && !before.isDirectory()) throw new Error(`${dir} is not a directory: give --out a directory (it is created if missing)`);
  const notes: string[] = [];
  if (before) {
    // A directory that was there before is the operator's (`--out .`, `--out /etc/mosquitto`): its
    // mode and owner stay as they are, as changing them could open or close it to others.
    if ((before.mode & 0o077) !== 0) notes.push(`${dir} was there before: its mode ${(before.mode & 0o777).toString(8).padStart(4, '0')} is left as it is (every file written is 0600); chmod 700 ${dir} to keep others from listing it`);
    if (owner && before.uid !== owner.uid) notes.push(`${dir} was there before: its owner is left as it is, but Mosquitto runs as ${user} and writes there (its persistence, the plugin's file): chown ${user} ${dir}`);
  } else {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }
  const present = await readdir(dir);
  const existing = FILES.filter((f) => present.includes(f));
  if (existing.length > 0 && !o.force) {
    throw new Error(`${dir} already holds ${existing.join(', ')}: pass --force to replace them (stop the broker first; its clients and credentials there are replaced)`);
  }
  if (existing.includes('mosquitto.conf') && !(await readFile(join(dir, 'mosquitto.conf'), 'utf8')).includes(CONF_MARK)) {
    throw new Error(`${join(dir, 'mosquitto.conf')} was not written by pinwave broker mosquitto-config: --force replaces only an earlier run's files; move it away or give another --out`);
  }
  const paths = { confPath: join(dir, 'mosquitto.conf'), dynsecPath: join(dir, DYNSEC_FILE), authPath: join(dir, BROKER_AUTH_FILE) };
  await replaceFile(paths.confPath, conf, 0o600);
  await replaceFile(paths.dynsecPath, serializeDynsecFile(built.file), 0o600);
  await replaceFile(paths.authPath, formatBrokerAuth({ username: GATEWAY_USERNAME, password }), 0o600);
  // the broker's files to the broker's user; gateway-broker.json stays with whoever runs the gateway
  if (owner) for (const p of [...(before ? [] : [dir]), paths.confPath, paths.dynsecPath]) await chown(p, owner.uid, owner.gid);
  await syncDir(dir);
  return { dir, ...paths, username: GATEWAY_USERNAME, password, built, notes };
}

async function ownerOf(user: string): Promise<{ uid: number; gid: number }> {
  const { execFileSync } = await import('node:child_process');
  try {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid, gid };
  } catch {
    throw new TypeError(`--user ${user}: no such user on this machine`);
  }
}
