// A simulated device: a real MQTT client running the same verification code firmware would
// (firmware-manifest/). It publishes `state` on every connect, takes bundles from its bundle topic,
// applies them with apply(), persists the new trust state, and only then acknowledges (DESIGN.md §3:
// a crash between apply and ack is healed by the next `state`).
import mqtt, { type MqttClient } from 'mqtt';
import {
  applyVerified,
  encodeAck,
  encodeState,
  encodeTelemetry,
  trustedKeyBytes,
  verifyBundle,
  type AckMessage,
  type AckReason,
  type PinFailureReport,
  type TrustState,
  type VerifyResult,
} from '../firmware-manifest/index.ts';
import type { StateStore } from './state-store.ts';

/** Checks a bundle's signature; the fleet may pass a shared, cached one (verification is a pure function). */
export type Verifier = (bytes: Uint8Array, state: TrustState) => VerifyResult;

export const verifyEach: Verifier = (bytes, state) => verifyBundle(bytes, trustedKeyBytes(state), { maxBytes: Infinity, acceptedVersions: state.acceptedVersions });

/** What a device does beyond firmware's happy path: set by behaviours (behaviours.ts). */
export interface DeviceQuirks {
  /** never acknowledge (a silent device); it still applies */
  silent?: boolean;
  /** flash write fails: the bundle is rejected with apply_failed and the state is left as it was */
  flashFails?: boolean;
  /** crash after persisting, before acking: the connection drops and the ack is never sent */
  crashBeforeAck?: boolean;
  /** ms to wait between apply and ack */
  ackDelayMs?: number;
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
  verify?: Verifier;
  quirks?: DeviceQuirks;
  /** MQTT clean session; default false (a courtesy to the broker; delivery does not depend on it) */
  clean?: boolean;
  /** called after each bundle, with what the device decided */
  onOutcome?: (outcome: DeviceOutcome) => void;
  /** ms to wait for CONNACK; default 10 s */
  connectTimeoutMs?: number;
}

export interface DeviceOutcome {
  deviceId: string;
  bundleId: string | null;
  seq: number;
  status: 'applied' | 'rejected' | 'crashed';
  reason?: AckReason;
  /** the bundle was the active one delivered again */
  unchanged?: boolean;
}

export class SimDevice {
  readonly id: string;
  readonly #o: SimDeviceOptions;
  #client: MqttClient | null = null;
  #state: TrustState;
  #counter = 0;
  #busy: Promise<void> = Promise.resolve();

  constructor(o: SimDeviceOptions, initial: TrustState) {
    this.id = o.id;
    this.#o = o;
    this.#state = o.store.load(o.id) ?? initial;
  }

  get state(): TrustState {
    return this.#state;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  get quirks(): DeviceQuirks {
    return (this.#o.quirks ??= {});
  }

  /** Connects, subscribes to its bundle topic and publishes its state. Rejects on a refused CONNECT. */
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
      protocolVersion: 4,
    });
    this.#client = client;
    client.on('message', (_topic, payload) => {
      // One bundle at a time, in arrival order: apply is atomic and the state is the device's own.
      this.#busy = this.#busy.then(() => this.#onBundle(new Uint8Array(payload)));
    });
    client.on('error', () => {}); // surfaced through connect() or the 'close' that follows
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        client.removeListener('connect', ok);
        client.end(true);
        reject(err);
      };
      const ok = () => {
        client.removeListener('error', fail);
        resolve();
      };
      client.once('connect', ok);
      client.once('error', fail);
    });
    await client.subscribeAsync(`pinwave/v1/devices/${this.id}/bundle`, { qos: 1 });
    await this.publishState();
  }

  async disconnect(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    if (c) await c.endAsync();
  }

  /** Drops the connection without a DISCONNECT packet, as a power cut or a crash would. */
  crash(): void {
    const c = this.#client;
    this.#client = null;
    c?.end(true);
  }

  /** Waits for the bundles received so far to be handled. */
  idle(): Promise<void> {
    return this.#busy;
  }

  async publishState(): Promise<void> {
    const s = this.#state;
    await this.#publish('state', encodeState({ seq: s.seq, bundleId: s.bundleId, firmware: this.#o.firmware, model: this.#o.model, keyEpoch: s.keyEpoch, time: this.#nowSeconds() }));
  }

  /** Publishes pin-failure reports (the caller deduplicates; see fleet.ts). */
  async publishTelemetry(reports: PinFailureReport[]): Promise<void> {
    if (reports.length === 0) return;
    await this.#publish('telemetry', encodeTelemetry({ deviceId: this.id, group: this.#state.group, firmware: this.#o.firmware, reports }));
  }

  /** The next per-device report counter (telemetry lets the gateway see gaps and redeliveries). */
  nextReportCounter(): number {
    return ++this.#counter;
  }

  #nowSeconds(): number {
    return Math.floor((this.#o.now ?? Date.now)() / 1000) + (this.quirks.clockSkewSeconds ?? 0);
  }

  async #onBundle(bytes: Uint8Array): Promise<void> {
    const verify = this.#o.verify ?? verifyEach;
    const r = applyVerified(this.#state, verify(bytes, this.#state), this.#nowSeconds());
    if (!r.ok) {
      const ack: AckMessage = { seq: 0, bundleId: null, status: 'rejected', reason: r.reason, detail: r.detail.slice(0, 200) };
      // Name the bundle when it could be read, so the gateway attributes the rejection exactly.
      const peek = verifyEach(bytes, { ...this.#state, maxBundleBytes: Infinity });
      if (peek.ok) {
        ack.seq = peek.bundle.seq;
        ack.bundleId = peek.id;
      }
      return this.#finish(ack, { deviceId: this.id, bundleId: ack.bundleId, seq: ack.seq, status: 'rejected', reason: r.reason });
    }
    if (this.quirks.flashFails && !r.unchanged) {
      const ack: AckMessage = { seq: r.bundle.seq, bundleId: r.id, status: 'rejected', reason: 'apply_failed', detail: 'flash write failed' };
      return this.#finish(ack, { deviceId: this.id, bundleId: r.id, seq: r.bundle.seq, status: 'rejected', reason: 'apply_failed' });
    }
    // Persist before acknowledging: an ack must never claim a state the device could lose.
    if (!r.unchanged) {
      this.#o.store.save(this.id, r.state);
      this.#state = r.state;
    }
    if (this.quirks.crashBeforeAck) {
      this.quirks.crashBeforeAck = false; // crash once, then behave after the restart
      this.crash();
      this.#o.onOutcome?.({ deviceId: this.id, bundleId: r.id, seq: r.bundle.seq, status: 'crashed' });
      return;
    }
    if (this.quirks.ackDelayMs) await new Promise((resolve) => setTimeout(resolve, this.quirks.ackDelayMs));
    await this.#finish({ seq: r.bundle.seq, bundleId: r.id, status: 'applied' }, { deviceId: this.id, bundleId: r.id, seq: r.bundle.seq, status: 'applied', unchanged: r.unchanged });
  }

  async #finish(ack: AckMessage, outcome: DeviceOutcome): Promise<void> {
    this.#o.onOutcome?.(outcome);
    if (this.quirks.silent) return;
    await this.#publish('ack', encodeAck(ack));
  }

  async #publish(kind: 'state' | 'ack' | 'telemetry', payload: Uint8Array): Promise<void> {
    const c = this.#client;
    if (!c?.connected) return;
    try {
      await c.publishAsync(`pinwave/v1/devices/${this.id}/${kind}`, Buffer.from(payload), { qos: 1 });
    } catch {
      // The link dropped mid-publish: the next connect's `state` reconciles.
    }
  }
}
