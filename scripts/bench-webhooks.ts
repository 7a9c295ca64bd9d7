// Does alert delivery slow a hold down? The time from a device publishing the ack that crosses a
// wave's failure threshold to the gateway's `rollout held` log line, in three set-ups of one
// gateway: no webhook; a webhook whose receiver refuses connections (retried); one whose receiver
// accepts and never answers (every attempt runs to its timeout). Devices are mqtt.js clients in
// this process (as the receivers are), so all three share one event loop with the gateway. The
// figure includes the device's MQTT round trip, the same in every set-up: compare the rows, and the
// two `none` rows (first and last) for the noise of the machine.
//
//   node dist/scripts/bench-webhooks.js [--rollouts 30] [--devices 20]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { encodeAck, generateKeyPair, inspectBundle, formatPin } from '../firmware-manifest/index.ts';
import { Gateway, type Logger } from '../gateway/gateway.ts';
import { deviceTopic } from '../gateway/topics.ts';
import { parse, uintFlag } from './args.ts';

const USAGE = 'Usage: node dist/scripts/bench-webhooks.js [--rollouts N (default 30)] [--devices N (default 20)]';
const SECRET = 'bench-webhook-secret-0123456789';

type Setup = 'none' | 'refused' | 'never answers';

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

async function receiverFor(setup: Setup): Promise<{ url: string | null; close(): Promise<void> }> {
  if (setup === 'none') return { url: null, close: async () => {} };
  const sockets = new Set<Socket>();
  const server = createServer((s) => (sockets.add(s), s.on('error', () => {})));
  const port = await listen(server);
  if (setup === 'refused') {
    await new Promise((resolve) => server.close(resolve));
    return { url: `http://127.0.0.1:${port}/hook`, close: async () => {} };
  }
  return {
    url: `http://127.0.0.1:${port}/hook`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const pin = (i: number) => formatPin(new Uint8Array(32).fill(i % 256));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function measure(setup: Setup, rollouts: number, n: number): Promise<{ latencies: number[]; attempts: number; failed: number; queued: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-webhooks-'));
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
  const receiver = await receiverFor(setup);
  const heldAt = new Map<string, number>();
  const logger: Logger = {
    debug() {},
    info() {},
    warn(obj, msg) {
      if (msg === 'rollout held') heldAt.set((obj as { rollout: string }).rollout, performance.now());
    },
    error(obj, msg) {
      process.stderr.write(`gateway error: ${msg} ${JSON.stringify(obj)}\n`);
    },
  };
  const gw = await Gateway.start({
    dataDir: join(dir, 'data'),
    keyPath,
    mqttPort: 0,
    tickIntervalMs: 0,
    logger,
    ...(receiver.url && { webhooks: [{ url: receiver.url, events: ['rollout.held', 'rollout.aborted'], secret: SECRET }], webhookDelivery: { backoffMs: 50, maxBackoffMs: 200, timeoutMs: 5000 } }),
  });
  const clients: MqttClient[] = [];
  try {
    const { devices } = await gw.provision(Array.from({ length: n }, (_, i) => ({ id: `d-${i}`, group: 'g' })));
    // Each device remembers the last bundle it was handed; the test decides when it answers.
    const got = new Map<string, { id: string; seq: number }>();
    for (const d of devices) {
      const c = mqtt.connect(gw.mqttUrl, { clientId: d.id, username: d.id, password: d.token, clean: false, reconnectPeriod: 0 });
      await new Promise<void>((resolve, reject) => (c.once('connect', () => resolve()), c.once('error', reject)));
      c.on('message', (_topic, payload) => {
        const r = inspectBundle(new Uint8Array(payload));
        if (r.ok) got.set(d.id, { id: r.id, seq: r.bundle.seq });
      });
      await c.subscribeAsync(deviceTopic(d.id, 'bundle'), { qos: 1 });
      clients.push(c);
    }
    const latencies: number[] = [];
    for (let k = 0; k < rollouts; k++) {
      const b = await gw.createBundle({ group: 'g', endpoints: [{ host: 'api.example.com', pins: [pin(2 * k + 1), pin(2 * k + 2)] }] }, 'bench');
      const { rollout } = await gw.createRollout({ bundle: b.id, target: { group: 'g' }, waves: [{ size: '100%', minDevices: 1, failureThreshold: 0 }], start: true }, 'bench');
      const deadline = Date.now() + 10_000;
      while (got.get('d-0')?.id !== b.id) {
        if (Date.now() > deadline) throw new Error('the bundle never reached d-0');
        await new Promise((r) => setTimeout(r, 2));
      }
      const sentAt = performance.now();
      await clients[0].publishAsync(deviceTopic('d-0', 'ack'), Buffer.from(encodeAck({ seq: b.seq, bundleId: b.id, status: 'rejected', reason: 'bad_signature' })), { qos: 1 });
      while (!heldAt.has(rollout.id)) {
        if (Date.now() > deadline) throw new Error('the rollout was never held');
        await new Promise((r) => setImmediate(r));
      }
      latencies.push(heldAt.get(rollout.id)! - sentAt);
      await gw.abortRollout(rollout.id, 'bench');
    }
    const c = gw.webhookCounters();
    return { latencies, attempts: c ? Object.values(c.attempts).reduce((a, x) => a + x, 0) : 0, failed: c?.deliveries.failed ?? 0, queued: c?.queued[0] ?? 0 };
  } finally {
    for (const c of clients) c.end(true);
    await gw.stop();
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const { values } = parse(process.argv.slice(2), { rollouts: { type: 'string' }, devices: { type: 'string' } }, USAGE);
const rollouts = values.rollouts === undefined ? 30 : uintFlag(values.rollouts, 'rollouts', USAGE);
const n = values.devices === undefined ? 20 : uintFlag(values.devices, 'devices', USAGE);
console.log(`bench-webhooks: ${rollouts} holds per set-up, ${n} devices; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('set-up            median ms  p90 ms  max ms  attempts ended  failed  still queued');
for (const setup of ['none', 'refused', 'never answers', 'none'] as Setup[]) {
  const r = await measure(setup, rollouts, n);
  const row = [setup.padEnd(16), pct(r.latencies, 50).toFixed(2).padStart(9), pct(r.latencies, 90).toFixed(2).padStart(7), Math.max(...r.latencies).toFixed(2).padStart(7), String(r.attempts).padStart(14), String(r.failed).padStart(6), String(r.queued).padStart(12)];
  console.log(row.join('  '));
}
console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
process.exit(0);
