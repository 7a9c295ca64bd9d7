// A simulated device: a real MQTT client running the same verification code firmware would
// (firmware-manifest/). It leaves a will of `offline` on its `presence` topic and publishes `online`
// there and `state` on every connect (docs/architecture.md §5), takes bundles from its bundle topic,
// applies them with applyVerified(), persists the new trust state, and only then acknowledges
// (docs/architecture.md §3: a crash between apply and ack is healed by the next `state`). It checks the chains
// its endpoints serve against its pins and reports pin failures on `telemetry`, deduplicated and
// queued while its link is down (docs/device-messages.md).
//
// With a health check (its firmware manifest's, docs/pin-safety.md) a bundle is applied provisionally
// by the pure machine of firmware-manifest/provisional.ts: the device persists the window, runs real
// TLS handshakes to the endpoints it checks (fresh ones: a shared result from before the bundle
// could not say what the endpoint serves now), and acks `verified`, `reverted` or `applied` when the
// window closes. A power cut (crash(), disconnect()) stops the window; the next connect resumes it
// from the store. The final ack is kept until the broker acknowledges it and resent on the next
// connect if it was not.
//
//   const d = new SimDevice({ id, token, url: 'mqtt://127.0.0.1:1883', model: 'th-100', firmware: '1.0.0', store }, initialState(manifest, 'thermostats'));
//   await d.connect();                                   // state goes out, bundles come in
//   await d.callHome([{ host: 'api.example.com', port: 443 }], new Handshakes());   // pin checks, telemetry
//   await d.disconnect();
import * as ed from '@noble/ed25519';
import mqtt, { type MqttClient } from 'mqtt';
import {
  ackDelivered,
  checkChain,
  encodeAck,
  encodeState,
  encodeTelemetry,
  observeHandshakes,
  provisionalStatus,
  receiveBundle,
  resumeWindow,
  tickWindow,
  trustedKeyBytes,
  trustOf,
  verifyBundle,
  wildcardMatches,
  type AckMessage,
  type AckReason,
  type AnyAck,
  type ChainCheck,
  type DeviceTrust,
  type EndpointRef,
  type HealthCheck,
  type Observation,
  type PinFailureReport,
  type Step,
  type TrustState,
  type VerifyResult,
} from '../firmware-manifest/index.ts';
import type { CallHomeEndpoint, HandshakeResult } from './handshakes.ts';
import type { StateStore } from './state-store.ts';

/** Checks a bundle's signature and shape for a device in `state`; the fleet may pass a shared, cached one. */
export type Verifier = (bytes: Uint8Array, state: TrustState) => VerifyResult;

/** What apply() does: verification with the device's own size limit and format versions, every time. */
export const verifyEach: Verifier = (bytes, state) => verifyBundle(bytes, trustedKeyBytes(state), { maxBytes: state.maxBundleBytes, acceptedVersions: state.acceptedVersions });

export interface VerifyCounters {
  /** signature verifications actually run */
  performed: number;
  /** bundles answered from the cache */
  shared: number;
}

/**
 * noble builds its table of base-point multiples, process-wide, on the first multiplication: a
 * one-off ~50 ms (several times that on a loaded machine) that would otherwise land on the first
 * bundle a fleet receives and hold up every device of the process behind it. Firmware has no such
 * cost (its table is in flash), so the simulator pays it when a verifier is made.
 */
let warmed = false;
function warmEd25519(): void {
  if (warmed) return;
  warmed = true;
  ed.getPublicKey(new Uint8Array(32));
}

/**
 * Verification as a pure function of (bundle bytes, trusted keys, accepted format versions), shared
 * across the devices that hold the same keys (~930 Ed25519 verifications a second on
 * one core, so 10k separate ones cost ~11 s of CPU). The size limit is checked per device first, as
 * apply() does, so the reasons are exactly apply()'s; every other per-device check (group, seq,
 * expiry) is applyVerified()'s. `share: false` (`--verify-each`) verifies every time.
 */
export class BundleVerifier {
  readonly #share: boolean;
  readonly #max: number;
  readonly #cache = new Map<string, VerifyResult>();
  readonly #counters: VerifyCounters = { performed: 0, shared: 0 };
  // Trust states are never changed in place: their key and version lists are read once per list.
  readonly #listIds = new WeakMap<readonly unknown[], string>();
  /** the last bundle answered (its own copy of the bytes), for the next device of the same wave */
  #last: { bytes: Buffer; keys: string; versions: string; result: VerifyResult } | null = null;

  constructor(o: { share?: boolean; cacheSize?: number } = {}) {
    this.#share = o.share ?? true;
    this.#max = Math.max(1, o.cacheSize ?? 256);
    warmEd25519();
  }

  get counters(): VerifyCounters {
    return { ...this.#counters };
  }

  readonly verify: Verifier = (bytes, state) => {
    if (!this.#share) {
      this.#counters.performed++;
      return verifyEach(bytes, state);
    }
    // Checked before anything else, as on a device: oversize input is never parsed.
    if (bytes.length > state.maxBundleBytes) return { ok: false, reason: 'too_large', detail: `bundle is ${bytes.length} bytes, the limit is ${state.maxBundleBytes}` };
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const keys = this.#listId(state.trustedKeys);
    const versions = this.#listId(state.acceptedVersions);
    // A wave brings the same bundle to every device in turn: compared with the last one first (a
    // memcmp), before a key is built and hashed.
    const last = this.#last;
    if (last && last.keys === keys && last.versions === versions && last.bytes.equals(buf)) {
      this.#counters.shared++;
      return last.result;
    }
    // The bundle's bytes themselves (a few hundred), not a hash of them: one string, no digest.
    const key = `${keys}|${versions}|${buf.toString('latin1')}`;
    const hit = this.#cache.get(key);
    if (hit) {
      this.#counters.shared++;
      // least recently used goes first
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      this.#last = { bytes: Buffer.from(buf), keys, versions, result: hit };
      return hit;
    }
    this.#counters.performed++;
    const result = verifyBundle(bytes, trustedKeyBytes(state), { maxBytes: Infinity, acceptedVersions: state.acceptedVersions });
    this.#cache.set(key, result);
    this.#last = { bytes: Buffer.from(buf), keys, versions, result };
    if (this.#cache.size > this.#max) this.#cache.delete(this.#cache.keys().next().value!);
    return result;
  };

  /** A list's contents as one string, computed once per list object. */
  #listId(list: readonly (string | number)[]): string {
    let id = this.#listIds.get(list);
    if (id === undefined) {
      id = JSON.stringify(list);
      this.#listIds.set(list, id);
    }
    return id;
  }
}

/**
 * encodeAck() shared across devices: a wave's devices send the same ack for the same bundle (the
 * same `applied`; the same `reverted`, naming the same endpoint, served pins and previous state; the
 * same `verified`), so its bytes are encoded once. The key is the ack's JSON: the encoding is a
 * function of exactly those fields, so equal keys mean equal bytes (a key order that differs only
 * misses the cache).
 */
const ackBytes = new Map<string, Buffer>();
const ACK_CACHE = 64;
export function sharedAck(ack: AnyAck): Buffer {
  // a bare `applied` (the common case) keys on its two fields; a JSON key starts with `{`, never a digit
  const key = ack.status === 'applied' && ack.detail === undefined && ack.unverified === undefined ? `${ack.seq}|${ack.bundleId}` : JSON.stringify(ack);
  let bytes = ackBytes.get(key);
  if (!bytes) {
    bytes = Buffer.from(encodeAck(ack));
    ackBytes.set(key, bytes);
    if (ackBytes.size > ACK_CACHE) ackBytes.delete(ackBytes.keys().next().value!);
  }
  return bytes;
}

/** What a device does beyond firmware's happy path: set by behaviours (behaviours.ts). */
export interface DeviceQuirks {
  /** never acknowledge (a silent device); it still applies */
  silent?: boolean;
  /** flash write fails: the bundle is rejected with apply_failed and the state is left as it was */
  flashFails?: boolean;
  /** crash after persisting, before acking: the connection drops and the ack is never sent */
  crashBeforeAck?: boolean;
  /** ms to wait between apply and ack: fixed, or a draw per ack */
  ackDelayMs?: number | (() => number);
  /** seconds the device clock is off (positive: ahead) */
  clockSkewSeconds?: number;
}

export interface SimDeviceOptions {
  id: string;
  token: string;
  /** mqtt://host:port of the gateway, or a function giving it at each connect */
  url: string | (() => string);
  model: string;
  firmware: string;
  /** where the trust state lives between restarts */
  store: StateStore;
  /** the clock, epoch ms; default Date.now */
  now?: () => number;
  /** signature verification; default verifyEach */
  verify?: Verifier;
  quirks?: DeviceQuirks;
  /** MQTT clean session; default false (a courtesy to the broker; delivery does not depend on it) */
  clean?: boolean;
  /**
   * Presence (docs/architecture.md §5, §8): a will of `offline` on the device's own `presence` topic
   * and `online` published there on every connect, QoS 1; `retained` for a broker the gateway does
   * not own (§8: a gateway that starts later reads who is online there), not retained otherwise
   * (the embedded broker knows its sessions); false for none. Default true (not retained)
   */
  presence?: boolean | 'retained';
  /** called after each bundle, with what the device decided */
  onOutcome?: (outcome: DeviceOutcome) => void;
  /** called when the link drops without the device asking (broker gone, kicked); not after crash() or disconnect() */
  onLinkLost?: () => void;
  /** ms to wait for CONNACK; default 10 s */
  connectTimeoutMs?: number;
  /** MQTT keepalive, seconds; default 60 */
  keepaliveSeconds?: number;
  /** the CA certificate (PEM) an mqtts:// gateway is checked against: the manifest's gatewayCa, never the bundle's pins */
  ca?: string;
  /** a client certificate and its key (PEM) for a gateway that asks for one (mutual TLS, configuration.md `mqtt.tls.requireClientCert`) */
  clientCert?: { cert: string; key: string };
  /** how the ack delay is waited out; default setTimeout (a fleet passes its shared scheduler) */
  delay?: (ms: number) => Promise<void>;
  /** repeats of one kind of pin failure are sent at most once per this many seconds (the first at once); default 3600 */
  reportIntervalSeconds?: number;
  /** the firmware's health check (healthCheckOf(manifest)); default none: a bundle is committed at once and acked `applied` */
  healthCheck?: HealthCheck | null;
  /** where a health check's handshakes come from; required with a health check */
  handshakes?: HandshakeSource;
  /** where to dial an endpoint a health check names (a local stand-in for a real host); default the host and port themselves */
  dial?: (endpoint: EndpointRef) => CallHomeEndpoint;
  /** waits out a provisional window's retries and deadline; default real, unref'd timers (a fleet passes its scheduler) */
  windowTimers?: WindowTimers;
}

/** One-shot timers for the provisional window. */
export interface WindowTimers {
  after(ms: number, fn: () => void): unknown;
  cancel(handle: unknown): void;
}

const realWindowTimers: WindowTimers = {
  after: (ms, fn) => setTimeout(fn, ms).unref(),
  cancel: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface DeviceOutcome {
  deviceId: string;
  bundleId: string | null;
  seq: number;
  /** `verifying`: a provisional window opened (its outcome follows); `verified`, `reverted`, `applied`: how a bundle ended */
  status: 'applied' | 'rejected' | 'crashed' | 'verifying' | 'verified' | 'reverted';
  reason?: AckReason;
  /** the bundle was the active one delivered again */
  unchanged?: boolean;
  /** an ack went out (false for a silent device, or a link that dropped) */
  acked?: boolean;
  /** the ack, with a revert's endpoint and served pins, a verification's endpoints checked */
  ack?: AnyAck;
  /** ms from the bundle's arrival to this outcome (its ack acknowledged by the broker, when one went), for an outcome the bundle decided at once */
  ms?: number;
}

/** What a call-home check found for one endpoint: checkChain's verdict, or `unreachable` when no handshake completed. */
export interface EndpointCheck {
  endpoint: CallHomeEndpoint;
  result: ChainCheck | 'unreachable';
  error?: string;
}

/** Where served chains come from: `Handshakes` (handshakes.ts) or anything with its shape. `fresh`: a handshake of its own, never a shared result. */
export interface HandshakeSource {
  get(endpoint: CallHomeEndpoint, o?: { fresh?: boolean }): Promise<HandshakeResult>;
}

/** Limits of the device's report queue and messages (docs/device-messages.md). */
const MAX_PENDING_KINDS = 256;
const REPORTS_PER_MESSAGE = 8;
const MAX_PINS = 16;
const MAX_TEXT = 256;

type PendingReport = Omit<PinFailureReport, 'counter'>;

export class SimDevice {
  readonly id: string;
  readonly #o: SimDeviceOptions;
  #client: MqttClient | null = null;
  /** per client, settles when its connection closes */
  readonly #gone = new WeakMap<MqttClient, Promise<void>>();
  /** per client, the publishes waiting for their PUBACK: answered false when its connection closes */
  readonly #inflight = new WeakMap<MqttClient, Set<(ok: boolean) => void>>();
  /** what flash holds: the active trust state, and with a health check its window and last outcome */
  #trust: DeviceTrust;
  readonly #healthCheck: HealthCheck | null;
  /** false from a power cut (crash, disconnect) until the next connect, which resumes an open window */
  #powered = false;
  /** counts power cycles: handshakes and timers of an earlier one are dropped */
  #boot = 0;
  #wake: unknown = null;
  #counter: number;
  #busy: Promise<void> = Promise.resolve();
  /** pin failures not yet sent, one per kind (endpoint, result, served pins, active bundle) */
  readonly #pending = new Map<string, PendingReport>();
  /** when each kind was last sent, device seconds */
  readonly #sentAt = new Map<string, number>();
  #flushing: Promise<number> = Promise.resolve(0);
  #droppedReports = 0;
  #reportsSent = 0;

  constructor(o: SimDeviceOptions, initial: TrustState) {
    this.id = o.id;
    this.#o = o;
    this.#healthCheck = o.healthCheck ?? null;
    if (this.#healthCheck && !o.handshakes) throw new TypeError(`${o.id}: a device with a health check needs a handshake source`);
    this.#trust = o.store.loadTrust(o.id) ?? trustOf(initial);
    // The report counter only goes up, across restarts too (the gateway drops a counter it has seen as a
    // redelivery). Kept in the store where it can be; otherwise it starts at the boot time in seconds,
    // above any a previous run of the same device could have reached at a report a second or fewer.
    this.#counter = o.store.loadCounter?.(o.id) ?? Math.floor((o.now ?? Date.now)() / 1000);
  }

  /** The active trust state: during a provisional window, the new one being verified. */
  get state(): TrustState {
    return this.#trust.active;
  }

  /** Everything flash holds: with a health check, the open window and the last window's outcome too. */
  get trust(): DeviceTrust {
    return this.#trust;
  }

  get healthCheck(): HealthCheck | null {
    return this.#healthCheck;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  get quirks(): DeviceQuirks {
    return (this.#o.quirks ??= {});
  }

  /** Pin-failure reports waiting to be sent (kinds, not failures). */
  get pendingReports(): number {
    return this.#pending.size;
  }

  /** Pin-failure reports sent so far (each standing for one or more failures). */
  get reportsSent(): number {
    return this.#reportsSent;
  }

  /** Kinds of pin failure dropped because the queue was full. */
  get droppedReports(): number {
    return this.#droppedReports;
  }

  /** Connects, subscribes to its bundle topic, publishes its state and sends queued reports. Rejects on a refused CONNECT. */
  async connect(): Promise<void> {
    if (this.#client) await this.disconnect();
    const url = typeof this.#o.url === 'function' ? this.#o.url() : this.#o.url;
    const client = mqtt.connect(url, {
      clientId: this.id,
      username: this.id,
      password: this.#o.token,
      clean: this.#o.clean ?? false,
      reconnectPeriod: 0,
      connectTimeout: this.#o.connectTimeoutMs ?? 10_000,
      keepalive: this.#o.keepaliveSeconds ?? 60,
      protocolVersion: 4,
      // mqtt.js logs through `debug` on every packet otherwise, enabled or not
      log: noLog,
      ...(this.#o.presence !== false && { will: { topic: this.#topic('presence'), payload: OFFLINE, qos: 1, retain: this.#o.presence === 'retained' } }),
      ...(this.#o.ca !== undefined && { ca: this.#o.ca }),
      ...(this.#o.clientCert !== undefined && { cert: this.#o.clientCert.cert, key: this.#o.clientCert.key }),
    });
    this.#client = client;
    const waiting = new Set<(ok: boolean) => void>();
    this.#inflight.set(client, waiting);
    const gone = new Promise<void>((resolve) =>
      client.once('close', () => {
        for (const answer of waiting) answer(false);
        waiting.clear();
        resolve();
      }),
    );
    this.#gone.set(client, gone);
    client.on('message', (_topic, payload) => {
      // One bundle at a time, in arrival order: apply is atomic and the state is the device's own.
      // A bundle that throws (a store that cannot write) is dropped unacked, as a device that resets would.
      const at = performance.now();
      this.#enqueue(() => this.#onBundle(payload, at));
    });
    client.on('error', () => {}); // surfaced through connect() or the 'close' that follows
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        client.removeListener('connect', ok);
        client.removeListener('close', closed);
        if (this.#client === client) this.#client = null;
        client.end(true);
        reject(err);
      };
      const closed = () => fail(new Error(`${this.id}: the connection closed before CONNACK`));
      const ok = () => {
        client.removeListener('error', fail);
        client.removeListener('close', closed);
        resolve();
      };
      client.once('connect', ok);
      client.once('error', fail);
      client.once('close', closed);
    });
    client.on('close', () => {
      // Only a drop nobody asked for: crash() and disconnect() let go of the client first.
      if (this.#client !== client) return;
      this.#client = null;
      this.#o.onLinkLost?.();
    });
    // `online` goes first, not waited for: the SUBSCRIBE and `state` queue behind it on the same link.
    if (this.#o.presence !== false) void this.#publish('presence', ONLINE, this.#o.presence === 'retained');
    // mqtt.js keeps a QoS 1 packet for a resend on the same client's reconnect, which never comes here:
    // without this race, a link that drops mid-SUBSCRIBE would leave connect() waiting forever.
    const subscribed = await Promise.race([client.subscribeAsync(this.#topic('bundle'), { qos: 1 }).then(() => true), gone.then(() => false)]);
    if (!subscribed) throw new Error(`${this.id}: the connection closed before SUBACK`);
    await this.publishState();
    const booted = !this.#powered;
    this.#powered = true;
    // After a power cut the window goes on from flash; an outcome the broker never acknowledged is sent again.
    if (booted && this.#trust.window) this.#enqueue(() => this.#onStep(resumeWindow(this.#trust, this.#nowSeconds())));
    const o = this.#trust.outcome;
    if (o && !o.delivered) this.#enqueue(() => this.#sendOutcome(o.ack, { unchanged: true }));
    await this.flushTelemetry();
  }

  /** A clean DISCONNECT; a broker that keeps in-flight acks waiting past 2 s gets the connection closed instead. */
  async disconnect(): Promise<void> {
    this.#powerOff();
    const c = this.#client;
    this.#client = null;
    if (!c) return;
    const force = setTimeout(() => c.end(true), 2000);
    try {
      // A clean DISCONNECT publishes no will: a retained `online` would outlive the device (§8).
      if (this.#o.presence === 'retained' && c.connected) await Promise.race([c.publishAsync(this.#topic('presence'), OFFLINE, QOS1_RETAINED).catch(() => {}), this.#gone.get(c)]);
      await Promise.race([c.endAsync(), this.#gone.get(c)]);
    } finally {
      clearTimeout(force);
    }
  }

  /** Drops the connection without a DISCONNECT packet, as a power cut or a crash would. */
  crash(): void {
    this.#powerOff();
    const c = this.#client;
    this.#client = null;
    c?.end(true);
  }

  /** Timers and handshakes in flight die with the power; flash (the store) is what survives. */
  #powerOff(): void {
    this.#powered = false;
    this.#boot++;
    if (this.#wake !== null) (this.#o.windowTimers ?? realWindowTimers).cancel(this.#wake);
    this.#wake = null;
  }

  /** Waits for the bundles received so far to be handled. */
  idle(): Promise<void> {
    return this.#busy;
  }

  async publishState(): Promise<void> {
    const s = this.#trust.active;
    const provisional = provisionalStatus(this.#trust);
    await this.#publish('state', encodeState({ seq: s.seq, bundleId: s.bundleId, firmware: this.#o.firmware, model: this.#o.model, keyEpoch: s.keyEpoch, time: this.#nowSeconds(), ...(provisional && { provisional }) }));
  }

  /** Publishes pin-failure reports as they are (no queue, no deduplication: see recordHandshake for those). */
  async publishTelemetry(reports: PinFailureReport[]): Promise<boolean> {
    if (reports.length === 0) return true;
    return this.#publish('telemetry', encodeTelemetry({ deviceId: this.id, group: this.#trust.active.group, firmware: this.#o.firmware, reports }));
  }

  /** The next per-device report counter (telemetry lets the gateway see gaps and redeliveries). */
  nextReportCounter(): number {
    this.#o.store.saveCounter?.(this.id, ++this.#counter);
    return this.#counter;
  }

  /**
   * Judges a handshake's served chain against the pins in force now (checkChain, by the device's
   * clock) and queues a report for a mismatch: repeats of one kind (endpoint, result, served pins,
   * active bundle) fold into one report with a count and a suppressed count.
   */
  recordHandshake(host: string, port: number, servedPins: readonly string[]): ChainCheck {
    const now = this.#nowSeconds();
    const s = this.#trust.active;
    const result = checkChain(s, host, port, servedPins, now);
    if (result !== 'pin_mismatch' && result !== 'report_only_mismatch') return result;
    const served = servedPins.map((p) => p.replace(/^sha256\//, ''));
    for (const p of served) if (Buffer.from(p, 'base64').length !== 32) throw new TypeError(`expected served pins of 32 bytes (base64 or sha256/…), got ${JSON.stringify(p)}`);
    const hostname = host.toLowerCase().replace(/\.$/, '').slice(0, MAX_TEXT); // the name checkChain judged (docs/bundle-format.md)
    const key = `${result}|${hostname}|${port}|${s.bundleId}|${[...served].sort().join(',')}`;
    const queued = this.#pending.get(key);
    if (queued) {
      queued.count++;
      queued.suppressed++;
      queued.lastSeen = Math.max(queued.lastSeen, now);
      return result;
    }
    if (this.#pending.size >= MAX_PENDING_KINDS) {
      this.#droppedReports++;
      return result;
    }
    this.#pending.set(key, {
      hostname,
      port,
      result,
      servedPins: served.slice(0, MAX_PINS),
      knownPins: knownPins(s, hostname, port).slice(0, MAX_PINS),
      seq: s.seq,
      bundleId: s.bundleId,
      count: 1,
      suppressed: 0,
      firstSeen: now,
      lastSeen: now,
    });
    return result;
  }

  /**
   * Sends the queued reports that are due, when connected: a kind not sent before goes at once, a
   * kind sent within `reportIntervalSeconds` waits, folding its repeats. Returns the reports sent.
   * A publish that fails leaves its reports queued for the next flush.
   */
  flushTelemetry(): Promise<number> {
    this.#flushing = this.#flushing.then(() => this.#flush());
    return this.#flushing;
  }

  /** Checks every endpoint (real TLS handshakes, shared or not), queues failures, and sends what is due. */
  async callHome(endpoints: readonly CallHomeEndpoint[], handshakes: HandshakeSource): Promise<EndpointCheck[]> {
    const checks = await Promise.all(
      endpoints.map(async (endpoint): Promise<EndpointCheck> => {
        const h = await handshakes.get(endpoint);
        return h.ok ? { endpoint, result: this.recordHandshake(endpoint.host, endpoint.port, h.pins) } : { endpoint, result: 'unreachable', error: h.error };
      }),
    );
    await this.flushTelemetry();
    return checks;
  }

  async #flush(): Promise<number> {
    if (!this.connected || this.#pending.size === 0) return 0;
    const now = this.#nowSeconds();
    const interval = this.#o.reportIntervalSeconds ?? 3600;
    const due: Array<[string, PendingReport]> = [];
    for (const [key, r] of this.#pending) {
      const last = this.#sentAt.get(key);
      if (last === undefined || now - last >= interval) due.push([key, r]);
    }
    let sent = 0;
    for (let i = 0; i < due.length; i += REPORTS_PER_MESSAGE) {
      const batch = due.slice(i, i + REPORTS_PER_MESSAGE);
      const reports = batch.map(([, r]) => ({ ...r, counter: ++this.#counter }));
      this.#o.store.saveCounter?.(this.id, this.#counter);
      if (!(await this.publishTelemetry(reports))) break;
      for (const [key] of batch) {
        this.#pending.delete(key);
        this.#sentAt.set(key, now);
      }
      sent += batch.length;
      this.#reportsSent += batch.length;
    }
    // Forget kinds whose interval has passed: their next failure is news again.
    if (this.#sentAt.size > MAX_PENDING_KINDS) for (const [key, at] of this.#sentAt) if (now - at >= interval) this.#sentAt.delete(key);
    return sent;
  }

  #nowSeconds(): number {
    return Math.floor((this.#o.now ?? Date.now)() / 1000) + (this.quirks.clockSkewSeconds ?? 0);
  }

  async #onBundle(bytes: Uint8Array, at: number): Promise<void> {
    const verify = this.#o.verify ?? verifyEach;
    const verified = verify(bytes, this.#trust.active);
    const step = receiveBundle(this.#trust, verified, this.#nowSeconds(), this.#healthCheck);
    if (step.ack?.status === 'rejected') {
      const ack: AckMessage = { ...step.ack, detail: step.ack.detail?.slice(0, 200) };
      // Name the bundle when it could be read, so the gateway attributes the rejection exactly; an
      // oversize one is read past the limit only for that (and only if a trusted key signed it).
      const named = !verified.ok && ack.reason === 'too_large' ? verify(bytes, { ...this.#trust.active, maxBundleBytes: Infinity }) : null;
      if (named?.ok) {
        ack.seq = named.bundle.seq;
        ack.bundleId = named.id;
      }
      return this.#finish(ack, { deviceId: this.id, bundleId: ack.bundleId, seq: ack.seq, status: 'rejected', reason: ack.reason }, at);
    }
    const bundleId = verified.ok ? verified.id : null;
    const seq = verified.ok ? verified.bundle.seq : 0;
    if (this.quirks.flashFails && step.persist) {
      const ack: AckMessage = { seq, bundleId, status: 'rejected', reason: 'apply_failed', detail: 'flash write failed' };
      return this.#finish(ack, { deviceId: this.id, bundleId, seq, status: 'rejected', reason: 'apply_failed' }, at);
    }
    // Persist before acknowledging: an ack must never claim a state the device could lose.
    if (step.persist) this.#save(step.trust);
    this.#trust = step.trust;
    if (this.quirks.crashBeforeAck && step.persist) {
      this.quirks.crashBeforeAck = false; // crash once, then behave after the restart
      this.crash();
      this.#o.onOutcome?.({ deviceId: this.id, bundleId, seq, status: 'crashed', acked: false });
      return;
    }
    this.#follow(step);
    if (!step.ack) {
      // A window opened (or the provisional bundle came again): the answer comes when it closes.
      this.#o.onOutcome?.({ deviceId: this.id, bundleId, seq, status: 'verifying', unchanged: step.redelivered === true });
      return;
    }
    const d = this.quirks.ackDelayMs;
    const ms = typeof d === 'function' ? d() : (d ?? 0);
    if (ms > 0) await (this.#o.delay ?? sleep)(ms);
    const unchanged = { unchanged: step.redelivered === true };
    if (step.ack.status === 'applied' && !step.trust.outcome) return this.#finish(step.ack, { deviceId: this.id, bundleId, seq, status: 'applied', ...unchanged }, at);
    return this.#sendOutcome(step.ack, unchanged, at);
  }

  /** A window moved on (handshake results, a timer, a resume): persist what must be, then follow it. */
  async #onStep(step: Step): Promise<void> {
    if (step.persist) this.#save(step.trust);
    this.#trust = step.trust;
    this.#follow(step);
    if (step.ack) await this.#sendOutcome(step.ack);
  }

  /** Starts the handshakes a step asks for and arms its wake-up. */
  #follow(step: Step): void {
    const timers = this.#o.windowTimers ?? realWindowTimers;
    if (this.#wake !== null) timers.cancel(this.#wake);
    this.#wake = null;
    if (step.wakeAt !== null) {
      const boot = this.#boot;
      const deviceMs = (this.#o.now ?? Date.now)() + (this.quirks.clockSkewSeconds ?? 0) * 1000;
      this.#wake = timers.after(Math.max(0, step.wakeAt * 1000 - deviceMs), () => {
        this.#wake = null;
        if (boot === this.#boot) this.#enqueue(() => this.#onStep(tickWindow(this.#trust, this.#nowSeconds())));
      });
    }
    for (const e of step.run) void this.#verify(e);
  }

  /** One health-check handshake: a fresh one, judged by the machine under the pins active now. */
  async #verify(e: EndpointRef): Promise<void> {
    const boot = this.#boot;
    const at = this.#nowSeconds();
    const source = this.#o.handshakes;
    // (A window left in flash by firmware that had a health check, on a device given no handshakes: nothing answers.)
    const h: HandshakeResult = source ? await source.get(this.#o.dial?.(e) ?? { host: e.host, port: e.port }, { fresh: true }) : { ok: false, error: 'no handshake source', at: 0 };
    // Powered off meanwhile: the answer died with the device, and the resumed window asks again.
    if (boot !== this.#boot) return;
    const seen: Observation = h.ok ? { ...e, at, served: h.pins } : { ...e, at, served: 'unreachable', error: h.error };
    this.#enqueue(() => this.#onStep(observeHandshakes(this.#trust, [seen], this.#nowSeconds())));
  }

  /** A window's final ack: sent, and marked delivered in flash once the broker has it (else resent on the next connect). */
  async #sendOutcome(ack: AnyAck, extra: Partial<DeviceOutcome> = {}, at?: number): Promise<void> {
    const acked = this.quirks.silent ? false : await this.#publish('ack', sharedAck(ack));
    if (acked) {
      const next = ackDelivered(this.#trust, ack);
      if (next !== this.#trust) {
        this.#save(next);
        this.#trust = next;
      }
    }
    this.#o.onOutcome?.({ deviceId: this.id, bundleId: ack.bundleId, seq: ack.seq, status: ack.status, acked, ack, ...extra, ...(at !== undefined && { ms: performance.now() - at }) });
  }

  /** One record, whole: a device without a health check keeps its trust state alone, as it always did. */
  #save(trust: DeviceTrust): void {
    if (!this.#healthCheck && !trust.window && !trust.outcome) this.#o.store.save(this.id, trust.active);
    else this.#o.store.saveTrust(this.id, trust);
  }

  /** Window transitions run in the same queue as bundles: one change of the trust state at a time. */
  #enqueue(fn: () => Promise<void>): void {
    this.#busy = this.#busy.then(fn).catch(() => {});
  }

  async #finish(ack: AckMessage, outcome: DeviceOutcome, at: number): Promise<void> {
    outcome.acked = this.quirks.silent ? false : await this.#publish('ack', sharedAck(ack));
    outcome.ms = performance.now() - at;
    this.#o.onOutcome?.(outcome);
  }

  #topic(kind: 'bundle' | 'state' | 'ack' | 'telemetry' | 'presence'): string {
    return `pinwave/v1/devices/${this.id}/${kind}`;
  }

  #publish(kind: 'state' | 'ack' | 'telemetry' | 'presence', payload: Uint8Array, retain = false): Promise<boolean> {
    const c = this.#client;
    const waiting = c && this.#inflight.get(c);
    if (!c?.connected || !waiting) return Promise.resolve(false);
    // The link may drop before PUBACK: then the publish is lost (the next connect's `state` reconciles)
    // and must not hold up the bundles after it, so the connection's close answers it false.
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    return new Promise<boolean>((resolve) => {
      waiting.add(resolve);
      c.publish(this.#topic(kind), bytes, retain ? QOS1_RETAINED : QOS1, (err) => {
        waiting.delete(resolve);
        resolve(!err);
      });
    });
  }
}

/** known-pins (RFC 7469 §3): the pins of the entries covering host:port, exact entries over wildcard ones, as checkChain picks them. */
function knownPins(s: TrustState, host: string, port: number): string[] {
  let entries = s.endpoints.filter((e) => e.port === port && e.host === host);
  if (entries.length === 0) entries = s.endpoints.filter((e) => e.port === port && wildcardMatches(e.host, host));
  return [...new Set(entries.flatMap((e) => e.pins))];
}

/** The presence words (docs/architecture.md §5): ASCII, nothing else, so firmware can hand them to its MQTT stack as they are. */
const QOS1 = { qos: 1 } as const;
const QOS1_RETAINED = { qos: 1, retain: true } as const;
const noLog = () => {};
const ONLINE = Buffer.from('online');
const OFFLINE = Buffer.from('offline');

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
