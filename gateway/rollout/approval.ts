// Two-person approval of risky pin changes, asymmetric (docs/architecture.md §6, §10). Pure: the
// caller gives the policy, the pin diffs, the time and who acts; the state lives in the rollout's
// decisions alone (a `request_approval`, then `approve`s), so it is persisted with them and
// survives a restart.
//
// The policy counts operators who must agree, the creator being one: `removePin: 2` means the
// creator and one operator other than the creator; `addPin: 1` means the creator alone. A change
// that removes a pin, or a whole endpoint, that the target holds now (its group's baseline, or
// the firmware manifests' initial pins before any rollout) takes `removePin`; any other change
// takes `addPin`. An approval by the creator never counts, and one identity counts once. A
// rollback never waits: it records the request and its own pass (`approve`, reason `rollback`).
//
//   const a = assess(policy, diffs);                        // { required: 2, removed: [...] }
//   if (a.required > 1) requestApproval(r, a, 'olga', now); // a decision on the record
//   approve(r, 'otto', now);                                // { ok: true, counted: true }
//   startGate(r);                                           // null: it may start
import { endpointText } from '../../firmware-manifest/endpoint-text.ts';
import type { Decision, Rollout } from './types.ts';

/** A bundle's pins against one base the target holds, as gateway/pin-diff.ts computes it (only what the gate reads). */
export interface DiffAgainstHeld {
  endpoints: ReadonlyArray<{ host: string; port: number; change: 'added' | 'removed' | 'changed' | 'unchanged'; removed: readonly string[] }>;
}

/** Config `approval`: how many operators must agree, the creator included. */
export interface ApprovalPolicy {
  /** for a change that removes a pin or an endpoint the target holds now; default 2 */
  removePin: number;
  /** for any other change; default 1 (the creator alone) */
  addPin: number;
}

export const APPROVAL_DEFAULTS: ApprovalPolicy = { removePin: 2, addPin: 1 };
/** More than this many people agreeing is a meeting, not a check. */
export const MAX_APPROVERS = 10;

/** Pins of one endpoint the target holds now and the bundle drops; `endpoint`: the whole endpoint goes. */
export interface RemovedPins {
  host: string;
  port: number;
  pins: string[];
  endpoint: boolean;
}

/** What a rollout's change asks of the policy: operators who must agree, and what it removes. */
export interface ApprovalRequest {
  required: number;
  removed: RemovedPins[];
}

/** Where a rollout stands: derived from its decisions, never stored apart. */
export interface ApprovalState {
  /** true while it may not start for want of approvals */
  needed: boolean;
  /** operators who must agree, the creator being one */
  required: number;
  /** approvals still wanted from operators other than the creator */
  remaining: number;
  /** approvals by operators other than the creator, first by each identity */
  approvals: Array<{ actor: string; at: number }>;
  /** who asked (the creator, or whoever started it when the need was found then) and when */
  requestedBy: string;
  requestedAt: number;
  removed: RemovedPins[];
  /** in words, for people: what it removes */
  reason: string;
  /** set when a rollback passed the gate without waiting */
  passedBy?: 'rollback';
}

export type ApproveResult = { ok: true; counted: boolean } | { ok: false; code: 'PW_INVALID_STATE' | 'PW_SELF_APPROVAL'; message: string };

const REQUEST = 'request_approval';
const APPROVE = 'approve';

/** What the bundle removes from every base the target holds now (one diff per model's manifest, or the baseline's), merged. */
export function removedPins(diffs: readonly DiffAgainstHeld[]): RemovedPins[] {
  const out = new Map<string, RemovedPins>();
  for (const diff of diffs) {
    for (const e of diff.endpoints) {
      if (e.removed.length === 0) continue;
      const k = `${e.host.toLowerCase()}:${e.port}`;
      const seen = out.get(k) ?? { host: e.host, port: e.port, pins: [], endpoint: false };
      for (const p of e.removed) if (!seen.pins.includes(p)) seen.pins.push(p);
      seen.endpoint ||= e.change === 'removed';
      out.set(k, seen);
    }
  }
  return [...out.values()];
}

/** The operators the policy asks for this change, and what it removes. */
export function assess(policy: ApprovalPolicy, diffs: readonly DiffAgainstHeld[]): ApprovalRequest {
  const removed = removedPins(diffs);
  return { required: removed.length > 0 ? policy.removePin : policy.addPin, removed };
}

/** The removed pins in words: "removes endpoint a:443 (2 pins); removes 1 pin of b:443". */
export function describeRemoved(removed: readonly RemovedPins[]): string {
  if (removed.length === 0) return 'changes pins';
  const n = (k: number) => `${k} pin${k === 1 ? '' : 's'}`;
  return removed.map((e) => (e.endpoint ? `removes endpoint ${endpointText(e.host, e.port)} (${n(e.pins.length)})` : `removes ${n(e.pins.length)} of ${endpointText(e.host, e.port)}`)).join('; ');
}

const requestOf = (r: Rollout): (Decision & { approval: ApprovalRequest }) | undefined =>
  r.decisions.find((d): d is Decision & { approval: ApprovalRequest } => d.action === REQUEST && d.approval !== undefined);

/** Whether the rollout's record holds an approval request (made at creation, or at its first start). */
export const hasRequest = (r: Rollout): boolean => requestOf(r) !== undefined;

/** Records that the rollout needs `a.required` operators to agree; the actor is its creator or first starter. */
export function requestApproval(r: Rollout, a: ApprovalRequest, actor: string, now: number): void {
  r.decisions.push({ at: now, actor, action: REQUEST, reason: a.removed.length > 0 ? 'removes_pins' : 'changes_pins', from: r.state, to: r.state, approval: { required: a.required, removed: structuredClone(a.removed) } });
}

/** Where the rollout stands, or null when it never needed approval. `creator` never counts. */
export function approvalState(r: Rollout, creator: string): ApprovalState | null {
  const req = requestOf(r);
  if (!req) return null;
  const approvals: Array<{ actor: string; at: number }> = [];
  let passedBy: 'rollback' | undefined;
  for (const d of r.decisions) {
    if (d.action !== APPROVE) continue;
    if (d.reason === 'rollback') passedBy = 'rollback';
    else if (d.actor !== creator && !approvals.some((a) => a.actor === d.actor)) approvals.push({ actor: d.actor, at: d.at });
  }
  const wanted = Math.max(0, req.approval.required - 1);
  const remaining = passedBy ? 0 : Math.max(0, wanted - approvals.length);
  return {
    needed: remaining > 0,
    required: req.approval.required,
    remaining,
    approvals,
    requestedBy: req.actor,
    requestedAt: req.at,
    removed: structuredClone(req.approval.removed),
    reason: describeRemoved(req.approval.removed),
    ...(passedBy && { passedBy }),
  };
}

/**
 * An operator agrees. Only a pending rollout that asked for approval can be approved; its creator
 * cannot approve it (PW_SELF_APPROVAL); a second approval by the same identity changes nothing
 * (`counted: false`).
 */
export function approve(r: Rollout, creator: string, actor: string, now: number): ApproveResult {
  if (!hasRequest(r)) return { ok: false, code: 'PW_INVALID_STATE', message: `rollout ${r.id} needs no approval: it removes no pin its target holds, or approval is not configured` };
  if (r.state !== 'pending') return { ok: false, code: 'PW_INVALID_STATE', message: `cannot approve a rollout that is ${r.state}: approval is for a pending rollout` };
  if (actor === creator) return { ok: false, code: 'PW_SELF_APPROVAL', message: `${actor} created rollout ${r.id} and cannot approve it: an operator other than its creator must` };
  if (r.decisions.some((d) => d.action === APPROVE && d.actor === actor)) return { ok: true, counted: false };
  r.decisions.push({ at: now, actor, action: APPROVE, reason: 'operator', from: r.state, to: r.state });
  return { ok: true, counted: true };
}

/** A rollback undoes, so it never waits: the gate is passed as a recorded decision by whoever rolled back. */
export function passForRollback(r: Rollout, actor: string, now: number): void {
  r.decisions.push({ at: now, actor, action: APPROVE, reason: 'rollback', from: r.state, to: r.state });
}

/** Null when the rollout may start; otherwise what is still missing, in words. */
export function startGate(r: Rollout, creator: string): string | null {
  const s = approvalState(r, creator);
  if (!s || !s.needed) return null;
  const more = `${s.remaining} more approval${s.remaining === 1 ? '' : 's'}`;
  return `rollout ${r.id} ${s.reason} and needs ${more} by an operator other than its creator ${creator} before it starts (POST /v1/rollouts/${r.id}/approve)`;
}
