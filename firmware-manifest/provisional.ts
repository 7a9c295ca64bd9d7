// Provisional apply with a health-checked commit (docs/pin-safety.md; docs/architecture.md §9). A
// device whose firmware manifest declares a health check applies a valid bundle provisionally (the
// new trust state active, the last committed one kept beside it), checks its endpoints by TLS
// handshakes judged under the new pins, and then commits (ack `verified`) or goes back to the last
// committed state by itself (ack `reverted`) when the new pins would lock it out. An endpoint that
// does not answer is retried every `retrySeconds` until `commitTimeoutSeconds`, then the manifest's
// `onUnverifiable` decides. A device without a health check commits at once and acks `applied`, as
// apply() always did.
//
// Pure: the machine is a function of the persisted DeviceTrust, the time (`now`, device seconds) and
// the handshake results handed to it. Every call returns a Step: the next DeviceTrust, whether it
// must reach flash before anything else happens, the ack to send once it has, the endpoints to
// handshake now, and when to call tickWindow() next.
//
//   let step = receiveBundle(trust, verifyBundle(bytes, trustedKeyBytes(trust.active), limits), now, healthCheck);
//   if (step.persist) flash.write(step.trust);             // whole and atomic, before the ack
//   if (step.ack) publish('ack', encodeAck(step.ack));     // then trust = ackDelivered(trust, ack) on PUBACK
//   for (const e of step.run) handshake(e), then observeHandshakes(trust, [{ host, port, at, served }], now);
//   at step.wakeAt: tickWindow(trust, now);   after a reboot: resumeWindow(flash.read(), now)
import type { VerifyResult } from './codec.ts';
import type { AckMessage, AnyAck, EndpointRef, ProvisionalStatus, RevertedAck, RevertReason, VerifiedAck } from './messages.ts';
import { applyVerified, checkChain, type TrustState } from './trust-state.ts';
import { endpointText } from './endpoint-text.ts';

/** A firmware's health check, ports resolved (healthCheckOf() in manifest.ts makes one from a manifest). */
export interface HealthCheck {
  /** the endpoints to check; absent: every enforced endpoint of the new bundle */
  endpoints?: EndpointRef[];
  /** how long a provisional window lasts, seconds, before onUnverifiable decides */
  commitTimeoutSeconds: number;
  /** how long an unanswered handshake is given, and the wait before it is tried again, seconds */
  retrySeconds: number;
  /** what a window whose endpoints never answered ends in: commit (ack `applied`) or revert */
  onUnverifiable: 'commit' | 'revert';
}

/** One endpoint a provisional window checks. */
export interface WindowCheck extends EndpointRef {
  /** it served a chain the new pins accept */
  passed: boolean;
  /** false for a wildcard pin set the manifest names no host for: nothing to dial, never checked */
  dialable: boolean;
  /** handshakes asked so far */
  attempts: number;
  /** when the handshake in flight was asked (device seconds), or null when none is */
  askedAt: number | null;
  /** when it is next asked, device seconds (while no handshake is in flight) */
  dueAt: number;
  /** why its last handshake did not answer */
  lastError?: string;
}

/** An open provisional window: everything needed to finish it after a reboot. */
export interface ProvisionalWindow {
  /** the last committed trust state: what a revert goes back to (never an unverified state) */
  previous: TrustState;
  /** device seconds */
  openedAt: number;
  /** device seconds; at it, endpoints that never answered leave the decision to onUnverifiable */
  deadline: number;
  /** the manifest's policy when the window opened, so a resumed window needs nothing else */
  retrySeconds: number;
  onUnverifiable: 'commit' | 'revert';
  checks: WindowCheck[];
}

/** The final ack of the last window, kept to answer a redelivery and to resend if it was not delivered. */
export interface WindowOutcome {
  ack: AnyAck;
  /** the broker acknowledged it (PUBACK) */
  delivered: boolean;
}

/** What a device persists, as one record written whole (docs/pin-safety.md, "What to persist, when"). */
export interface DeviceTrust {
  /** the trust state in force: during a window, the provisional one */
  active: TrustState;
  window: ProvisionalWindow | null;
  outcome: WindowOutcome | null;
}

/** A TLS handshake's result, as the device saw it. */
export interface Observation extends EndpointRef {
  /** device seconds when the handshake was asked; one asked before the window opened speaks for an older window and is ignored */
  at: number;
  /** pin-sha256 digests of the served chain (base64, optionally `sha256/`), or no handshake completed */
  served: readonly string[] | 'unreachable';
  error?: string;
}

export interface Step {
  trust: DeviceTrust;
  /** `trust` must be written to flash, whole and atomically, before `ack` is sent or `run` started */
  persist: boolean;
  /** the ack to send once `trust` is persisted, or null */
  ack: AnyAck | null;
  /** endpoints to handshake now; hand each result to observeHandshakes() */
  run: EndpointRef[];
  /** when to call tickWindow(), device seconds; null when no window is open */
  wakeAt: number | null;
  /** receiveBundle(): the bundle opened a provisional window */
  opened?: boolean;
  /** receiveBundle(): the id of the provisional bundle the new window replaced (it gets no ack of its own) */
  superseded?: string;
  /** receiveBundle(): the active bundle (or the one last reverted) delivered again; nothing changed */
  redelivered?: boolean;
}

/** A device's persisted form before any window: its trust state alone. */
export function trustOf(state: TrustState): DeviceTrust {
  return { active: state, window: null, outcome: null };
}

/**
 * A bundle arrives (its signature checked by verifyBundle against `trust.active`'s keys). Rejected:
 * a `rejected` ack and no change, an open window carries on. Without a health check: committed at
 * once, ack `applied`. With one: a provisional window opens; a window already open is superseded,
 * the new one judged for the newest bundle, and its revert still goes back to the last committed state.
 */
export function receiveBundle(trust: DeviceTrust, verified: VerifyResult, now: number, healthCheck: HealthCheck | null): Step {
  // A bundle this device reverted, delivered again: the same answer, never a second window, so a
  // gateway that resends it cannot make the device lock itself out and back in over and over.
  const last = trust.outcome?.ack;
  if (verified.ok && last?.status === 'reverted' && last.bundleId === verified.id) return { ...carryOn(trust, now), ack: last, redelivered: true };
  const r = applyVerified(trust.active, verified, now);
  if (!r.ok) {
    const ack: AckMessage = { seq: verified.ok ? verified.bundle.seq : 0, bundleId: verified.ok ? verified.id : null, status: 'rejected', reason: r.reason, detail: r.detail };
    return { ...carryOn(trust, now), ack };
  }
  if (r.unchanged) {
    // The provisional bundle again: its answer comes when its window closes. A committed one: the answer it was given.
    if (trust.window) return { ...carryOn(trust, now), redelivered: true };
    const ack: AnyAck = last && last.bundleId === r.id ? last : { seq: r.bundle.seq, bundleId: r.id, status: 'applied' };
    return { ...carryOn(trust, now), ack, redelivered: true };
  }
  const superseded = trust.window ? { superseded: trust.active.bundleId! } : {};
  if (!healthCheck) return { trust: { active: r.state, window: null, outcome: trust.outcome }, persist: true, ack: { seq: r.bundle.seq, bundleId: r.id, status: 'applied' }, run: [], wakeAt: null, ...superseded };
  const window = openWindow(trust.window?.previous ?? trust.active, r.state, now, healthCheck);
  return { ...decide({ active: r.state, window, outcome: trust.outcome }, now), persist: true, opened: true, ...superseded };
}

/** Handshake results come in: a chain the new pins refuse reverts at once; when every check has passed, commit. */
export function observeHandshakes(trust: DeviceTrust, results: readonly Observation[], now: number): Step {
  const w = trust.window;
  if (!w) return carryOn(trust, now);
  const checks = w.checks.map((c) => ({ ...c }));
  for (const r of results) {
    const c = checks.find((x) => !x.passed && x.port === r.port && x.host === r.host.toLowerCase());
    // A handshake asked before the window opened speaks for an older window (docs/pin-safety.md,
    // timing rules), but the answer to this check's own ask in flight always speaks for it: a clock
    // set back past openedAt (a reboot on a reset RTC) must not make the device ignore the evidence
    // that its new pins lock it out, and sit on them until the clock catches up.
    if (!c || (r.at < w.openedAt && (c.askedAt === null || r.at < c.askedAt))) continue;
    // A handshake that served no certificate completed no pin check: the old pins would refuse it as
    // well, so it is no evidence against the new ones (and a pin_mismatch revert names served pins,
    // docs/device-messages.md). Asked again, as an endpoint that did not answer.
    if (r.served === 'unreachable' || r.served.length === 0) {
      c.askedAt = null;
      c.dueAt = now + w.retrySeconds;
      c.lastError = r.served === 'unreachable' ? (r.error ?? 'no TLS handshake') : 'no certificate served';
      continue;
    }
    // Judged exactly as every later connection will be: checkChain under the new pins, by the device
    // clock (overlap windows, report-only sets and the expiry policy included). Only an enforced
    // mismatch locks the device out; report-only, expired-fallback and unpinned hosts pass.
    if (checkChain(trust.active, c.host, c.port, r.served, now) === 'pin_mismatch') {
      return revert(trust, w, c, r.served.map((p) => p.replace(/^sha256\//, '')), 'pin_mismatch');
    }
    c.passed = true;
    c.askedAt = null;
  }
  return decide({ ...trust, window: { ...w, checks } }, now);
}

/** Time passes: retries fall due, unanswered handshakes run out, the deadline comes. */
export function tickWindow(trust: DeviceTrust, now: number): Step {
  if (!trust.window) return carryOn(trust, now);
  return decide(trust, now);
}

/**
 * After a reboot (or a power cut): the handshakes in flight died with the device, so every check not
 * passed is asked again now. A window whose deadline passed while the device was off gets one more
 * round (retrySeconds) before onUnverifiable decides: a device that was dark has not tried yet.
 */
export function resumeWindow(trust: DeviceTrust, now: number): Step {
  const w = trust.window;
  if (!w) return carryOn(trust, now);
  const checks = w.checks.map((c) => (c.passed ? c : { ...c, askedAt: null, dueAt: now }));
  return decide({ ...trust, window: { ...w, checks, deadline: Math.max(w.deadline, now + w.retrySeconds) } }, now);
}

/** The broker acknowledged `ack`: the window's outcome need not be sent again. */
export function ackDelivered(trust: DeviceTrust, ack: AnyAck): DeviceTrust {
  const o = trust.outcome;
  if (!o || o.delivered || o.ack.bundleId !== ack.bundleId || o.ack.status !== ack.status) return trust;
  return { ...trust, outcome: { ack: o.ack, delivered: true } };
}

/** The window's status for the `state` message (docs/device-messages.md), or undefined when none is open. */
export function provisionalStatus(trust: DeviceTrust): ProvisionalStatus | undefined {
  const w = trust.window;
  if (!w) return undefined;
  return { previousSeq: w.previous.seq, previousBundleId: w.previous.bundleId, openedAt: w.openedAt, deadline: w.deadline, pending: named(w.checks.filter((c) => !c.passed)) };
}

/** What a window checks when the manifest lists nothing: each host and port with an enforced pin set, once, in bundle order. */
export function enforcedEndpoints(state: TrustState): EndpointRef[] {
  const out: EndpointRef[] = [];
  for (const e of state.endpoints) if (e.mode === 'enforce' && !out.some((o) => o.host === e.host && o.port === e.port)) out.push({ host: e.host, port: e.port });
  return out;
}

function openWindow(previous: TrustState, next: TrustState, now: number, hc: HealthCheck): ProvisionalWindow {
  const targets = hc.endpoints ?? enforcedEndpoints(next);
  return {
    previous,
    openedAt: now,
    deadline: now + hc.commitTimeoutSeconds,
    retrySeconds: hc.retrySeconds,
    onUnverifiable: hc.onUnverifiable,
    checks: targets.map((e) => ({ host: e.host.toLowerCase(), port: e.port, passed: false, dialable: !e.host.startsWith('*.'), attempts: 0, askedAt: null, dueAt: now })),
  };
}

/** Where a window stands after anything happened: commit, go unverified, or ask what is due and say when to wake. */
function decide(trust: DeviceTrust, now: number): Step {
  const w = trust.window!;
  // A handshake unanswered for retrySeconds counts as unreachable (its result, if it ever comes, still counts).
  const checks = w.checks.map((c) => (c.askedAt !== null && now >= c.askedAt + w.retrySeconds ? { ...c, askedAt: null, dueAt: now, lastError: c.lastError ?? `no answer within ${w.retrySeconds} s` } : c));
  if (checks.every((c) => c.passed)) return commit(trust, checks);
  const open = checks.filter((c) => !c.passed && c.dialable);
  const inFlight = open.filter((c) => c.askedAt !== null);
  // Nothing left that can be dialled, or the deadline is here and nothing is in flight: unverifiable.
  if (open.length === 0 || (now >= w.deadline && inFlight.length === 0)) return unverifiable(trust, { ...w, checks });
  const run: EndpointRef[] = [];
  const asked = checks.map((c) => {
    if (!c.passed && c.dialable && c.askedAt === null && c.dueAt <= now && now < w.deadline) {
      run.push(ref(c));
      return { ...c, askedAt: now, attempts: c.attempts + 1 };
    }
    return c;
  });
  const window = { ...w, checks: asked };
  return { trust: { ...trust, window }, persist: false, ack: null, run, wakeAt: wakeOf(window, now) };
}

/** The next time decide() has something to do: a handshake running out, a retry falling due, the deadline. */
function wakeOf(w: ProvisionalWindow, now: number): number {
  let at = now >= w.deadline ? Infinity : w.deadline;
  for (const c of w.checks) {
    if (c.passed || !c.dialable) continue;
    if (c.askedAt !== null) at = Math.min(at, c.askedAt + w.retrySeconds);
    else if (c.dueAt < w.deadline) at = Math.min(at, c.dueAt);
  }
  return at === Infinity ? now : at;
}

function commit(trust: DeviceTrust, checks: WindowCheck[]): Step {
  const a = trust.active;
  const ack: VerifiedAck = { seq: a.seq, bundleId: a.bundleId!, status: 'verified', checked: named(checks) };
  return closed({ active: a, window: null, outcome: { ack, delivered: false } }, ack);
}

function unverifiable(trust: DeviceTrust, w: ProvisionalWindow): Step {
  const missing = w.checks.filter((c) => !c.passed);
  if (w.onUnverifiable === 'revert') return revert(trust, w, missing[0], [], 'unverifiable');
  const a = trust.active;
  const ack: AckMessage = { seq: a.seq, bundleId: a.bundleId, status: 'applied', unverified: named(missing), detail: why(missing[0]) };
  return closed({ active: a, window: null, outcome: { ack, delivered: false } }, ack);
}

/** Back to the last committed state, whole: the provisional one is dropped, the outcome kept to answer for it. */
function revert(trust: DeviceTrust, w: ProvisionalWindow, c: WindowCheck, servedPins: string[], reason: RevertReason): Step {
  const a = trust.active;
  const ack: RevertedAck = {
    seq: a.seq,
    bundleId: a.bundleId!,
    status: 'reverted',
    reason,
    endpoint: ref(c),
    servedPins: servedPins.slice(0, 16),
    previousSeq: w.previous.seq,
    previousBundleId: w.previous.bundleId,
    ...(reason === 'unverifiable' && { detail: why(c) }),
  };
  return closed({ active: w.previous, window: null, outcome: { ack, delivered: false } }, ack);
}

function closed(trust: DeviceTrust, ack: AnyAck): Step {
  return { trust, persist: true, ack, run: [], wakeAt: null };
}

/** Nothing changes: the window, if any, goes on as it was. */
function carryOn(trust: DeviceTrust, now: number): Step {
  return { trust, persist: false, ack: null, run: [], wakeAt: trust.window ? wakeOf(trust.window, now) : null };
}

function why(c: WindowCheck): string {
  if (!c.dialable) return `${endpointText(c.host, c.port)} is a wildcard pin set: no host to dial (list one in the manifest's healthCheck.endpoints)`;
  return `${endpointText(c.host, c.port)} did not answer in ${c.attempts} attempt${c.attempts === 1 ? '' : 's'}${c.lastError ? ` (${c.lastError})` : ''}`;
}

const ref = (c: EndpointRef): EndpointRef => ({ host: c.host, port: c.port });

/**
 * The endpoints a message names: at most 64 (docs/device-messages.md CDDL), the first in check order.
 * A bundle may enforce more host and port pairs than that; every one is still checked, only the list
 * sent is cut, so the gateway can read the state and the ack.
 */
const MAX_NAMED = 64;
const named = (cs: readonly EndpointRef[]): EndpointRef[] => cs.slice(0, MAX_NAMED).map(ref);
