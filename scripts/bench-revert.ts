// bench-sim's revert phase (docs/pin-safety.md; docs/architecture.md §9), the one revert benchmark:
// N health-checked devices (a device-sim Fleet of real MQTT clients, sharded over the bench's client
// processes) on the real gateway (a process of its own), one local TLS endpoint (in the bench's own
// process, which does nothing else meanwhile). A bundle whose pins miss the key the endpoint serves
// goes to all of them in one wave. Timed, per device, from the gateway sending it (the wave's start)
// to the gateway counting the device's `reverted` ack; beside the floor of the same run: from the
// same client processes, against the same endpoint, as many TLS handshakes asked at once as each
// process runs devices, at the concurrency the fleet's health checks run at (HANDSHAKE_CONCURRENCY
// in flight per process), each from its ask to its result, before and after the wave.
//
// Where the time goes, per device: the gateway's send → the device's window opened (delivery,
// verify, persist), the health check's handshake (ask → result, under the wave's load), and the
// window opened → the `reverted` ack PUBACKed (and counted), and the handshakes completed a second
// in each process, in the floor runs and during the wave. Also: from the first revert counted to the
// hold, and whether every device's active pins still reach the endpoint afterwards (a real handshake
// each). Last, the same wave again with every health check answered at once with the served pin (no
// TLS): what the revert costs over its handshake when no handshake competes with it.
//
// Every process keeps its own event loop: an earlier version ran gateway, devices and endpoint in
// one, and every revert carried the gateway's and the other devices' work on top of its handshake.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTlsEndpoint, unservedPin, type CallHomeEndpoint } from '../device-sim/index.ts';
import type { FirmwareManifest } from '../firmware-manifest/index.ts';
import { sleep, Worker } from './bench-common.ts';

/** The Handshakes default the fleet's health checks run at, per process. */
export const HANDSHAKE_CONCURRENCY = 64;
/** Client processes the devices are sharded over, as bench-sim's other phases. */
export const REVERT_PROCESSES = 2;
const GROUP = 'bench-hc';
const MODEL = 'bench-hc';
const FIRMWARE = '2.0.0';

export interface RevertFigures {
  devices: number;
  processes: number;
  /** gateway send → gateway counts `reverted`, ms, one per device */
  revert: number[];
  /** bare handshakes from the client processes at the fleet's concurrency, ms, before and after */
  handshakes: number[];
  /** gateway send → the device's window opened (delivery, verify, persist), ms */
  delivery: number[];
  /** the health checks' own handshakes during the wave, ask → result, ms */
  checkHandshakes: number[];
  /** each device's window: opened → its `reverted` ack PUBACKed, ms */
  window: number[];
  /** each device's window opened → the gateway counting its `reverted` ack, ms (the revert less the delivery) */
  windowToCounted: number[];
  /** the same wave again, each health check answered at once with the served pin (no TLS): gateway send → `reverted` counted, ms */
  revertInstant: number[];
  /** TLS handshakes completed a second in each client process, first ask to last result: in the floor runs, and the health checks' during the wave */
  handshakeRate: { floor: number; wave: number };
  /** first revert counted → hold (the gateway's log line), ms */
  firstRevertToHold: number;
  /** the warm-up: a good bundle's send → all N counted `verified`, ms */
  verifiedMs: number;
  /** devices whose pins fail a real handshake to the endpoint afterwards */
  lockedOutAfter: number;
  /** CPU ms spent over one floor run (the later) and over the wave (send → every revert counted), by the gateway, the client processes together and the endpoint's process */
  cpu: { floor: Cpu; wave: Cpu; instant: Cpu };
  /** load average (1 min) at the phase's start and end */
  load: [number, number];
  errors: string[];
}

export interface Cpu {
  gateway: number;
  devices: number;
  endpoint: number;
}

interface Timeline {
  verifying: Record<string, number>;
  settled: Record<string, { status: string; at: number }>;
  handshakes: number[];
  /** the first fresh ask to the last fresh result, ms */
  handshakeSpanMs: number;
}

/** Handshakes a second, the mean over the client processes of each one's count over its span. */
function rateOf(runs: Array<{ count: number; spanMs: number }>): number {
  const rates = runs.filter((r) => r.count > 0 && r.spanMs > 0).map((r) => (r.count / r.spanMs) * 1000);
  return rates.length > 0 ? rates.reduce((a, b) => a + b, 0) / rates.length : NaN;
}

/** `profileDir`: the gateway and the client processes are CPU-profiled over the wave, to DIR/revert-<process>.cpuprofile. */
export async function measureRevert(N: number, progress: (line: string) => void, o: { profileDir?: string | null; timeoutMs?: number } = {}): Promise<RevertFigures> {
  const timeoutMs = o.timeoutMs ?? 180_000;
  const loadAtStart = loadavg()[0];
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-revert-'));
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  const errors: string[] = [];
  const workers: Worker[] = [];
  try {
    progress(`revert: ${N} health-checked devices in ${REVERT_PROCESSES} processes, the gateway in its own: provision, connect (load ${loadAtStart.toFixed(2)})`);
    const gw = await Worker.spawn('gateway');
    workers.push(gw);
    const sims = await Promise.all(Array.from({ length: REVERT_PROCESSES }, () => Worker.spawn('sim')));
    workers.push(...sims);
    const all = <T = any>(cmd: string, args: (i: number) => object, ms?: number) => Promise.all(sims.map((w, i) => w.call<T>(cmd, args(i), ms)));

    const { port, publicPem } = await gw.call<{ port: number; publicPem: string }>('start', { dir });
    const manifest: FirmwareManifest = {
      model: MODEL,
      firmware: FIRMWARE,
      trustedKeys: [publicPem],
      pins: [{ host: api.name, pins: [api.pins[0], api.backupPin] }],
      healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 10, onUnverifiable: 'commit' },
    };
    await gw.call('addManifest', { manifest });
    const ids = Array.from({ length: N }, (_, i) => `hc-${String(i).padStart(5, '0')}`);
    const { tokens } = await gw.call<{ tokens: string[] }>('provision', { ids, group: GROUP, model: MODEL, firmware: FIRMWARE }, 60_000);
    const devices = ids.map((id, i) => ({ id, token: tokens[i] }));
    const endpoints: CallHomeEndpoint[] = [api.callHome];
    await all('fleetStart', (i) => ({ name: 'revert', url: `mqtt://127.0.0.1:${port}`, manifest, group: GROUP, devices, shard: { index: i, count: REVERT_PROCESSES }, verifyEach: false, perTick: 250, keepaliveSeconds: 120, endpoints }), 120_000);
    await gw.call('waitConnected', { count: N, timeoutMs: 30_000 }, 35_000);

    const ownCpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const cpuNow = async (): Promise<Cpu> => ({ gateway: (await gw.call<{ ms: number }>('cpu')).ms, devices: (await all<{ ms: number }>('cpu', () => ({}))).reduce((s, x) => s + x.ms, 0), endpoint: ownCpu() });
    const cpuSince = async (from: Cpu): Promise<Cpu> => {
      const to = await cpuNow();
      return { gateway: to.gateway - from.gateway, devices: to.devices - from.devices, endpoint: to.endpoint - from.endpoint };
    };
    const shardSize = (i: number) => ids.filter((_, k) => k % REVERT_PROCESSES === i).length;
    const floorSpans: Array<{ count: number; spanMs: number }> = [];
    const floor = async () => {
      const out = await all<{ ms: number[]; failed: number; spanMs: number }>('handshakeFloor', (i) => ({ endpoint: api.callHome, count: shardSize(i), concurrency: HANDSHAKE_CONCURRENCY }), 120_000);
      const failed = out.reduce((s, x) => s + x.failed, 0);
      if (failed > 0) errors.push(`${failed} bare handshakes failed`);
      floorSpans.push(...out.map((x) => ({ count: x.ms.length, spanMs: x.spanMs })));
      return out.flatMap((x) => x.ms);
    };
    // Warm-up, as bench-sim's other phases: a good bundle (it pins the served key) to all N, every
    // device verifying it by a real handshake, so neither the gateway nor the devices meet the
    // revert path's code cold. Timed too: the same wave, a health check that commits.
    progress(`revert: warm-up: a bundle that holds the served key, to all ${N} (each verifies it by a handshake)`);
    const good = await gw.call<{ id: string }>('bundle', { group: GROUP, endpoint: { host: api.name, port: api.port }, pins: [api.pins[0], api.backupPin] });
    const warm = await gw.call<{ id: string }>('rollout', { bundle: good.id, group: GROUP, waves: [{ size: '100%', timeoutSeconds: 3600 }] });
    const { at: warmAt } = await gw.call<{ at: number }>('startRollout', { id: warm.id });
    const warmed = await gw.call<{ counted: number }>('waitStatus', { id: warm.id, status: 'verified', count: N, timeoutMs }, timeoutMs + 5000);
    const verifiedMs = Date.now() - warmAt;
    if (warmed.counted < N) errors.push(`warm-up: ${N - warmed.counted} devices not counted verified within ${timeoutMs / 1000} s`);
    await gw.call('waitState', { id: warm.id, state: 'completed', timeoutMs: 10_000 }, 15_000);
    await all('fleetTimeline', () => ({ name: 'revert' }));

    progress(`revert: ${N} bare TLS handshakes from the client processes, ${HANDSHAKE_CONCURRENCY} in flight in each`);
    const before = await floor();

    progress(`revert: a bundle that misses the served key, to all ${N} in one wave`);
    const bad = await gw.call<{ id: string }>('bundle', { group: GROUP, endpoint: { host: api.name, port: api.port }, pins: [unservedPin(), unservedPin()] });
    const { id } = await gw.call<{ id: string }>('rollout', { bundle: bad.id, group: GROUP, waves: [{ size: '100%', timeoutSeconds: 3600 }] });
    await all('fleetTimeline', () => ({ name: 'revert' }));
    if (o.profileDir) await Promise.all(workers.map((w) => w.call('profileStart')));
    const waveFrom = await cpuNow();
    const { at: sentAt } = await gw.call<{ at: number }>('startRollout', { id });
    const { counted } = await gw.call<{ counted: number }>('waitStatus', { id, status: 'reverted', count: N, timeoutMs }, timeoutMs + 5000);
    const waveCpu = await cpuSince(waveFrom);
    if (o.profileDir) await Promise.all(workers.map((w, i) => w.call('profileStop', { file: join(o.profileDir!, `revert-${i === 0 ? 'gateway' : `sim${i - 1}`}.cpuprofile`) })));
    if (counted < N) errors.push(`${N - counted} devices not counted reverted within ${timeoutMs / 1000} s`);
    const c = await gw.call<{ devices: Array<{ status: string | null; at: number | null }>; state: string; heldAt: number | null; hold: { at: number; reason: string } | null }>('devicesCounted', { id, ids });
    const revert = c.devices.filter((d) => d.status === 'reverted' && d.at !== null).map((d) => d.at! - sentAt);
    if (!c.hold || c.heldAt === null) errors.push(`the rollout was not held (state ${c.state})`);
    const firstRevertAt = sentAt + Math.min(...revert);
    // The devices' acks are PUBACKed after the gateway's store has them: wait for the last before reading the devices' side.
    const deadline = Date.now() + 10_000;
    let timelines: Timeline[] = [];
    const merged = { verifying: {} as Record<string, number>, settled: {} as Record<string, { status: string; at: number }>, handshakes: [] as number[] };
    const waveSpans = sims.map(() => ({ count: 0, spanMs: 0 }));
    while (Object.keys(merged.settled).length < N && Date.now() < deadline) {
      timelines = await all<Timeline>('fleetTimeline', () => ({ name: 'revert' }));
      timelines.forEach((t, i) => {
        Object.assign(merged.verifying, t.verifying);
        Object.assign(merged.settled, t.settled);
        merged.handshakes.push(...t.handshakes);
        waveSpans[i].count += t.handshakes.length;
        waveSpans[i].spanMs = Math.max(waveSpans[i].spanMs, t.handshakeSpanMs);
      });
      if (Object.keys(merged.settled).length < N) await sleep(50);
    }
    const delivery: number[] = [];
    const window: number[] = [];
    const windowToCounted: number[] = [];
    let notReverted = 0;
    for (const [k, d] of ids.entries()) {
      const opened = merged.verifying[d];
      const settled = merged.settled[d];
      const counted = c.devices[k];
      if (opened !== undefined) delivery.push(opened - sentAt);
      if (opened !== undefined && counted.status === 'reverted' && counted.at !== null) windowToCounted.push(counted.at - opened);
      if (settled?.status !== 'reverted') notReverted++;
      else if (opened !== undefined) window.push(settled.at - opened);
    }
    if (notReverted > 0) errors.push(`${notReverted} devices say they did not revert`);

    progress(`revert: ${N} bare TLS handshakes again, then every device checks its active pins`);
    const floorFrom = await cpuNow();
    const after = await floor();
    const floorCpu = await cpuSince(floorFrom);
    const checked = await all<{ failing: number }>('fleetCallHome', () => ({ name: 'revert' }), 120_000);
    const lockedOutAfter = checked.reduce((s, x) => s + x.failing, 0);

    // The path without its handshake: the held rollout aborted, another bundle that misses the
    // served key to all N, each health check answered at once with the pin the endpoint serves (no
    // TLS). What is left is the delivery, the device's machine and store, and the ack to the
    // gateway: what the revert costs over its handshake when nothing competes with it.
    progress(`revert: the same again, each check answered at once with the served pin (no TLS handshake)`);
    await gw.call('abortRollout', { id });
    const bad2 = await gw.call<{ id: string }>('bundle', { group: GROUP, endpoint: { host: api.name, port: api.port }, pins: [unservedPin(), unservedPin()] });
    const r2 = await gw.call<{ id: string }>('rollout', { bundle: bad2.id, group: GROUP, waves: [{ size: '100%', timeoutSeconds: 3600 }] });
    await all('fleetTimeline', () => ({ name: 'revert' }));
    await all('fleetInstantChecks', () => ({ name: 'revert', pins: [api.pins[api.serving].replace(/^sha256\//, '')] }));
    const instantFrom = await cpuNow();
    const { at: sent2 } = await gw.call<{ at: number }>('startRollout', { id: r2.id });
    const instant = await gw.call<{ counted: number }>('waitStatus', { id: r2.id, status: 'reverted', count: N, timeoutMs }, timeoutMs + 5000);
    const instantCpu = await cpuSince(instantFrom);
    await all('fleetInstantChecks', () => ({ name: 'revert', pins: null }));
    if (instant.counted < N) errors.push(`checks answered at once: ${N - instant.counted} devices not counted reverted within ${timeoutMs / 1000} s`);
    const c2 = await gw.call<{ devices: Array<{ status: string | null; at: number | null }> }>('devicesCounted', { id: r2.id, ids });
    const revertInstant = c2.devices.filter((d) => d.status === 'reverted' && d.at !== null).map((d) => d.at! - sent2);
    await all('fleetStop', () => ({ name: 'revert' }), 60_000);
    await gw.call('stop', {}, 60_000);
    return {
      devices: N,
      processes: REVERT_PROCESSES,
      revert,
      handshakes: [...before, ...after],
      delivery,
      checkHandshakes: merged.handshakes,
      window,
      windowToCounted,
      revertInstant,
      handshakeRate: { floor: rateOf(floorSpans), wave: rateOf(waveSpans) },
      firstRevertToHold: c.heldAt !== null ? c.heldAt - firstRevertAt : NaN,
      verifiedMs,
      lockedOutAfter,
      cpu: { floor: floorCpu, wave: waveCpu, instant: instantCpu },
      load: [loadAtStart, loadavg()[0]],
      errors,
    };
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The q-quantile of xs (nearest rank). */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil(q * s.length) - 1))];
}
