// Support's question (docs/architecture.md §6, stuck devices): which devices are not on the pins they should
// hold, and why. Pure: the caller passes the devices, the target and who is online.
import type { Rollout } from './rollout/types.ts';
import { requiresVerified } from './rollout/verification.ts';
import type { DeviceRecord } from './store/types.ts';

/** `verifying`: its provisional window is open, or it committed with no verified ack seen (docs/architecture.md §9). */
export type StuckReason = 'never_connected' | 'offline' | 'no_ack' | 'failing' | 'verifying' | `rejected:${string}` | `reverted:${string}`;

export interface StuckDevice {
  id: string;
  group: string;
  model: string | null;
  /** what the device last reported */
  seq: number | null;
  bundle: string | null;
  /** the seq it should be on */
  targetSeq: number;
  reason: StuckReason;
  /** since when (epoch ms): provisioning, last disconnect, when the bundle was sent, or the rejection */
  since: number | null;
  connected: boolean;
}

export interface StuckInput {
  devices: DeviceRecord[];
  targetSeq: number;
  targetBundle: string;
  /** the rollout the devices are judged in, if any: its statuses give the reason */
  rollout: Rollout | null;
  isOnline: (id: string) => boolean;
  now: number;
}

/** Devices not on the target, each with its reason, oldest first. Devices whose wave has not been reached yet are waiting, not stuck. */
export function findStuck(input: StuckInput): StuckDevice[] {
  const out: StuckDevice[] = [];
  for (const d of input.devices) {
    const entry = input.rollout?.devices[d.id];
    const failing = entry?.status === 'failing';
    // Holding the bundle is not enough while its health check has not said yes (docs/architecture.md §9).
    const verifying = entry !== undefined && (entry.status === 'verifying' || entry.status === 'unverified') && requiresVerified(input.rollout!.waves[entry.wave].thresholds);
    const onTarget = d.bundleId === input.targetBundle || (d.seq ?? 0) >= input.targetSeq;
    if (onTarget && !failing && !verifying) continue;
    if (entry && entry.status === 'pending' && input.rollout!.waves[entry.wave]?.state === 'pending') continue;
    const connected = input.isOnline(d.id);
    let reason: StuckReason;
    let since: number | null;
    const lastRejection = [...d.history].reverse().find((h) => h.bundleId === input.targetBundle && (h.event === 'rejected' || h.event === 'reverted'));
    const lastSent = [...d.history].reverse().find((h) => h.bundleId === input.targetBundle && h.event === 'sent');
    if (failing) {
      reason = 'failing';
      since = entry?.at ?? null;
    } else if (entry?.status === 'reverted' || (!entry && lastRejection?.event === 'reverted')) {
      // Back on its previous pins by its own health check: the endpoint that would have locked it out.
      reason = `reverted:${entry?.reason ?? lastRejection?.reason ?? 'unspecified'}`;
      since = entry?.at ?? lastRejection?.at ?? null;
    } else if (verifying) {
      reason = 'verifying';
      since = entry.at;
    } else if (entry?.status === 'rejected' || (!entry && lastRejection)) {
      reason = `rejected:${entry?.reason ?? lastRejection?.reason ?? 'unspecified'}`;
      since = entry?.at ?? lastRejection?.at ?? null;
    } else if (d.lastSeen === null && !connected) {
      reason = 'never_connected';
      since = d.createdAt;
    } else if (!connected) {
      reason = 'offline';
      since = d.lastDisconnectAt ?? d.lastSeen;
    } else {
      reason = 'no_ack';
      since = entry?.at ?? lastSent?.at ?? d.lastConnectAt;
    }
    out.push({ id: d.id, group: d.group, model: d.model, seq: d.seq, bundle: d.bundleId, targetSeq: input.targetSeq, reason, since, connected });
  }
  return out.sort((a, b) => (a.since ?? 0) - (b.since ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
