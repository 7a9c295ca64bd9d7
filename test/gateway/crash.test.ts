import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { harness, newPins, until } from '../fixtures/gateway.ts';
import { encodeAck, encodeState } from '../../firmware-manifest/index.ts';
import { STORE_FILENAME } from '../../gateway/store/lowdb.ts';
import type { Rollout } from '../../gateway/rollout/types.ts';

// The child runs the TypeScript sources through tap's own loader, so the test never runs a stale build.
const LOADER = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url));
const CHILD = fileURLToPath(new URL('../fixtures/gateway-child.ts', import.meta.url));
// Long enough that the kill lands inside it, short enough to keep the test quick.
const WINDOW_MS = 1000;
const DEVICES = 40;

const connect = (url: string, d: { id: string; token: string }) => mqtt.connectAsync(url, { clientId: d.id, username: d.id, password: d.token, clean: false, reconnectPeriod: 0, connectTimeout: 5000 });

/** A gateway in a child process on `dataDir`, with its port; killed at teardown if still alive. */
async function childGateway(t: { teardown(fn: () => unknown): void }, dataDir: string, keyPath: string, windowMs: number) {
  const child = spawn(process.execPath, ['--import', LOADER, CHILD, dataDir, keyPath, String(windowMs)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway child did not start within 10 s:\n${output}`)), 10_000);
    child.once('message', (m: { port: number }) => (clearTimeout(timer), resolve(m.port)));
    child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`gateway child exited with ${code}:\n${output}`))));
  });
  return { child, port, output: () => output };
}

/** The child's count of applied acks in `rollout` and its completed store writes (one IPC round trip, bounded). */
function status(child: ChildProcess, rollout: string): Promise<{ applied: number; storeWrites: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gateway child did not answer within 2 s')), 2000);
    child.once('message', (m: { applied: number; storeWrites: number; error?: string }) => {
      clearTimeout(timer);
      if (m.error) reject(new Error(m.error));
      else resolve(m);
    });
    child.send({ cmd: 'status', rollout });
  });
}

/** Applied members of `rollout` as the store file on disk has them now (a whole file: writes are atomic renames). */
function appliedOnDisk(dataDir: string, rollout: string): number {
  const file = JSON.parse(readFileSync(join(dataDir, STORE_FILENAME), 'utf8')) as { rollouts: Rollout[] };
  const r = file.rollouts.find((x) => x.id === rollout);
  return r ? Object.values(r.devices).filter((d) => d.status === 'applied').length : 0;
}

t.test('a kill -9 loses at most the last coalescing window, and reconciliation heals it', async (t) => {
  t.ok(existsSync(LOADER), `tap's TypeScript loader is at ${LOADER}`);
  // Set up the fleet and a running rollout, then hand the data dir to a gateway in a child process.
  const h = await harness(t, { now: Date.now });
  const dataDir = join(h.dir, 'data');
  const { devices } = await h.gw.provision(Array.from({ length: DEVICES }, (_, i) => ({ id: `k-${i}`, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 3600 }], start: true }, 'alice');
  await h.gw.stop();

  const { child, port } = await childGateway(t, dataDir, h.keyPath, WINDOW_MS);
  const url = `mqtt://127.0.0.1:${port}`;
  const clients: MqttClient[] = await Promise.all(devices.map((d) => connect(url, d)));
  t.teardown(() => Promise.all(clients.map((c) => c.endAsync(true))));
  const ack = Buffer.from(encodeAck({ seq: bundle.seq, bundleId: bundle.id, status: 'applied' }));
  const half = DEVICES / 2;
  const sendAcks = (from: number, to: number) => Promise.all(clients.slice(from, to).map((c, i) => c.publishAsync(`pinwave/v1/devices/${devices[from + i].id}/ack`, ack, { qos: 1 })));

  // The first half acks; once counted, the file on disk has them within one window (and a write).
  await sendAcks(0, half);
  await until(async () => (await status(child, rollout.id)).applied === half, 5000, 'the first acks to be counted');
  const counted = Date.now();
  await until(() => appliedOnDisk(dataDir, rollout.id) === half, WINDOW_MS + 3000, 'the first acks on disk');
  t.ok(Date.now() - counted <= WINDOW_MS + 3000, `on disk ${Date.now() - counted} ms after they were counted (window ${WINDOW_MS} ms)`);

  // The second half acks, is counted in memory, and the process dies inside the window.
  await sendAcks(half, DEVICES);
  await until(async () => (await status(child, rollout.id)).applied === DEVICES, 5000, 'the last acks to be counted');
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  child.kill('SIGKILL');
  t.equal(await exited, 'SIGKILL', 'the gateway was killed, not stopped');
  await Promise.all(clients.map((c) => c.endAsync(true)));

  // A new gateway on the same data dir: the file loads, and what was older than the window is there.
  const gw = await h.restart();
  t.pass('the store file loads after the kill');
  const after = await gw.getRollout(rollout.id);
  t.ok(after.waves[0].applied >= half, `the acks older than the window survived (${after.waves[0].applied} of ${DEVICES} applied)`);
  t.ok(after.waves[0].applied <= DEVICES, 'and nothing was counted twice');
  t.comment(`${DEVICES - after.waves[0].applied} acks of the last window were lost with the process`);
  const seqs = async (list: typeof devices) => Promise.all(list.map(async (d) => (await gw.getDevice(d.id)).seq));
  t.same(await seqs(devices.slice(0, half)), Array(half).fill(bundle.seq), 'their devices are on the new seq in the registry');

  // Reconciliation: each device reconnects and reports the bundle it runs; the rollout is whole again.
  const state = Buffer.from(encodeState({ seq: bundle.seq, bundleId: bundle.id, firmware: '1.0.0', model: 'th-100', keyEpoch: 0 }));
  const back: MqttClient[] = await Promise.all(devices.map((d) => connect(gw.mqttUrl, d)));
  t.teardown(() => Promise.all(back.map((c) => c.endAsync(true))));
  await Promise.all(back.map((c, i) => c.publishAsync(`pinwave/v1/devices/${devices[i].id}/state`, state, { qos: 1 })));
  await until(async () => (await gw.getRollout(rollout.id)).waves[0].applied === DEVICES, 5000, 'reconciliation of every device');
  t.equal((await gw.stuck({ rollout: rollout.id })).length, 0, 'no device is stuck');
  t.same(await seqs(devices), Array(DEVICES).fill(bundle.seq), 'every device is on the new seq in the registry');
});

t.test('a kill -9 while the store file is being rewritten leaves a file that loads', { timeout: 120_000 }, async (t) => {
  // Acks stream in (duplicates after the first, each one a change) with no coalescing window, so
  // whole-file writes run back to back. steno writes .pinwave.json.tmp and renames it over the file:
  // the kill is sent the moment that temp file appears, and the temp file left behind afterwards is
  // the proof that the kill cut a write short. A kill that fell between two writes is tried again
  // (a bounded number of times) on the same data dir, so the test knows it tested a torn write.
  const h = await harness(t, { now: Date.now });
  const dataDir = join(h.dir, 'data');
  const tmp = join(dataDir, `.${STORE_FILENAME}.tmp`);
  const fleet = 2000;
  const acking = 50;
  const { devices } = await h.gw.provision(Array.from({ length: fleet }, (_, i) => ({ id: `w-${i}`, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 3600 }], start: true }, 'alice');
  await h.gw.stop();

  const some = devices.slice(0, acking);
  const ack = Buffer.from(encodeAck({ seq: bundle.seq, bundleId: bundle.id, status: 'applied' }));
  const ATTEMPTS = 5;
  let cut = 0;
  for (let attempt = 1; attempt <= ATTEMPTS && cut === 0; attempt++) {
    const { child, port } = await childGateway(t, dataDir, h.keyPath, 0);
    const clients: MqttClient[] = await Promise.all(some.map((d) => connect(`mqtt://127.0.0.1:${port}`, d)));
    const stream = setInterval(() => clients.forEach((c, i) => c.publish(`pinwave/v1/devices/${some[i].id}/ack`, ack, { qos: 1 }, () => {})), 10);
    const first = (await status(child, rollout.id)).storeWrites;
    await until(async () => (await status(child, rollout.id)).storeWrites >= first + 3, 5000, 'writes to follow one another');
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Poll between turns of the event loop (the acks keep flowing) for a write in progress, then kill.
    const deadline = Date.now() + 5000;
    while (!existsSync(tmp) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    child.kill('SIGKILL');
    await exited;
    clearInterval(stream);
    await Promise.all(clients.map((c) => c.endAsync(true)));
    if (existsSync(tmp)) cut = attempt;
    else t.comment(`attempt ${attempt}: the kill fell between two writes`);
  }
  t.ok(cut > 0, cut > 0 ? `the kill landed inside a write at attempt ${cut}: ${tmp} was left behind` : `none of ${ATTEMPTS} kills landed inside a write`);

  const gw = await h.restart();
  t.pass('the store file loads after the kill');
  t.equal((await gw.store.devicesInGroup('thermostats')).length, fleet, 'with the whole fleet in it');
  const after = (await gw.getRollout(rollout.id)).waves[0].applied;
  t.ok(after <= acking, `${after} of ${acking} acking devices counted on disk`);
  const back: MqttClient[] = await Promise.all(some.map((d) => connect(gw.mqttUrl, d)));
  t.teardown(() => Promise.all(back.map((c) => c.endAsync(true))));
  const state = Buffer.from(encodeState({ seq: bundle.seq, bundleId: bundle.id, firmware: '1.0.0', model: 'th-100', keyEpoch: 0 }));
  await Promise.all(back.map((c, i) => c.publishAsync(`pinwave/v1/devices/${some[i].id}/state`, state, { qos: 1 })));
  await until(async () => (await gw.getRollout(rollout.id)).waves[0].applied === acking, 5000, 'reconciliation');
  t.pass('reconciliation counted every device that had applied');
});
