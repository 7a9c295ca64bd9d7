// The child processes of scripts/bench-gateway.ts and scripts/bench-sim.ts, one role each, driven
// over IPC so that every figure is attributable to one process (its RSS, its event loop):
//
//   gateway  the real Gateway (docs/architecture.md §5–§7) on 127.0.0.1, the embedded store in a temp dir
//   bare     a bare aedes broker on a net server, no auth, no ACL, no store: the reference push
//   clients  a share of the fleet as mqtt.js clients that connect, subscribe, send `state`, and
//            then either ack every bundle at once (`auto`) or ack only when told (`hold`); and one
//            device that floods the gateway with QoS 1 messages as fast as its socket takes them
//   pusher   one mqtt.js client per real broker that pushes to the devices there and counts their acks
//   sim      what `clients` does, and a shard of a device-sim Fleet: simulated devices that verify,
//            apply, persist and ack, in the same process as the bare clients they are
//            compared with
//
// Not run by hand: the benchmarks fork it as `bench-worker.js <role>` and send it
// `{ id, cmd, args }`, answered with `{ id, ok, result | error }`. A worker exits when its parent's
// IPC channel closes, so a killed benchmark leaves nothing behind.
import { writeFileSync } from 'node:fs';
import { connect as connectTcp, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { threadCpu } from './bench-common.ts';
import { Fleet, Handshakes, type CallHomeEndpoint, type HandshakeResult } from '../device-sim/index.ts';
import { Gateway, type Logger } from '../gateway/gateway.ts';
import { newDeviceRecord } from '../gateway/store/types.ts';
import { formatPin, generateKeyPair, type FirmwareManifest } from '../firmware-manifest/index.ts';

/** Epoch ms with sub-ms resolution, comparable across the bench's processes (same machine clock). */
const wallMs = () => performance.timeOrigin + performance.now();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every millisecond or so; rejects after `timeoutMs` naming `what`. */
async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(1);
  }
  return wallMs();
}

type Handlers = Record<string, (args: any) => unknown>;

function serve(roleHandlers: Handlers): void {
  // Every role reports the CPU it has used (user + system, ms), so a figure can be split by process.
  // loopMs: the event loop's own thread (10 ms ticks; NaN off Linux), the rest being the collector's helpers, fsyncs, workers.
  const cpu = () => {
    const u = process.cpuUsage();
    const threads = threadCpu();
    // with BENCH_THREADS: each thread's CPU by name (the event loop is the thread named by the pid)
    const byName: Record<string, number> = {};
    if (process.env.BENCH_THREADS) for (const [tid, t] of threads) byName[tid === String(process.pid) ? 'event loop' : `${t.name}+${Number(tid) - process.pid}`] = t.ms;
    return { ms: (u.user + u.system) / 1000, loopMs: threads.get(String(process.pid))?.ms ?? Number.NaN, threads: byName };
  };
  // A CPU profile of a window the benchmark chooses (one ramp of connects, one push), written where told;
  // with BENCH_HEAP=1 also a sampling heap profile of all that was allocated in it, collected or not
  // (FILE.heapprofile beside it): where the garbage collector's work comes from.
  let profiler: Session | null = null;
  const profileStart = async () => {
    if (profiler) throw new Error('a profile is running already');
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 500 });
    await profiler.post('Profiler.start');
    if (process.env.BENCH_HEAP) await profiler.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    return {};
  };
  const profileStop = async ({ file }: { file: string }) => {
    if (!profiler) throw new Error('no profile is running');
    const { profile } = await profiler.post('Profiler.stop');
    if (process.env.BENCH_HEAP) writeFileSync(file.replace(/\.cpuprofile$/, '.heapprofile'), JSON.stringify((await profiler.post('HeapProfiler.stopSampling')).profile));
    profiler.disconnect();
    profiler = null;
    writeFileSync(file, JSON.stringify(profile));
    return { file };
  };
  const handlers: Handlers = { cpu, profileStart, profileStop, ...roleHandlers };
  process.on('message', async (m: { id: number; cmd: string; args: unknown }) => {
    try {
      const handler = handlers[m.cmd];
      if (!handler) throw new Error(`unknown command "${m.cmd}"`);
      process.send!({ id: m.id, ok: true, result: await handler(m.args) });
    } catch (err) {
      process.send!({ id: m.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  });
  // Never outlive the benchmark.
  process.on('disconnect', () => process.exit(0));
  process.send!({ ready: true });
}

const memory = () => ({ rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed });

// ------------------------------------------------------------------------------------- gateway

function gatewayRole(): Handlers {
  let gw: Gateway | null = null;
  const heldAt = new Map<string, number>();
  // The hold is timed at the gateway's own 'rollout held' log line: the moment the engine's
  // effect is performed, with no polling delay.
  const logger: Logger = {
    debug() {},
    info() {},
    warn(obj, msg) {
      if (msg === 'rollout held') heldAt.set((obj as { rollout: string }).rollout, wallMs());
    },
    error(obj, msg) {
      process.stderr.write(`gateway error: ${msg} ${JSON.stringify(obj)}\n`);
    },
  };
  const g = () => {
    if (!gw) throw new Error('gateway not started');
    return gw;
  };
  let bundles = 0;

  return {
    /** The embedded gateway, or with `broker` the gateway as a client of those brokers (external broker mode, docs/architecture.md §8). */
    async start({ dir, commitWindowMs, broker }: { dir: string; commitWindowMs?: number; broker?: Array<{ url: string; username: string; password: string }> }) {
      const keyPath = join(dir, 'signing.key');
      writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
      const external = broker && { broker: broker.map((b) => ({ ...b, clientId: 'pinwave@bench' })) };
      gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath, host: '127.0.0.1', mqttPort: 0, tickIntervalMs: 1000, commitWindowMs, logger, ...external });
      return { port: gw.ports.tcp, publicPem: gw.signing!.publicPem };
    },
    /**
     * Device records written to the store as they are (each with its token hash and broker), the way
     * a fleet moved onto brokers whose plugin files were written in one go arrives: no control
     * command per device (docs/external-broker.md).
     */
    async seed({ devices, group = 'bench', model = 'bench-1', firmware = '1.0.0' }: { devices: Array<{ id: string; tokenHash: string; broker: string }>; group?: string; model?: string; firmware?: string }) {
      const t0 = performance.now();
      const now = Date.now();
      const r = await g().store.apply(devices.map((d) => ({ type: 'device.provision', device: newDeviceRecord({ id: d.id, group, model, firmware, tokenHash: d.tokenHash, createdAt: now, broker: d.broker }) })));
      if (!r.ok) throw new Error(`seeding refused: ${r.code} ${r.message}`);
      return { ms: performance.now() - t0 };
    },
    async provision({ ids, group = 'bench', model = 'bench-1', firmware = '1.0.0' }: { ids: string[]; group?: string; model?: string; firmware?: string }) {
      const t0 = performance.now();
      const { devices } = await g().provision(ids.map((id) => ({ id, group, model, firmware })));
      return { ms: performance.now() - t0, tokens: devices.map((d) => d.token) };
    },
    /** A bundle for `group`: pins of its own for api.example.com, or `endpoint` pinned to `pins`. */
    async bundle({ group = 'bench', endpoint, pins }: { group?: string; endpoint?: { host: string; port: number }; pins?: string[] } = {}) {
      const n = bundles++;
      const pin = (label: string) => formatPin(new Uint8Array(createHash('sha256').update(label).digest()));
      const endpoints = endpoint && pins ? [{ host: endpoint.host, port: endpoint.port, pins }] : [{ host: 'api.example.com', pins: [pin(`bench ${n}`), pin('backup')] }];
      const b = await g().createBundle({ group, endpoints }, 'bench');
      return { id: b.id, seq: b.seq, bytes: Buffer.from(b.bytes, 'base64') };
    },
    /** Creates (does not start) a rollout of `bundle` to a device list, or to a whole group. */
    async rollout({ bundle, devices, group, waves }: { bundle: string; devices?: string[]; group?: string; waves: object[] }) {
      const t0 = performance.now();
      const target = group !== undefined ? { group } : { devices: devices ?? [] };
      const { rollout, preflight } = await g().createRollout({ bundle, target, waves: waves as never, start: false }, 'bench');
      if (!preflight.ok) throw new Error(`pre-flight refused: ${JSON.stringify(preflight.problems)}`);
      return { id: rollout.id, ms: performance.now() - t0 };
    },
    async startRollout({ id }: { id: string }) {
      const at = wallMs();
      await g().startRollout(id, 'bench');
      return { at };
    },
    async abortRollout({ id }: { id: string }) {
      const r = await g().abortRollout(id, 'bench', 'bench');
      return { state: r.state };
    },
    /**
     * Resolves when wave 0 of `id` has counted `applied` (and `rejected`) and the gateway has decoded
     * `acksApplied` applied acks in all. Polls the rollout's summary every 20 ms (it copies the
     * target, 10,000 ids for a device-list rollout): for confirming, not for timing a burst — the
     * burst is timed at the clients, by their PUBACKs.
     */
    async waitCounted({ id, applied = 0, rejected = 0, acksApplied = 0, timeoutMs }: { id: string; applied?: number; rejected?: number; acksApplied?: number; timeoutMs: number }) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await g().getRollout(id);
        const w = r.waves[0];
        if (w.applied >= applied && w.rejected >= rejected && g().counters().acks.applied >= acksApplied) return { at: wallMs(), applied: w.applied, rejected: w.rejected, state: r.state };
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for rollout ${id}: ${applied} applied, ${rejected} rejected (has ${w.applied}, ${w.rejected})`);
        await sleep(20);
      }
    },
    async waitHeld({ id, timeoutMs }: { id: string; timeoutMs: number }) {
      await until(() => heldAt.has(id), timeoutMs, `rollout ${id} to be held`);
      const r = await g().getRollout(id);
      return { at: heldAt.get(id)!, state: r.state, reason: r.decisions.at(-1)?.reason };
    },
    async waitState({ id, state, timeoutMs }: { id: string; state: string; timeoutMs: number }) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const now = (await g().getRollout(id)).state;
        if (now === state) return { state: now };
        if (Date.now() > deadline) throw new Error(`rollout ${id} is ${now}, not ${state}, after ${timeoutMs} ms`);
        g().tick();
        await sleep(20);
      }
    },
    /** Resolves when `count` or more devices are connected (with `atMost`, when `count` or fewer are). */
    async waitConnected({ count, atMost = false, timeoutMs }: { count: number; atMost?: boolean; timeoutMs: number }) {
      await until(() => (atMost ? g().connectedCount() <= count : g().connectedCount() >= count), timeoutMs, `${atMost ? 'at most' : 'at least'} ${count} connected devices`);
      return { connected: g().connectedCount() };
    },
    async flush() {
      await g().flush();
      return { writes: g().counters().storeWrites };
    },
    /** The store's figures (docs/storage.md): writes, fsyncs, bytes written, snapshots. */
    storeStatus: () => g().storeStatus(),
    /** A firmware manifest the gateway judges its devices by (a health check makes them count `verified`). */
    addManifest({ manifest }: { manifest: FirmwareManifest }) {
      g().addManifest(manifest);
      return {};
    },
    /** Resolves when `count` devices of wave 0 of `id` are counted `status`, polled every 20 ms (the gateway's own work stays its own). */
    async waitStatus({ id, status, count, timeoutMs }: { id: string; status: string; count: number; timeoutMs: number }) {
      const counts = async () => ((await g().getRollout(id)).waves[0] as unknown as Record<string, number>)[status] ?? 0;
      const deadline = Date.now() + timeoutMs;
      let n = await counts();
      while (n < count && Date.now() < deadline) {
        await sleep(20);
        n = await counts();
      }
      return { counted: n };
    },
    /** When the gateway counted each of `ids` (epoch ms, null when not yet) and its status; the hold, timed at its log line. */
    async devicesCounted({ id, ids }: { id: string; ids: string[] }) {
      const devices = ids.map((d) => {
        const x = g().deviceRollout(d);
        return { status: x?.status ?? null, at: x?.at ?? null };
      });
      const r = await g().getRollout(id);
      const hold = r.decisions.find((d) => d.action === 'hold');
      return { devices, state: r.state, heldAt: heldAt.get(id) ?? null, hold: hold ? { at: hold.at, reason: hold.reason, endpoint: hold.endpoint ?? null } : null };
    },
    counters: () => g().counters(),
    memory,
    async stop() {
      await gw?.stop();
      gw = null;
      return {};
    },
  };
}

// ------------------------------------------------------------------------------------- bare aedes

function bareRole(): Handlers {
  let aedes: Aedes | null = null;
  let server: Server | null = null;
  const sockets = new Set<Socket>();
  let acks = 0;
  const b = () => {
    if (!aedes) throw new Error('broker not started');
    return aedes;
  };
  return {
    async start() {
      // The gateway's broker runs aedes' emitter with concurrency 0 (gateway/broker.ts): with the
      // default the reference itself dies at 15,000 devices, its emitter's queue drained by recursion.
      aedes = new Aedes({ maxClientsIdLength: 64, concurrency: 0 });
      await aedes.listen();
      aedes.on('publish', (packet, client) => {
        if (client && packet.topic.endsWith('/ack')) acks++;
      });
      const broker = aedes;
      server = createServer((socket) => broker.handle(socket));
      // The gateway's listener sets TCP_NODELAY (gateway/broker.ts); the same here, so the ratio
      // is the gateway's own work and not Nagle's.
      server.on('connection', (socket) => {
        socket.setNoDelay(true);
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(0, '127.0.0.1', () => resolve());
      });
      return { port: (server.address() as AddressInfo).port };
    },
    waitConnected: async ({ count, timeoutMs }: { count: number; timeoutMs: number }) => {
      await until(() => b().connectedClients >= count, timeoutMs, `${count} connected clients`);
      return { connected: b().connectedClients };
    },
    /** Publishes `bytes` QoS 1 to each device's bundle topic, 256 per turn as the gateway does, and times it to the last ack. */
    async push({ ids, bytes, timeoutMs }: { ids: string[]; bytes: Uint8Array; timeoutMs: number }) {
      const broker = b();
      const payload = Buffer.from(bytes);
      const from = acks;
      const t0 = wallMs();
      for (let i = 0; i < ids.length; i += 256) {
        if (i > 0) await new Promise<void>((r) => setImmediate(r));
        for (const id of ids.slice(i, i + 256)) {
          broker.publish({ cmd: 'publish', topic: `pinwave/v1/devices/${id}/bundle`, payload, qos: 1, retain: false, dup: false }, () => {});
        }
      }
      const t1 = await until(() => acks - from >= ids.length, timeoutMs, `${ids.length} acks at the bare broker`);
      return { ms: t1 - t0, at: t0 };
    },
    acks: () => ({ acks }),
    waitAcks: async ({ count, timeoutMs }: { count: number; timeoutMs: number }) => ({ at: await until(() => acks >= count, timeoutMs, `${count} acks at the bare broker`) }),
    memory,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (aedes ? aedes.close(() => r()) : r()));
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      return {};
    },
  };
}

// ------------------------------------------------------------------------------------- clients

interface Device {
  id: string;
  token: string;
}

function clientsRole(): Handlers {
  const clients = new Map<string, MqttClient>();
  let mode: 'auto' | 'hold' = 'hold';
  let autoAck: Buffer = Buffer.alloc(0);
  let received = 0;
  let publishErrors = 0;
  // In `auto` mode: acks whose PUBACK came back, and when the last one did.
  let autoAcked = 0;
  let lastAutoAckAt = 0;

  const onError = () => {
    publishErrors++;
  };

  // presence (docs/architecture.md §5): a will of `offline` and `online` once connected, both retained,
  // as devices on an external broker leave them; the gateway knows who is online from nothing else
  function connectOne(url: string, d: Device, state: Buffer, timeoutMs: number, presence = false): Promise<MqttClient> {
    return new Promise((resolve, reject) => {
      const presenceTopic = `pinwave/v1/devices/${d.id}/presence`;
      const will = presence ? { will: { topic: presenceTopic, payload: Buffer.from('offline'), qos: 1 as const, retain: true } } : {};
      const c = mqtt.connect(url, { clientId: d.id, username: d.id, password: d.token, clean: false, reconnectPeriod: 0, connectTimeout: timeoutMs, keepalive: 120, ...will });
      const ackTopic = `pinwave/v1/devices/${d.id}/ack`;
      const timer = setTimeout(() => fail(new Error(`${d.id}: not connected after ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        c.end(true);
        reject(err);
      };
      c.once('error', fail);
      c.once('connect', () => {
        c.subscribe(`pinwave/v1/devices/${d.id}/bundle`, { qos: 1 }, (err) => {
          if (err) return fail(err);
          c.publish(`pinwave/v1/devices/${d.id}/state`, state, { qos: 1 }, (err2) => {
            if (err2) return fail(err2);
            const done = () => {
              clearTimeout(timer);
              c.off('error', fail);
              c.on('error', () => {}); // a dropped link shows as a missing ack, which the bench times out on
              resolve(c);
            };
            if (!presence) return done();
            c.publish(presenceTopic, 'online', { qos: 1, retain: true }, (err3) => (err3 ? fail(err3) : done()));
          });
        });
      });
      c.on('message', (topic) => {
        if (!topic.endsWith('/bundle')) return;
        received++;
        if (mode === 'auto')
          c.publish(ackTopic, autoAck, { qos: 1 }, (err) => {
            if (err) return onError();
            autoAcked++;
            lastAutoAckAt = wallMs();
          });
      });
    });
  }

  return {
    /** Connects `devices`, `batch` at a time (a ramp: no SYN flood); resolves with the time taken. */
    async connect({ url, devices, batch, state, timeoutMs, presence }: { url: string; devices: Device[]; batch: number; state: Uint8Array; timeoutMs: number; presence?: boolean }) {
      const payload = Buffer.from(state);
      const t0 = wallMs();
      for (let i = 0; i < devices.length; i += batch) {
        const made = await Promise.all(devices.slice(i, i + batch).map((d) => connectOne(url, d, payload, timeoutMs, presence)));
        made.forEach((c, j) => clients.set(devices[i + j].id, c));
      }
      return { ms: wallMs() - t0, connected: clients.size };
    },
    mode({ to, ack }: { to: 'auto' | 'hold'; ack?: Uint8Array }) {
      mode = to;
      autoAcked = 0;
      lastAutoAckAt = 0;
      if (ack) autoAck = Buffer.from(ack);
      return { mode };
    },
    received: () => ({ received, publishErrors }),
    autoAcked: () => ({ acked: autoAcked, lastAt: lastAutoAckAt }),
    resetReceived() {
      received = 0;
      return {};
    },
    /**
     * Publishes `bytes` on the ack topic of each id in `ids` (in order, duplicates allowed), as fast
     * as mqtt.js writes; `crossing` is published, and timed, when the loop reaches its index.
     * Resolves once every PUBACK is back, with each ack's latency (publish → its PUBACK, ms, in
     * `ids` order) and when the last PUBACK came.
     */
    async ack({ ids, bytes, crossing, timeoutMs = 120_000 }: { ids: string[]; bytes: Uint8Array; crossing?: { id: string; bytes: Uint8Array; index: number }; timeoutMs?: number }) {
      const payload = Buffer.from(bytes);
      const latencies = new Float64Array(ids.length);
      let done = 0;
      let lastAckAt = 0;
      let crossingAt: number | null = null;
      const publishCrossing = () => {
        crossingAt = wallMs();
        clients.get(crossing!.id)!.publish(`pinwave/v1/devices/${crossing!.id}/ack`, Buffer.from(crossing!.bytes), { qos: 1 }, (err) => err && onError());
      };
      const firstAt = wallMs();
      for (let i = 0; i < ids.length; i++) {
        if (crossing && i === crossing.index) publishCrossing();
        const c = clients.get(ids[i]);
        if (!c) throw new Error(`no client for ${ids[i]} in this worker`);
        const at = wallMs();
        c.publish(`pinwave/v1/devices/${ids[i]}/ack`, payload, { qos: 1 }, (err) => {
          if (err) onError();
          lastAckAt = wallMs();
          latencies[i] = lastAckAt - at;
          done++;
        });
      }
      if (crossing && crossingAt === null) publishCrossing();
      const writtenAt = wallMs();
      await until(() => done >= ids.length, timeoutMs, `${ids.length} PUBACKs`);
      return { firstAt, writtenAt, lastAckAt, crossingAt, latencies: Array.from(latencies) };
    },
    /** Publishes `bytes` on the ack topic of each id in `ids`, one at a time: the next once the PUBACK of the one before is back. Resolves with each latency, ms. */
    async ackPaced({ ids, bytes, timeoutMs = 60_000 }: { ids: string[]; bytes: Uint8Array; timeoutMs?: number }) {
      const payload = Buffer.from(bytes);
      const latencies: number[] = [];
      for (const id of ids) {
        const c = clients.get(id);
        if (!c) throw new Error(`no client for ${id} in this worker`);
        const at = wallMs();
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${id}: no PUBACK within ${timeoutMs} ms`)), timeoutMs);
          c.publish(`pinwave/v1/devices/${id}/ack`, payload, { qos: 1 }, (err) => {
            clearTimeout(timer);
            if (err) reject(err);
            else resolve();
          });
        });
        latencies.push(wallMs() - at);
      }
      return { latencies };
    },
    async closeAll() {
      const all = [...clients.values()];
      clients.clear();
      for (const c of all) c.end(true);
      return { closed: all.length };
    },
    flood,
    memory,
  };
}

// ------------------------------------------------------------------------------------- pusher

/**
 * The floor's other end on real brokers (scripts/bench-scale): one mqtt.js client per broker,
 * subscribed to every device's `ack`, that publishes a payload QoS 1 to each device's `bundle`
 * topic (256 per turn of the event loop, as the gateway does) and times the last ack and the 95th
 * percentile one.
 */
function pusherRole(): Handlers {
  const clients: MqttClient[] = [];
  let acks = 0;
  return {
    async start({ urls }: { urls: string[] }) {
      for (const [i, url] of urls.entries()) {
        const c = await mqtt.connectAsync(url, { clientId: `pinwave-bench-pusher-${i}`, clean: true, reconnectPeriod: 0, keepalive: 120 });
        c.on('message', () => void acks++);
        await c.subscribeAsync('pinwave/v1/devices/+/ack', { qos: 1 });
        clients.push(c);
      }
      return { clients: clients.length };
    },
    /** `ids[b]` are the devices on broker b. */
    async push({ ids, bytes, timeoutMs }: { ids: string[][]; bytes: Uint8Array; timeoutMs: number }) {
      const payload = Buffer.from(bytes);
      const total = ids.reduce((n, list) => n + list.length, 0);
      const from = acks;
      const t0 = wallMs();
      let p95: number | null = null;
      const longest = Math.max(...ids.map((l) => l.length));
      for (let i = 0; i < longest; i += 256) {
        if (i > 0) await new Promise<void>((r) => setImmediate(r));
        ids.forEach((list, b) => {
          for (const id of list.slice(i, i + 256)) clients[b].publish(`pinwave/v1/devices/${id}/bundle`, payload, { qos: 1 });
        });
      }
      const t1 = await until(() => {
        if (p95 === null && acks - from >= Math.ceil(total * 0.95)) p95 = wallMs();
        return acks - from >= total;
      }, timeoutMs, `${total} acks at the pusher`);
      return { ms: t1 - t0, p95Ms: (p95 ?? t1) - t0 };
    },
    async stop() {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      return {};
    },
    memory,
  };
}

// ------------------------------------------------------------------------------------- flood

// MQTT 3.1.1 framing by hand (§2.2): mqtt.js would queue a flood in its own memory instead of
// letting the socket push back.
const mqttString = (s: string) => {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};
function mqttFrame(type: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const length: number[] = [];
  let n = body.length;
  do {
    length.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.concat([Buffer.from([type, ...length]), body]);
}

/** Packets the flooding device may have sent beyond the PUBACKs it has had. */
const FLOOD_IN_FLIGHT = 4096;

/**
 * Device `id` publishes `payload` on its `kind` topic at QoS 1, 64 packets a write, for `ms`, as
 * fast as the socket takes them (waiting for 'drain', and for PUBACKs when FLOOD_IN_FLIGHT are
 * unanswered), then waits for the PUBACK of each.
 * Resolves with how many it sent and when the first went and the last PUBACK came.
 */

async function flood({ port, id, token, kind, payload, ms }: { port: number; id: string; token: string; kind: string; payload: Uint8Array; ms: number }) {
  const socket = connectTcp(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let buffered: Buffer = Buffer.alloc(0);
  let connacked = () => {};
  const connack = new Promise<void>((resolve) => (connacked = resolve));
  let pubacks = 0;
  let closed = false;
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    // every packet the gateway sends here is 4 bytes or longer; read type and Remaining Length
    while (buffered.length >= 2) {
      let length = 0;
      let i = 1;
      for (let shift = 0; i < buffered.length; i++, shift += 7) {
        length += (buffered[i] & 0x7f) << shift;
        if ((buffered[i] & 0x80) === 0) break;
      }
      if (i >= buffered.length || buffered.length < i + 1 + length) break;
      const type = buffered[0] >> 4;
      if (type === 2) connacked();
      if (type === 4) pubacks++;
      buffered = buffered.subarray(i + 1 + length);
    }
  });
  // clean session, keepalive 60 s
  socket.write(mqttFrame(0x10, mqttString('MQTT'), Buffer.from([4, 0xc2, 0, 60]), mqttString(id), mqttString(id), mqttString(token)));
  await connack;
  const topic = mqttString(`pinwave/v1/devices/${id}/${kind}`);
  const body = Buffer.from(payload);
  let packetId = 0;
  let sent = 0;
  const firstAt = wallMs();
  while (!closed && wallMs() - firstAt < ms) {
    const batch: Buffer[] = [];
    for (let k = 0; k < 64; k++) {
      packetId = (packetId % 65535) + 1;
      batch.push(mqttFrame(0x32, topic, Buffer.from([packetId >> 8, packetId & 0xff]), body));
    }
    sent += batch.length;
    // The gateway reads a connection's next packet once it has handled (committed) the one before,
    // so the socket's buffers alone would hold minutes of its work: wait for 'drain', or for the
    // PUBACKs to come within FLOOD_IN_FLIGHT of what was sent, never past the flood's end.
    const ok = socket.write(Buffer.concat(batch));
    const end = firstAt + ms;
    if (!ok) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), sleep(Math.max(0, end - wallMs()))]);
    while (!closed && sent - pubacks > FLOOD_IN_FLIGHT && wallMs() < end) await sleep(1);
  }
  let lastAckAt: number;
  try {
    lastAckAt = await until(() => closed || pubacks >= sent, 30_000, `${sent} PUBACKs`);
  } catch {
    socket.destroy();
    throw new Error(`the flooding device had ${pubacks} of ${sent} PUBACKs 30 s after its last publish`);
  }
  socket.destroy();
  if (pubacks < sent) throw new Error(`the gateway closed the flooding device after ${pubacks} of ${sent} PUBACKs`);
  return { sent, firstAt, lastAckAt };
}

// ------------------------------------------------------------------------------------- fleet

interface FleetStart {
  /** one fleet per name in this process: `warm` and `main` in bench-sim */
  name: string;
  url: string;
  manifest: FirmwareManifest;
  group: string;
  /** the whole fleet: this process runs the devices of its shard */
  devices: Device[];
  shard: { index: number; count: number };
  verifyEach: boolean;
  /** connects in flight at once in this process (Fleet's ramp) */
  perTick: number;
  keepaliveSeconds: number;
  /** endpoints the devices check (their health checks, docs/pin-safety.md); default none */
  endpoints?: CallHomeEndpoint[];
}

/** The fleet's handshakes, each timed from its ask to its result (wall ms): what the devices waited for. */
class TimedHandshakes extends Handshakes {
  readonly timed: number[] = [];
  /**
   * Served pins a fresh ask is answered with at once (in the next turn of the event loop), no TLS:
   * the revert path with its handshake taken out. Null (the default): real handshakes.
   */
  instant: string[] | null = null;
  /** wall ms of the first fresh ask and the last fresh result since the timeline was last read */
  span: { from: number; to: number } | null = null;
  override get(endpoint: CallHomeEndpoint, o: { fresh?: boolean } = {}): Promise<HandshakeResult> {
    const t0 = wallMs();
    const instant = this.instant;
    if (o.fresh && instant) {
      return new Promise((resolve) =>
        setImmediate(() => {
          this.timed.push(wallMs() - t0);
          resolve({ ok: true, pins: [...instant], at: Date.now() });
        }),
      );
    }
    if (o.fresh) this.span ??= { from: t0, to: t0 };
    return super.get(endpoint, o).then((r) => {
      if (o.fresh) {
        const t1 = wallMs();
        this.timed.push(t1 - t0);
        if (this.span) this.span.to = Math.max(this.span.to, t1);
      }
      return r;
    });
  }
}

/** N handshakes asked at once, `concurrency` in flight, each from its ask to its result (ms): the floor a health check is held to; `spanMs`: the first ask to the last result. */
async function handshakeFloor({ endpoint, count, concurrency }: { endpoint: CallHomeEndpoint; count: number; concurrency: number }) {
  const h = new Handshakes({ share: false, concurrency });
  let failed = 0;
  const from = wallMs();
  const ms = await Promise.all(
    Array.from({ length: count }, async () => {
      const t0 = wallMs();
      const r = await h.get(endpoint, { fresh: true });
      if (!r.ok) failed++;
      return wallMs() - t0;
    }),
  );
  return { ms, failed, spanMs: wallMs() - from };
}

function fleetRole(): Handlers {
  const fleets = new Map<string, Fleet>();
  const timelines = new Map<string, { handshakes: TimedHandshakes; verifying: Map<string, number>; settled: Map<string, { status: string; at: number }> }>();
  const f = (name: string) => {
    const fleet = fleets.get(name);
    if (!fleet) throw new Error(`no fleet "${name}" in this worker`);
    return fleet;
  };
  return {
    /**
     * Starts a shard of a Fleet (no call-home on a schedule; pin checks only with `endpoints`) and
     * resolves once each device has made its first connect. Each device's window opening and its
     * final ack are timed (wall ms), and the fleet's fresh handshakes.
     */
    async fleetStart(o: FleetStart) {
      if (fleets.has(o.name)) throw new Error(`fleet "${o.name}" is running already`);
      const timeline = { handshakes: new TimedHandshakes({ share: true }), verifying: new Map<string, number>(), settled: new Map<string, { status: string; at: number }>() };
      timelines.set(o.name, timeline);
      const fleet = new Fleet({
        handshakes: timeline.handshakes,
        endpoints: o.endpoints,
        callHomeOnApply: false,
        onOutcome: (out) => {
          if (out.status === 'verifying') timeline.verifying.set(out.deviceId, wallMs());
          else timeline.settled.set(out.deviceId, { status: out.status, at: wallMs() });
        },
        url: o.url,
        models: [{ manifest: o.manifest }],
        devices: o.devices.map((d) => ({ ...d, model: o.manifest.model, group: o.group })),
        shard: o.shard,
        verifyEach: o.verifyEach,
        ramp: { perTick: o.perTick },
        callHomeSeconds: 0,
        keepaliveSeconds: o.keepaliveSeconds,
        seed: o.name,
      });
      fleets.set(o.name, fleet);
      const t0 = wallMs();
      await fleet.start();
      const s = fleet.summary();
      return { ms: wallMs() - t0, devices: s.devices, connected: s.connected, failed: s.connects.failed };
    },
    fleetSummary({ name }: { name: string }) {
      const s = f(name).summary();
      return { devices: s.devices, connected: s.connected, acked: s.acked, rejected: s.rejected, unacked: s.unacked, seqs: s.seqs, connects: s.connects, verifications: s.verifications };
    },
    /** Each device's window opening and final ack (wall ms), and the fleet's fresh handshakes (ms); then forgotten. */
    fleetTimeline({ name }: { name: string }) {
      const t = timelines.get(name)!;
      const span = t.handshakes.span;
      const out = { verifying: Object.fromEntries(t.verifying), settled: Object.fromEntries(t.settled), handshakes: [...t.handshakes.timed], handshakeSpanMs: span ? span.to - span.from : 0 };
      t.verifying.clear();
      t.settled.clear();
      t.handshakes.timed.length = 0;
      t.handshakes.span = null;
      return out;
    },
    /** Every device checks its endpoints now with a handshake of its own, under the pins active now: how many fail a pin check. */
    async fleetCallHome({ name }: { name: string }) {
      const fleet = f(name);
      await fleet.idle();
      fleet.forgetHandshakes();
      await fleet.callHome();
      const s = fleet.summary();
      return { failing: s.failing, seqs: s.seqs, reverted: s.reverted, devices: s.devices };
    },
    handshakeFloor,
    /** From now on the fleet's health checks are answered at once with `pins` (no TLS), or by real handshakes again with null. */
    fleetInstantChecks({ name, pins }: { name: string; pins: string[] | null }) {
      f(name);
      timelines.get(name)!.handshakes.instant = pins;
      return {};
    },
    async fleetStop({ name }: { name: string }) {
      await f(name).stop();
      fleets.delete(name);
      timelines.delete(name);
      return {};
    },
  };
}

const role = process.argv[2];
const roles: Record<string, () => Handlers> = { gateway: gatewayRole, bare: bareRole, clients: clientsRole, pusher: pusherRole, sim: () => ({ ...clientsRole(), ...fleetRole() }) };
if (!roles[role] || !process.send) {
  process.stderr.write(`bench-worker is forked by bench-gateway, bench-sim or bench-scale with a role (${Object.keys(roles).join(', ')}), got "${role}"\n`);
  process.exit(2);
}
serve(roles[role]());
