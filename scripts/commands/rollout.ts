// `pinwave rollout create|start|status|list|pause|resume|abort|rollback|approve`: staged rollouts through the
// gateway's HTTP API. `status --watch` draws live per-wave progress until the rollout completes
// (exit 0) or is held or aborted (exit 1).
import { readFileSync } from 'node:fs';
import { apiFrom, idArg, seg, type ApiClient } from '../api-client.ts';
import { durationFlag, parse, required, UsageError, type Io } from '../args.ts';
import { oneLine, renderRollout, type RolloutView, type WaveView } from '../progress.ts';

const USAGE = `Usage:
  pinwave rollout create --bundle ID (--group G | --devices ID,ID,...) [--waves 1%,10%,50%,100% (default: the gateway's plan)]
                         [--ack-threshold 0.95] [--failure-threshold 0.02] [--min-devices N] [--max-unreachable 0.5]
                         [--timeout 1h] [--soak 0s] [--require-verified true|false] [--on-miss hold|abort] [--seed S] [--start]
                         [--deadline DATE | --deadline-cert FILE [--margin-days 7]] [--target-ratio 0.95]
                         [--next-key HOST:PORT=sha256/... ...] [--force REASON] [--json]
  pinwave rollout start|pause|abort|approve ID [--json]
  pinwave rollout rollback ID [--bundle BUNDLE] [--json]
  pinwave rollout resume ID [--ack-threshold X] [--failure-threshold X] [--min-devices N] [--max-unreachable X] [--timeout 2h] [--soak 0s]
                         [--require-verified true|false] [--for held|remaining] [--json]
  pinwave rollout status ID [--watch] [--interval 1s] [--json]
  pinwave rollout list [--state S] [--all] [--json]

--require-verified: whether only \`verified\` acks count for devices whose firmware has a health check
(default true; devices without one count \`applied\`). --deadline: an ISO date (2027-03-01T00:00:00Z);
--deadline-cert FILE: that PEM certificate's notAfter less --margin-days (default 7). The gateway
warns when the plan cannot reach --target-ratio (default 0.95) of the target by then, and status
says on track or at risk.
resume --for: whom the new thresholds are for: the held wave only (held, the default; later waves
keep their planned ones) or the held wave and every wave after it (remaining). The output says which
waves run on which thresholds; exit 1 when the rollout is held (or aborted) again at once.
rollback: a new bundle of the pins the group ran before, with a higher seq, to every device the
rollout reached; on a group's first rollout, the initial pins of its models' firmware manifests
(push a missing one with pinwave manifest push FILE). --bundle BUNDLE sends a bundle uploaded
already instead (a gateway without a signing key: pinwave bundle upload FILE). Pre-flight problems
do not stop a rollback: they are recorded with it ("gates bypassed").
create --next-key: a key the endpoint will serve, which pre-flight's pin continuity accepts in place of
the key it serves now (repeat it for more). --force REASON: create even though pin continuity
refuses, or targeted devices report a seq not below the bundle's (they would reject it as
replayed); the reason is recorded with the decision (docs/pin-safety.md#pre-flight-pin-continuity).
approve: agree, under your token's name, to a rollout that waits for approval (config approval: one
that removes pins its target holds now); its creator cannot approve it, and it starts with start.
IDs (and --bundle) may be unique prefixes of at least 8 characters. Waves are numbered from 1.

Common: --api URL (default $PINWAVE_API or http://127.0.0.1:8080); the API token is read from $PINWAVE_TOKEN.
Exit codes: 0 ok (status: completed or progressing), 1 failed, held or aborted, 2 usage.`;

/** What the API returns for a rollout, as far as resume reads it. */
type ThresholdsView = { ackThreshold: number; failureThreshold: number; minDevices: number; maxUnreachable: number; timeoutSeconds: number; soakSeconds: number; requireVerified?: boolean };

const COMMON = { api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;
const THRESHOLDS = {
  'ack-threshold': { type: 'string' },
  'failure-threshold': { type: 'string' },
  'min-devices': { type: 'string' },
  'max-unreachable': { type: 'string' },
  timeout: { type: 'string' },
  soak: { type: 'string' },
  'require-verified': { type: 'string' },
} as const;

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': return create(rest, io);
    case 'status': return status(rest, io);
    case 'list': return list(rest, io);
    case 'resume': return resume(rest, io);
    case 'start': case 'pause': case 'abort': case 'rollback': case 'approve': return action(sub, rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

function ratio(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  // Decimal digits only: Number() would read "%" or " " as 0 and "0x1" as 1.
  const m = /^(\d+(?:\.\d*)?|\.\d+)(%?)$/.exec(value);
  const n = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`--${flag} expects a ratio from 0 to 1 (or a percentage), got "${value}"`, USAGE);
  return n;
}

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} expects a whole number, got "${value}"`, USAGE);
  return Number(value);
}

/** A wave's --timeout or --soak in seconds, from `min` to a year (the API's range: a deadline must survive JSON as a number). */
function waveDuration(value: string | undefined, flag: string, min: 0 | 1): number | undefined {
  if (value === undefined) return undefined;
  const seconds = durationFlag(value, flag, USAGE);
  if (seconds < min || seconds > 365 * 86_400) throw new UsageError(`--${flag} must be from ${min}s to 365d, got "${value}"`, USAGE);
  return seconds;
}

/** The threshold flags as the API's wave fields; only those given. */
function thresholds(v: Partial<Record<keyof typeof THRESHOLDS, string>>) {
  const out: Record<string, number | boolean> = {};
  const set = (k: string, x: number | boolean | undefined) => x !== undefined && (out[k] = x);
  set('ackThreshold', ratio(v['ack-threshold'], 'ack-threshold'));
  set('failureThreshold', ratio(v['failure-threshold'], 'failure-threshold'));
  set('maxUnreachable', ratio(v['max-unreachable'], 'max-unreachable'));
  set('minDevices', count(v['min-devices'], 'min-devices'));
  set('timeoutSeconds', waveDuration(v.timeout, 'timeout', 1));
  set('soakSeconds', waveDuration(v.soak, 'soak', 0));
  const rv = v['require-verified'];
  if (rv !== undefined && rv !== 'true' && rv !== 'false') throw new UsageError(`--require-verified expects true or false, got "${rv}"`, USAGE);
  if (rv !== undefined) set('requireVerified', rv === 'true');
  return out;
}

async function create(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, {
    ...COMMON,
    ...THRESHOLDS,
    bundle: { type: 'string' },
    group: { type: 'string' },
    devices: { type: 'string' },
    waves: { type: 'string' },
    'on-miss': { type: 'string' },
    seed: { type: 'string' },
    start: { type: 'boolean' },
    deadline: { type: 'string' },
    'deadline-cert': { type: 'string' },
    'margin-days': { type: 'string' },
    'target-ratio': { type: 'string' },
    'next-key': { type: 'string', multiple: true },
    force: { type: 'string' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const bundle = idArg(required(values.bundle, 'bundle', USAGE));
  const nextKeys: Record<string, string[]> = {};
  for (const v of values['next-key'] ?? []) {
    const m = /^([^=\s]+:[0-9]{1,5})=(sha256\/\S+)$/.exec(v);
    if (!m) throw new UsageError(`--next-key expects HOST:PORT=sha256/<base64>, got "${v}"`, USAGE);
    (nextKeys[m[1]] ??= []).push(m[2]);
  }
  if (values.force !== undefined && !/^[\x20-\x7e]{1,200}$/.test(values.force)) throw new UsageError('--force expects a reason: 1 to 200 printable characters', USAGE);
  if ((values.group === undefined) === (values.devices === undefined)) throw new UsageError('give exactly one of --group G or --devices ID,ID,...', USAGE);
  const target = values.group !== undefined ? { group: values.group } : { devices: values.devices!.split(',').map((s) => s.trim()).filter(Boolean) };
  const onMiss = values['on-miss'];
  if (onMiss !== undefined && onMiss !== 'hold' && onMiss !== 'abort') throw new UsageError(`--on-miss expects hold or abort, got "${onMiss}"`, USAGE);
  const common = thresholds(values);
  const sizes = (values.waves ?? '1%,10%,50%,100%').split(',').map((s) => s.trim());
  const waves = sizes.map((s) => {
    if (!/^\d+(\.\d+)?%$/.test(s) && !/^\d+$/.test(s)) throw new UsageError(`--waves expects sizes like 1%,10%,50%,100% or counts like 10,100, got "${s}"`, USAGE);
    return { size: s.endsWith('%') ? s : Number(s), ...common };
  });
  const api = apiFrom(values.api, io);
  // Without --waves or a threshold flag the gateway's configured default plan applies.
  const planned = values.waves !== undefined || Object.keys(common).length > 0;
  const body = { bundle, target, ...(planned && { waves }), ...(onMiss && { onMiss }), ...(values.seed && { seed: values.seed }), ...deadlineFields(values), ...(values.start && { start: true }), ...(Object.keys(nextKeys).length > 0 && { nextKeys }), ...(values.force !== undefined && { force: true, reason: values.force }) };
  const res = await api.post<{ rollout?: RolloutView; preflight?: { warnings?: Array<{ message: string }>; forced?: { by: string; reason: string } }; deadlineFit?: { warnings: string[] } } & RolloutView>('/v1/rollouts', body);
  const rollout = res.rollout ?? res;
  if (values.json) io.out(JSON.stringify(res, null, 2));
  else {
    for (const w of res.preflight?.warnings ?? []) io.err(`warning: ${w.message}`);
    for (const w of res.deadlineFit?.warnings ?? []) io.err(`warning: deadline: ${w}`);
    const forced = res.preflight?.forced;
    if (forced) io.err(`forced past pre-flight by ${forced.by}: ${forced.reason}`);
    for (const line of renderRollout(rollout)) io.out(line);
  }
  return 0;
}

/** --deadline DATE, or --deadline-cert FILE (its PEM sent, the gateway reads its notAfter), with --margin-days and --target-ratio. */
function deadlineFields(v: { deadline?: string; 'deadline-cert'?: string; 'margin-days'?: string; 'target-ratio'?: string }): Record<string, unknown> {
  if (v.deadline !== undefined && v['deadline-cert'] !== undefined) throw new UsageError('give one of --deadline DATE or --deadline-cert FILE', USAGE);
  const out: Record<string, unknown> = {};
  if (v.deadline !== undefined) out.deadline = v.deadline;
  if (v['deadline-cert'] !== undefined) {
    out.deadline = 'certificate';
    try {
      out.certificate = readFileSync(v['deadline-cert'], 'utf8');
    } catch (err) {
      throw new UsageError(`--deadline-cert: cannot read ${v['deadline-cert']}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, USAGE);
    }
  }
  if (v['margin-days'] !== undefined) {
    const n = /^(\d+(?:\.\d*)?|\.\d+)$/.test(v['margin-days']) ? Number(v['margin-days']) : NaN;
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--margin-days expects a number of days, got "${v['margin-days']}"`, USAGE);
    if (v['deadline-cert'] === undefined) throw new UsageError('--margin-days goes with --deadline-cert FILE', USAGE);
    out.marginDays = n;
  }
  const target = ratio(v['target-ratio'], 'target-ratio');
  if (target !== undefined) out.targetRatio = target;
  return out;
}

async function action(verb: 'start' | 'pause' | 'abort' | 'rollback' | 'approve', args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...COMMON, ...(verb === 'rollback' && { bundle: { type: 'string' } }) } as typeof COMMON & { bundle: { type: 'string' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  const id = oneId(positionals, verb);
  const body = values.bundle !== undefined ? { bundle: idArg(values.bundle) } : {};
  const res = await apiFrom(values.api, io).post<Record<string, unknown>>(`/v1/rollouts/${seg(id)}/${verb}`, body);
  if (values.json) io.out(JSON.stringify(res, null, 2));
  else if (verb === 'rollback') {
    const rb = (res.rollback ?? res) as RolloutView & { rollbackOf?: string; gatesBypassed?: Array<{ gate: string; findings: Array<{ message: string }> }> };
    const was = res.aborted as RolloutView | undefined;
    const what = values.bundle !== undefined ? `bundle ${rb.bundle?.id}` : 'the pins its group ran before';
    io.out(`rolled back: ${was?.id ?? id} ${was?.state ?? 'aborted'}; rollback rollout ${rb.id} sends ${what} as seq ${rb.bundle?.seq}`);
    for (const g of rb.gatesBypassed ?? []) for (const f of g.findings) io.err(`warning: ${g.gate} bypassed for the rollback (recorded): ${f.message}`);
  } else for (const line of renderRollout(res as unknown as RolloutView)) io.out(line);
  return 0;
}

async function resume(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...COMMON, ...THRESHOLDS, for: { type: 'string' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  const id = oneId(positionals, 'resume');
  const scope = values.for ?? 'held';
  if (scope !== 'held' && scope !== 'remaining') throw new UsageError(`--for expects held or remaining, got "${scope}"`, USAGE);
  const changes = thresholds(values);
  if (values.for !== undefined && Object.keys(changes).length === 0) throw new UsageError('--for says which waves new thresholds are for: give at least one threshold flag with it', USAGE);
  const res = await apiFrom(values.api, io).post<RolloutView & { wave: number }>(`/v1/rollouts/${seg(id)}/resume`, { ...changes, ...(values.for !== undefined && { for: scope }) });
  if (values.json) io.out(JSON.stringify(res, null, 2));
  else {
    for (const line of resumeLines(res, res.wave, Object.keys(changes), scope)) io.out(line);
    for (const line of renderRollout(res)) io.out(line);
  }
  return exitFor(res.state);
}

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
const secs = (n: number) => (n % 3600 === 0 && n > 0 ? `${n / 3600}h` : n % 60 === 0 && n > 0 ? `${n / 60}m` : `${n}s`);
const THRESHOLD_TEXT: Record<keyof ThresholdsView, (t: ThresholdsView) => string> = {
  ackThreshold: (t) => `ack ≥ ${pct(t.ackThreshold)}`,
  failureThreshold: (t) => `fail ≤ ${pct(t.failureThreshold)}`,
  minDevices: (t) => `min devices ${t.minDevices}`,
  maxUnreachable: (t) => `unreachable ≤ ${pct(t.maxUnreachable)}`,
  timeoutSeconds: (t) => `timeout ${secs(t.timeoutSeconds)}`,
  soakSeconds: (t) => `soak ${secs(t.soakSeconds)}`,
  requireVerified: (t) => (t.requireVerified === false ? 'applied counts' : 'verified required'),
};

/** What a resume did: which waves run on which thresholds now, and whether the rollout was held again at once. */
export function resumeLines(r: RolloutView, held: number, changed: string[], scope: 'held' | 'remaining'): string[] {
  const n = r.waves.length;
  const text = (w: WaveView) => Object.values(THRESHOLD_TEXT).map((f) => f(w.thresholds as ThresholdsView)).join(', ');
  const lines = [`resumed ${r.id} at wave ${held + 1}/${n}`];
  if (changed.length === 0) lines.push('  thresholds unchanged');
  const last = scope === 'remaining' ? n - 1 : held;
  for (const w of r.waves.slice(held)) {
    const took = changed.length > 0 && w.index <= last;
    lines.push(`  wave ${w.index + 1}/${n}${w.index === held ? ' (held)' : ''}: ${text(w)}${changed.length === 0 ? '' : took ? '  ← new thresholds' : '  (as planned: --for remaining changes it too)'}`);
  }
  if (r.state === 'held' || r.state === 'aborted') {
    const d = r.decisions?.at(-1);
    lines.push(`${r.state} again at once${d ? `: wave ${(d.wave ?? held) + 1} ${d.reason}` : ''}`);
  }
  return lines;
}

async function list(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { ...COMMON, state: { type: 'string' }, all: { type: 'boolean' } }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const params = new URLSearchParams(values.all ? { limit: '1000' } : {});
  if (values.state) params.set('state', values.state);
  const res = await apiFrom(values.api, io).pages<RolloutView>('/v1/rollouts', params, Boolean(values.all));
  if (values.json) return io.out(JSON.stringify(res, null, 2)), 0;
  if (res.items.length === 0) io.out('no rollouts');
  for (const r of res.items) io.out(oneLine(r));
  if (res.next !== null) io.out('… more rollouts: --all for every one');
  return 0;
}

async function status(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...COMMON, watch: { type: 'boolean', short: 'w' }, interval: { type: 'string' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  const id = oneId(positionals, 'status');
  const api = apiFrom(values.api, io);
  const intervalMs = values.interval === undefined ? 1000 : Math.max(100, durationMs(values.interval));
  if (!values.watch) {
    const r = await api.get<RolloutView>(`/v1/rollouts/${seg(id)}`);
    if (values.json) io.out(JSON.stringify(r, null, 2));
    else for (const line of renderRollout(r)) io.out(line);
    return exitFor(r.state);
  }
  return watch(api, id, intervalMs, io, Boolean(values.json));
}

/** Polls until the rollout completes (0) or is held or aborted (1). Without a terminal, one line per change. */
async function watch(api: ApiClient, id: string, intervalMs: number, io: Io, json: boolean): Promise<number> {
  const r = await followRollout(api, id, { io, intervalMs, json, stamp: true });
  if (!json && !io.tty && r.state !== 'completed') for (const l of renderRollout(r).slice(1)) io.out(l);
  return exitFor(r.state);
}

export interface FollowOptions {
  io: Io;
  /** between polls; default 1000 ms */
  intervalMs?: number;
  /** one JSON object per change instead of the view */
  json?: boolean;
  /** put the time before each line printed without a terminal */
  stamp?: boolean;
  /** put this before every line */
  indent?: string;
  /** give up (throw) after this long; default never */
  timeoutMs?: number;
}

/**
 * Shows a rollout's progress until it completes, is held or is aborted, and returns it. On a
 * terminal the view is redrawn in place; otherwise one line is printed per change.
 */
export async function followRollout(api: ApiClient, id: string, o: FollowOptions): Promise<RolloutView> {
  const indent = o.indent ?? '';
  const deadline = o.timeoutMs === undefined ? Infinity : Date.now() + o.timeoutMs;
  let last = '';
  let drawn = 0;
  for (;;) {
    const r = await api.get<RolloutView>(`/v1/rollouts/${seg(id)}`);
    if (o.json) {
      const line = JSON.stringify(r);
      if (line !== last) o.io.out(line);
      last = line;
    } else if (o.io.tty) {
      const lines = renderRollout(r, true).map((l) => indent + l);
      // Redraw in place: move up over what was drawn, clear to the end of the screen.
      o.io.out((drawn > 0 ? `\x1b[${drawn}A\x1b[J` : '') + lines.join('\n'));
      drawn = lines.length;
    } else {
      const line = oneLine(r);
      if (line !== last) o.io.out(`${indent}${o.stamp ? `${new Date().toISOString()} ` : ''}${line}`);
      last = line;
    }
    if (r.state === 'completed' || r.state === 'held' || r.state === 'aborted') return r;
    if (Date.now() > deadline) throw new Error(`rollout ${id} still ${r.state} after ${(o.timeoutMs ?? 0) / 1000} s`);
    await new Promise((res) => setTimeout(res, o.intervalMs ?? 1000));
  }
}

/** completed or progressing: 0; held or aborted: 1 (the operator has something to decide). */
function exitFor(state: string): number {
  return state === 'held' || state === 'aborted' ? 1 : 0;
}

function oneId(positionals: string[], verb: string): string {
  if (positionals.length !== 1) throw new UsageError(`${verb} takes exactly one rollout ID`, USAGE);
  return idArg(positionals[0]);
}

function durationMs(text: string): number {
  const m = /^(\d+)(ms|s|m)?$/.exec(text);
  if (!m) throw new UsageError(`--interval expects a duration like 500ms or 2s, got "${text}"`, USAGE);
  const ms = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  // beyond 2^31 ms a timer fires at once: the watch would poll the gateway every millisecond
  if (ms > 3_600_000) throw new UsageError(`--interval must be at most 1 hour (60m), got "${text}"`, USAGE);
  return ms;
}
