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
  decisions?: Array<{ at: number; actor: string; action: string; reason: string; wave?: number }>;
  createdBy?: string;
  /** present when the rollout asked for approval (config approval, docs/architecture.md §10) */
  approval?: { needed: boolean; required: number; remaining: number; approvals: Array<{ actor: string }>; reason: string; passedBy?: string };
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
    const head = `wave ${w.index + 1}/${r.waves.length}  ${w.state.padEnd(7)}`;
    if (w.state === 'pending') {
      lines.push(`${head}  ${w.size} devices waiting`);
      continue;
    }
    const acked = w.applied + w.failing;
    const ackOk = w.ackRatio >= w.thresholds.ackThreshold;
    const failBad = w.failureRatio > w.thresholds.failureThreshold;
    let line = `${head}  [${bar(acked, w.rejected + w.failing, w.size, 20)}] ${acked}/${w.size} applied`;
    line += `  ack ${paint(ackOk ? 32 : 33, pct(w.ackRatio))} ${ackOk ? '≥' : '<'} ${pct(w.thresholds.ackThreshold)}`;
    line += `  fail ${paint(failBad ? 31 : 32, pct(w.failureRatio))} ${failBad ? '>' : '≤'} ${pct(w.thresholds.failureThreshold)}`;
    const extra: string[] = [];
    if (w.rejected) extra.push(`rejected ${w.rejected}${w.rejectedByReason ? ` (${Object.entries(w.rejectedByReason).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`);
    if (w.failing) extra.push(`failing ${w.failing}`);
    if (w.unreachable) extra.push(`unreachable ${w.unreachable}`);
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
  const last = r.decisions?.at(-1);
  if (last) lines.push(`last decision: ${new Date(last.at).toISOString()} ${last.action}${last.wave !== undefined ? ` wave ${last.wave + 1}` : ''}: ${last.reason} (${last.actor})`);
  return lines;
}

/** One line for logs and pipes: printed when it changes. */
export function oneLine(r: RolloutView): string {
  const w = r.waves.find((x) => x.state === 'active' || x.state === 'soaking') ?? [...r.waves].reverse().find((x) => x.state !== 'pending') ?? r.waves[0];
  if (!w) return `${r.id} ${r.state}`;
  return `${r.id} ${r.state} wave ${w.index + 1}/${r.waves.length} ${w.state} applied ${w.applied + w.failing}/${w.size} rejected ${w.rejected} failing ${w.failing} unreachable ${w.unreachable} ack ${pct(w.ackRatio)} fail ${pct(w.failureRatio)}`;
}
