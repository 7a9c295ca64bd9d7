// `npm run demo`: the whole idea with one command. A gateway (embedded aedes broker, lowdb file in a
// temp dir, HTTP API), two local TLS endpoints, and 1,000 simulated devices of two models. A healthy
// 4-wave rollout runs to completion; then one endpoint rotates its key and an operator pushes a pin
// set that leaves the new key out: the devices that take it fail real TLS pin checks, their
// telemetry holds the rollout in its first wave, and a rollback brings them back.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet, startTlsEndpoint, type TlsEndpoint } from '../device-sim/index.ts';
import { generateKeyPair, type FirmwareManifest } from '../firmware-manifest/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import { buildServer } from '../gateway/http/index.ts';
import { hashToken, newToken } from '../gateway/credentials.ts';
import { ApiClient } from './api-client.ts';
import type { RolloutView } from './progress.ts';
import { processIo } from './args.ts';
import { followRollout } from './commands/rollout.ts';

const DEVICES = 1000;
const GROUP = 'thermostats';
const tty = processIo.tty;
const say = (s = '') => process.stdout.write(s + '\n');
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)}s`;

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-demo-'));
  const cleanup: Array<() => Promise<unknown> | unknown> = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    say(bold('pinwave demo: staged pin rollouts to 1,000 simulated devices'));
    say();

    // Two services the devices pin: a stable API, and a telemetry endpoint that will rotate its key.
    const api = await startTlsEndpoint({ name: 'api.thermo.example', keys: 1 });
    const tel = await startTlsEndpoint({ name: 'telemetry.thermo.example', keys: 2 });
    cleanup.push(() => api.close(), () => tel.close());
    const endpointLine = (e: TlsEndpoint) => `${e.name}:${e.port} (listening on ${e.address.host}:${e.address.port}) serving ${e.pins[e.serving].slice(0, 20)}…`;
    say(`TLS endpoints  ${endpointLine(api)}`);
    say(`               ${endpointLine(tel)}`);

    const key = generateKeyPair();
    const keyPath = join(dir, 'signing.key');
    writeFileSync(keyPath, key.privatePem, { mode: 0o600 });
    const firstPins = [
      { host: api.name, pins: [api.pins[0], api.backupPin] },
      { host: tel.name, pins: [tel.pins[0], tel.backupPin] },
    ];
    const models: FirmwareManifest[] = [
      { model: 'th-100', firmware: '1.4.2', trustedKeys: [key.publicPem], pins: firstPins },
      { model: 'th-200', firmware: '2.1.0', trustedKeys: [key.publicPem], pins: firstPins, maxBundleBytes: 1024, clockSkewSeconds: 60 },
    ];
    const gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath, mqttPort: 0, tickIntervalMs: 200, manifests: models });
    cleanup.push(() => gw.stop());
    const operatorToken = newToken();
    const app = await buildServer({ gateway: gw, tokens: [{ name: 'demo-operator', role: 'admin', hash: hashToken(operatorToken) }] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    cleanup.push(() => app.close());
    const apiUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const http = new ApiClient(apiUrl, operatorToken);
    say(`gateway        mqtt ${gw.mqttUrl}, http ${apiUrl}, store ${join(dir, 'data')}`);

    // 1,000 devices of two models, provisioned through the API, each a real MQTT client.
    const list = Array.from({ length: DEVICES }, (_, i) => ({ id: `th-${String(i).padStart(4, '0')}`, group: GROUP, model: i % 5 < 3 ? 'th-100' : 'th-200', firmware: i % 5 < 3 ? '1.4.2' : '2.1.0' }));
    const { devices } = await http.post<{ devices: { id: string; token: string }[] }>('/v1/devices', { devices: list });
    const fleet = new Fleet({
      url: () => gw.mqttUrl,
      models: [
        { manifest: models[0], behaviours: { ackDelayMs: { min: 20, max: 200 } } },
        { manifest: models[1], behaviours: { ackDelayMs: { min: 50, max: 500 } } },
      ],
      devices: devices.map((d, i) => ({ ...d, group: GROUP, model: list[i].model })),
      endpoints: [api.callHome, tel.callHome],
      callHomeSeconds: 30,
      seed: 'pinwave-demo',
    });
    cleanup.splice(1, 0, () => fleet.stop());
    await fleet.start();
    const s0 = fleet.summary();
    say(`fleet          ${s0.devices} devices (600 th-100, 400 th-200) connected: ${s0.connected}, on seq 0 (firmware pins): ${s0.seqs['0'] ?? 0}  [${elapsed()}]`);
    say();

    // Rollout 1: the telemetry endpoint's next key goes into every device's pins before it is served.
    say(bold('1. A healthy rollout: pre-stage the telemetry endpoint\'s next key in 4 waves (1%, 10%, 50%, 100%)'));
    const good = await http.post<{ id: string; seq: number; size: number }>('/v1/bundles', {
      group: GROUP,
      pins: [
        { host: api.name, pins: [api.pins[0], api.backupPin] },
        { host: tel.name, pins: [tel.pins[0], tel.pins[1], tel.backupPin] },
      ],
      expiresIn: '90d',
    });
    say(`   bundle seq ${good.seq}, ${good.size} bytes, signed by the gateway`);
    const waves = ['1%', '10%', '50%', '100%'].map((size) => ({ size, timeoutSeconds: 60 }));
    const r1 = await http.post<RolloutView & { preflight: { ok: boolean; warnings: { message: string }[] } }>('/v1/rollouts', { bundle: good.id, target: { group: GROUP }, waves, start: true });
    say(`   pre-flight: ${r1.preflight.ok ? 'ok' : 'refused'} (both models' manifests accept the bundle)`);
    const done1 = await followRollout(http, r1.id, { io: processIo, indent: '   ', intervalMs: 150, timeoutMs: 45_000 });
    if (done1.state !== 'completed') throw new Error(`the healthy rollout ended ${done1.state}`);
    await fleet.idle();
    const s1 = fleet.summary();
    say(`   completed: ${s1.seqs[String(good.seq)] ?? 0} devices on seq ${good.seq}, pin failures: ${s1.pinFailures.observed}  [${elapsed()}]`);
    say();

    // The telemetry endpoint rotates to the pre-staged key: every device still connects.
    tel.rotate();
    fleet.forgetHandshakes();
    await fleet.callHome();
    say(bold(`2. ${tel.name} rotates to its new key`) + ` (${tel.pins[1].slice(0, 20)}…): devices call home, failing: ${fleet.summary().failing}`);
    say();

    // Rollout 2: an operator copies last year's pin list, which leaves the new key out.
    say(bold('3. A mistake: a pin set without the key the telemetry endpoint now serves'));
    const bad = await http.post<{ id: string; seq: number }>('/v1/bundles', {
      group: GROUP,
      pins: [
        { host: api.name, pins: [api.pins[0], api.backupPin] },
        { host: tel.name, pins: [tel.pins[0], tel.backupPin] },
      ],
    });
    const r2 = await http.post<RolloutView>('/v1/rollouts', { bundle: bad.id, target: { group: GROUP }, waves, start: true });
    const done2 = await followRollout(http, r2.id, { io: processIo, indent: '   ', intervalMs: 150, timeoutMs: 30_000 });
    await fleet.idle();
    if (done2.state !== 'held') throw new Error(`the bad rollout was not held: ${done2.state}`);
    const hold = [...(done2.decisions ?? [])].reverse().find((d) => d.action === 'hold');
    const w = done2.waves[0];
    say(`   held in wave 1 (${w.size} devices): ${hold?.reason}; failure ratio ${(w.failureRatio * 100).toFixed(0)}% over the ${(w.thresholds.failureThreshold * 100).toFixed(0)}% threshold  [${elapsed()}]`);
    const failures = await http.get<{ items: Array<{ host: string; port: number; observedPin: string | null; devices: number; failures: number }> }>(`/v1/telemetry/pin-failures?rollout=${encodeURIComponent(r2.id)}`);
    for (const f of failures.items) say(`   pin failures: ${f.host}:${f.port} served ${String(f.observedPin).slice(0, 20)}…, not in the new pins: ${f.devices} devices, ${f.failures} failures`);
    const stuck = await http.get<{ items: Array<{ id: string; reason: string }> }>(`/v1/stuck?rollout=${encodeURIComponent(r2.id)}`);
    say(`   stuck devices (${stuck.items.length}): ${stuck.items.slice(0, 6).map((d) => `${d.id} ${d.reason}`).join(', ')}${stuck.items.length > 6 ? ', …' : ''}`);
    const s2 = fleet.summary();
    say(`   the other ${s2.seqs[String(good.seq)] ?? 0} devices never received it: still on seq ${good.seq}`);
    say();

    say(bold('4. Rollback: the previous pins, signed again with a higher seq, to the devices the bad bundle reached'));
    const rb = await http.post<{ aborted: RolloutView; rollback: RolloutView }>(`/v1/rollouts/${encodeURIComponent(r2.id)}/rollback`);
    const done3 = await followRollout(http, rb.rollback.id, { io: processIo, indent: '   ', intervalMs: 150, timeoutMs: 30_000 });
    await fleet.idle();
    fleet.forgetHandshakes();
    await fleet.callHome();
    const s3 = fleet.summary();
    say(`   rollback ${done3.state}: seq ${rb.rollback.bundle.seq} on ${s3.seqs[String(rb.rollback.bundle.seq)] ?? 0} devices; devices failing pin checks now: ${s3.failing}  [${elapsed()}]`);
    say();
    say('The same steps from a terminal, against a gateway you run: see the README (pinwave gateway,');
    say('devices provision, sim, bundle push, rollout create, rollout status --watch, devices stuck).');
    say(`demo finished in ${elapsed()}`);
    return 0;
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch {
        // best effort: the demo is over
      }
    }
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`demo failed: ${err.stack ?? err.message}\n`);
    process.exitCode = 1;
  },
);
