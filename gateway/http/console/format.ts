// How the console writes numbers, times, states and reasons: numbers with the reader's thousands
// separators, times in the reader's zone with UTC on hover, every state as a word and a colour
// (never colour alone), waves numbered from 1, reasons in words with the API's code beside them.
import { h, type VNode } from './view.ts';

const LOCALE = typeof navigator !== 'undefined' && navigator.language ? navigator.language : 'en-US';
const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const pct = new Intl.NumberFormat(LOCALE, { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });
const local = new Intl.DateTimeFormat(LOCALE, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });

/**
 * An endpoint as people write it, an IPv6 host in brackets: "[::1]:443", never "::1:443". The
 * console's build takes only its own folder, so this is firmware-manifest/endpoint-text.ts's rule
 * again; test/gateway/http/console/render.test.ts holds the two to one answer.
 */
export const endpoint = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** 12345 → "12,345" (in the reader's locale). */
export const count = (n: number) => integer.format(n);

/** 0.953 → "95.3%". */
export const percent = (ratio: number) => pct.format(ratio);

/** "2026-01-01 00:00:00 UTC" */
export function utc(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}

/** A time in the reader's zone, UTC on hover; "—" for none. */
export function when(ms: number | null | undefined): VNode | string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  return h('time', { datetime: new Date(ms).toISOString(), title: utc(ms) }, local.format(new Date(ms)));
}

/** Seconds as "90 s", "15 min", "2 h", "3 d". */
export function duration(seconds: number): string {
  if (seconds < 120) return `${count(seconds)} s`;
  if (seconds < 7200) return `${count(Math.round(seconds / 60))} min`;
  if (seconds < 172800) return `${count(Math.round(seconds / 3600))} h`;
  return `${count(Math.round(seconds / 86400))} d`;
}

/** Waves are numbered from 1 for people: the API's index 0 is "Wave 1 of 4". */
export const waveLabel = (index: number, total: number) => `Wave ${index + 1} of ${total}`;

/** The first 12 hex digits of a bundle id: enough to tell bundles apart on a page. */
export const shortId = (id: string) => id.slice(0, 12);

type Tone = 'neutral' | 'info' | 'good' | 'warn' | 'bad';

const STATES: Record<string, [string, Tone]> = {
  // rollouts
  pending: ['Pending', 'neutral'],
  running: ['Running', 'info'],
  held: ['Held', 'warn'],
  completed: ['Completed', 'good'],
  aborted: ['Aborted', 'bad'],
  // waves
  active: ['Active', 'info'],
  soaking: ['Soaking', 'info'],
  passed: ['Passed', 'good'],
  missed: ['Missed', 'bad'],
  // aborted (in progress when the rollout was) shares the rollouts' word above
  cancelled: ['Cancelled', 'neutral'],
  // devices
  connected: ['Connected', 'good'],
  offline: ['Offline', 'neutral'],
  never_connected: ['Never connected', 'neutral'],
  revoked: ['Revoked', 'bad'],
  // a device in a rollout
  sent: ['Sent', 'info'],
  applied: ['Applied', 'good'],
  verified: ['Verified', 'good'],
  verifying: ['Verifying', 'info'],
  unverified: ['Committed unverified', 'warn'],
  rejected: ['Rejected', 'bad'],
  timed_out: ['Timed out', 'warn'],
  failing: ['Failing', 'bad'],
  unreachable: ['Unreachable', 'neutral'],
  reverted: ['Reverted', 'bad'],
};

/** A state as a word on a coloured badge: `Held` on amber. */
export function badge(state: string): VNode {
  const [word, tone] = STATES[state] ?? [state, 'neutral'];
  return h('span', { class: `badge tone-${tone}`, 'data-state': state }, word);
}

const HOLDS: Record<string, string> = {
  failure_threshold: 'the share of devices rejecting the bundle, reverting it or reporting pin failures crossed the failure threshold',
  ack_threshold: 'too few devices acknowledged the bundle before the wave timed out',
  max_unreachable: 'too many devices were offline for the whole wave: a dark wave proves nothing',
  paused: 'an operator paused it',
};

/** Why a wave was held, in words. */
export const holdReason = (reason: string) => HOLDS[reason] ?? reason.replaceAll('_', ' ');

const STUCK: Record<string, string> = {
  never_connected: 'never connected',
  offline: 'offline',
  no_ack: 'connected, no acknowledgement yet',
  failing: 'applied, but reports pin failures',
  verifying: 'holds it, its health check has not committed yet',
};

/** A stuck device's reason in words: `rejected:bad_signature` is "rejected: bad signature". */
export function stuckReason(reason: string): string {
  if (STUCK[reason]) return STUCK[reason];
  const m = /^(rejected|reverted):(.*)$/.exec(reason);
  if (m) return `${m[1]}: ${m[2].replaceAll('_', ' ')}`;
  return reason.replaceAll('_', ' ');
}

const ACTIONS: Record<string, string> = {
  start: 'Started',
  pause: 'Paused',
  resume: 'Resumed',
  abort: 'Aborted',
  hold: 'Held',
  soak: 'Soak started',
  pass: 'Wave passed',
  complete: 'Completed',
  rollback: 'Rolled back',
  approve: 'Approved',
  request_approval: 'Asked for approval',
};

/** A decision's action as a past-tense word. */
export const actionWord = (action: string) => ACTIONS[action] ?? action;

/** A decision's reason in words (the engine's codes, or an operator's own text). */
export function decisionReason(reason: string, action?: string): string {
  // docs/architecture.md §10: a rollback passes the approval gate as a decision of its own.
  if (action === 'approve' && reason === 'rollback') return 'a rollback never waits for approval';
  const words: Record<string, string> = {
    removes_pins: 'it removes pins its target holds now',
    changes_pins: 'the approval policy asks for more than its creator',
    operator: 'by an operator',
    ack_threshold_met: 'the ack threshold was met',
    soak_complete: 'the soak ended with no hold',
    all_waves_passed: 'every wave passed',
    rollback: 'replaced by a rollback',
  };
  return words[reason] ?? (HOLDS[reason] ? holdReason(reason) : reason);
}
