// `npm run demo`: the whole idea with one command. A gateway (embedded aedes broker, the embedded store in a
// temp dir, HTTP API), two local TLS endpoints, and 1,000 simulated devices of two models whose
// firmware health-checks every bundle. A healthy 4-wave rollout pre-stages the telemetry endpoint's
// next key; the lockout forecast names the devices still lacking it before the endpoint switches.
// Then an operator pushes a pin set that leaves the served key out: pre-flight refuses it naming the
// endpoint, the operator forces it, and the devices that take it revert by themselves (their own
// handshakes under the new pins fail), the wave is held on their `reverted` acks, and no device is
// locked out, as their own call-home handshakes show.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet, startTlsEndpoint, type TlsEndpoint } from '../device-sim/index.ts';
import { checkChain, endpointText, generateKeyPair, type FirmwareManifest, type ManifestHealthCheck } from '../firmware-manifest/index.ts';
import { Gateway } from '../gateway/gateway.ts';
import { buildServer } from '../gateway/http/index.ts';
import { hashToken, newToken } from '../gateway/credentials.ts';
import type { Preflight } from '../gateway/preflight.ts';
import { ApiClient } from './api-client.ts';
import type { RolloutView } from './progress.ts';
import { processIo, type Io } from './args.ts';
import { followRollout, main as rolloutCli } from './commands/rollout.ts';

const DEVICES = 1000;
/** devices provisioned after the healthy rollout, born with the firmware's pins: the forecast finds them */
const LATE = 5;
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
    say(bold('pinwave demo: staged, health-checked pin rollouts to 1,000 simulated devices'));
    say();

    // Two services the devices pin: a stable API, and a telemetry endpoint that will rotate its key.
    const api = await startTlsEndpoint({ name: 'api.thermo.example', keys: 1 });
    const tel = await startTlsEndpoint({ name: 'telemetry.thermo.example', keys: 2 });
    cleanup.push(() => api.close(), () => tel.close());
    const endpointLine = (e: TlsEndpoint) => `${endpointText(e.name, e.port)} (listening on ${endpointText(e.address.host, e.address.port)}) serving ${e.pins[e.serving].slice(0, 20)}…`;
    say(`TLS endpoints  ${endpointLine(api)}`);
    say(`               ${endpointLine(tel)}`);

    const key = generateKeyPair();
    const keyPath = join(dir, 'signing.key');
    writeFileSync(keyPath, key.privatePem, { mode: 0o600 });
    const firstPins = [
      { host: api.name, pins: [api.pins[0], api.backupPin] },
      { host: tel.name, pins: [tel.pins[0], tel.backupPin] },
    ];
    // The firmware checks every enforced endpoint of a new bundle before it commits (docs/pin-safety.md).
    const healthCheck: ManifestHealthCheck = { commitTimeoutSeconds: 30, retrySeconds: 5, onUnverifiable: 'commit' };
    const models: FirmwareManifest[] = [
      { model: 'th-100', firmware: '1.4.2', trustedKeys: [key.publicPem], pins: firstPins, healthCheck },
      { model: 'th-200', firmware: '2.1.0', trustedKeys: [key.publicPem], pins: firstPins, maxBundleBytes: 1024, clockSkewSeconds: 60, healthCheck },
    ];
    // Pre-flight reads both endpoints by live TLS, where they really listen (config preflight.endpoints).
    const preflight = { endpoints: Object.fromEntries([api, tel].map((e) => [`${e.name}:${e.port}`, e.address])) };
    const gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath, mqttPort: 0, tickIntervalMs: 200, manifests: models, preflight });
    cleanup.push(() => gw.stop());
    const operatorToken = newToken();
    const app = await buildServer({ gateway: gw, tokens: [{ name: 'demo-operator', role: 'admin', hash: hashToken(operatorToken) }] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    cleanup.push(() => app.close());
    const apiUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const http = new ApiClient(apiUrl, operatorToken);
    say(`gateway        mqtt ${gw.mqttUrl}, http ${apiUrl}, store ${join(dir, 'data')}`);

    // 1,000 devices of two models, provisioned through the API, each a real MQTT client.
    const list = Array.from({ length: DEVICES + LATE }, (_, i) => ({ id: `th-${String(i).padStart(4, '0')}`, group: GROUP, model: i % 5 < 3 ? 'th-100' : 'th-200', firmware: i % 5 < 3 ? '1.4.2' : '2.1.0' }));
    const provision = (part: typeof list) => http.post<{ devices: { id: string; token: string }[] }>('/v1/devices', { devices: part }).then((r) => r.devices);
    const devices = await provision(list.slice(0, DEVICES));
    // A gateway that counts verified and reverted acks (docs/architecture.md §9) gets health-checked
    // devices; one that does not yet would drop those acks, so its devices commit at once, and a bad
    // bundle is held on their pin-failure telemetry and undone by a rollback instead.
    const counted = 'verified' in gw.counters().acks;
    const fleetModels = counted ? models : models.map(({ healthCheck: _h, ...m }) => m);
    const fleetOf = (part: typeof devices, seed: string) =>
      new Fleet({
        url: () => gw.mqttUrl,
        models: [
          { manifest: fleetModels[0], behaviours: { ackDelayMs: { min: 20, max: 200 } } },
          { manifest: fleetModels[1], behaviours: { ackDelayMs: { min: 50, max: 500 } } },
        ],
        devices: part.map((d) => ({ ...d, group: GROUP, model: list.find((x) => x.id === d.id)!.model })),
        endpoints: [api.callHome, tel.callHome],
        callHomeSeconds: 30,
        seed,
      });
    const fleet = fleetOf(devices, 'pinwave-demo');
    let late: Fleet | null = null;
    cleanup.splice(1, 0, () => fleet.stop(), () => late?.stop());
    await fleet.start();
    const s0 = fleet.summary();
    say(`fleet          ${s0.devices} devices (600 th-100, 400 th-200), each health-checking new pins, connected: ${s0.connected}, on seq 0 (firmware pins): ${s0.seqs['0'] ?? 0}  [${elapsed()}]`);
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
    const r1 = await http.post<RolloutView & { preflight: Preflight }>('/v1/rollouts', { bundle: good.id, target: { group: GROUP }, waves, start: true });
    say(`   pre-flight: ${r1.preflight.ok ? 'ok' : 'refused'}: both models' manifests accept the bundle; ${continuityLine(r1.preflight)}`);
    const done1 = await followRollout(http, r1.id, { io: processIo, indent: '   ', intervalMs: 150, timeoutMs: 45_000 });
    if (done1.state !== 'completed') throw new Error(`the healthy rollout ended ${done1.state}`);
    await fleet.idle();
    // The rollout completes at its ack threshold; the last windows commit right after.
    if (counted) await until(async () => fleet.summary().verified === DEVICES, 15_000, 'every device to verify');
    const s1 = fleet.summary();
    const how = counted ? `each verified by its own handshakes (verified: ${s1.verified})` : 'applied (this gateway does not count health checks yet: the devices run none)';
    say(`   completed: ${s1.seqs[String(good.seq)] ?? 0} devices on seq ${good.seq}, ${how}, pin failures: ${s1.pinFailures.observed}  [${elapsed()}]`);
    say();

    // Before the endpoint switches keys: who would lock out? New devices, born with the firmware's pins, lack the new key.
    say(bold(`2. Before ${tel.name} switches keys: the lockout forecast`));
    late = fleetOf(await provision(list.slice(DEVICES)), 'pinwave-demo-late');
    say(`   ${LATE} new devices are provisioned from the factory, born with the firmware's pins; not connected yet`);
    const forecast = async () => http.get<{ lockedOut: number; byModel: Record<string, number>; items: Array<{ id: string; lockedOut: boolean }> }>(`/v1/forecast?host=${tel.name}&port=${tel.port}&pin=${encodeURIComponent(tel.pins[1])}&limit=1000`);
    const lacking = () => [...fleet.devices, ...late!.devices].filter((d) => checkChain(d.state, tel.name, tel.port, [tel.pins[1]], Date.now() / 1000) === 'pin_mismatch').map((d) => d.id);
    const f1 = await forecast();
    const listed = f1.items.filter((d) => d.lockedOut).map((d) => d.id);
    const truth = lacking();
    say(`   forecast: ${f1.lockedOut} devices would lock out if it served ${tel.pins[1].slice(0, 20)}… now: ${listed.join(', ')}`);
    say(`   devices whose own trust state lacks that key: ${truth.length}; the same devices: ${sameSet(listed, truth) ? 'yes' : 'NO'}`);
    await late.start();
    await until(async () => (await forecast()).lockedOut === 0, 30_000, 'the late devices to take the baseline');
    say(`   the ${LATE} late devices come online and are sent the group's baseline; forecast now: ${(await forecast()).lockedOut} would lock out  [${elapsed()}]`);
    tel.rotate();
    fleet.forgetHandshakes();
    late.forgetHandshakes();
    await Promise.all([fleet.callHome(), late.callHome()]);
    say(`   ${tel.name} switches to its new key (${tel.pins[1].slice(0, 20)}…): devices call home, failing: ${fleet.summary().failing + late.summary().failing}`);
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
    const refused = await http.post('/v1/rollouts', { bundle: bad.id, target: { group: GROUP }, waves, start: true }).then(
      () => null,
      (err: Error) => err,
    );
    if (!refused) throw new Error('pre-flight let the mistaken pin set through');
    say(`   pre-flight refused it: ${refused.message.replace(/^.*?pre-flight refused the rollout: /, '')}`);
    const reason = 'the certificate team says telemetry goes back to its old key tonight';
    say(`   the operator forces it: pinwave rollout create --bundle ${bad.id.slice(0, 12)} --group ${GROUP} --force "${reason}" --start`);
    const cliLines: string[] = [];
    const cliIo: Io = { out: (l) => void cliLines.push(l), err: (l) => void cliLines.push(l), env: { PINWAVE_API: apiUrl, PINWAVE_TOKEN: operatorToken }, tty: false };
    const code = await rolloutCli(['create', '--bundle', bad.id, '--group', GROUP, '--waves', '1%,10%,50%,100%', '--timeout', '60s', '--force', reason, '--start', '--json'], cliIo);
    if (code !== 0) throw new Error(`rollout create --force exited ${code}: ${cliLines.join('\n')}`);
    const created = JSON.parse(cliLines.join('\n')) as RolloutView & { preflight: Preflight };
    say(`   forced past pre-flight by ${created.preflight.forced?.by}: "${created.preflight.forced?.reason}", recorded as a decision of rollout ${created.id}`);
    const done2 = await followRollout(http, created.id, { io: processIo, indent: '   ', intervalMs: 150, timeoutMs: 30_000 });
    await fleet.idle();
    if (done2.state !== 'held') throw new Error(`the bad rollout was not held: ${done2.state}`);
    const hold = [...(done2.decisions ?? [])].reverse().find((d) => d.action === 'hold') as { reason: string; at: number; endpoint?: string } | undefined;
    const callHome = async () => {
      fleet.forgetHandshakes();
      late.forgetHandshakes();
      await Promise.all([fleet.callHome(), late.callHome()]);
      return fleet.summary().failing + late.summary().failing;
    };
    const started2 = (done2 as RolloutView & { startedAt?: number }).startedAt ?? 0;
    const stuckLine = async (id: string) => {
      const stuck = await http.get<{ items: Array<{ id: string; reason: string }> }>(`/v1/stuck?rollout=${encodeURIComponent(id)}`);
      say(`   stuck devices (${stuck.items.length}): ${stuck.items.slice(0, 4).map((d) => `${d.id} ${d.reason}`).join(', ')}${stuck.items.length > 4 ? ', …' : ''}`);
    };
    if (counted) {
      // The hold came with the reverts that crossed the threshold; the wave's last devices revert right after.
      type WaveWithReverts = RolloutView['waves'][number] & { reverted?: number };
      const wave1 = async () => (await http.get<RolloutView>(`/v1/rollouts/${encodeURIComponent(created.id)}`)).waves[0] as WaveWithReverts;
      await until(async () => ((await wave1()).reverted ?? 0) === (await wave1()).size, 15_000, 'every device of wave 1 to revert');
      const w = await wave1();
      say(`   held in wave 1 (${w.size} devices) on their reverted acks: ${hold?.reason}${hold?.endpoint ? ` (${hold.endpoint})` : ''}, ${(((hold?.at ?? 0) - started2) / 1000).toFixed(2)} s after the wave started; reverted by themselves: ${w.reverted ?? 0} of ${w.size}`);
      await stuckLine(created.id);
      const s2 = fleet.summary();
      say(`   every device that received the bad pins went back to seq ${good.seq} by itself; devices on seq ${good.seq}: ${(s2.seqs[String(good.seq)] ?? 0) + (late.summary().seqs[String(good.seq)] ?? 0)}`);
    } else {
      const w = done2.waves[0];
      say(`   held in wave 1 (${w.size} devices) on their pin-failure reports: ${hold?.reason}, ${(((hold?.at ?? 0) - started2) / 1000).toFixed(2)} s after the wave started (this gateway drops reverted acks: its devices run no health check)`);
      await stuckLine(created.id);
      const rb = await http.post<{ aborted: RolloutView; rollback: RolloutView }>(`/v1/rollouts/${encodeURIComponent(created.id)}/rollback`);
      const done3 = await followRollout(http, rb.rollback.id, { io: processIo, indent: '   ', intervalMs: 150, timeoutMs: 30_000 });
      await fleet.idle();
      say(`   rollback ${done3.state}: the previous pins as seq ${rb.rollback.bundle.seq} to the devices the bad bundle reached`);
    }
    const lockedOut = await callHome();
    say(bold(`   devices locked out: ${lockedOut}`) + ` (every device called home to both endpoints over real TLS under the pins it holds)  [${elapsed()}]`);
    if (counted) {
      await http.post(`/v1/rollouts/${encodeURIComponent(created.id)}/abort`, { reason: 'wrong pins; every device reverted' });
      say('   the operator aborts the held rollout: nothing to roll back');
    }
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

/** How pre-flight judged each endpoint, in a line. */
function continuityLine(p: Preflight): string {
  return p.endpoints.map((e) => `${e.endpoint} ${e.check === 'served' ? (e.ok ? 'serves a key in the new set' : 'serves a key the new set lacks') : e.ok ? 'keeps a pin of what runs' : 'keeps no pin of what runs'}`).join('; ');
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
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
