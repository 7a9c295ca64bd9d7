// Benchmark of the device simulator against the real gateway, printed as one table
// with the goal beside each figure, for each fleet size N:
// - connects: N device-sim devices (a Fleet, sharded over 2 client processes) connecting to the
//   gateway, against N bare mqtt.js clients connecting to a bare aedes broker from the same 2
//   processes, same ramp (goal: the gateway's rate within 1.2x of the bare one);
// - one bundle to N devices: from startRollout (one 100% wave, target the group) to the rollout
//   counting N applied, each device receiving, verifying (noble Ed25519), applying (the
//   firmware-manifest code), persisting and acking; against the floor of the same run, bare aedes
//   pushing a live QoS 1 message of the same size to N bare clients that reply with an ack-sized
//   message and verify nothing (goal at 10,000: within 1.5x of the floor);
// - the gateway's RSS with N connected devices against the bare broker's with N bare clients
//   (goal within 1.3x).
// Goals are judged at 10,000 devices, the size they are stated for, when the run has it (else at
// its largest size). The default run goes on to 19,000: about the most one process may hold here
// (20,000 open files a process), and the size at which one wave used to kill the broker (aedes'
// emitter drained its queue by recursion; see gateway/broker.ts).
//
// Then the revert phase (scripts/bench-revert.ts; --revert N, default 1,000 devices): a bad bundle
// to N health-checked devices on the real gateway, from its sending to each `reverted` ack counted,
// median and p99, beside TLS handshakes from the same client processes at the same concurrency
// against the same endpoint in the same run (goal: within 100 ms of them), with where the time goes
// (delivery, the health check's handshake, the device's window, the handshake rate, the same wave
// with its checks answered without TLS), and from the first revert to the hold (goal <= 1 s).
//
// Every broker runs in a process of its own (scripts/bench-worker.ts, roles gateway and bare), so
// its RSS is its own; the devices and the bare clients share 2 other processes (role sim). Each side
// is warmed first (500 throwaway devices connect, take one push and go), so neither is timed cold.
// Verification is shared across the devices of a process by default (one Ed25519
// verify per bundle), per device with --verify-each. Wall-clock figures on a shared machine move from
// run to run: compare figures of one run, and read the min–max beside each median.
//
//   npx tsc -p . && node dist/scripts/bench-sim.js [--sizes 1000,10000,19000] [--quick] [--verify-each] [--repeat 3] [--profile DIR] [--revert N] [--revert-only]
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, uintFlag, UsageError } from './args.ts';
import { checkLimits, killChildren, killChildrenOnExit, sleep, Worker } from './bench-common.ts';
import { encodeAck, encodeState, formatPin, type FirmwareManifest } from '../firmware-manifest/index.ts';
import { HANDSHAKE_CONCURRENCY, measureRevert, quantile, type RevertFigures } from './bench-revert.ts';

/** Client processes the devices (and the bare clients) are split over, by device index modulo. */
const CLIENT_PROCESSES = 2;
/** Connects in flight at once in each client process: a ramp, not a SYN flood. */
const CONNECT_PER_PROCESS = 250;
/** Throwaway devices that warm each side up before anything is timed. */
const WARM = 500;
/** Both kinds of client keep their links alive alike. */
const KEEPALIVE_SECONDS = 120;
/** The gateway provisions at most this many devices per call. */
const PROVISION_CHUNK = 10_000;
const MAX_SIZE = 100_000;
/** The size the goals are stated for. */
const GOAL_SIZE = 10_000;
const DEFAULT_SIZES = '1000,10000,19000';
const WATCHDOG_MS = 20 * 60_000;
const GROUP = 'bench';
const MODEL = 'bench-1';

const USAGE = `usage: node dist/scripts/bench-sim.js [--sizes N,N,...] [--quick] [--verify-each] [--repeat R] [--profile DIR] [--revert N] [--revert-only]
  --sizes N,...  fleet sizes, each measured with a fresh gateway and bare broker; default 1000,10000,19000
                 (a broker process holds one descriptor per device: at most ulimit -n minus 256)
  --quick        1,000 devices only, for a fast check
  --verify-each  every device verifies every bundle's signature itself (default: one verification per
                 bundle per client process, shared, as device-sim does unless told otherwise)
  --repeat R     rollouts (and bare pushes) timed per size, median and min–max printed; default 3
  --profile DIR  CPU-profile every process during the timed connects (their figures then carry the
                 profiler's cost, on both sides) and during one more, untimed, push on each side; written
                 to DIR as <size>-<gateway|bare>-<connect|push>-<process>.cpuprofile (Chrome DevTools)
  --revert N     health-checked devices the revert phase runs (a bad bundle to all, timed to their reverts
                 and the hold); default 1000, 0 for none
  --revert-only  the revert phase alone`;

const wallMs = () => performance.timeOrigin + performance.now();
const n = (x: number) => Math.round(x).toLocaleString('en-US');
const pin = (label: string) => formatPin(new Uint8Array(createHash('sha256').update(label).digest()));

interface Options {
  sizes: number[];
  revert: number;
  verifyEach: boolean;
  repeat: number;
  profile: string | null;
}

function options(argv: string[]): Options {
  const { values } = parse(
    argv,
    { sizes: { type: 'string' }, revert: { type: 'string' }, 'revert-only': { type: 'boolean' }, quick: { type: 'boolean' }, 'verify-each': { type: 'boolean' }, repeat: { type: 'string' }, profile: { type: 'string' }, help: { type: 'boolean' } },
    USAGE,
  );
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.quick && values.sizes !== undefined) throw new UsageError('--quick and --sizes exclude each other', USAGE);
  const sizes = values.quick ? [1000] : (values.sizes ?? DEFAULT_SIZES).split(',').map((s) => uintFlag(s.trim(), 'sizes', USAGE));
  for (const s of sizes) if (s < 1 || s > MAX_SIZE) throw new UsageError(`--sizes expects sizes from 1 to ${MAX_SIZE}, got ${s}`, USAGE);
  const repeat = values.repeat === undefined ? 3 : uintFlag(values.repeat, 'repeat', USAGE);
  if (repeat < 1 || repeat > 20) throw new UsageError(`--repeat expects 1 to 20, got ${repeat}`, USAGE);
  const revert = values.revert === undefined ? 1000 : uintFlag(values.revert, 'revert', USAGE);
  if (revert > 20_000) throw new UsageError(`--revert expects at most 20000 devices, got ${revert}`, USAGE);
  if (values['revert-only'] && (values.sizes !== undefined || values.quick)) throw new UsageError('--revert-only runs no fleet sizes: leave out --sizes and --quick', USAGE);
  if (values['revert-only'] && revert === 0) throw new UsageError('--revert-only needs --revert above 0', USAGE);
  return { revert, sizes: values['revert-only'] ? [] : [...new Set(sizes)].sort((a, b) => a - b), verifyEach: values['verify-each'] ?? false, repeat, profile: values.profile === undefined ? null : resolve(values.profile) };
}

// ------------------------------------------------------------------------------------- the run

interface Device {
  id: string;
  token: string;
}

interface Bundle {
  id: string;
  seq: number;
  bytes: Uint8Array;
}

/** CPU ms used by the broker's process and by the client processes together over one phase. */
interface Cpu {
  broker: number;
  clients: number;
}

interface SizeResult {
  size: number;
  payloadBytes: number;
  bareConnectMs: number;
  gwConnectMs: number;
  bareRss: number;
  gwRss: number;
  bareMs: number[];
  gwMs: number[];
  /** CPU of the N connects, and of one push (mean over the repeats) */
  cpu: { bareConnect: Cpu; gwConnect: Cpu; barePush: Cpu; gwPush: Cpu };
  /** Ed25519 verifications the fleet ran, per rollout */
  verifications: number;
  errors: string[];
}

const progress = (line: string) => process.stderr.write(`  ${line}\n`);

/** Device i runs in client process i mod CLIENT_PROCESSES, as Fleet's `shard` splits a fleet. */
const shardOf = <T>(list: T[], index: number) => list.filter((_, i) => i % CLIENT_PROCESSES === index);

async function measure(N: number, o: Options, sims: Worker[], dir: string): Promise<SizeResult> {
  const errors: string[] = [];
  const all = <T = any>(cmd: string, args: (i: number) => object, timeoutMs?: number) => Promise.all(sims.map((w, i) => w.call<T>(cmd, args(i), timeoutMs)));
  const bigMs = Math.max(60_000, N * 20);
  const cpuNow = async (broker: Worker): Promise<Cpu> => ({
    broker: (await broker.call<{ ms: number }>('cpu')).ms,
    clients: (await all<{ ms: number }>('cpu', () => ({}))).reduce((s, x) => s + x.ms, 0),
  });
  /** Runs `what` (untimed) with the broker and every client process profiled, each profile to DIR/<name>-<process>.cpuprofile. */
  const profiled = async <T>(broker: Worker, name: string, what: () => Promise<T>): Promise<T> => {
    const everyone = [broker, ...sims];
    await Promise.all(everyone.map((w) => w.call('profileStart')));
    const out = await what();
    await Promise.all(everyone.map((w, i) => w.call('profileStop', { file: join(o.profile!, `${name}-${i === 0 ? broker.role : `sim${i - 1}`}.cpuprofile`) })));
    return out;
  };
  const cpuSince = async (broker: Worker, from: Cpu, per = 1): Promise<Cpu> => {
    const to = await cpuNow(broker);
    return { broker: (to.broker - from.broker) / per, clients: (to.clients - from.clients) / per };
  };
  const ids = Array.from({ length: N }, (_, i) => `sim-${String(i).padStart(6, '0')}`);
  const warmIds = Array.from({ length: WARM }, (_, i) => `warm-${String(i).padStart(4, '0')}`);
  const state = encodeState({ seq: 0, bundleId: null, firmware: '1.0.0', model: MODEL, keyEpoch: 0 });

  progress(`${n(N)}: gateway: start, provision ${n(N)} + ${WARM} warm-up devices`);
  const gw = await Worker.spawn('gateway');
  const { port: gwPort, publicPem } = await gw.call<{ port: number; publicPem: string }>('start', { dir: mkdtempSync(join(dir, `gw-${N}-`)) });
  const provision = async (list: string[], group: string): Promise<Device[]> => {
    const out: Device[] = [];
    for (let i = 0; i < list.length; i += PROVISION_CHUNK) {
      const chunk = list.slice(i, i + PROVISION_CHUNK);
      const { tokens } = await gw.call<{ tokens: string[] }>('provision', { ids: chunk, group }, bigMs);
      chunk.forEach((id, j) => out.push({ id, token: tokens[j] }));
    }
    return out;
  };
  const devices = await provision(ids, GROUP);
  const warmDevices = await provision(warmIds, 'warm');
  // The payload the floor pushes: a real bundle of this run, the size every rollout's bundle has.
  const probe = await gw.call<Bundle>('bundle', { group: GROUP });
  const ack = (b: Bundle) => encodeAck({ seq: b.seq, bundleId: b.id, status: 'applied' });
  const manifest: FirmwareManifest = { model: MODEL, firmware: '1.0.0', trustedKeys: [publicPem], pins: [{ host: 'api.example.com', pins: [pin('firmware'), pin('backup')] }] };

  // ---- the floor: bare aedes, bare mqtt.js clients that reply and verify nothing
  progress(`${n(N)}: bare aedes: warm up, connect ${n(N)} clients, ${o.repeat} live QoS 1 pushes`);
  const bare = await Worker.spawn('bare');
  const { port: barePort } = await bare.call<{ port: number }>('start');
  const bareUrl = `mqtt://127.0.0.1:${barePort}`;
  const bareConnect = (list: Device[]) => all('connect', (i) => ({ url: bareUrl, devices: shardOf(list, i), batch: CONNECT_PER_PROCESS, state, timeoutMs: 30_000 }), bigMs);
  await all('mode', () => ({ to: 'auto', ack: ack(probe) }));
  await bareConnect(warmDevices.map((d) => ({ ...d, token: 'x' })));
  await bare.call('push', { ids: warmIds, bytes: probe.bytes, timeoutMs: 30_000 }, 40_000);
  await all('closeAll', () => ({}));
  let c0 = await cpuNow(bare);
  let t0 = wallMs();
  await (o.profile ? profiled(bare, `${N}-bare-connect`, () => bareConnect(devices)) : bareConnect(devices));
  const bareConnectMs = wallMs() - t0;
  await bare.call('waitConnected', { count: N, timeoutMs: 30_000 });
  const bareConnectCpu = await cpuSince(bare, c0);
  await sleep(500);
  const bareRss = (await bare.call<{ rss: number }>('memory')).rss;
  const bareMs: number[] = [];
  c0 = await cpuNow(bare);
  for (let r = 0; r < o.repeat; r++) bareMs.push((await bare.call<{ ms: number }>('push', { ids, bytes: probe.bytes, timeoutMs: 120_000 }, 130_000)).ms);
  const barePushCpu = await cpuSince(bare, c0, o.repeat);
  if (o.profile) {
    progress(`${n(N)}: bare aedes: one more push, profiled`);
    await profiled(bare, `${N}-bare-push`, () => bare.call('push', { ids, bytes: probe.bytes, timeoutMs: 120_000 }, 130_000));
  }
  const bareErrors = (await all<{ publishErrors: number }>('received', () => ({}))).reduce((s, x) => s + x.publishErrors, 0);
  if (bareErrors > 0) errors.push(`${bareErrors} bare client publish errors`);
  await all('mode', () => ({ to: 'hold' }));
  await all('closeAll', () => ({}));
  await bare.call('stop');
  await bare.close();

  // ---- the gateway, with device-sim devices
  const fleetStart = (name: string, list: Device[], group: string) =>
    all<{ ms: number; devices: number; connected: number; failed: number }>(
      'fleetStart',
      (i) => ({ name, url: `mqtt://127.0.0.1:${gwPort}`, manifest, group, devices: list, shard: { index: i, count: CLIENT_PROCESSES }, verifyEach: o.verifyEach, perTick: CONNECT_PER_PROCESS, keepaliveSeconds: KEEPALIVE_SECONDS }),
      bigMs,
    );
  /** Creates a one-wave rollout to `group`, then times startRollout → `count` applied, and waits for it to complete. */
  const rollout = async (group: string, count: number) => {
    const b = await gw.call<Bundle>('bundle', { group });
    if (group === GROUP && b.bytes.length !== probe.bytes.length) errors.push(`bundle seq ${b.seq} is ${b.bytes.length} bytes, the floor pushed ${probe.bytes.length}`);
    const r = await gw.call<{ id: string }>('rollout', { bundle: b.id, group, waves: [{ size: '100%', timeoutSeconds: 3600 }] }, bigMs);
    const c = await cpuNow(gw);
    const start = await gw.call<{ at: number }>('startRollout', { id: r.id });
    const end = await gw.call<{ at: number }>('waitCounted', { id: r.id, applied: count, timeoutMs: 120_000 + (o.verifyEach ? count * 10 : 0) }, 130_000 + (o.verifyEach ? count * 10 : 0));
    const cpu = await cpuSince(gw, c);
    await gw.call('waitState', { id: r.id, state: 'completed', timeoutMs: 10_000 }, 15_000);
    return { ms: end.at - start.at, cpu, seq: b.seq };
  };

  progress(`${n(N)}: gateway: warm up (${WARM} devices, one rollout), connect ${n(N)} devices, ${o.repeat} rollouts`);
  await fleetStart('warm', warmDevices, 'warm');
  await gw.call('waitConnected', { count: WARM, timeoutMs: 30_000 });
  await rollout('warm', WARM);
  await all('fleetStop', () => ({ name: 'warm' }), 30_000);
  await gw.call('waitConnected', { count: 0, atMost: true, timeoutMs: 30_000 });

  c0 = await cpuNow(gw);
  t0 = wallMs();
  const started = await (o.profile ? profiled(gw, `${N}-gateway-connect`, () => fleetStart('main', devices, GROUP)) : fleetStart('main', devices, GROUP));
  const gwConnectMs = wallMs() - t0;
  const failed = started.reduce((s, x) => s + x.failed, 0);
  if (failed > 0) errors.push(`${failed} device connects failed on the first try (retried)`);
  await gw.call('waitConnected', { count: N, timeoutMs: 30_000 });
  const gwConnectCpu = await cpuSince(gw, c0);
  await sleep(500);
  const gwRss = (await gw.call<{ rss: number }>('memory')).rss;
  const gwMs: number[] = [];
  const gwPushCpu: Cpu = { broker: 0, clients: 0 };
  let lastSeq = 0;
  for (let r = 0; r < o.repeat; r++) {
    const x = await rollout(GROUP, N);
    gwMs.push(x.ms);
    gwPushCpu.broker += x.cpu.broker / o.repeat;
    gwPushCpu.clients += x.cpu.clients / o.repeat;
    lastSeq = x.seq;
  }
  const verifications = (await all<{ verifications: { performed: number } }>('fleetSummary', () => ({ name: 'main' }))).reduce((s, x) => s + x.verifications.performed, 0) / o.repeat;
  if (o.profile) {
    progress(`${n(N)}: gateway: one more rollout, profiled`);
    lastSeq = (await profiled(gw, `${N}-gateway-push`, () => rollout(GROUP, N))).seq;
  }
  // What the devices say they did, beside what the gateway counted.
  const sums = await all<{ acked: number; seqs: Record<string, number>; rejected: Record<string, number> }>('fleetSummary', () => ({ name: 'main' }));
  const onLast = sums.reduce((s, x) => s + (x.seqs[String(lastSeq)] ?? 0), 0);
  const acked = sums.reduce((s, x) => s + x.acked, 0);
  if (onLast !== N || acked !== N) errors.push(`devices report ${n(onLast)} on seq ${lastSeq} and ${n(acked)} acked, of ${n(N)}`);
  const rejected = sums.reduce((s, x) => s + Object.values(x.rejected).reduce((a, b) => a + b, 0), 0);
  if (rejected > 0) errors.push(`${rejected} devices rejected a bundle`);
  const counters = await gw.call<{ dropped: Record<string, number>; broker: { publishErrors: number } }>('counters');
  const dropped = Object.values(counters.dropped).reduce((a, b) => a + b, 0);
  if (dropped + counters.broker.publishErrors > 0) errors.push(`gateway: ${dropped} messages dropped, ${counters.broker.publishErrors} publish errors`);
  await all('fleetStop', () => ({ name: 'main' }), 60_000);
  await gw.call('stop', {}, 60_000);
  await gw.close();
  return {
    size: N,
    payloadBytes: probe.bytes.length,
    bareConnectMs,
    gwConnectMs,
    bareRss,
    gwRss,
    bareMs,
    gwMs,
    cpu: { bareConnect: bareConnectCpu, gwConnect: gwConnectCpu, barePush: barePushCpu, gwPush: gwPushCpu },
    verifications,
    errors,
  };
}

async function run(o: Options): Promise<SizeResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-sim-'));
  scratch = dir;
  try {
    const sims = await Promise.all(Array.from({ length: CLIENT_PROCESSES }, () => Worker.spawn('sim')));
    const results: SizeResult[] = [];
    for (const N of o.sizes) results.push(await measure(N, o, sims, dir));
    await Promise.all(sims.map((w) => w.close()));
    return results;
  } finally {
    killChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------- the table

interface Row {
  figure: string;
  value: string;
  goal?: string;
  met?: boolean;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const secs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const spread = (xs: number[]) => (xs.length === 1 ? secs(xs[0]) : `${secs(median(xs))} (${secs(Math.min(...xs))}–${secs(Math.max(...xs))})`);
const cpuText = (c: Cpu) => `${secs(c.broker)} + ${secs(c.clients)}`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

function rows(o: Options, results: SizeResult[]): Row[] {
  const judgedSize = results.some((r) => r.size === GOAL_SIZE) ? GOAL_SIZE : results.at(-1)!.size;
  const out: Row[] = [];
  for (const r of results) {
    const judged = r.size === judgedSize;
    const goal = (text: string, met: boolean): Pick<Row, 'goal' | 'met'> => (judged ? { goal: text, met } : {});
    const connectRatio = r.gwConnectMs / r.bareConnectMs;
    const pushRatio = median(r.gwMs) / median(r.bareMs);
    const rssRatio = r.gwRss / r.bareRss;
    out.push(
      { figure: `${n(r.size)} devices`, value: '' },
      { figure: '  connects/s, gateway ← device-sim Fleet', value: `${n((r.size / r.gwConnectMs) * 1000)}/s in ${secs(r.gwConnectMs)}` },
      { figure: '  connects/s, bare aedes ← mqtt.js', value: `${n((r.size / r.bareConnectMs) * 1000)}/s in ${secs(r.bareConnectMs)}` },
      { figure: '    bare rate / gateway rate', value: `${connectRatio.toFixed(2)}x`, ...goal('<= 1.2x', connectRatio <= 1.2) },
      { figure: '    CPU, broker + clients: gateway', value: cpuText(r.cpu.gwConnect) },
      { figure: '    CPU, broker + clients: bare', value: cpuText(r.cpu.bareConnect) },
      { figure: '  bundle → verified, applied, acked: gateway', value: spread(r.gwMs) },
      { figure: '  live QoS 1 push → reply: bare aedes (floor)', value: spread(r.bareMs) },
      {
        figure: '    gateway / floor (medians)',
        value: `${pushRatio.toFixed(2)}x`,
        // The goal is for shared verification: per device, the fleet's Ed25519 work alone exceeds it by design.
        ...(judged ? (o.verifyEach ? { goal: 'none per device' } : { goal: '<= 1.5x', met: pushRatio <= 1.5 }) : {}),
      },
      { figure: '    CPU per push, broker + clients: gateway', value: cpuText(r.cpu.gwPush) },
      { figure: '    CPU per push, broker + clients: bare', value: cpuText(r.cpu.barePush) },
      { figure: '    Ed25519 verifications per rollout', value: n(r.verifications) },
      { figure: `  RSS, ${n(r.size)} connected: gateway`, value: mib(r.gwRss) },
      { figure: `  RSS, ${n(r.size)} connected: bare aedes`, value: mib(r.bareRss) },
      { figure: '    gateway / bare', value: `${rssRatio.toFixed(2)}x`, ...goal('<= 1.3x', rssRatio <= 1.3) },
    );
  }
  return out;
}

function revertRows(f: RevertFigures): Row[] {
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const q = (xs: number[], p: number) => (xs.length > 0 ? ms(quantile(xs, p)) : '-');
  const [rm, r99, hm, h99] = [quantile(f.revert, 0.5), quantile(f.revert, 0.99), quantile(f.handshakes, 0.5), quantile(f.handshakes, 0.99)];
  const perProcess = `${n(f.devices / f.processes)} at once in each of ${f.processes} processes, ${HANDSHAKE_CONCURRENCY} in flight in each`;
  return [
    { figure: `revert: ${n(f.devices)} health-checked devices, a bundle missing the served key (load ${f.load[0].toFixed(2)} → ${f.load[1].toFixed(2)})`, value: '' },
    { figure: '  gateway sends → reverted ack counted: median', value: ms(rm) },
    { figure: '  gateway sends → reverted ack counted: p99', value: ms(r99) },
    { figure: `  TLS handshake, ${perProcess}: median`, value: ms(hm) },
    { figure: `  TLS handshake, ${perProcess}: p99`, value: ms(h99) },
    { figure: '    revert − handshake, medians', value: ms(rm - hm), goal: '<= 100 ms', met: rm - hm <= 100 },
    { figure: '    revert − handshake, p99s', value: ms(r99 - h99), goal: '<= 100 ms', met: r99 - h99 <= 100 },
    { figure: "  where it goes: gateway sends → device's window opened, first / median / p99", value: `${q(f.delivery, 0)} / ${q(f.delivery, 0.5)} / ${q(f.delivery, 0.99)}` },
    { figure: "  where it goes: the health check's handshake, ask → result, median / p99", value: `${q(f.checkHandshakes, 0.5)} / ${q(f.checkHandshakes, 0.99)}` },
    { figure: "  where it goes: the device's window, opened → reverted ack PUBACKed, median / p99", value: `${q(f.window, 0.5)} / ${q(f.window, 0.99)}` },
    { figure: "  where it goes: the device's window, opened → reverted ack counted, median / p99", value: `${q(f.windowToCounted, 0.5)} / ${q(f.windowToCounted, 0.99)}` },
    { figure: '  where it goes: TLS handshakes a second in each client process, floor / the wave', value: `${f.handshakeRate.floor.toFixed(0)} / ${f.handshakeRate.wave.toFixed(0)}` },
    { figure: '  where it goes: the same wave, each check answered at once (no TLS): sends → reverted ack counted, median / p99', value: `${q(f.revertInstant, 0.5)} / ${q(f.revertInstant, 0.99)}` },
    { figure: '  CPU, gateway + devices + endpoint: the wave (send → every revert counted)', value: `${secs(f.cpu.wave.gateway)} + ${secs(f.cpu.wave.devices)} + ${secs(f.cpu.wave.endpoint)}` },
    { figure: '  CPU, gateway + devices + endpoint: one floor run', value: `${secs(f.cpu.floor.gateway)} + ${secs(f.cpu.floor.devices)} + ${secs(f.cpu.floor.endpoint)}` },
    { figure: '  CPU, gateway + devices + endpoint: the wave with checks answered at once', value: `${secs(f.cpu.instant.gateway)} + ${secs(f.cpu.instant.devices)} + ${secs(f.cpu.instant.endpoint)}` },
    { figure: `  warm-up: a good bundle → all ${n(f.devices)} counted verified`, value: secs(f.verifiedMs) },
    { figure: '  first revert counted → hold', value: Number.isFinite(f.firstRevertToHold) ? ms(f.firstRevertToHold) : 'no hold', goal: '<= 1 s', met: f.firstRevertToHold <= 1000 },
    { figure: '  devices locked out afterwards (real handshakes)', value: String(f.lockedOutAfter), goal: '0', met: f.lockedOutAfter === 0 },
  ];
}

function print(o: Options, results: SizeResult[], revert: RevertFigures | null): void {
  const rs = [...(results.length > 0 ? rows(o, results) : []), ...(revert ? revertRows(revert) : [])];
  const w1 = Math.max(...rs.map((r) => r.figure.length));
  const w2 = Math.max(...rs.map((r) => r.value.length));
  const w3 = Math.max(4, ...rs.map((r) => (r.goal ?? '').length));
  const line = (a: string, b: string, c: string, d: string) => `${a.padEnd(w1)}  ${b.padStart(w2)}  ${c.padEnd(w3)}  ${d}`.trimEnd();
  console.log(`pinwave bench-sim: node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load ${loadavg()[0].toFixed(2)}`);
  if (results.length > 0) console.log(
    `verification: ${o.verifyEach ? 'per device (--verify-each): every device runs Ed25519 itself' : 'shared: one Ed25519 verify per bundle per client process, every other check per device'}; ` +
      `bundle ${results[0].payloadBytes} bytes; brokers in their own processes, devices in ${CLIENT_PROCESSES}; ${o.repeat === 1 ? '1 rollout per size' : `${o.repeat} rollouts per size: median (min–max)`}`,
  );
  const judgedAt = results.some((r) => r.size === GOAL_SIZE) ? GOAL_SIZE : results.at(-1)?.size;
  console.log(`figures are wall-clock on a shared machine: expect noise, and compare figures of one run${judgedAt ? `; goals judged at ${n(judgedAt)} devices` : ''}`);
  if (o.profile) console.log(`--profile: the connects were timed under the CPU profiler (both sides); profiles in ${o.profile}`);
  console.log(line('figure', 'measured', 'goal', ''));
  for (const r of rs) console.log(line(r.figure, r.value, r.goal ?? '', r.met === undefined ? '' : r.met ? 'ok' : 'MISSED'));
  for (const r of results) for (const e of r.errors) console.log(`ERROR at ${n(r.size)} devices: ${e}`);
  for (const e of revert?.errors ?? []) console.log(`ERROR in the revert phase: ${e}`);
  console.log(`load average after the run: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

/** The run's temp dir (the gateways' stores), removed however the process ends. */
let scratch: string | null = null;
killChildrenOnExit();
process.on('exit', () => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

try {
  const o = options(process.argv.slice(2));
  checkLimits(Math.max(o.sizes.at(-1) ?? 0, o.revert), '--sizes', USAGE);
  if (o.profile) mkdirSync(o.profile, { recursive: true });
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench-sim: gave up after ${WATCHDOG_MS / 60_000} minutes\n`);
    killChildren();
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  const results = o.sizes.length > 0 ? await run(o) : [];
  const revert = o.revert > 0 ? await measureRevert(o.revert, progress, { profileDir: o.profile }) : null;
  print(o, results, revert);
  if (o.profile) process.stderr.write(`bench-sim: CPU profiles of the child processes in ${o.profile}\n`);
  process.exit(results.some((r) => r.errors.length > 0) || (revert?.errors.length ?? 0) > 0 ? 1 : 0);
} catch (err) {
  killChildren();
  if (err instanceof UsageError) {
    process.stderr.write(`bench-sim: ${err.message}\n${err.usage ? `${err.usage}\n` : ''}`);
    process.exit(2);
  }
  process.stderr.write(`bench-sim: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
