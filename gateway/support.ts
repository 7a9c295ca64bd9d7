// Support queries (docs/architecture.md §6 "Stuck devices"): which devices of a group or a rollout
// are not on the pins they should hold, gathered from the store and the rollouts for the pure
// gateway/stuck.ts, which says why.
import type { Bundles } from './bundles.ts';
import { invalid } from './errors.ts';
import type { Rollouts } from './rollouts.ts';
import type { IsOnline } from './rollout/types.ts';
import type { DeviceRecord, Store } from './store/types.ts';
import { findStuck, type StuckDevice } from './stuck.ts';

export interface SupportOptions {
  store: Store;
  bundles: Bundles;
  rollouts: Rollouts;
  isOnline: IsOnline;
  now: () => number;
}

export class Support {
  readonly #o: SupportOptions;

  constructor(o: SupportOptions) {
    this.#o = o;
  }

  /** Devices not on the target seq, each with why, oldest first. */
  async stuck(query: { group?: string; rollout?: string }): Promise<StuckDevice[]> {
    const { store, bundles, rollouts, isOnline, now } = this.#o;
    if ((query.group === undefined) === (query.rollout === undefined)) throw invalid('give exactly one of group or rollout');
    if (query.rollout !== undefined) {
      const r = rollouts.get(query.rollout);
      const ids = Object.keys(r.devices);
      const devices = await Promise.all(ids.map((id) => store.getDevice(id)));
      return findStuck({ devices: devices.filter((d): d is DeviceRecord => d !== null), targetSeq: r.bundle.seq, targetBundle: r.bundle.id, rollout: r, isOnline, now: now() });
    }
    const group = query.group!;
    const baseline = await store.getBaseline(group);
    const running = [...rollouts.all()].filter((r) => 'group' in r.target && r.target.group === group && (r.state === 'running' || r.state === 'held'));
    const target = running.length > 0 ? running[running.length - 1] : null;
    const base = baseline ? await bundles.load(baseline) : null;
    const targetSeq = target?.bundle.seq ?? base?.seq ?? null;
    if (targetSeq === null) return [];
    const ids = await store.devicesInGroup(group);
    const devices = (await Promise.all(ids.map((id) => store.getDevice(id)))).filter((d): d is DeviceRecord => d !== null && d.revokedAt === null);
    return findStuck({ devices, targetSeq, targetBundle: target?.bundle.id ?? baseline!, rollout: target, isOnline, now: now() });
  }
}
