// The rollouts pages as trees (view.ts), from the API's JSON: the list, and a rollout's page: its
// facts, a held wave's reasons, each wave's progress as a bar with its counts and its ratios
// against its thresholds, the actions the reader's role allows, pin failures by endpoint and
// served pin, and the decisions timeline. Pure: data in, tree out (docs/architecture.md §6, §10).
import { actionWord, badge, count, decisionReason, duration, endpoint, holdReason, percent, shortId, waveLabel, when } from './format.ts';
import { enc, facts, link, section, table } from './parts.ts';
import type { Decision, PinFailure, Role, Rollout, Thresholds, Wave } from './types.ts';
import { h, type Child, type Handler, type VNode } from './view.ts';

export type ActionVerb = 'start' | 'pause' | 'resume' | 'abort' | 'rollback' | 'approve';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** The list of rollouts, oldest first as the API gives them. */
export function rolloutsTable(items: Rollout[]): VNode {
  return table(
    'Rollouts',
    ['Rollout', 'Group', 'Bundle', 'State', 'Wave', 'Devices', 'Created', 'By'],
    items.map((r) => [
      link(`/rollouts/${enc(r.id)}`, r.id),
      r.target.group ?? `${count(r.target.devices?.length ?? 0)} devices`,
      link(`/bundles/${enc(r.bundle.id)}`, `seq ${count(r.bundle.seq)}`),
      r.approval?.needed && r.state === 'pending' ? [badge(r.state), ' ', h('span', { class: 'needs-approval' }, 'needs approval')] : badge(r.state),
      r.waves.length === 0 ? '—' : waveLabel(r.wave, r.waves.length),
      count(r.devices),
      when(r.createdAt),
      r.createdBy,
    ]),
    { empty: 'No rollouts yet.' },
  );
}

/** The rollout's heading and facts. */
export function rolloutHeader(r: Rollout): VNode {
  return h(
    'div',
    { class: 'rollout-head' },
    h('h1', null, 'Rollout ', h('code', null, r.id), ' ', badge(r.state)),
    facts([
      ['Bundle', link(`/bundles/${enc(r.bundle.id)}`, `seq ${count(r.bundle.seq)} of ${r.bundle.group} (${shortId(r.bundle.id)})`)],
      ['Target', r.target.group !== undefined ? link(`/groups/${enc(r.target.group)}`, `group ${r.target.group}`) : `${count(r.target.devices?.length ?? 0)} listed devices`],
      ['Devices', count(r.devices)],
      ['Progress', r.waves.length === 0 ? '—' : `${waveLabel(r.wave, r.waves.length)}`],
      ['A missed wave', r.onMiss === 'abort' ? 'aborts the rollout' : 'holds the rollout'],
      ['Created', h('span', null, when(r.createdAt), ` by ${r.createdBy}`)],
      ['Started', r.startedAt === null ? null : when(r.startedAt)],
      ['Ended', r.endedAt === null ? null : when(r.endedAt)],
      ['Next deadline', r.nextDeadline === null ? null : when(r.nextDeadline)],
      ['Rolls back', r.rollbackOf ? link(`/rollouts/${enc(r.rollbackOf)}`, r.rollbackOf) : null],
      ['Rolled back by', r.rolledBackBy ? link(`/rollouts/${enc(r.rolledBackBy)}`, r.rolledBackBy) : null],
      ['Stuck devices', link(`/stuck?rollout=${enc(r.id)}`, 'the devices not on this bundle, with why')],
    ]),
  );
}

/** The decision that held the rollout (the engine's hold, or an operator's pause), when it is held. */
export function holdingDecision(r: Rollout): Decision | null {
  if (r.state !== 'held') return null;
  for (let i = r.decisions.length - 1; i >= 0; i--) if (r.decisions[i].to === 'held') return r.decisions[i];
  return null;
}

/** A held wave's reasons: why, when, by whom, the figures then against the thresholds, rejections by reason. */
export function heldPanel(r: Rollout): VNode | null {
  const d = holdingDecision(r);
  if (!d) return null;
  const w = r.waves[d.wave ?? r.wave];
  const f = d.figures;
  const reasons = Object.entries(w?.rejectedByReason ?? {}).sort((a, b) => b[1] - a[1]);
  return h(
    'section',
    { class: 'held', id: 'held', 'aria-labelledby': 'held-h' },
    h('h2', { id: 'held-h' }, `Held at ${w ? waveLabel(w.index, r.waves.length) : 'its current wave'}`),
    h('p', { class: 'reason' }, h('strong', null, 'Why: '), holdReason(d.reason), ' ', h('code', null, d.reason), '.'),
    d.endpoint
      ? h('p', null, `Devices reverted to their previous pins by themselves: with the new ones they could not reach `, h('code', null, d.endpoint), ` (${count(f?.reverted ?? 0)} of them when it was held).`)
      : null,
    h('p', null, 'Decided ', when(d.at), ` by ${d.actor === 'system' ? 'the gateway' : d.actor}.`),
    f && w
      ? h(
          'ul',
          { class: 'held-figures' },
          h('li', null, `Failures: ${percent(f.failureRatio)} of ${count(f.responded)} that answered (limit ${percent(w.thresholds.failureThreshold)})${f.failureCounted ? '' : `, not counted yet: fewer than ${count(w.thresholds.minDevices)} answered`}.`),
          h('li', null, `Acknowledged: ${percent(f.ackRatio)} of ${count(f.members - f.unreachable)} reachable (needs ${percent(w.thresholds.ackThreshold)}).`),
          h('li', null, `Offline for the whole wave: ${percent(f.unreachableRatio)} (limit ${percent(w.thresholds.maxUnreachable)}).`),
        )
      : null,
    reasons.length > 0 ? h('p', null, 'Rejections by reason: ', reasons.map(([k, n], i) => [i > 0 ? ', ' : '', h('code', null, k), ` ${count(n)}`])) : null,
    h('p', { class: 'hint' }, 'Nothing more is sent while the rollout is held. Resume it (with new thresholds if need be), abort it, or roll it back; the pin failures below name the failing endpoints.'),
  );
}

const SEGMENTS: Array<[keyof Wave, string]> = [
  ['verified', 'verified'],
  ['applied', 'applied'],
  ['verifying', 'verifying'],
  ['unverified', 'committed unverified'],
  ['failing', 'failing'],
  ['reverted', 'reverted'],
  ['rejected', 'rejected'],
  ['timedOut', 'timed out'],
  ['unreachable', 'unreachable'],
  ['sent', 'sent, no answer yet'],
  ['pending', 'not sent yet'],
];

// A wave its rollout's abort ended (docs/architecture.md §6) waits for nothing more: its figures are
// final, so its words are too (nothing is "yet").
const ENDED_WORDS: Record<string, string> = { sent: 'sent, never answered', pending: 'never sent' };

/** What became of a wave an abort ended, the card's first line; null for a wave that runs or ran its course. */
function abortedLine(w: Wave): VNode | null {
  if (w.state === 'aborted') return h('p', { class: 'outcome' }, 'Aborted', w.endedAt !== null ? [' ', when(w.endedAt)] : null, ': the rollout was aborted while this wave was in progress; nothing more is sent, and these figures are final.');
  if (w.state === 'cancelled') return h('p', { class: 'outcome' }, `Cancelled: the rollout was aborted before this wave started; its ${count(w.members)} device${w.members === 1 ? ' was' : 's were'} never sent the bundle.`);
  return null;
}

/** One wave: its state, a bar of its members by status, the counts, and its ratios against its thresholds. */
export function waveCard(w: Wave, total: number): VNode {
  const label = waveLabel(w.index, total);
  const outcome = abortedLine(w);
  const parts = SEGMENTS.map(([k, word]) => ({ key: String(k), word: (outcome && ENDED_WORDS[k]) || word, n: w[k] as number })).filter((p) => p.n > 0);
  const summary = parts.map((p) => `${count(p.n)} ${p.word}`).join(', ') || 'no devices';
  const reachable = w.members - w.unreachable;
  const t = w.thresholds;
  const ackMet = w.ackRatio >= t.ackThreshold;
  const failOver = w.failureCounted && w.failureRatio > t.failureThreshold;
  const darkOver = w.unreachableRatio > t.maxUnreachable;
  const verdict = (ok: boolean, good: string, bad: string) => h('span', { class: `verdict ${ok ? 'ok' : 'not-ok'}` }, ok ? good : bad);
  return h(
    'article',
    { class: 'wave', 'data-wave': w.index + 1, 'aria-labelledby': `wave-${w.index}-h` },
    h('header', null, h('h3', { id: `wave-${w.index}-h` }, label), badge(w.state), h('span', { class: 'size' }, `${count(w.members)} device${w.members === 1 ? '' : 's'}`)),
    h(
      'div',
      { class: 'bar', role: 'img', 'aria-label': `${label}: ${summary}` },
      parts.map((p) => h('span', { class: `seg seg-${p.key}`, style: { width: `${(100 * p.n) / Math.max(1, w.members)}%` }, title: `${count(p.n)} ${p.word}` })),
    ),
    h('ul', { class: 'legend' }, parts.map((p) => h('li', { 'data-count': p.key }, h('span', { class: `swatch seg-${p.key}`, 'aria-hidden': 'true' }), h('span', { class: 'n' }, count(p.n)), ` ${p.word}`))),
    outcome,
    h(
      'dl',
      { class: 'ratios' },
      // A cancelled wave never ran: it has no ratios to judge, only that it never started.
      w.state === 'cancelled'
        ? null
        : [
            h('dt', null, 'Acknowledged'),
            outcome
              ? h('dd', null, `${percent(w.ackRatio)} of ${count(reachable)} reachable (${count(w.acked)}); it needed ${percent(t.ackThreshold)}`)
              : h('dd', null, `${percent(w.ackRatio)} of ${count(reachable)} reachable (${count(w.acked)}); needs ${percent(t.ackThreshold)} `, verdict(ackMet, 'met', 'not yet')),
            h('dt', null, 'Failures'),
            h(
              'dd',
              null,
              w.failureCounted
                ? [`${percent(w.failureRatio)} of ${count(w.responded)} that answered (${count(w.rejected + w.failing + (w.reverted ?? 0))}); limit ${percent(t.failureThreshold)} `, verdict(!failOver, 'within', 'over')]
                : outcome
                ? `${count(w.rejected + w.failing + (w.reverted ?? 0))} of ${count(w.responded)} that answered; never counted: fewer than ${count(Math.min(t.minDevices, reachable))} answered (limit ${percent(t.failureThreshold)})`
                : `${count(w.rejected + w.failing + (w.reverted ?? 0))} of ${count(w.responded)} so far; counted once ${count(Math.min(t.minDevices, reachable))} have answered (limit ${percent(t.failureThreshold)})`,
            ),
            h('dt', null, 'Offline all wave'),
            h('dd', null, `${percent(w.unreachableRatio)} (${count(w.unreachable)}); limit ${percent(t.maxUnreachable)} `, verdict(!darkOver, 'within', 'over')),
          ],
      h('dt', null, 'Timing'),
      h(
        'dd',
        null,
        w.state === 'cancelled'
          ? 'never started: the rollout was aborted first'
          : w.startedAt === null
          ? `not started; times out ${duration(t.timeoutSeconds)} after it starts${t.soakSeconds > 0 ? `, soaks ${duration(t.soakSeconds)}` : ''}`
          : ['started ', when(w.startedAt), w.deadline !== null && w.endedAt === null ? [', deadline ', when(w.deadline)] : null, w.soakUntil !== null && w.endedAt === null ? [', soaks until ', when(w.soakUntil)] : null, w.endedAt !== null ? [', ended ', when(w.endedAt)] : null],
      ),
    ),
  );
}

export function wavesSection(r: Rollout): VNode {
  return section('Waves', h('div', { class: 'waves' }, r.waves.map((w) => waveCard(w, r.waves.length))), { id: 'waves' });
}

function thresholdsText(t: Thresholds): string {
  return `ack ${percent(t.ackThreshold)}, failures ${percent(t.failureThreshold)} (from ${count(t.minDevices)} answers), offline ${percent(t.maxUnreachable)}, timeout ${duration(t.timeoutSeconds)}, soak ${duration(t.soakSeconds)}`;
}

/** Every decision, newest first: when, who, what, on which wave, why. */
export function decisionsTimeline(r: Rollout): VNode {
  const items = [...r.decisions].reverse();
  return section(
    'Decisions',
    items.length === 0
      ? h('p', { class: 'empty' }, 'No decisions yet: the rollout has not started.')
      : h(
          'ol',
          { class: 'timeline', reversed: true },
          items.map((d) =>
            h(
              'li',
              { 'data-action': d.action },
              h('span', { class: 'at' }, when(d.at)),
              ' ',
              h('strong', null, d.actor === 'system' ? 'gateway' : d.actor),
              ' ',
              h('span', { class: 'what' }, actionWord(d.action)),
              d.wave !== undefined ? ` ${waveLabel(d.wave, r.waves.length).toLowerCase()}` : '',
              d.from !== d.to ? [' (', badge(d.from), ' → ', badge(d.to), ')'] : '',
              ': ',
              decisionReason(d.reason, d.action),
              d.thresholds ? h('span', { class: 'thresholds' }, `; thresholds now ${thresholdsText(d.thresholds)}`) : null,
            ),
          ),
        ),
    { id: 'decisions' },
  );
}

/** Pin failures on this rollout's devices, by endpoint and the pin the endpoint served. */
export function pinFailuresTable(items: PinFailure[]): VNode {
  return section(
    'Pin failures',
    table(
      'Pin failures by endpoint and served pin, most first',
      ['Endpoint', 'Served pin', 'Result', 'Devices', 'Failures', 'Last received'],
      items.map((p) => [
        h('code', { class: 'endpoint' }, endpoint(p.host, p.port)),
        p.observedPin === null ? '—' : h('code', { class: 'pin' }, p.observedPin),
        p.result === 'pin_mismatch' ? 'mismatch (enforced)' : p.result === 'report_only_mismatch' ? 'mismatch (report only)' : p.result,
        `${count(p.devices)}${p.devicesCapped ? '+' : ''}`,
        count(p.failures),
        when(Date.parse(p.lastReceived)),
      ]),
      { empty: 'No device in this rollout has reported a pin failure.' },
    ),
    { id: 'pin-failures' },
  );
}

/** Whether this reader may approve: an operator who is not its creator and has not approved it yet, while approval is needed. */
export function mayApprove(r: Rollout, role: Role, name: string): boolean {
  const a = r.approval;
  return RANK[role] >= RANK.operator && r.state === 'pending' && a?.needed === true && name !== r.createdBy && !a.approvals.some((x) => x.actor === name);
}

/** The actions this reader's role and identity allow on the rollout in its state (the API checks again). */
export function allowedActions(r: Rollout, role: Role, name = ''): ActionVerb[] {
  if (RANK[role] < RANK.operator) return [];
  const out: ActionVerb[] = [];
  const gated = r.approval?.needed === true;
  if (mayApprove(r, role, name)) out.push('approve');
  if (r.state === 'pending' && !gated) out.push('start');
  if (r.state === 'running') out.push('pause');
  if (r.state === 'held') out.push('resume');
  if (r.state === 'pending' || r.state === 'running' || r.state === 'held') out.push('abort');
  const reached = r.waves.some((w) => w.startedAt !== null);
  // An aborted rollout too: the abort stopped the sending, and what it sent before is undone by a rollback.
  if (r.state !== 'pending' && !r.rolledBackBy && r.previousBundle !== null && reached) out.push('rollback');
  return out;
}

/** Every action asks first: the ellipsis says so. */
const LABELS: Record<ActionVerb, string> = { start: 'Start…', pause: 'Pause…', resume: 'Resume…', abort: 'Abort…', rollback: 'Roll back…', approve: 'Approve…' };

/** The action buttons, or nothing for a reader who may not act; a pending rollout that asked for approval says where it stands. */
export function actionsBar(r: Rollout, role: Role, onAction: (verb: ActionVerb) => void, name = ''): VNode | null {
  const verbs = allowedActions(r, role, name);
  const approval = r.approval && r.state === 'pending' ? approvalNote(r, name) : null;
  if (verbs.length === 0 && !approval) return null;
  return h(
    'section',
    { class: 'actions', id: 'actions', 'aria-labelledby': 'actions-h' },
    h('h2', { id: 'actions-h' }, 'Actions'),
    approval,
    h(
      'div',
      { class: 'buttons' },
      verbs.map((v) => h('button', { type: 'button', id: `action-${v}`, class: v === 'abort' || v === 'rollback' ? 'danger' : v === 'approve' || v === 'start' || v === 'resume' ? 'primary' : null, onclick: (() => onAction(v)) as Handler }, LABELS[v])),
    ),
  );
}

/** What a pending rollout that asked for approval says: why, how many more approvals it needs and from whom, who gave them. */
function approvalNote(r: Rollout, name: string): VNode {
  const a = r.approval!;
  const given = a.approvals;
  const more = `${count(a.remaining)} more approval${a.remaining === 1 ? '' : 's'} by an operator other than ${r.createdBy}`;
  return h(
    'p',
    { class: `approval ${a.needed ? 'approval-needed' : 'approval-given'}`, id: 'approval' },
    h('strong', null, a.needed ? 'Needs approval: ' : 'Approved: '),
    `it ${a.reason}`,
    a.needed ? `; ${more} (${count(a.required)} must agree, its creator being one)` : '',
    given.length > 0 ? ['; approved by ', given.map((g, i) => [i > 0 ? ', ' : '', g.actor, ' ', when(g.at)])] : '',
    a.passedBy === 'rollback' ? '; a rollback never waits for approval' : '',
    '. ',
    a.needed ? (name === r.createdBy ? 'You created it, so another operator must approve it before it can start.' : 'It cannot start until then.') : 'It may start.',
  );
}

/** A field of an action's dialog. */
export interface DialogField {
  name: string;
  label: string;
  /** `yesno`: a choice between `options` (true first, false second) */
  kind: 'percent' | 'integer' | 'seconds' | 'text' | 'yesno';
  value: number | string | boolean;
  options?: [string, string];
  hint?: string;
}

/** What a confirmation dialog says: what will happen, in so many words, and the button that does it. */
export interface ActionDialog {
  verb: ActionVerb;
  title: string;
  lines: string[];
  confirm: string;
  danger: boolean;
  fields: DialogField[];
}

/** The dialog that confirms an action, naming what it will do to this rollout. */
export function actionDialog(verb: ActionVerb, r: Rollout): ActionDialog {
  const n = r.waves.length;
  const w = r.waves[r.wave];
  const first = r.waves[0];
  const seq = `bundle seq ${count(r.bundle.seq)}`;
  switch (verb) {
    case 'start':
      return {
        verb,
        title: `Start rollout ${r.id}?`,
        lines: [`${waveLabel(0, n)} (${count(first?.members ?? 0)} of ${count(r.devices)} devices) is sent ${seq} of group ${r.bundle.group} now.`, 'Each later wave follows once the one before it passes its thresholds.'],
        confirm: 'Start rollout',
        danger: false,
        fields: [],
      };
    case 'pause':
      return {
        verb,
        title: `Pause rollout ${r.id}?`,
        lines: [`Nothing more is sent until someone resumes it; ${w ? waveLabel(w.index, n).toLowerCase() : 'the wave'} keeps its state and its timeout stops.`, `Devices that already have ${seq} keep it.`],
        confirm: 'Pause rollout',
        danger: false,
        fields: [],
      };
    case 'resume': {
      const t = w.thresholds;
      return {
        verb,
        title: `Resume rollout ${r.id}?`,
        lines: [
          `${waveLabel(w.index, n)} goes on with the thresholds below and a fresh timeout from now; its online devices that have not got ${seq} are sent it.`,
          'It is judged at once: if it is still over a threshold, it is held again.',
        ],
        confirm: 'Resume rollout',
        danger: false,
        fields: [
          { name: 'ackThreshold', label: 'Ack threshold', kind: 'percent', value: t.ackThreshold, hint: 'share of reachable devices that must acknowledge' },
          { name: 'failureThreshold', label: 'Failure threshold', kind: 'percent', value: t.failureThreshold, hint: 'share of answers rejecting or failing above which the wave holds' },
          { name: 'minDevices', label: 'Answers before failures count', kind: 'integer', value: t.minDevices },
          { name: 'maxUnreachable', label: 'Offline limit', kind: 'percent', value: t.maxUnreachable, hint: 'share of the wave offline throughout above which it holds' },
          { name: 'timeoutSeconds', label: 'Timeout (seconds)', kind: 'seconds', value: t.timeoutSeconds },
          { name: 'soakSeconds', label: 'Soak (seconds)', kind: 'seconds', value: t.soakSeconds },
          // docs/architecture.md §9: whether a health-checked device counts once it verified the new pins, or once it applied them.
          { name: 'requireVerified', label: 'Devices with a health check count', kind: 'yesno', value: t.requireVerified !== false, options: ['once verified (their endpoints answered under the new pins)', 'once applied'], hint: 'devices without a health check always count once applied' },
        ],
      };
    }
    case 'abort':
      return {
        verb,
        title: `Abort rollout ${r.id}?`,
        lines: ['Nothing more is ever sent by this rollout.', `Devices that applied ${seq} keep its pins: roll back instead to return them to the previous pins.`],
        confirm: 'Abort rollout',
        danger: true,
        fields: [{ name: 'reason', label: 'Reason (recorded with the decision)', kind: 'text', value: '' }],
      };
    case 'rollback':
      return {
        verb,
        title: `Roll back rollout ${r.id}?`,
        lines: [
          `A new bundle with the pins of the group's previous bundle (${shortId(r.previousBundle ?? '')}) and a higher seq is signed and sent in one wave to every device this rollout reached.`,
          r.state === 'completed' ? 'It takes this rollout’s place as the group’s baseline.' : r.state === 'aborted' ? 'This rollout stays aborted; the devices it reached get the previous pins back.' : 'This rollout is aborted.',
        ],
        confirm: 'Roll back',
        danger: true,
        fields: [],
      };
    case 'approve':
      return {
        verb,
        title: `Approve rollout ${r.id}?`,
        lines: [`You agree that ${seq} may be rolled out to ${count(r.devices)} devices, though it ${r.approval?.reason ?? 'changes pins'}.`, 'Your approval is recorded as a decision, with your name; it does not start the rollout.'],
        confirm: 'Approve rollout',
        danger: false,
        fields: [],
      };
  }
}

/** The dialog's body as a form: the lines, the fields (percentages shown as percent), an error line, the buttons. */
export function dialogForm(d: ActionDialog): VNode {
  const input = (f: DialogField): Child => {
    const id = `field-${f.name}`;
    const common = { id, name: f.name, 'aria-describedby': f.hint ? `${id}-hint` : null };
    const control =
      f.kind === 'yesno'
        ? h('select', common, h('option', { value: 'yes', selected: f.value === true }, f.options![0]), h('option', { value: 'no', selected: f.value === false }, f.options![1]))
        : f.kind === 'text'
        ? h('input', { ...common, type: 'text', maxlength: 200, value: String(f.value), autocomplete: 'off' })
        : f.kind === 'percent'
          ? h('input', { ...common, type: 'number', min: 0, max: 100, step: 'any', required: true, value: String(Math.round(Number(f.value) * 100000) / 1000) })
          : h('input', { ...common, type: 'number', min: f.kind === 'seconds' && f.name === 'timeoutSeconds' ? 1 : 0, step: 1, required: true, value: String(f.value) });
    return h('div', { class: 'field' }, h('label', { for: id }, f.label, f.kind === 'percent' ? ' (%)' : ''), control, f.hint ? h('small', { id: `${id}-hint` }, f.hint) : null);
  };
  return h(
    'form',
    { method: 'dialog', class: 'dialog-form', id: 'dialog-form' },
    h('h2', { id: 'dialog-title' }, d.title),
    h('div', { id: 'dialog-desc' }, d.lines.map((l) => h('p', null, l))),
    d.fields.map(input),
    h('p', { class: 'error', id: 'dialog-error', role: 'alert' }),
    h('div', { class: 'buttons' }, h('button', { type: 'button', id: 'dialog-cancel', value: 'cancel' }, 'Cancel'), h('button', { type: 'submit', id: 'dialog-confirm', class: d.danger ? 'danger' : 'primary' }, d.confirm)),
  );
}

/** The body an action's POST sends, from the dialog's fields: percentages back to ratios, only what changed. */
export function actionBody(d: ActionDialog, values: Record<string, string>): Record<string, unknown> | null {
  const body: Record<string, unknown> = {};
  for (const f of d.fields) {
    const raw = (values[f.name] ?? '').trim();
    if (f.kind === 'text') {
      if (raw !== '') body[f.name] = raw;
      continue;
    }
    if (f.kind === 'yesno') {
      if (raw !== 'yes' && raw !== 'no') throw new Error(`${f.label}: choose one`);
      if ((raw === 'yes') !== f.value) body[f.name] = raw === 'yes';
      continue;
    }
    const n = Number(raw);
    if (raw === '' || !Number.isFinite(n)) throw new Error(`${f.label}: a number is needed`);
    const v = f.kind === 'percent' ? Math.round(n * 1000) / 100000 : n;
    if (v !== f.value) body[f.name] = v;
  }
  return Object.keys(body).length === 0 ? null : body;
}
