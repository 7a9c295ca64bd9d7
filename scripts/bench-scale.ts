// Benchmark of fleet sizes past one process (docs/architecture.md §8), printed in one run with the
// load average: for each configuration of N devices on B Mosquitto brokers (each its own, on a free
// port in a temp dir, never the machine's shared one), the bare floor:
// - connects/s: N mqtt.js clients (spread over client processes: one process may hold 20,000 open
//   files here), each connecting, subscribing to its bundle topic and sending `state`, device i on
//   broker i mod B, at most 100 connects in flight per broker (Mosquitto's listen backlog);
// - push → all acked: a live QoS 1 message of a bundle's size to every device, each replying with
//   an ack-sized QoS 1 message at once (scripts/bench-worker roles `clients` and `pusher`), and the
//   time to 95% of the acks;
// - broker RSS per device (the broker's RSS with the fleet connected, less its RSS before).
// And the same fleet through the embedded aedes gateway at --gateway-size (default 10,000):
// connects/s, push → all acked (a one-wave rollout counted applied, every ack committed), gateway
// RSS per device. And for each configuration the gateway through Mosquitto (external broker mode,
// docs/architecture.md §8): B brokers configured as `pinwave broker mosquitto-config` writes them
// (dynamic-security plugin holding every device, written in one go), one gateway process that is a
// client of all of them, device i recorded on broker i mod B (what placement gives empty brokers),
// the same mqtt.js clients with their presence retained: connects/s, a one-wave rollout → all
// applied and → 95% applied (every ack committed), each against the floor of the same run, broker
// RSS per device (with the plugin's clients and roles) and the gateway's RSS.
//
//   npx tsc -p . && node dist/scripts/bench-scale.js [--configs 10000x1,100000x6] [--gateway-size 10000] [--repeat 2] [--no-external]
//
// With BENCH_PROFILE=PREFIX in the environment, each timed rollout writes a CPU profile of the
// gateway process, start to all applied, to PREFIX-<time>.cpuprofile (external and embedded alike).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, uintFlag, UsageError } from './args.ts';
import { killChildren, killChildrenOnExit, sleep, Worker } from './bench-common.ts';
import { freePort, startMosquitto, type MosquittoProcess } from './mosquitto-process.ts';
import { encodeAck, encodeState } from '../firmware-manifest/index.ts';
import { hashDeviceToken, newToken } from '../gateway/credentials.ts';
import { writeBrokerDir, type BrokerDir } from './commands/broker.ts';

const USAGE = `usage: node dist/scripts/bench-scale.js [--configs NxB,...] [--gateway-size N] [--repeat R]
  --configs NxB,...  N devices on B Mosquitto brokers, each measured with fresh brokers and clients;
                     default 10000x1,100000x6 (one broker serves at most ~19,700 devices here)
  --gateway-size N   the fleet size measured through the embedded aedes gateway (0: not at all); default 10000
  --repeat R         pushes timed per configuration, median printed; default 2
  --no-external      measure only the floors (and the embedded gateway), not the gateway through Mosquitto`;

/** Connections one client process holds at most: 20,000 open files a process, less room for node itself. */
const PER_PROCESS = 18_000;
/** Connects in flight per broker: Mosquitto's listen backlog. */
const BACKLOG = 100;
const BUNDLE_BYTES = 203;
const WATCHDOG_MS = 40 * 60_000;
const ID = (i: number) => `scale-${String(i).padStart(6, '0')}`;

const wallMs = () => performance.timeOrigin + performance.now();
const n = (x: number) => Math.round(x).toLocaleString('en-US');
const secs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const progress = (line: string) => process.stderr.write(`  ${line}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

interface Config {
  devices: number;
  brokers: number;
}

interface Options {
  configs: Config[];
  gatewaySize: number;
  repeat: number;
  external: boolean;
}

function options(argv: string[]): Options {
  const { values } = parse(argv, { configs: { type: 'string' }, 'gateway-size': { type: 'string' }, repeat: { type: 'string' }, 'no-external': { type: 'boolean' }, help: { type: 'boolean' } }, USAGE);
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const configs = (values.configs ?? '10000x1,100000x6').split(',').map((c) => {
    const m = /^(\d+)x(\d+)$/.exec(c.trim());
    if (!m) throw new UsageError(`--configs expects NxB (devices x brokers), e.g. 10000x1, got "${c}"`, USAGE);
    const config = { devices: Number(m[1]), brokers: Number(m[2]) };
    if (config.devices < 1 || config.brokers < 1 || config.brokers > 32) throw new UsageError(`--configs: ${c} needs at least 1 device and 1 to 32 brokers`, USAGE);
    if (config.devices / config.brokers > PER_PROCESS) throw new UsageError(`--configs: ${c} puts ${n(config.devices / config.brokers)} devices on one broker; a process may hold at most ~${n(PER_PROCESS)} connections here (ulimit -n): use more brokers`, USAGE);
    return config;
  });
  const gatewaySize = values['gateway-size'] === undefined ? 10_000 : uintFlag(values['gateway-size'], 'gateway-size', USAGE);
  if (gatewaySize > PER_PROCESS) throw new UsageError(`--gateway-size expects at most ${n(PER_PROCESS)} (one gateway process holds every connection), got ${gatewaySize}`, USAGE);
  const repeat = values.repeat === undefined ? 2 : uintFlag(values.repeat, 'repeat', USAGE);
  if (repeat < 1 || repeat > 10) throw new UsageError(`--repeat expects 1 to 10, got ${repeat}`, USAGE);
  return { configs, gatewaySize, repeat, external: !values['no-external'] };
}

/**
 * A Mosquitto with nothing but a listener: no auth, no persistence; the floor. Its queue per
 * client is the one `pinwave broker mosquitto-config` writes (1,000,000): the pusher's one session
 * receives every device's ack, and at Mosquitto's default 1,000 a burst of 10,000 under load
 * dropped the rest, and the push never completed.
 */
async function bareMosquitto(dir: string): Promise<MosquittoProcess> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const confPath = join(dir, `mosquitto-${port}.conf`);
    writeFileSync(confPath, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'set_tcp_nodelay true', 'max_connections -1', 'max_queued_messages 1000000', ''].join('\n'));
    try {
      return await startMosquitto({ confPath, port });
    } catch (err) {
      if (attempt >= 2 || !/Address already in use/.test(String(err))) throw err;
    }
  }
}

/** VmRSS of a process, bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

interface Floor {
  config: Config;
  processes: number;
  connectMs: number;
  pushMs: number[];
  p95Ms: number[];
  rssPerDevice: number;
  errors: string[];
}

interface ThroughGateway {
  devices: number;
  connectMs: number;
  pushMs: number[];
  p95Ms: number[];
  rssPerDevice: number;
  errors: string[];
}

interface ThroughMosquitto {
  config: Config;
  connectMs: number;
  pushMs: number[];
  p95Ms: number[];
  brokerRssPerDevice: number;
  gatewayRss: number;
  errors: string[];
}

const state = encodeState({ seq: 0, bundleId: null, firmware: '1.0.0', model: 'bench-1', keyEpoch: 0 });
const ackOf = (seq: number, bundleId: string) => encodeAck({ seq, bundleId, status: 'applied' });

/** Client processes for `count` connections, device i in process i mod the count. */
const spawnClients = (count: number) => Promise.all(Array.from({ length: Math.max(2, Math.ceil(count / PER_PROCESS)) }, () => Worker.spawn('clients')));

async function floor(config: Config, o: Options, dir: string): Promise<Floor> {
  const { devices: N, brokers: B } = config;
  const errors: string[] = [];
  progress(`${n(N)} on ${B}: start ${B} Mosquitto, connect ${n(N)} mqtt.js clients, ${o.repeat} pushes`);
  const brokers = await Promise.all(Array.from({ length: B }, () => bareMosquitto(dir)));
  try {
    const urls = brokers.map((b) => `mqtt://127.0.0.1:${b.port}`);
    const baseline = brokers.map((b) => rssOf(b.pid));
    const clients = await spawnClients(N);
    const P = clients.length;
    const ids = Array.from({ length: N }, (_, i) => ID(i));
    const onBroker = urls.map((_, b) => ids.filter((_, i) => i % B === b));
    await Promise.all(clients.map((c) => c.call('mode', { to: 'auto', ack: ackOf(1, 'a'.repeat(64)) })));
    const t0 = wallMs();
    // every process connects its share of every broker's devices, a backlog's worth in flight per broker
    await Promise.all(
      urls.map((url, b) =>
        Promise.all(
          clients.map((c, p) =>
            c.call('connect', { url, devices: onBroker[b].filter((_, k) => k % P === p).map((id) => ({ id, token: 'x' })), batch: Math.max(1, Math.floor(BACKLOG / P)), state, timeoutMs: 60_000 }, Math.max(120_000, N * 10)),
          ),
        ),
      ),
    );
    const connectMs = wallMs() - t0;
    await sleep(1000);
    const rss = brokers.map((b, i) => (rssOf(b.pid) - baseline[i]) / onBroker[i].length);
    const pusher = await Worker.spawn('pusher');
    await pusher.call('start', { urls });
    const payload = new Uint8Array(BUNDLE_BYTES).fill(0xa5);
    const pushMs: number[] = [];
    const p95Ms: number[] = [];
    for (let r = 0; r < o.repeat; r++) {
      const x = await pusher.call<{ ms: number; p95Ms: number }>('push', { ids: onBroker, bytes: payload, timeoutMs: 300_000 }, 310_000);
      pushMs.push(x.ms);
      p95Ms.push(x.p95Ms);
    }
    const publishErrors = (await Promise.all(clients.map((c) => c.call<{ publishErrors: number }>('received')))).reduce((s, x) => s + x.publishErrors, 0);
    if (publishErrors > 0) errors.push(`${publishErrors} client publish errors`);
    await pusher.call('stop');
    await pusher.close();
    await Promise.all(clients.map((c) => c.call('closeAll', {}, 60_000)));
    await Promise.all(clients.map((c) => c.close()));
    return { config, processes: P, connectMs, pushMs, p95Ms, rssPerDevice: rss.reduce((a, b) => a + b, 0) / rss.length, errors };
  } finally {
    await Promise.all(brokers.map((b) => b.kill()));
  }
}

async function throughGateway(N: number, o: Options, dir: string): Promise<ThroughGateway> {
  const errors: string[] = [];
  progress(`${n(N)} through the embedded gateway: provision, connect ${n(N)} mqtt.js clients, ${o.repeat} one-wave rollouts`);
  const gw = await Worker.spawn('gateway');
  const { port } = await gw.call<{ port: number }>('start', { dir: mkdtempSync(join(dir, 'gw-')) });
  const ids = Array.from({ length: N }, (_, i) => ID(i));
  const tokens: string[] = [];
  for (let i = 0; i < N; i += 10_000) tokens.push(...(await gw.call<{ tokens: string[] }>('provision', { ids: ids.slice(i, i + 10_000) }, 120_000)).tokens);
  await sleep(500);
  const before = (await gw.call<{ rss: number }>('memory')).rss;
  const clients = await spawnClients(N);
  const P = clients.length;
  const t0 = wallMs();
  await Promise.all(clients.map((c, p) => c.call('connect', { url: `mqtt://127.0.0.1:${port}`, devices: ids.map((id, i) => ({ id, token: tokens[i] })).filter((_, i) => i % P === p), batch: Math.max(1, Math.floor(BACKLOG / P)), state, timeoutMs: 60_000 }, Math.max(120_000, N * 10))));
  const connectMs = wallMs() - t0;
  await gw.call('waitConnected', { count: N, timeoutMs: 60_000 }, 70_000);
  await sleep(1000);
  const rssPerDevice = ((await gw.call<{ rss: number }>('memory')).rss - before) / N;
  const { pushMs, p95Ms } = await timedRollouts(gw, clients, N, o.repeat);
  const counters = await gw.call<{ dropped: Record<string, number>; broker: { publishErrors: number } }>('counters');
  const dropped = Object.values(counters.dropped).reduce((a, b) => a + b, 0);
  if (dropped + counters.broker.publishErrors > 0) errors.push(`gateway: ${dropped} messages dropped, ${counters.broker.publishErrors} publish errors`);
  await Promise.all(clients.map((c) => c.call('closeAll', {}, 60_000)));
  await Promise.all(clients.map((c) => c.close()));
  await gw.call('stop', {}, 60_000);
  await gw.close();
  return { devices: N, connectMs, pushMs, p95Ms, rssPerDevice, errors };
}

/**
 * `repeat` one-wave rollouts of a new bundle to the whole fleet, the clients acking each bundle
 * `applied` at once: from the start to 95% and to all of it counted applied, ms each.
 */
async function timedRollouts(gw: Worker, clients: Worker[], N: number, repeat: number): Promise<{ pushMs: number[]; p95Ms: number[] }> {
  const pushMs: number[] = [];
  const p95Ms: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const b = await gw.call<{ id: string; seq: number }>('bundle');
    await Promise.all(clients.map((c) => c.call('mode', { to: 'auto', ack: ackOf(b.seq, b.id) })));
    const { id } = await gw.call<{ id: string }>('rollout', { bundle: b.id, group: 'bench', waves: [{ size: '100%', timeoutSeconds: 3600 }] }, 120_000);
    if (process.env.BENCH_PROFILE) await gw.call('profileStart');
    const start = await gw.call<{ at: number }>('startRollout', { id });
    const at95 = await gw.call<{ at: number }>('waitCounted', { id, applied: Math.ceil(N * 0.95), timeoutMs: 600_000 }, 610_000);
    const end = await gw.call<{ at: number }>('waitCounted', { id, applied: N, timeoutMs: 600_000 }, 610_000);
    p95Ms.push(at95.at - start.at);
    pushMs.push(end.at - start.at);
    if (process.env.BENCH_PROFILE) await gw.call('profileStop', { file: `${process.env.BENCH_PROFILE}-${Date.now()}.cpuprofile` });
    await gw.call('waitState', { id, state: 'completed', timeoutMs: 60_000 }, 70_000);
  }
  return { pushMs, p95Ms };
}

/** A Mosquitto as `pinwave broker mosquitto-config` writes one, its plugin file holding `fleet`. */
async function managedMosquitto(dir: string, fleet: Array<{ id: string; tokenHash: string }>): Promise<{ process: MosquittoProcess; broker: BrokerDir }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const broker = await writeBrokerDir({ dir, port, fleet, force: true });
    try {
      return { process: await startMosquitto({ confPath: broker.confPath, port }), broker };
    } catch (err) {
      if (attempt >= 2 || !/Address already in use/.test(String(err))) throw err;
    }
  }
}

async function throughMosquitto(config: Config, o: Options, dir: string): Promise<ThroughMosquitto> {
  const { devices: N, brokers: B } = config;
  const errors: string[] = [];
  progress(`${n(N)} on ${B} through the gateway: plugin files written, ${B} Mosquitto, one gateway client of each, ${n(N)} mqtt.js clients, ${o.repeat} one-wave rollouts`);
  const ids = Array.from({ length: N }, (_, i) => ID(i));
  const tokens = ids.map(() => newToken());
  const hashes = tokens.map((t) => hashDeviceToken(t));
  const onBroker = Array.from({ length: B }, (_, b) => ids.flatMap((id, i) => (i % B === b ? [i] : [])));
  const brokers = await Promise.all(onBroker.map((is, b) => managedMosquitto(join(dir, `managed-${b}`), is.map((i) => ({ id: ids[i], tokenHash: hashes[i] })))));
  const gw = await Worker.spawn('gateway');
  try {
    const urls = brokers.map((m) => `mqtt://127.0.0.1:${m.process.port}`);
    await gw.call('start', { dir: mkdtempSync(join(dir, 'gw-ext-')), broker: brokers.map((m, b) => ({ url: urls[b], username: m.broker.username, password: m.broker.password })) }, 120_000);
    for (let i = 0; i < N; i += 10_000) {
      await gw.call('seed', { devices: ids.slice(i, i + 10_000).map((id, k) => ({ id, tokenHash: hashes[i + k], broker: urls[(i + k) % B] })) }, 120_000);
    }
    const clients = await spawnClients(N);
    const P = clients.length;
    const t0 = wallMs();
    await Promise.all(
      urls.map((url, b) =>
        Promise.all(
          clients.map((c, p) =>
            c.call('connect', { url, devices: onBroker[b].filter((_, k) => k % P === p).map((i) => ({ id: ids[i], token: tokens[i] })), batch: Math.max(1, Math.floor(BACKLOG / P)), state, timeoutMs: 60_000, presence: true }, Math.max(120_000, N * 10)),
          ),
        ),
      ),
    );
    const connectMs = wallMs() - t0;
    await gw.call('waitConnected', { count: N, timeoutMs: 120_000 }, 130_000);
    await sleep(1000);
    // Whole RSS over the devices: the plugin's parse of its file at start leaves freed heap that the
    // connections then reuse, so RSS grown since start (0.03 KiB a device at 10,000) says nothing.
    const rss = brokers.map((m, b) => rssOf(m.process.pid) / onBroker[b].length);
    const gatewayRss = (await gw.call<{ rss: number }>('memory')).rss;
    const { pushMs, p95Ms } = await timedRollouts(gw, clients, N, o.repeat);
    const counters = await gw.call<{ dropped: Record<string, number>; broker: { publishErrors: number } }>('counters');
    const dropped = Object.values(counters.dropped).reduce((a, b) => a + b, 0);
    if (dropped + counters.broker.publishErrors > 0) errors.push(`gateway through Mosquitto: ${dropped} messages dropped, ${counters.broker.publishErrors} publish errors`);
    await Promise.all(clients.map((c) => c.call('closeAll', {}, 60_000)));
    await Promise.all(clients.map((c) => c.close()));
    await gw.call('stop', {}, 60_000);
    return { config, connectMs, pushMs, p95Ms, brokerRssPerDevice: rss.reduce((a, b) => a + b, 0) / rss.length, gatewayRss, errors };
  } finally {
    await gw.close();
    await Promise.all(brokers.map((m) => m.process.kill()));
  }
}

function print(o: Options, floors: Floor[], gw: ThroughGateway | null, external: ThroughMosquitto[], loadAtStart: string, loads: string[]): void {
  const rows: Array<[string, string]> = [];
  const floorAt = (size: number) => floors.find((f) => f.config.devices === size);
  for (const f of floors) {
    const { devices: N, brokers: B } = f.config;
    rows.push(
      [`${n(N)} devices on ${B} Mosquitto (floor: mqtt.js clients in ${f.processes} processes)`, ''],
      ['  connects/s', `${n((N / f.connectMs) * 1000)}/s (${secs(f.connectMs)})`],
      ['  push → all acked (live QoS 1 push and reply)', `${secs(median(f.pushMs))} [${f.pushMs.map(secs).join(', ')}]`],
      ['  push → 95% acked', secs(median(f.p95Ms))],
      ['  broker RSS per device', `${(f.rssPerDevice / 1024).toFixed(2)} KiB`],
    );
    const x = external.find((e) => e.config.devices === N && e.config.brokers === B);
    if (!x) {
      rows.push(['  gateway through Mosquitto', o.external ? 'not measured' : 'not measured (--no-external)']);
      continue;
    }
    const ratio = (ms: number[], floorMs: number[]) => `${(median(ms) / median(floorMs)).toFixed(2)}x the floor`;
    rows.push(
      [`${n(N)} devices on ${B} Mosquitto through the gateway (one process, a client of each broker; plugin holds every device)`, ''],
      ['  connects/s (with retained presence)', `${n((N / x.connectMs) * 1000)}/s (${secs(x.connectMs)}) = ${(x.connectMs / f.connectMs).toFixed(2)}x the floor's time`],
      ['  rollout → all applied (receive, commit, count)', `${secs(median(x.pushMs))} [${x.pushMs.map(secs).join(', ')}] = ${ratio(x.pushMs, f.pushMs)}`],
      ['  rollout → 95% of the fleet applied', `${secs(median(x.p95Ms))} [${x.p95Ms.map(secs).join(', ')}] = ${ratio(x.p95Ms, f.p95Ms)} (95% acked)`],
      ['  broker RSS per device (its whole RSS over its devices: connections, sessions, plugin clients and roles)', `${(x.brokerRssPerDevice / 1024).toFixed(2)} KiB`],
      ['  gateway RSS (whole process, fleet connected, store in memory)', `${(x.gatewayRss / 2 ** 20).toFixed(0)} MiB = ${(x.gatewayRss / N / 1024).toFixed(2)} KiB per device`],
    );
  }
  if (gw) {
    const f = floorAt(gw.devices);
    const ratio = f ? ` = ${(median(gw.pushMs) / median(f.pushMs)).toFixed(2)}x the floor on one Mosquitto` : '';
    rows.push(
      [`${n(gw.devices)} devices through the embedded aedes gateway (mqtt.js clients)`, ''],
      ['  connects/s', `${n((gw.devices / gw.connectMs) * 1000)}/s (${secs(gw.connectMs)})`],
      ['  rollout → all applied (receive, commit, count)', `${secs(median(gw.pushMs))} [${gw.pushMs.map(secs).join(', ')}]${ratio}`],
      ['  rollout → 95% applied', secs(median(gw.p95Ms))],
      ['  gateway RSS per device', `${(gw.rssPerDevice / 1024).toFixed(2)} KiB`],
    );
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`pinwave bench-scale: node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load at start ${loadAtStart}, at end ${load()}`);
  console.log(`load before each measurement: ${loads.join('; ')}`);
  console.log(`payload ${BUNDLE_BYTES} bytes, ${o.repeat} pushes per configuration (median [each]); brokers and clients in processes of their own; at most ${BACKLOG} connects in flight per broker`);
  for (const [a, b] of rows) console.log(`${a.padEnd(w)}  ${b}`.trimEnd());
  for (const f of floors) for (const e of f.errors) console.log(`ERROR at ${n(f.config.devices)} on ${f.config.brokers}: ${e}`);
  for (const e of gw?.errors ?? []) console.log(`ERROR through the gateway: ${e}`);
  for (const x of external) for (const e of x.errors) console.log(`ERROR at ${n(x.config.devices)} on ${x.config.brokers} through the gateway: ${e}`);
}

let scratch: string | null = null;
killChildrenOnExit();
process.on('exit', () => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

try {
  const o = options(process.argv.slice(2));
  const loadAtStart = load();
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench-scale: gave up after ${WATCHDOG_MS / 60_000} minutes\n`);
    killChildren();
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  scratch = mkdtempSync(join(tmpdir(), 'pinwave-bench-scale-'));
  const floors: Floor[] = [];
  const external: ThroughMosquitto[] = [];
  const loads: string[] = [];
  const at = (what: string) => loads.push(`${what} ${load()}`);
  // each configuration's floor and the gateway through Mosquitto one after the other, so their ratio is of one stretch of load
  for (const c of o.configs) {
    at(`${c.devices}x${c.brokers} floor`);
    floors.push(await floor(c, o, scratch));
    if (!o.external) continue;
    at(`${c.devices}x${c.brokers} gateway`);
    external.push(await throughMosquitto(c, o, scratch));
  }
  if (o.gatewaySize > 0) at(`embedded ${o.gatewaySize}`);
  const gw = o.gatewaySize > 0 ? await throughGateway(o.gatewaySize, o, scratch) : null;
  print(o, floors, gw, external, loadAtStart, loads);
  killChildren();
  process.exit(floors.some((f) => f.errors.length > 0) || (gw?.errors.length ?? 0) > 0 || external.some((x) => x.errors.length > 0) ? 1 : 0);
} catch (err) {
  killChildren();
  if (err instanceof UsageError) {
    process.stderr.write(`bench-scale: ${err.message}\n${err.usage ? `${err.usage}\n` : ''}`);
    process.exit(2);
  }
  process.stderr.write(`bench-scale: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
