// The ratios a wave is judged on (docs/architecture.md §6), from its per-status counters: O(1), so they
// can be re-checked on every ack.
//
// Offline is not failure: unreachable members (offline for the whole wave) are counted apart
// and left out of the ack ratio's denominator; a wave whose unreachable share passes
// maxUnreachable is held on its own account, since a dark wave proves nothing.
import type { Wave, WaveFigures } from './types.ts';

/** acked / reachable members, where acked = applied + failing (a failing device did apply); 1 when none is reachable. */
export function ackRatio(w: Wave): number {
  const reachable = w.members.length - w.count.unreachable;
  return reachable === 0 ? 1 : (w.count.applied + w.count.failing) / reachable;
}

/** (rejected + failing) / responded; 0 when nobody has responded. */
export function failureRatio(w: Wave): number {
  const bad = w.count.rejected + w.count.failing;
  const responded = w.count.applied + w.count.failing + w.count.rejected;
  return responded === 0 ? 0 : bad / responded;
}

/** The failure ratio counts once minDevices have responded (or every reachable member, in a smaller wave). */
export function failureCounted(w: Wave): boolean {
  const responded = w.count.applied + w.count.failing + w.count.rejected;
  return responded >= Math.min(w.thresholds.minDevices, w.members.length - w.count.unreachable);
}

export function failureCrossed(w: Wave): boolean {
  return failureCounted(w) && failureRatio(w) > w.thresholds.failureThreshold;
}

export function unreachableRatio(w: Wave): number {
  return w.count.unreachable / w.members.length;
}

export function waveFigures(w: Wave): WaveFigures {
  const c = w.count;
  return {
    members: w.members.length,
    pending: c.pending,
    sent: c.sent,
    applied: c.applied,
    rejected: c.rejected,
    failing: c.failing,
    timedOut: c.timed_out,
    unreachable: c.unreachable,
    acked: c.applied + c.failing,
    responded: c.applied + c.failing + c.rejected,
    ackRatio: ackRatio(w),
    failureRatio: failureRatio(w),
    failureCounted: failureCounted(w),
    unreachableRatio: unreachableRatio(w),
  };
}
