// Benchmark of the gateway's own part of an ack (docs/architecture.md §1, "The path of an ack"; §7),
// without sockets or aedes: a gateway on the embedded store in a temp dir, N provisioned devices in a
// one-wave rollout, and N acks handed to it as the broker hands them over (Gateway.deviceMessage),
// up to --in-flight waiting for their commit at once, as devices waiting for PUBACKs. Rounds before
// the timed one warm the code up (a rollout each, aborted after). Printed, with the load average:
// wall time per ack, and the CPU per ack of the event loop and of every other thread of the process
// (the garbage collector's helpers, the store's fsyncs and its snapshot worker), read from
// /proc/self/task. What bench-gateway's ack burst costs beyond aedes' own is this, and what aedes and
// the gateway cost together on one event loop on top (scripts/bench-gateway.ts).
//
// With --profile FILE, the event loop's CPU profile of the timed round alone (set-up and warm-up
// left out) is written to FILE, and a sampling heap profile of everything allocated in it,
// collected or not, beside it (FILE.heapprofile): where the garbage collector's work comes from.
//
//   npx tsc -p . && node dist/scripts/bench-ingest.js [--devices 10000] [--in-flight 2000] [--warm 2] [--profile FILE]
import { Session } from 'node:inspector/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, uintFlag, UsageError } from './args.ts';
import { threadCpu } from './bench-common.ts';
import { encodeAck, formatPin, generateKeyPair } from '../firmware-manifest/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import type { Logger } from '../gateway/logger.ts';

const USAGE = `Usage: node dist/scripts/bench-ingest.js [--devices N] [--in-flight N] [--warm N]

--devices    devices, one ack each per round (default 10000)
--in-flight  acks waiting for their commit at once (default 2000)
--warm       untimed rounds first (default 2)
--profile    FILE: the event loop's CPU profile of the timed round (and FILE.heapprofile: what it allocated)`;

const GROUP = 'bench';
const quiet: Logger = { debug() {}, info() {}, warn() {}, error: (obj, msg) => console.error(`gateway error: ${msg} ${JSON.stringify(obj)}`) };

/** A CPU profile (0.5 ms samples) and a sampling heap profile of all that is allocated, collected or not, from now. */
async function startProfile(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  await session.post('Profiler.start');
  return session;
}

async function stopProfile(session: Session, file: string): Promise<void> {
  const { profile } = await session.post('Profiler.stop');
  const heap = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  writeFileSync(file, JSON.stringify(profile));
  writeFileSync(`${file.replace(/\.cpuprofile$/, '')}.heapprofile`, JSON.stringify(heap.profile));
  console.log(`profile of the timed round: ${file} (what it allocated: ${file.replace(/\.cpuprofile$/, '')}.heapprofile)`);
}

async function main(args: string[]): Promise<number> {
  const { values } = parse(args, { devices: { type: 'string' }, 'in-flight': { type: 'string' }, warm: { type: 'string' }, profile: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const N = uintFlag(values.devices ?? '10000', 'devices', USAGE, [1, 100_000]);
  const inFlight = uintFlag(values['in-flight'] ?? '2000', 'in-flight', USAGE, [1, 100_000]);
  const warm = uintFlag(values.warm ?? '2', 'warm', USAGE, [0, 20]);
  console.log(`pinwave bench-ingest: ${N.toLocaleString('en-US')} devices, node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-ingest-'));
  try {
    const keyPath = join(dir, 'signing.key');
    writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
    const gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath, host: '127.0.0.1', mqttPort: 0, logger: quiet });
    try {
      const ids = Array.from({ length: N }, (_, i) => `dev-${String(i).padStart(6, '0')}`);
      for (let i = 0; i < N; i += 10_000) await gw.provision(ids.slice(i, i + 10_000).map((id) => ({ id, group: GROUP, model: 'bench-1', firmware: '1.0.0' })));
      const profile = values.profile;
      const round = async (k: number, profiled: boolean) => {
        const pin = (label: string) => formatPin(new Uint8Array(Buffer.alloc(32, label)));
        const b = await gw.createBundle({ group: GROUP, endpoints: [{ host: 'api.example.com', pins: [pin(`round ${k}`), pin('backup')] }] }, 'bench');
        const { rollout } = await gw.createRollout({ bundle: b.id, target: { devices: ids }, waves: [{ size: '100%', timeoutSeconds: 3600 }], start: false }, 'bench');
        await gw.startRollout(rollout.id, 'bench');
        const payload = Buffer.from(encodeAck({ seq: b.seq, bundleId: b.id, status: 'applied' }));
        const session = profiled ? await startProfile() : null;
        const threads0 = threadCpu();
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        let next = 0;
        const lane = async () => {
          while (next < N) await gw.deviceMessage(ids[next++], 'ack', payload);
        };
        await Promise.all(Array.from({ length: Math.min(inFlight, N) }, lane));
        const wallMs = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        const threads1 = threadCpu();
        if (session !== null) await stopProfile(session, profile!);
        const summary = await gw.getRollout(rollout.id);
        if (summary.waves[0].applied !== N) throw new Error(`round ${k}: ${summary.waves[0].applied} of ${N} acks counted`);
        if (summary.state === 'running' || summary.state === 'held') await gw.abortRollout(rollout.id, 'bench', 'the next round');
        return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, threads0, threads1 };
      };
      for (let k = 1; k <= warm; k++) await round(k, false);
      const r = await round(warm + 1, profile !== undefined);
      const us = (ms: number) => `${((ms * 1000) / N).toFixed(1)} µs`;
      const loopTid = String(process.pid);
      let loop = 0;
      let others = 0;
      for (const [tid, t] of r.threads1) {
        const d = t.ms - (r.threads0.get(tid)?.ms ?? 0);
        if (process.env.BENCH_THREADS) console.log(`thread ${t.name} ${tid}: ${us(d)}`);
        if (tid === loopTid) loop += d;
        else others += d;
      }
      const rows: Array<[string, string]> = [
        [`acks, ${Math.min(inFlight, N).toLocaleString('en-US')} in flight, after ${warm} warm-up round${warm === 1 ? '' : 's'}`, N.toLocaleString('en-US')],
        ['wall time per ack', us(r.wallMs)],
        ['acks/s', Math.round((N * 1000) / r.wallMs).toLocaleString('en-US')],
        ['CPU per ack, the whole process', us(r.cpuMs)],
        ...(r.threads1.size > 0
          ? ([
              ['  of it on the event loop (10 ms ticks)', us(loop)],
              ["  on the other threads (the collector's helpers, fsyncs, the snapshot worker)", us(others)],
            ] as Array<[string, string]>)
          : []),
      ];
      const w = Math.max(...rows.map(([k]) => k.length));
      for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
    } finally {
      await gw.stop();
    }
  } finally {
    if (process.env.BENCH_KEEP) console.log(`kept ${dir}`); else rmSync(dir, { recursive: true, force: true });
  }
  console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(err instanceof UsageError ? `bench-ingest: ${err.message}\n\n${USAGE}` : err);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
