// Benchmark of Mosquitto's dynamic-security plugin at fleet size (docs/architecture.md §8): for each
// fleet size, the plugin file written in one go (build, serialise, write + fsync, size), Mosquitto's
// start time and memory with it, the time of one control command (every one rewrites the whole
// file), and the connect rate of devices whose token hashes were written from the store's `$7$`
// form. One run prints every figure with the load average beside it.
//
//   node dist/scripts/bench-dynsec.js [sizes=1000,10000,100000] [connects=5000] [iterations=10]
//
// `iterations` is the PBKDF2 count of the hashes written (the store's DEVICE_TOKEN_ITERATIONS is 10;
// the plugin hashes a password it is given over the control topic with 101).
//
// Connects are capped by the descriptors one process may hold (this process holds the clients):
// see checkLimits.
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pbkdf2Sync } from 'node:crypto';
import mqtt from 'mqtt';
import { DEVICE_TOKEN_ITERATIONS, hashDeviceToken, newToken } from '../gateway/credentials.ts';
import { buildDynsecFile, GATEWAY_USERNAME, serializeDynsecFile, type FleetDevice } from '../gateway/broker/dynsec-file.ts';
import { DynsecControl } from '../gateway/broker/dynsec-control.ts';
import { mosquittoConf, DYNSEC_FILE } from '../gateway/broker/mosquitto-conf.ts';
import { freePort, startMosquitto } from './mosquitto-process.ts';
import { checkLimits } from './bench-common.ts';

const USAGE = 'node dist/scripts/bench-dynsec.js [sizes=1000,10000,100000] [connects=5000] [iterations=10]';
const sizes = (process.argv[2] ?? '1000,10000,100000').split(',').map(Number);
const connects = Number(process.argv[3] ?? 5000);
const iterations = Number(process.argv[4] ?? DEVICE_TOKEN_ITERATIONS);
checkLimits(connects, 'connects', USAGE);

const ms = (t0: number) => performance.now() - t0;
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const rssKb = async (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(await import('node:fs').then((fs) => fs.readFileSync(`/proc/${pid}/status`, 'utf8')))?.[1] ?? 0);

console.log(`load average at start: ${load()}`);
for (const iterations of [10, 101]) {
  const t0 = performance.now();
  for (let i = 0; i < 2000; i++) pbkdf2Sync('x'.repeat(43), 'salt-12bytes', iterations, 64, 'sha512');
  console.log(`PBKDF2-SHA512 ${iterations} iterations (what a CONNECT costs the broker): ${((ms(t0) / 2000) * 1000).toFixed(1)} µs`);
}

for (const n of sizes) {
  const dir = await mkdtemp(join(tmpdir(), 'pinwave-bench-dynsec-'));
  try {
    const fleet: Array<FleetDevice & { token: string }> = [];
    for (let i = 0; i < n; i++) {
      const token = newToken();
      fleet.push({ id: `dev-${String(i).padStart(6, '0')}`, token, tokenHash: hashDeviceToken(token, iterations) });
    }
    const gatewayToken = newToken();
    const path = join(dir, DYNSEC_FILE);
    let t0 = performance.now();
    const built = buildDynsecFile({ gateway: { tokenHash: hashDeviceToken(gatewayToken) }, devices: fleet });
    const buildMs = ms(t0);
    t0 = performance.now();
    const text = serializeDynsecFile(built.file);
    const serialiseMs = ms(t0);
    t0 = performance.now();
    const fh = await open(path, 'w', 0o600);
    await fh.writeFile(text);
    await fh.datasync();
    await fh.close();
    const writeMs = ms(t0);
    const size = (await stat(path)).size;
    console.log(`\n== ${n} devices (load ${load()})`);
    console.log(`file: build ${buildMs.toFixed(0)} ms, serialise ${serialiseMs.toFixed(0)} ms, write+fsync ${writeMs.toFixed(0)} ms; ${(size / 1e6).toFixed(1)} MB (${Math.round(size / Math.max(n, 1))} B/device)`);

    const port = await freePort();
    const confPath = join(dir, 'mosquitto.conf');
    await writeFile(confPath, mosquittoConf({ dir, port, user: process.getuid?.() === 0 ? 'root' : undefined }), { mode: 0o600 });
    const broker = await startMosquitto({ confPath, port, readyTimeoutMs: 300_000 });
    console.log(`mosquitto: listening ${broker.startMs.toFixed(0)} ms after spawn, RSS ${((await rssKb(broker.pid)) / 1024).toFixed(1)} MiB`);

    const gw = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, clientId: 'pinwave@bench', username: GATEWAY_USERNAME, password: gatewayToken, reconnectPeriod: 0 });
    const control = new DynsecControl(gw, { timeoutMs: 120_000 });
    await control.ready();
    const timed = async (label: string, fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      console.log(`control: ${label} ${ms(t).toFixed(0)} ms`);
    };
    await timed('setClientPassword (rotate, 1 command)', () => control.rotate(fleet[0].id, newToken()));
    if (n > 1) {
      // the plugin writes on the broker's only thread: what another device sees meanwhile
      const bystander = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, clientId: fleet[1].id, username: fleet[1].id, password: fleet[1].token, reconnectPeriod: 0 });
      const rotating = control.rotate(fleet[0].id, newToken());
      await new Promise((r) => setTimeout(r, 5));
      const t = performance.now();
      await bystander.publishAsync(`pinwave/v1/devices/${fleet[1].id}/state`, 'x', { qos: 1 });
      console.log(`another device's QoS 1 publish during a rotate: PUBACK after ${ms(t).toFixed(0)} ms`);
      await rotating;
      await bystander.endAsync();
    }
    console.log(`file after the plugin's rewrite: ${((await stat(path)).size / 1e6).toFixed(1)} MB`);
    await timed('createRole + createClient (provision 1 device, 2 commands)', () => control.provision([{ id: 'dev-new', token: newToken() }]));
    await timed('deleteClient + deleteRole (revoke, 2 commands)', () => control.revoke('dev-new'));
    await timed('getDefaultACLAccess (a read: no rewrite)', () => control.execute([{ command: 'getDefaultACLAccess' }]));
    if (n <= 10_000) {
      const batch = Array.from({ length: 20 }, (_, i) => ({ id: `dev-bulk-${i}`, token: newToken() }));
      await timed('provision 20 devices in one control message (40 commands, 40 rewrites)', () => control.provision(batch));
    }

    const m = Math.min(connects, n - 1);
    if (m > 0) {
      const clients: mqtt.MqttClient[] = [];
      const window = 100; // Mosquitto's listen backlog is 100: ramp, don't storm
      t0 = performance.now();
      let next = 1;
      const worker = async () => {
        while (next <= m) {
          const d = fleet[next++];
          clients.push(await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, clientId: d.id, username: d.id, password: d.token, clean: false, reconnectPeriod: 0 }));
        }
      };
      await Promise.all(Array.from({ length: window }, worker));
      const connectMs = ms(t0);
      console.log(`connects: ${m} devices with $7$ hashes (${iterations} iterations) from the file in ${connectMs.toFixed(0)} ms = ${Math.round((m / connectMs) * 1000)}/s; broker RSS ${((await rssKb(broker.pid)) / 1024).toFixed(1)} MiB`);
      await Promise.all(clients.map((c) => c.endAsync(true)));
    }
    control.close();
    await gw.endAsync();
    t0 = performance.now();
    await broker.stop(120_000);
    console.log(`mosquitto: clean stop ${ms(t0).toFixed(0)} ms (load ${load()})`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
