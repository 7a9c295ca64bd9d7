// What the gateway tells the outside world about its rollouts (docs/operations.md, alerts): the
// events, and the one JSON body each is sent as. Pure: the caller gives the time, the event id and
// who the gateway is. This is the one list of events: a new one (e.g. `rollout.at_risk`,
// `approval.requested`) is a line in ALERT_EVENTS, and config, docs and deliveries follow it.
//
//   alertBody({ event: 'rollout.held', rollout, wave: 1, reason: 'failure_threshold' }, { id, at, gateway })
import type { RemovedPins } from './rollout/approval.ts';
import type { BundleRef, RolloutState, Target } from './rollout/types.ts';

export const ALERT_EVENTS = {
  'rollout.held': 'a wave missed a threshold, or an operator paused the rollout: nothing more is sent until it is resumed',
  'rollout.resumed': 'an operator resumed a held rollout, with the thresholds now in force',
  'rollout.completed': 'every wave passed: the bundle is the group baseline',
  'rollout.aborted': 'the rollout was aborted (by an operator, a rollback, or a missed wave under onMiss abort)',
  'approval.requested': 'a rollout removes pins its target holds now and waits for an operator other than its creator to approve it',
} as const;

export type AlertEventName = keyof typeof ALERT_EVENTS;
export const ALERT_EVENT_NAMES = Object.keys(ALERT_EVENTS) as AlertEventName[];

/** A rollout event, as the gateway raises it from an engine effect or an operator action. */
export interface RolloutAlert {
  event: AlertEventName;
  rollout: { id: string; state: RolloutState; bundle: BundleRef; target: Target };
  /** the wave concerned, as an index into the rollout's waves (0-based); null when none is */
  wave: number | null;
  waves: number;
  /** the engine's or operator's reason: failure_threshold, ack_threshold, max_unreachable, paused, operator, rollback… */
  reason: string;
  /** who decided: an operator token's name, or 'system' */
  actor: string;
  /** rollout.resumed: which waves the new thresholds are for, and those now in force for the held wave */
  scope?: 'held' | 'remaining';
  thresholds?: Record<string, number>;
  /** approval.requested: who created the rollout, how many must agree (the creator being one), how many approvals are still wanted, what it removes */
  approval?: { creator: string; required: number; remaining: number; removed: RemovedPins[] };
}

export interface AlertContext {
  /** the event id: the same on every retry, so a receiver can drop duplicates */
  id: string;
  /** epoch ms */
  at: number;
  gateway: { name: string; version: string };
}

/** The JSON body of an alert. Waves carry both `number` (1-based, as people count) and `index` (0-based, as the API's arrays). */
export function alertBody(a: RolloutAlert, c: AlertContext) {
  const target = 'group' in a.rollout.target ? { group: a.rollout.target.group } : { devices: a.rollout.target.devices.length };
  return {
    id: c.id,
    event: a.event,
    time: new Date(c.at).toISOString(),
    gateway: c.gateway,
    rollout: { id: a.rollout.id, state: a.rollout.state, bundle: { ...a.rollout.bundle }, target, waves: a.waves },
    wave: a.wave === null ? null : { number: a.wave + 1, index: a.wave },
    reason: a.reason,
    actor: a.actor,
    ...(a.scope && { scope: a.scope }),
    ...(a.thresholds && { thresholds: { ...a.thresholds } }),
    ...(a.approval && { approval: structuredClone(a.approval) }),
  };
}

export type AlertBody = ReturnType<typeof alertBody>;
