// Deadline-aware rollouts (docs/architecture.md §9): a rollout may carry a deadline (an ISO date, or a
// certificate's notAfter less a margin) and a target share of its devices that must hold the bundle
// by then. At creation the plan's worst case (every wave's timeout and soak, one after another) is
// set against the deadline: a warning, never a refusal. While it runs, its progress so far (the
// rate at which devices counted toward the ack ratio) projects the date it reaches the target, and
// its status says on_track or at_risk. Pure: the time comes in; a certificate is parsed, not fetched.
//
//   const d = parseDeadline({ deadline: 'certificate', certificate: pem, marginDays: 14 });
//   if (!d.ok) return reply.code(400).send(d.errors);
//   fit(r, now)          // at creation: { fits, plannedEnd, warnings }
//   deadlineStatus(r, now) // while it runs: { status: 'on_track' | 'at_risk', projected, ... }
import { X509Certificate } from 'node:crypto';
import { parseInstant } from './instant.ts';
import { shown } from './plan.ts';
import type { Invalid, Rollout, RolloutDeadline, Wave } from './types.ts';
import { ackedCount } from './verification.ts';

export const DEFAULT_TARGET_RATIO = 0.95;
export const DEFAULT_MARGIN_DAYS = 7;
const DAY_MS = 86_400_000;
/** A deadline further off than this is a mistake (a year typed wrong), not a plan. */
const MAX_AHEAD_MS = 10 * 365 * DAY_MS;

/** What an operator gives at creation (HTTP body fields, CLI flags). */
export interface DeadlineInput {
  /** an ISO 8601 date with a time zone, or "certificate" */
  deadline?: unknown;
  /** with deadline "certificate": the certificate, PEM */
  certificate?: unknown;
  /** with deadline "certificate": days before its notAfter; default 7 */
  marginDays?: unknown;
  /** share of the target that must hold the bundle by the deadline; default 0.95 */
  targetRatio?: unknown;
}

/** The rollout's deadline from the operator's fields, or null when none is given; every bad field named. */
export function parseDeadline(input: DeadlineInput): { ok: true; deadline: RolloutDeadline | null } | Invalid {
  const errors: string[] = [];
  const { deadline, certificate, marginDays, targetRatio } = input;
  if (deadline === undefined) {
    for (const [k, v] of Object.entries({ certificate, marginDays, targetRatio })) if (v !== undefined) errors.push(`${k} needs a deadline`);
    return errors.length > 0 ? { ok: false, errors } : { ok: true, deadline: null };
  }
  const ratio = targetRatio ?? DEFAULT_TARGET_RATIO;
  if (typeof ratio !== 'number' || !Number.isFinite(ratio) || ratio <= 0 || ratio > 1) errors.push(`targetRatio must be above 0 and at most 1, got ${shown(targetRatio)}`);
  let at = NaN;
  let source: RolloutDeadline['source'] = { kind: 'date' };
  if (deadline === 'certificate') {
    const margin = marginDays ?? DEFAULT_MARGIN_DAYS;
    if (typeof margin !== 'number' || !Number.isFinite(margin) || margin < 0 || margin > 3650) errors.push(`marginDays must be a number of days from 0 to 3650, got ${shown(marginDays)}`);
    const cert = certificateOf(certificate);
    if (typeof cert === 'string') errors.push(cert);
    else if (typeof margin === 'number') {
      at = cert.notAfter - margin * DAY_MS;
      source = { kind: 'certificate', notAfter: cert.notAfter, marginDays: margin, ...(cert.subject && { subject: cert.subject }) };
    }
  } else {
    if (certificate !== undefined) errors.push('certificate is only for deadline "certificate"');
    if (marginDays !== undefined) errors.push('marginDays is only for deadline "certificate"');
    at = typeof deadline === 'string' ? parseInstant(deadline) : NaN;
    if (Number.isNaN(at)) errors.push(`deadline must be an ISO 8601 date with a time zone (2027-03-01T00:00:00Z) or "certificate", got ${shown(deadline)}`);
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, deadline: { at, targetRatio: ratio as number, source, status: null } };
}

/** A PEM certificate's notAfter (epoch ms) and subject, or the error naming `certificate`. */
function certificateOf(pem: unknown): { notAfter: number; subject: string } | string {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----')) return 'certificate must be a PEM certificate (-----BEGIN CERTIFICATE-----) when deadline is "certificate"';
  try {
    const c = new X509Certificate(pem);
    const notAfter = Date.parse(c.validTo);
    if (Number.isNaN(notAfter)) return `certificate has an unreadable notAfter ${JSON.stringify(c.validTo)}`;
    return { notAfter, subject: c.subject.replace(/\n/g, ', ') };
  } catch (err) {
    return `certificate does not parse: ${(err as Error).message}`;
  }
}

/** A wave's worst case: its whole timeout, then its whole soak. */
const waveMs = (w: Wave): number => (w.thresholds.timeoutSeconds + w.thresholds.soakSeconds) * 1000;

/** When the plan ends at the latest if every wave from the one in progress takes its whole timeout and soak. */
export function plannedEnd(r: Rollout, now: number): number {
  let end = now;
  for (const w of r.waves) {
    if (w.state === 'passed' || (w.state === 'missed' && w.index !== r.wave)) continue;
    if (w.index === r.wave && (w.state === 'active' || w.state === 'soaking') && w.deadline !== null) {
      // The wave in progress: what is left of its timeout (or of its soak, once soaking).
      end += w.state === 'soaking' ? Math.max(0, (w.soakUntil ?? now) - now) : Math.max(0, w.deadline - now) + w.thresholds.soakSeconds * 1000;
    } else {
      end += waveMs(w);
    }
  }
  return end;
}

export interface DeadlineFit {
  /** whether the plan's worst case ends by the deadline, and the plan lets the target share be reached */
  fits: boolean;
  /** the plan's worst case, epoch ms */
  plannedEnd: number;
  warnings: string[];
}

/** At creation: can the plan reach the target share in time? Warnings, never a refusal. */
export function fit(r: Rollout, now: number): DeadlineFit | null {
  const d = r.deadline;
  if (!d) return null;
  const warnings: string[] = [];
  const end = plannedEnd(r, now);
  if (d.at <= now) warnings.push(`the deadline ${iso(d.at)} has passed`);
  else if (end > d.at) warnings.push(`the plan's waves take up to ${hours(end - now)} h (every timeout and soak), ending ${iso(end)}, after the deadline ${iso(d.at)}`);
  const last = r.waves[r.waves.length - 1];
  if (last && last.thresholds.ackThreshold < d.targetRatio) {
    warnings.push(`the last wave passes at an ack threshold of ${last.thresholds.ackThreshold}, below the target share ${d.targetRatio}: the rollout may complete short of it`);
  }
  return { fits: warnings.length === 0, plannedEnd: end, warnings };
}

export interface DeadlineStatus {
  status: 'on_track' | 'at_risk';
  at: number;
  targetRatio: number;
  source: RolloutDeadline['source'];
  /** devices that must count toward the ack ratio by the deadline */
  target: number;
  /** devices counted now */
  done: number;
  /** when the target is reached at the rate so far (epoch ms); `now` once reached; null with no progress yet */
  projected: number | null;
  plannedEnd: number;
}

/** Devices counted toward the ack ratio, over every wave (verification.ts ackedCount). */
function counted(r: Rollout): number {
  let n = 0;
  for (const w of r.waves) n += ackedCount(w.count, w.thresholds, w.failingUnverified);
  return n;
}

/**
 * Where the rollout stands against its deadline. Reached: on track. With progress: the target is
 * projected at the rate so far (counted devices over time since the start) and at risk when that
 * falls after the deadline. With none yet: at risk when the plan's remaining worst case does.
 * A rollout that ended (completed or aborted) short of the target is at risk: it will not get there.
 */
export function deadlineStatus(r: Rollout, now: number): DeadlineStatus | null {
  const d = r.deadline;
  if (!d) return null;
  const total = r.waves.reduce((n, w) => n + w.members.length, 0);
  const target = Math.ceil(total * d.targetRatio - 1e-9);
  const done = counted(r);
  const end = plannedEnd(r, now);
  const base = { at: d.at, targetRatio: d.targetRatio, source: structuredClone(d.source), target, done, plannedEnd: end };
  if (done >= target) return { ...base, status: 'on_track', projected: now };
  const ended = r.state === 'completed' || r.state === 'aborted';
  const elapsed = r.startedAt === null ? 0 : now - r.startedAt;
  if (done === 0 || elapsed <= 0) return { ...base, status: ended || end > d.at ? 'at_risk' : 'on_track', projected: null };
  const projected = now + Math.ceil(((target - done) * elapsed) / done);
  return { ...base, status: ended || projected > d.at ? 'at_risk' : 'on_track', projected };
}

/** A change of verdict since the last one recorded, or null: what the engine records as a decision. */
export function deadlineChange(r: Rollout, now: number): DeadlineStatus | null {
  if (!r.deadline || (r.state !== 'running' && r.state !== 'held')) return null;
  const s = deadlineStatus(r, now)!;
  const last = r.deadline.status;
  // The first verdict is recorded only when it is bad news: on track is what a fresh rollout is.
  if (s.status === last || (last === null && s.status === 'on_track')) return null;
  return s;
}

const iso = (ms: number) => new Date(ms).toISOString();
const hours = (ms: number) => (ms / 3_600_000).toFixed(1);
