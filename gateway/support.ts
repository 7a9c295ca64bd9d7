// Support queries (docs/architecture.md §6 "Stuck devices"): which devices of a group or a rollout
// are not on the pins they should hold, gathered from the store and the rollouts for the pure
// gateway/stuck.ts, which says why.
import type { Bundles } from './bundles.ts';
import { invalid } from './errors.ts';
import type { Rollouts } from './rollouts.ts';
import type { DeviceEntry, IsOnline, Rollout } from './rollout/types.ts';
import type { DeviceRecord } from './store/types.ts';
import type { ChangeStore } from './store/changes.ts';
import { activeDevicesOf, allDevices, baselineOf } from './fleet-reads.ts';
import { findStuck, type StuckDevice } from './stuck.ts';
import { forecast, type Forecast, type ForecastQuery } from './forecast.ts';
import type { FirmwareManifest, PinBundle } from '../firmware-manifest/index.ts';

export interface SupportOptions {
  store: ChangeStore;
  bundles: Bundles;
  rollouts: Rollouts;
  isOnline: IsOnline;
  now: () => number;
  /** firmware manifests by model, for the forecast of devices on their firmware pins */
  manifests: { byModel(): ReadonlyMap<string, FirmwareManifest> };
}

/** A copy of what findStuck reads of a rollout (its members' statuses and its waves), which the engine changes in place. */
function statusesOf(r: Rollout): Rollout {
  const devices: Record<string, DeviceEntry> = Object.create(null) as Record<string, DeviceEntry>;
  for (const id in r.devices) devices[id] = { ...r.devices[id] };
  return { ...r, devices, waves: r.waves.map((w) => ({ ...w, thresholds: { ...w.thresholds } })) };
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
    // The rollout's statuses as committed, then the devices (docs/architecture.md §7): a device's
    // ack moves its status in memory before its seq reaches the store, and the two are judged together.
    if (query.rollout !== undefined) {
      const id = query.rollout;
      const r = await rollouts.committed([id], () => statusesOf(rollouts.get(id)));
      const ids = Object.keys(r.devices);
      const devices: Array<DeviceRecord | null> = [];
      for (let i = 0; i < ids.length; i += 10_000) devices.push(...(await store.getDevices(ids.slice(i, i + 10_000))));
      return findStuck({ devices: devices.filter((d): d is DeviceRecord => d !== null), targetSeq: r.bundle.seq, targetBundle: r.bundle.id, rollout: r, isOnline, now: now() });
    }
    const group = query.group!;
    const target = await rollouts.committed(null, () => {
      const running = [...rollouts.all()].filter((r) => 'group' in r.target && r.target.group === group && (r.state === 'running' || r.state === 'held'));
      return running.length > 0 ? statusesOf(running[running.length - 1]) : null;
    });
    const baseline = await baselineOf(store, group);
    const base = baseline ? await bundles.load(baseline) : null;
    const targetSeq = target?.bundle.seq ?? base?.seq ?? null;
    if (targetSeq === null) return [];
    const devices = await activeDevicesOf(store, group);
    return findStuck({ devices, targetSeq, targetBundle: target?.bundle.id ?? baseline!, rollout: target, isOnline, now: now() });
  }

  /**
   * The lockout forecast (docs/architecture.md §9, gateway/forecast.ts): the devices that would lock
   * themselves out of `host:port` if it served `pins` at `at` (seconds; default now), a page of them after `cursor`.
   */
  async forecast(q: Omit<ForecastQuery, 'at'> & { at?: number }, page: { limit?: number; cursor?: string } = {}): Promise<Forecast & { next: string | null }> {
    const { store, bundles, rollouts, manifests, now } = this.#o;
    const query = { ...q, at: q.at ?? Math.floor(now() / 1000) };
    const devices = await allDevices(store);
    const inFlight = (id: string) => {
      const r = rollouts.activeRolloutOf(id);
      const status = r?.devices[id]?.status as string | undefined;
      return r && status !== 'rejected' && status !== 'reverted' ? { rollout: r.id, bundleId: r.bundle.id } : null;
    };
    const decoded = new Map<string, PinBundle>();
    for (const id of new Set([...devices.map((d) => d.bundleId), ...devices.map((d) => inFlight(d.id)?.bundleId ?? null)])) {
      const b = id === null ? null : await bundles.decoded(id).then((x) => x.bundle, () => null);
      if (b) decoded.set(id!, b);
    }
    const f = forecast({ devices, bundles: decoded, manifests: manifests.byModel(), inFlight, query });
    const from = page.cursor === undefined ? 0 : f.items.findIndex((d) => d.id > page.cursor!);
    const n = page.limit ?? 100;
    const items = from < 0 ? [] : f.items.slice(from, from + n);
    return { ...f, items, next: from >= 0 && from + n < f.items.length ? items[items.length - 1].id : null };
  }
}
