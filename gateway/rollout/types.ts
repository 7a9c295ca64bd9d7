// The rollout record and the values the engine takes and returns (docs/architecture.md §6).
// A Rollout is plain JSON data: it is persisted as-is and resumed after a restart by
// JSON.parse alone, so nothing in it may be a Map, Set, class instance or function.
import type { ApprovalRequest } from './approval.ts';

/** The bundle a rollout sends: `id` is the hex SHA-256 of its payload (docs/architecture.md §3). */
export interface BundleRef {
  id: string;
  seq: number;
  group: string;
}

/** Who a rollout is for, as the operator named it; resolved to device ids by the caller at creation. */
export type Target = { group: string } | { devices: string[] };

export type RolloutState = 'pending' | 'running' | 'held' | 'completed' | 'aborted';
/**
 * `aborted`: the wave in progress when its rollout was aborted (by an operator, a rollback or
 * `onMiss: abort`); `cancelled`: a wave the rollout never reached before it was aborted
 * (docs/architecture.md §6). A missed or passed wave keeps its state.
 */
export type WaveState = 'pending' | 'active' | 'soaking' | 'passed' | 'missed' | 'aborted' | 'cancelled';
/**
 * Where a member stands (docs/architecture.md §6, §9). `applied`: a device without a health check
 * holds the bundle. A device whose firmware has one is `verifying` while it holds it provisionally,
 * `verified` once it committed with every check passed, `unverified` once it committed without a
 * verified ack (its endpoints never answered, or it reported a committed state with no ack seen),
 * and `reverted` when it went back to its previous trust state by itself.
 */
export type DeviceStatus =
  | 'pending'
  | 'sent'
  | 'applied'
  | 'rejected'
  | 'timed_out'
  | 'failing'
  | 'unreachable'
  | 'verifying'
  | 'verified'
  | 'unverified'
  | 'reverted';
export type OnMiss = 'hold' | 'abort';

/** Why a wave stopped the rollout; `paused` is the operator's own hold. */
export type HoldReason = 'failure_threshold' | 'ack_threshold' | 'max_unreachable' | 'paused';

/** What decides whether a wave passes. Every field has a default (WAVE_DEFAULTS). */
export interface WaveThresholds {
  /** share of reachable members that must ack `applied` (0..1); default 0.95 */
  ackThreshold: number;
  /** share of responders that rejected or report pin failures above which the wave is held at once (0..1); default 0.02 */
  failureThreshold: number;
  /** responders needed before the failure ratio counts (capped at the reachable members); default 5 */
  minDevices: number;
  /** share of members offline for the whole wave above which the wave is held (0..1); default 0.5 */
  maxUnreachable: number;
  /** from the wave's start to its deadline, seconds; default 3600 */
  timeoutSeconds: number;
  /** after the ack threshold is met, how long failures may still hold the wave, seconds; default 0 */
  soakSeconds: number;
  /**
   * only `verified` counts toward the ack ratio for devices whose firmware has a health check
   * (docs/architecture.md §9); devices without one count `applied`. Default true. A record written
   * before this field existed reads as true.
   */
  requireVerified: boolean;
}

/** A wave as the operator writes it. Sizes are cumulative: the share of the target reached by the end of this wave. */
export interface WavePlanInput extends Partial<WaveThresholds> {
  /** a device count (25) or a percentage of the target ("10%"); the last wave always takes the remainder */
  size: number | string;
}

export interface PlanInput {
  /** default: 1%, 10%, 50%, 100% with default thresholds */
  waves?: WavePlanInput[];
  /** what a missed wave does to the rollout; default 'hold' */
  onMiss?: OnMiss;
  /** orders the target into waves; default: the rollout id */
  seed?: string;
}

export interface WavePlan extends WaveThresholds {
  size: number | string;
}

/** A validated plan with every default filled in. */
export interface Plan {
  waves: WavePlan[];
  onMiss: OnMiss;
  seed: string;
}

/** Per-status member counts of one wave, kept in step with the device records so ratios are O(1). */
export type StatusCounts = Record<DeviceStatus, number>;

export interface Wave {
  index: number;
  /** the plan wave this one came from: waves that would get no new device are dropped, leaving gaps */
  planIndex: number;
  /** the size as planned (cumulative) */
  size: number | string;
  /** member device ids, in seed order */
  members: string[];
  /** in force for this wave; the operator may change them on resume */
  thresholds: WaveThresholds;
  state: WaveState;
  startedAt: number | null;
  /** epoch ms; members not acked by then are timed_out, or unreachable if never sent */
  deadline: number | null;
  soakUntil: number | null;
  endedAt: number | null;
  /** whether the sweep at `deadline` has run (reset when resume sets a fresh deadline) */
  swept: boolean;
  count: StatusCounts;
  /**
   * Of `count.failing`, the members that had not verified (reason FAILING_UNVERIFIED,
   * verification.ts): derived from the members, not stored while the rollout keeps them
   * (rebuildCounters counts it at load); a compacted rollout, whose members are gone, keeps it in
   * its wave's header (docs/storage.md, bounded growth).
   */
  failingUnverified?: number;
  /** rejections by the device's named reason (docs/architecture.md §3), 'unspecified' when it gave none */
  rejectedByReason: Record<string, number>;
}

export interface DeviceEntry {
  /** index into Rollout.waves */
  wave: number;
  status: DeviceStatus;
  /** the device's reason, while status is 'rejected'; the endpoint (`host:port`), while 'reverted'; FAILING_UNVERIFIED while 'failing' after no verified ack (verification.ts) */
  reason?: string;
  /** epoch ms of the last status change, null while never touched */
  at: number | null;
}

/** `request_approval` and `approve` are the approval gate's (approval.ts, docs/architecture.md §10); `at_risk` and `on_track` the deadline's (deadline.ts, §9). */
export type DecisionAction = 'start' | 'pause' | 'resume' | 'abort' | 'hold' | 'soak' | 'pass' | 'complete' | 'rollback' | 'request_approval' | 'approve' | 'at_risk' | 'on_track' | 'force';

/** The ratios a wave is judged on; attached to every automatic decision. */
export interface WaveFigures {
  members: number;
  pending: number;
  sent: number;
  applied: number;
  rejected: number;
  failing: number;
  timedOut: number;
  unreachable: number;
  verifying: number;
  verified: number;
  unverified: number;
  reverted: number;
  /** applied + verified + failing, less failing members that had not verified under requireVerified; verifying + unverified unless requireVerified (verification.ts ackedCount) */
  acked: number;
  /** every member that answered: acked, verifying, unverified, rejected, reverted */
  responded: number;
  /** acked / (members - unreachable); 1 when no member is reachable */
  ackRatio: number;
  /** (rejected + failing + reverted) / responded; 0 when nobody responded */
  failureRatio: number;
  /** whether enough members responded for failureRatio to count (minDevices) */
  failureCounted: boolean;
  /** unreachable / members */
  unreachableRatio: number;
}

/** One entry of the audit log. Every state change the engine or an operator makes appends one. */
export interface Decision {
  at: number;
  /** the operator's name, or 'system' for the engine's own decisions */
  actor: string;
  action: DecisionAction;
  reason: string;
  /** rollout state before and after */
  from: RolloutState;
  to: RolloutState;
  /** the wave decided on, with its state before and after */
  wave?: number;
  waveFrom?: WaveState;
  waveTo?: WaveState;
  figures?: WaveFigures;
  /** on resume: the thresholds now in force for the wave */
  thresholds?: WaveThresholds;
  /** on resume: which waves took the new thresholds, the held one only or it and every later one (engine.ts resume) */
  scope?: 'held' | 'remaining';
  /** on force: the pre-flight refusals the operator overrode (gateway/continuity.ts) */
  findings?: string[];
  /** on a hold for reverts: the endpoint (`host:port`) the device that crossed the threshold reverted on */
  endpoint?: string;
  /** on at_risk / on_track: the deadline and the date projected from progress (epoch ms; null: no progress yet) */
  deadline?: number;
  projected?: number | null;
  /** on request_approval: operators who must agree (the creator being one) and the pins removed */
  approval?: ApprovalRequest;
}

export interface Rollout {
  /** record format, for migrations of persisted rollouts */
  format: 1;
  id: string;
  bundle: BundleRef;
  target: Target;
  plan: Plan;
  state: RolloutState;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
  /** index of the wave in progress (or the last one reached) */
  wave: number;
  waves: Wave[];
  /** by device id; a prototype-less object so that no device id can collide with Object.prototype */
  devices: Record<string, DeviceEntry>;
  decisions: Decision[];
  /** the rollout's deadline and target share (deadline.ts; docs/architecture.md §9), when it has one */
  deadline?: RolloutDeadline;
}

/** A deadline a rollout must reach its target share by. */
export interface RolloutDeadline {
  /** epoch ms */
  at: number;
  /** share of the target that must hold the bundle by then (0..1); default 0.95 */
  targetRatio: number;
  /** how `at` was given: an ISO date, or a certificate's notAfter less marginDays */
  source: { kind: 'date' } | { kind: 'certificate'; notAfter: number; marginDays: number; subject?: string };
  /** the last verdict recorded (a decision marks each change); null before the first */
  status: 'on_track' | 'at_risk' | null;
}

/** What the gateway must do after an engine call. `persist` comes last, whenever the record changed. */
export type Effect =
  | { type: 'send'; deviceIds: string[] }
  | { type: 'held'; wave: number; reason: HoldReason }
  | { type: 'completed' }
  | { type: 'aborted'; reason: string }
  | { type: 'at_risk'; deadline: number; projected: number | null }
  /** the record changed; `members`: the ids whose entry in `devices` changed (the rest of the record is small and compared whole) */
  | { type: 'persist'; members: string[] };

/** Whether a device is connected now; called, never stored. */
export type IsOnline = (deviceId: string) => boolean;

/** A device's ack (docs/architecture.md §5). The bundle id decides which rollout it is for: it covers the seq. */
export interface DeviceAck {
  status: 'applied' | 'rejected' | 'verified' | 'reverted';
  /** the named reason of a rejection (docs/architecture.md §3) */
  reason?: string;
  bundleId: string;
  seq: number;
  /** whether the device's firmware has a health check (its model's manifest, its firmware version); default false */
  healthChecked?: boolean;
  /** an `applied` ack of a health-checked device that committed without verifying these endpoints */
  unverified?: boolean;
  /** a `reverted` ack: the endpoint that would have locked the device out, `host:port` */
  endpoint?: string;
}

/** What a device reports on every connect: the bundle it runs. */
export interface DeviceReportedState {
  seq: number;
  /** null while the device runs its firmware's initial pins */
  bundleId: string | null;
  /** whether the device's firmware has a health check; default false */
  healthChecked?: boolean;
  /** a provisional window is open: `bundleId` is being verified, `previousSeq` is what a revert goes back to */
  provisional?: { previousSeq: number; previousBundleId: string | null };
}

export type ErrorCode = 'PW_INVALID_STATE' | 'PW_INVALID_PLAN';

/** An operator action the rollout's state forbids (HTTP 409), or invalid thresholds (HTTP 400). */
export interface ActionError {
  ok: false;
  code: ErrorCode;
  message: string;
  /** each invalid field, when code is PW_INVALID_PLAN */
  errors?: string[];
}

export type ActionResult = { ok: true; effects: Effect[] } | ActionError;

/** Invalid input from an operator (HTTP 400): one message per field, naming it and the value that came. */
export interface Invalid {
  ok: false;
  errors: string[];
}
