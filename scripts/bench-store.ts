// Benchmark of the Store of changes (docs/storage.md), no sockets: a synthetic ack workload that
// applies what the rollout engine changes per ack — the device's seq, bundle and last-seen, a
// history entry, its status in the rollout, the wave's counts —
//
//   [{ device.patch }, { device.history }, { rollout.member }, { rollout.wave add }]
//
// with up to --in-flight acks waiting for their commit at once (as devices waiting for PUBACKs),
// against the embedded store and PostgreSQL, at each fleet size. Printed, with the goal beside:
// ack ingest (>= 20,000 acks/s), disk bytes per ack, snapshots included (<= 1 KiB), fsyncs per
// 10,000 acks, a snapshot's time and the longest event-loop block while it is written (<= 50 ms at
// 100,000), and the load (restart) time with a full journal; the disk's fdatasync floor measured
// in the same run, and the load average (a shared machine moves every figure).
//
//   npm run bench:store -- [--devices 10000,100000] [--acks N] [--in-flight 2000] [--no-pg] [--pg-admin URL]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { parse, uintFlag, UsageError } from './args.ts';
import { fdatasyncFloor } from './bench-common.ts';
import { hashDeviceToken } from '../gateway/credentials.ts';
import type { Change, ChangeStore } from '../gateway/store/changes.ts';
import { EmbeddedStore } from '../gateway/store/embedded.ts';
import { PostgresStore } from '../gateway/store/postgres.ts';
import { newDeviceRecord } from '../gateway/store/types.ts';

const USAGE = `Usage: node dist/scripts/bench-store.js [--devices 10000,100000] [--acks N] [--in-flight 2000] [--no-pg] [--pg-admin URL]

--devices    fleet sizes, comma-separated (default 10000,100000)
--acks       acks per run (default: 2 x devices for the embedded store, so snapshots are paid; 50,000 for PostgreSQL)
--in-flight  acks waiting for their commit at once (default 2000)
--no-pg      skip PostgreSQL
--pg-admin   where to create the benchmark's database (default postgres://postgres@127.0.0.1:5432/postgres)`;

const T0 = 1_700_000_000_000;
const BUNDLE = 'ab'.repeat(32);
const ROLLOUT = 'r-door-locks-7-k3x9a';
const HASH = hashDeviceToken('bench');
const id = (i: number) => `lock-${String(i).padStart(6, '0')}`;

interface Row {
  store: string;
  devices: number;
  acks: number;
  acksPerSec: number;
  bytesPerAck: number | null;
  fsyncsPer10k: number;
  snapshots: number | null;
  snapshotMs: number | null;
  snapshotBlockMs: number | null;
  ingestBlockMs: number;
  loadMs: number | null;
  journalMiB: number | null;
}

function ack(i: number, devices: number): Change[] {
  const d = id(i % devices);
  const at = T0 + i;
  return [
    { type: 'device.patch', id: d, set: { seq: 7, bundleId: BUNDLE, lastSeen: at } },
    { type: 'device.history', id: d, entry: { at, rolloutId: ROLLOUT, bundleId: BUNDLE, seq: 7, event: 'applied' } },
    { type: 'rollout.member', id: ROLLOUT, device: d, status: 'applied', at },
    // A device's status moves on each ack it sends; alternating keeps the counts within the fleet.
    { type: 'rollout.wave', id: ROLLOUT, wave: 0, add: { count: Math.floor(i / devices) % 2 === 0 ? { pending: -1, applied: 1 } : { applied: -1, pending: 1 } } },
  ];
}

/** The fleet, a bundle, and one running rollout over every device. */
async function fill(store: ChangeStore, devices: number): Promise<void> {
  for (let from = 0; from < devices; from += 10_000) {
    const batch: Change[] = [];
    for (let i = from; i < Math.min(devices, from + 10_000); i++) {
      batch.push({ type: 'device.provision', device: newDeviceRecord({ id: id(i), group: 'door-locks', model: 'dl-200', firmware: '1.4.2', tokenHash: HASH, createdAt: T0 }) });
    }
    const r = await store.apply(batch);
    if (!r.ok) throw new Error(`provisioning: ${r.message}`);
  }
  const members = Array.from({ length: devices }, (_, i) => id(i));
  const thresholds = { ackThreshold: 0.95, failureThreshold: 0.02, minDevices: 5, maxUnreachable: 0.5, timeoutSeconds: 3600, soakSeconds: 0, requireVerified: true };
  const r = await store.apply([
    { type: 'bundle.put', bundle: { id: BUNDLE, group: 'door-locks', seq: 7, size: 200, createdAt: T0, bytes: 'hCBBoQEnoFhA', createdBy: 'bench' } },
    {
      type: 'rollout.create',
      rollout: {
        format: 1, id: ROLLOUT, bundle: { id: BUNDLE, seq: 7, group: 'door-locks' }, target: { group: 'door-locks' },
        plan: { waves: [{ size: '100%', ...thresholds }], onMiss: 'hold', seed: ROLLOUT }, state: 'running', createdAt: T0, startedAt: T0, endedAt: null, wave: 0,
        waves: [{ index: 0, planIndex: 0, size: '100%', thresholds, state: 'active', startedAt: T0, deadline: T0 + 3_600_000, soakUntil: null, endedAt: null, swept: false, count: { pending: devices, sent: 0, applied: 0, rejected: 0, timed_out: 0, failing: 0, unreachable: 0, verifying: 0, verified: 0, unverified: 0, reverted: 0 }, rejectedByReason: {} }],
        createdBy: 'bench', previousBundle: null, rollbackOf: null, rolledBackBy: null,
      },
      members: [members],
    },
  ]);
  if (!r.ok) throw new Error(`rollout: ${r.message}`);
}

/** Applies `acks` acks, `inFlight` at a time; acks/s and the event loop's longest block meanwhile. */
async function ingest(store: ChangeStore, from: number, acks: number, devices: number, inFlight: number): Promise<{ perSec: number; blockMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const t0 = performance.now();
  let next = from;
  const end = from + acks;
  const lane = async () => {
    while (next < end) {
      const r = await store.apply(ack(next++, devices));
      if (!r.ok) throw new Error(`ack refused: ${r.message}`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const ms = performance.now() - t0;
  h.disable();
  return { perSec: (acks / ms) * 1000, blockMs: h.max / 1e6 };
}

async function embedded(devices: number, acks: number, inFlight: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-store-'));
  try {
    let store = new EmbeddedStore({ dir });
    await store.open();
    await fill(store, devices);
    await store.snapshotNow(); // start from a snapshot of the filled fleet, as a running gateway would
    // Warm-up, so the measured run has the history lengths of a fleet that has acked before.
    await ingest(store, 0, Math.min(devices, 20_000), devices, inFlight);
    await store.snapshotSettled();
    const before = store.status();
    const run = await ingest(store, devices, acks, devices, inFlight);
    await store.snapshotSettled();
    const after = store.status();
    const written = after.bytesWritten - before.bytesWritten;
    const snapshots = after.snapshots - before.snapshots;

    // One snapshot on its own, timed, with the event loop watched while acks keep coming.
    const h = monitorEventLoopDelay({ resolution: 5 });
    const busy = ingest(store, devices + acks, 20_000, devices, Math.min(inFlight, 500));
    h.enable();
    const s0 = store.status();
    await store.snapshotNow();
    h.disable();
    await busy;
    const snapshotMs = store.status().lastSnapshotMs ?? NaN;
    const snapshotBytes = store.status().bytesWritten - s0.bytesWritten;

    // A full journal (as big as the last snapshot: the next ack would start a snapshot), then a restart.
    let i = devices + acks + 20_000;
    const target = Math.max(0, snapshotBytes - 64 * 1024);
    while (store.journalBytes < target) {
      await ingest(store, i, 20_000, devices, inFlight);
      i += 20_000;
      if (store.status().snapshots > s0.snapshots + 1) break; // threshold crossed: the journal restarted
    }
    const journalMiB = store.journalBytes / 2 ** 20;
    await store.close();
    const l0 = performance.now();
    store = new EmbeddedStore({ dir });
    await store.open();
    const loadMs = performance.now() - l0;
    await store.close();
    return {
      store: 'embedded',
      devices,
      acks,
      acksPerSec: run.perSec,
      bytesPerAck: written / acks,
      fsyncsPer10k: ((after.fsyncs - before.fsyncs) / acks) * 10_000,
      snapshots,
      snapshotMs,
      snapshotBlockMs: h.max / 1e6,
      ingestBlockMs: run.blockMs,
      loadMs,
      journalMiB,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgres(admin: string, devices: number, acks: number, inFlight: number): Promise<Row> {
  const name = `pinwave_bench_${randomBytes(5).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect().catch((err: Error) => {
    throw new UsageError(`PostgreSQL is not reachable at ${admin} (${err.message}); run with --no-pg to skip it`, USAGE);
  });
  await c.query(`CREATE DATABASE ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  try {
    const store = new PostgresStore({ url: url.toString() });
    await store.open();
    await fill(store, devices);
    await ingest(store, 0, Math.min(devices, 10_000), devices, inFlight);
    const wal = async () => Number((await c.query('SELECT wal_bytes FROM pg_stat_wal')).rows[0].wal_bytes);
    const w0 = await wal();
    const before = store.status();
    const run = await ingest(store, devices, acks, devices, inFlight);
    const after = store.status();
    const walBytes = (await wal()) - w0;
    await store.close();
    return {
      store: 'postgres',
      devices,
      acks,
      acksPerSec: run.perSec,
      bytesPerAck: walBytes / acks, // WAL of the whole cluster: other users' writes count too
      fsyncsPer10k: ((after.fsyncs - before.fsyncs) / acks) * 10_000,
      snapshots: null,
      snapshotMs: null,
      snapshotBlockMs: null,
      ingestBlockMs: run.blockMs,
      loadMs: null,
      journalMiB: null,
    };
  } finally {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  }
}

const f = (v: number | null, digits = 0) => (v === null || Number.isNaN(v) ? 'n/a' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

export async function main(args: string[]): Promise<number> {
  const { values } = parse(args, { devices: { type: 'string' }, acks: { type: 'string' }, 'in-flight': { type: 'string' }, 'no-pg': { type: 'boolean' }, 'pg-admin': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const sizes = (values.devices ?? '10000,100000').split(',').map((s) => uintFlag(s, 'devices', USAGE));
  if (sizes.some((n) => n < 1)) throw new UsageError('--devices: each size must be at least 1', USAGE);
  const inFlight = uintFlag(values['in-flight'] ?? '2000', 'in-flight', USAGE);
  const admin = values['pg-admin'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  console.log(`pinwave bench-store: node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const floor = await fdatasyncFloor(tmpdir());
  console.log(`fdatasync floor (512 B append + fdatasync, ${tmpdir()}): p50 ${floor.p50.toFixed(3)} ms, p99 ${floor.p99.toFixed(3)} ms`);
  const rows: Row[] = [];
  for (const n of sizes) {
    const acks = values.acks !== undefined ? uintFlag(values.acks, 'acks', USAGE) : Math.max(50_000, 2 * n);
    rows.push(await embedded(n, acks, inFlight));
    console.log(`  embedded ${n}: done, load average ${loadavg()[0].toFixed(2)}`);
    if (!values['no-pg']) {
      rows.push(await postgres(admin, n, values.acks !== undefined ? acks : 50_000, inFlight));
      console.log(`  postgres ${n}: done, load average ${loadavg()[0].toFixed(2)}`);
    }
  }
  const head = ['store', 'devices', 'acks', 'acks/s (>= 20,000)', 'disk B/ack (<= 1,024)', 'fsyncs/10k acks', 'snapshots', 'snapshot ms', 'loop block in snapshot ms (<= 50)', 'loop block in ingest ms', 'restart ms (full journal)', 'journal MiB'];
  const table = rows.map((r) => [r.store, f(r.devices), f(r.acks), f(r.acksPerSec), r.store === 'postgres' ? `${f(r.bytesPerAck)} (cluster WAL)` : f(r.bytesPerAck), f(r.fsyncsPer10k, 1), f(r.snapshots), f(r.snapshotMs), f(r.snapshotBlockMs, 1), f(r.ingestBlockMs, 1), f(r.loadMs), f(r.journalMiB, 1)]);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of table) console.log(line(row));
  console.log(`load average at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  return 0;
}

const self = process.argv[1] ?? '';
if (self.endsWith('bench-store.js') || self.endsWith('bench-store.ts')) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(err instanceof UsageError ? `bench-store: ${err.message}\n\n${USAGE}` : err);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}
