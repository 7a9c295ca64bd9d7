// The durability contract at the gateway (docs/storage.md, "What a crash can and cannot lose"): a
// device's ack is PUBACKed only once its batch is committed. A child gateway takes a 2,000-device
// ack burst from raw MQTT connections (QoS 1, nothing reconnecting to heal what was lost) and is
// SIGKILLed once a seeded random number of PUBACKs has come back; a gateway restarted on the same
// store must hold every ack a device had its PUBACK for: the device's seq and bundle, and its status
// in the rollout. Rounds reuse one fleet, each with a bundle and rollout of its own.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { harness, pin, storedRollout, type Harness } from '../fixtures/gateway.ts';
import { connectPacket, publishPacket, rawConnect, socketClosed } from '../fixtures/raw-mqtt.ts';
import { transpileTree } from '../fixtures/transpile.ts';
import { withoutCoverage } from '../fixtures/child-env.ts';
import { testDatabase } from './store/fixtures/pg-database.ts';
import { Gateway } from '../../gateway/gateway.ts';
import { EmbeddedStore } from '../../gateway/store/embedded.ts';
import type { Logger } from '../../gateway/logger.ts';
import { encodeAck } from '../../firmware-manifest/index.ts';

// The child runs the sources transpiled in this run (tap's loader would type-check the whole
// gateway again in every child: seconds a round), without tap's coverage hook.
const BUILD = mkdtempSync(join(tmpdir(), 'pinwave-crash-child-'));
t.teardown(() => rmSync(BUILD, { recursive: true, force: true }));
const CHILD = transpileTree(fileURLToPath(new URL('../fixtures/gateway-child.ts', import.meta.url)), BUILD);
const DEVICES = 2000;
const EMBEDDED_ROUNDS = Number(process.env.CRASH_ROUNDS ?? 20);
const POSTGRES_ROUNDS = Number(process.env.CRASH_PG_ROUNDS ?? 3);
// Each round starts two gateways (the child and the checking one) and connects the fleet: 6-13 s a
// round measured on 2 cores under a load average of 8-12 (other work): 20 + 3 rounds in 332 s.
t.setTimeout(480_000);

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

/** A gateway in a child process on `store` (a data dir or postgres:// URL); killed at teardown if still alive. */
async function childGateway(t: Test, store: string, keyPath: string) {
  const child = spawn(...withoutCoverage(process.execPath, [CHILD, store, keyPath]), { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const started = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway child did not start within 20 s:\n${output}`)), 20_000);
    child.once('message', (m: { port: number; pid: number }) => (clearTimeout(timer), resolve(m)));
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`gateway child exited with ${code}:\n${output}`))));
  });
  return { child, ...started };
}

const killed = (child: ChildProcess) => new Promise<NodeJS.Signals | null>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.signalCode) : child.once('exit', (_c, s) => resolve(s))));

/** Connects every device (raw CONNECT, CONNACK awaited), 1,000 at a time; `onPuback(i)` is called for device i's PUBACK. */
async function connectFleet(port: number, devices: Array<{ id: string; token: string }>, onPuback: (i: number) => void): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let from = 0; from < devices.length; from += 1000) {
    const batch = devices.slice(from, from + 1000).map(async (d, j) => {
      const i = from + j;
      let connack!: (rc: number) => void;
      const accepted = new Promise<number>((r) => (connack = r));
      const s = await rawConnect(port, (p) => {
        if (p.type === 2) connack(p.body[1]);
        else if (p.type === 4) onPuback(i);
      });
      s.write(connectPacket({ id: d.id, password: d.token }));
      const rc = await Promise.race([accepted, socketClosed(s).then(() => -1)]);
      if (rc !== 0) throw new Error(`device ${d.id} was not accepted (CONNACK ${rc})`);
      sockets[i] = s;
    });
    await Promise.all(batch);
  }
  return sockets;
}

interface Figures {
  rounds: number;
  acked: number;
  killedAfter: number[];
  torn: number;
  ms: number;
}

/**
 * `rounds` rounds on the store the harness's gateway uses (`store`: its data dir or URL): each a new
 * bundle and rollout to the whole fleet, a child gateway, the burst, a SIGKILL, and the check by a
 * gateway restarted in this process. `during(child)` runs once, in the first round, while the child runs.
 */
async function rounds(t: Test, h: Harness, store: string, n: number, seed: number, devices: Array<{ id: string; token: string }>, during?: (c: { pid: number }) => Promise<void>): Promise<Figures> {
  const random = rng(seed);
  const warns: string[] = [];
  const log: Logger = { debug() {}, info() {}, warn: (_o: object, msg?: string) => void warns.push(msg ?? ''), error() {} };
  const f: Figures = { rounds: 0, acked: 0, killedAfter: [], torn: 0, ms: 0 };
  const began = Date.now();
  // The next round's bundle and rollout, made by the gateway in this process (the last one aborted if it still runs).
  const nextRound = async (gw: Gateway, round: number, previous: string | null) => {
    if (previous && ['running', 'held', 'pending'].includes((await gw.getRollout(previous)).state)) await gw.abortRollout(previous, 'alice', 'next round');
    const bundle = await gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin(`round-${round}`), pin('backup')] }] }, 'alice');
    const { rollout } = await gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 3600 }], start: true }, 'alice');
    // A snapshot each round keeps every start's replay one round long (the file stays within its time bound).
    if (gw.store instanceof EmbeddedStore) await gw.store.snapshotNow();
    await gw.stop();
    return { bundle, rollout };
  };
  let gw = await h.restart({ now: Date.now });
  let { bundle, rollout } = await nextRound(gw, 0, null);
  for (let round = 0; round < n; round++) {
    const at = [Date.now()];
    const child = await childGateway(t, store, h.keyPath);
    at.push(Date.now());
    if (round === 0 && during) await during(child);
    const killAfter = 1 + Math.floor(random() * (DEVICES - 1));
    const acked = new Set<number>();
    const onPuback = (i: number) => {
      acked.add(i);
      if (acked.size === killAfter) child.child.kill('SIGKILL');
    };
    const sockets = await connectFleet(child.port, devices, onPuback);
    at.push(Date.now());
    const ack = Buffer.from(encodeAck({ seq: bundle.seq, bundleId: bundle.id, status: 'applied' }));
    // The burst: every device's ack at once, in a seeded order.
    const order = devices.map((_, i) => i).sort(() => random() - 0.5);
    for (const i of order) sockets[i].write(publishPacket(`pinwave/v1/devices/${devices[i].id}/ack`, ack, 1, 1));
    const signal = await killed(child.child);
    for (const s of sockets) s.destroy();
    at.push(Date.now());
    t.equal(signal, 'SIGKILL', `round ${round}: the gateway was killed after ${acked.size} PUBACKs (aimed at ${killAfter}), not stopped`);

    // Restart on the same store: it loads (a torn last record is allowed and logged), and holds every PUBACKed ack.
    const tornBefore = warns.filter((w) => /torn/.test(w)).length;
    gw = await h.restart({ now: Date.now, logger: log });
    f.torn += warns.filter((w) => /torn/.test(w)).length - tornBefore;
    const r = await storedRollout(gw, rollout.id);
    const ids = [...acked].map((i) => devices[i].id);
    const stored = await gw.store.getDevices(ids);
    const lost = ids.filter((id, j) => stored[j]?.seq !== bundle.seq || stored[j]?.bundleId !== bundle.id);
    const notApplied = ids.filter((id) => r.devices[id]?.status !== 'applied');
    t.same(lost.slice(0, 5), [], `round ${round}: all ${ids.length} PUBACKed acks have their seq and bundle in the store`);
    t.same(notApplied.slice(0, 5), [], `round ${round}: and are applied in the rollout`);
    const applied = Object.values(r.devices).filter((m) => m.status === 'applied').length;
    t.equal((await gw.getRollout(rollout.id)).waves[0].applied, applied, `round ${round}: the wave's count is its members' (${applied}, of which ${ids.length} PUBACKed)`);
    at.push(Date.now());
    f.rounds++;
    f.acked += ids.length;
    f.killedAfter.push(acked.size);
    if (round + 1 < n) ({ bundle, rollout } = await nextRound(gw, round + 1, rollout.id));
    t.comment(`round ${round} ms: child start ${at[1] - at[0]}, connect ${at[2] - at[1]}, burst ${at[3] - at[2]}, restart + check ${at[4] - at[3]}, next round ${Date.now() - at[4]}`);
  }
  await h.gw.stop();
  f.ms = Date.now() - began;
  return f;
}

async function fleetOf(h: Harness) {
  const { devices } = await h.gw.provision(Array.from({ length: DEVICES }, (_, i) => ({ id: `k-${String(i).padStart(4, '0')}`, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  return devices;
}

t.test('embedded store: every PUBACKed ack survives a SIGKILL mid-burst, round after round; a second gateway on the dir is refused', async (t) => {
  const h = await harness(t, { now: Date.now });
  const dataDir = join(h.dir, 'data');
  const devices = await fleetOf(h);
  const f = await rounds(t, h, dataDir, EMBEDDED_ROUNDS, 20261202, devices, async (child) => {
    const err = await Gateway.start({ dataDir, keyPath: h.keyPath, mqttPort: 0, tickIntervalMs: 0 }).then(
      async (gw) => (await gw.stop(), null),
      (e: unknown) => e as Error & { code?: string },
    );
    t.equal(err?.code, 'PW_STORE_LOCKED', 'a second gateway on the same --data is refused');
    t.match(err?.message, `in use by pid ${child.pid}`, 'naming the holder’s pid');
  });
  t.equal(f.rounds, EMBEDDED_ROUNDS, 'every restart after a SIGKILL started (the stale lock taken over)');
  t.comment(`embedded: ${f.rounds} rounds, ${f.acked} PUBACKed acks checked, ${f.torn} torn tails dropped, ${f.ms} ms; killed after ${f.killedAfter.join(' ')} PUBACKs`);
});

t.test('PostgreSQL store: every PUBACKed ack survives a SIGKILL mid-burst', async (t) => {
  const url = await testDatabase(t);
  const h = await harness(t, { now: Date.now, storeUrl: url });
  const devices = await fleetOf(h);
  const f = await rounds(t, h, url, POSTGRES_ROUNDS, 1202, devices);
  t.equal(f.rounds, POSTGRES_ROUNDS);
  t.comment(`postgres: ${f.rounds} rounds, ${f.acked} PUBACKed acks checked, ${f.ms} ms; killed after ${f.killedAfter.join(' ')} PUBACKs`);
});
