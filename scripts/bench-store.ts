// Benchmark of the lowdb fleet store (docs/architecture.md §7): the cost of a whole-file write at fleet size,
// and how many writes ack ingest makes once coalesced.
//
//   node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs scripts/bench-store.ts [devices] [acks/s]
//   (or, built: node dist/scripts/bench-store.js [devices] [acks/s])
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LowdbStore } from '../gateway/store/lowdb.ts';
import type { DeviceRecord, RolloutRecord } from '../gateway/store/types.ts';

const devices = Number(process.argv[2] ?? 10_000);
const rate = Number(process.argv[3] ?? 20_000);

function device(i: number): DeviceRecord {
  const id = `dev-${String(i).padStart(6, '0')}`;
  return {
    id,
    group: `group-${i % 4}`,
    model: 'dl-200',
    firmware: '1.4.2',
    tokenHash: `scrypt$N=16384,r=8,p=1$${'a'.repeat(22)}$${'b'.repeat(43)}`,
    createdAt: 1_700_000_000_000,
    revokedAt: null,
    lastSeen: 1_700_000_000_000,
    lastConnectAt: 1_700_000_000_000,
    lastDisconnectAt: null,
    seq: 1,
    bundleId: 'c'.repeat(64),
    history: [],
    telemetry: [],
  };
}

const ms = (t0: number) => (performance.now() - t0).toFixed(1);
const dir = await mkdtemp(join(tmpdir(), 'pinwave-bench-'));
try {
  const store = new LowdbStore({ dir });
  await store.load();

  let t0 = performance.now();
  await store.putDevices(Array.from({ length: devices }, (_, i) => device(i)));
  console.log(`putDevices(${devices}), on disk: ${ms(t0)} ms, file ${((await stat(store.file)).size / 1024).toFixed(0)} KiB`);

  // One ack's worth of history on every device, so later writes carry a realistic record.
  const rollout: RolloutRecord = { id: 'r1', state: 'running', acked: 0 };
  await store.putRollout(rollout);
  const ack = async (i: number) => {
    await store.updateDevice(`dev-${String(i % devices).padStart(6, '0')}`, (d) => {
      d.seq = 2;
      d.bundleId = 'd'.repeat(64);
      d.lastSeen = 1_700_000_000_000 + i;
      d.history.push({ at: 1_700_000_000_000 + i, rolloutId: 'r1', bundleId: 'd'.repeat(64), seq: 2, event: 'applied' });
    });
    rollout.acked = (rollout.acked as number) + 1;
    await store.putRollout(rollout);
  };
  for (let i = 0; i < devices; i++) await ack(i);
  await store.flush();

  const runs = 5;
  t0 = performance.now();
  for (let i = 0; i < runs; i++) {
    await store.incrementCounter('bench');
    await store.flush();
  }
  console.log(`one whole-file write of ${devices} devices: ${((performance.now() - t0) / runs).toFixed(1)} ms (mean of ${runs})`);

  // 10,000 acks as fast as the loop goes: the store's own per-ack cost, and the writes it makes.
  let writes = store.writes;
  t0 = performance.now();
  for (let i = 0; i < 10_000; i++) await ack(i);
  const burst = performance.now() - t0;
  await store.flush();
  console.log(
    `10,000 acks back to back: ${burst.toFixed(1)} ms of store work (${((10_000 / burst) * 1000).toFixed(0)} acks/s), ` +
      `${store.writes - writes} write(s)`,
  );

  // The same acks paced at `rate`/s, as a broker would deliver them: writes per 10,000 acks.
  writes = store.writes;
  const perTick = Math.max(1, Math.round(rate / 100));
  const total = 20_000;
  t0 = performance.now();
  for (let done = 0; done < total; ) {
    const tick = performance.now();
    for (let k = 0; k < perTick && done < total; k++, done++) await ack(done);
    await new Promise((r) => setTimeout(r, Math.max(0, 10 - (performance.now() - tick))));
  }
  await store.flush();
  const paced = store.writes - writes;
  console.log(
    `${total} acks paced at ${rate}/s over ${ms(t0)} ms: ${paced} writes, ${((paced * 10_000) / total).toFixed(1)} writes per 10,000 acks`,
  );
  await store.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
