// Rollout policy beside the engine (docs/architecture.md §6): which bundle a device that is in no
// rollout in progress is offered, and whether a rollout may be rolled back, to which bundle and to
// which devices. Pure: values in, a decision out; the gateway gathers the values (the device's
// record, the group's baseline, who is revoked) and performs the result.
//
//   const offer = baselineOffer(device, inRollout, baseline);       // → a bundle id, or null
//   const ok = rollbackEligibility(r);                             // → { returnTo } or a 409 reason
//   const to = rollbackTargets(r, (id) => !revoked.has(id));        // → { devices } or a 409 reason
import type { ActionError, BundleRef, Rollout } from './types.ts';

/** What a baseline offer is judged on: the bundle the device last reported running. */
export interface ReportedBundle {
  /** null while the device never reported its state */
  seq: number | null;
  bundleId: string | null;
}

/**
 * docs/architecture.md §6: a group's baseline is the bundle of its last completed rollout, and a
 * device of the group in no rollout in progress that is behind it (a lower seq: provisioned later,
 * or born with older firmware pins) is offered it. A device that never said what it runs is offered
 * nothing, nor one that runs the baseline or anything newer.
 */
export function baselineOffer(device: ReportedBundle, inRollout: boolean, baseline: Pick<BundleRef, 'id' | 'seq'> | null): string | null {
  if (inRollout || baseline === null || device.seq === null) return null;
  if (device.bundleId === baseline.id || device.seq >= baseline.seq) return null;
  return baseline.id;
}

/** A rollout with what the gateway keeps for rollbacks (gateway/rollouts.ts GatewayRollout). */
export type RollbackSubject = Rollout & { previousBundle: string | null; rolledBackBy?: string };

function refused(message: string): ActionError {
  return { ok: false, code: 'PW_INVALID_STATE', message };
}

/**
 * Whether `r` may be rolled back, and the bundle whose pins it returns to: the group's baseline when
 * `r` was created, or null when the group ran no bundle before (its firmware's initial pins: the
 * gateway restores them from the firmware manifests, docs/architecture.md §6). Refused (HTTP 409)
 * while pending (nothing was sent: abort it) and once rolled back. An aborted rollout may be rolled
 * back: an abort (the operator's, or a wave's `onMiss: abort`) stops the sending, and the devices
 * that applied its bundle keep its pins until a rollback restores the previous ones (one that never
 * sent anything is refused by rollbackTargets).
 */
export function rollbackEligibility(r: RollbackSubject): { ok: true; returnTo: string | null } | ActionError {
  if (r.state === 'pending') return refused(`cannot roll back a rollout that is ${r.state}`);
  if (r.rolledBackBy) return refused(`rollout ${r.id} was rolled back already by ${r.rolledBackBy}`);
  return { ok: true, returnTo: r.previousBundle };
}

/** Members the bundle may have reached: sent it at least once (every status but pending and unreachable). */
export function reachedMembers(r: Rollout): string[] {
  const out: string[] = [];
  for (const id in r.devices) {
    const st = r.devices[id].status;
    if (st !== 'pending' && st !== 'unreachable') out.push(id);
  }
  return out;
}

/**
 * The devices a rollback goes to: every member the bundle may have reached that is still live
 * (a revoked device is cut off and needs nothing). None is a 409: abort the rollout instead.
 */
export function rollbackTargets(r: Rollout, live: (id: string) => boolean): { ok: true; devices: string[] } | ActionError {
  const devices = reachedMembers(r).filter(live);
  if (devices.length === 0) return refused(`rollout ${r.id} has not sent its bundle to any device: ${r.state === 'aborted' ? 'nothing to roll back' : 'abort it instead'}`);
  return { ok: true, devices };
}

/**
 * The baseline of `r`'s group (`r.bundle.group`) once `r` is rolled back by a rollout of
 * `rollbackBundle`: a completed group rollout's bundle was the baseline, and so was the bundle of a
 * rollback (a device list) that undid one, from the moment it was created, completed or not. The
 * rollback's bundle takes its place so late joiners and returning devices get the restored pins,
 * never the rolled-back ones. Null: the baseline stands (a rollout that never completed, a
 * device-list target, or a baseline another rollout has set since).
 */
export function baselineAfterRollback(r: Rollout & { rollbackOf?: string | null }, wasCompleted: boolean, baseline: string | null, rollbackBundle: string): string | null {
  if (baseline !== r.bundle.id) return null;
  const wasBaseline = r.rollbackOf ? true : wasCompleted && 'group' in r.target;
  return wasBaseline ? rollbackBundle : null;
}
