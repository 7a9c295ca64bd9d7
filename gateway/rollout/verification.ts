// Health-checked devices in a rollout (docs/architecture.md §9): which devices have a health check,
// what status an ack or a reported state puts a member in, and what counts toward a wave's ratios.
// Pure: the engine asks it on every ack, the gateway when it reads a device's model and firmware.
//
//   hasHealthCheck(manifests, 'th-100', '2.1.0')               // its model's manifest declares one, for that firmware
//   statusOfAck(d.status, { status: 'verified', ... })          // → 'verified', or null: no change
//   statusOfState(d.status, { bundleId, provisional, ... }, r.bundle.id)
import type { DeviceAck, DeviceReportedState, DeviceStatus, StatusCounts, WaveThresholds } from './types.ts';

/** What hasHealthCheck needs of a firmware manifest. */
export interface ManifestLike {
  model: string;
  firmware: string;
  healthCheck?: unknown;
}

/**
 * A device's firmware has a health check when its model's manifest declares one and the device runs
 * that manifest's firmware version: a device on other firmware (older, without the machine) is
 * judged as one without, and counts `applied`.
 */
export function hasHealthCheck(manifests: Pick<ReadonlyMap<string, ManifestLike>, 'get'>, model: string | null | undefined, firmware: string | null | undefined): boolean {
  if (!model || !firmware) return false;
  const m = manifests.get(model);
  return m !== undefined && m.healthCheck !== undefined && m.healthCheck !== null && m.firmware === firmware;
}

/** Statuses of a member that holds the bundle, or held it and reverted: an ack of `applied` never moves one back. */
const HOLDS: ReadonlySet<DeviceStatus> = new Set(['applied', 'verifying', 'verified', 'unverified', 'failing', 'reverted']);
/** Statuses a rejection may replace: the member has not got the bundle (a rejection from one that has is a replay). */
const NOT_GOT: ReadonlySet<DeviceStatus> = new Set(['pending', 'sent', 'timed_out', 'unreachable']);

/**
 * The status an ack moves a member to, or null when it changes nothing. `verified` and `reverted`
 * are verdicts: they replace any status but a verdict (and `failing`, which telemetry proved). An
 * `applied` ack of a health-checked device is `verifying` (its window is open) or, with unverified
 * endpoints, `unverified` (it committed without verification); of any other device, `applied`.
 */
export function statusOfAck(current: DeviceStatus, ack: DeviceAck): DeviceStatus | null {
  switch (ack.status) {
    case 'reverted':
      return current === 'reverted' ? null : 'reverted';
    case 'verified':
      return current === 'verified' || current === 'reverted' || current === 'failing' ? null : 'verified';
    case 'rejected':
      return NOT_GOT.has(current) ? 'rejected' : null;
    case 'applied': {
      if (!ack.healthChecked) return HOLDS.has(current) ? null : 'applied';
      if (ack.unverified) return HOLDS.has(current) && current !== 'verifying' ? null : 'unverified';
      return HOLDS.has(current) ? null : 'verifying';
    }
    default:
      // A status no device sends (decoders refuse it): nothing changes.
      return null;
  }
}

/**
 * The status a reported state moves a member to when it names this rollout's bundle, or null. A
 * provisional window open on it is `verifying`, never done; a health-checked device that runs it
 * with no window open and no answer seen is `unverified` (its `verified` ack, resent, still
 * upgrades it). A verifying member stays so until its verdict comes: its device resends a verdict
 * the broker did not take, and the gateway's own record of what it runs says nothing of a window.
 */
export function statusOfState(current: DeviceStatus, state: DeviceReportedState): DeviceStatus | null {
  if (HOLDS.has(current)) return null;
  if (state.provisional) return 'verifying';
  return state.healthChecked ? 'unverified' : 'applied';
}

/** Whether requireVerified is on: a record written before the field existed reads as on. */
export const requiresVerified = (t: WaveThresholds): boolean => t.requireVerified !== false;

/** The reason a `failing` member carries when it had not verified (a health-checked device still verifying, or committed unverified). */
export const FAILING_UNVERIFIED = 'unverified';

/**
 * Members that count toward the ack ratio: `verified` and `applied` always; a `failing` member as
 * what it was before its pin failures (docs/architecture.md §6: it applied, §9: under
 * requireVerified a health-checked device counts only once verified), so a failing member that had
 * not verified (`failingUnverified` of the wave's failing members) counts only with requireVerified
 * off, as `verifying` and `unverified` do. A pin failure never lifts a wave over its ack threshold.
 */
export function ackedCount(c: StatusCounts, t: WaveThresholds, failingUnverified = 0): number {
  const base = c.applied + (c.verified ?? 0) + c.failing;
  return requiresVerified(t) ? base - failingUnverified : base + (c.verifying ?? 0) + (c.unverified ?? 0);
}

/** Members that answered: every status but pending, sent, timed_out and unreachable. */
export function respondedCount(c: StatusCounts): number {
  return c.applied + c.failing + c.rejected + (c.verifying ?? 0) + (c.verified ?? 0) + (c.unverified ?? 0) + (c.reverted ?? 0);
}

/** Members that count against the failure ratio: a revert counts at once, like a rejection. */
export function failedCount(c: StatusCounts): number {
  return c.rejected + c.failing + (c.reverted ?? 0);
}
