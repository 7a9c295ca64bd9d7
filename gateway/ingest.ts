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
import type { DeviceAck } from './rollout/types.ts';
import type { Rollouts } from './rollouts.ts';
import type { Change, ChangeStore, DeviceFields } from './store/changes.ts';
import type { DeviceCore, DeviceHistoryEntry } from './store/types.ts';
import { commit } from './fleet-reads.ts';
import type { TelemetryChanges } from './telemetry-changes.ts';
import type { Tasks } from './tasks.ts';
import type { TelemetryBook } from './telemetry.ts';
import type { DeviceMessageKind } from './topics.ts';
import { hasHealthCheck } from './rollout/verification.ts';
import { decodeAnyAck, decodeAnyState, decodeTelemetry, endpointText, type FirmwareManifest } from '../firmware-manifest/index.ts';

export interface IngestCounters {
  messagesIn: Record<DeviceMessageKind, number>;
  acks: { applied: number; rejected: number; verified: number; reverted: number };
  dropped: Record<string, number>;
}

export interface IngestOptions {
  store: ChangeStore;
  bundles: Bundles;
  delivery: Delivery;
  rollouts: Rollouts;
  telemetry: TelemetryBook;
  /** turns what the book changed into the store's changes */
  telemetryChanges: TelemetryChanges;
  tasks: Tasks;
  log: Logger;
  now: () => number;
  /** firmware manifests by model: whether a device's firmware has a health check (docs/architecture.md §9) */
  manifests: Pick<ReadonlyMap<string, FirmwareManifest>, 'get'>;
}

export class Ingest {
  readonly #store: ChangeStore;
  readonly #telemetryChanges: TelemetryChanges;
  readonly #bundles: Bundles;
  readonly #delivery: Delivery;
  readonly #rollouts: Rollouts;
  readonly #telemetry: TelemetryBook;
  readonly #tasks: Tasks;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #manifests: Pick<ReadonlyMap<string, FirmwareManifest>, 'get'>;
  readonly #counters: IngestCounters = {
    messagesIn: { state: 0, ack: 0, telemetry: 0 },
    acks: { applied: 0, rejected: 0, verified: 0, reverted: 0 },
    dropped: {},
  };
  /** per device, the end of its messages in flight (onMessage) */
  readonly #lanes = new Map<string, Promise<void>>();
  /** presence patches of this turn, by device (#presence), and what settles the task that hands them to the store */
  readonly #presenceDue = new Map<string, DeviceFields>();
  #presenceSent: ((applied: Promise<void>) => void) | null = null;

  constructor(o: IngestOptions) {
    this.#store = o.store;
    this.#bundles = o.bundles;
    this.#delivery = o.delivery;
    this.#rollouts = o.rollouts;
    this.#telemetry = o.telemetry;
    this.#telemetryChanges = o.telemetryChanges;
    this.#tasks = o.tasks;
    this.#log = o.log;
    this.#now = o.now;
    this.#manifests = o.manifests;
  }

  /** A copy of the counters. */
  counters(): IngestCounters {
    const c = this.#counters;
    return { messagesIn: { ...c.messagesIn }, acks: { ...c.acks }, dropped: { ...c.dropped } };
  }

  onConnect(id: string): void {
    this.#delivery.newSession(id);
    const now = this.#now();
    this.#presence(id, { lastConnectAt: now, lastSeen: now });
  }

  onDisconnect(id: string): void {
    this.#delivery.newSession(id);
    const now = this.#now();
    this.#presence(id, { lastDisconnectAt: now, lastSeen: now });
  }

  /**
   * docs/architecture.md §7: presence is rebuilt by the next connect, so it shares the next write
   * instead of forcing one; and the connects and disconnects of one turn of the event loop are one
   * batch, not one each (a ramp of 10,000 connects was 10,000 batches, each checked, copied and
   * framed on its own). A device's later patches in the same turn are merged into its first.
   */
  #presence(id: string, set: DeviceFields): void {
    const due = this.#presenceDue.get(id);
    if (due) Object.assign(due, set);
    else this.#presenceDue.set(id, { ...set });
    if (this.#presenceSent) return;
    // tracked from now, so a stop waits for the batch that is still to be handed to the store
    this.#tasks.track(new Promise<void>((resolve) => (this.#presenceSent = resolve)));
    setImmediate(() => this.#flushPresence());
  }

  /** Hands the presence patches queued so far to the store, as one batch. */
  #flushPresence(): void {
    const sent = this.#presenceSent;
    if (!sent) return;
    this.#presenceSent = null;
    const batch: Change[] = [];
    for (const [id, set] of this.#presenceDue) batch.push({ type: 'device.patch', id, set });
    this.#presenceDue.clear();
    sent(
      this.#store.apply(batch, { durable: false }).then(async (r) => {
        // A device deleted meanwhile refuses the whole batch: the others are patched one by one.
        if (!r.ok && batch.length > 1) await Promise.all(batch.map((c) => this.#store.apply([c], { durable: false })));
      }),
    );
  }

  async onSubscribe(id: string, filter: string): Promise<void> {
    // Only a subscription that covers the bundle topic can receive a bundle.
    if (!(filter.endsWith('/#') || filter.endsWith('/bundle'))) return;
    // A bundle published before this subscription (a device that sent `state` first) was dropped by
    // the broker: what was handed to this session may be handed again.
    this.#delivery.newSession(id);
    if (this.#rollouts.reloading) await this.#rollouts.reloading;
    const d = await this.#store.getDeviceCore(id);
    // After the last wait: the records may be being read again meanwhile (docs/architecture.md §7).
    if (this.#rollouts.reloading) await this.#rollouts.reloading;
    const r = this.#rollouts.activeOrLatest(id);
    if (r) await this.#rollouts.apply(r, engine.deviceState(r, id, { seq: d?.seq ?? 0, bundleId: d?.bundleId ?? null, healthChecked: hasHealthCheck(this.#manifests, d?.model, d?.firmware) }, this.#now()));
    if (d && (!r || r.state === 'pending')) await this.#delivery.offerBaseline(d, this.#inRunningRollout(id));
  }

  /** The path of a device message: counted, then decoded and handled by kind. */
  /**
   * Resolves once what the message changed is committed (docs/architecture.md §7: the broker then
   * PUBACKs it); rejects when the store could not commit it, and then nothing of it holds. A
   * message dropped as malformed resolves: it is answered, and changes nothing.
   */
  onMessage(id: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
    // Its presence patch is handed to the store first, so the message's last-seen is the one kept.
    if (this.#presenceDue.has(id)) this.#flushPresence();
    // One device's messages are handled in the order they came, each after the one before is
    // committed (aedes hands over a whole read's packets at once): a state after an ack sees it.
    const before = this.#lanes.get(id);
    const run = before ? before.then(() => this.#message(id, kind, payload)) : this.#message(id, kind, payload);
    // The lane ends with the message, committed or not; the last message of a device removes it.
    const end = (): void => {
      if (this.#lanes.get(id) === lane) this.#lanes.delete(id);
    };
    const lane: Promise<void> = run.then(end, end);
    this.#lanes.set(id, lane);
    return run;
  }

  /** Not an async function: it hands back the handler's promise itself, one promise fewer per message. */
  #message(id: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
    this.#counters.messagesIn[kind]++;
    const reloading = this.#rollouts.reloading;
    if (reloading) return reloading.then(() => this.#handle(id, kind, payload));
    return this.#handle(id, kind, payload);
  }

  #handle(id: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
    try {
      return this.#dispatch(id, kind, payload);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  #dispatch(id: string, kind: DeviceMessageKind, payload: Buffer): Promise<void> {
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
    // docs/architecture.md §9: a state may carry a health-checked device's provisional window.
    const m = decodeAnyState(bytes);
    if (!m.ok) return this.#drop('malformed_state', id, m.detail);
    const s = m.message;
    const now = this.#now();
    // Model and firmware are shown to operators and pick the manifest pre-flight checks against:
    // only printable labels are taken from a device (no terminal escapes), others are dropped.
    const labels = LABEL_RE.test(s.model) && LABEL_RE.test(s.firmware) ? { model: s.model, firmware: s.firmware } : {};
    if (!('model' in labels)) this.#drop('state_bad_label', id);
    const before = await this.#store.getDeviceCore(id);
    if (!before) return;
    // The rollouts may be being read again (a commit failed while this message waited): it changes
    // the records read, never those the read replaces (docs/architecture.md §7).
    if (this.#rollouts.reloading) await this.#rollouts.reloading;
    const set: DeviceFields = { seq: s.seq, bundleId: s.bundleId, ...labels, ...(s.keyEpoch !== undefined && { keyEpoch: s.keyEpoch }), lastSeen: now };
    const d: DeviceCore = { ...before, ...set };
    const batch: Change[] = [{ type: 'device.patch', id, set }];
    const r = this.#rollouts.activeOrLatest(id);
    // Reconciliation: a device that applied while its ack was lost (or the gateway was down) is
    // counted; one that says it does not hold the bundle is sent it again (so is one behind on a
    // completed rollout).
    const provisional = s.provisional && { previousSeq: s.provisional.previousSeq, previousBundleId: s.provisional.previousBundleId };
    if (r) await this.#rollouts.apply(r, engine.deviceState(r, id, { seq: s.seq, bundleId: s.bundleId, healthChecked: hasHealthCheck(this.#manifests, d.model, d.firmware), ...(provisional && { provisional }) }, now), batch);
    else await commit(this.#store, batch);
    // A rollout not started sends nothing yet: its members behind the baseline get the baseline meanwhile.
    if (!r || r.state === 'pending') await this.#delivery.offerBaseline(d, this.#inRunningRollout(id));
  }

  /**
   * docs/architecture.md §6: whether the device is in a rollout that decides what it is sent (running
   * or held); a pending one sends nothing yet, so it keeps no device from its group's baseline.
   */
  #inRunningRollout(id: string): boolean {
    const r = this.#rollouts.activeRolloutOf(id);
    return r !== null && r.state !== 'pending';
  }

  /**
   * Not an async function: an ack whose bundle is cached, from a device of a store that keeps the
   * fleet in memory (getDeviceCoreNow), with no read of the rollouts under way, is decided and
   * handed to the store without a wait (and without a frame and promises held while its batch
   * waits for its fsync); any other waits for its reads first (#ackAfterReads).
   */
  #onAck(id: string, bytes: Uint8Array): Promise<void> {
    const m = decodeAnyAck(bytes);
    if (!m.ok) return this.#dropped('malformed_ack', id, m.detail);
    const a = m.message;
    const now = this.#now();
    // A device that could not read a bundle acks it with no id: it is the one last handed to it.
    const bundleId = a.bundleId ?? this.#delivery.handed(id) ?? null;
    if (bundleId === null) return this.#dropped('ack_unknown_bundle', id);
    this.#counters.acks[a.status]++;
    // The seq comes from the stored bundle, never from the device: a device cannot push its
    // group's seq counter anywhere by claiming one.
    const known = this.#bundles.cached(bundleId);
    const d = known && a.status !== 'reverted' && this.#rollouts.reloading === null ? this.#store.getDeviceCoreNow?.(id) : undefined;
    if (d === undefined) return this.#ackAfterReads(id, a, bundleId, known, now);
    if (d === null) return this.#dropped('ack_unknown_device', id);
    return this.#ack(id, a, bundleId, known!, null, d, now);
  }

  /** An ack whose bundle, previous bundle (a revert), device or the rollouts' read must be waited for first. */
  async #ackAfterReads(id: string, a: Ack, bundleId: string, cached: KnownBundle | undefined, now: number): Promise<void> {
    const known = cached ?? (await this.#bundles.load(bundleId));
    if (!known) return this.#drop('ack_unknown_bundle', id);
    // docs/architecture.md §9: a device that reverted is back on its previous bundle, whose seq is the gateway's own.
    const reverted = a.status === 'reverted' ? await this.#revertedTo(a.previousBundleId) : null;
    const d = await this.#store.getDeviceCore(id);
    if (!d) return this.#drop('ack_unknown_device', id);
    // The rollouts may be being read again (a commit failed while this message waited): the ack
    // changes the records read, never those the read replaces (docs/architecture.md §7).
    if (this.#rollouts.reloading) await this.#rollouts.reloading;
    return this.#ack(id, a, bundleId, known, reverted, d, now);
  }

  /** The ack decided, with all it needs read: its batch committed with the engine's changes. */
  #ack(id: string, a: Ack, bundleId: string, known: KnownBundle, reverted: RevertedTo | null, d: DeviceCore, now: number): Promise<void> {
    const seq = known.seq;
    const applied = a.status === 'applied' || a.status === 'verified';
    const epoch = applied ? this.#bundles.rotationEpoch(bundleId, known.bytes) : null;
    const reason = a.status === 'rejected' ? a.reason : a.status === 'reverted' ? endpointText(a.endpoint.host, a.endpoint.port).slice(0, 200) : undefined;
    const r = this.#rollouts.activeOrLatest(id);
    const rolloutId = r && r.bundle.id === bundleId ? r.id : undefined;
    const set: DeviceFields = { lastSeen: now };
    if (applied) {
      set.seq = seq;
      set.bundleId = bundleId;
      // A rotation applied: the device trusts its keys now (pre-flight checks against them).
      if (epoch !== null) set.keyEpoch = epoch;
    } else if (reverted && (reverted.known || d.bundleId === bundleId)) {
      set.seq = reverted.seq;
      set.bundleId = reverted.bundleId;
    }
    // One batch: the device's seq and history, and (with its rollout) its status and the wave's counts.
    const batch: Change[] = [
      { type: 'device.patch', id, set },
      { type: 'device.history', id, entry: historyEntry(now, rolloutId, bundleId, seq, a.status, reason) },
    ];
    const healthChecked = hasHealthCheck(this.#manifests, d.model, d.firmware);
    const unverified = a.status === 'applied' && a.unverified !== undefined;
    if (r && r.bundle.id === bundleId) {
      const ack: DeviceAck = { status: a.status, reason, bundleId, seq, healthChecked, unverified };
      if (a.status === 'reverted') ack.endpoint = reason;
      return this.#rollouts.apply(r, engine.deviceAcked(r, id, ack, now), batch);
    }
    return this.#ackOutsideRollout(id, batch, applied && epoch !== null ? { ...d, ...set } : null);
  }

  /**
   * A bundle applied outside a rollout (a baseline, or the key rotation a late joiner needed
   * first, key-rotation.ts): once committed, the baseline is offered again (`rotated`: the device
   * as it is now), and goes if the device is still behind.
   */
  async #ackOutsideRollout(id: string, batch: Change[], rotated: DeviceCore | null): Promise<void> {
    await commit(this.#store, batch);
    if (rotated !== null) await this.#delivery.offerBaseline(rotated, this.#inRunningRollout(id));
  }

  /** The bundle a reverted device runs again: known (its seq the stored one), the firmware's initial pins (seq 0), or unknown (seq null). */
  async #revertedTo(previousBundleId: string | null): Promise<RevertedTo> {
    if (previousBundleId === null) return { known: true, bundleId: null, seq: 0 };
    const b = this.#bundles.cached(previousBundleId) ?? (await this.#bundles.load(previousBundleId));
    return b ? { known: true, bundleId: previousBundleId, seq: b.seq } : { known: false, bundleId: previousBundleId, seq: null };
  }

  async #onTelemetry(id: string, bytes: Uint8Array): Promise<void> {
    const m = decodeTelemetry(bytes);
    if (!m.ok) return this.#drop('malformed_telemetry', id, m.detail);
    const d = await this.#store.getDeviceCore(id);
    if (!d) return;
    // The book may be being read again (a commit failed while this message waited): it is changed
    // only once it is read, never the one the read replaces (docs/architecture.md §7).
    if (this.#rollouts.reloading) await this.#rollouts.reloading;
    const now = this.#now();
    const r = this.#rollouts.activeOrLatest(id);
    const result = this.#telemetry.ingest(id, d.group, m.message, (bundleId) => (r && bundleId === r.bundle.id ? { rolloutId: r.id, wave: r.devices[id]?.wave ?? null } : { rolloutId: null, wave: null }), now);
    // aggregate_full and device_quota reports are still accepted (only their bucket is missing).
    for (const drop of result.dropped) if (drop.reason !== 'aggregate_full' && drop.reason !== 'device_quota') this.#drop(`telemetry_${drop.reason}`, id, undefined, drop.count);
    const batch = this.#telemetryChanges.changes(this.#telemetry.takeChanges());
    // Only the device's rollout's bundle can fail it there; its hold commits with the reports.
    if (r && result.failingOn.some((f) => f.bundleId === r.bundle.id)) return this.#rollouts.apply(r, engine.pinFailure(r, id, { bundleId: r.bundle.id, healthChecked: hasHealthCheck(this.#manifests, d.model, d.firmware) }, now), batch);
    if (batch.length > 0) await commit(this.#store, batch);
  }

  /** #drop, answered: a dropped message is answered as handled. */
  #dropped(reason: string, deviceId: string, detail?: string): Promise<void> {
    this.#drop(reason, deviceId, detail);
    return HANDLED;
  }

  #drop(reason: string, deviceId: string, detail?: string, count = 1): void {
    this.#counters.dropped[reason] = (this.#counters.dropped[reason] ?? 0) + count;
    this.#log.debug({ deviceId, reason, detail }, 'device message dropped');
  }
}

/** What a message that needs no commit answers (one promise for all: a settled promise cannot change). */
const HANDLED: Promise<void> = Promise.resolve();

type Ack = Extract<ReturnType<typeof decodeAnyAck>, { ok: true }>['message'];
type KnownBundle = NonNullable<ReturnType<Bundles['cached']>>;
type RevertedTo = { known: boolean; bundleId: string | null; seq: number | null };

/** An ack's history entry, its fields in the order the journal has always had them; built without spreads (every ack makes one). */
function historyEntry(at: number, rolloutId: string | undefined, bundleId: string, seq: number, event: DeviceHistoryEntry['event'], reason: string | undefined): DeviceHistoryEntry {
  const entry: DeviceHistoryEntry = rolloutId ? { at, rolloutId, bundleId, seq, event } : { at, bundleId, seq, event };
  if (reason) entry.reason = reason;
  return entry;
}
