// The ratios a wave is judged on (docs/architecture.md §6, §9), from its per-status counters: O(1), so they
// can be re-checked on every ack.
//
// Offline is not failure: unreachable members (offline for the whole wave) are counted apart
// and left out of the ack ratio's denominator; a wave whose unreachable share passes
// maxUnreachable is held on its own account, since a dark wave proves nothing. A success report is
// not health: with requireVerified, a health-checked device counts once it acked `verified`, and a
// `reverted` one counts against the failure ratio at once (verification.ts).
import type { Wave, WaveFigures } from './types.ts';
import { ackedCount, failedCount, respondedCount } from './verification.ts';

/**
 * The wave's member count. Every member has one status, so the counts add up to it: a rollout
 * compacted in the store (docs/storage.md, bounded growth) comes back with no member ids and its
 * counts, and is judged and shown from those.
 */
export function memberCount(w: Wave): number {
  if (w.members.length > 0) return w.members.length;
  let n = 0;
  for (const v of Object.values(w.count)) n += v ?? 0;
  return n;
}

/** acked / reachable members (acked: verification.ts ackedCount); 1 when none is reachable. */
export function ackRatio(w: Wave): number {
  const reachable = memberCount(w) - w.count.unreachable;
  return reachable === 0 ? 1 : ackedCount(w.count, w.thresholds, w.failingUnverified) / reachable;
}

/** (rejected + failing + reverted) / responded; 0 when nobody has responded. */
export function failureRatio(w: Wave): number {
  const responded = respondedCount(w.count);
  return responded === 0 ? 0 : failedCount(w.count) / responded;
}

/** The failure ratio counts once minDevices have responded (or every reachable member, in a smaller wave). */
export function failureCounted(w: Wave): boolean {
  return respondedCount(w.count) >= Math.min(w.thresholds.minDevices, memberCount(w) - w.count.unreachable);
}

export function failureCrossed(w: Wave): boolean {
  return failureCounted(w) && failureRatio(w) > w.thresholds.failureThreshold;
}

export function unreachableRatio(w: Wave): number {
  const n = memberCount(w);
  return n === 0 ? 0 : w.count.unreachable / n;
}

export function waveFigures(w: Wave): WaveFigures {
  const c = w.count;
  return {
    members: memberCount(w),
    pending: c.pending,
    sent: c.sent,
    applied: c.applied,
    rejected: c.rejected,
    failing: c.failing,
    timedOut: c.timed_out,
    unreachable: c.unreachable,
    verifying: c.verifying ?? 0,
    verified: c.verified ?? 0,
    unverified: c.unverified ?? 0,
    reverted: c.reverted ?? 0,
    acked: ackedCount(c, w.thresholds, w.failingUnverified),
    responded: respondedCount(c),
    ackRatio: ackRatio(w),
    failureRatio: failureRatio(w),
    failureCounted: failureCounted(w),
    unreachableRatio: unreachableRatio(w),
  };
}
