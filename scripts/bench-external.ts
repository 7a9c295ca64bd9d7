// Benchmark of the external-broker client on a Mosquitto of its own (docs/architecture.md §8):
// device messages through the shared subscription, each acknowledged to the broker only once a
// simulated group commit (all messages of a window committed together, `commitMs` apart) has
// taken it. Printed in one run, with the load average:
// - ingest with PUBACKs deferred past the commit (ExternalBroker), against mqtt.js's own
//   customHandleAcks path that waits for the commit before it reads the next packet;
// - two replicas, one gone: how the share splits, and how long connecting under the gone
//   replica's id takes to drain what waited in its session.
//
//   node dist/scripts/bench-external.js [messages=20000] [devices=100] [commitMs=2]
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { newToken } from '../gateway/credentials.ts';
import { ExternalBroker } from '../gateway/broker/external.ts';
import { gatewayFilter } from '../gateway/broker/dynsec-file.ts';
import { writeBrokerDir } from './commands/broker.ts';
import { hashDeviceToken } from '../gateway/credentials.ts';
import { freePort, startMosquitto } from './mosquitto-process.ts';

const messages = Number(process.argv[2] ?? 20_000);
const deviceCount = Number(process.argv[3] ?? 100);
const commitMs = Number(process.argv[4] ?? 2);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A group commit: every promise asked for within one window resolves at the window's end. */
function groupCommit(windowMs: number) {
  let waiting: Array<() => void> = [];
  const timer = setInterval(() => {
    const w = waiting;
    waiting = [];
    for (const resolve of w) resolve();
  }, windowMs);
  return { commit: () => new Promise<void>((resolve) => waiting.push(resolve)), stop: () => clearInterval(timer) };
}

const root = await mkdtemp(join(tmpdir(), 'pinwave-bench-external-'));
const devices = Array.from({ length: deviceCount }, (_, i) => ({ id: `dev-${i}`, token: newToken() }));
const port = await freePort();
const dir = await writeBrokerDir({ dir: join(root, 'broker'), port, fleet: devices.map((d) => ({ id: d.id, tokenHash: hashDeviceToken(d.token) })) });
const broker = await startMosquitto({ confPath: dir.confPath, port });
const url = `mqtt://127.0.0.1:${port}`;
const clients = await Promise.all(devices.map((d) => mqtt.connectAsync(url, { protocolVersion: 4, clientId: d.id, username: d.id, password: d.token, clean: false, reconnectPeriod: 0 })));

/** `n` messages from the devices in turn, QoS 1, as fast as the broker takes them. */
async function burst(n: number, tag: string): Promise<void> {
  const perDevice = Math.ceil(n / clients.length);
  await Promise.all(
    clients.map(async (c: MqttClient, i) => {
      for (let k = 0; k < perDevice && i * perDevice + k < n; k++) await c.publishAsync(`pinwave/v1/devices/${devices[i].id}/ack`, `${tag}-${k}`, { qos: 1 });
    }),
  );
}

try {
  console.log(`load average at start: ${load()}; ${messages} messages from ${deviceCount} devices, commit window ${commitMs} ms`);

  // 1. deferred PUBACKs (ExternalBroker)
  {
    const gc = groupCommit(commitMs);
    let done = 0;
    const gw = await ExternalBroker.start({ url, password: dir.password, clientId: 'pinwave@bench', onMessage: () => gc.commit().then(() => void done++) });
    const t0 = performance.now();
    await burst(messages, 'a');
    while (gw.counters().acked < messages) await sleep(5);
    const ms = performance.now() - t0;
    console.log(`ExternalBroker, PUBACK after commit: ${messages} in ${ms.toFixed(0)} ms = ${Math.round((messages / ms) * 1000)}/s (load ${load()})`);
    await gw.retire();
    gc.stop();
  }

  // 2. mqtt.js's own customHandleAcks path: the next packet waits for the commit
  {
    const gc = groupCommit(commitMs);
    let done = 0;
    const serial = await mqtt.connectAsync(url, {
      protocolVersion: 5, clientId: 'pinwave@serial', username: dir.username, password: dir.password, clean: false, reconnectPeriod: 0,
      properties: { sessionExpiryInterval: 60, receiveMaximum: 1000 },
      customHandleAcks: (_topic, _payload, _packet, ack) => void gc.commit().then(() => { done++; ack(0); }),
    });
    await serial.subscribeAsync(gatewayFilter('ack', true), { qos: 1 });
    const n = Math.min(messages, 2000);
    const t0 = performance.now();
    await burst(n, 'b');
    while (done < n) await sleep(5);
    const ms = performance.now() - t0;
    console.log(`mqtt.js customHandleAcks waiting for the commit: ${n} in ${ms.toFixed(0)} ms = ${Math.round((n / ms) * 1000)}/s (load ${load()})`);
    await serial.endAsync(false, { properties: { sessionExpiryInterval: 0 } });
    gc.stop();
  }

  // 3. a replica gone: the share it leaves, and the drain under its id
  {
    const gc = groupCommit(commitMs);
    let liveGot = 0;
    const gone = await ExternalBroker.start({ url, password: dir.password, clientId: 'pinwave@gone', onMessage: () => gc.commit() });
    const live = await ExternalBroker.start({ url, password: dir.password, clientId: 'pinwave@live', onMessage: () => gc.commit().then(() => void liveGot++) });
    await gone.close(); // its session stays, and keeps being dealt a share
    const t0 = performance.now();
    await burst(messages, 'c');
    while (liveGot < messages / 2 - deviceCount) await sleep(5);
    await sleep(200);
    console.log(`one of two replicas gone: the live one got ${liveGot} of ${messages} in ${(performance.now() - t0).toFixed(0)} ms; the rest wait in the gone one's session`);
    const t1 = performance.now();
    let drained = 0;
    const taker = await ExternalBroker.start({ url, password: dir.password, clientId: 'pinwave@gone', onMessage: () => gc.commit().then(() => void drained++) });
    const connected = performance.now() - t1;
    while (liveGot + drained < messages) await sleep(2);
    while (taker.counters().acked < drained) await sleep(2);
    console.log(`drain under the gone replica's id: connected in ${connected.toFixed(0)} ms, ${drained} messages committed and acknowledged in ${(performance.now() - t1).toFixed(0)} ms (load ${load()})`);
    await taker.retire();
    await live.retire();
    gc.stop();
  }
} finally {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await broker.stop();
  await rm(root, { recursive: true, force: true });
}
