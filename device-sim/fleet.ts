// The fleet runner: thousands of simulated devices in one process, of several
// models and firmware manifests, each a real MQTT client, behaving as their model's behaviours and
// the seed say. What would otherwise be a timer per device (periodic call-home pin checks, offline
// periods, reboots, reconnects, ack delays, a reconnect storm) is one entry each in one shared
// Scheduler: one armed timer for the whole fleet. Connects are ramped, N per tick. Signature
// verification and TLS handshakes are shared across devices unless `verifyEach`/`handshakeEach`.
// A model whose manifest declares a health check runs provisional apply (docs/pin-safety.md) on each
// device, its retries and deadline on the same scheduler and its handshakes real and fresh; a share
// of a model's devices can run older firmware without one (`withoutHealthCheck`).
//
//   const fleet = new Fleet({
//     url: 'mqtt://127.0.0.1:1883',
//     models: [{ manifest: th100 }, { manifest: sm200, behaviours: { silentRate: 0.02 } }],
//     devices: credentials.map((c, i) => ({ ...c, group: 'thermostats', model: i % 2 ? 'sm-200' : 'th-100' })),
//     endpoints: [api.callHome], callHomeSeconds: 60, seed: 'demo',
//   });
//   await fleet.start();          // resolves once every device has been given its first connect
//   fleet.summary();              // { connected, seqs: { '0': 990, '1': 10 }, acked, rejected: { apply_failed: 2 }, failing, ... }
//   await fleet.stop();
import { endpointText, healthCheckOf, initialState, type AckReason, type EndpointRef, type FirmwareManifest, type TrustState } from '../firmware-manifest/index.ts';
import { checkBehaviours, mulberry32, planDevice, seedOf, type Behaviours, type DevicePlan } from './behaviours.ts';
import { BundleVerifier, SimDevice, type DeviceOutcome, type VerifyCounters } from './device.ts';
import { Handshakes, type CallHomeEndpoint, type HandshakeCounters } from './handshakes.ts';
import { emptyHistogram, record, type Histogram } from './latency.ts';
import { MemoryStateStore, type StateStore } from './state-store.ts';
import { TIMER_MAX_MS } from './timer-limit.ts';

/** Where the scheduler's time comes from; tests pass a manual clock. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Wall-clock timers; unref'd, so a scheduled reconnect never keeps a finished process alive. */
export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface Task {
  at: number;
  fn: () => void;
  /** insertion order: equal times run first in, first out */
  n: number;
  cancelled: boolean;
}

/** A binary min-heap of tasks behind one timer armed for the earliest. Cancelled tasks are skipped when they surface. */
export class Scheduler {
  readonly #timers: Timers;
  readonly #heap: Task[] = [];
  #n = 0;
  #handle: unknown = null;
  #armedAt = Infinity;

  constructor(timers: Timers = realTimers) {
    this.#timers = timers;
  }

  now(): number {
    return this.#timers.now();
  }

  /** Tasks waiting (cancelled ones included until they surface). */
  get size(): number {
    return this.#heap.length;
  }

  at(at: number, fn: () => void): Task {
    const task: Task = { at, fn, n: this.#n++, cancelled: false };
    this.#push(task);
    this.#arm();
    return task;
  }

  after(ms: number, fn: () => void): Task {
    return this.at(this.now() + Math.max(0, ms), fn);
  }

  cancel(task: Task | null | undefined): void {
    if (task) task.cancelled = true;
  }

  delay(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** Drops every task and the timer. */
  clear(): void {
    for (const t of this.#heap) t.cancelled = true;
    this.#heap.length = 0;
    this.#disarm();
  }

  #arm(): void {
    const top = this.#heap[0];
    if (!top) return this.#disarm();
    if (top.at >= this.#armedAt && this.#handle !== null) return;
    this.#disarm();
    this.#armedAt = top.at;
    // Node fires a timeout over 2^31 - 1 ms at once; a far task is re-armed for when the timer fires.
    this.#handle = this.#timers.setTimeout(() => this.#run(), Math.min(TIMER_MAX_MS, Math.max(0, top.at - this.now())));
  }

  #disarm(): void {
    if (this.#handle !== null) this.#timers.clearTimeout(this.#handle);
    this.#handle = null;
    this.#armedAt = Infinity;
  }

  #run(): void {
    this.#handle = null;
    this.#armedAt = Infinity;
    const now = this.now();
    while (this.#heap.length > 0 && this.#heap[0].at <= now) {
      const task = this.#pop()!;
      if (task.cancelled) continue;
      task.cancelled = true; // ran: a later cancel() is a no-op
      task.fn();
    }
    this.#arm();
  }

  #less(a: Task, b: Task): boolean {
    return a.at < b.at || (a.at === b.at && a.n < b.n);
  }

  #push(task: Task): void {
    const h = this.#heap;
    h.push(task);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  #pop(): Task | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l], h[m])) m = l;
        if (r < h.length && this.#less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/** A device model in the fleet: its firmware manifest (initial trust state) and how its devices behave. */
export interface FleetModel {
  manifest: FirmwareManifest;
  behaviours?: Behaviours;
  /**
   * A share (0..1) of the model's devices run older firmware with no health check, though the manifest
   * declares one: they commit at once and ack `applied`, and say `firmware` (default the manifest's) in
   * their state. Drawn per device from the seed.
   */
  withoutHealthCheck?: { share: number; firmware?: string };
}

/** One device to run: provisioned already (its id and token), of a model in `models`, in a group. */
export interface FleetDevice {
  id: string;
  token: string;
  model: string;
  group: string;
  /** the broker this device was provisioned with (mqtt://HOST:PORT); default the fleet's `url` */
  url?: string;
}

export interface FleetOptions {
  /** mqtt://host:port of the gateway, or a function giving it at each connect */
  url: string | (() => string);
  models: FleetModel[];
  devices: FleetDevice[];
  /** behaviours are drawn from this; default 1 */
  seed?: string | number;
  /** endpoints every device calls home to over real TLS and checks against its pins; default none */
  endpoints?: CallHomeEndpoint[];
  /** how often each device calls home, seconds; 0 for never on a schedule; default 60 */
  callHomeSeconds?: number;
  /** a device calls home right after it applies a new bundle (its next connection uses the new pins); default true */
  callHomeOnApply?: boolean;
  /** repeats of one kind of pin failure are sent at most once per this many seconds; default 3600 */
  reportIntervalSeconds?: number;
  /**
   * How the first connects are ramped. Without `perSecond`: `perTick` started together, the next
   * tick once they settled and `tickMs` passed; default 200 per tick, 0 ms. With `perSecond`: connects
   * started at that rate, at most `perTick` in flight at once (a broker's listen backlog is finite:
   * Mosquitto's is 100).
   */
  ramp?: { perTick?: number; tickMs?: number; perSecond?: number };
  /** verify every bundle on every device, not once per (bytes, keys); default false */
  verifyEach?: boolean;
  /** a TLS handshake for every check, not one shared per endpoint within `handshakeWindowMs`; default false */
  handshakeEach?: boolean;
  /** default 1000 */
  handshakeWindowMs?: number;
  /** where the fleet's handshakes come from (a benchmark times them); default its own, as `handshakeEach` and `handshakeWindowMs` say */
  handshakes?: Handshakes;
  /** where devices keep their trust state; default in memory */
  store?: StateStore;
  /** device clocks (bundle expiry, iat), epoch ms; default Date.now */
  now?: () => number;
  /** the scheduler's time; default real timers */
  timers?: Timers;
  /** run only the devices of this shard (device index modulo count), for fleets split across processes */
  shard?: { index: number; count: number };
  /** MQTT keepalive, seconds; default 60 */
  keepaliveSeconds?: number;
  /** devices leave an `offline` will on their presence topic and publish `online` on connect (docs/architecture.md §5), `retained` on an external broker (§8); default true */
  presence?: boolean | 'retained';
  /** every device's client certificate and key (PEM), for a gateway that asks for one (mutual TLS); the token still names the device */
  clientCert?: { cert: string; key: string };
  /** called after each bundle a device handles */
  onOutcome?: (o: DeviceOutcome) => void;
}

export interface FleetSummary {
  devices: number;
  connected: number;
  /** devices dark on purpose now (an offline period, a reboot, a storm) */
  offline: number;
  /** devices on each seq (0: the firmware's initial pins) */
  seqs: Record<string, number>;
  /** devices whose last bundle they acked `applied` */
  acked: number;
  /** devices whose last bundle they rejected, by reason */
  rejected: Partial<Record<AckReason, number>>;
  /** devices whose last bundle they applied without acking (silent) */
  unacked: number;
  /** devices whose firmware has a health check */
  healthChecked: number;
  /** devices with a provisional window open now */
  verifying: number;
  /** devices whose last window ended `verified` (acked or not) */
  verified: number;
  /** devices whose last window ended `reverted`, by the endpoint that would have locked them out (host:port, an IPv6 one [::1]:443) */
  reverted: Record<string, number>;
  /** crashes between apply and ack so far */
  crashed: number;
  /** devices whose last pin check failed on an enforced pin set */
  failing: number;
  pinFailures: {
    /** handshakes that failed a pin check */
    observed: number;
    /** reports sent on `telemetry` (each standing for one or more failures) */
    reported: number;
    /** reports waiting for a link or their interval */
    queued: number;
  };
  /** `failed` by reason (the client's error, without the device id), so a run no device joined can say why; at most MAX_CONNECT_REASONS, the rest as "other" */
  connects: { ok: number; failed: number; reasons: Record<string, number> };
  verifications: VerifyCounters;
  handshakes: HandshakeCounters;
  /** latency histograms (latency.ts): a connect (CONNECT to its `state` acknowledged), a bundle (arrival to its ack acknowledged) */
  latency: { connect: Histogram; bundle: Histogram };
}

interface Member {
  device: SimDevice;
  spec: FleetDevice;
  plan: DevicePlan;
  /** reasons it is dark on purpose now (an offline period, a reboot, a storm); it is powered at 0 */
  dark: number;
  connecting: Promise<void> | null;
  retries: number;
  retry: Task | null;
  last: DeviceOutcome | null;
  failing: boolean;
}

const MAX_BACKOFF_MS = 30_000;
/** Distinct connect failure reasons a summary keeps apart (FleetSummary connects.reasons). */
const MAX_CONNECT_REASONS = 8;

export class Fleet {
  readonly #o: FleetOptions;
  readonly #scheduler: Scheduler;
  readonly #members: Member[] = [];
  readonly #byId = new Map<string, Member>();
  readonly #verifier: BundleVerifier;
  readonly #handshakes: Handshakes;
  readonly #endpoints: CallHomeEndpoint[];
  readonly #jitter: () => number;
  readonly #seed: string | number;
  #started = false;
  #stopping = false;
  #startedAt = 0;
  #storms = 0;
  readonly #counts = { crashed: 0, observed: 0, connectsOk: 0, connectsFailed: 0 };
  readonly #connectReasons: Record<string, number> = {};
  readonly #latency = { connect: emptyHistogram(), bundle: emptyHistogram() };

  constructor(o: FleetOptions) {
    this.#o = o;
    this.#seed = o.seed ?? 1;
    this.#scheduler = new Scheduler(o.timers ?? realTimers);
    this.#verifier = new BundleVerifier({ share: !o.verifyEach });
    this.#handshakes = o.handshakes ?? new Handshakes({ share: !o.handshakeEach, windowMs: o.handshakeWindowMs, now: () => this.#scheduler.now() });
    this.#endpoints = o.endpoints ?? [];
    // Reconnect backoff jitter: seeded too, so a run replays the same.
    this.#jitter = mulberry32(seedOf(`${this.#seed}\0fleet`));
    const models = new Map(o.models.map((m) => [m.manifest.model, m]));
    o.models.forEach((m, i) => {
      const bad = checkBehaviours(m.behaviours ?? {}, `/models/${i}/behaviours`);
      if (bad.length > 0) throw new Error(`model ${m.manifest.model}: ${bad.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
    });
    // One initial state per (model, group): trust states are never changed in place, only replaced.
    const initial = new Map<string, TrustState>();
    const store = o.store ?? new MemoryStateStore();
    const now = o.now ?? Date.now;
    const delay = (ms: number) => this.#scheduler.delay(ms);
    const windowTimers = { after: (ms: number, fn: () => void) => this.#scheduler.after(ms, fn), cancel: (h: unknown) => this.#scheduler.cancel(h as Task) };
    const dial = (e: EndpointRef) => this.#endpoints.find((x) => x.host.toLowerCase() === e.host && x.port === e.port) ?? { host: e.host, port: e.port };
    for (const m of o.models) {
      const share = m.withoutHealthCheck?.share;
      if (share !== undefined && !(share >= 0 && share <= 1)) throw new Error(`model ${m.manifest.model}: withoutHealthCheck.share must be a rate from 0 to 1, got ${share}`);
    }
    o.devices.forEach((spec, i) => {
      if (o.shard && i % o.shard.count !== o.shard.index) return;
      const model = models.get(spec.model);
      if (!model) throw new Error(`device ${spec.id}: model "${spec.model}" is not among the fleet's models (${[...models.keys()].join(', ')})`);
      const plan = planDevice(spec.id, model.behaviours ?? {}, this.#seed);
      const healthCheck = healthCheckOf(model.manifest);
      // Its own stream, so giving a model older firmware changes no other behaviour's draws.
      const older = healthCheck !== null && model.withoutHealthCheck !== undefined && mulberry32(seedOf(`${this.#seed}\0${spec.id}\0firmware`))() < model.withoutHealthCheck.share;
      const born = `${spec.model}\0${spec.group}`;
      if (!initial.has(born)) initial.set(born, initialState(model.manifest, spec.group));
      const m: Member = { device: null!, spec, plan, dark: 0, connecting: null, retries: 0, retry: null, last: null, failing: false };
      m.device = new SimDevice(
        {
          id: spec.id,
          token: spec.token,
          url: spec.url ?? o.url,
          model: model.manifest.model,
          firmware: older ? (model.withoutHealthCheck?.firmware ?? model.manifest.firmware) : model.manifest.firmware,
          store,
          healthCheck: older ? null : healthCheck,
          handshakes: this.#handshakes,
          dial,
          windowTimers,
          now,
          verify: this.#verifier.verify,
          quirks: { silent: plan.silent, flashFails: plan.flashFails, crashBeforeAck: plan.crashBeforeAck, ackDelayMs: plan.ackDelayMs, clockSkewSeconds: plan.clockSkewSeconds },
          onOutcome: (out) => this.#onOutcome(m, out),
          onLinkLost: () => this.#retryLater(m),
          delay,
          reportIntervalSeconds: o.reportIntervalSeconds,
          keepaliveSeconds: o.keepaliveSeconds,
          presence: o.presence,
          ...(model.manifest.gatewayCa !== undefined && { ca: model.manifest.gatewayCa }),
          ...(o.clientCert !== undefined && { clientCert: o.clientCert }),
        },
        { ...initial.get(born)!, acceptedVersions: plan.acceptedVersions },
      );
      if (this.#byId.has(spec.id)) throw new Error(`device ${spec.id} appears twice`);
      this.#members.push(m);
      this.#byId.set(spec.id, m);
    });
  }

  get devices(): SimDevice[] {
    return this.#members.map((m) => m.device);
  }

  device(id: string): SimDevice | undefined {
    return this.#byId.get(id)?.device;
  }

  plan(id: string): DevicePlan | undefined {
    return this.#byId.get(id)?.plan;
  }

  get scheduler(): Scheduler {
    return this.#scheduler;
  }

  /**
   * Schedules every behaviour and ramps the connects: `perTick` at a time, each tick waiting for its
   * connects to settle and then `tickMs`. Resolves when every device that starts online has made its
   * first attempt (a refused or failed one is retried with backoff).
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('the fleet is started already');
    this.#started = true;
    this.#startedAt = this.#scheduler.now();
    const s = this.#scheduler;
    const period = (this.#o.callHomeSeconds ?? 60) * 1000;
    const first: Member[] = [];
    for (const m of this.#members) {
      const { offline, storm } = m.plan;
      if (offline) {
        // dark from the start: never connected by the ramp
        if (offline.atMs === 0) m.dark++;
        else s.at(this.#startedAt + offline.atMs, () => this.#powerOff(m));
        s.at(this.#startedAt + offline.atMs + offline.forMs, () => this.#powerOn(m));
      }
      if (storm) s.at(this.#startedAt + storm.atMs, () => this.#drop(m, storm.delayMs));
      if (this.#endpoints.length > 0 && period > 0) this.#scheduleCallHome(m, this.#startedAt + m.plan.callHomePhase * period, period);
      if (m.dark === 0) first.push(m);
    }
    const perTick = Math.max(1, this.#o.ramp?.perTick ?? 200);
    const perSecond = this.#o.ramp?.perSecond;
    if (perSecond !== undefined) return this.#rampAt(first, perSecond, perTick);
    const tickMs = this.#o.ramp?.tickMs ?? 0;
    for (let i = 0; i < first.length && !this.#stopping; i += perTick) {
      await Promise.all(first.slice(i, i + perTick).map((m) => this.#bringUp(m)));
      if (tickMs > 0 && i + perTick < first.length) await s.delay(tickMs);
    }
  }

  /** Starts connects at `perSecond` (in steps of at least 10 ms), never more than `inFlight` unsettled; resolves once all have settled. */
  async #rampAt(first: Member[], perSecond: number, inFlight: number): Promise<void> {
    if (!(perSecond > 0)) throw new RangeError(`expected ramp.perSecond to be above 0, got ${perSecond}`);
    const step = Math.max(1, Math.ceil(perSecond / 100));
    const stepMs = (step / perSecond) * 1000;
    const pending = new Set<Promise<void>>();
    const t0 = this.#scheduler.now();
    for (let i = 0; i < first.length && !this.#stopping; i += step) {
      const due = t0 + (i / step) * stepMs;
      if (due > this.#scheduler.now()) await this.#scheduler.delay(due - this.#scheduler.now());
      for (const m of first.slice(i, i + step)) {
        while (pending.size >= inFlight) await Promise.race(pending);
        const p = this.#bringUp(m).finally(() => pending.delete(p));
        pending.add(p);
      }
    }
    await Promise.all(pending);
  }

  /** Disconnects every device cleanly (DISCONNECT, not a drop) and drops every scheduled task. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#scheduler.clear();
    await Promise.all(this.#members.map((m) => m.connecting));
    await Promise.all(this.#members.map((m) => m.device.disconnect().catch(() => {})));
  }

  /** Every powered device calls home now (sharing handshakes as configured). */
  async callHome(): Promise<void> {
    await Promise.all(this.#members.filter((m) => m.dark === 0).map((m) => this.#check(m)));
  }

  /** Forgets shared handshake results (an endpoint changed its key and checks must see it at once). */
  forgetHandshakes(): void {
    this.#handshakes.forget();
  }

  /** A reconnect storm now: `rate` of the connected devices drop their links at once and reconnect within `spreadMs`. */
  storm(rate: number, spreadMs = 0): number {
    const u = mulberry32(seedOf(`${this.#seed}\0storm\0${this.#storms++}`));
    let dropped = 0;
    for (const m of this.#members) {
      const hit = u() < rate;
      const delayMs = u() * spreadMs;
      if (hit && m.device.connected) {
        this.#drop(m, delayMs);
        dropped++;
      }
    }
    return dropped;
  }

  /** Waits until every device has handled the bundles it has received. */
  async idle(): Promise<void> {
    await Promise.all(this.#members.map((m) => m.device.idle()));
  }

  summary(): FleetSummary {
    const seqs: Record<string, number> = {};
    const rejected: Partial<Record<AckReason, number>> = {};
    let connected = 0;
    let offline = 0;
    let acked = 0;
    let unacked = 0;
    let healthChecked = 0;
    let verifying = 0;
    let verified = 0;
    const reverted: Record<string, number> = {};
    let failing = 0;
    let queued = 0;
    let reported = 0;
    for (const m of this.#members) {
      const d = m.device;
      // counted once its connect has finished: subscribed, its state sent
      if (d.connected && !m.connecting) connected++;
      if (m.dark > 0) offline++;
      const seq = String(d.state.seq);
      seqs[seq] = (seqs[seq] ?? 0) + 1;
      if (m.failing) failing++;
      if (d.healthCheck) healthChecked++;
      if (d.trust.window) verifying++;
      queued += d.pendingReports;
      reported += d.reportsSent;
      const last = m.last;
      if (!last || last.status === 'verifying') continue;
      if (last.status === 'rejected') rejected[last.reason!] = (rejected[last.reason!] ?? 0) + 1;
      else if (last.status === 'verified') verified++;
      else if (last.status === 'reverted' && last.ack?.status === 'reverted') {
        const where = endpointText(last.ack.endpoint.host, last.ack.endpoint.port);
        reverted[where] = (reverted[where] ?? 0) + 1;
      }
      else if (last.status === 'applied' && last.acked) acked++;
      else unacked++;
    }
    const c = this.#counts;
    return {
      devices: this.#members.length,
      connected,
      offline,
      seqs,
      acked,
      rejected,
      unacked,
      healthChecked,
      verifying,
      verified,
      reverted,
      crashed: c.crashed,
      failing,
      pinFailures: { observed: c.observed, reported, queued },
      connects: { ok: c.connectsOk, failed: c.connectsFailed, reasons: { ...this.#connectReasons } },
      verifications: this.#verifier.counters,
      handshakes: this.#handshakes.counters,
      latency: { connect: [...this.#latency.connect], bundle: [...this.#latency.bundle] },
    };
  }

  #bringUp(m: Member): Promise<void> {
    if (this.#stopping || m.dark > 0 || m.device.connected) return Promise.resolve();
    this.#scheduler.cancel(m.retry);
    m.retry = null;
    const t0 = performance.now();
    m.connecting ??= m.device
      .connect()
      .then(
        () => {
          m.retries = 0;
          this.#counts.connectsOk++;
          record(this.#latency.connect, performance.now() - t0);
          // Stopped, or dark again, while the CONNACK was on its way.
          if (this.#stopping || m.dark > 0) m.device.crash();
        },
        (err: unknown) => {
          this.#counts.connectsFailed++;
          this.#countReason(m, err);
          m.retries++;
          this.#retryLater(m);
        },
      )
      .finally(() => (m.connecting = null));
    return m.connecting;
  }

  #countReason(m: Member, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    let reason = message.startsWith(`${m.spec.id}: `) ? message.slice(m.spec.id.length + 2) : message;
    if (!(reason in this.#connectReasons) && Object.keys(this.#connectReasons).length >= MAX_CONNECT_REASONS) reason = 'other';
    this.#connectReasons[reason] = (this.#connectReasons[reason] ?? 0) + 1;
  }

  /** Exponential backoff with jitter, as firmware reconnects: 0.5 s, 1 s, 2 s … up to 30 s. */
  #retryLater(m: Member): void {
    if (this.#stopping || m.dark > 0 || m.retry) return;
    const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(m.retries, 16));
    m.retry = this.#scheduler.after(base * (0.5 + this.#jitter()), () => {
      m.retry = null;
      void this.#bringUp(m);
    });
  }

  #powerOff(m: Member): void {
    m.dark++;
    this.#scheduler.cancel(m.retry);
    m.retry = null;
    m.device.crash();
  }

  #powerOn(m: Member): void {
    m.dark = Math.max(0, m.dark - 1);
    if (m.dark === 0) void this.#bringUp(m);
  }

  /** Drops the link (a storm, a reboot) and comes back after `ms`, unless dark for another reason by then. */
  #drop(m: Member, ms: number): void {
    this.#powerOff(m);
    this.#scheduler.after(ms, () => this.#powerOn(m));
  }

  #onOutcome(m: Member, out: DeviceOutcome): void {
    if (out.status === 'crashed') {
      this.#counts.crashed++;
      // A reboot: dark for rebootMs, then the same device (the same flash) connects and says `state`.
      if (!this.#stopping) this.#drop(m, m.plan.rebootMs);
    } else {
      m.last = out;
      if (out.ms !== undefined) record(this.#latency.bundle, out.ms);
      // Its next connections use the pins it holds now: new ones after a commit, the old ones after a revert.
      const settled = out.status === 'applied' || out.status === 'verified' || out.status === 'reverted';
      if (settled && !out.unchanged && (this.#o.callHomeOnApply ?? true) && this.#endpoints.length > 0) void this.#check(m);
    }
    this.#o.onOutcome?.(out);
  }

  #scheduleCallHome(m: Member, at: number, period: number): void {
    this.#scheduler.at(at, () => {
      if (m.dark === 0) void this.#check(m);
      this.#scheduleCallHome(m, at + period, period);
    });
  }

  async #check(m: Member): Promise<void> {
    const checks = await m.device.callHome(this.#endpoints, this.#handshakes);
    let failing = false;
    for (const c of checks) {
      if (c.result === 'pin_mismatch' || c.result === 'report_only_mismatch') this.#counts.observed++;
      if (c.result === 'pin_mismatch') failing = true;
    }
    m.failing = failing;
  }
}
