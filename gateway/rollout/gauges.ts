// What /metrics shows of the rollouts in flight (docs/architecture.md §6, §9): members of running and held
// rollouts by status (verified and reverted beside applied and rejected), and how many of them are
// at risk of missing their deadline. From the wave counters: O(rollouts × waves), no device walk.
import type { DeviceStatus, Rollout, RolloutState } from './types.ts';

export interface RolloutGauges {
  byState: Record<RolloutState, number>;
  /** one per held rollout */
  heldWaves: number;
  /** members of running and held rollouts, by status */
  members: Record<DeviceStatus, number>;
  /** running and held rollouts whose last deadline verdict is at_risk */
  atRisk: number;
}

export function rolloutGauges(rollouts: Iterable<Rollout>): RolloutGauges {
  const byState: Record<RolloutState, number> = { pending: 0, running: 0, held: 0, completed: 0, aborted: 0 };
  const members: Record<DeviceStatus, number> = { pending: 0, sent: 0, applied: 0, rejected: 0, timed_out: 0, failing: 0, unreachable: 0, verifying: 0, verified: 0, unverified: 0, reverted: 0 };
  let atRisk = 0;
  for (const r of rollouts) {
    byState[r.state]++;
    if (r.state !== 'running' && r.state !== 'held') continue;
    if (r.deadline?.status === 'at_risk') atRisk++;
    for (const w of r.waves) for (const k of Object.keys(members) as DeviceStatus[]) members[k] += w.count[k] ?? 0;
  }
  return { byState, heldWaves: byState.held, members, atRisk };
}
