// How a rollout looks to an operator in a terminal: one block per rollout, one line per wave with a
// bar, counts and ratios against thresholds, then the last decision. Pure: summary in, lines out.

export interface WaveView {
  index: number;
  state: string;
  size: number;
  sent: number;
  applied: number;
  rejected: number;
  failing: number;
  unreachable: number;
  timedOut: number;
  /** health-checked devices (docs/architecture.md §9); absent from an older gateway */
  verifying?: number;
  verified?: number;
  unverified?: number;
  reverted?: number;
  /** members counted toward the ack ratio */
  acked?: number;
  ackRatio: number;
  failureRatio: number;
  failureCounted?: boolean;
  rejectedByReason?: Record<string, number>;
  thresholds: { ackThreshold: number; failureThreshold: number; maxUnreachable?: number };
}

export interface RolloutView {
  id: string;
  state: string;
  bundle: { id: string; seq: number; group: string };
  devices?: number;
  waves: WaveView[];
  decisions?: Array<{ at: number; actor: string; action: string; reason: string; to?: string; wave?: number; endpoint?: string; figures?: HoldFigures }>;
  /** a rollback's gates passed as recorded decisions (docs/architecture.md §6) */
  gatesBypassed?: Array<{ gate: string; at: number; actor: string; findings: Array<{ message: string }> }>;
  createdBy?: string;
  /** present when the rollout asked for approval (config approval, docs/architecture.md §10) */
  approval?: { needed: boolean; required: number; remaining: number; approvals: Array<{ actor: string }>; reason: string; passedBy?: string };
  /** against its deadline, when it has one (gateway/rollout/deadline.ts) */
  deadline?: { status: string; at: number; targetRatio: number; target: number; done: number; projected: number | null };
}

/** What a hold decision records of its wave (gateway/rollout/types.ts WaveFigures): the figures the gate judged. */
export interface HoldFigures {
  members: number;
  unreachable: number;
  acked: number;
  responded: number;
  ackRatio: number;
  failureRatio: number;
  unreachableRatio: number;
}

/**
 * Why a held rollout is held, with the figures the gate judged when it held it, so that the line
 * says what the gate decided: a wave held as dark shows its unreachable share, not an ack ratio of
 * 100% over the few members that were reachable.
 */
export function holdLine(r: RolloutView): string | null {
  if (r.state !== 'held') return null;
  const d = [...(r.decisions ?? [])].reverse().find((x) => x.to === 'held');
  if (!d) return null;
  const w = d.wave === undefined ? undefined : r.waves[d.wave];
  const f = d.figures;
  const t = w?.thresholds;
  let why = '';
  if (f && t && d.reason === 'max_unreachable' && t.maxUnreachable !== undefined) why = `: ${f.unreachable}/${f.members} devices (${pct(f.unreachableRatio)}) offline for the whole wave > ${pct(t.maxUnreachable)}; the ack ratio counts only the ${f.members - f.unreachable} reachable`;
  else if (f && t && d.reason === 'ack_threshold') why = `: ${f.acked}/${f.members - f.unreachable} reachable devices acked (${pct(f.ackRatio)}) < ${pct(t.ackThreshold)}${f.unreachable ? `, ${f.unreachable} unreachable` : ''}`;
  else if (f && t && d.reason === 'failure_threshold') why = `: failures ${pct(f.failureRatio)} of ${f.responded} that answered > ${pct(t.failureThreshold)}${d.endpoint ? ` (reverted on ${d.endpoint})` : ''}`;
  return `held at wave ${(d.wave ?? 0) + 1}: ${d.reason}${why} (${d.actor})`;
}

/** The deadline line: on track or at risk, the projected date, the target share and progress. */
export function deadlineLine(d: NonNullable<RolloutView['deadline']>): string {
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + 'Z';
  const projected = d.projected === null ? 'no progress yet' : `projected ${day(d.projected)}`;
  return `deadline ${day(d.at)}  ${d.status === 'at_risk' ? 'AT RISK' : 'on track'}  ${projected}  ${d.done}/${d.target} devices of ${pct(d.targetRatio)}`;
}

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;

function bar(done: number, bad: number, total: number, width: number): string {
  if (total === 0) return ' '.repeat(width);
  const good = Math.round((done / total) * width);
  const failed = Math.min(width - good, Math.round((bad / total) * width));
  return '█'.repeat(good) + '▓'.repeat(failed) + '░'.repeat(width - good - failed);
}

export function renderRollout(r: RolloutView, color = false): string[] {
  const paint = (code: number, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const stateColor = r.state === 'completed' ? 32 : r.state === 'held' || r.state === 'aborted' ? 31 : 33;
  const lines = [`rollout ${r.id}  ${paint(stateColor, r.state)}  bundle seq ${r.bundle.seq} (${r.bundle.id.slice(0, 12)}…)  group ${r.bundle.group}${r.devices !== undefined ? `  ${r.devices} devices` : ''}`];
  for (const w of r.waves) {
    const head = `wave ${w.index + 1}/${r.waves.length}  ${w.state.padEnd(9)}`;
    if (w.state === 'pending' || w.state === 'cancelled') {
      lines.push(`${head}  ${w.size} devices ${w.state === 'pending' ? 'waiting' : 'never sent: the rollout was aborted first'}`);
      continue;
    }
    const acked = w.acked ?? w.applied + w.failing;
    const ackOk = w.ackRatio >= w.thresholds.ackThreshold;
    // The gate's own figures (docs/architecture.md §6): the ack ratio is over the reachable members
    // only, and the unreachable share is judged apart against maxUnreachable.
    const reachable = w.size - w.unreachable;
    const darkBad = w.thresholds.maxUnreachable !== undefined && w.size > 0 && w.unreachable / w.size > w.thresholds.maxUnreachable;
    const failBad = w.failureRatio > w.thresholds.failureThreshold;
    const reverted = w.reverted ?? 0;
    let line = `${head}  [${bar(acked, w.rejected + w.failing + reverted, w.size, 20)}] ${acked}/${w.size} ${w.verified || reverted || w.verifying ? 'done' : 'applied'}`;
    line += `  ack ${paint(ackOk ? 32 : 33, pct(w.ackRatio))}${w.unreachable ? ` of ${reachable} reachable` : ''} ${ackOk ? '≥' : '<'} ${pct(w.thresholds.ackThreshold)}`;
    line += `  fail ${paint(failBad ? 31 : 32, pct(w.failureRatio))} ${failBad ? '>' : '≤'} ${pct(w.thresholds.failureThreshold)}`;
    const extra: string[] = [];
    if (w.verified || w.verifying || reverted) extra.push(`applied ${w.applied}  verified ${w.verified ?? 0}`);
    if (w.verifying) extra.push(`verifying ${w.verifying}`);
    if (w.unverified) extra.push(`unverified ${w.unverified}`);
    if (reverted) extra.push(`reverted ${reverted}`);
    if (w.rejected) extra.push(`rejected ${w.rejected}${w.rejectedByReason ? ` (${Object.entries(w.rejectedByReason).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`);
    if (w.failing) extra.push(`failing ${w.failing}`);
    if (w.unreachable) {
      const limit = w.thresholds.maxUnreachable === undefined ? '' : ` ${darkBad ? '>' : '≤'} ${pct(w.thresholds.maxUnreachable)}`;
      extra.push(`unreachable ${paint(darkBad ? 31 : 32, `${w.unreachable}/${w.size} ${pct(w.unreachable / w.size)}`)}${limit}`);
    }
    if (w.timedOut) extra.push(`timed out ${w.timedOut}`);
    if (extra.length) line += `  ${extra.join('  ')}`;
    lines.push(line);
  }
  const a = r.approval;
  if (a) {
    const by = a.approvals.length > 0 ? `approved by ${a.approvals.map((x) => x.actor).join(', ')}` : 'no approval yet';
    if (a.needed) lines.push(`needs approval: ${a.reason}; ${a.remaining} more by an operator other than ${r.createdBy ?? 'its creator'} (${by}): pinwave rollout approve ${r.id}`);
    else lines.push(`approval: ${a.reason}; ${a.passedBy === 'rollback' ? 'passed as a rollback' : by}`);
  }
  const held = holdLine(r);
  if (held) lines.push(paint(31, held));
  if (r.deadline) lines.push(paint(r.deadline.status === 'at_risk' ? 31 : 32, deadlineLine(r.deadline)));
  const last = r.decisions?.at(-1);
  if (last) lines.push(`last decision: ${new Date(last.at).toISOString()} ${last.action}${last.wave !== undefined ? ` wave ${last.wave + 1}` : ''}: ${last.reason}${last.endpoint ? ` on ${last.endpoint}` : ''} (${last.actor})`);
  for (const g of r.gatesBypassed ?? []) lines.push(`${g.gate} bypassed for this rollback (${g.actor}, ${new Date(g.at).toISOString()}): ${g.findings.map((f) => f.message).join('; ')}`);
  return lines;
}

/** One line for logs and pipes: printed when it changes. */
export function oneLine(r: RolloutView): string {
  const w = r.waves.find((x) => x.state === 'active' || x.state === 'soaking') ?? [...r.waves].reverse().find((x) => x.state !== 'pending' && x.state !== 'cancelled') ?? r.waves[0];
  const state = r.approval?.needed ? `${r.state} (needs approval)` : r.state;
  if (!w) return `${r.id} ${state}`;
  // With health checks, `applied` is only the devices without one: the count out of the wave's size
  // is then what counts toward the ack ratio (`done`), as the terminal view says.
  const counts =
    w.verified !== undefined
      ? `done ${w.acked ?? w.applied + w.failing + w.verified}/${w.size} applied ${w.applied} verified ${w.verified} verifying ${w.verifying ?? 0} reverted ${w.reverted ?? 0}`
      : `applied ${w.applied + w.failing}/${w.size}`;
  const deadline = r.deadline ? ` deadline ${r.deadline.status}` : '';
  return `${r.id} ${state} wave ${w.index + 1}/${r.waves.length} ${w.state} ${counts} rejected ${w.rejected} failing ${w.failing} unreachable ${w.unreachable} ack ${pct(w.ackRatio)}${w.unreachable ? ` of ${w.size - w.unreachable} reachable` : ''} fail ${pct(w.failureRatio)}${deadline}`;
}
