// Rollout decisions as log lines (docs/architecture.md §6: every decision is recorded with its actor,
// reason and time; the record is the rollout's own, this is its echo in the gateway's log). Each
// decision is logged once: those of an earlier run of the gateway are marked seen at start.
import type { Logger } from './logger.ts';
import type { Decision, Rollout } from './rollout/types.ts';

/** The log message of each decision (the bench scripts time a hold at 'rollout held'). */
const DECISION_MESSAGE: Record<Decision['action'], string> = {
  start: 'rollout started',
  pause: 'rollout paused',
  resume: 'rollout resumed',
  abort: 'rollout aborted',
  hold: 'rollout held',
  soak: 'wave soaking',
  pass: 'wave passed',
  complete: 'rollout completed',
  rollback: 'rollout rolled back',
  force: 'rollout forced past pre-flight',
  at_risk: 'rollout at risk of missing its deadline',
  on_track: 'rollout on track for its deadline',
  request_approval: 'rollout approval requested',
  approve: 'rollout approved',
};

export class DecisionLog {
  readonly #log: Logger;
  /** rollout id → how many of its decisions have been logged */
  readonly #logged = new Map<string, number>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /** The rollout's decisions so far were decided and logged by an earlier run. */
  seen(r: Rollout): void {
    this.#logged.set(r.id, r.decisions.length);
  }

  /** Each decision of the rollout not logged yet, one line each; waves as people count them (from 1). */
  log(r: Rollout): void {
    const from = this.#logged.get(r.id) ?? 0;
    if (from >= r.decisions.length) return;
    for (const d of r.decisions.slice(from)) {
      const line = decisionLine(r, d);
      if (d.action === 'hold' || d.action === 'abort' || d.action === 'at_risk') this.#log.warn(line, DECISION_MESSAGE[d.action]);
      else this.#log.info(line, DECISION_MESSAGE[d.action]);
    }
    this.#logged.set(r.id, r.decisions.length);
  }
}

/** A decision as one log line: waves numbered from 1 (`wave`), with the figures it was judged on. */
function decisionLine(r: Rollout, d: Decision): Record<string, unknown> {
  const f = d.figures;
  return {
    rollout: r.id,
    decision: d.action,
    reason: d.reason,
    actor: d.actor,
    state: `${d.from}→${d.to}`,
    ...(d.wave !== undefined && { wave: d.wave + 1, waves: r.waves.length }),
    ...(d.waveTo !== undefined && { waveState: `${d.waveFrom}→${d.waveTo}` }),
    ...(f && { applied: f.applied, rejected: f.rejected, failing: f.failing, unreachable: f.unreachable, members: f.members, ackRatio: f.ackRatio, failureRatio: f.failureRatio }),
    ...(d.scope && { for: d.scope }),
    ...(d.thresholds && { thresholds: d.thresholds }),
  };
}
