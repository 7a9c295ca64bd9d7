// Benchmark of the gateway (docs/architecture.md §5–§7), printed as one table
// with the goal beside each figure:
// - ack ingest with durable PUBACKs: acks/s from the first ack published to the last PUBACK back
//   at the clients (a device's PUBACK waits for the journal record carrying its ack to be
//   fdatasync'd: gateway/broker.ts, docs/storage.md), against the same burst into bare aedes timed
//   the same way (goal >= 0.85x); each ack's PUBACK latency at its client (publish → PUBACK), p50
//   and p99, through each, and the difference: what the group commit adds (goal p99 <= 10 ms);
//   the store's writes, fsyncs and bytes per ack (storeStatus), and the disk's fdatasync floor
//   (512 B) measured in the same run in the same temp dir; the broker process's CPU per ack (all
//   its threads) through each, the figure that moves least with the machine's other load;
// - failure-threshold crossing → rollout held (goal <= 1 s), idle and in the middle of that burst;
//   the same for PACED acks sent one at a time (each after the PUBACK of the one before): what an
//   ack waiting behind no burst pays for its commit;
// - one wave of N bundles pushed to N connected mqtt.js clients and their acks collected (to the
//   last ack's PUBACK at its client), through the gateway and through a bare aedes broker (same
//   clients, same payloads, same 256-per-turn pacing, same run), and the ratio (goal <= 1.5x); N
//   connects to each; each broker's RSS with N connected; the store writes made during the
//   connects and the push, and the broker process's CPU per device in the push;
// - a flood: one more device publishing QoS 1 `state` messages as fast as its socket takes them for
//   10 s, with the fleet connected: the rate the gateway took them at, and its RSS before, at its
//   peak over each half of the flood (sampled every 250 ms) and after. What bounds it is per connection: the broker reads a
//   device's next packets only once the gateway has handled those before (gateway/broker.ts).
//
// Every broker runs in a process of its own (scripts/bench-worker.ts), so its RSS is its own; the
// clients run in 2 to 4 other processes and answer with a fixed ack, verifying nothing (device-sim
// is for that). Provisioning is gateway.provision() calls of up to 10,000 devices (its limit per
// call). Wall-clock figures: on a shared machine they move from run to run, so compare figures taken
// in the same run.
//
//   npx tsc -p . && node dist/scripts/bench-gateway.js [--devices 10000] [--acks N] [--quick] [--profile DIR]
//
// BENCH_PROFILE_CONNECT=FILE in the environment writes a CPU profile of the gateway process while the
// fleet connects to it to FILE; BENCH_THREADS=1 adds rows of the ack burst's CPU per ack by thread
// (the event loop; each other thread by its id's offset from the pid: the collector's helpers, the
// snapshot worker), for the gateway and for bare aedes; BENCH_HEAP=1 with --profile adds sampling heap
// profiles beside the CPU profiles.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, uintFlag, UsageError } from './args.ts';
import { checkLimits, closeChildren, fdatasyncFloor, killChildren, killChildrenOnExit, sleep, Worker } from './bench-common.ts';
import { encodeAck, encodeState } from '../firmware-manifest/index.ts';

/** Devices of each canary rollout that measures the hold; 60 apply and 1 rejects before the crossing one. */
const CANARY = 64;
const CANARY_APPLIED = 60;
/** Connects in flight at once across all client processes: a ramp, not a SYN flood. */
const CONNECT_BATCH = 500;
const WATCHDOG_MS = 15 * 60_000;
/** Two canary rollouts and a fleet beside them. */
const MIN_DEVICES = 256;
/** A broker process holds one descriptor per connection, and one process may open 20,000 files here. */
const MAX_DEVICES = 19_000;
/** Acks sent one at a time (each after the PUBACK of the one before), for the latency of an ack that waits behind no burst. */
const PACED = 200;
/** The gateway provisions at most this many devices per call. */
const PROVISION_CHUNK = 10_000;
/** How long the flooding device publishes. */
const FLOOD_MS = 10_000;

const USAGE = `usage: node dist/scripts/bench-gateway.js [--devices N] [--acks N] [--quick] [--profile DIR]
  --devices N  devices connected, provisioned 10,000 a call; default 10000, from ${MIN_DEVICES} to ${MAX_DEVICES}
               (a broker process holds one descriptor per device: at most ulimit -n minus 256)
  --acks N     acks in the ingest burst; default one per device of the ingest rollout
               (devices - ${2 * CANARY}); beyond that, devices ack again (duplicates, which the
               gateway decodes and stores but the rollout counts once)
  --quick      1,000 devices, for a fast check
  --profile D  write CPU profiles of the gateway process and of bare aedes during the ack burst
               (D/gateway-ingest.cpuprofile, D/bare-ingest.cpuprofile) and the push (D/gateway-push.cpuprofile,
               D/bare-push.cpuprofile); the figures of such a run include the profiler's own cost`;

const wallMs = () => performance.timeOrigin + performance.now();
const n = (x: number) => Math.round(x).toLocaleString('en-US');

interface Options {
  devices: number;
  acks: number | null;
  profile: string | null;
}

function options(argv: string[]): Options {
  const { values } = parse(argv, { devices: { type: 'string' }, acks: { type: 'string' }, quick: { type: 'boolean' }, profile: { type: 'string' }, help: { type: 'boolean' } }, USAGE);
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.quick && values.devices !== undefined) throw new UsageError('--quick and --devices exclude each other', USAGE);
  const devices = values.quick ? 1000 : values.devices === undefined ? 10_000 : uintFlag(values.devices, 'devices', USAGE);
  if (devices < MIN_DEVICES || devices > MAX_DEVICES) throw new UsageError(`--devices expects ${MIN_DEVICES} to ${MAX_DEVICES}, got ${devices}`, USAGE);
  const acks = values.acks === undefined ? null : uintFlag(values.acks, 'acks', USAGE);
  if (acks !== null && acks < 1) throw new UsageError('--acks expects at least 1', USAGE);
  return { devices, acks, profile: values.profile ?? null };
}

// ------------------------------------------------------------------------------------- the run

interface Bundle {
  id: string;
  seq: number;
  bytes: Uint8Array;
}

interface Row {
  figure: string;
  value: string;
  goal?: string;
  met?: boolean;
}

const progress = (line: string) => process.stderr.write(`  ${line}\n`);

/** The value at quantile `q` of `sorted` (ascending). */
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

interface Sent {
  firstAt: number;
  writtenAt: number;
  lastAckAt: number;
  crossingAt: number | null;
  latencies: number[];
}

/** p50 / p99 of acks sent one at a time by the first client process, after the PUBACK of the one before. */
async function paced(w: Worker, list: string[], bytes: Uint8Array) {
  const { latencies } = await w.call<{ latencies: number[] }>('ackPaced', { ids: list, bytes }, 120_000);
  latencies.sort((a, b) => a - b);
  return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

/** A burst's rate (first publish → last PUBACK, over every client process) and its PUBACK latencies, sorted. */
function burstFigures(sent: Sent[], acks: number) {
  const firstAt = Math.min(...sent.map((x) => x.firstAt));
  const lastAckAt = Math.max(...sent.map((x) => x.lastAckAt));
  const latencies = sent.flatMap((x) => x.latencies).sort((a, b) => a - b);
  return { firstAt, ms: lastAckAt - firstAt, rate: (acks / (lastAckAt - firstAt)) * 1000, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

interface StoreStatus {
  writes: number;
  fsyncs: number;
  bytesWritten: number;
  snapshots: number;
}

async function run(o: Options): Promise<Row[]> {
  const N = o.devices;
  const ids = Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
  const fleet = ids.slice(0, N - 2 * CANARY);
  const canaryA = ids.slice(N - 2 * CANARY, N - CANARY);
  const canaryB = ids.slice(N - CANARY);
  const acks = o.acks ?? fleet.length;
  const W = Math.min(4, Math.max(2, availableParallelism() - 1));
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-'));
  const rows: Row[] = [];
  try {
    // The disk's floor, where the store writes (dir/data), in this run.
    const floor = await fdatasyncFloor(dir);
    const calls = Math.ceil(N / PROVISION_CHUNK);
    progress(`gateway: start, provision ${n(N)} devices in ${calls} call${calls === 1 ? '' : 's'}`);
    const gw = await Worker.spawn('gateway');
    // The store's default commit window (GatewayOptions.commitWindowMs).
    const { port: gwPort } = await gw.call('start', { dir });
    const tokens: string[] = [];
    const provisionMs: number[] = [];
    for (let i = 0; i < N; i += PROVISION_CHUNK) {
      const prov = await gw.call<{ ms: number; tokens: string[] }>('provision', { ids: ids.slice(i, i + PROVISION_CHUNK) }, 120_000);
      tokens.push(...prov.tokens);
      provisionMs.push(prov.ms);
    }
    const devices = ids.map((id, i) => ({ id, token: tokens[i] }));
    const b1 = await gw.call<Bundle>('bundle');

    const workers = await Promise.all(Array.from({ length: W }, () => Worker.spawn('clients')));
    const per = Math.ceil(N / W);
    const owner = new Map<string, Worker>();
    ids.forEach((id, i) => owner.set(id, workers[Math.floor(i / per)]));
    const all = <T = any>(cmd: string, args: object = {}, timeoutMs?: number) => Promise.all(workers.map((w) => w.call<T>(cmd, args, timeoutMs)));
    const state = encodeState({ seq: 0, bundleId: null, firmware: '1.0.0', model: 'bench-1', keyEpoch: 0 });
    const ack = (b: Bundle, status: 'applied' | 'rejected') => encodeAck({ seq: b.seq, bundleId: b.id, status, ...(status === 'rejected' && { reason: 'apply_failed' as const }) });
    const byOwner = (list: string[]) => {
      const m = new Map<Worker, string[]>();
      for (const id of list) {
        const w = owner.get(id)!;
        const mine = m.get(w);
        if (mine) mine.push(id);
        else m.set(w, [id]);
      }
      return m;
    };
    /** Acks `bytes` from each of `list`, every client process at once. */
    const ackFrom = (list: string[], bytes: Uint8Array) => Promise.all([...byOwner(list)].map(([w, mine]) => w.call('ack', { ids: mine, bytes })));
    const connectAll = async (url: string) => {
      const t0 = wallMs();
      const timeoutMs = Math.max(60_000, N * 20);
      await Promise.all(workers.map((w, i) => w.call('connect', { url, devices: devices.slice(i * per, (i + 1) * per), batch: Math.ceil(CONNECT_BATCH / W), state, timeoutMs: 30_000 }, timeoutMs)));
      return wallMs() - t0;
    };
    /** Resolves when the clients in `auto` mode have had `count` PUBACKs for their acks, at the last one's time. */
    const waitAutoAcked = async (count: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = await all<{ acked: number; lastAt: number }>('autoAcked');
        if (got.reduce((s, r) => s + r.acked, 0) >= count) return Math.max(...got.map((r) => r.lastAt));
        if (Date.now() > deadline) throw new Error(`clients had PUBACKs for ${got.reduce((s, r) => s + r.acked, 0)} of ${count} acks within ${timeoutMs} ms`);
        await sleep(20);
      }
    };
    const waitReceived = async (count: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = (await all<{ received: number }>('received')).reduce((s, r) => s + r.received, 0);
        if (got >= count) return;
        if (Date.now() > deadline) throw new Error(`clients received ${got} of ${count} bundles within ${timeoutMs} ms`);
        await sleep(20);
      }
    };

    // ---- bare aedes: the reference, same clients, same payload
    progress(`bare aedes: connect ${n(N)} clients (${W} client processes, ${CONNECT_BATCH} at a time), push, collect acks`);
    const bare = await Worker.spawn('bare');
    const { port: barePort } = await bare.call('start');
    // Warm the client processes up (JIT, pools) on throwaway ids, so the first connect timed is not
    // also the clients' cold start.
    const warm = Array.from({ length: Math.min(N, CONNECT_BATCH) }, (_, i) => ({ id: `warm-${i}`, token: 'x' }));
    await Promise.all(workers.map((w, i) => w.call('connect', { url: `mqtt://127.0.0.1:${barePort}`, devices: warm.filter((_, j) => j % W === i), batch: 50, state, timeoutMs: 30_000 })));
    await all('closeAll');
    const bareConnectMs = await connectAll(`mqtt://127.0.0.1:${barePort}`);
    await bare.call('waitConnected', { count: N, timeoutMs: 30_000 });
    await sleep(500);
    const bareMem = await bare.call<{ rss: number }>('memory');
    await all('mode', { to: 'auto', ack: ack(b1, 'applied') });
    if (o.profile) await bare.call('profileStart');
    const barePushCpu0 = await cpuOf(bare);
    const barePushStart = await bare.call<{ at: number }>('push', { ids, bytes: b1.bytes, timeoutMs: 120_000 }, 130_000);
    const barePushMs = (await waitAutoAcked(N, 30_000)) - barePushStart.at;
    const barePushCpu = (await cpuOf(bare)) - barePushCpu0;
    if (o.profile) await bare.call('profileStop', { file: join(o.profile, 'bare-push.cpuprofile') });
    // The same ack burst the gateway gets below, into aedes alone: the ceiling on this machine.
    await all('mode', { to: 'hold' });
    const bareBurst = Array.from({ length: acks }, (_, k) => fleet[k % fleet.length]);
    if (o.profile) await bare.call('profileStart');
    const bareCpu0 = await cpuOf(bare);
    const bareThreads0 = await threadsOf(bare);
    const bareLoop0 = await loopCpuOf(bare);
    const bareBurstFigures = burstFigures(await Promise.all([...byOwner(bareBurst)].map(([w, mine]) => w.call<Sent>('ack', { ids: mine, bytes: ack(b1, 'applied') }, 130_000))), acks);
    const bareBurstCpu = (await cpuOf(bare)) - bareCpu0;
    const bareBurstLoop = (await loopCpuOf(bare)) - bareLoop0;
    const bareThreads = threadDelta(bareThreads0, await threadsOf(bare), acks);
    if (o.profile) await bare.call('profileStop', { file: join(o.profile, 'bare-ingest.cpuprofile') });
    const pacedIds = fleet.filter((id) => owner.get(id) === workers[0]).slice(0, PACED);
    const barePaced = await paced(workers[0], pacedIds, ack(b1, 'applied'));
    await all('closeAll');
    await bare.call('stop');
    bare.kill();

    // ---- the gateway: connect, then one wave of N
    progress(`gateway: connect ${n(N)} clients, push one wave of ${n(N)}, collect acks`);
    await all('mode', { to: 'hold' });
    await gw.call('flush');
    const connectWrites0 = (await gw.call<StoreStatus>('storeStatus')).writes;
    if (process.env.BENCH_PROFILE_CONNECT) await gw.call('profileStart');
    const gwConnectMs = await connectAll(`mqtt://127.0.0.1:${gwPort}`);
    if (process.env.BENCH_PROFILE_CONNECT) await gw.call('profileStop', { file: process.env.BENCH_PROFILE_CONNECT });
    await gw.call('waitConnected', { count: N, timeoutMs: 30_000 });
    const connectWrites = (await gw.call<StoreStatus>('storeStatus')).writes - connectWrites0;
    await sleep(500);
    const gwMem = await gw.call<{ rss: number }>('memory');
    const r1 = await gw.call<{ id: string; ms: number }>('rollout', { bundle: b1.id, devices: ids, waves: [{ size: '100%', timeoutSeconds: 3600 }] });
    await all('mode', { to: 'auto', ack: ack(b1, 'applied') });
    await gw.call('flush');
    const pushWrites0 = (await gw.call<StoreStatus>('storeStatus')).writes;
    if (o.profile) await gw.call('profileStart');
    const gwPushCpu0 = await cpuOf(gw);
    const pushStart = await gw.call<{ at: number }>('startRollout', { id: r1.id });
    const gwPushMs = (await waitAutoAcked(N, 120_000)) - pushStart.at;
    const gwPushCpu = (await cpuOf(gw)) - gwPushCpu0;
    if (o.profile) await gw.call('profileStop', { file: join(o.profile, 'gateway-push.cpuprofile') });
    await gw.call('waitCounted', { id: r1.id, applied: N, timeoutMs: 10_000 });
    const pushWrites = (await gw.call<StoreStatus>('storeStatus')).writes - pushWrites0;
    await gw.call('waitState', { id: r1.id, state: 'completed', timeoutMs: 10_000 });
    await all('mode', { to: 'hold' });

    // ---- a canary rollout one rejection short of its failure threshold (0.02, 1 of 61 responders)
    const canary = async (members: string[]) => {
      const b = await gw.call<Bundle>('bundle');
      const r = await gw.call<{ id: string }>('rollout', { bundle: b.id, devices: members, waves: [{ size: '100%', timeoutSeconds: 3600, failureThreshold: 0.02, minDevices: 5 }] });
      await gw.call('startRollout', { id: r.id });
      await ackFrom(members.slice(0, CANARY_APPLIED), ack(b, 'applied'));
      await gw.call('waitCounted', { id: r.id, applied: CANARY_APPLIED, timeoutMs: 10_000 });
      await ackFrom(members.slice(CANARY_APPLIED, CANARY_APPLIED + 1), ack(b, 'rejected'));
      const before = await gw.call<{ state: string }>('waitCounted', { id: r.id, applied: CANARY_APPLIED, rejected: 1, timeoutMs: 10_000 });
      if (before.state !== 'running') throw new Error(`canary rollout is ${before.state} before the crossing ack`);
      return { id: r.id, crossing: { id: members[CANARY_APPLIED + 1], bytes: ack(b, 'rejected') } };
    };

    progress('gateway: failure-threshold crossing, idle');
    const idle = await canary(canaryA);
    const { crossingAt: idleCrossAt } = await owner.get(idle.crossing.id)!.call('ack', { ids: [], bytes: new Uint8Array(0), crossing: { ...idle.crossing, index: 0 } });
    const idleHeld = await gw.call<{ at: number; state: string; reason: string }>('waitHeld', { id: idle.id, timeoutMs: 10_000 });

    // ---- ack ingest: a running rollout of the fleet, its bundle delivered, then every ack at once
    progress(`gateway: ack ingest, ${n(acks)} acks from ${n(Math.min(acks, fleet.length))} devices, with a crossing in the middle`);
    const loaded = await canary(canaryB);
    const b2 = await gw.call<Bundle>('bundle');
    const r2 = await gw.call<{ id: string }>('rollout', { bundle: b2.id, devices: fleet, waves: [{ size: '100%', timeoutSeconds: 3600 }] });
    await all('resetReceived');
    await gw.call('startRollout', { id: r2.id });
    await waitReceived(fleet.length, 120_000);
    // Start from a clean store, so the writes counted are the ingest's.
    await gw.call('flush');
    const storeBefore = await gw.call<StoreStatus>('storeStatus');
    const acksBefore = (await gw.call<{ acks: { applied: number } }>('counters')).acks.applied;
    const burst = Array.from({ length: acks }, (_, k) => fleet[k % fleet.length]);
    const crossWorker = owner.get(loaded.crossing.id)!;
    const shares = byOwner(burst);
    if (!shares.has(crossWorker)) shares.set(crossWorker, []);
    if (o.profile) await gw.call('profileStart');
    const gwCpu0 = await cpuOf(gw);
    const gwLoop0 = await loopCpuOf(gw);
    const gwThreads0 = await threadsOf(gw);
    const sent = await Promise.all(
      [...shares].map(([w, mine]) => w.call<Sent>('ack', { ids: mine, bytes: ack(b2, 'applied'), ...(w === crossWorker && { crossing: { ...loaded.crossing, index: Math.floor(mine.length / 2) } }) }, 130_000)),
    );
    const gwBurstCpu = (await cpuOf(gw)) - gwCpu0;
    const gwBurstLoop = (await loopCpuOf(gw)) - gwLoop0;
    const gwThreads = threadDelta(gwThreads0, await threadsOf(gw), acks);
    if (o.profile) await gw.call('profileStop', { file: join(o.profile, 'gateway-ingest.cpuprofile') });
    const gwBurst = burstFigures(sent, acks);
    // Every ack PUBACKed has been counted (its PUBACK waits for the commit of what it changed).
    await gw.call('waitCounted', { id: r2.id, applied: Math.min(acks, fleet.length), acksApplied: acksBefore + acks, timeoutMs: 10_000 });
    await gw.call('flush');
    const storeAfter = await gw.call<StoreStatus>('storeStatus');
    // Duplicates of acks already counted: decoded and committed (the device's history), counted once.
    const gwPaced = await paced(workers[0], pacedIds, ack(b2, 'applied'));
    const loadedHeld = await gw.call<{ at: number; state: string; reason: string }>('waitHeld', { id: loaded.id, timeoutMs: 10_000 });
    const writtenAt = Math.max(...sent.map((s) => s.writtenAt));
    const loadedCrossAt = sent.find((s) => s.crossingAt !== null)!.crossingAt!;
    const perAck = (k: keyof StoreStatus) => (storeAfter[k] - storeBefore[k]) / acks;
    // ---- a flood: one device publishing as fast as it can, the fleet still connected
    progress(`gateway: one device floods QoS 1 state messages for ${FLOOD_MS / 1000} s`);
    const { tokens: floodTokens } = await gw.call<{ tokens: string[] }>('provision', { ids: ['flood-0'], group: 'flood' });
    const rssBefore = (await gw.call<{ rss: number }>('memory')).rss;
    // Peaks over the flood's first and second halves: memory that grew without bound would show
    // as a second peak well above the first.
    const rssPeaks = [rssBefore, rssBefore];
    const floodFrom = wallMs();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const half = wallMs() - floodFrom < FLOOD_MS / 2 ? 0 : 1;
        rssPeaks[half] = Math.max(rssPeaks[half], (await gw.call<{ rss: number }>('memory')).rss);
        await sleep(250);
      }
    })();
    // A flood that stalls is a figure (the row says what happened), not the end of the run.
    const flooded = await workers[0]
      .call<{ sent: number; firstAt: number; lastAckAt: number }>('flood', { port: gwPort, id: 'flood-0', token: floodTokens[0], kind: 'state', payload: state, ms: FLOOD_MS }, FLOOD_MS + 60_000)
      .catch((err: Error) => ({ error: err.message.split('\n')[0] }));
    sampling = false;
    await sampler;
    await sleep(1000);
    const rssAfter = (await gw.call<{ rss: number }>('memory')).rss;
    const floodFigure = 'error' in flooded ? `failed: ${flooded.error}` : `${n((flooded.sent / (flooded.lastAckAt - flooded.firstAt)) * 1000)} msgs/s (${n(flooded.sent)})`;

    const final = await gw.call<{ dropped: Record<string, number>; broker: { publishErrors: number } }>('counters');
    const clientErrors = (await all<{ publishErrors: number }>('received')).reduce((s, r) => s + r.publishErrors, 0);
    await all('closeAll');
    await gw.call('stop', {}, 60_000);
    await closeChildren();

    const idleDelay = idleHeld.at - idleCrossAt;
    const loadedDelay = loadedHeld.at - loadedCrossAt;
    const ratio = gwPushMs / barePushMs;
    const ingestRatio = gwBurst.rate / bareBurstFigures.rate;
    const s = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`);
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
    rows.push(
      { figure: `ack ingest, ${n(acks)} acks, durable PUBACKs`, value: `${n(gwBurst.rate)} acks/s` },
      { figure: '  first ack published → last PUBACK', value: s(gwBurst.ms) },
      { figure: '  the same burst into bare aedes', value: `${n(bareBurstFigures.rate)} acks/s` },
      { figure: '  gateway / bare aedes', value: `${ingestRatio.toFixed(2)}x`, goal: '>= 0.85x', met: ingestRatio >= 0.85 },
      { figure: '  clients done writing the acks after', value: s(writtenAt - gwBurst.firstAt) },
      // CPU, not wall time: the broker process's threads (the event loop, the garbage collector's
      // helpers, the store's fsyncs and snapshot worker), less sensitive to what else the machine runs.
      { figure: '  CPU per ack (the broker process, all threads), gateway / bare aedes', value: `${((gwBurstCpu * 1000) / acks).toFixed(0)} / ${((bareBurstCpu * 1000) / acks).toFixed(0)} µs` },
      { figure: '    of it on the event loop (10 ms ticks), gateway / bare aedes', value: `${((gwBurstLoop * 1000) / acks).toFixed(0)} / ${((bareBurstLoop * 1000) / acks).toFixed(0)} µs` },
      { figure: 'PUBACK latency in the burst, gateway p50 / p99', value: `${gwBurst.p50.toFixed(1)} / ${gwBurst.p99.toFixed(1)} ms` },
      { figure: '  bare aedes p50 / p99', value: `${bareBurstFigures.p50.toFixed(1)} / ${bareBurstFigures.p99.toFixed(1)} ms` },
      { figure: '  added by the gateway (its CPU per ack and the commit), p50 / p99', value: `${(gwBurst.p50 - bareBurstFigures.p50).toFixed(1)} / ${(gwBurst.p99 - bareBurstFigures.p99).toFixed(1)} ms`, goal: 'p99 <= 10 ms', met: gwBurst.p99 - bareBurstFigures.p99 <= 10 },
      { figure: `PUBACK latency, ${PACED} acks one at a time, gateway p50 / p99`, value: `${gwPaced.p50.toFixed(2)} / ${gwPaced.p99.toFixed(2)} ms` },
      { figure: '  bare aedes p50 / p99', value: `${barePaced.p50.toFixed(2)} / ${barePaced.p99.toFixed(2)} ms` },
      { figure: '  added by the gateway, p50 / p99', value: `${(gwPaced.p50 - barePaced.p50).toFixed(2)} / ${(gwPaced.p99 - barePaced.p99).toFixed(2)} ms`, goal: 'p99 <= 10 ms', met: gwPaced.p99 - barePaced.p99 <= 10 },
      { figure: '  fdatasync floor, 512 B, p50 / p99', value: `${floor.p50.toFixed(2)} / ${floor.p99.toFixed(2)} ms` },
      { figure: '  store writes / fsyncs per 10,000 acks', value: `${(perAck('writes') * 10_000).toFixed(0)} / ${(perAck('fsyncs') * 10_000).toFixed(0)}` },
      { figure: '  store bytes per ack, snapshots included', value: `${n(perAck('bytesWritten'))} B (${storeAfter.snapshots - storeBefore.snapshots} snapshots)`, goal: '<= 1,024 B', met: perAck('bytesWritten') <= 1024 },
      { figure: 'failure crossing → held, idle', value: s(idleDelay), goal: '<= 1 s', met: idleDelay <= 1000 && idleHeld.reason === 'failure_threshold' },
      { figure: '  … during the ingest burst', value: s(loadedDelay), goal: '<= 1 s', met: loadedDelay <= 1000 && loadedHeld.reason === 'failure_threshold' },
      { figure: `push ${n(N)} bundles + acks, gateway`, value: s(gwPushMs) },
      { figure: '  store file writes during it', value: `${pushWrites}` },
      { figure: `push ${n(N)} bundles + acks, bare aedes`, value: s(barePushMs) },
      { figure: '  gateway / bare aedes', value: `${ratio.toFixed(2)}x`, goal: '<= 1.5x', met: ratio <= 1.5 },
      { figure: '  CPU per device (the broker process, all threads), gateway / bare aedes', value: `${((gwPushCpu * 1000) / N).toFixed(0)} / ${((barePushCpu * 1000) / N).toFixed(0)} µs` },
      { figure: `connect ${n(N)} clients, gateway`, value: s(gwConnectMs) },
      { figure: '  store file writes during it', value: `${connectWrites}` },
      { figure: `connect ${n(N)} clients, bare aedes`, value: s(bareConnectMs) },
      { figure: `RSS, ${n(N)} connected, gateway`, value: mb(gwMem.rss) },
      { figure: `RSS, ${n(N)} connected, bare aedes`, value: mb(bareMem.rss) },
      {
        figure: calls === 1 ? `provision ${n(N)} devices, one call` : `provision ${n(N)} devices, ${calls} calls: slowest`,
        value: s(Math.max(...provisionMs)),
        goal: '< 1 s',
        met: Math.max(...provisionMs) < 1000,
      },
      { figure: `createRollout of ${n(N)} (pre-flight, waves)`, value: s(r1.ms) },
      { figure: `flood: one device, QoS 1 state, ${FLOOD_MS / 1000} s`, value: floodFigure },
      { figure: '  gateway RSS before / peak, first half / second half / after', value: `${mb(rssBefore)} / ${mb(rssPeaks[0])} / ${mb(rssPeaks[1])} / ${mb(rssAfter)}` },
      { figure: 'store: bytes written in the run, snapshots', value: `${(storeAfter.bytesWritten / 2 ** 20).toFixed(1)} MiB, ${storeAfter.snapshots}` },
    );
    if (process.env.BENCH_THREADS) rows.push({ figure: '  CPU per ack by thread, gateway', value: gwThreads }, { figure: '  CPU per ack by thread, bare aedes', value: bareThreads });
    const dropped = Object.values(final.dropped).reduce((a, b) => a + b, 0);
    if (dropped + final.broker.publishErrors + clientErrors > 0) {
      rows.push({ figure: 'errors: dropped / publish / client', value: `${dropped} / ${final.broker.publishErrors} / ${clientErrors}` });
    }
    return rows;
  } finally {
    killChildren();
    rmSync(dir, { recursive: true, force: true });
  }
}

function print(o: Options, rows: Row[], loadAtStart: number[]): void {
  const w1 = Math.max(...rows.map((r) => r.figure.length));
  const w2 = Math.max(...rows.map((r) => r.value.length));
  const w3 = Math.max(4, ...rows.map((r) => (r.goal ?? '').length));
  const line = (a: string, b: string, c: string, d: string) => `${a.padEnd(w1)}  ${b.padStart(w2)}  ${c.padEnd(w3)}  ${d}`.trimEnd();
  console.log(`pinwave bench-gateway: ${n(o.devices)} devices, node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at the start, ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`);
  console.log('figures are wall-clock on a shared machine: expect noise, and compare figures of one run');
  console.log(line('figure', 'measured', 'goal', ''));
  for (const r of rows) console.log(line(r.figure, r.value, r.goal ?? '', r.met === undefined ? '' : r.met ? 'ok' : 'MISSED'));
}

killChildrenOnExit();

try {
  const o = options(process.argv.slice(2));
  checkLimits(o.devices, '--devices', USAGE);
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench-gateway: gave up after ${WATCHDOG_MS / 60_000} minutes\n`);
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  const loadAtStart = loadavg();
  const rows = await run(o);
  print(o, rows, loadAtStart);
  process.exit(0);
} catch (err) {
  killChildren();
  if (err instanceof UsageError) {
    process.stderr.write(`bench-gateway: ${err.message}\n${err.usage ? `${err.usage}\n` : ''}`);
    process.exit(2);
  }
  process.stderr.write(`bench-gateway: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}

/** The CPU a benchmark process has used so far (user + system, all threads), ms. */
async function cpuOf(w: Worker): Promise<number> {
  return (await w.call<{ ms: number }>('cpu')).ms;
}

/** With BENCH_THREADS: each thread's CPU so far by name, ms. */
async function threadsOf(w: Worker): Promise<Record<string, number>> {
  return (await w.call<{ threads: Record<string, number> }>('cpu')).threads;
}

/** What each thread used between two readings, per ack, in µs. */
function threadDelta(before: Record<string, number>, after: Record<string, number>, acks: number): string {
  return Object.entries(after)
    .map(([name, ms]) => [name, ((ms - (before[name] ?? 0)) * 1000) / acks] as const)
    .filter(([, us]) => us > 0)
    .map(([name, us]) => `${name} ${us.toFixed(0)}`)
    .join(', ');
}

/** The CPU a benchmark process's event loop thread has used so far, ms (10 ms ticks; NaN off Linux). */
async function loopCpuOf(w: Worker): Promise<number> {
  return (await w.call<{ loopMs: number }>('cpu')).loopMs;
}
