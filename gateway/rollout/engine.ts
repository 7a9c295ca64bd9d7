// The rollout engine (docs/architecture.md §6): a pure state machine. Events and operator actions take the
// rollout record, the time (`now`, epoch ms) and whatever else they need as arguments, change the
// record in place, and return the effects the gateway must carry out (send, held, completed,
// aborted, persist). No clock, timer, randomness or I/O here: the gateway calls tick() on a
// timer (nextDeadline() says when it next matters) and passes who is online as a function.
//
//   const c = createRollout({ id, bundle, target, deviceIds, plan, now });
//   if (!c.ok) return reply.code(400).send(c.errors);
//   apply(start(c.rollout, now, 'alice', isOnline));        // → send to wave 0's online members
//   apply(deviceAcked(r, 'dev-7', ack, now));                // O(1); may hold the rollout at once
//   apply(tick(r, now, isOnline));                           // deadlines, soak ends, next waves
//
// Rollout: pending → running → (held ⇄ running) → completed | aborted.
// Wave:    pending → active → soaking → passed | missed; when the rollout is aborted, the wave in
//          progress (active, soaking) → aborted, the waves not reached (pending) → cancelled.
// Device:  pending → sent → applied | rejected | timed_out; applied → failing; pending →
//          unreachable at the deadline; pending, unreachable, timed_out → sent when it comes online.
//          A health-checked device (docs/architecture.md §9): sent → verifying → verified | reverted |
//          unverified (verification.ts); a reverted one is on its previous seq and is never sent
//          the bundle again.
import { failureCrossed, ackRatio, unreachableRatio, waveFigures } from './figures.ts';
import { checkThresholds, cutWaves, seedOrder, shown, validatePlan } from './plan.ts';
import { FAILING_UNVERIFIED, statusOfAck, statusOfState } from './verification.ts';
import { deadlineChange } from './deadline.ts';
import type {
  ActionError,
  ActionResult,
  BundleRef,
  Decision,
  DeviceAck,
  DeviceEntry,
  DeviceReportedState,
  DeviceStatus,
  Effect,
  HoldReason,
  Invalid,
  IsOnline,
  Rollout,
  RolloutDeadline,
  RolloutState,
  StatusCounts,
  Target,
  Wave,
  WaveThresholds,
} from './types.ts';

const SYSTEM = 'system';
const UNSPECIFIED = 'unspecified';
const BUNDLE_ID = /^[0-9a-f]{64}$/;

/** What one call is building: its effects, and whether the record changed (→ persist). */
interface Step {
  r: Rollout;
  now: number;
  fx: Effect[];
  dirty: boolean;
  /** the members whose status this call changed, in order (what `persist` carries) */
  touched: string[];
  /** the endpoint of the revert this call handles, recorded with a hold it causes */
  revertedOn?: string;
}

function step(r: Rollout, now: number): Step {
  return { r, now, fx: [], dirty: false, touched: [] };
}

function done(s: Step): Effect[] {
  if (s.dirty) s.fx.push({ type: 'persist', members: s.touched });
  return s.fx;
}

function emptyCounts(): StatusCounts {
  return { pending: 0, sent: 0, applied: 0, rejected: 0, timed_out: 0, failing: 0, unreachable: 0, verifying: 0, verified: 0, unverified: 0, reverted: 0 };
}

// Device ids and rejection reasons come from devices; a key such as "__proto__" must land as an
// own property, never reach Object.prototype's setter.
function lookup(r: Rollout, id: string): DeviceEntry | undefined {
  return Object.hasOwn(r.devices, id) ? r.devices[id] : undefined;
}

// A record written by hand (or by an older writer) may hold a rejection without its reason.
const reasonOf = (d: DeviceEntry): string => d.reason ?? UNSPECIFIED;

function tally(map: Record<string, number>, key: string, delta: number): void {
  if (!Object.hasOwn(map, key)) {
    Object.defineProperty(map, key, { value: delta, writable: true, enumerable: true, configurable: true });
  } else if ((map[key] += delta) === 0) {
    delete map[key];
  }
}

/** Every status change goes through here, so the wave's counters never drift from the device records. */
function setStatus(s: Step, id: string, d: DeviceEntry, status: DeviceStatus, reason?: string): void {
  s.touched.push(id);
  const w = s.r.waves[d.wave];
  w.count[d.status]--;
  if (d.status === 'rejected') tally(w.rejectedByReason, reasonOf(d), -1);
  if (d.status === 'failing' && d.reason === FAILING_UNVERIFIED) w.failingUnverified = (w.failingUnverified ?? 1) - 1;
  delete d.reason;
  d.status = status;
  d.at = s.now;
  // A record written before the health-check statuses existed has no counter for them yet.
  w.count[status] = (w.count[status] ?? 0) + 1;
  if (status === 'rejected') {
    d.reason = reason ?? UNSPECIFIED;
    tally(w.rejectedByReason, d.reason, 1);
  } else if (status === 'reverted' && reason !== undefined) {
    d.reason = reason;
  } else if (status === 'failing' && reason === FAILING_UNVERIFIED) {
    d.reason = reason;
    w.failingUnverified = (w.failingUnverified ?? 0) + 1;
  }
  s.dirty = true;
}

function decide(s: Step, d: Omit<Decision, 'at'>): void {
  s.r.decisions.push({ at: s.now, ...d });
  s.dirty = true;
}

function invalidState(r: Rollout, verb: string): ActionError {
  return { ok: false, code: 'PW_INVALID_STATE', message: `cannot ${verb} a rollout that is ${r.state}` };
}

// ---------------------------------------------------------------------------------------------
// Creation

export interface CreateRollout {
  id: string;
  bundle: BundleRef;
  target: Target;
  /** the target resolved to device ids by the caller; duplicates are ignored */
  deviceIds: readonly string[];
  /** the operator's plan, unchecked (validatePlan's rules); defaults when absent */
  plan?: unknown;
  /** a deadline checked by deadline.ts parseDeadline, or none */
  deadline?: RolloutDeadline | null;
  now: number;
}

/** A pending rollout with its waves cut from the seed, or every problem with the input, each naming its field. */
export function createRollout(input: CreateRollout): { ok: true; rollout: Rollout } | Invalid {
  const errors: string[] = [];
  const { id, bundle, deviceIds, now } = input;
  if (typeof id !== 'string' || id === '') errors.push(`id must be a non-empty string, got ${shown(id)}`);
  if (!BUNDLE_ID.test(bundle?.id)) errors.push(`bundle.id must be 64 lowercase hex digits (SHA-256), got ${shown(bundle?.id)}`);
  if (!Number.isSafeInteger(bundle?.seq) || bundle.seq < 0) {
    errors.push(`bundle.seq must be a non-negative integer, got ${shown(bundle?.seq)}`);
  }
  if (typeof bundle?.group !== 'string' || bundle.group === '') {
    errors.push(`bundle.group must be a non-empty string, got ${shown(bundle?.group)}`);
  }
  const ids = [...new Set(deviceIds)];
  const badId = ids.findIndex((d) => typeof d !== 'string' || d === '');
  if (badId >= 0) errors.push(`deviceIds must be non-empty strings, got ${shown(ids[badId])}`);
  if (ids.length === 0) errors.push('target resolved to no devices');
  const planned = validatePlan(input.plan, typeof id === 'string' && id !== '' ? id : undefined);
  if (!planned.ok) errors.push(...planned.errors);
  if (errors.length > 0 || !planned.ok) return { ok: false, errors };

  const plan = planned.plan;
  const cut = cutWaves(plan, ids.length);
  if (!cut.ok) return cut;
  const ordered = seedOrder(plan.seed, ids);
  const devices: Record<string, DeviceEntry> = Object.create(null);
  const waves: Wave[] = [];
  let from = 0;
  for (const { planIndex, end } of cut.cuts) {
    const index = waves.length;
    const { size, ...thresholds } = plan.waves[planIndex];
    const members = ordered.slice(from, end);
    for (const m of members) devices[m] = { wave: index, status: 'pending', at: null };
    waves.push({
      index,
      planIndex,
      size,
      members,
      thresholds,
      state: 'pending',
      startedAt: null,
      deadline: null,
      soakUntil: null,
      endedAt: null,
      swept: false,
      count: { ...emptyCounts(), pending: members.length },
      rejectedByReason: {},
    });
    from = end;
  }
  const rollout: Rollout = {
    format: 1,
    id,
    bundle: { id: bundle.id, seq: bundle.seq, group: bundle.group },
    target: structuredClone(input.target),
    plan,
    state: 'pending',
    createdAt: now,
    startedAt: null,
    endedAt: null,
    wave: 0,
    waves,
    devices,
    decisions: [],
    ...(input.deadline && { deadline: structuredClone(input.deadline) }),
  };
  return { ok: true, rollout };
}

// ---------------------------------------------------------------------------------------------
// Waves

/** Statuses of a reached member that has not got the bundle and may be sent it again. */
const BEHIND: ReadonlySet<DeviceStatus> = new Set(['pending', 'unreachable', 'timed_out']);

/**
 * Sends the bundle to the wave's online members that have not got it. With `again` (a resume), to
 * its online `sent` members too: one that reconnected while held said it does not hold the bundle
 * (deviceState), and nothing was sent then; the gateway's delivery sends one bundle once per device
 * session, so a member handed it on its current connection is not sent it twice.
 */
function sendToOnline(s: Step, w: Wave, isOnline: IsOnline, again = false): void {
  const ids: string[] = [];
  for (const id of w.members) {
    const d = s.r.devices[id];
    if (BEHIND.has(d.status) && isOnline(id)) {
      setStatus(s, id, d, 'sent');
      ids.push(id);
    } else if (again && d.status === 'sent' && isOnline(id)) {
      ids.push(id);
    }
  }
  if (ids.length > 0) s.fx.push({ type: 'send', deviceIds: ids });
}

function activate(s: Step, w: Wave, isOnline: IsOnline, again = false): void {
  w.state = 'active';
  w.deadline = s.now + w.thresholds.timeoutSeconds * 1000;
  w.soakUntil = null;
  w.endedAt = null;
  w.swept = false;
  s.dirty = true;
  sendToOnline(s, w, isOnline, again);
}

function startWave(s: Step, index: number, isOnline: IsOnline): void {
  const w = s.r.waves[index];
  s.r.wave = index;
  w.startedAt = s.now;
  activate(s, w, isOnline);
  // Members may have acked before their wave (a bundle that reached them by reconciliation).
  evaluate(s, w, false);
}

/**
 * Judge the wave in progress. A failure ratio over its threshold holds at once, active or soaking;
 * an active wave soaks once its ack threshold is met with its unreachable share within bounds
 * (before the first deadline nobody is unreachable yet); at its deadline it soaks or is missed.
 */
function evaluate(s: Step, w: Wave, atDeadline: boolean): void {
  // While running, the wave in progress is always active or soaking.
  if (s.r.state !== 'running' || w.index !== s.r.wave) return;
  if (failureCrossed(w)) return miss(s, w, 'failure_threshold');
  if (w.state !== 'active') return;
  const dark = unreachableRatio(w) > w.thresholds.maxUnreachable;
  const acked = ackRatio(w) >= w.thresholds.ackThreshold;
  if (atDeadline) {
    if (dark) return miss(s, w, 'max_unreachable');
    if (!acked) return miss(s, w, 'ack_threshold');
  }
  if (acked && !dark) soak(s, w);
}

function soak(s: Step, w: Wave): void {
  w.state = 'soaking';
  w.soakUntil = s.now + w.thresholds.soakSeconds * 1000;
  decide(s, {
    actor: SYSTEM,
    action: 'soak',
    reason: 'ack_threshold_met',
    from: 'running',
    to: 'running',
    wave: w.index,
    waveFrom: 'active',
    waveTo: 'soaking',
    figures: waveFigures(w),
  });
}

function miss(s: Step, w: Wave, reason: Exclude<HoldReason, 'paused'>): void {
  const waveFrom = w.state;
  w.state = 'missed';
  w.endedAt = s.now;
  // A dark wave is no verdict on the bundle, so it holds even under onMiss 'abort'.
  const abort = s.r.plan.onMiss === 'abort' && reason !== 'max_unreachable';
  const endpoint = reason === 'failure_threshold' ? s.revertedOn : undefined;
  const to: RolloutState = abort ? 'aborted' : 'held';
  s.r.state = to;
  if (abort) {
    s.r.endedAt = s.now;
    endWaves(s.r, s.now);
  }
  decide(s, {
    actor: SYSTEM,
    action: abort ? 'abort' : 'hold',
    reason,
    from: 'running',
    to,
    wave: w.index,
    waveFrom,
    waveTo: 'missed',
    figures: waveFigures(w),
    ...(endpoint !== undefined && { endpoint }),
  });
  s.fx.push(abort ? { type: 'aborted', reason } : { type: 'held', wave: w.index, reason });
}

function pass(s: Step, w: Wave, isOnline: IsOnline): void {
  w.state = 'passed';
  w.endedAt = s.now;
  decide(s, {
    actor: SYSTEM,
    action: 'pass',
    reason: 'soak_complete',
    from: 'running',
    to: 'running',
    wave: w.index,
    waveFrom: 'soaking',
    waveTo: 'passed',
    figures: waveFigures(w),
  });
  if (w.index + 1 < s.r.waves.length) return startWave(s, w.index + 1, isOnline);
  s.r.state = 'completed';
  s.r.endedAt = s.now;
  decide(s, { actor: SYSTEM, action: 'complete', reason: 'all_waves_passed', from: 'running', to: 'completed' });
  s.fx.push({ type: 'completed' });
}

/** At a wave's deadline: never sent (offline all wave) → unreachable; sent but silent → timed_out. */
function sweep(s: Step, w: Wave): void {
  w.swept = true;
  s.dirty = true;
  for (const id of w.members) {
    const d = s.r.devices[id];
    if (d.status === 'pending') setStatus(s, id, d, 'unreachable');
    else if (d.status === 'sent') setStatus(s, id, d, 'timed_out');
  }
}

// ---------------------------------------------------------------------------------------------
// Operator actions

/** pending → running; wave 0 goes to its online members. */
export function start(r: Rollout, now: number, actor: string, isOnline: IsOnline): ActionResult {
  if (r.state !== 'pending') return invalidState(r, 'start');
  const s = step(r, now);
  r.state = 'running';
  r.startedAt = now;
  decide(s, { actor, action: 'start', reason: 'operator', from: 'pending', to: 'running' });
  startWave(s, 0, isOnline);
  return { ok: true, effects: done(s) };
}

/** running → held. The wave keeps its state; its timers stop until resume gives it a fresh deadline. */
export function pause(r: Rollout, now: number, actor: string): ActionResult {
  if (r.state !== 'running') return invalidState(r, 'pause');
  const s = step(r, now);
  const w = r.waves[r.wave];
  r.state = 'held';
  decide(s, {
    actor,
    action: 'pause',
    reason: 'paused',
    from: 'running',
    to: 'held',
    wave: w.index,
    waveFrom: w.state,
    waveTo: w.state,
    figures: waveFigures(w),
  });
  s.fx.push({ type: 'held', wave: w.index, reason: 'paused' });
  return { ok: true, effects: done(s) };
}

/** Thresholds an operator may change on resume; each optional, checked like the plan's. */
export type ResumeChanges = Partial<WaveThresholds>;

/** Which waves new thresholds on resume are for: the held wave only, or it and every wave after it. */
export type ResumeScope = 'held' | 'remaining';
export const RESUME_SCOPES: readonly ResumeScope[] = ['held', 'remaining'];

/**
 * held → running. The held wave takes the new thresholds (with `scope` 'remaining', so does every
 * wave after it; 'held', the default, leaves those as planned), becomes active again with a fresh
 * deadline (now + timeout; a soak in progress starts over), its online members that have not got
 * the bundle are sent it (`sent` ones again: see sendToOnline), and it is judged at once: it may
 * soak straight away, or be held again.
 * The decision records the scope and the held wave's thresholds now in force.
 */
export function resume(
  r: Rollout,
  now: number,
  actor: string,
  isOnline: IsOnline,
  changes: ResumeChanges = {},
  scope: ResumeScope = 'held',
): ActionResult {
  if (r.state !== 'held') return invalidState(r, 'resume');
  const errors: string[] = [];
  const checked = checkThresholds(changes as Record<string, unknown>, '', errors);
  if (!RESUME_SCOPES.includes(scope)) errors.push(`for must be one of ${RESUME_SCOPES.join(', ')}, got ${shown(scope)}`);
  if (errors.length > 0) return { ok: false, code: 'PW_INVALID_PLAN', message: errors.join('; '), errors };
  const s = step(r, now);
  const w = r.waves[r.wave];
  const waveFrom = w.state;
  const last = scope === 'remaining' ? r.waves.length - 1 : r.wave;
  for (let i = r.wave; i <= last; i++) Object.assign(r.waves[i].thresholds, checked);
  r.state = 'running';
  decide(s, {
    actor,
    action: 'resume',
    reason: 'operator',
    from: 'held',
    to: 'running',
    wave: w.index,
    waveFrom,
    waveTo: 'active',
    thresholds: { ...w.thresholds },
    scope,
    figures: waveFigures(w),
  });
  activate(s, w, isOnline, true);
  evaluate(s, w, false);
  return { ok: true, effects: done(s) };
}

/** Any state but completed or aborted → aborted. `reason` e.g. 'rollback' when a rollback replaces it. */
export function abort(r: Rollout, now: number, actor: string, reason = 'operator'): ActionResult {
  if (r.state === 'completed' || r.state === 'aborted') return invalidState(r, 'abort');
  const s = step(r, now);
  const from = r.state;
  const waveFrom = r.waves[r.wave].state;
  r.state = 'aborted';
  r.endedAt = now;
  endWaves(r, now);
  decide(s, { actor, action: 'abort', reason, from, to: 'aborted', wave: r.wave, waveFrom, waveTo: r.waves[r.wave].state });
  s.fx.push({ type: 'aborted', reason });
  return { ok: true, effects: done(s) };
}

/**
 * An aborted rollout's waves say so (docs/architecture.md §6): the one in progress (active or
 * soaking, or kept so by a pause) is `aborted`, ended now; those never reached are `cancelled`. A
 * wave that passed or missed keeps its verdict. True when a wave changed.
 */
function endWaves(r: Rollout, now: number): boolean {
  let changed = false;
  for (const w of r.waves) {
    if (w.state === 'active' || w.state === 'soaking') {
      w.state = 'aborted';
      w.endedAt = now;
      changed = true;
    } else if (w.state === 'pending') {
      w.state = 'cancelled';
      changed = true;
    }
  }
  return changed;
}

/**
 * A rollout aborted before its waves were ended with it (a record from an older writer) gets them
 * ended as abort() ends them, at the rollout's end; true when it changed (the caller persists it).
 */
export function settleWaves(r: Rollout): boolean {
  return r.state === 'aborted' && endWaves(r, r.endedAt ?? r.createdAt);
}

/**
 * A rollback replaces this rollout (docs/architecture.md §6). One in progress (running or held) is
 * aborted with the reason 'rollback'; a completed one stays completed, and the decision records that
 * its bundle was rolled back; so does an aborted one (what it sent before the abort is undone).
 * Pending rollouts are refused (nothing was sent); gateway/rollout/policy.ts rollbackEligibility
 * gives the reason first.
 */
export function rollBack(r: Rollout, now: number, actor: string): ActionResult {
  if (r.state === 'running' || r.state === 'held') return abort(r, now, actor, 'rollback');
  if (r.state !== 'completed' && r.state !== 'aborted') return invalidState(r, 'roll back');
  const s = step(r, now);
  decide(s, { actor, action: 'rollback', reason: 'rollback', from: r.state, to: r.state });
  return { ok: true, effects: done(s) };
}

// ---------------------------------------------------------------------------------------------
// Device events. An id that is not in the rollout, or a report about another bundle, changes
// nothing and yields no effect.

/** May a member of a reached wave be sent the bundle now? Not while held (it waits for resume), never once aborted. */
function maySend(r: Rollout, d: DeviceEntry): boolean {
  return (r.state === 'running' || r.state === 'completed') && r.waves[d.wave].state !== 'pending';
}

/** A device connected (or subscribed to its bundle topic): a member that is behind is sent the bundle again. */
export function deviceOnline(r: Rollout, id: string, now: number): Effect[] {
  const d = lookup(r, id);
  if (d === undefined || !BEHIND.has(d.status) || !maySend(r, d)) return [];
  const s = step(r, now);
  setStatus(s, id, d, 'sent');
  s.fx.push({ type: 'send', deviceIds: [id] });
  return done(s);
}

/** Move a member to `status` (from verification.ts; null: no change) and judge its wave. */
function moved(s: Step, id: string, d: DeviceEntry, status: DeviceStatus | null, reason?: string): void {
  if (status === null) return;
  setStatus(s, id, d, status, reason);
  evaluate(s, s.r.waves[d.wave], false);
}

/**
 * An ack. It counts from any status (a device may get the bundle by reconciliation, or ack after
 * its deadline); a duplicate changes nothing. A rejection from a device that holds the bundle is
 * a re-delivery refused as `replayed` and says nothing about the bundle, so it is ignored. A
 * `reverted` ack counts against the failure ratio at once: a hold it causes is decided in this
 * call and records the endpoint (docs/architecture.md §9).
 */
export function deviceAcked(r: Rollout, id: string, ack: DeviceAck, now: number): Effect[] {
  if (ack.bundleId !== r.bundle.id) return [];
  const d = lookup(r, id);
  if (d === undefined) return [];
  const s = step(r, now);
  if (ack.status === 'reverted') s.revertedOn = ack.endpoint;
  moved(s, id, d, statusOfAck(d.status, ack), ack.status === 'reverted' ? ack.endpoint : ack.reason);
  return done(s);
}

/**
 * The state a device reports on every connect (docs/architecture.md §5). Holding this rollout's bundle means
 * it applied it, whatever became of its ack (still verifying, while its provisional window is open:
 * verification.ts). Otherwise it is behind, and is sent the bundle as deviceOnline would; a member
 * still `sent` is sent it again too, since it says it has not got it (a publish lost with the
 * broker's sessions when the gateway restarted). A reverted member is on its previous seq by its
 * own choice, and is never sent the bundle again; nor, once the rollout completed, is a member that
 * rejected it.
 */
export function deviceState(r: Rollout, id: string, state: DeviceReportedState, now: number): Effect[] {
  const d = lookup(r, id);
  if (d === undefined) return [];
  const s = step(r, now);
  if (state.bundleId === r.bundle.id) {
    moved(s, id, d, statusOfState(d.status, state));
  } else if ((BEHIND.has(d.status) || d.status === 'sent') && maySend(r, d)) {
    setStatus(s, id, d, 'sent');
    s.fx.push({ type: 'send', deviceIds: [id] });
  } else if (r.state === 'completed' && state.seq < r.bundle.seq && RUNS.has(d.status)) {
    // A member that took a completed rollout's bundle and now reports less (reflashed, its flash
    // wiped) is behind: the bundle the whole rollout runs is sent again (docs/architecture.md §6).
    // Its status stands: what it did in the rollout is history. One that never took it (rejected:
    // the same bytes get the same verdict) or went back by itself (reverted) is not: it would be
    // sent the bundle on every connect, and refuse it every time.
    s.fx.push({ type: 'send', deviceIds: [id] });
  }
  return done(s);
}

/**
 * Pin failures reported on this bundle: the device runs it (so it applied it, acked or not) and
 * it fails there. Counted against the wave's failure threshold, which may hold the rollout at once.
 * A member that had not verified (still verifying, committed unverified, or a health-checked device
 * with no verified ack) is marked so: under requireVerified it did not count toward the ack ratio,
 * and its pin failures must not make it count (verification.ts ackedCount).
 */
export function pinFailure(r: Rollout, id: string, report: { bundleId: string; healthChecked?: boolean }, now: number): Effect[] {
  if (report.bundleId !== r.bundle.id) return [];
  const d = lookup(r, id);
  if (d === undefined || d.status === 'failing' || d.status === 'reverted') return [];
  const s = step(r, now);
  const unverified = d.status === 'verifying' || d.status === 'unverified' || (report.healthChecked === true && d.status !== 'verified');
  setStatus(s, id, d, 'failing', unverified ? FAILING_UNVERIFIED : undefined);
  evaluate(s, r.waves[d.wave], false);
  return done(s);
}

// ---------------------------------------------------------------------------------------------
// Time

/**
 * Let time pass. Every reached wave whose deadline has come is swept (pending → unreachable,
 * sent → timed_out) and the wave in progress judged; a soak that has ended passes the wave and
 * starts the next. A deadline missed during downtime is handled at the first tick after it. Held,
 * pending and aborted rollouts have no timers running. Costs O(waves) when nothing is due.
 *
 * A soak of 0 seconds ends at the first tick at or after the ack threshold was met (in the same
 * tick, when the threshold was met at the deadline).
 */
export function tick(r: Rollout, now: number, isOnline: IsOnline): Effect[] {
  if (r.state !== 'running' && r.state !== 'completed') return [];
  const s = step(r, now);
  for (const w of r.waves) {
    if (w.swept || w.deadline === null || w.deadline > now) continue;
    sweep(s, w);
    evaluate(s, w, true);
  }
  const w = r.waves[r.wave];
  if (r.state === 'running' && w.state === 'soaking' && (w.soakUntil as number) <= now) pass(s, w, isOnline);
  return done(s);
}

/**
 * Judge a running or held rollout against its deadline (deadline.ts): a change of verdict is a
 * decision, and turning at_risk is an `at_risk` effect (a metric and a webhook event). Held
 * rollouts are judged too: a held rollout makes no progress, which is when a deadline slips.
 */
export function checkDeadline(r: Rollout, now: number): Effect[] {
  const c = deadlineChange(r, now);
  if (c === null) return [];
  const s = step(r, now);
  r.deadline!.status = c.status;
  decide(s, { actor: SYSTEM, action: c.status, reason: c.status === 'on_track' ? 'projected_by_deadline' : c.projected === null ? 'plan_after_deadline' : 'projected_after_deadline', from: r.state, to: r.state, wave: r.wave, deadline: c.at, projected: c.projected });
  if (c.status === 'at_risk') s.fx.push({ type: 'at_risk', deadline: c.at, projected: c.projected });
  return done(s);
}

/** The earliest time a tick could change something, or null when no timer runs. */
export function nextDeadline(r: Rollout): number | null {
  if (r.state !== 'running' && r.state !== 'completed') return null;
  let next: number | null = null;
  for (const w of r.waves) {
    if (!w.swept && w.deadline !== null && (next === null || w.deadline < next)) next = w.deadline;
  }
  const w = r.waves[r.wave];
  if (r.state === 'running' && w.state === 'soaking' && (next === null || (w.soakUntil as number) < next)) next = w.soakUntil;
  return next;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Statuses of a member that runs this bundle (committed or provisionally): a reverted one does not. */
const RUNS: ReadonlySet<DeviceStatus> = new Set(['applied', 'failing', 'verifying', 'verified', 'unverified']);

/** Whether a member runs the rollout's bundle (it took it, provisionally or not). */
export function runsBundle(r: Rollout, id: string): boolean {
  const d = r.devices[id];
  return d !== undefined && RUNS.has(d.status);
}

/** Devices that run this bundle: the target of a rollback. */
export function appliedDevices(r: Rollout): string[] {
  const out: string[] = [];
  for (const id in r.devices) if (RUNS.has(r.devices[id].status)) out.push(id);
  return out;
}

/**
 * Recount every wave's counters from the device records; true when they were out of step (and
 * are now fixed). For a record edited by hand, or loaded from an older writer: the engine itself
 * keeps them in step.
 */
export function rebuildCounters(r: Rollout): boolean {
  const counts = r.waves.map(() => emptyCounts());
  const reasons: Record<string, number>[] = r.waves.map(() => ({}));
  const failingUnverified = r.waves.map(() => 0);
  for (const id in r.devices) {
    const d = r.devices[id];
    counts[d.wave][d.status]++;
    if (d.status === 'rejected') tally(reasons[d.wave], reasonOf(d), 1);
    if (d.status === 'failing' && d.reason === FAILING_UNVERIFIED) failingUnverified[d.wave]++;
  }
  let drifted = false;
  r.waves.forEach((w, i) => {
    // Derived from the members and never stored: counted, not compared.
    if (failingUnverified[i] > 0) w.failingUnverified = failingUnverified[i];
    else delete w.failingUnverified;
    // A record from before the health-check statuses (docs/architecture.md §9) lacks their counters: zero, not drift.
    w.count = { ...emptyCounts(), ...w.count };
    if (!sameTally(w.count, counts[i]) || !sameTally(w.rejectedByReason, reasons[i])) {
      drifted = true;
      w.count = counts[i];
      w.rejectedByReason = reasons[i];
    }
  });
  return drifted;
}

function sameTally(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
