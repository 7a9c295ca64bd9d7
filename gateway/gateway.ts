// The gateway (docs/architecture.md §1, §5–§7): the parts wired together, started and stopped. This
// file holds no logic of its own: the `Gateway` class is the facade the HTTP API, the CLI and the
// tests call, and each call goes to the part that owns it:
//
//   devices.ts    the device registry: provisioning, tokens, revocation, the check at CONNECT
//   bundles.ts    signing and storing bundles, their decoded content, ids by prefix, pin diffs
//   rollouts.ts   rollout orchestration and the interpreter of the engine's effects
//   ingest.ts     device events: connects, subscriptions, state, ack and telemetry messages
//   delivery.ts   publishing bundles to devices, once a session, and baseline offers
//   support.ts    the stuck-device query
//   manifests.ts  the firmware manifests pushed through the API, beside the config's
//   reloads.ts    reading the rollouts and the telemetry book again after a commit failed
//
// Every rollout decision is the pure engine's (gateway/rollout/engine.ts, policy.ts).
//
//   const gw = await Gateway.start({ dataDir, keyPath, mqttPort: 0 });
//   const { devices } = await gw.provision([{ id: 'th-1', group: 'thermostats' }]);
//   const bundle = await gw.createBundle({ group: 'thermostats', endpoints: [...] }, 'alice');
//   const { rollout } = await gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, start: true }, 'alice');
import { DeviceBroker, type BrokerCounters, type BrokerTlsOptions, type BrokerWebSocketOptions } from './broker.ts';
import { defaultReplicaId, type ExternalTransportOptions } from './broker/external-transport.ts';
import { ExternalBrokers } from './broker/external-brokers.ts';
import type { Replica } from './replica/replica.ts';
import type { PgSessionStore } from './http/pg-session-store.ts';
import type { PgEventIds } from './http/pg-event-ids.ts';
import { deviceTopic } from './topics.ts';
import type { DeviceTransport } from './device-transport.ts';
import { Bundles, type BundleInput } from './bundles.ts';
import { Delivery, type DeviceLink } from './delivery.ts';
import { Devices, type ProvisionInput } from './devices.ts';
import { Ingest } from './ingest.ts';
import { NO_LOG, type Logger } from './logger.ts';
import { Rollouts, type BypassedGate, type GatewayRollout, type RolloutInput } from './rollouts.ts';
import type { ApprovalPolicy, ApprovalState } from './rollout/approval.ts';
import { ManifestRegistry, type KnownManifest } from './manifest-registry.ts';
import { Manifests, type ManifestPush } from './manifests.ts';
import { loadSigningKey, type SigningKey } from './signing-key.ts';
import type { BundleQuery, BundleRecord, DeviceQuery, DeviceRecord, Page } from './store/types.ts';
import type { ChangeStore, StoreStatus } from './store/changes.ts';
import { EmbeddedStore } from './store/embedded.ts';
import { loadTelemetry, reloadTelemetry } from './telemetry-changes.ts';
import { Reloads } from './reloads.ts';
import { loadPushedManifests } from './manifests.ts';
import { embeddedMqttUrl } from './device-url.ts';
import { baselineOf } from './fleet-reads.ts';
import { Support } from './support.ts';
import { Tasks } from './tasks.ts';
import type { ResumeScope } from './rollout/engine.ts';
import type { RolloutSummary } from './rollout/summary.ts';
import type { DeadlineFit } from './rollout/deadline.ts';
import type { RolloutGauges } from './rollout/gauges.ts';
import type { DeviceStatus, RolloutState, WaveThresholds } from './rollout/types.ts';
import type { TelemetryBook } from './telemetry.ts';
import type { TelemetryChanges } from './telemetry-changes.ts';
import type { Preflight, PreflightOptions } from './preflight.ts';
import type { StuckDevice } from './stuck.ts';
import { hex, spkiPemFromRaw, type FirmwareManifest, type PinBundle } from '../firmware-manifest/index.ts';
import type { DeviceMessageKind } from './topics.ts';
import { hostname } from 'node:os';
import type { PinDiff } from './pin-diff.ts';
import { Webhooks, type WebhookCounters, type WebhookOptions, type WebhookTarget } from './webhooks.ts';
import { packageVersion } from './http/info.ts';

export type { Logger } from './logger.ts';
export type { BundleInput } from './bundles.ts';
export type { ProvisionInput } from './devices.ts';
export type { BypassedGate, GatewayRollout, RolloutInput } from './rollouts.ts';

export interface GatewayOptions {
  /**
   * the data dir: the embedded store's journal and snapshots (docs/storage.md), created with mode
   * 0700 if missing; with `storeUrl`, only where an earlier release's pushed manifests may be read from
   */
  dataDir?: string | null;
  /** `postgres://USER[:PASSWORD]@HOST:PORT/DB`: the fleet in PostgreSQL instead of the data dir (config `store.url`) */
  storeUrl?: string | null;
  /**
   * the PKCS#8 PEM signing key; refused if group or others can read it. Without one the gateway is
   * upload-only: it takes bundles signed elsewhere (uploadBundle), and signs none itself
   */
  keyPath?: string | null;
  /**
   * the next signing key (PKCS#8 PEM, 0600): a group's bundles are signed with it once a rotation
   * that makes its devices trust it is the group's baseline (gateway/key-rotation.ts)
   */
  nextKeyPath?: string | null;
  /** MQTT listen address; default 127.0.0.1 */
  host?: string;
  /** the MQTT URL devices are given (`mqttUrl`, GET /v1/info) where they reach the embedded broker by another address than `host` (a wildcard, NAT, a name for TLS); default the listener's own (gateway/device-url.ts) */
  mqttDeviceUrl?: string;
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
  /** how long a durable batch waits for others to share its write (group commit), ms; default 1 */
  commitWindowMs?: number;
  /** default bundle lifetime; default 30 days */
  bundleLifetimeSeconds?: number;
  /** largest device message accepted; default 16 KiB */
  maxPayloadBytes?: number;
  logger?: Logger;
  /** a store in place of the embedded one in dataDir (tests, other databases); opened by start() */
  store?: ChangeStore;
  /** where rollout alerts are POSTed (config `webhooks`, gateway/webhooks.ts); default none */
  webhooks?: readonly WebhookTarget[];
  /** how alerts are delivered: timeouts, retries, queue bound (defaults in gateway/webhooks.ts) */
  webhookDelivery?: Omit<WebhookOptions, 'gateway' | 'logger' | 'now'>;
  /** how this gateway names itself in alerts; default the host name */
  name?: string;
  /** pin continuity before a rollout (config `preflight`, gateway/continuity.ts) */
  preflight?: PreflightOptions;
  /** two-person approval of pin changes (config `approval`, gateway/rollout/approval.ts); default off */
  approval?: ApprovalPolicy;
  /**
   * external broker mode (docs/architecture.md §8): devices connect to this broker, whose
   * dynamic-security plugin holds their credentials, and the gateway is its client; no MQTT
   * listener of the gateway's own (`mqttPort`, `tls`, `websocket` unused). Several: the fleet is
   * sharded across them, each device provisioned onto one (docs/architecture.md §8). Default: aedes, embedded
   */
  broker?: ExternalTransportOptions | readonly ExternalTransportOptions[];
  /**
   * replicas (docs/architecture.md §8): on by default with an external `broker` and a PostgreSQL
   * store; any number of gateways on that broker and database elect one leader to run the engine.
   * `false` turns it off (one gateway that runs the engine without asking). Tests shorten the waits.
   */
  replica?: false | { retryMs?: number; actionTimeoutMs?: number };
}

export interface GatewayCounters {
  messagesIn: Record<DeviceMessageKind, number>;
  bundlesSent: number;
  acks: { applied: number; rejected: number; verified: number; reverted: number };
  dropped: Record<string, number>;
  broker: BrokerCounters;
  /** the store's writes (embedded: journal writes; PostgreSQL: transactions) */
  storeWrites: number;
  /** rollouts that turned at risk of missing their deadline (docs/architecture.md §9) */
  atRisk: number;
}

export class Gateway {
  readonly #o: GatewayOptions;
  readonly #log: Logger;
  readonly #store: ChangeStore;
  readonly #key: SigningKey | null;
  #broker!: DeviceTransport;
  /** set in external broker mode */
  #external: ExternalBrokers | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** set with replicas (docs/architecture.md §8): this process's role among them */
  #replica: Replica | null = null;
  /** replicas: a follower's read of the rollouts in flight, and whether another is asked for */
  #viewReading: Promise<void> | null = null;
  #viewAgain = false;
  #replicated = false;
  /** console sessions in the database, with the PostgreSQL store (docs/architecture.md §8, §10) */
  #sessions: PgSessionStore | null = null;
  #eventIds: PgEventIds | null = null;
  #stopping: Promise<void> | null = null;
  readonly #tasks: Tasks;
  /** the config's manifests and the pushed ones (docs/architecture.md §4) */
  readonly #manifests: ManifestRegistry;
  readonly #manifestPart: Manifests;
  readonly #telemetry: TelemetryBook;
  readonly #webhooks: Webhooks | null;
  readonly #devices: Devices;
  readonly #bundles: Bundles;
  readonly #delivery: Delivery;
  readonly #rollouts: Rollouts;
  readonly #ingest: Ingest;
  readonly #support: Support;

  private constructor(o: GatewayOptions, store: ChangeStore, keys: { key: SigningKey | null; nextKey: SigningKey | null }, telemetry: { book: TelemetryBook; changes: TelemetryChanges }, pushed: KnownManifest[]) {
    this.#o = o;
    const log = (this.#log = o.logger ?? NO_LOG);
    const now = o.now ?? Date.now;
    this.#store = store;
    this.#key = keys.key;
    this.#telemetry = telemetry.book;
    this.#tasks = new Tasks(log);
    const manifests = (this.#manifests = new ManifestRegistry(o.manifests ?? [], pushed));
    this.#manifestPart = new Manifests({ registry: manifests, store, log, now });
    // A manifest the config names is never pushed, so its warnings (too large for one bundle, say) are said here.
    this.#manifestPart.warnConfigured(o.manifests ?? []);
    this.#manifestPart.warnStored(pushed);
    this.#webhooks =
      (o.webhooks?.length ?? 0) > 0
        ? new Webhooks(o.webhooks!, { ...o.webhookDelivery, gateway: { name: o.name ?? hostname(), version: packageVersion() }, logger: log, now })
        : null;
    // The broker starts after the rollouts are resumed: until then no device is connected.
    const link: DeviceLink = {
      isConnected: (id) => this.#broker?.isConnected(id) ?? false,
      publishToDevices: (ids, payload) => this.#broker.publishToDevices(ids, payload),
      disconnect: (id) => this.#broker.disconnect(id),
    };
    const isOnline = link.isConnected;
    const tasks = this.#tasks;
    this.#devices = new Devices({ store, link, credentials: () => this.#external, log, now });
    this.#bundles = new Bundles({ store, key: keys.key, nextKey: keys.nextKey, manifests, log, now, lifetimeSeconds: o.bundleLifetimeSeconds });
    this.#delivery = new Delivery({ store, bundles: this.#bundles, link, tasks, log, now, rolledBack: (bundleId) => this.#rollouts.rolledBack(bundleId) });
    // The rollout records and the telemetry book change in memory before their batch commits: a
    // commit that fails has both read again from the store (docs/architecture.md §7).
    const reloads = new Reloads(store, log);
    this.#rollouts = new Rollouts({ store: reloads.store, reloads, bundles: this.#bundles, delivery: this.#delivery, tasks, webhooks: this.#webhooks, manifests: this.#manifests, isOnline, log, now, preflight: o.preflight, approval: o.approval });
    this.#ingest = new Ingest({ store: reloads.store, bundles: this.#bundles, delivery: this.#delivery, rollouts: this.#rollouts, telemetry: telemetry.book, telemetryChanges: telemetry.changes, tasks, log, now, manifests: this.#manifests });
    reloads.add(() => this.#rollouts.load());
    reloads.add(() => reloadTelemetry(store, telemetry.book, telemetry.changes));
    this.#support = new Support({ store, bundles: this.#bundles, rollouts: this.#rollouts, isOnline, now, manifests: this.#manifests });
  }

  /** Loads the store, resumes every rollout where it stood, and starts the broker. */
  static async start(o: GatewayOptions): Promise<Gateway> {
    const key = o.keyPath ? loadSigningKey(o.keyPath, { strictMode: true }) : null;
    const nextKey = o.nextKeyPath ? loadSigningKey(o.nextKeyPath, { strictMode: true }) : null;
    const log = o.logger ?? NO_LOG;
    // The PostgreSQL store (and pg) is loaded only by a gateway that uses it.
    const store =
      o.store ??
      (o.storeUrl
        ? new (await import('./store/postgres.ts')).PostgresStore({ url: o.storeUrl, commitWindowMs: o.commitWindowMs, logger: log })
        : new EmbeddedStore({ dir: dataDirOf(o), commitWindowMs: o.commitWindowMs, logger: log }));
    await store.open();
    let gw: Gateway;
    try {
      const pushed = await loadPushedManifests(store, o.dataDir ?? null);
      const telemetry = await loadTelemetry(store);
      gw = new Gateway(o, store, { key, nextKey }, telemetry, pushed);
      await gw.#rollouts.load();
    } catch (err) {
      await store.close().catch(() => undefined);
      throw err;
    }
    const ingest = gw.#ingest;
    const tasks = gw.#tasks;
    const pgUrl = o.storeUrl ?? (store as { url?: unknown }).url;
    const onPostgres = typeof pgUrl === 'string' && /^postgres(ql)?:\/\//.test(pgUrl);
    const replicaUrl = pgUrl as string;
    const replicated = onPostgres && o.broker !== undefined && o.replica !== false;
    if (onPostgres) {
      gw.#sessions = (await import('./http/pg-session-store.ts')).PgSessionStore.open(replicaUrl);
      gw.#eventIds = new (await import('./http/pg-event-ids.ts')).PgEventIds(gw.#sessions.pool);
    }
    gw.#replicated = replicated;
    try {
      if (replicated) {
        // Its own lock first: a second process under this client id must not reach the broker.
        const { Replica } = await import('./replica/replica.ts');
        const links = brokerLinks(o);
        gw.#replica = await Replica.start({ url: replicaUrl, id: links[0].clientId ?? defaultReplicaId(), brokers: links.map((l) => ({ ...l, logger: gw.#log })), hooks: gw.#replicaHooks(), log: gw.#log, now: o.now ?? Date.now, ...(o.replica || {}) });
        gw.#rollouts.onChange(() => gw.#replica?.changed());
        // docs/architecture.md §8: a batch applied while leading commits only under that leadership.
        if ('fence' in store) (store as { fence: (() => number | null) | null }).fence = () => gw.#replica?.epoch ?? null;
      }
      await gw.#startBroker(o, ingest, tasks);
      await gw.#replica?.elect();
    } catch (err) {
      // A broker that cannot start (a port taken, a broker refusing the gateway) leaves nothing open.
      await gw.#replica?.close().catch(() => undefined);
      await gw.#sessions?.close().catch(() => undefined);
      await gw.#broker?.close().catch(() => undefined);
      await gw.#webhooks?.close();
      await store.close().catch(() => undefined);
      throw err;
    }
    if (!replicated) gw.#startTimer();
    // `pinwave gateway` logs the one start line of a process, with its listeners.
    gw.#log.debug({ kid: key ? hex(key.kid) : null, rollouts: gw.#rollouts.size }, 'gateway started');
    return gw;
  }

  /** The rollout timer; a deadline that passed while the gateway was down is evaluated at once. */
  #startTimer(): void {
    void this.tick();
    const every = this.#o.tickIntervalMs ?? 1000;
    if (every > 0 && this.#timer === null && !this.#stopping) {
      this.#timer = setInterval(() => void this.tick(), every);
      this.#timer.unref();
    }
  }

  /** What this gateway does as a replica, leading or following (gateway/replica/replica.ts). */
  #replicaHooks(): import('./replica/replica.ts').ReplicaHooks {
    return {
      lead: async () => {
        // What the last leader committed is the truth now: the engine starts from it, and from the
        // pushed manifests it committed (a push writes the whole set: one this replica was never
        // told of, its leader gone before it notified, would be dropped by the next). A view read
        // still out was taken before the last leader's latest commits: it lands first, never after.
        while (this.#viewReading) await this.#viewReading;
        await this.#rollouts.load();
        this.#manifests.reset(await loadPushedManifests(this.#store, this.#o.dataDir ?? null));
        this.#startTimer();
      },
      resume: async () => {
        // The broker link is up (elect() comes after it): what was being sent when the last
        // leader stopped goes again (once per device session).
        const online = this.#external?.links.flatMap((l) => l.broker.onlineDevices()) ?? [];
        for (let i = 0; i < online.length && this.#replica?.leading; i += 200) {
          await Promise.all(online.slice(i, i + 200).map((id) => this.#tasks.track(this.#ingest.onSubscribe(id, deviceTopic(id, 'bundle')))));
        }
      },
      follow: (reason) => {
        if (this.#timer) clearInterval(this.#timer);
        this.#timer = null;
        this.#log.warn({ reason }, 'replica: no longer leading; the engine stopped here');
        this.#readView();
      },
      handle: (id, kind, payload) => {
        if (kind === 'state') this.#delivery.newSession(id);
        return this.#ingest.onMessage(id, kind, payload);
      },
      perform: (method, args) => this.#perform(method, args),
      changed: () => this.#readView(),
    };
  }

  /** A follower's rollouts, read again from the database (one read at a time, another after it when asked meanwhile). */
  #readView(): Promise<void> {
    if (this.#viewReading) {
      this.#viewAgain = true;
      return this.#viewReading;
    }
    this.#viewReading = (async () => {
      try {
        do {
          this.#viewAgain = false;
          if (this.#replica?.leading) break;
          await this.#rollouts.load(true);
          // The manifests the leader took (pushManifest) count here too: pre-flight, health checks.
          this.#manifests.reset(await loadPushedManifests(this.#store, this.#o.dataDir ?? null));
        } while (this.#viewAgain);
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'replica: reading the rollouts failed');
      } finally {
        this.#viewReading = null;
      }
    })();
    return this.#viewReading;
  }

  /**
   * A rollout action: performed here when this gateway runs the engine, else forwarded to the
   * leading replica (docs/architecture.md §8), whose answer is returned once this replica's
   * rollouts show it.
   */
  async #leader<T>(method: RolloutAction, args: unknown[]): Promise<T> {
    const replica = this.#replica;
    if (replica?.leading) await replica.taken();
    if (replica === null || replica.leading) return (await this.#perform(method, args)) as T;
    const result = (await replica.forward(method, args)) as T;
    await this.#readView();
    if (this.#viewReading) await this.#viewReading;
    return result;
  }

  #perform(method: string, a: unknown[]): Promise<unknown> {
    const r = this.#rollouts;
    const [x, y, z, w] = a as [never, never, never, never];
    switch (method as RolloutAction) {
      case 'create':
        return r.create(x, y);
      case 'start':
        return r.start(x, y);
      case 'approve':
        return r.approve(x, y);
      case 'pause':
        return r.pause(x, y);
      case 'resume':
        return r.resume(x, y, z, w);
      case 'abort':
        return r.abort(x, y, z);
      case 'rollback':
        return r.rollback(x, y, z);
      case 'pushManifest':
        return this.#manifestPart.push(x, y, z ?? {}).then((out) => {
          if (out.status !== 'unchanged') this.#replica?.changed();
          return out;
        });
    }
    return Promise.reject(new Error(`unknown rollout action ${JSON.stringify(method)}`));
  }

  /** The embedded broker, or the external one's client (docs/architecture.md §8). */
  async #startBroker(o: GatewayOptions, ingest: Ingest, tasks: Tasks): Promise<void> {
    const gw = this;
    if (o.broker) {
      gw.#broker = gw.#external = await ExternalBrokers.start(brokerLinks(o).map((l) => ({ logger: gw.#log, ...l })), {
        // Replicas: presence is every replica's, but only the leader acts on it (it resends at takeover).
        onConnect: (id) => gw.#engineHere() && ingest.onConnect(id),
        onDisconnect: (id) => gw.#engineHere() && ingest.onDisconnect(id),
        onSubscribe: (id, filter) => void (gw.#engineHere() && tasks.track(ingest.onSubscribe(id, filter))),
        onReport: (id) => gw.#delivery.newSession(id),
        // The promise goes back to the client, which acknowledges the broker once it resolved:
        // once committed (docs/architecture.md §7, §8); a rejection leaves the message unacknowledged.
        // Replicas: a follower commits it for the leader (gateway/replica/inbox.ts).
        onMessage: (id, kind, payload) => (gw.#replica ? gw.#replica.message(id, kind, payload) : ingest.onMessage(id, kind, payload)),
      });
    } else gw.#broker = await DeviceBroker.start({
      host: o.host ?? '127.0.0.1',
      port: o.mqttPort ?? 1883,
      plain: o.mqttPlain,
      maxKeepaliveSeconds: o.maxKeepaliveSeconds,
      tls: o.tls,
      websocket: o.websocket,
      maxPayloadBytes: o.maxPayloadBytes,
      logger: gw.#log,
      authenticate: (id, token) => gw.#devices.authenticate(id, token),
      onConnect: (id) => ingest.onConnect(id),
      onDisconnect: (id) => ingest.onDisconnect(id),
      onSubscribe: (id, filter) => tasks.track(ingest.onSubscribe(id, filter)),
      // The promise goes back to the broker, which reads the device's next packets once it settles.
      // Before the PUBACK: resolved once committed, rejected when it could not be (docs/architecture.md §7).
      onMessage: (id, kind, payload) => ingest.onMessage(id, kind, payload),
    });
  }

  /** Whether this process runs the engine: always without replicas; with them, while it leads. */
  #engineHere(): boolean {
    return !this.#replicated || (this.#replica?.leading ?? false);
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
    await this.#tasks.settled();
  }

  /** Device tasks in flight now. */
  get pendingTasks(): number {
    return this.#tasks.size;
  }

  /** Resolves once every change made so far is committed (each is, before it is answered: this waits for the tasks in flight). */
  async flush(): Promise<void> {
    await this.#tasks.current();
  }

  /** Stops the timer and the broker, waits for work in flight, and flushes the store. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = null;
      await this.#broker?.close();
      await this.#tasks.current();
      // The lock goes with this connection: a follower takes over at its next try.
      await this.#replica?.close();
      await this.#sessions?.close().catch(() => undefined);
      await this.#webhooks?.close();
      await this.#store.close();
      this.#log.debug({}, 'gateway stopped');
    })();
    return this.#stopping;
  }

  /** The real MQTT ports (useful with port 0). */
  get ports() {
    return this.#broker.ports;
  }

  /** The URL devices connect to: the external broker's, or `mqttDeviceUrl`, or the plain MQTT URL, or the TLS one when the plain listener is off. */
  get mqttUrl(): string {
    return this.mqttUrlVia(undefined);
  }

  /** `mqttUrl` as told to a caller whose request came in on local address `via`: on a wildcard listen, that address (gateway/device-url.ts). */
  mqttUrlVia(via: string | undefined): string {
    if (this.#external) return this.#external.deviceUrl;
    return embeddedMqttUrl({ deviceUrl: this.#o.mqttDeviceUrl, host: this.#o.host ?? '127.0.0.1', ports: this.#broker.ports, via });
  }

  /** The signing key's public half and kid, for `GET /v1/info` and simulators; null on an upload-only gateway. */
  get signing(): { kid: string; publicKey: Uint8Array; publicPem: string } | null {
    return this.#key && { kid: hex(this.#key.kid), publicKey: this.#key.publicKey, publicPem: spkiPemFromRaw(this.#key.publicKey) };
  }

  /** The brokers devices are provisioned onto (external broker mode), by the URL devices are given; empty on the embedded broker. */
  get brokers(): readonly string[] {
    return this.#external?.brokers ?? [];
  }

  /** `external` when devices connect to a broker the gateway is a client of (docs/architecture.md §8), `embedded` otherwise. */
  get brokerMode(): 'embedded' | 'external' {
    return this.#external ? 'external' : 'embedded';
  }

  /** Replicas (docs/architecture.md §8): this replica's id (its broker client id) and whether it leads (has taken over: read what the last leader committed); null without replicas. */
  get replica(): ({ id: string; leader: boolean; terms: number } & ReturnType<Replica['counters']>) | null {
    const r = this.#replica;
    return r && { id: r.id, leader: r.ready, terms: r.terms, ...r.counters() };
  }

  /** Where the console's sessions live when the store is PostgreSQL (shared by every replica); null: the HTTP server keeps them in memory. */
  get consoleSessions(): PgSessionStore | null {
    return this.#sessions;
  }

  /** Where the ids of the rollouts' live streams come from when the store is PostgreSQL (one sequence for every replica); null: the clock's, per process. */
  get eventIds(): PgEventIds | null {
    return this.#eventIds;
  }

  /** Replicas: device messages followers committed that the leader has not handled yet; null without replicas. */
  replicaInbox(): Promise<number | null> {
    return this.#replica?.inboxWaiting() ?? Promise.resolve(null);
  }

  get store(): ChangeStore {
    return this.#store;
  }

  /** Whether the store can write, its last error, its last durable write and its figures (for /readyz and /metrics). */
  storeStatus(): StoreStatus {
    return this.#store.status();
  }

  /** The bundle of the group's last completed rollout, or null. */
  baseline(group: string): Promise<string | null> {
    return baselineOf(this.#store, group);
  }

  isConnected(id: string): boolean {
    return this.#broker.isConnected(id);
  }

  connectedCount(): number {
    return this.#broker.connectedCount();
  }

  counters(): GatewayCounters {
    const writes = this.#store.status().writes;
    return { ...this.#ingest.counters(), bundlesSent: this.#delivery.sent, broker: this.#broker.counters(), storeWrites: writes, atRisk: this.#rollouts.atRisk };
  }

  /**
   * Calls `listener` with a rollout's id whenever the gateway persists that rollout's record (every
   * operator action, every ack or hold that changed it); returns the function that removes it. The
   * listener must be cheap and must not throw: it runs on the per-ack path (the console's event
   * streams only mark the rollout changed, and send at their own pace).
   */
  onRolloutChange(listener: (rolloutId: string) => void): () => void {
    return this.#rollouts.onChange(listener);
  }

  /** A manifest as the config gives it (tests): it wins over pushed ones. */
  addManifest(m: FirmwareManifest): void {
    this.#manifests.configure(m);
  }

  // ---------------------------------------------------------------- firmware manifests (docs/architecture.md §4)

  /**
   * Takes a pushed manifest (manifests.ts): validated as `pinwave manifest validate` does, refused
   * when the config has a different one of its model and firmware (and, with `replace: false`, when
   * a pushed one differs), a no-op when identical.
   */
  pushManifest(value: unknown, actor: string, o: { replace?: boolean } = {}): Promise<ManifestPush> {
    // docs/architecture.md §8: pushed on the leader, one at a time (each push writes the whole set),
    // and read again by every follower when the leader says so.
    return this.#leader('pushManifest', [value, actor, o]);
  }

  /** Every manifest the gateway knows, the config's first. */
  listManifests(): KnownManifest[] {
    return this.#manifestPart.list();
  }

  // ---------------------------------------------------------------- devices (devices.ts)

  /**
   * Provisions devices, all or nothing: an invalid entry is PW_INVALID naming it, an id that exists
   * already is PW_CONFLICT naming it, and then nothing is stored. Tokens are returned this once.
   */
  provision(list: ProvisionInput[]): Promise<{ devices: Array<{ id: string; token: string; broker?: string }> }> {
    return this.#devices.provision(list);
  }

  /**
   * A device's message as the broker hands it over, before its PUBACK: resolves once what it changed
   * is committed (docs/architecture.md §7). The path without sockets, for scripts/bench-ingest.
   */
  deviceMessage(id: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
    return this.#ingest.onMessage(id, kind, payload);
  }

  getDevice(id: string): Promise<DeviceRecord> {
    return this.#devices.get(id);
  }

  listDevices(query: DeviceQuery): Promise<Page<DeviceRecord>> {
    return this.#devices.list(query);
  }

  /** A new token for a device; the old one is refused from now on and its sessions are closed. */
  rotateToken(id: string): Promise<{ id: string; token: string }> {
    return this.#devices.rotateToken(id);
  }

  /** Revokes a device: disconnected at once and refused after. */
  revoke(id: string): Promise<DeviceRecord> {
    return this.#devices.revoke(id);
  }

  // ---------------------------------------------------------------- bundles (bundles.ts)

  /** Signs a bundle for a group with the next seq (never reused) and stores it; PW_NO_SIGNING_KEY on an upload-only gateway. */
  createBundle(input: BundleInput, actor: string): Promise<BundleRecord> {
    return this.#bundles.create(input, actor);
  }

  /** Takes a bundle signed elsewhere, when a device of its group would (bundles.ts upload); PW_UPLOAD_REFUSED with the verifier's reason otherwise. */
  uploadBundle(input: { group: string; bytes: Uint8Array }, actor: string): Promise<BundleRecord & { kid: string; signedBy: string }> {
    return this.#bundles.upload(input, actor);
  }

  getBundle(id: string): Promise<BundleRecord> {
    return this.#bundles.get(id);
  }

  /** A page of bundles in id order, optionally of one group. */
  listBundles(query: BundleQuery = {}): Promise<Page<BundleRecord>> {
    return this.#bundles.list(query);
  }

  /** The decoded content of a stored bundle. */
  decodedBundle(id: string): Promise<{ record: BundleRecord; bundle: PinBundle }> {
    return this.#bundles.decoded(id);
  }

  /** A bundle id from a whole id or a unique prefix of at least 8 hex digits: PW_INVALID (too short), PW_NOT_FOUND, or PW_AMBIGUOUS naming the candidates. */
  resolveBundleId(input: string): Promise<string> {
    return this.#bundles.resolveId(input);
  }

  /** The bundle's pins against what its group runs now: its baseline (gateway/pin-diff.ts), or nothing. */
  bundleDiff(id: string): Promise<PinDiff> {
    return this.#bundles.diff(id);
  }

  // ---------------------------------------------------------------- rollouts (rollouts.ts)

  /** Creates a rollout after a pre-flight check; with `start`, starts it too. */
  createRollout(input: RolloutInput, actor: string): Promise<{ rollout: RolloutSummary; preflight: Preflight; deadlineFit?: DeadlineFit }> {
    return this.#leader('create', [input, actor]);
  }

  startRollout(id: string, actor: string): Promise<RolloutSummary> {
    return this.#leader('start', [id, actor]);
  }

  /** An operator other than its creator agrees to a pending rollout that asked for approval (docs/architecture.md §10). */
  approveRollout(id: string, actor: string): Promise<RolloutSummary> {
    return this.#leader('approve', [id, actor]);
  }

  pauseRollout(id: string, actor: string): Promise<RolloutSummary> {
    return this.#leader('pause', [id, actor]);
  }

  /** `scope`: the new thresholds are for the held wave only (default), or for it and every wave after it. */
  resumeRollout(id: string, actor: string, changes: Partial<WaveThresholds> = {}, scope: ResumeScope = 'held'): Promise<RolloutSummary> {
    return this.#leader('resume', [id, actor, changes, scope]);
  }

  abortRollout(id: string, actor: string, reason = 'operator'): Promise<RolloutSummary> {
    return this.#leader('abort', [id, actor, reason]);
  }

  /**
   * Rolls back: the previous pins (on a group's first rollout, the manifests' initial pins), signed
   * again with a higher seq, or the uploaded `bundle`, to every device the rollout reached.
   */
  rollback(id: string, actor: string, opts: { bundle?: string } = {}): Promise<{ aborted: RolloutSummary; rollback: RolloutSummary }> {
    return this.#leader('rollback', [id, actor, opts]);
  }

  async getRollout(id: string): Promise<RolloutSummary & { createdBy: string; previousBundle: string | null; rollbackOf?: string; rolledBackBy?: string; approval?: ApprovalState; gatesBypassed?: BypassedGate[] }> {
    return this.#rollouts.describe(id);
  }

  listRollouts(state?: string): Promise<RolloutSummary[]> {
    return this.#rollouts.list(state);
  }

  /** The device's latest rollout that is not aborted, and where the device stands in it; null when none. */
  deviceRollout(deviceId: string): { id: string; state: RolloutState; status: DeviceStatus; wave: number; reason?: string; at: number | null } | null {
    return this.#rollouts.deviceRollout(deviceId);
  }

  /** Rollouts by state, the waves standing held, members by status, rollouts at risk: O(rollouts × waves), for metrics. */
  rolloutCounts(): RolloutGauges {
    return this.#rollouts.counts();
  }

  /** A rollout id from a whole id or a unique prefix of at least 8 characters; errors as resolveBundleId. */
  resolveRolloutId(input: string): string {
    return this.#rollouts.resolveId(input);
  }

  /** Evaluates deadlines and soaks of running rollouts; called by the timer, or by tests with an injected clock (await it: it resolves once what it decided is committed). */
  tick(): Promise<void> {
    if (!this.#engineHere()) return Promise.resolve();
    return this.#rollouts.tick();
  }

  // ---------------------------------------------------------------- support queries and telemetry

  /** Devices not on the target seq, each with why, oldest first. */
  /** The lockout forecast (gateway/support.ts, gateway/forecast.ts). */
  forecast(...args: Parameters<Support['forecast']>): ReturnType<Support['forecast']> {
    return this.#support.forecast(...args);
  }

  stuck(query: { group?: string; rollout?: string }): Promise<StuckDevice[]> {
    return this.#support.stuck(query);
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

  // ---------------------------------------------------------------- alerts

  /** Alert deliveries for /metrics; null without webhooks. */
  webhookCounters(): WebhookCounters | null {
    return this.#webhooks?.counters() ?? null;
  }

  /** Resolves once every alert raised so far has been delivered or given up on (tests). */
  webhooksIdle(): Promise<void> {
    return this.#webhooks?.idle() ?? Promise.resolve();
  }
}

/** The rollout actions a follower replica forwards to the leader (gateway/replica/actions.ts). */
type RolloutAction = 'create' | 'start' | 'approve' | 'pause' | 'resume' | 'abort' | 'rollback' | 'pushManifest';

function dataDirOf(o: GatewayOptions): string {
  if (typeof o.dataDir !== 'string' || o.dataDir === '') throw new TypeError('expected dataDir (the embedded store), storeUrl (PostgreSQL) or store');
  return o.dataDir;
}

/** The external brokers a gateway is given, as a list (one, or several: docs/architecture.md §8). */
function brokerLinks(o: GatewayOptions): readonly ExternalTransportOptions[] {
  return o.broker === undefined ? [] : ((Array.isArray(o.broker) ? o.broker : [o.broker]) as readonly ExternalTransportOptions[]);
}
