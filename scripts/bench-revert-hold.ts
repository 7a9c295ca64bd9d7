// A bad bundle against the real gateway and N health-checked devices (docs/architecture.md §9): one
// local TLS endpoint serves a key the new bundle does not pin; the rollout is one wave of the whole
// fleet (failureThreshold 0.02, minDevices 5). Printed: the time from the gateway taking the first
// `reverted` ack to the hold (goal ≤ 1 s), from the rollout's start to the hold, how many devices
// reverted and whether any is left locked out (every device's active pins checked by a real
// handshake to the endpoint after), beside the floor of the same run: bare TLS handshakes to the
// endpoint, N at once. Gateway, devices and endpoint share one process and its event loop.
//
//   npx tsc -p . && node dist/scripts/bench-revert-hold.js [--devices 1000]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway } from '../gateway/gateway.ts';
import { generateKeyPair, type FirmwareManifest } from '../firmware-manifest/index.ts';
import { Fleet, Handshakes, startTlsEndpoint, unservedPin } from '../device-sim/index.ts';
import { parse, uintFlag } from './args.ts';

const USAGE = 'usage: node dist/scripts/bench-revert-hold.js [--devices N]   (default 1000)';
const TIMEOUT_MS = 180_000;
const { values } = parse(process.argv.slice(2), { devices: { type: 'string' } }, USAGE);
const N = values.devices === undefined ? 1000 : uintFlag(values.devices, 'devices', USAGE);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

async function waitFor(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`bench-revert-hold: no ${what} within ${TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(): Promise<void> {
  console.log(`pinwave bench-revert-hold: ${N} devices, node ${process.version}, ${cpus().length} CPUs, load ${load()}`);
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-revert-hold-'));
  const key = generateKeyPair();
  writeFileSync(join(dir, 'signing.key'), key.privatePem, { mode: 0o600 });
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  const manifest: FirmwareManifest = {
    model: 'bench-hc',
    firmware: '2.0.0',
    trustedKeys: [key.publicPem],
    pins: [{ host: 'api.example.com', pins: [api.pins[0], api.backupPin] }],
    healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 10, onUnverifiable: 'commit' },
  };
  const gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath: join(dir, 'signing.key'), mqttPort: 0, manifests: [manifest], tickIntervalMs: 0 });
  let firstRevert: number | null = null;
  let held: number | null = null;
  let rolloutId = '';
  // Called synchronously on the ack path whenever a rollout record is persisted: the hold is persisted in the ack that caused it.
  gw.onRolloutChange((id) => {
    const now = performance.now();
    if (firstRevert === null && gw.counters().acks.reverted > 0) firstRevert = now;
    if (held === null && id === rolloutId && gw.listRollouts('held').some((r) => r.id === id)) held = now;
  });
  let sim: Fleet | null = null;
  try {
    const { devices } = await gw.provision(Array.from({ length: N }, (_, i) => ({ id: `hc-${String(i).padStart(5, '0')}`, group: 'bench', model: 'bench-hc' })));
    const fleet = new Fleet({ url: () => gw.mqttUrl, models: [{ manifest }], devices: devices.map((d) => ({ ...d, group: 'bench', model: 'bench-hc' })), endpoints: [api.callHome], callHomeSeconds: 0, callHomeOnApply: false, seed: 'bench' });
    sim = fleet;
    await fleet.start();
    await waitFor(() => gw.connectedCount() === N, 'connected fleet');
    const h = new Handshakes({ share: false });
    const t0 = performance.now();
    await Promise.all(devices.map(() => h.get(api.callHome)));
    console.log(`floor: ${N} bare TLS handshakes to the endpoint at once: ${(performance.now() - t0).toFixed(0)} ms`);

    const bundle = await gw.createBundle({ group: 'bench', endpoints: [{ host: 'api.example.com', pins: [unservedPin(), unservedPin()] }] }, 'bench');
    const created = await gw.createRollout({ bundle: bundle.id, target: { group: 'bench' }, waves: [{ size: '100%', timeoutSeconds: 3600 }] }, 'bench');
    rolloutId = created.rollout.id;
    const started = performance.now();
    await gw.startRollout(rolloutId, 'bench');
    await waitFor(() => held !== null, 'hold');
    await waitFor(() => Object.values(fleet.summary().reverted).reduce((a, b) => a + b, 0) === N, 'revert of every device');
    await waitFor(async () => (await gw.getRollout(rolloutId)).waves[0].reverted === N, 'reverted ack of every device at the gateway');
    const r = await gw.getRollout(rolloutId);
    const hold = r.decisions.find((d) => d.action === 'hold');
    console.log(`first reverted ack to the hold: ${(held! - firstRevert!).toFixed(1)} ms (goal ≤ 1000 ms); start to hold ${(held! - started).toFixed(0)} ms; held on ${hold?.reason} at ${hold?.endpoint} with ${hold?.figures?.reverted} reverted of ${hold?.figures?.responded} answered`);
    console.log(`reverted: ${r.waves[0].reverted}/${N} at the gateway, ${JSON.stringify(fleet.summary().reverted)} by the devices; seqs ${JSON.stringify(fleet.summary().seqs)}; bundles sent ${gw.counters().bundlesSent}`);
    fleet.forgetHandshakes();
    await fleet.callHome();
    await fleet.idle();
    const s = fleet.summary();
    console.log(`devices locked out after (their own call-home handshakes, active pins): ${s.failing} of ${N}; load ${load()}`);
  } finally {
    await sim?.stop();
    await gw.stop();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.message);
    process.exit(1);
  },
);
