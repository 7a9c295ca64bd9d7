// How fast health-checked devices revert a bad bundle (docs/pin-safety.md), against the floor of the
// same run: N simulated devices (a device-sim Fleet, real MQTT clients) on a bare aedes broker, one
// local TLS endpoint. Printed, median and p99 of each:
// - bare TLS handshakes: N handshakes asked at once against the endpoint, at the concurrency the
//   fleet's handshakes run at (64 in flight), each timed from its ask to its result;
// - a good bundle: from its publish to each device to that device's `verified` ack reaching the
//   publisher (receive, verify, persist the window, handshake, judge, persist, ack);
// - a bad bundle (pins that miss the key the endpoint serves): publish to `reverted` ack, and the
//   device's own share of it, from its window opening to its ack going out.
// The goal the gateway phase's bench-sim will hold it to: a revert within 100 ms of the handshake
// latency at the same concurrency. Broker, devices, endpoint and publisher share one process, so
// every figure carries the one event loop; on a shared machine figures move from run to run.
//
//   npx tsc -p . && node dist/scripts/bench-revert.js [--devices 1000]
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { decodeAnyAck, generateKeyPair, parsePin, signBundle, type FirmwareManifest } from '../firmware-manifest/index.ts';
import { Fleet, Handshakes, startTlsEndpoint, unservedPin, type DeviceOutcome } from '../device-sim/index.ts';
import { parse, uintFlag } from './args.ts';

const USAGE = 'usage: node dist/scripts/bench-revert.js [--devices N]   (default 1000)';
const HANDSHAKE_CONCURRENCY = 64; // the Handshakes default the fleet runs at
const TIMEOUT_MS = 120_000;

const { values } = parse(process.argv.slice(2), { devices: { type: 'string' } }, USAGE);
const N = values.devices === undefined ? 1000 : uintFlag(values.devices, 'devices', USAGE);
const now = () => performance.now();

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return `median ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${s[s.length - 1].toFixed(1)} ms (n=${s.length})`;
}

async function main(): Promise<void> {
  console.log(`pinwave bench-revert: ${N} devices, node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const aedes = new Aedes();
  await aedes.listen();
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    aedes.handle(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  const key = generateKeyPair();
  const manifest: FirmwareManifest = {
    model: 'bench-hc',
    firmware: '2.0.0',
    trustedKeys: [key.publicPem],
    pins: [{ host: 'api.example.com', pins: [api.pins[0], api.backupPin] }],
    healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 10, onUnverifiable: 'commit' },
  };
  const ids = Array.from({ length: N }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
  const opened = new Map<string, number>();
  const windows: number[] = [];
  const fleet = new Fleet({
    url,
    models: [{ manifest }],
    devices: ids.map((id) => ({ id, token: 'x', model: 'bench-hc', group: 'bench' })),
    endpoints: [api.callHome],
    callHomeSeconds: 0,
    callHomeOnApply: false,
    seed: 'bench-revert',
    onOutcome: (o: DeviceOutcome) => {
      if (o.status === 'verifying') opened.set(o.deviceId, now());
      if (o.status === 'reverted' && opened.has(o.deviceId)) windows.push(now() - opened.get(o.deviceId)!);
    },
  });
  const ear = await mqtt.connectAsync(url, { clientId: 'bench-publisher', reconnectPeriod: 0 });
  const acked = new Map<string, { at: number; status: string }>();
  ear.on('message', (topic, payload) => {
    const d = decodeAnyAck(new Uint8Array(payload));
    if (d.ok) acked.set(topic.split('/')[3], { at: now(), status: d.message.status });
  });
  await ear.subscribeAsync('pinwave/v1/devices/+/ack', { qos: 1 });
  const watchdog = setTimeout(() => {
    console.error(`bench-revert: no result within ${TIMEOUT_MS / 1000} s`);
    process.exit(1);
  }, TIMEOUT_MS);
  try {
    await fleet.start();
    console.log(`fleet connected: ${fleet.summary().connected} devices`);

    const handshakes = async (label: string) => {
      const h = new Handshakes({ share: false, concurrency: HANDSHAKE_CONCURRENCY });
      const lat = await Promise.all(ids.map(async () => {
        const t0 = now();
        const r = await h.get(api.callHome);
        if (!r.ok) throw new Error(`bare handshake failed: ${r.error}`);
        return now() - t0;
      }));
      console.log(`bare TLS handshakes, ${N} at once, ${HANDSHAKE_CONCURRENCY} in flight (${label}): ${stats(lat)}`);
      return lat;
    };
    const round = async (label: string, pins: string[], seq: number, want: string) => {
      acked.clear();
      const bundle = signBundle({ seq, iat: Math.floor(Date.now() / 1000) - 60, exp: Math.floor(Date.now() / 1000) + 86400, group: 'bench', endpoints: [{ host: 'api.example.com', port: 443, pins: pins.map(parsePin) }] }, key.seed);
      const sent = new Map<string, number>();
      const t0 = now();
      await Promise.all(ids.map((id) => {
        sent.set(id, now());
        return ear.publishAsync(`pinwave/v1/devices/${id}/bundle`, Buffer.from(bundle.bytes), { qos: 1 });
      }));
      while (acked.size < N) await new Promise((r) => setTimeout(r, 20));
      const wrong = [...acked.values()].filter((a) => a.status !== want).length;
      if (wrong > 0) throw new Error(`${label}: ${wrong} devices did not ack ${want}`);
      const lat = ids.map((id) => acked.get(id)!.at - sent.get(id)!);
      console.log(`${label}: publish to ${want} ack: ${stats(lat)}; all ${N} in ${(Math.max(...ids.map((id) => acked.get(id)!.at)) - t0).toFixed(0)} ms`);
      return lat;
    };

    const bare1 = await handshakes('before');
    await round('good bundle', [api.pins[0], unservedPin()], 1, 'verified');
    windows.length = 0;
    const revert = await round('bad bundle', [unservedPin(), unservedPin()], 2, 'reverted');
    console.log(`bad bundle: the device's window, opened to reverted ack sent: ${stats(windows)}`);
    const bare2 = await handshakes('after');
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const floor = median([...bare1, ...bare2]);
    console.log(`revert median ${median(revert).toFixed(1)} ms against the handshake median ${floor.toFixed(1)} ms: ${(median(revert) - floor).toFixed(1)} ms above it (goal: within 100 ms)`);
    const s = fleet.summary();
    console.log(`summary: verified ${s.verified}, reverted ${JSON.stringify(s.reverted)}, seqs ${JSON.stringify(s.seqs)}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    clearTimeout(watchdog);
    await fleet.stop();
    await ear.endAsync();
    await api.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
    await new Promise<void>((r) => aedes.close(() => r()));
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
