// What provisioning costs a gateway in external broker mode (docs/architecture.md §8), against the
// file writer it stands beside: for a broker already holding `existing` devices, `POST /v1/devices`
// of `batch` more through the gateway (`Gateway.provision`: the store, then the dynamic-security
// plugin's control topic, two commands a device, each rewriting the plugin's whole file), and, as
// the floor of the same run, building and writing the plugin's file for all of them in one go (what
// `pinwave broker mosquitto-config --from-data` does while the broker is stopped). Prints the figures
// and the load average.
//
//   node dist/scripts/bench-external-provision.js [existing=0,2000,10000] [batch=50]
import { mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { hashDeviceToken, newToken } from '../gateway/credentials.ts';
import { buildDynsecFile, serializeDynsecFile } from '../gateway/broker/dynsec-file.ts';
import { Gateway } from '../gateway/gateway.ts';
import { generateKeyPair } from '../firmware-manifest/index.ts';
import { writeBrokerDir } from './commands/broker.ts';
import { freePort, startMosquitto } from './mosquitto-process.ts';

const sizes = (process.argv[2] ?? '0,2000,10000').split(',').map(Number);
const batch = Number(process.argv[3] ?? 50);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const ms = (t0: number) => performance.now() - t0;

console.log(`load average at start: ${load()}`);
for (const existing of sizes) {
  const root = await mkdtemp(join(tmpdir(), 'pinwave-bench-provision-'));
  try {
    const fleet = Array.from({ length: existing }, (_, i) => ({ id: `old-${i}`, tokenHash: hashDeviceToken(newToken()) }));
    const port = await freePort();
    const dir = await writeBrokerDir({ dir: join(root, 'broker'), port, fleet });
    const broker = await startMosquitto({ confPath: dir.confPath, port });
    const keyPath = join(root, 'signing.key');
    writeFileSync(keyPath, generateKeyPair().privatePem, { mode: 0o600 });
    const gw = await Gateway.start({ dataDir: join(root, 'data'), keyPath, tickIntervalMs: 0, broker: { url: `mqtt://127.0.0.1:${port}`, username: dir.username, password: dir.password, clientId: 'pinwave@bench' } });
    try {
      const t0 = performance.now();
      await gw.provision(Array.from({ length: batch }, (_, i) => ({ id: `new-${i}`, group: 'g' })));
      const control = ms(t0);
      // the floor: the whole file, every device, in one go
      const t1 = performance.now();
      const all = [...fleet, ...Array.from({ length: batch }, (_, i) => ({ id: `new-${i}`, tokenHash: hashDeviceToken(newToken()) }))];
      const text = serializeDynsecFile(buildDynsecFile({ gateway: { tokenHash: hashDeviceToken(dir.password) }, devices: all }).file);
      const fh = await open(join(root, 'floor.json'), 'w', 0o600);
      await fh.writeFile(text);
      await fh.datasync();
      await fh.close();
      const file = ms(t1);
      console.log(
        `broker holding ${existing} devices: ${batch} provisioned through the control topic in ${control.toFixed(0)} ms (${(control / batch).toFixed(1)} ms a device); ` +
          `the whole file of ${existing + batch} written in one go: ${file.toFixed(0)} ms; load ${load()}`,
      );
    } finally {
      await gw.stop();
      await broker.stop();
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
