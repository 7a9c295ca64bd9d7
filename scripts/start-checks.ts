// What `pinwave gateway` checks before it opens the store (docs/operations.md, *Run as a service*): the data
// dir is a folder it can write (or can be made one), and every address it will listen on can be bound. A start
// that fails on one of these says so in one line naming the flag (or variable, or config key, or the
// default when nothing set it: gateway/config.ts settingText) and the address, and has written nothing: no journal begun in the data dir, no lock left there.
//
//   const problem = (await dataDirProblem(dir, '--data /srv/pw')) ?? (await listenProblem(listeners));
import { access, constants, stat } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { createServer, isIP, type AddressInfo, type Server } from 'node:net';
import { endpointText } from '../firmware-manifest/index.ts';
import { settingText, type GatewayConfig } from '../gateway/config.ts';
import { isWildcardHost } from '../gateway/device-url.ts';

/** One address the gateway listens on, and how the operator named its port and host. */
export interface Listener {
  host: string;
  port: number;
  /** e.g. `--mqtt-port 18830`, `PINWAVE_HTTP_PORT=8080`, `config mqtt.tls.port 8883`, `the default HTTP port 8080 (set by …)` */
  portName: string;
  /** e.g. `--host gw.local`, `config http.host 10.0.0.5` */
  hostName: string;
  /** binds every address its host name resolves to, not only the first: fastify does for `localhost` */
  every?: boolean;
}

/** The addresses the gateway will listen on, MQTT's first (none of its own in external broker mode), each named as the operator set it. */
export function listenersOf(c: GatewayConfig): Listener[] {
  const host = settingText(c, 'host', c.host);
  const own = (port: number, portName: string): Listener => ({ host: c.host, port, portName, hostName: host });
  const mqtt: Listener[] = c.broker
    ? []
    : [
        ...(c.mqtt.plain !== false ? [own(c.mqtt.port, settingText(c, 'mqttPort', c.mqtt.port))] : []),
        ...(c.mqtt.tls ? [own(c.mqtt.tls.port, settingText(c, 'tlsPort', c.mqtt.tls.port))] : []),
        ...(c.mqtt.websocket ? [own(c.mqtt.websocket.port, settingText(c, 'wsPort', c.mqtt.websocket.port))] : []),
      ];
  // fastify listens on every address of `localhost` (127.0.0.1 and ::1 where both resolve), net.Server on the first only.
  const http: Listener = { host: c.http.host, port: c.http.port, portName: settingText(c, 'httpPort', c.http.port), hostName: settingText(c, 'httpHost', c.http.host), ...(c.http.host === 'localhost' && { every: true }) };
  return [...mqtt, http];
}

/** Why `dir` cannot be the data dir (something not a folder is there), or null. A missing one is made at the start. */
export async function dataDirProblem(dir: string, name: string): Promise<string | null> {
  const st = await stat(dir).catch((err: NodeJS.ErrnoException) => err);
  if (st instanceof Error) {
    if (st.code === 'ENOENT') return null;
    if (st.code === 'ENOTDIR') return `${name}: a part of that path is a file, not a directory`;
    return `${name}: ${st.code ?? st.message}`;
  }
  if (!st.isDirectory()) return `${name}: a file is there, not a directory: the data dir is a folder the gateway keeps its store in (created if missing)`;
  // access(2) answers for this process (root included) and for a read-only mount: EROFS, EACCES.
  const denied = await access(dir, constants.W_OK).then(() => null, (err: NodeJS.ErrnoException) => err);
  return denied === null ? null : `${name}: the gateway cannot write there (${denied.code ?? denied.message}${denied.code === 'EROFS' ? ': a read-only file system' : ''}): the data dir is where it keeps its store`;
}

/** How the check finds the addresses a host name stands for: dns.lookup, as listen(2)'s caller does; a test gives its own. */
export type Lookup = (host: string) => Promise<Array<{ address: string }>>;
const lookupAll: Lookup = (host) => lookup(host, { all: true });

/**
 * Binds every address at once, as the real listen will, then lets them go: the first that cannot be bound as a
 * line naming it (or first, the second of two of the gateway's own listeners that cannot share an address:
 * clashProblem), or null. A listener's addresses are those clashProblem finds; a port in use on any of them is
 * refused, since clients that resolve the name to that address would reach whoever holds it. Port 0 binds any
 * free port, which still checks the host; a listener's further addresses take the port its first got, as fastify's do.
 */
export async function listenProblem(listeners: readonly Listener[], o: { lookup?: Lookup } = {}): Promise<string | null> {
  const probes = await probesOf(listeners, o.lookup ?? lookupAll);
  if (typeof probes === 'string') return probes;
  const clash = clashOf(probes);
  if (clash !== null) return clash;
  const bound: Array<Probe & { server: Server; port: number }> = [];
  try {
    for (const p of probes) {
      const port = p.further ? bound.find((b) => b.l === p.l)!.port : p.l.port;
      // A device or probe that connects in this moment is hung up on at once: close() waits for
      // every connection to end, so one left open would hold the start for as long as its peer waits.
      const server = createServer((socket) => socket.destroy());
      const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        server.once('error', resolve);
        server.listen({ host: p.address, port, exclusive: true }, () => resolve(null));
      });
      if (err) {
        // fastify lets a further address go that it cannot bind (::1 on a machine without IPv6): so does the check.
        if (p.further && err.code !== 'EADDRINUSE' && err.code !== 'EACCES') continue;
        return listenFailure(err, [p.l]) ?? `${p.l.portName}: cannot listen on ${endpointText(p.address, port)} (${err.code ?? err.message})`;
      }
      bound.push({ ...p, server, port: (server.address() as AddressInfo).port });
    }
    return null;
  } finally {
    await Promise.all(bound.map((b) => new Promise((resolve) => b.server.close(resolve))));
  }
}

/**
 * Two of the gateway's own listeners that cannot both start, as a line naming both, or a host name that does
 * not resolve; null when none: what `pinwave gateway` refuses before binding anything, and what
 * `pinwave config check` reports without binding (a running gateway may hold the ports). A host name stands for
 * the first address it resolves to (net.Server.listen), or every one for a listener with `every` (fastify
 * listens on each address of `localhost`, docs/operations.md), so `localhost` and 127.0.0.1 on one port clash.
 */
export async function clashProblem(listeners: readonly Listener[], o: { lookup?: Lookup } = {}): Promise<string | null> {
  const probes = await probesOf(listeners, o.lookup ?? lookupAll);
  return typeof probes === 'string' ? probes : clashOf(probes);
}

/** One address a listener will bind; `further`: not its first (fastify's further bindings of `localhost`). */
interface Probe {
  l: Listener;
  address: string;
  further: boolean;
}

/** Each listener's addresses, or the line saying a host name does not resolve. */
async function probesOf(listeners: readonly Listener[], lookup: Lookup): Promise<Probe[] | string> {
  const probes: Probe[] = [];
  for (const l of listeners) {
    let found: Array<{ address: string }>;
    try {
      found = isIP(l.host) !== 0 ? [{ address: l.host }] : await lookup(l.host);
    } catch (err) {
      return listenFailure(err, [l]) ?? `${l.hostName}: cannot resolve that name (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
    for (const [i, { address }] of (l.every ? found : found.slice(0, 1)).entries()) probes.push({ l, address, further: i > 0 });
  }
  return probes;
}

/** The first address another of the gateway's listeners already takes on the same port, as a line naming both. */
function clashOf(probes: readonly Probe[]): string | null {
  for (const [i, p] of probes.entries()) {
    const first = probes.slice(0, i).find((o) => o.l !== p.l && o.l.port !== 0 && o.l.port === p.l.port && overlap(o.address, p.address));
    if (first) return taken(p.l, first.l);
  }
  return null;
}

/**
 * Whether the system refuses two listening sockets on these addresses and one port: the same address, or a
 * wildcard and an address it covers. 0.0.0.0 covers every IPv4 address; :: every address, IPv4 too, since
 * Node (libuv) binds :: with IPV6_V6ONLY off whatever the system's bindv6only says; 0.0.0.0 and ::1 coexist.
 */
function overlap(a: string, b: string): boolean {
  const v4 = (x: string) => isIP(x) === 4;
  // :: in any spelling (::0, 0:0:0:0:0:0:0:0), as device-url.ts tells a wildcard
  const any = (x: string) => isIP(x) === 6 && isWildcardHost(x);
  return a === b || any(a) || any(b) || (v4(a) && v4(b) && (a === '0.0.0.0' || b === '0.0.0.0'));
}

const taken = (l: Listener, first: Listener) => `${l.portName}: ${endpointText(l.host, l.port)} is taken by ${first.portName} already: give each listener a port of its own`;

/** A listen error (a port taken, a host that does not resolve or is not this machine's, a port needing privileges) as one line naming the listener it is of; null for another error. */
export function listenFailure(err: unknown, listeners: readonly Listener[]): string | null {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string; hostname?: string };
  // Only listen(2)'s own errors are a port's: a data dir's or a key file's EACCES (open) is not,
  // though with one listener (external broker mode) there would be no other port to blame.
  const byPort = e.syscall !== 'listen' ? undefined : listeners.find((l) => l.port !== 0 && l.port === e.port) ?? (listeners.length === 1 ? listeners[0] : undefined);
  const byHost = listeners.find((l) => l.host === e.hostname) ?? byPort;
  switch (e.code) {
    case 'EADDRINUSE':
      return byPort ? `${byPort.portName}: address ${endpointText(e.address ?? byPort.host, byPort.port)} is already in use (another gateway or broker? give another port, or 0 for any free one)` : null;
    case 'EACCES':
      return byPort ? `${byPort.portName}: not allowed to listen on ${endpointText(e.address ?? byPort.host, byPort.port)} (EACCES: a port below 1024 needs privileges)` : null;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return byHost ? `${byHost.hostName}: cannot resolve that name (${e.code}): give an address of this machine, e.g. 127.0.0.1, or 0.0.0.0 for every interface` : null;
    case 'EADDRNOTAVAIL':
      return byHost ? `${byHost.hostName}: ${e.address ?? byHost.host} is not an address of this machine (EADDRNOTAVAIL)` : null;
    default:
      return null;
  }
}

