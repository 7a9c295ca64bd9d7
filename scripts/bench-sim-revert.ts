// bench-sim's revert phase (docs/pin-safety.md; docs/architecture.md §9): N health-checked devices (a
// device-sim Fleet of real MQTT clients) on the real gateway, one local TLS endpoint. A bundle whose
// pins miss the key the endpoint serves goes to all of them in one wave; timed, per device, from the
// gateway sending it (the wave's start) to the gateway counting the device's `reverted` ack, beside
// the floor of the same run: N TLS handshakes asked at once against the same endpoint at the
// concurrency the fleet's health checks run at, each from its ask to its result (before and after).
// Also: from the first revert counted to the hold decision, and whether every device's pins still
// reach the endpoint afterwards (a real handshake each). Gateway, devices and endpoint share this
// process, so every figure carries the one event loop.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet, Handshakes, startTlsEndpoint, unservedPin, type DeviceOutcome } from '../device-sim/index.ts';
import { generateKeyPair, type FirmwareManifest } from '../firmware-manifest/index.ts';
import { Gateway } from '../gateway/gateway.ts';

/** The Handshakes default the fleet's health checks run at. */
export const HANDSHAKE_CONCURRENCY = 64;

export interface RevertFigures {
  devices: number;
  /** gateway send → gateway counts `reverted`, ms, one per device */
  revert: number[];
  /** each device's own share: its window opened → its `reverted` ack sent, ms */
  window: number[];
  /** bare handshakes at the same concurrency, ms, before and after */
  handshakes: number[];
  /** first revert counted → hold decision, ms */
  firstRevertToHold: number;
  /** devices whose pins fail a real handshake to the endpoint afterwards */
  lockedOutAfter: number;
  errors: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function measureRevert(N: number, progress: (line: string) => void, timeoutMs = 180_000): Promise<RevertFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-bench-revert-'));
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  const key = generateKeyPair();
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, key.privatePem, { mode: 0o600 });
  const manifest: FirmwareManifest = {
    model: 'bench-hc',
    firmware: '2.0.0',
    trustedKeys: [key.publicPem],
    pins: [{ host: api.name, pins: [api.pins[0], api.backupPin] }],
    healthCheck: { commitTimeoutSeconds: 60, retrySeconds: 10, onUnverifiable: 'commit' },
  };
  const gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath, mqttPort: 0, tickIntervalMs: 100, manifests: [manifest] });
  const errors: string[] = [];
  const opened = new Map<string, number>();
  const window: number[] = [];
  let fleet: Fleet | null = null;
  try {
    progress(`revert: ${N} health-checked devices: provision, connect`);
    const { devices } = await gw.provision(Array.from({ length: N }, (_, i) => ({ id: `hc-${String(i).padStart(5, '0')}`, group: 'bench-hc', model: 'bench-hc', firmware: '2.0.0' })));
    fleet = new Fleet({
      url: () => gw.mqttUrl,
      models: [{ manifest }],
      devices: devices.map((d) => ({ ...d, group: 'bench-hc', model: 'bench-hc' })),
      endpoints: [api.callHome],
      callHomeSeconds: 0,
      callHomeOnApply: false,
      seed: 'bench-sim-revert',
      onOutcome: (o: DeviceOutcome) => {
        if (o.status === 'verifying') opened.set(o.deviceId, performance.now());
        else if (o.status === 'reverted' && opened.has(o.deviceId)) window.push(performance.now() - opened.get(o.deviceId)!);
      },
    });
    await fleet.start();
    if (fleet.summary().connected !== N) errors.push(`${N - fleet.summary().connected} devices did not connect`);

    const floor = async () => {
      const h = new Handshakes({ share: false, concurrency: HANDSHAKE_CONCURRENCY });
      return Promise.all(
        devices.map(async () => {
          const t0 = performance.now();
          const r = await h.get(api.callHome);
          if (!r.ok) errors.push(`bare handshake failed: ${r.error}`);
          return performance.now() - t0;
        }),
      );
    };
    progress(`revert: ${N} bare TLS handshakes, ${HANDSHAKE_CONCURRENCY} in flight`);
    const before = await floor();

    progress(`revert: a bundle that misses the served key, to all ${N} in one wave`);
    const bad = await gw.createBundle({ group: 'bench-hc', endpoints: [{ host: api.name, pins: [unservedPin(), unservedPin()] }] }, 'bench');
    const { rollout } = await gw.createRollout({ bundle: bad.id, target: { group: 'bench-hc' }, waves: [{ size: '100%', timeoutSeconds: 3600 }] }, 'bench');
    const sentAt = Date.now();
    await gw.startRollout(rollout.id, 'bench');
    const deadline = Date.now() + timeoutMs;
    const ids = devices.map((d) => d.id);
    const status = (id: string) => gw.deviceRollout(id)?.status as string | undefined;
    const reverted = () => ids.filter((id) => status(id) === 'reverted').length;
    while (reverted() < N && Date.now() < deadline) await sleep(20);
    if (reverted() < N) errors.push(`${N - reverted()} devices not counted reverted within ${timeoutMs / 1000} s`);
    const ats = ids.filter((id) => status(id) === 'reverted' && gw.deviceRollout(id)!.at !== null).map((id) => gw.deviceRollout(id)!.at! - sentAt);
    const r = await gw.getRollout(rollout.id);
    const hold = r.decisions.find((d) => d.action === 'hold');
    const firstRevertAt = sentAt + Math.min(...ats);
    if (!hold) errors.push(`the rollout was not held (state ${r.state})`);

    const after = await floor();
    await fleet.idle();
    fleet.forgetHandshakes();
    await fleet.callHome();
    const lockedOutAfter = fleet.summary().failing;
    return { devices: N, revert: ats, window, handshakes: [...before, ...after], firstRevertToHold: hold ? hold.at - firstRevertAt : NaN, lockedOutAfter, errors };
  } finally {
    await fleet?.stop();
    await gw.stop();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The q-quantile of xs (nearest rank). */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil(q * s.length) - 1))];
}
