// The API's view of a rollout: its state, each wave's figures against its thresholds, and the
// decisions taken. Built from the counters in O(waves + decisions), never by walking the devices,
// and detached from the record (the caller may serialise it while the engine goes on).
import { deadlineStatus, type DeadlineStatus } from './deadline.ts';
import { nextDeadline } from './engine.ts';
import { memberCount, waveFigures } from './figures.ts';
import type { BundleRef, Decision, OnMiss, Rollout, RolloutState, Target, WaveFigures, WaveState, WaveThresholds } from './types.ts';

export interface WaveSummary extends WaveFigures {
  /** from 0: the wave's place in `waves` */
  index: number;
  /** from 1: the wave as people count it (index + 1) */
  number: number;
  state: WaveState;
  /** the cumulative size the plan asked for; `members` is what the wave got */
  plannedSize: number | string;
  /** `members`, under the name the API uses */
  size: number;
  rejectedByReason: Record<string, number>;
  thresholds: WaveThresholds;
  startedAt: number | null;
  deadline: number | null;
  soakUntil: number | null;
  endedAt: number | null;
}

export interface RolloutSummary {
  id: string;
  state: RolloutState;
  bundle: BundleRef;
  target: Target;
  onMiss: OnMiss;
  devices: number;
  /** the wave in progress, or the last one reached */
  wave: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  nextDeadline: number | null;
  waves: WaveSummary[];
  decisions: Decision[];
  /** against its deadline (deadline.ts), when it has one and the time is given */
  deadline?: DeadlineStatus;
}

/** `now` (epoch ms) judges the rollout against its deadline, if it has one. */
export function summary(r: Rollout, now?: number): RolloutSummary {
  const waves = r.waves.map(
    (w): WaveSummary => ({
      index: w.index,
      number: w.index + 1,
      state: w.state,
      plannedSize: w.size,
      ...waveFigures(w),
      size: memberCount(w),
      rejectedByReason: { ...w.rejectedByReason },
      thresholds: { ...w.thresholds },
      startedAt: w.startedAt,
      deadline: w.deadline,
      soakUntil: w.soakUntil,
      endedAt: w.endedAt,
    }),
  );
  return {
    id: r.id,
    state: r.state,
    bundle: { ...r.bundle },
    target: structuredClone(r.target),
    onMiss: r.plan.onMiss,
    devices: waves.reduce((n, w) => n + w.size, 0),
    wave: r.wave,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    nextDeadline: nextDeadline(r),
    waves,
    decisions: structuredClone(r.decisions),
    ...(r.deadline && now !== undefined && { deadline: deadlineStatus(r, now)! }),
  };
}
