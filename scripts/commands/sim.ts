// `pinwave sim`: a simulated fleet against a running gateway. Either provisions its
// devices over the gateway's HTTP API (`--api URL`, token from PINWAVE_TOKEN) or runs devices
// provisioned elsewhere (`--tokens FILE --manifest FILE`, each device's broker in the file or
// `--gateway mqtt://HOST:PORT`). With `--processes N` the fleet runs across N worker processes
// (scripts/sim-processes.ts) with one summary; `--connect-rate` ramps the connects. Runs until
// --duration ends or SIGINT/SIGTERM, then disconnects every device cleanly. With a terminal, a live
// view redrawn in place; without one, a line per change; with --json, one summary object at the end.
// A model whose manifest (or scenario) declares a health check runs provisional apply
// (docs/pin-safety.md): its devices ack `verified`, `reverted` or `applied` once their window closes.
import { readFile, stat } from 'node:fs/promises';
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { durationFlag, parse, uintFlag, UsageError, type Io } from '../args.ts';
import { gatewayBase, whyUnreachable } from '../api-client.ts';
import { checkDeviceId } from '../../gateway/device-id.ts';
import { GROUP_RE, LABEL_RE } from '../../gateway/devices.ts';
import { endpointText, formatManifestErrors, formatPin, validateManifest, type FirmwareManifest, type ManifestHealthCheck } from '../../firmware-manifest/index.ts';
import { ProcessFleet, type WorkerSpec } from '../sim-processes.ts';
import { allocate, Fleet, MAX_SIM_DEVICES, formatHistogram, formatScenarioErrors, Handshakes, loadScenario, withHealthCheck, type Behaviours, type CallHomeEndpoint, type FleetDevice, type FleetModel, type FleetSummary, type Scenario, type ScenarioModel } from '../../device-sim/index.ts';

const USAGE = `Usage:
  pinwave sim --api URL --devices N --group G [--model M] [--manifest FILE] [options]
  pinwave sim [--gateway mqtt://HOST:PORT] --tokens FILE --manifest FILE [--devices N] [--group G] [options]

A fleet of simulated devices: real MQTT clients that verify, apply and acknowledge bundles, and
check their pins against real TLS endpoints, as firmware would.

  --api URL            provision N devices on the gateway's HTTP API (token: PINWAVE_TOKEN, an admin
                       token); without --manifest, devices trust the gateway's key (GET /v1/info) and
                       pin what the scenario's endpoints serve now; the manifests the devices are
                       born with are registered on the gateway (POST /v1/manifests); one that
                       differs from the manifest the gateway holds for its model and firmware stops
                       the run before any device is provisioned
  --replace-manifests  --api: replace a different manifest the gateway holds (pushed, not the
                       config's) with the devices' (pre-flight and health checks then judge by it)
  --gateway URL        the MQTT URL of the gateway (or broker) for devices of the tokens file that
                       name no "broker" of their own
  --tokens FILE        the tokens file: JSON {"devices": [{"id", "token", "group"?, "model"?, "broker"?}]}
                       (what POST /v1/devices returns) or a bare array of those; "broker" is the
                       mqtt:// or mqtts:// URL that device was provisioned with and connects to
                       (several brokers: docs/external-broker.md). --credentials FILE is the same flag
  --manifest FILE      the devices' firmware manifest (JSON), for the models without one in the scenario
  --devices N          how many devices (--tokens: the first N of the file; default all)
  --group G            the devices' group (--tokens: for devices that name none)
  --model M            the model name (default: the manifest's, or "sim-1")
  --silent-rate R      share of devices that never ack (0..1)
  --reject-rate R      share whose flash write fails: they reject with apply_failed
  --offline-rate R     share offline for a period (30 s to 5 min by default), then back
  --ack-delay-ms MIN-MAX   ack delay, uniform between MIN and MAX ms (or one fixed value)
  --scenario FILE.json models, shares, behaviours, health checks and endpoints (device-sim/scenarios/
                       has examples); the flags above override its behaviours for every model
  --no-health-check    no device runs a health check, whatever its manifest or the scenario says:
                       every bundle is committed at once and acked applied. With one, a device applies
                       a bundle provisionally, checks its endpoints under the new pins and acks
                       verified or reverted (docs/pin-safety.md). The manifests pinwave sim builds
                       declare one of the scenario's endpoints, when it has any
  --seed S             behaviours are drawn from this seed (default 1): the same seed, the same fleet
  --duration D         stop after D, e.g. 60s or 5m (default: at SIGINT or SIGTERM)
  --verify-each        verify every bundle on every device (default: once per bundle and key set)
  --handshake-each     a TLS handshake per device check (default: one per endpoint per second)
  --processes N        run the fleet across N worker processes (device i in process i mod N), one
                       summary for all; one process may hold only as many connections as it may open
                       files (ulimit -n). Default 1: in this process
  --connect-rate R     start at most R connects a second across the fleet, at most 100 in flight
                       (a broker's listen backlog: Mosquitto's is 100); default: 200 at a time per
                       process, as fast as they complete
  --no-presence        devices leave no will and publish no online on their presence topic (by
                       default they do: docs/architecture.md §5)
  --retain-presence    their presence is retained: for a broker the gateway does not own (external
                       broker mode, docs/architecture.md §8). With --api, set when GET /v1/info says
                       "broker": "external"
  --client-cert FILE   a client certificate (PEM) every device shows a gateway that asks for one
  --client-key FILE    (mutual TLS: docs/configuration.md, mqtt.tls.requireClientCert) and its key;
                       the two go together. Devices still sign in with their tokens
  --json               print one summary object at the end, no live view
  -h, --help           print this help`;

export interface SimHooks {
  /** stops the run like SIGINT does (tests) */
  signal?: AbortSignal;
  /** called once the fleet exists, before it connects (tests watch it) */
  onFleet?: (fleet: Fleet) => void;
  /** how long one API request may take; default REQUEST_TIMEOUT_MS */
  requestTimeoutMs?: number;
}

/** How long one request to the gateway's API may take, as the operator CLI's (scripts/api-client.ts). */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Whether a manifest `pinwave sim` builds itself declares a health check of the scenario's endpoints
 * (when the scenario has any and the model names none). On: the gateway counts `verified` and
 * `reverted` acks (docs/architecture.md §9).
 */
export const HEALTH_CHECK_BY_DEFAULT = true;

/** The health check of a default manifest: the scenario's endpoints, or none when it has none (a fleet with nothing to call acks at once). */
export function defaultHealthCheck(endpoints: readonly CallHomeEndpoint[], byDefault = HEALTH_CHECK_BY_DEFAULT): ManifestHealthCheck | undefined {
  if (!byDefault || endpoints.length === 0) return undefined;
  const unique = [...new Map(endpoints.map((e) => [`${e.host}:${e.port}`, { host: e.host, port: e.port }])).values()];
  return { endpoints: unique, commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' };
}

/** The most worker processes --processes takes. */
const MAX_PROCESSES = 64;
/** Connects in flight at once with --connect-rate, across the processes: Mosquitto's listen backlog. */
const BACKLOG = 100;

/** Placeholder pins of a default manifest with nothing to pin: valid, distinct, and matching no real key. */
const PLACEHOLDER_HOST = 'pinwave-sim.invalid';
const placeholderPin = (label: string) => formatPin(new Uint8Array(createHash('sha256').update(`pinwave sim placeholder ${label}`).digest()));
/**
 * The placeholder backup pin of an endpoint a default manifest pins. Its seed is `host:port` as earlier
 * releases wrote it (`::1:443`, not endpointText's `[::1]:443`): no one reads it, and a manifest built
 * again must equal the one a run pushed before, or the next `--api` run is refused as a conflict.
 */
export const backupPin = (host: string, port: number) => placeholderPin(`backup ${host}:${port}`);

export async function main(args: string[], io: Io, hooks: SimHooks = {}): Promise<number> {
  const { values } = parse(args, {
    api: { type: 'string' },
    gateway: { type: 'string' },
    credentials: { type: 'string' },
    tokens: { type: 'string' },
    processes: { type: 'string' },
    'connect-rate': { type: 'string' },
    'no-presence': { type: 'boolean', default: false },
    'retain-presence': { type: 'boolean', default: false },
    manifest: { type: 'string' },
    devices: { type: 'string' },
    group: { type: 'string' },
    model: { type: 'string' },
    'silent-rate': { type: 'string' },
    'reject-rate': { type: 'string' },
    'offline-rate': { type: 'string' },
    'ack-delay-ms': { type: 'string' },
    scenario: { type: 'string' },
    seed: { type: 'string' },
    duration: { type: 'string' },
    'verify-each': { type: 'boolean', default: false },
    'handshake-each': { type: 'boolean', default: false },
    'no-health-check': { type: 'boolean', default: false },
    'replace-manifests': { type: 'boolean', default: false },
    'client-cert': { type: 'string' },
    'client-key': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  }, USAGE);
  if (values.help) {
    io.out(USAGE);
    return 0;
  }

  // Flags first, all of them, before any file or network is touched.
  if (values.tokens !== undefined && values.credentials !== undefined) throw new UsageError('--tokens and --credentials are the same flag: give one', USAGE);
  const tokensFile = values.tokens ?? values.credentials;
  if (values.api !== undefined && values.gateway !== undefined) throw new UsageError('give either --api URL or --gateway mqtt://HOST:PORT with --tokens FILE, not both', USAGE);
  if (values.api === undefined && tokensFile === undefined) {
    throw new UsageError(values.gateway === undefined ? 'give either --api URL or --tokens FILE (with --gateway mqtt://HOST:PORT for devices that name no broker)' : '--gateway needs --tokens FILE', USAGE);
  }
  if (values.api !== undefined && tokensFile !== undefined) throw new UsageError('--tokens is for devices provisioned elsewhere; --api provisions its own devices', USAGE);
  const api = values.api !== undefined ? gatewayBase(values.api, USAGE, '--api') : undefined;
  const gatewayUrl = values.gateway !== undefined ? mqttUrl(values.gateway, '--gateway') : undefined;
  const processes = values.processes === undefined ? 1 : uintFlag(values.processes, 'processes', USAGE);
  if (processes < 1 || processes > MAX_PROCESSES) throw new UsageError(`--processes expects 1 to ${MAX_PROCESSES}, got "${values.processes}"`, USAGE);
  const connectRate = values['connect-rate'] === undefined ? undefined : Number(values['connect-rate']);
  if (connectRate !== undefined && !(/^\d*\.?\d+$/.test(values['connect-rate']!) && connectRate > 0)) throw new UsageError(`--connect-rate expects connects a second above 0, got "${values['connect-rate']}"`, USAGE);
  const token = api !== undefined ? io.env.PINWAVE_TOKEN : undefined;
  if (api !== undefined && !token) throw new UsageError('--api needs an admin API token in PINWAVE_TOKEN (it provisions devices)', USAGE);
  const devicesFlag = values.devices === undefined ? undefined : uintFlag(values.devices, 'devices', USAGE);
  if (devicesFlag === 0) throw new UsageError('--devices expects at least 1, got "0"', USAGE);
  if (devicesFlag !== undefined && devicesFlag > MAX_SIM_DEVICES) throw new UsageError(`--devices expects at most ${MAX_SIM_DEVICES}, got "${values.devices}"`, USAGE);
  if (values.group !== undefined && !/^[A-Za-z0-9._:-]{1,64}$/.test(values.group)) throw new UsageError(`--group expects 1 to 64 characters of A-Z a-z 0-9 . _ : -, got "${values.group}"`, USAGE);
  if (values.model !== undefined && !/^[A-Za-z0-9._:-]{1,64}$/.test(values.model)) throw new UsageError(`--model expects 1 to 64 characters of A-Z a-z 0-9 . _ : -, got "${values.model}"`, USAGE);
  const overrides: Behaviours = {};
  if (values['silent-rate'] !== undefined) overrides.silentRate = rateFlag(values['silent-rate'], 'silent-rate');
  if (values['reject-rate'] !== undefined) overrides.rejectRate = rateFlag(values['reject-rate'], 'reject-rate');
  if (values['offline-rate'] !== undefined) overrides.offlineRate = rateFlag(values['offline-rate'], 'offline-rate');
  if (values['ack-delay-ms'] !== undefined) overrides.ackDelayMs = rangeFlag(values['ack-delay-ms'], 'ack-delay-ms');
  const durationMs = values.duration === undefined ? undefined : durationFlag(values.duration, 'duration', USAGE) * 1000;
  // 0s would provision the devices and stop before one connects, then report that none could; beyond
  // 2^31 ms (24.8 days) a timer fires at once, with the same result
  if (durationMs === 0) throw new UsageError(`--duration must be more than 0, got "${values.duration}"`, USAGE);
  if (durationMs !== undefined && durationMs > 24 * 86_400_000) throw new UsageError(`--duration must be at most 24d, got "${values.duration}"`, USAGE);
  if ((values['client-cert'] === undefined) !== (values['client-key'] === undefined)) throw new UsageError(values['client-cert'] === undefined ? '--client-key needs --client-cert FILE, the certificate it is the key of' : '--client-cert needs --client-key FILE, its private key', USAGE);

  const scenario = values.scenario !== undefined ? await scenarioFrom(values.scenario) : undefined;
  const clientCert = values['client-cert'] !== undefined ? await clientCertFrom(values['client-cert'], values['client-key']!) : undefined;
  const manifest = values.manifest !== undefined ? await manifestFrom(values.manifest) : undefined;
  const seed = values.seed ?? scenario?.seed ?? 1;
  const group = values.group ?? scenario?.group;
  const endpoints = scenario?.endpoints ?? [];

  // The models: the scenario's, or one named by --model or the manifest.
  if (values.model !== undefined && scenario && scenario.models.length > 0) throw new UsageError('--model cannot be combined with a scenario that lists its models', USAGE);
  if (values.model !== undefined && manifest && manifest.model !== values.model) throw new UsageError(`--model is "${values.model}" but the --manifest is for model "${manifest.model}"`, USAGE);
  const wanted: ScenarioModel[] = scenario && scenario.models.length > 0 ? scenario.models : [{ model: values.model ?? manifest?.model ?? 'sim-1', weight: 1, behaviours: scenario?.behaviours ?? {} }];
  const needDefault = wanted.filter((m) => !m.manifest && manifest?.model !== m.model);
  if (needDefault.length > 0 && api === undefined) {
    throw new UsageError(`--tokens needs a firmware manifest for model${needDefault.length === 1 ? '' : 's'} ${needDefault.map((m) => `"${m.model}"`).join(', ')}: give --manifest FILE (or a manifest per model in the scenario)`, USAGE);
  }

  if (values['no-presence'] && values['retain-presence']) throw new UsageError('--no-presence and --retain-presence contradict each other: give one', USAGE);
  let retainPresence = values['retain-presence'];
  let url: string;
  let fleetDevices: FleetDevice[];
  let models: FleetModel[];
  const fleetModel = (m: ScenarioModel, base: FirmwareManifest, fallback?: ManifestHealthCheck): FleetModel => ({
    manifest: withHealthCheck(base, values['no-health-check'] ? false : m.healthCheck, fallback),
    behaviours: { ...m.behaviours, ...overrides },
    ...(m.withoutHealthCheck && { withoutHealthCheck: m.withoutHealthCheck }),
  });
  if (api !== undefined) {
    const n = devicesFlag ?? scenario?.devices;
    if (n === undefined) throw new UsageError('--api needs --devices N (or "devices" in the scenario)', USAGE);
    if (group === undefined) throw new UsageError('--api needs --group G (or "group" in the scenario)', USAGE);
    const info = await request<{ mqttUrl: string; publicKey: string | null; broker?: string }>(api, token!, 'GET', '/v1/info', undefined, hooks.requestTimeoutMs);
    if (typeof info?.mqttUrl !== 'string') throw new Error(`GET ${api}/v1/info did not return mqttUrl`);
    // docs/architecture.md §5: presence is retained on a broker the gateway does not own, never on the embedded one
    if (info.broker === 'external' && !values['no-presence']) retainPresence = true;
    if (typeof info.publicKey !== 'string' && needDefault.length > 0) {
      throw new UsageError(`the gateway has no signing key (upload-only): give --manifest FILE with the keys the devices trust, for model${needDefault.length === 1 ? '' : 's'} ${needDefault.map((m) => `"${m.model}"`).join(', ')}`, USAGE);
    }
    const defaultPins = needDefault.length > 0 ? await pinsServedBy(endpoints) : [];
    models = wanted.map((m) => {
      const given = m.manifest ?? (manifest?.model === m.model ? manifest : undefined);
      const built = given ?? { model: m.model, firmware: m.firmware ?? '1.0.0', trustedKeys: [info.publicKey!], pins: defaultPins };
      return fleetModel(m, built, given ? undefined : defaultHealthCheck(endpoints));
    });
    // docs/architecture.md §4: the gateway learns the manifests the devices are born with, for
    // pre-flight and for the rollback of the group's first rollout (the admin token provisions too).
    // A manifest an operator pushed is what pre-flight and health checks judge by: a run replaces a
    // different one only when told to (--replace-manifests).
    const push = values['replace-manifests'] ? '/v1/manifests' : '/v1/manifests?replace=false';
    for (const m of models) {
      try {
        await request(api, token!, 'POST', push, m.manifest, hooks.requestTimeoutMs);
      } catch (err) {
        const conflict = (err as { answer?: { code?: string; details?: { conflict?: { source?: string; pushedBy?: string; differs?: string[] } } } }).answer;
        if (conflict?.code !== 'PW_CONFLICT') {
          io.err(`warning: the gateway did not take the manifest of ${m.manifest.model} ${m.manifest.firmware}: ${(err as Error).message}`);
          continue;
        }
        const c = conflict.details?.conflict ?? {};
        const holder = c.source === 'config' ? "the gateway's config" : `a manifest pushed${c.pushedBy === undefined ? '' : ` by ${c.pushedBy}`}`;
        const how = c.source === 'config'
          ? 'give the devices a manifest of another firmware version (--manifest FILE, or "firmware" per model in the scenario)'
          : 'give the devices a manifest of another firmware version (--manifest FILE, or "firmware" per model in the scenario), or --replace-manifests to replace the one the gateway holds';
        throw new Error(`the gateway holds a different manifest for model "${m.manifest.model}" firmware "${m.manifest.firmware}" (${holder}; it differs in ${(c.differs ?? []).join(', ') || 'content'}): no device was provisioned. To go on, ${how}`);
      }
    }
    const counts = allocate(n, wanted.map((m) => m.weight));
    // A run id in the device ids: a second run provisions new devices instead of colliding with the first's.
    const run = `sim-${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36).padStart(2, '0')}`;
    const width = String(n - 1).length;
    const provision = models.flatMap((m, k) => Array.from({ length: counts[k] }, () => ({ group, model: m.manifest.model, firmware: m.manifest.firmware })));
    const wantedDevices = provision.map((d, i) => ({ id: `${run}-${String(i).padStart(width, '0')}`, ...d }));
    fleetDevices = [];
    for (let i = 0; i < wantedDevices.length; i += 10_000) {
      const batch = wantedDevices.slice(i, i + 10_000);
      const res = await request<{ devices: Array<{ id: string; token: string; broker?: unknown }> }>(api, token!, 'POST', '/v1/devices', { devices: batch }, hooks.requestTimeoutMs);
      const given = new Map((res?.devices ?? []).map((d) => [d.id, d]));
      for (const d of batch) {
        const t = given.get(d.id)?.token;
        if (t === undefined) throw new Error(`POST ${api}/v1/devices returned no token for ${d.id}`);
        // A gateway that shards its fleet over several brokers says which one each device is given.
        const broker = given.get(d.id)?.broker;
        fleetDevices.push({ id: d.id, token: t, model: d.model, group, ...(typeof broker === 'string' && { url: mqttUrl(broker, `POST ${api}/v1/devices: the broker of ${d.id}`) }) });
      }
    }
    url = info.mqttUrl;
  } else {
    models = wanted.map((m) => fleetModel(m, m.manifest ?? manifest!));
    const creds = await credentialsFrom(tokensFile!, (message) => io.err(`warning: ${message}`));
    const n = devicesFlag ?? scenario?.devices ?? creds.length;
    if (n > creds.length) throw new UsageError(`--devices is ${n} but ${tokensFile} holds ${creds.length} device${creds.length === 1 ? '' : 's'}`, USAGE);
    const chosen = creds.slice(0, n);
    const counts = allocate(chosen.filter((c) => c.model === undefined).length, wanted.map((m) => m.weight));
    const byModel = counts.flatMap((c, k) => Array.from({ length: c }, () => models[k].manifest.model));
    const names = new Set(models.map((m) => m.manifest.model));
    let next = 0;
    fleetDevices = chosen.map((c, i) => {
      const g = c.group ?? group;
      if (g === undefined) throw new UsageError(`${tokensFile}: device ${c.id} names no group: give --group G`, USAGE);
      if (c.model !== undefined && !names.has(c.model)) throw new Error(`${tokensFile}: device ${c.id} (entry ${i}) is of model "${c.model}", which has no manifest here`);
      if (c.broker === undefined && gatewayUrl === undefined) throw new UsageError(`${tokensFile}: device ${c.id} (entry ${i}) names no "broker": give --gateway mqtt://HOST:PORT for such devices`, USAGE);
      return { id: c.id, token: c.token, group: g, model: c.model ?? byModel[next++], ...(c.broker !== undefined && { url: c.broker }) };
    });
    // every device that names no broker of its own connects here; when all name one, this is never used
    url = gatewayUrl ?? fleetDevices[0].url!;
  }

  const spec: WorkerSpec = {
    url,
    models,
    devices: fleetDevices,
    seed,
    endpoints,
    callHomeSeconds: scenario?.callHomeSeconds,
    reportIntervalSeconds: scenario?.reportIntervalSeconds,
    // --connect-rate: the rate and a listen backlog's worth in flight, split over the processes
    ramp: connectRate === undefined ? scenario?.ramp : { perSecond: connectRate / processes, perTick: Math.max(1, Math.floor(BACKLOG / processes)) },
    verifyEach: values['verify-each'],
    handshakeEach: values['handshake-each'],
    presence: values['no-presence'] ? false : retainPresence ? 'retained' : true,
    ...(clientCert && { clientCert }),
  };
  if (processes > 1) {
    const fleet = await ProcessFleet.spawn(spec, processes);
    try {
      return await runFleet(fleet, io, { json: values.json, durationMs, signal: hooks.signal, seed });
    } finally {
      fleet.kill();
    }
  }
  const fleet = new Fleet(spec);
  hooks.onFleet?.(fleet);
  return runFleet(fleet, io, { json: values.json, durationMs, signal: hooks.signal, seed });
}

/** What runFleet drives: a Fleet in this process, or one across worker processes. */
type RunnableFleet = Pick<Fleet, 'start' | 'stop' | 'summary'>;

/** Runs the fleet until the duration ends or a signal comes, drawing progress, then stops it cleanly. */
async function runFleet(fleet: RunnableFleet, io: Io, o: { json: boolean; durationMs?: number; signal?: AbortSignal; seed: string | number }): Promise<number> {
  const started = Date.now();
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onSignal = () => stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  o.signal?.addEventListener('abort', onSignal, { once: true });
  if (o.signal?.aborted) stop();
  const timer = o.durationMs !== undefined ? setTimeout(stop, o.durationMs) : null;
  const view = o.json ? null : new LiveView(io);
  const redraw = () => view?.draw(fleet.summary(), Date.now() - started);
  const draw = setInterval(redraw, io.tty ? 250 : 1000);
  try {
    const starting = fleet.start();
    await Promise.race([starting, stopped]);
    redraw();
    await stopped;
    const last = fleet.summary();
    view?.draw(last, Date.now() - started);
    await fleet.stop();
    await starting;
    if (o.json) io.out(JSON.stringify({ seed: o.seed, seconds: Math.round((Date.now() - started) / 100) / 10, ...last }, null, 2));
    if (last.devices > 0 && last.connects.ok === 0) {
      // The commonest reasons first: a wrong --gateway, a token the gateway does not know, a broker not up.
      const why = Object.entries(last.connects.reasons).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([reason, n]) => `${reason} (${n})`);
      io.err(`pinwave sim: no device could connect (${last.connects.failed} attempt${last.connects.failed === 1 ? '' : 's'} refused or failed${why.length > 0 ? `: ${why.join('; ')}` : ''})`);
      return 1;
    }
    return 0;
  } finally {
    clearInterval(draw);
    if (timer) clearTimeout(timer);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    o.signal?.removeEventListener('abort', onSignal);
  }
}

/** Redrawn in place on a terminal; otherwise one line whenever the numbers change. */
class LiveView {
  readonly #io: Io;
  #shown = 0;
  #last = '';
  constructor(io: Io) {
    this.#io = io;
  }
  draw(s: FleetSummary, ms: number): void {
    const lines = this.#io.tty ? block(s, ms) : [line(s)];
    const text = lines.join('\n');
    if (text === this.#last) return;
    this.#last = text;
    // ESC[nF: up n lines to their start; ESC[J: clear to the end of the screen.
    this.#io.out(this.#io.tty && this.#shown > 0 ? `\x1b[${this.#shown}F\x1b[J${text}` : text);
    this.#shown = lines.length;
  }
}

const reasons = (r: FleetSummary['rejected']) => Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ');
const total = (r: FleetSummary['rejected']) => Object.values(r).reduce((a, b) => a + (b ?? 0), 0);
const seqs = (s: FleetSummary) => Object.entries(s.seqs).sort((a, b) => Number(b[0]) - Number(a[0]));

const revertedTotal = (s: FleetSummary) => Object.values(s.reverted).reduce((a, b) => a + b, 0);
const revertedOn = (s: FleetSummary) => Object.entries(s.reverted).map(([k, v]) => `${k} ${v}`).join(', ');

/** The health-check part of a line: only when some device has one. */
function checks(s: FleetSummary): string | null {
  if (s.healthChecked === 0) return null;
  const rev = revertedTotal(s);
  return `health-checked ${s.healthChecked}: verifying ${s.verifying}, verified ${s.verified}, reverted ${rev}${rev ? ` (${revertedOn(s)})` : ''}`;
}

function line(s: FleetSummary): string {
  const rej = total(s.rejected);
  return [
    `sim: ${s.devices} devices, ${s.connected} connected${s.offline ? `, ${s.offline} offline` : ''}`,
    seqs(s).map(([q, n]) => `seq ${q}: ${n}`).join(', '),
    `acked ${s.acked}, rejected ${rej}${rej ? ` (${reasons(s.rejected)})` : ''}${s.unacked ? `, unacked ${s.unacked}` : ''}${s.crashed ? `, crashed ${s.crashed}` : ''}`,
    checks(s),
    `failing ${s.failing}, pin failures ${s.pinFailures.observed} (${s.pinFailures.reported} reported)`,
  ].filter((x) => x !== null).join(' | ');
}

function block(s: FleetSummary, ms: number): string[] {
  const secs = Math.floor(ms / 1000);
  const clock = `${String(Math.floor(secs / 60)).padStart(2, '0')}:${String(secs % 60).padStart(2, '0')}`;
  const bar = (n: number) => {
    const w = s.devices === 0 ? 0 : Math.round((n / s.devices) * 30);
    return '█'.repeat(w) + '░'.repeat(30 - w);
  };
  const rej = total(s.rejected);
  return [
    `pinwave sim  ${s.devices} devices  ${clock}`,
    `  connected ${String(s.connected).padStart(7)}  [${bar(s.connected)}]${s.offline ? `  offline ${s.offline}` : ''}`,
    ...seqs(s).map(([q, n]) => `  seq ${q.padEnd(5)} ${String(n).padStart(7)}  [${bar(n)}]`),
    `  acked ${s.acked}   rejected ${rej}${rej ? ` (${reasons(s.rejected)})` : ''}   unacked ${s.unacked}   crashed ${s.crashed}`,
    ...(s.healthChecked > 0 ? [`  ${checks(s)}`] : []),
    `  failing ${s.failing}   pin failures ${s.pinFailures.observed} seen, ${s.pinFailures.reported} reported, ${s.pinFailures.queued} queued`,
    `  latency  connect ${formatHistogram(s.latency.connect)}   bundle → ack ${formatHistogram(s.latency.bundle)}`,
  ];
}

function mqttUrl(value: string, what = '--gateway'): string {
  let u: URL | null = null;
  try {
    u = new URL(value);
  } catch {
    // reported below
  }
  if (!u || !['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(u.protocol) || !u.hostname) throw new UsageError(`${what} expects mqtt://HOST:PORT (or mqtts://, ws://, wss://), got "${value}"`, USAGE);
  return value;
}

function rateFlag(value: string, flag: string): number {
  const r = Number(value);
  if (!/^\d*\.?\d+$/.test(value) || !(r >= 0 && r <= 1)) throw new UsageError(`--${flag} expects a rate from 0 to 1, got "${value}"`, USAGE);
  return r;
}

function rangeFlag(value: string, flag: string): number | { min: number; max: number } {
  const m = /^(\d+)(?:-(\d+))?$/.exec(value);
  if (!m) throw new UsageError(`--${flag} expects MIN-MAX in ms (e.g. 10-200) or one value, got "${value}"`, USAGE);
  const min = Number(m[1]);
  const max = Number(m[2] ?? m[1]);
  // beyond 2^31 ms a device's timer would fire at once: a delay meant as hours would be none
  if (max > 3_600_000) throw new UsageError(`--${flag} must be at most 3600000 (an hour), got "${value}"`, USAGE);
  if (m[2] === undefined) return min;
  if (max < min) throw new UsageError(`--${flag}: MAX (${max}) is below MIN (${min})`, USAGE);
  return { min, max };
}

async function scenarioFrom(file: string): Promise<Scenario> {
  const r = await loadScenario(file);
  if (!r.ok) throw new Error(`scenario ${file} is not valid:\n${formatScenarioErrors(r.errors)}`);
  return r.scenario;
}

async function manifestFrom(file: string): Promise<FirmwareManifest> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`--manifest ${file}: ${e.code ? `cannot read it (${e.code})` : `not JSON: ${e.message}`}`);
  }
  const r = validateManifest(value);
  if (!r.ok) throw new Error(`--manifest ${file} is not valid:\n${formatManifestErrors(r.errors)}`);
  return r.manifest;
}

/** The devices' client certificate and its key, read and checked to belong together before any device connects. */
async function clientCertFrom(certFile: string, keyFile: string): Promise<{ cert: string; key: string }> {
  const read = async (flag: string, file: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new Error(`--${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const cert = await read('client-cert', certFile);
  const key = await read('client-key', keyFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`--client-cert ${certFile}: not a PEM certificate (${(err as Error).message})`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`--client-key ${keyFile}: not a PEM private key (${(err as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`--client-key ${keyFile} is not the key of --client-cert ${certFile} (${x509.subject.replace(/\n/g, ', ')})`);
  return { cert, key };
}

interface Credential {
  id: string;
  token: string;
  group?: string;
  model?: string;
  /** the broker URL the device was provisioned with */
  broker?: string;
}

/** The tokens file; one readable by group or others is read, and `onLooseMode` told (the tokens are secrets, as a signing key). */
async function credentialsFrom(file: string, onLooseMode: (message: string) => void): Promise<Credential[]> {
  let value: unknown;
  try {
    const text = await readFile(file, 'utf8');
    const mode = (await stat(file)).mode & 0o777;
    if (mode & 0o077) onLooseMode(`--tokens ${file} is readable by group or others (mode ${mode.toString(8).padStart(4, '0')}): it holds device tokens; run: chmod 600 ${file}`);
    value = JSON.parse(text);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`--tokens ${file}: ${e.code ? `cannot read it (${e.code})` : `not JSON: ${e.message}`}`);
  }
  const list = Array.isArray(value) ? value : (value as { devices?: unknown })?.devices;
  if (!Array.isArray(list) || list.length === 0) throw new Error(`--tokens ${file}: expected {"devices": [{"id", "token"}, ...]} or an array of those, with at least one device`);
  const creds = list.map((c: Record<string, unknown>, i): Credential => {
    const str = (k: string) => (typeof c?.[k] === 'string' && c[k] !== '' ? (c[k] as string) : undefined);
    const id = str('id');
    const token = str('token');
    if (id === undefined || token === undefined) throw new Error(`--tokens ${file}: /devices/${i} needs "id" and "token" strings`);
    // Checked as the gateway checks them (docs/device-messages.md, MQTT): an id is a topic level, so
    // "a/b" or "#" would only ever be refused at CONNECT, with no word of which entry was wrong.
    const idCheck = checkDeviceId(id);
    if (!idCheck.ok) throw new Error(`--tokens ${file}: /devices/${i}/id: ${idCheck.message}`);
    const optional = (k: string, re: RegExp, what: string) => {
      if (c[k] !== undefined && !(typeof c[k] === 'string' && re.test(c[k] as string))) throw new Error(`--tokens ${file}: /devices/${i}/${k} must be ${what}, got ${JSON.stringify(c[k])}`);
      return c[k] as string | undefined;
    };
    const group = optional('group', GROUP_RE, '1 to 64 characters of A-Z a-z 0-9 . _ : -');
    const model = optional('model', LABEL_RE, '1 to 64 printable ASCII characters');
    const broker = str('broker');
    if (c?.broker !== undefined && broker === undefined) throw new Error(`--tokens ${file}: /devices/${i}/broker must be an mqtt:// URL string`);
    return { id, token, group, model, ...(broker !== undefined && { broker: mqttUrl(broker, `--tokens ${file}: /devices/${i}/broker`) }) };
  });
  const first = new Map<string, number>();
  creds.forEach((c, i) => {
    if (first.has(c.id)) throw new Error(`--tokens ${file}: /devices/${i}/id: device ${c.id} is /devices/${first.get(c.id)} too`);
    first.set(c.id, i);
  });
  return creds;
}

/** What each endpoint serves now, pinned with a placeholder backup: devices born healthy. None: a placeholder endpoint. */
async function pinsServedBy(endpoints: CallHomeEndpoint[]): Promise<FirmwareManifest['pins']> {
  if (endpoints.length === 0) return [{ host: PLACEHOLDER_HOST, pins: [placeholderPin('1'), placeholderPin('2')] }];
  const handshakes = new Handshakes({ share: false });
  return Promise.all(
    endpoints.map(async (e) => {
      const h = await handshakes.get(e);
      if (!h.ok) throw new Error(`cannot read what ${endpointText(e.host, e.port)} serves, to pin it in the default manifest: ${h.error} (give --manifest FILE)`);
      return { host: e.host, port: e.port, pins: [`sha256/${h.pins[0]}`, backupPin(e.host, e.port)] };
    }),
  );
}

async function request<T>(base: string, token: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
  // Bounded, body included: an address that takes the connection and never answers would hold the command for ever.
  const signal = AbortSignal.timeout(timeoutMs);
  const failed = (err: unknown) => new Error(`${method} ${base}${path}: ${signal.aborted ? `no answer within ${timeoutMs / 1000} s` : whyUnreachable(base, err, timeoutMs, '--api')}`);
  let res: Response;
  let text: string;
  try {
    res = await fetch(base + path, {
      method,
      headers: { accept: 'application/json', authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
    text = await res.text();
  } catch (err) {
    throw failed(err);
  }
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below if it matters
  }
  if (!res.ok) throw Object.assign(new Error(`${method} ${base}${path}: ${res.status} ${(parsed as { message?: string } | null)?.message ?? res.statusText}`), { answer: parsed });
  return parsed as T;
}
