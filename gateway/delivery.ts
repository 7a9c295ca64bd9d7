// Delivery (docs/architecture.md §1 "The path of a bundle", §6): publishing a bundle to the
// connected devices among a list, once per device session, and the baseline offered to a device
// that is in no rollout in progress (the decision is gateway/rollout/policy.ts baselineOffer).
//
//   delivery.send(['th-1', 'th-2'], bundleId, rolloutId);   // QoS 1 to those connected, once a session
//   delivery.newSession('th-1');                            // connected again: it may be sent it again
import type { Bundles } from './bundles.ts';
import type { Logger } from './logger.ts';
import { baselineOffer } from './rollout/policy.ts';
import type { DeviceCore, DeviceHistoryEvent } from './store/types.ts';
import type { ChangeStore } from './store/changes.ts';
import { baselineOf } from './fleet-reads.ts';
import type { Tasks } from './tasks.ts';

/** What the parts need of the MQTT broker: whether a device is connected, publishing to it, closing it. */
export interface DeviceLink {
  isConnected(id: string): boolean;
  /** publishes to each connected device among `ids`; how many were handed to the broker */
  publishToDevices(ids: readonly string[], payload: Buffer): Promise<number>;
  disconnect(id: string): unknown;
}

export interface DeliveryOptions {
  store: ChangeStore;
  bundles: Bundles;
  link: DeviceLink;
  tasks: Tasks;
  log: Logger;
  now: () => number;
  /** whether a rollout of the bundle of this id was rolled back (a rotation so undone bridges no late joiner, key-rotation.ts) */
  rolledBack?: (bundleId: string) => boolean;
}

export class Delivery {
  readonly #store: ChangeStore;
  readonly #bundles: Bundles;
  readonly #link: DeviceLink;
  readonly #tasks: Tasks;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #rolledBack: ((bundleId: string) => boolean) | undefined;
  /** device id → the bundle handed to it on its current connection, so one bundle goes once per session */
  readonly #delivered = new Map<string, string>();
  #sent = 0;

  constructor(o: DeliveryOptions) {
    this.#store = o.store;
    this.#bundles = o.bundles;
    this.#link = o.link;
    this.#tasks = o.tasks;
    this.#log = o.log;
    this.#now = o.now;
    this.#rolledBack = o.rolledBack;
  }

  /** Bundles handed to the broker so far. */
  get sent(): number {
    return this.#sent;
  }

  /** The bundle last handed to the device on its current connection, if any. */
  handed(id: string): string | undefined {
    return this.#delivered.get(id);
  }

  /** The device connected, disconnected or subscribed again: what was handed to it may be handed again. */
  newSession(id: string): void {
    this.#delivered.delete(id);
  }

  /** Publishes a bundle to the connected devices among `ids`, once per device session; `rolloutId` null for a baseline. */
  send(ids: readonly string[], bundleId: string, rolloutId: string | null): void {
    const fresh = ids.filter((id) => this.#delivered.get(id) !== bundleId && this.#link.isConnected(id));
    if (fresh.length === 0) return;
    const cached = this.#bundles.cached(bundleId);
    const go = async () => {
      const b = cached ?? (await this.#bundles.load(bundleId));
      if (!b) return this.#log.error({ bundle: bundleId }, 'bundle to send is not in the store');
      for (const id of fresh) this.#delivered.set(id, bundleId);
      const handed = await this.#link.publishToDevices(fresh, b.bytes);
      this.#sent += handed;
      // A rollout's record keeps each member's status and when it changed; only a baseline send
      // (no rollout) needs a history entry, which also keeps the store file from growing per wave.
      if (rolloutId === null) {
        const at = this.#now();
        for (const id of fresh) this.#history(id, { at, bundleId, seq: b.seq, event: 'sent' });
      }
    };
    this.#tasks.track(go());
  }

  /** docs/architecture.md §6: a device behind its group's baseline, in no rollout in progress, is sent the baseline. */
  async offerBaseline(d: DeviceCore, inRollout: boolean): Promise<void> {
    if (inRollout) return;
    const id = await baselineOf(this.#store, d.group);
    const b = id ? await this.#bundles.load(id) : null;
    const offer = baselineOffer(d, inRollout, id && b ? { id, seq: b.seq } : null);
    // A device that does not trust the baseline's signing key yet gets the rotation to it first (key-rotation.ts).
    if (offer !== null) this.send([d.id], await this.#bundles.bridgeTo(d, offer, this.#rolledBack), null);
  }

  #history(id: string, entry: { at: number; bundleId: string; seq: number; event: DeviceHistoryEvent }): void {
    // A record of what was sent, rebuilt by the device's next state if lost: it shares the next write.
    this.#tasks.track(this.#store.apply([{ type: 'device.history', id, entry: { at: entry.at, bundleId: entry.bundleId, seq: entry.seq, event: entry.event } }], { durable: false }));
  }
}
