// Device events (docs/architecture.md §1 "The path of an ack", §5): connects, disconnects and
// subscriptions, and the device's messages (state, ack, telemetry), each decoded, recorded and
// routed to its rollout's engine call or to the telemetry book. Decisions are the engine's; what
// they return is performed by Rollouts.apply. Dropped messages are counted by reason.
//
//   await ingest.onMessage('th-1', 'ack', payload);   // decode → record → engine.deviceAcked → effects
import type { Bundles } from './bundles.ts';
import { LABEL_RE } from './devices.ts';
import type { Delivery } from './delivery.ts';
import type { Logger } from './logger.ts';
import * as engine from './rollout/engine.ts';
import type { Rollouts } from './rollouts.ts';
import type { Store } from './store/types.ts';
import type { Tasks } from './tasks.ts';
import type { TelemetryBook } from './telemetry.ts';
import type { DeviceMessageKind } from './topics.ts';
import { decodeAck, decodeState, decodeTelemetry } from '../firmware-manifest/index.ts';

export interface IngestCounters {
  messagesIn: Record<DeviceMessageKind, number>;
  acks: { applied: number; rejected: number };
  dropped: Record<string, number>;
}

export interface IngestOptions {
  store: Store;
  bundles: Bundles;
  delivery: Delivery;
  rollouts: Rollouts;
  telemetry: TelemetryBook;
  tasks: Tasks;
  log: Logger;
  now: () => number;
}

export class Ingest {
  readonly #store: Store;
  readonly #bundles: Bundles;
  readonly #delivery: Delivery;
  readonly #rollouts: Rollouts;
  readonly #telemetry: TelemetryBook;
  readonly #tasks: Tasks;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #counters: IngestCounters = {
    messagesIn: { state: 0, ack: 0, telemetry: 0 },
    acks: { applied: 0, rejected: 0 },
    dropped: {},
  };

  constructor(o: IngestOptions) {
    this.#store = o.store;
    this.#bundles = o.bundles;
    this.#delivery = o.delivery;
    this.#rollouts = o.rollouts;
    this.#telemetry = o.telemetry;
    this.#tasks = o.tasks;
    this.#log = o.log;
    this.#now = o.now;
  }

  /** A copy of the counters. */
  counters(): IngestCounters {
    const c = this.#counters;
    return { messagesIn: { ...c.messagesIn }, acks: { ...c.acks }, dropped: { ...c.dropped } };
  }

  onConnect(id: string): void {
    this.#delivery.newSession(id);
    const now = this.#now();
    this.#tasks.track(this.#store.updateDevice(id, { lastConnectAt: now, lastSeen: now }));
  }

  onDisconnect(id: string): void {
    this.#delivery.newSession(id);
    const now = this.#now();
    this.#tasks.track(this.#store.updateDevice(id, { lastDisconnectAt: now, lastSeen: now }));
  }

  async onSubscribe(id: string, filter: string): Promise<void> {
    // Only a subscription that covers the bundle topic can receive a bundle.
    if (!(filter.endsWith('/#') || filter.endsWith('/bundle'))) return;
    // A bundle published before this subscription (a device that sent `state` first) was dropped by
    // the broker: what was handed to this session may be handed again.
    this.#delivery.newSession(id);
    const d = await this.#store.getDevice(id);
    const r = this.#rollouts.activeOrLatest(id);
    if (r) return this.#rollouts.apply(r, engine.deviceState(r, id, { seq: d?.seq ?? 0, bundleId: d?.bundleId ?? null }, this.#now()));
    if (d) await this.#delivery.offerBaseline(d, this.#rollouts.activeRolloutOf(id) !== null);
  }

  /** The path of a device message: counted, then decoded and handled by kind. */
  async onMessage(id: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
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
    const r = this.#rollouts.activeOrLatest(id);
    // Reconciliation: a device that applied while its ack was lost (or the gateway was down) is
    // counted; one that says it does not hold the bundle is sent it again (so is one behind on a
    // completed rollout).
    if (r) return this.#rollouts.apply(r, engine.deviceState(r, id, { seq: s.seq, bundleId: s.bundleId }, now));
    await this.#delivery.offerBaseline(d, this.#rollouts.activeRolloutOf(id) !== null);
  }

  async #onAck(id: string, bytes: Uint8Array): Promise<void> {
    const m = decodeAck(bytes);
    if (!m.ok) return this.#drop('malformed_ack', id, m.detail);
    const a = m.message;
    const now = this.#now();
    // A device that could not read a bundle acks it with no id: it is the one last handed to it.
    const bundleId = a.bundleId ?? this.#delivery.handed(id) ?? null;
    if (bundleId === null) return this.#drop('ack_unknown_bundle', id);
    this.#counters.acks[a.status]++;
    // The seq comes from the stored bundle, never from the device: a device cannot push its
    // group's seq counter anywhere by claiming one.
    const known = this.#bundles.cached(bundleId) ?? (await this.#bundles.load(bundleId));
    if (!known) return this.#drop('ack_unknown_bundle', id);
    const seq = known.seq;
    const r = this.#rollouts.activeOrLatest(id);
    const rolloutId = r && r.bundle.id === bundleId ? r.id : undefined;
    await this.#store.updateDevice(id, (d) => {
      if (a.status === 'applied') {
        d.seq = seq;
        d.bundleId = bundleId;
      }
      d.lastSeen = now;
      d.history.push({ at: now, ...(rolloutId && { rolloutId }), bundleId, seq, event: a.status, ...(a.reason && { reason: a.reason }) });
    });
    if (r && r.bundle.id === bundleId) this.#rollouts.apply(r, engine.deviceAcked(r, id, { status: a.status, reason: a.reason, bundleId, seq }, now));
  }

  async #onTelemetry(id: string, bytes: Uint8Array): Promise<void> {
    const m = decodeTelemetry(bytes);
    if (!m.ok) return this.#drop('malformed_telemetry', id, m.detail);
    const d = await this.#store.getDevice(id);
    if (!d) return;
    const now = this.#now();
    const r = this.#rollouts.activeOrLatest(id);
    const result = this.#telemetry.ingest(id, d.group, m.message, (bundleId) => (r && bundleId === r.bundle.id ? { rolloutId: r.id, wave: r.devices[id]?.wave ?? null } : { rolloutId: null, wave: null }), now);
    // aggregate_full and device_quota reports are still accepted (only their bucket is missing).
    for (const drop of result.dropped) if (drop.reason !== 'aggregate_full' && drop.reason !== 'device_quota') this.#drop(`telemetry_${drop.reason}`, id, undefined, drop.count);
    this.#tasks.track(this.#store.putTelemetry(this.#telemetry.toJSON()));
    for (const f of result.failingOn) {
      if (r && r.bundle.id === f.bundleId) this.#rollouts.apply(r, engine.pinFailure(r, id, { bundleId: f.bundleId }, now));
    }
  }

  #drop(reason: string, deviceId: string, detail?: string, count = 1): void {
    this.#counters.dropped[reason] = (this.#counters.dropped[reason] ?? 0) + count;
    this.#log.debug({ deviceId, reason, detail }, 'device message dropped');
  }
}
