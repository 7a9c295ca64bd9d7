// The gateway (docs/architecture.md §5–§7): the broker edge, the fleet registry, bundles, the rollout engine
// and telemetry, wired together. This file is the adapter that performs the engine's effects:
// it publishes bundles, persists records and keeps the in-memory indexes; every decision about a
// rollout is the pure engine's (gateway/rollout/engine.ts).
//
//   const gw = await Gateway.start({ dataDir, keyPath, mqttPort: 0 });
//   const { devices } = await gw.provision([{ id: 'th-1', group: 'thermostats' }]);
//   const bundle = await gw.createBundle({ group: 'thermostats', endpoints: [...] }, 'alice');
//   const { rollout } = await gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, start: true }, 'alice');
import { checkDeviceId } from './device-id.ts';
import { DeviceBroker, type BrokerCounters, type BrokerTlsOptions, type BrokerWebSocketOptions } from './broker.ts';
import { hashDeviceToken, newToken, tokenMatches } from './credentials.ts';
import { GatewayError, invalid, notFound } from './errors.ts';
import { loadSigningKey, type SigningKey } from './signing-key.ts';
import { LowdbStore } from './store/lowdb.ts';
import { newDeviceRecord, type BundleQuery, type BundleRecord, type DeviceHistoryEvent, type DeviceQuery, type DeviceRecord, type Page, type RolloutRecord, type Store } from './store/types.ts';
import * as engine from './rollout/engine.ts';
import { checkPlan, checkThresholds } from './rollout/plan.ts';
import { summary, type RolloutSummary } from './rollout/summary.ts';
import type { ActionResult, DeviceStatus, Effect, PlanInput, Rollout, RolloutState, Target, WaveThresholds } from './rollout/types.ts';
import { TelemetryBook, type TelemetryState } from './telemetry.ts';
import { preflight, type Preflight, type PreflightOptions } from './preflight.ts';
import { continuityInput, forcedDecision } from './continuity-hooks.ts';
import { findStuck, type StuckDevice } from './stuck.ts';
import { forecast, type Forecast, type ForecastQuery } from './forecast.ts';
import {
  BundleError,
  bundleFitsManifest,
  formatPin,
  decodeAck,
  decodeState,
  decodeTelemetry,
  hex,
  inspectBundle,
  parsePin,
  signBundle,
  spkiPemFromRaw,
  type Endpoint,
  type ExpiryPolicy,
  type FirmwareManifest,
  type PinBundle,
} from '../firmware-manifest/index.ts';
import type { DeviceMessageKind } from './topics.ts';
import { hostname } from 'node:os';
import type { AlertEventName } from './alerts.ts';
import { resolveIdPrefix, MAX_CANDIDATES, MIN_PREFIX, type IdKind } from './id-prefix.ts';
import { pinDiff, type PinDiff, type PinnedEndpoint } from './pin-diff.ts';
import { Webhooks, type WebhookCounters, type WebhookOptions, type WebhookTarget } from './webhooks.ts';
import { packageVersion } from './http/info.ts';
import type { ResumeScope } from './rollout/engine.ts';
import type { Decision } from './rollout/types.ts';

/** What the gateway logs through: pino's shape. Tokens and keys are never passed to it. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const NO_LOG: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface GatewayOptions {
  /** where the fleet store lives (`pinwave.json`); created with mode 0700 if missing */
  dataDir: string;
  /** the PKCS#8 PEM signing key; refused if group or others can read it */
  keyPath: string;
  /** MQTT listen address; default 127.0.0.1 */
  host?: string;
  /** MQTT TCP port; default 1883, 0 for an ephemeral one (see `mqttPort`) */
  mqttPort?: number;
  /** whether the plain MQTT listener runs; false needs `tls`; default true */
  mqttPlain?: boolean;
  /** the largest MQTT keepalive a device is held to, seconds (0 asks for the maximum); default 1200 */
  maxKeepaliveSeconds?: number;
  /** MQTT over TLS, optional */
  tls?: BrokerTlsOptions;
  /** MQTT over WebSocket, optional */
  websocket?: BrokerWebSocketOptions;
  /** firmware manifests of the fleet's models, for pre-flight checks (docs/architecture.md §4) */
  manifests?: FirmwareManifest[];
  /** the clock, epoch ms; default Date.now. Tests inject one and call tick() */
  now?: () => number;
  /** how often rollout deadlines are evaluated; default 1000 ms, 0 for no timer (call tick()) */
  tickIntervalMs?: number;
  /** the store's write-coalescing window; default 100 ms */
  writeWindowMs?: number;
  /** default bundle lifetime; default 30 days */
  bundleLifetimeSeconds?: number;
  /** largest device message accepted; default 16 KiB */
  maxPayloadBytes?: number;
  logger?: Logger;
  /** a store in place of the lowdb file in dataDir (tests, other databases) */
  store?: Store;
  /** where rollout alerts are POSTed (config `webhooks`, gateway/webhooks.ts); default none */
  webhooks?: readonly WebhookTarget[];
  /** how alerts are delivered: timeouts, retries, queue bound (defaults in gateway/webhooks.ts) */
  webhookDelivery?: Omit<WebhookOptions, 'gateway' | 'logger' | 'now'>;
  /** how this gateway names itself in alerts; default the host name */
  name?: string;
  /** pin continuity before a rollout (config `preflight`, gateway/continuity.ts) */
  preflight?: PreflightOptions;
}

export interface ProvisionInput {
  id: string;
  group: string;
  model?: string;
  firmware?: string;
}

export interface BundleInput {
  group: string;
  endpoints: Array<{ host: string; port?: number; pins: string[]; mode?: 'enforce' | 'report-only'; notBefore?: number; notAfter?: number }>;
  expiresInSeconds?: number;
  expiryPolicy?: ExpiryPolicy;
}

export interface RolloutInput extends PlanInput {
  bundle: string;
  target: Target;
  start?: boolean;
  /** also check the bundle's pins against what every endpoint serves now, by name; default: config preflight.probeAll */
  checkEndpoints?: boolean;
  /** by `host:port`: keys the operator says the endpoint will serve (`sha256/…`), which pin continuity accepts */
  nextKeys?: Record<string, string[]>;
  /** start even though pin continuity refuses; needs `reason`, and is recorded as a `force` decision */
  force?: boolean;
  reason?: string;
}

/** A rollout record as the gateway keeps it: the engine's record plus the gateway's own fields. */
export type GatewayRollout = Rollout & {
  createdBy: string;
  /** the bundle the target ran before (the group baseline at creation), for rollback */
  previousBundle: string | null;
  rollbackOf?: string;
  /** the rollback rollout that undid this one */
  rolledBackBy?: string;
};

export interface GatewayCounters {
  messagesIn: Record<DeviceMessageKind, number>;
  bundlesSent: number;
  acks: { applied: number; rejected: number };
  dropped: Record<string, number>;
  broker: BrokerCounters;
  storeWrites: number;
}

const GROUP_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const LABEL_RE = /^[\x20-\x7e]{1,64}$/;
const MAX_PROVISION = 10_000;
const DAY = 86400;

export class Gateway {
  readonly #o: GatewayOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #store: Store;
  readonly #key: SigningKey;
  #broker!: DeviceBroker;
  #timer: NodeJS.Timeout | null = null;
  readonly #rollouts = new Map<string, GatewayRollout>();
  /** device id → the latest rollout (not aborted) that includes it */
  readonly #deviceRollout = new Map<string, string>();
  /** bundle id → its bytes, decoded once */
  readonly #bundles = new Map<string, { bytes: Buffer; seq: number; group: string }>();
  /** device id → the bundle handed to it on its current connection, so one bundle goes once per session */
  readonly #delivered = new Map<string, string>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #manifests = new Map<string, FirmwareManifest>();
  #telemetry!: TelemetryBook;
  #stopping: Promise<void> | null = null;
  /** called with a rollout's id whenever its record is persisted (onRolloutChange) */
  readonly #rolloutListeners = new Set<(rolloutId: string) => void>();
  /** rollout id → how many of its decisions have been logged: each decision is logged once */
  readonly #loggedDecisions = new Map<string, number>();
  readonly #webhooks: Webhooks | null;
  readonly #counters = {
    messagesIn: { state: 0, ack: 0, telemetry: 0 } as Record<DeviceMessageKind, number>,
    bundlesSent: 0,
    acks: { applied: 0, rejected: 0 },
    dropped: {} as Record<string, number>,
  };

  private constructor(o: GatewayOptions, store: Store, key: SigningKey) {
    this.#o = o;
    this.#log = o.logger ?? NO_LOG;
    this.#now = o.now ?? Date.now;
    this.#store = store;
    this.#key = key;
    for (const m of o.manifests ?? []) this.#manifests.set(m.model, m);
    this.#webhooks =
      (o.webhooks?.length ?? 0) > 0
        ? new Webhooks(o.webhooks!, { ...o.webhookDelivery, gateway: { name: o.name ?? hostname(), version: packageVersion() }, logger: this.#log, now: this.#now })
        : null;
  }

  /** Loads the store, resumes every rollout where it stood, and starts the broker. */
  static async start(o: GatewayOptions): Promise<Gateway> {
    const key = loadSigningKey(o.keyPath, { strictMode: true });
    const store = o.store ?? new LowdbStore({ dir: o.dataDir, windowMs: o.writeWindowMs ?? 100 });
    await store.load();
    const gw = new Gateway(o, store, key);
    await gw.#resume();
    gw.#broker = await DeviceBroker.start({
      host: o.host ?? '127.0.0.1',
      port: o.mqttPort ?? 1883,
      plain: o.mqttPlain,
      maxKeepaliveSeconds: o.maxKeepaliveSeconds,
      tls: o.tls,
      websocket: o.websocket,
      maxPayloadBytes: o.maxPayloadBytes,
      logger: gw.#log,
      authenticate: (id, token) => gw.#authenticate(id, token),
      onConnect: (id) => gw.#onConnect(id),
      onDisconnect: (id) => gw.#onDisconnect(id),
      onSubscribe: (id, filter) => gw.#track(gw.#onSubscribe(id, filter)),
      // The promise goes back to the broker, which reads the device's next packets once it settles.
      onMessage: (id, kind, payload) => gw.#track(gw.#onMessage(id, kind, payload)),
    });
    // A deadline that passed while the gateway was down is evaluated at once.
    gw.tick();
    const every = o.tickIntervalMs ?? 1000;
    if (every > 0) {
      gw.#timer = setInterval(() => gw.tick(), every);
      gw.#timer.unref();
    }
    // `pinwave gateway` logs the one start line of a process, with its listeners.
    gw.#log.debug({ kid: hex(key.kid), rollouts: gw.#rollouts.size }, 'gateway started');
    return gw;
  }

  // ---------------------------------------------------------------- shutdown (`pinwave gateway`)

  /** Shutdown, first step: stops the rollout timer and stops taking device connections and messages (broker.stopAccepting). */
  stopAccepting(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#broker.stopAccepting();
  }

  /** Resolves once every device message taken has been handled, and every task that started has ended (those it starts too). */
  async settled(): Promise<void> {
    await this.#broker.settled();
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Device tasks in flight now. */
  get pendingTasks(): number {
    return this.#pending.size;
  }

  /** Writes what the gateway holds in memory (telemetry aggregates included) to the store now; rejects when the store cannot be written. */
  async flush(): Promise<void> {
    await this.#store.putTelemetry(this.#telemetry.toJSON());
    await this.#store.flush();
  }

  /** Stops the timer and the broker, waits for work in flight, and flushes the store. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#timer) clearInterval(this.#timer);
      await this.#broker?.close();
      await Promise.allSettled([...this.#pending]);
      await this.#webhooks?.close();
      await this.#store.putTelemetry(this.#telemetry.toJSON());
      await this.#store.close();
      this.#log.debug({}, 'gateway stopped');
    })();
    return this.#stopping;
  }

  /** The real MQTT ports (useful with port 0). */
  get ports() {
    return this.#broker.ports;
  }

  /** The plain MQTT URL, or the TLS one when the plain listener is off. */
  get mqttUrl(): string {
    const { tcp, tls } = this.#broker.ports;
    return tcp !== undefined ? `mqtt://${this.#o.host ?? '127.0.0.1'}:${tcp}` : `mqtts://${this.#o.host ?? '127.0.0.1'}:${tls}`;
  }

  /** The signing key's public half and kid, for `GET /v1/info` and simulators. */
  get signing(): { kid: string; publicKey: Uint8Array; publicPem: string } {
    return { kid: hex(this.#key.kid), publicKey: this.#key.publicKey, publicPem: spkiPemFromRaw(this.#key.publicKey) };
  }

  get store(): Store {
    return this.#store;
  }

  isConnected(id: string): boolean {
    return this.#broker.isConnected(id);
  }

  connectedCount(): number {
    return this.#broker.connectedCount();
  }

  counters(): GatewayCounters {
    const c = this.#counters;
    const writes = (this.#store as { writes?: number }).writes ?? 0;
    return { messagesIn: { ...c.messagesIn }, bundlesSent: c.bundlesSent, acks: { ...c.acks }, dropped: { ...c.dropped }, broker: this.#broker.counters(), storeWrites: writes };
  }

  /**
   * Calls `listener` with a rollout's id whenever the gateway persists that rollout's record (every
   * operator action, every ack or hold that changed it); returns the function that removes it. The
   * listener must be cheap and must not throw: it runs on the per-ack path (the console's event
   * streams only mark the rollout changed, and send at their own pace).
   */
  onRolloutChange(listener: (rolloutId: string) => void): () => void {
    this.#rolloutListeners.add(listener);
    return () => void this.#rolloutListeners.delete(listener);
  }

  addManifest(m: FirmwareManifest): void {
    this.#manifests.set(m.model, m);
  }

  // ---------------------------------------------------------------- devices

  /**
   * Provisions devices, all or nothing: an invalid entry is PW_INVALID naming it, an id that exists
   * already is PW_CONFLICT naming it, and then nothing is stored. Tokens are returned this once.
   */
  async provision(list: ProvisionInput[]): Promise<{ devices: Array<{ id: string; token: string }> }> {
    if (!Array.isArray(list) || list.length === 0) throw invalid('devices must hold at least one device');
    if (list.length > MAX_PROVISION) throw invalid(`at most ${MAX_PROVISION} devices per call, got ${list.length}`);
    const errors: string[] = [];
    const seen = new Set<string>();
    list.forEach((d, i) => {
      const id = checkDeviceId(d?.id);
      if (!id.ok) errors.push(`devices[${i}].id: ${id.message}`);
      else if (seen.has(d.id)) errors.push(`devices[${i}].id: "${d.id}" appears twice`);
      seen.add(d?.id);
      if (typeof d?.group !== 'string' || !GROUP_RE.test(d.group)) errors.push(`devices[${i}].group: must be 1 to 64 characters of A-Z a-z 0-9 . _ : -`);
      for (const f of ['model', 'firmware'] as const) {
        if (d?.[f] !== undefined && (typeof d[f] !== 'string' || !LABEL_RE.test(d[f]!))) errors.push(`devices[${i}].${f}: must be 1 to 64 printable characters`);
      }
    });
    if (errors.length > 0) throw invalid(errors.slice(0, 20).join('; '), { errors });
    const now = this.#now();
    const out: Array<{ id: string; token: string }> = [];
    const records: DeviceRecord[] = list.map((d) => {
      const token = newToken();
      out.push({ id: d.id, token });
      return newDeviceRecord({ id: d.id, group: d.group, model: d.model, firmware: d.firmware, tokenHash: hashDeviceToken(token), createdAt: now });
    });
    const put = await this.#store.putDevices(records);
    if (!put.ok) throw new GatewayError('PW_CONFLICT', `device id${put.ids.length === 1 ? '' : 's'} already provisioned: ${put.ids.slice(0, 20).join(', ')}`, { ids: put.ids });
    this.#log.info({ count: records.length }, 'devices provisioned');
    return { devices: out };
  }

  async getDevice(id: string): Promise<DeviceRecord> {
    const d = await this.#store.getDevice(id);
    if (!d) throw notFound('device', id);
    return d;
  }

  async listDevices(query: DeviceQuery): Promise<Page<DeviceRecord>> {
    return this.#store.listDevices(query);
  }

  /**
   * A new token for a device. The old one is refused from now on, and every session opened with it
   * is closed at once: rotation is what an operator does when a token leaks.
   */
  async rotateToken(id: string): Promise<{ id: string; token: string }> {
    const d = await this.getDevice(id);
    if (d.revokedAt !== null) throw new GatewayError('PW_INVALID_STATE', `device "${id}" is revoked`);
    const token = newToken();
    await this.#store.updateDevice(id, { tokenHash: hashDeviceToken(token) });
    await this.#store.flush();
    // After the flush: a reconnect checked from here on sees the new hash.
    this.#broker.disconnect(id);
    this.#log.info({ deviceId: id }, 'device token rotated');
    return { id, token };
  }

  /** Revokes a device: disconnected at once and refused after. */
  async revoke(id: string): Promise<DeviceRecord> {
    const d = await this.#store.revokeDevice(id, this.#now());
    if (!d) throw notFound('device', id);
    this.#broker.disconnect(id);
    this.#log.info({ deviceId: id }, 'device revoked');
    return d;
  }

  // ---------------------------------------------------------------- bundles

  /** Signs a bundle for a group with the next seq (never reused) and stores it. */
  async createBundle(input: BundleInput, actor: string): Promise<BundleRecord> {
    if (typeof input?.group !== 'string' || !GROUP_RE.test(input.group)) throw invalid('group: must be 1 to 64 characters of A-Z a-z 0-9 . _ : -');
    if (!Array.isArray(input.endpoints) || input.endpoints.length === 0) throw invalid('pins: at least one endpoint is required');
    const endpoints: Endpoint[] = input.endpoints.map((e, i) => {
      const pins = (e.pins ?? []).map((p, j) => {
        try {
          return parsePin(p);
        } catch (err) {
          throw invalid(`pins[${i}].pins[${j}]: ${(err as Error).message}`);
        }
      });
      return {
        host: String(e.host ?? '').toLowerCase(),
        port: e.port ?? 443,
        pins,
        ...(e.mode === 'report-only' && { mode: 'report-only' as const }),
        ...(e.notBefore !== undefined && { notBefore: e.notBefore }),
        ...(e.notAfter !== undefined && { notAfter: e.notAfter }),
      };
    });
    const lifetime = input.expiresInSeconds ?? this.#o.bundleLifetimeSeconds ?? 30 * DAY;
    if (!Number.isSafeInteger(lifetime) || lifetime <= 0) throw invalid(`expiresIn: must be a positive number of seconds, got ${lifetime}`);
    const iat = Math.floor(this.#now() / 1000);
    // Check the content before taking a seq, so a refused bundle does not burn one.
    const draft = { seq: 1, iat, exp: iat + lifetime, group: input.group, endpoints, ...(input.expiryPolicy === 'ca-fallback' && { expiryPolicy: 'ca-fallback' as const }) };
    try {
      signBundle(draft, this.#key.seed);
    } catch (err) {
      if (err instanceof BundleError) throw invalid(err.message.replace(/^endpoints/, 'pins'));
      throw err;
    }
    const seq = await this.#store.allocateSeq(input.group, await this.#highestReportedSeq(input.group));
    const signed = signBundle({ ...draft, seq }, this.#key.seed);
    const record: BundleRecord = {
      id: signed.id,
      group: input.group,
      seq,
      size: signed.bytes.length,
      createdAt: this.#now(),
      bytes: Buffer.from(signed.bytes).toString('base64'),
      createdBy: actor,
    };
    const put = await this.#store.putBundle(record);
    if (!put.ok) throw new GatewayError('PW_CONFLICT', `bundle ${signed.id} exists already`);
    this.#bundles.set(record.id, { bytes: Buffer.from(signed.bytes), seq, group: input.group });
    this.#log.info({ bundle: record.id, group: record.group, seq, actor }, 'bundle created');
    return record;
  }

  async getBundle(id: string): Promise<BundleRecord> {
    const b = await this.#store.getBundle(id);
    if (!b) throw notFound('bundle', id);
    return b;
  }

  /** A page of bundles in id order, optionally of one group. */
  async listBundles(query: BundleQuery = {}): Promise<Page<BundleRecord>> {
    return this.#store.listBundles(query);
  }

  /** A stored bundle decoded, or null when there is none or it does not decode. */
  async #decodedOrNull(id: string): Promise<PinBundle | null> {
    const record = await this.#store.getBundle(id);
    const r = record ? inspectBundle(new Uint8Array(Buffer.from(record.bytes, 'base64'))) : null;
    return r?.ok ? r.bundle : null;
  }

  /**
   * The lockout forecast (gateway/forecast.ts): the devices that would lock themselves out of
   * `host:port` if it served `pins` at `at` (seconds; default now), a page of them after `cursor`.
   */
  async forecast(q: Omit<ForecastQuery, 'at'> & { at?: number }, page: { limit?: number; cursor?: string } = {}): Promise<Forecast & { next: string | null }> {
    const query = { ...q, at: q.at ?? Math.floor(this.#now() / 1000) };
    const devices: DeviceRecord[] = [];
    for (let cursor: string | null = null; ; ) {
      const p: Page<DeviceRecord> = await this.#store.listDevices({ limit: 1000, cursor });
      devices.push(...p.items);
      if (p.next === null) break;
      cursor = p.next;
    }
    const inFlight = (id: string) => {
      const r = this.#activeRolloutOf(id);
      const status = r?.devices[id]?.status as string | undefined;
      return r && status !== 'rejected' && status !== 'reverted' ? { rollout: r.id, bundleId: r.bundle.id } : null;
    };
    const bundles = new Map<string, PinBundle>();
    for (const id of new Set([...devices.map((d) => d.bundleId), ...devices.map((d) => inFlight(d.id)?.bundleId ?? null)])) {
      const b = id === null ? null : await this.#decodedOrNull(id);
      if (b) bundles.set(id!, b);
    }
    const f = forecast({ devices, bundles, manifests: this.#manifests, inFlight, query });
    const from = page.cursor === undefined ? 0 : f.items.findIndex((d) => d.id > page.cursor!);
    const n = page.limit ?? 100;
    const items = from < 0 ? [] : f.items.slice(from, from + n);
    return { ...f, items, next: from >= 0 && from + n < f.items.length ? items[items.length - 1].id : null };
  }

  /** The decoded content of a stored bundle. */
  async decodedBundle(id: string): Promise<{ record: BundleRecord; bundle: PinBundle }> {
    const record = await this.getBundle(id);
    const r = inspectBundle(new Uint8Array(Buffer.from(record.bytes, 'base64')));
    if (!r.ok) throw new Error(`stored bundle ${id} does not decode: ${r.detail}`);
    return { record, bundle: r.bundle };
  }

  // ---------------------------------------------------------------- rollouts

  /** Creates a rollout after a pre-flight check; with `start`, starts it too. */
  async createRollout(input: RolloutInput, actor: string): Promise<{ rollout: RolloutSummary; preflight: Preflight }> {
    return this.#createRollout(input, actor, null);
  }

  /** `replacing`: the rollout a rollback takes devices over from, whose devices are not busy for it. */
  async #createRollout(input: RolloutInput, actor: string, replacing: string | null): Promise<{ rollout: RolloutSummary; preflight: Preflight }> {
    if (typeof input?.bundle !== 'string') throw invalid('bundle: a bundle id is required');
    // Validation before state: the whole plan is checked before anything is looked up, so a
    // malformed one is a 400 naming the field whatever rollout its devices are in.
    const plan = { waves: input.waves, onMiss: input.onMiss, seed: input.seed };
    const planned = checkPlan(plan);
    if (!planned.ok) throw new GatewayError('PW_INVALID_PLAN', planned.errors.join('; '), { errors: planned.errors });
    // A unique prefix names a bundle too (gateway/id-prefix.ts).
    const bundle = await this.#store.getBundle(await this.resolveBundleId(input.bundle));
    if (!bundle) throw notFound('bundle', input.bundle);
    const targetIds = await this.#resolveTarget(input.target);
    const cut = checkPlan(plan, targetIds.length);
    if (!cut.ok) throw new GatewayError('PW_INVALID_PLAN', cut.errors.join('; '), { errors: cut.errors });
    const devices = await Promise.all(targetIds.map((id) => this.#store.getDevice(id)));
    const busy = targetIds.filter((id) => this.#activeRolloutOf(id) !== null && this.#deviceRollout.get(id) !== replacing);
    if (busy.length > 0) throw this.#busy(busy);
    const bytes = Buffer.from(bundle.bytes, 'base64');
    const decoded = inspectBundle(new Uint8Array(bytes));
    if (!decoded.ok) throw new Error(`stored bundle ${bundle.id} does not decode: ${decoded.detail}`);
    const targeted = devices.filter((d): d is DeviceRecord => d !== null);
    const check = await preflight({
      bundle: { record: bundle, bytes: new Uint8Array(bytes), decoded: decoded.bundle },
      devices: targeted,
      manifests: this.#manifests,
      fits: bundleFitsManifest,
      checkEndpoints: input.checkEndpoints ?? this.#o.preflight?.probeAll ?? false,
      now: Math.floor(this.#now() / 1000),
      ...(await continuityInput(input, decoded.bundle, targeted, this.#manifests, this.#o.preflight, (id) => this.#decodedOrNull(id), replacing !== null ? 'a rollback restores pins the devices ran before' : undefined)),
    });
    const forced = forcedDecision(check, input, actor, this.#now());
    if (!check.ok && !forced) throw new GatewayError('PW_PREFLIGHT', `pre-flight refused the rollout: ${check.problems.map((p) => p.message).join('; ')}${input.force ? ' (force overrides pin continuity only)' : ''}`, check);
    const id = `r-${bundle.group}-${bundle.seq}-${(this.#now() % 1e6).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
    const created = engine.createRollout({
      id,
      bundle: { id: bundle.id, seq: bundle.seq, group: bundle.group },
      target: input.target,
      deviceIds: targetIds,
      plan: { waves: input.waves, onMiss: input.onMiss, seed: input.seed },
      now: this.#now(),
    });
    if (!created.ok) throw new GatewayError('PW_INVALID_PLAN', created.errors.join('; '), { errors: created.errors });
    const previousBundle = await this.#store.getBaseline(bundle.group);
    // Checked again after the last await: two concurrent calls must not both take the same devices.
    const taken = targetIds.filter((dev) => this.#activeRolloutOf(dev) !== null && this.#deviceRollout.get(dev) !== replacing);
    if (taken.length > 0) throw this.#busy(taken);
    const r: GatewayRollout = { ...created.rollout, createdBy: actor, previousBundle };
    if (forced) r.decisions.push(forced);
    this.#rollouts.set(r.id, r);
    for (const dev of targetIds) this.#deviceRollout.set(dev, r.id);
    this.#bundles.set(bundle.id, { bytes, seq: bundle.seq, group: bundle.group });
    await this.#persist(r);
    this.#log.info({ rollout: r.id, bundle: bundle.id, devices: targetIds.length, actor }, 'rollout created');
    this.#logDecisions(r);
    if (input.start) await this.startRollout(r.id, actor);
    return { rollout: summary(r), preflight: check };
  }

  async startRollout(id: string, actor: string): Promise<RolloutSummary> {
    return this.#act(id, (r) => engine.start(r, this.#now(), actor, this.#isOnline));
  }

  async pauseRollout(id: string, actor: string): Promise<RolloutSummary> {
    return this.#act(id, (r) => engine.pause(r, this.#now(), actor));
  }

  /** `scope`: the new thresholds are for the held wave only (default), or for it and every wave after it. */
  async resumeRollout(id: string, actor: string, changes: Partial<WaveThresholds> = {}, scope: ResumeScope = 'held'): Promise<RolloutSummary> {
    // Validation before state: bad thresholds are a 400 whatever state the rollout is in.
    const errors: string[] = [];
    checkThresholds((changes ?? {}) as Record<string, unknown>, '', errors);
    if (scope !== 'held' && scope !== 'remaining') errors.push(`for must be one of held, remaining, got ${JSON.stringify(scope)}`);
    if (errors.length > 0) throw new GatewayError('PW_INVALID_PLAN', errors.join('; '), { errors });
    return this.#act(id, (r) => {
      const result = engine.resume(r, this.#now(), actor, this.#isOnline, changes, scope);
      // Raised here, before the effects: a wave held again at once alerts after its resume.
      if (result.ok) {
        const d = [...r.decisions].reverse().find((x) => x.action === 'resume')!;
        this.#alert(r, 'rollout.resumed', d.wave ?? r.wave, d.reason, actor, { scope, thresholds: { ...d.thresholds! } });
      }
      return result;
    });
  }

  async abortRollout(id: string, actor: string, reason = 'operator'): Promise<RolloutSummary> {
    return this.#act(id, (r) => engine.abort(r, this.#now(), actor, reason));
  }

  /**
   * Rolls back: a new bundle with the pins the group ran before (a higher seq, so devices take it),
   * sent in one wave to every device this rollout reached; this rollout is aborted with the reason.
   * Nothing changes until the rollback rollout exists: a refusal leaves this rollout as it was.
   * A completed rollout's bundle was the group's baseline: the rollback bundle takes its place, so
   * late joiners and returning devices get the restored pins, never the rolled-back ones.
   */
  async rollback(id: string, actor: string): Promise<{ aborted: RolloutSummary; rollback: RolloutSummary }> {
    const r = this.#rollout(id);
    if (r.state === 'aborted' || r.state === 'pending') throw new GatewayError('PW_INVALID_STATE', `cannot roll back a rollout that is ${r.state}`);
    if (r.rolledBackBy) throw new GatewayError('PW_INVALID_STATE', `rollout ${id} was rolled back already by ${r.rolledBackBy}`);
    if (!r.previousBundle) {
      throw new GatewayError('PW_INVALID_STATE', `rollout ${id} has no previous bundle to return to (its group ran the firmware's initial pins): create a bundle with the pins to restore and roll it out`);
    }
    const previous = await this.decodedBundle(r.previousBundle);
    // Every device the bundle may have reached; revoked ones are cut off and need nothing.
    const reached: string[] = [];
    for (const [dev, e] of Object.entries(r.devices)) {
      if (e.status === 'pending' || e.status === 'unreachable') continue;
      const d = await this.#store.getDevice(dev);
      if (d && d.revokedAt === null) reached.push(dev);
    }
    if (reached.length === 0) throw new GatewayError('PW_INVALID_STATE', `rollout ${id} has not sent its bundle to any device: abort it instead`);
    const bundle = await this.createBundle(
      {
        group: r.bundle.group,
        endpoints: previous.bundle.endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins.map(formatPin), mode: e.mode, notBefore: e.notBefore, notAfter: e.notAfter })),
        expiryPolicy: previous.bundle.expiryPolicy,
      },
      actor,
    );
    const { rollout } = await this.#createRollout({ bundle: bundle.id, target: { devices: reached }, waves: [{ size: '100%' }] }, actor, id);
    const created = this.#rollouts.get(rollout.id)!;
    created.rollbackOf = id;
    created.previousBundle = r.bundle.id;
    r.rolledBackBy = created.id;
    const wasCompleted = r.state === 'completed';
    const aborted = wasCompleted ? summary(r) : await this.abortRollout(id, actor, 'rollback');
    // Members never reached leave this rollout: they get the group's baseline when they connect.
    for (const dev of Object.keys(r.devices)) if (this.#deviceRollout.get(dev) === id) this.#deviceRollout.delete(dev);
    if (wasCompleted && 'group' in r.target && (await this.#store.getBaseline(r.target.group)) === r.bundle.id) {
      await this.#store.setBaseline(r.target.group, bundle.id);
    }
    await this.#persist(r);
    await this.startRollout(created.id, actor);
    await this.#persist(created);
    return { aborted, rollback: summary(created) };
  }

  async getRollout(id: string): Promise<RolloutSummary & { createdBy: string; previousBundle: string | null; rollbackOf?: string; rolledBackBy?: string }> {
    const r = this.#rollout(id);
    return { ...summary(r), createdBy: r.createdBy, previousBundle: r.previousBundle, ...(r.rollbackOf && { rollbackOf: r.rollbackOf }), ...(r.rolledBackBy && { rolledBackBy: r.rolledBackBy }) };
  }

  listRollouts(state?: string): RolloutSummary[] {
    return [...this.#rollouts.values()].filter((r) => state === undefined || r.state === state).map(summary);
  }

  /** The device's latest rollout that is not aborted, and where the device stands in it; null when none. */
  deviceRollout(deviceId: string): { id: string; state: RolloutState; status: DeviceStatus; wave: number; reason?: string; at: number | null } | null {
    const r = this.#activeOrLatest(deviceId);
    const e = r?.devices[deviceId];
    if (!r || !e) return null;
    return { id: r.id, state: r.state, status: e.status, wave: e.wave, ...(e.reason !== undefined && { reason: e.reason }), at: e.at };
  }

  /** Rollouts by state, and the waves standing held (one per held rollout): O(rollouts), for metrics. */
  rolloutCounts(): { byState: Record<RolloutState, number>; heldWaves: number } {
    const byState: Record<RolloutState, number> = { pending: 0, running: 0, held: 0, completed: 0, aborted: 0 };
    for (const r of this.#rollouts.values()) byState[r.state]++;
    return { byState, heldWaves: byState.held };
  }

  /** Evaluates deadlines and soaks of running rollouts; called by the timer, or by tests with an injected clock. */
  tick(): void {
    const now = this.#now();
    for (const r of this.#rollouts.values()) {
      if (r.state !== 'running' && r.state !== 'completed') continue;
      const due = engine.nextDeadline(r);
      if (due === null || due > now) continue;
      this.#apply(r, engine.tick(r, now, this.#isOnline));
    }
  }

  // ---------------------------------------------------------------- support queries

  /** Devices not on the target seq, each with why, oldest first. */
  async stuck(query: { group?: string; rollout?: string }): Promise<StuckDevice[]> {
    if ((query.group === undefined) === (query.rollout === undefined)) throw invalid('give exactly one of group or rollout');
    if (query.rollout !== undefined) {
      const r = this.#rollout(query.rollout);
      const ids = Object.keys(r.devices);
      const devices = await Promise.all(ids.map((id) => this.#store.getDevice(id)));
      return findStuck({ devices: devices.filter((d): d is DeviceRecord => d !== null), targetSeq: r.bundle.seq, targetBundle: r.bundle.id, rollout: r, isOnline: this.#isOnline, now: this.#now() });
    }
    const group = query.group!;
    const baseline = await this.#store.getBaseline(group);
    const running = [...this.#rollouts.values()].filter((r) => 'group' in r.target && r.target.group === group && (r.state === 'running' || r.state === 'held'));
    const target = running.length > 0 ? running[running.length - 1] : null;
    const base = baseline ? this.#bundles.get(baseline) ?? (await this.#loadBundle(baseline)) : null;
    const targetSeq = target?.bundle.seq ?? base?.seq ?? null;
    if (targetSeq === null) return [];
    const ids = await this.#store.devicesInGroup(group);
    const devices = (await Promise.all(ids.map((id) => this.#store.getDevice(id)))).filter((d): d is DeviceRecord => d !== null && d.revokedAt === null);
    return findStuck({ devices, targetSeq, targetBundle: target?.bundle.id ?? baseline!, rollout: target, isOnline: this.#isOnline, now: this.#now() });
  }

  /** Pin-failure reports aggregated by endpoint and observed pin. */
  pinFailures(filter: { rollout?: string; group?: string; host?: string }) {
    return this.#telemetry.query(filter);
  }

  recentTelemetry(deviceId: string) {
    return this.#telemetry.recent(deviceId);
  }

  telemetryCounters() {
    return this.#telemetry.counters;
  }

  // ---------------------------------------------------------------- ids by prefix, bundle diffs, alerts
  // Operator conveniences over what the sections above keep (docs/operations.md, docs/runbook.md).

  /** A bundle id from a whole id or a unique prefix of at least 8 hex digits: PW_INVALID (too short), PW_NOT_FOUND, or PW_AMBIGUOUS naming the candidates. */
  async resolveBundleId(input: string): Promise<string> {
    if (typeof input === 'string' && (await this.#store.getBundle(input))) return input;
    const prefix = String(input);
    // Ids sort after any proper prefix of theirs: the page after `prefix` starts with its matches.
    const page = prefix.length < MIN_PREFIX ? { items: [], next: null } : await this.#store.listBundles({ cursor: prefix, limit: MAX_CANDIDATES + 1 });
    const matches = page.items.map((b) => b.id).filter((id) => id.startsWith(prefix));
    return this.#resolved(prefix, matches, 'bundle', matches.length === page.items.length && page.next !== null);
  }

  /** A rollout id from a whole id or a unique prefix of at least 8 characters; errors as resolveBundleId. */
  resolveRolloutId(input: string): string {
    const prefix = String(input);
    if (this.#rollouts.has(prefix)) return prefix;
    const matches = prefix.length < MIN_PREFIX ? [] : [...this.#rollouts.keys()].filter((id) => id.startsWith(prefix));
    return this.#resolved(prefix, matches, 'rollout', false);
  }

  #resolved(input: string, candidates: string[], kind: IdKind, more: boolean): string {
    const r = resolveIdPrefix(input, candidates, kind, more);
    if (r.ok) return r.id;
    if (r.code === 'ambiguous') throw new GatewayError('PW_AMBIGUOUS', r.message, { candidates: r.candidates });
    throw new GatewayError(r.code === 'too_short' ? 'PW_INVALID' : 'PW_NOT_FOUND', r.message);
  }

  /** The bundle's pins against what its group runs now: its baseline (gateway/pin-diff.ts), or nothing. */
  async bundleDiff(id: string): Promise<PinDiff> {
    const { record, bundle } = await this.decodedBundle(id);
    const text = (eps: Endpoint[]): PinnedEndpoint[] => eps.map((e) => ({ host: e.host, port: e.port, pins: e.pins.map(formatPin) }));
    const baseline = await this.#store.getBaseline(record.group);
    if (!baseline) return pinDiff(text(bundle.endpoints), { kind: 'none' });
    const base = await this.decodedBundle(baseline);
    return pinDiff(text(bundle.endpoints), { kind: 'baseline', bundleId: baseline, seq: base.record.seq, endpoints: text(base.bundle.endpoints) });
  }

  /** Alert deliveries for /metrics; null without webhooks. */
  webhookCounters(): WebhookCounters | null {
    return this.#webhooks?.counters() ?? null;
  }

  /** Resolves once every alert raised so far has been delivered or given up on (tests). */
  webhooksIdle(): Promise<void> {
    return this.#webhooks?.idle() ?? Promise.resolve();
  }

  // ---------------------------------------------------------------- internals

  /** The one place rollout events leave the gateway: queued for the webhooks, never waited on. */
  #alert(r: GatewayRollout, event: AlertEventName, wave: number | null, reason: string, actor?: string, extra: { scope?: ResumeScope; thresholds?: Record<string, number> } = {}): void {
    if (!this.#webhooks) return;
    const last = r.decisions[r.decisions.length - 1];
    this.#webhooks.emit({
      event,
      rollout: { id: r.id, state: r.state, bundle: r.bundle, target: r.target },
      wave,
      waves: r.waves.length,
      reason,
      actor: actor ?? last?.actor ?? 'system',
      ...extra,
    });
  }

  /** Each decision of the rollout not logged yet, one line each; waves as people count them (from 1). */
  #logDecisions(r: GatewayRollout): void {
    const from = this.#loggedDecisions.get(r.id) ?? 0;
    if (from >= r.decisions.length) return;
    for (const d of r.decisions.slice(from)) {
      const line = decisionLine(r, d);
      if (d.action === 'hold' || d.action === 'abort') this.#log.warn(line, DECISION_MESSAGE[d.action]);
      else this.#log.info(line, DECISION_MESSAGE[d.action]);
    }
    this.#loggedDecisions.set(r.id, r.decisions.length);
  }

  readonly #isOnline = (id: string) => this.#broker?.isConnected(id) ?? false;

  async #resume(): Promise<void> {
    const stored = await this.#store.getTelemetry();
    this.#telemetry = new TelemetryBook(stored as TelemetryState | null);
    for (const rec of await this.#store.listRollouts()) {
      const r = rec as unknown as GatewayRollout;
      if (engine.rebuildCounters(r)) this.#log.warn({ rollout: r.id }, 'rollout counters were out of step and were rebuilt');
      this.#rollouts.set(r.id, r);
      // Decided and logged by an earlier run of the gateway.
      this.#loggedDecisions.set(r.id, r.decisions.length);
      if (r.state === 'aborted') continue;
      for (const dev of Object.keys(r.devices)) this.#deviceRollout.set(dev, r.id);
    }
  }

  /** The store sees a rollout as an opaque record with an id and a state. */
  #persist(r: GatewayRollout): Promise<void> {
    for (const listener of this.#rolloutListeners) {
      try {
        listener(r.id);
      } catch (err) {
        this.#log.error({ rollout: r.id, err: (err as Error).message }, 'rollout change listener failed');
      }
    }
    return this.#store.putRollout(r as unknown as RolloutRecord);
  }

  #rollout(id: string): GatewayRollout {
    const r = this.#rollouts.get(id);
    if (!r) throw notFound('rollout', id);
    return r;
  }

  /** PW_CONFLICT for targeted devices in another rollout, naming each such rollout and its state (pending, running or held). */
  #busy(ids: string[]): GatewayError {
    const byRollout = new Map<string, string[]>();
    for (const dev of ids) {
      const rid = this.#deviceRollout.get(dev)!;
      byRollout.set(rid, [...(byRollout.get(rid) ?? []), dev]);
    }
    const rollouts = [...byRollout].map(([rid, devs]) => ({ id: rid, state: this.#rollouts.get(rid)!.state, devices: devs.length }));
    const where =
      rollouts.length === 1
        ? `rollout ${rollouts[0].id}, which is ${rollouts[0].state}`
        : `other rollouts: ${rollouts.map((r) => `${r.devices} in ${r.id} (${r.state})`).join(', ')}`;
    const are = ids.length === 1 ? ' is' : 's are';
    return new GatewayError('PW_CONFLICT', `${ids.length} targeted device${are} already in ${where}: ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}`, { devices: ids.slice(0, 1000), rollouts });
  }

  async #act(id: string, action: (r: GatewayRollout) => ActionResult): Promise<RolloutSummary> {
    const r = this.#rollout(id);
    const result = action(r);
    if (!result.ok) throw new GatewayError(result.code, result.message, result.errors ? { errors: result.errors } : undefined);
    this.#apply(r, result.effects);
    await this.#persist(r);
    return summary(r);
  }

  /** Performs the engine's effects; the decisions the call took are logged first, one line each. */
  #apply(r: GatewayRollout, effects: Effect[]): void {
    this.#logDecisions(r);
    for (const e of effects) {
      switch (e.type) {
        case 'send':
          this.#send(e.deviceIds, r.bundle.id, r.id);
          break;
        case 'held':
          this.#alert(r, 'rollout.held', e.wave, e.reason);
          break;
        case 'completed':
          // docs/architecture.md §6: the group's baseline is the bundle of its last completed rollout.
          if ('group' in r.target) this.#track(this.#store.setBaseline(r.target.group, r.bundle.id));
          this.#alert(r, 'rollout.completed', r.wave, 'all_waves_passed');
          break;
        case 'aborted':
          for (const dev of Object.keys(r.devices)) if (this.#deviceRollout.get(dev) === r.id) this.#deviceRollout.delete(dev);
          this.#alert(r, 'rollout.aborted', r.wave, e.reason);
          break;
        case 'persist':
          this.#track(this.#persist(r));
          break;
      }
    }
  }

  /** Publishes a bundle to the connected devices among `ids`, once per device session. */
  #send(ids: readonly string[], bundleId: string, rolloutId: string | null): void {
    const fresh = ids.filter((id) => this.#delivered.get(id) !== bundleId && this.#broker.isConnected(id));
    if (fresh.length === 0) return;
    const cached = this.#bundles.get(bundleId);
    const go = async () => {
      const b = cached ?? (await this.#loadBundle(bundleId));
      if (!b) return this.#log.error({ bundle: bundleId }, 'bundle to send is not in the store');
      for (const id of fresh) this.#delivered.set(id, bundleId);
      const handed = await this.#broker.publishToDevices(fresh, b.bytes);
      this.#counters.bundlesSent += handed;
      // A rollout's record keeps each member's status and when it changed; only a baseline send
      // (no rollout) needs a history entry, which also keeps the store file from growing per wave.
      if (rolloutId === null) {
        const at = this.#now();
        for (const id of fresh) this.#history(id, { at, bundleId, seq: b.seq, event: 'sent' });
      }
    };
    this.#track(go());
  }

  async #loadBundle(id: string) {
    const rec = await this.#store.getBundle(id);
    if (!rec) return null;
    const b = { bytes: Buffer.from(rec.bytes, 'base64'), seq: rec.seq, group: rec.group };
    this.#bundles.set(id, b);
    return b;
  }

  #history(id: string, entry: { at: number; rolloutId?: string; bundleId: string; seq: number; event: DeviceHistoryEvent; reason?: string }): void {
    this.#track(
      this.#store.updateDevice(id, (d) => {
        d.history.push(entry.rolloutId === undefined ? { at: entry.at, bundleId: entry.bundleId, seq: entry.seq, event: entry.event, ...(entry.reason && { reason: entry.reason }) } : entry);
      }),
    );
  }

  /** Waits for `p` at stop; returns a promise that settles with it and never rejects. */
  #track<T>(p: Promise<T> | void): Promise<void> | undefined {
    if (!p) return;
    const tracked = p.then(
      () => undefined,
      (err: Error) => this.#log.error({ err: err.message }, 'gateway task failed'),
    );
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
    return tracked;
  }

  #drop(reason: string, deviceId: string, detail?: string, count = 1): void {
    this.#counters.dropped[reason] = (this.#counters.dropped[reason] ?? 0) + count;
    this.#log.debug({ deviceId, reason, detail }, 'device message dropped');
  }

  async #authenticate(id: string, token: string): Promise<boolean> {
    const d = await this.#store.getDevice(id);
    // Compare even for an unknown or revoked device, so timing does not tell which ids exist.
    const ok = tokenMatches(token, d?.tokenHash ?? null);
    return ok && d !== null && d.revokedAt === null;
  }

  #onConnect(id: string): void {
    this.#delivered.delete(id);
    const now = this.#now();
    this.#track(this.#store.updateDevice(id, { lastConnectAt: now, lastSeen: now }));
  }

  #onDisconnect(id: string): void {
    this.#delivered.delete(id);
    const now = this.#now();
    this.#track(this.#store.updateDevice(id, { lastDisconnectAt: now, lastSeen: now }));
  }

  async #onSubscribe(id: string, filter: string): Promise<void> {
    // Only a subscription that covers the bundle topic can receive a bundle.
    if (!(filter.endsWith('/#') || filter.endsWith('/bundle'))) return;
    // A bundle published before this subscription (a device that sent `state` first) was dropped by
    // the broker: what was handed to this session may be handed again.
    this.#delivered.delete(id);
    const d = await this.#store.getDevice(id);
    const r = this.#activeOrLatest(id);
    if (r) return this.#apply(r, engine.deviceState(r, id, { seq: d?.seq ?? 0, bundleId: d?.bundleId ?? null }, this.#now()));
    if (d && d.seq !== null) await this.#offerBaseline(d);
  }

  async #onMessage(id: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
    this.#counters.messagesIn[kind]++;
    const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
    switch (kind) {
      case 'state':
        return this.#onState(id, bytes);
      case 'ack':
        return this.#onAck(id, bytes);
      case 'telemetry':
        return this.#onTelemetry(id, bytes);
    }
  }

  async #onState(id: string, bytes: Uint8Array): Promise<void> {
    const m = decodeState(bytes);
    if (!m.ok) return this.#drop('malformed_state', id, m.detail);
    const s = m.message;
    const now = this.#now();
    // Model and firmware are shown to operators and pick the manifest pre-flight checks against:
    // only printable labels are taken from a device (no terminal escapes), others are dropped.
    const labels = LABEL_RE.test(s.model) && LABEL_RE.test(s.firmware) ? { model: s.model, firmware: s.firmware } : {};
    if (!('model' in labels)) this.#drop('state_bad_label', id);
    const d = await this.#store.updateDevice(id, { seq: s.seq, bundleId: s.bundleId, ...labels, keyEpoch: s.keyEpoch, lastSeen: now });
    if (!d) return;
    const r = this.#activeOrLatest(id);
    if (r) {
      // Reconciliation: a device that applied while its ack was lost (or the gateway was down) is
      // counted; one that says it does not hold the bundle is sent it again.
      this.#apply(r, engine.deviceState(r, id, { seq: s.seq, bundleId: s.bundleId }, now));
      // A device that applied a completed rollout's bundle and now reports less (reflashed, its
      // flash wiped) is behind: the bundle the whole rollout runs is sent again.
      if (r.state === 'completed' && s.bundleId !== r.bundle.id && s.seq < r.bundle.seq) this.#send([id], r.bundle.id, r.id);
      return;
    }
    await this.#offerBaseline(d);
  }

  async #onAck(id: string, bytes: Uint8Array): Promise<void> {
    const m = decodeAck(bytes);
    if (!m.ok) return this.#drop('malformed_ack', id, m.detail);
    const a = m.message;
    const now = this.#now();
    // A device that could not read a bundle acks it with no id: it is the one last handed to it.
    const bundleId = a.bundleId ?? this.#delivered.get(id) ?? null;
    if (bundleId === null) return this.#drop('ack_unknown_bundle', id);
    this.#counters.acks[a.status]++;
    // The seq comes from the stored bundle, never from the device: a device cannot push its
    // group's seq counter anywhere by claiming one.
    const known = this.#bundles.get(bundleId) ?? (await this.#loadBundle(bundleId));
    if (!known) return this.#drop('ack_unknown_bundle', id);
    const seq = known.seq;
    const r = this.#activeOrLatest(id);
    const rolloutId = r && r.bundle.id === bundleId ? r.id : undefined;
    await this.#store.updateDevice(id, (d) => {
      if (a.status === 'applied') {
        d.seq = seq;
        d.bundleId = bundleId;
      }
      d.lastSeen = now;
      d.history.push({ at: now, ...(rolloutId && { rolloutId }), bundleId, seq, event: a.status, ...(a.reason && { reason: a.reason }) });
    });
    if (r && r.bundle.id === bundleId) this.#apply(r, engine.deviceAcked(r, id, { status: a.status, reason: a.reason, bundleId, seq }, now));
  }

  async #onTelemetry(id: string, bytes: Uint8Array): Promise<void> {
    const m = decodeTelemetry(bytes);
    if (!m.ok) return this.#drop('malformed_telemetry', id, m.detail);
    const d = await this.#store.getDevice(id);
    if (!d) return;
    const now = this.#now();
    const r = this.#activeOrLatest(id);
    const result = this.#telemetry.ingest(id, d.group, m.message, (bundleId) => (r && bundleId === r.bundle.id ? { rolloutId: r.id, wave: r.devices[id]?.wave ?? null } : { rolloutId: null, wave: null }), now);
    // aggregate_full and device_quota reports are still accepted (only their bucket is missing).
    for (const drop of result.dropped) if (drop.reason !== 'aggregate_full' && drop.reason !== 'device_quota') this.#drop(`telemetry_${drop.reason}`, id, undefined, drop.count);
    this.#track(this.#store.putTelemetry(this.#telemetry.toJSON()));
    for (const f of result.failingOn) {
      if (r && r.bundle.id === f.bundleId) this.#apply(r, engine.pinFailure(r, id, { bundleId: f.bundleId }, now));
    }
  }

  /** docs/architecture.md §6: a device behind its group's baseline, in no running rollout, is sent the baseline. */
  async #offerBaseline(d: DeviceRecord): Promise<void> {
    if (this.#activeRolloutOf(d.id)) return;
    const baseline = await this.#store.getBaseline(d.group);
    if (!baseline || d.bundleId === baseline) return;
    const b = this.#bundles.get(baseline) ?? (await this.#loadBundle(baseline));
    if (!b || (d.seq ?? 0) >= b.seq) return;
    this.#send([d.id], baseline, null);
  }

  /** The device's rollout that is pending, running or held, or null. */
  #activeRolloutOf(id: string): GatewayRollout | null {
    const rid = this.#deviceRollout.get(id);
    const r = rid ? this.#rollouts.get(rid) : undefined;
    return r && (r.state === 'pending' || r.state === 'running' || r.state === 'held') ? r : null;
  }

  /** The device's latest rollout that is not aborted (a completed one still delivers to its late members). */
  #activeOrLatest(id: string): GatewayRollout | null {
    const rid = this.#deviceRollout.get(id);
    const r = rid ? this.#rollouts.get(rid) : undefined;
    return r && r.state !== 'aborted' ? r : null;
  }

  async #resolveTarget(target: Target): Promise<string[]> {
    if (target && typeof target === 'object' && 'group' in target && typeof target.group === 'string') {
      const ids = await this.#store.devicesInGroup(target.group);
      const live: string[] = [];
      for (const id of ids) {
        const d = await this.#store.getDevice(id);
        if (d && d.revokedAt === null) live.push(id);
      }
      if (live.length === 0) throw invalid(`target.group: group "${target.group}" has no provisioned devices`);
      return live;
    }
    if (target && typeof target === 'object' && 'devices' in target && Array.isArray(target.devices) && target.devices.length > 0) {
      const ids = [...new Set(target.devices)];
      const unknown: string[] = [];
      for (const id of ids) {
        const d = typeof id === 'string' ? await this.#store.getDevice(id) : null;
        if (!d || d.revokedAt !== null) unknown.push(String(id));
      }
      if (unknown.length > 0) throw invalid(`target.devices: unknown or revoked device${unknown.length === 1 ? '' : 's'}: ${unknown.slice(0, 20).join(', ')}`, { devices: unknown });
      return ids;
    }
    throw invalid('target: must be { "group": G } or { "devices": [ids...] } with at least one device');
  }

  /**
   * The highest seq a device of the group runs, counting only bundles this gateway signed for the
   * group: a device's own claim of a seq is never trusted (it could exhaust the group's seqs).
   */
  async #highestReportedSeq(group: string): Promise<number> {
    let max = 0;
    for (const id of await this.#store.devicesInGroup(group)) {
      const d = await this.#store.getDevice(id);
      if (!d?.bundleId) continue;
      const b = this.#bundles.get(d.bundleId) ?? (await this.#loadBundle(d.bundleId));
      if (b && b.group === group && b.seq > max) max = b.seq;
    }
    return max;
  }
}

/** The log message of each decision (the bench scripts time a hold at 'rollout held'). */
const DECISION_MESSAGE: Record<Decision['action'], string> = {
  start: 'rollout started',
  pause: 'rollout paused',
  resume: 'rollout resumed',
  abort: 'rollout aborted',
  hold: 'rollout held',
  soak: 'wave soaking',
  pass: 'wave passed',
  complete: 'rollout completed',
  force: 'rollout forced past pre-flight',
};

/** A decision as one log line: waves numbered from 1 (`wave`), with the figures it was judged on. */
function decisionLine(r: GatewayRollout, d: Decision): Record<string, unknown> {
  const f = d.figures;
  return {
    rollout: r.id,
    decision: d.action,
    reason: d.reason,
    actor: d.actor,
    state: `${d.from}→${d.to}`,
    ...(d.wave !== undefined && { wave: d.wave + 1, waves: r.waves.length }),
    ...(d.waveTo !== undefined && { waveState: `${d.waveFrom}→${d.waveTo}` }),
    ...(f && { applied: f.applied, rejected: f.rejected, failing: f.failing, unreachable: f.unreachable, members: f.members, ackRatio: f.ackRatio, failureRatio: f.failureRatio }),
    ...(d.scope && { for: d.scope }),
    ...(d.thresholds && { thresholds: d.thresholds }),
  };
}
