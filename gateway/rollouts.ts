// Rollout orchestration (docs/architecture.md §1, §6): creating rollouts (target, pre-flight, waves),
// the operator's actions on them, rollbacks, the timer's tick, resuming every rollout at start, and
// the interpreter that performs the engine's effects. Every decision is the pure engine's
// (gateway/rollout/engine.ts) or its policy's (gateway/rollout/policy.ts): this file gathers the
// values they take, and performs what they return.
//
//   const { rollout } = await rollouts.create({ bundle, target: { group: 'thermostats' }, start: true }, 'alice');
//   rollouts.apply(r, engine.deviceAcked(r, 'th-1', ack, now));   // what ingest does per ack
import type { AlertEventName, RolloutAlert } from './alerts.ts';
import { gateRollout, type ApprovalGateDeps } from './approval-gate.ts';
import { approvalState, approve, startGate, type ApprovalPolicy, type ApprovalState } from './rollout/approval.ts';
import type { Bundles } from './bundles.ts';
import { DecisionLog } from './decision-log.ts';
import type { Delivery } from './delivery.ts';
import { GatewayError, invalid, notFound, unresolved } from './errors.ts';
import { resolveIdPrefix, MIN_PREFIX } from './id-prefix.ts';
import type { Logger } from './logger.ts';
import { preflight, type Preflight, type PreflightFinding, type PreflightOptions } from './preflight.ts';
import { continuityInput, forcedDecision } from './continuity-hooks.ts';
import { initialPins, missingManifestMessage } from './initial-pins.ts';
import { keyEpochFindings } from './key-rotation.ts';
import type { ManifestRegistry } from './manifest-registry.ts';
import type { BundleInput, RollbackReach } from './bundles.ts';
import { StoreError, type BundleRecord } from './store/types.ts';
import * as engine from './rollout/engine.ts';
import type { ResumeScope } from './rollout/engine.ts';
import { checkPlan, checkThresholds } from './rollout/plan.ts';
import { fit, parseDeadline, type DeadlineFit, type DeadlineInput } from './rollout/deadline.ts';
import { rolloutGauges, type RolloutGauges } from './rollout/gauges.ts';
import { baselineAfterRollback, reachedMembers, rollbackEligibility, rollbackTargets } from './rollout/policy.ts';
import { summary, type RolloutSummary } from './rollout/summary.ts';
import type { ActionResult, DeviceStatus, Effect, IsOnline, PlanInput, Rollout, RolloutState, Target, WaveThresholds } from './rollout/types.ts';
import type { DeviceRecord } from './store/types.ts';
import type { Change, ChangeStore } from './store/changes.ts';
import { engineRollout } from './store/rollout-records.ts';
import { createChanges, RolloutLedger, ROLLOUT_EXTRAS } from './rollout-changes.ts';
import { activeDevicesOf, allDevices, baselineOf, commit } from './fleet-reads.ts';
import type { Reloads } from './reloads.ts';
import type { Tasks } from './tasks.ts';
import type { Webhooks } from './webhooks.ts';
import { bundleFitsManifest, formatPin, inspectBundle, type FirmwareManifest } from '../firmware-manifest/index.ts';

export interface RolloutInput extends PlanInput, DeadlineInput {
  bundle: string;
  target: Target;
  start?: boolean;
  /** also check the bundle's pins against what every endpoint serves now, by name; default: config preflight.probeAll */
  checkEndpoints?: boolean;
  /** by `host:port`: keys the operator says the endpoint will serve (`sha256/…`), which pin continuity accepts */
  nextKeys?: Record<string, string[]>;
  /** start even though pin continuity refuses, or devices report a seq not below the bundle's; needs `reason`, and is recorded as a `force` decision */
  force?: boolean;
  reason?: string;
}

/** A rollout record as the gateway keeps it: the engine's record plus the gateway's own fields. */
export type GatewayRollout = Rollout & {
  createdBy: string;
  /** the bundle the target ran before (the group baseline at creation), for rollback */
  previousBundle: string | null;
  rollbackOf?: string;
  /** the rollback rollout that undid this one */
  rolledBackBy?: string;
  /** the gates a rollback passed as a recorded decision instead of a refusal (docs/architecture.md §6) */
  gatesBypassed?: BypassedGate[];
};

/**
 * A gate a rollback is not held by: the gates the rollout it undoes had to pass are passed with the
 * findings recorded, never a refusal: a rollback must never be blocked by what let the bad bundle
 * out. Pre-flight records itself here; two-person approval records its own pass on the rollback
 * (rollout/approval.ts passForRollback, the rollout's `approval.passedBy`).
 */
export interface BypassedGate {
  gate: 'preflight';
  at: number;
  actor: string;
  reason: 'rollback';
  findings: PreflightFinding[];
}

export interface RolloutsOptions {
  /** the store, through `reloads` (its `store`): a failed commit has every record read again */
  store: ChangeStore;
  reloads: Reloads;
  bundles: Bundles;
  delivery: Delivery;
  tasks: Tasks;
  /** where alerts go; null without webhooks */
  webhooks: Webhooks | null;
  /** the manifests the gateway knows (kept by the caller, which may add to it): pre-flight, and the initial pins a first rollout's rollback restores */
  manifests: ManifestRegistry;
  isOnline: IsOnline;
  log: Logger;
  now: () => number;
  /** pin continuity before a rollout (config `preflight`, gateway/continuity.ts) */
  preflight?: PreflightOptions;
  /** two-person approval of pin changes (config `approval`); undefined: off */
  approval?: ApprovalPolicy;
}

/** The pins of a bundle's endpoints in one canonical text: endpoint and pin order, and defaults written or not, do not count. */
function pinSetKey(endpoints: BundleInput['endpoints']): string {
  return endpoints
    .map((e) => [e.host, e.port ?? 443, [...e.pins].sort().join(','), e.mode ?? 'enforce', e.notBefore ?? '', e.notAfter ?? ''].join(' '))
    .sort()
    .join('\n');
}

export class Rollouts {
  readonly #store: ChangeStore;
  readonly #bundles: Bundles;
  readonly #delivery: Delivery;
  readonly #tasks: Tasks;
  readonly #webhooks: Webhooks | null;
  readonly #manifests: ManifestRegistry;
  readonly #isOnline: IsOnline;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #preflight: PreflightOptions | undefined;
  readonly #approval: ApprovalPolicy | undefined;
  readonly #decisions: DecisionLog;
  readonly #reloads: Reloads;
  readonly #rollouts = new Map<string, GatewayRollout>();
  /** device id → the latest rollout (not aborted) that includes it */
  readonly #deviceRollout = new Map<string, string>();
  /** times a rollout turned at risk of missing its deadline (docs/architecture.md §9), for metrics */
  #atRisk = 0;
  /** called with a rollout's id whenever its record is persisted (onChange) */
  readonly #listeners = new Set<(rolloutId: string) => void>();
  /** what the store holds of each rollout record (rollout-changes.ts), by the record itself */
  readonly #ledgers = new WeakMap<GatewayRollout, RolloutLedger>();
  /** per rollout, its last commit in flight: a read waits for it, so what it shows is in the store */
  readonly #lastCommit = new Map<string, Promise<unknown>>();

  constructor(o: RolloutsOptions) {
    this.#store = o.store;
    this.#bundles = o.bundles;
    this.#delivery = o.delivery;
    this.#tasks = o.tasks;
    this.#webhooks = o.webhooks;
    this.#manifests = o.manifests;
    this.#isOnline = o.isOnline;
    this.#log = o.log;
    this.#now = o.now;
    this.#preflight = o.preflight;
    this.#approval = o.approval;
    this.#decisions = new DecisionLog(o.log);
    this.#reloads = o.reloads;
  }

  /**
   * Loads every stored rollout where it stood (docs/architecture.md §7): a restart resumes them.
   * `announce`: the change listeners are told of every rollout (a follower replica's view, read
   * again after the leader changed it: docs/architecture.md §8).
   */
  async load(announce = false): Promise<void> {
    // Read into maps of their own, and swapped in at once: a reload never shows half the rollouts.
    const rollouts = new Map<string, GatewayRollout>();
    const deviceRollout = new Map<string, string>();
    const fixes: Change[] = [];
    for (let cursor: string | null = null; ; ) {
      const page = await this.#store.listRollouts({ limit: 100, cursor });
      for (const stored of page.items) {
        const members = [];
        for (let mc: string | null = null; ; ) {
          const mp = await this.#store.listMembers(stored.id, { limit: 1000, cursor: mc });
          members.push(...mp.items);
          if ((mc = mp.next) === null) break;
        }
        const extras = await this.#store.getItem(ROLLOUT_EXTRAS, stored.id);
        const base = engineRollout(stored, members);
        const r: GatewayRollout = {
          ...base,
          rollbackOf: base.rollbackOf ?? undefined,
          rolledBackBy: base.rolledBackBy ?? undefined,
          ...(extras?.deadline != null && { deadline: extras.deadline as unknown as GatewayRollout['deadline'] }),
          ...(extras?.gatesBypassed != null && { gatesBypassed: extras.gatesBypassed as unknown as BypassedGate[] }),
        };
        if (r.rollbackOf === undefined) delete r.rollbackOf;
        if (r.rolledBackBy === undefined) delete r.rolledBackBy;
        const ledger = new RolloutLedger(r);
        // A follower's view is read while the leader writes (not one snapshot): it fixes nothing.
        // A compacted rollout has no members to count from: its counts are all that is left of
        // them (docs/storage.md, bounded growth), never drift.
        if (stored.compactedAt == null && engine.rebuildCounters(r) && !announce) {
          this.#log.warn({ rollout: r.id }, 'rollout counters were out of step and were rebuilt');
          fixes.push(...ledger.changes(r));
        }
        // An aborted rollout from an older writer, its waves still active (docs/architecture.md §6).
        if (engine.settleWaves(r) && !announce) fixes.push(...ledger.changes(r));
        this.#ledgers.set(r, ledger);
        rollouts.set(r.id, r);
        this.#decisions.seen(r);
        // A rolled-back rollout delivers nothing again: the members it reached are its rollback's,
        // and those it never reached left it for the group's baseline (as rollback() leaves them).
        if (r.state === 'aborted' || r.rolledBackBy !== undefined) continue;
        for (const dev of Object.keys(r.devices)) deviceRollout.set(dev, r.id);
      }
      if ((cursor = page.next) === null) break;
    }
    if (fixes.length > 0) await commit(this.#store, fixes);
    this.#rollouts.clear();
    for (const [id, r] of rollouts) this.#rollouts.set(id, r);
    this.#deviceRollout.clear();
    for (const [dev, id] of deviceRollout) this.#deviceRollout.set(dev, id);
    if (announce) for (const r of rollouts.values()) this.#changed(r);
  }

  /**
   * Set while the records are read again from the store after a commit failed (docs/storage.md: a
   * change the store could not commit has no effect anywhere, in memory either): a caller about to
   * change a rollout waits for it first.
   */
  get reloading(): Promise<void> | null {
    return this.#reloads.reloading;
  }

  get size(): number {
    return this.#rollouts.size;
  }

  /** Every rollout, in creation order (support queries). */
  all(): IterableIterator<GatewayRollout> {
    return this.#rollouts.values();
  }

  /** The rollout, or PW_NOT_FOUND. */
  get(id: string): GatewayRollout {
    const r = this.#rollouts.get(id);
    if (!r) throw notFound('rollout', id);
    return r;
  }

  /**
   * Calls `listener` with a rollout's id whenever its record is persisted (every operator action,
   * every ack or hold that changed it); returns the function that removes it. It runs on the
   * per-ack path: it must be cheap and must not throw.
   */
  onChange(listener: (rolloutId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  // ---------------------------------------------------------------- creating

  /** Creates a rollout after a pre-flight check; with `start`, starts it too. */
  async create(input: RolloutInput, actor: string): Promise<{ rollout: RolloutSummary; preflight: Preflight; deadlineFit?: DeadlineFit }> {
    return this.#create(input, actor, null);
  }

  /** `replacing`: the rollout a rollback takes devices over from, whose devices are not busy for it. */
  async #create(input: RolloutInput, actor: string, replacing: string | null): Promise<{ rollout: RolloutSummary; preflight: Preflight; deadlineFit?: DeadlineFit }> {
    const { r, check, bundle, bytes, targetIds } = await this.#prepare(input, actor, replacing);
    // After the last await: the records may be being read again meanwhile (a commit failed), and
    // the new rollout is taken into those read, never into those the read replaces.
    while (this.reloading) await this.reloading;
    await this.#commitNew(r, targetIds);
    this.#bundles.remember(bundle.id, bytes, bundle);
    this.#log.info({ rollout: r.id, bundle: bundle.id, devices: targetIds.length, actor }, 'rollout created');
    this.#decisions.log(r);
    await this.#gate(r, actor, replacing !== null);
    // docs/architecture.md §9: whether the plan can reach its target share in time, a warning only.
    const deadlineFit = fit(r, this.#now());
    // One that waits for approval stays pending, its summary saying so (docs/architecture.md §10).
    if (input.start && startGate(r, r.createdBy) === null) await this.start(r.id, actor);
    return { rollout: summary(r, this.#now()), preflight: check, ...(deadlineFit && { deadlineFit }) };
  }

  /** A new rollout's record, checked and pre-flighted, in memory only: nothing is stored or taken yet. */
  async #prepare(input: RolloutInput, actor: string, replacing: string | null): Promise<{ r: GatewayRollout; check: Preflight; bundle: BundleRecord; bytes: Buffer; targetIds: string[] }> {
    if (typeof input?.bundle !== 'string') throw invalid('bundle: a bundle id is required');
    // Validation before state: the whole plan is checked before anything is looked up, so a
    // malformed one is a 400 naming the field whatever rollout its devices are in.
    const plan = { waves: input.waves, onMiss: input.onMiss, seed: input.seed };
    const planned = checkPlan(plan);
    if (!planned.ok) throw new GatewayError('PW_INVALID_PLAN', planned.errors.join('; '), { errors: planned.errors });
    const deadline = parseDeadline(input);
    if (!deadline.ok) throw new GatewayError('PW_INVALID_PLAN', deadline.errors.join('; '), { errors: deadline.errors });
    // A unique prefix names a bundle too (gateway/id-prefix.ts).
    if (this.reloading) await this.reloading;
    const bundle = await this.#store.getBundle(await this.#bundles.resolveId(input.bundle));
    if (!bundle) throw notFound('bundle', input.bundle);
    const targetIds = await this.#resolveTarget(input.target);
    const cut = checkPlan(plan, targetIds.length);
    if (!cut.ok) throw new GatewayError('PW_INVALID_PLAN', cut.errors.join('; '), { errors: cut.errors });
    const devices = await Promise.all(targetIds.map((id) => this.#store.getDevice(id)));
    const busy = targetIds.filter((id) => this.activeRolloutOf(id) !== null && this.#deviceRollout.get(id) !== replacing);
    if (busy.length > 0) throw this.#busy(busy);
    const bytes = Buffer.from(bundle.bytes, 'base64');
    const decoded = inspectBundle(new Uint8Array(bytes));
    if (!decoded.ok) throw new Error(`stored bundle ${bundle.id} does not decode: ${decoded.detail}`);
    const targeted = devices.filter((d): d is DeviceRecord => d !== null);
    const check = await preflight({
      bundle: { record: bundle, bytes: new Uint8Array(bytes), decoded: decoded.bundle },
      devices: targeted,
      manifests: this.#manifests.byModel(),
      fits: bundleFitsManifest,
      checkEndpoints: input.checkEndpoints ?? this.#preflight?.probeAll ?? false,
      now: Math.floor(this.#now() / 1000),
      ...(await continuityInput(input, decoded.bundle, targeted, this.#manifests.byModel(), this.#preflight, (b) => this.#bundles.decoded(b).then((x) => x.bundle, () => null), replacing !== null ? 'a rollback restores pins the devices ran before' : undefined)),
    });
    // Keys (gateway/key-rotation.ts): every target trusts the signing key at the epoch it reports.
    const epochs = keyEpochFindings({ kid: decoded.envelope.kid, rotation: decoded.bundle.keyRotation, devices: targeted, rotations: await this.#bundles.rotations(bundle.group) });
    check.problems.push(...epochs.problems);
    check.warnings.push(...epochs.warnings);
    check.ok = check.problems.length === 0;
    // A rollback (replacing a rollout) passes pre-flight as a recorded decision (BypassedGate);
    // a forced start passes pin continuity as one (continuity-hooks.ts).
    const forced = replacing === null ? forcedDecision(check, input, actor, this.#now()) : null;
    // A rollback passes the gates that judge risk, not the certainty that its devices would reject
    // it: a bundle they take as unknown_key or stale_key_epoch undoes nothing (#rollbackBundle picks
    // a key they trust; this stops a bundle given that they do not).
    const rejected = replacing === null ? [] : check.problems.filter((p) => p.code === 'unknown_key' || p.code === 'stale_key_epoch');
    if (rejected.length > 0) throw new GatewayError('PW_INVALID_STATE', `cannot roll back ${replacing}: ${rejected.map((p) => p.message).join('; ')}`, { problems: rejected, devices: [...new Set(rejected.flatMap((p) => p.devices ?? []))].slice(0, 100) });
    if (!check.ok && replacing === null && !forced) throw new GatewayError('PW_PREFLIGHT', `pre-flight refused the rollout: ${check.problems.map((p) => p.message).join('; ')}${input.force ? ' (force overrides only pin continuity and devices ahead of the bundle\'s seq)' : ''}`, check);
    const id = `r-${bundle.group}-${bundle.seq}-${(this.#now() % 1e6).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
    const created = engine.createRollout({
      id,
      bundle: { id: bundle.id, seq: bundle.seq, group: bundle.group },
      target: input.target,
      deviceIds: targetIds,
      plan: { waves: input.waves, onMiss: input.onMiss, seed: input.seed },
      deadline: deadline.deadline,
      now: this.#now(),
    });
    if (!created.ok) throw new GatewayError('PW_INVALID_PLAN', created.errors.join('; '), { errors: created.errors });
    const previousBundle = await baselineOf(this.#store, bundle.group);
    const r: GatewayRollout = { ...created.rollout, createdBy: actor, previousBundle };
    if (!check.ok) {
      r.gatesBypassed = [{ gate: 'preflight', at: this.#now(), actor, reason: 'rollback', findings: check.problems }];
      this.#log.warn({ rollout: r.id, rollbackOf: replacing, findings: check.problems.map((p) => p.message) }, 'pre-flight bypassed for a rollback');
    }
    if (forced) r.decisions.push(forced);
    return { r, check, bundle, bytes, targetIds };
  }

  /** docs/architecture.md §10: records an approval request when the policy asks for more than the creator, and tells the others. */
  async #gate(r: GatewayRollout, actor: string, rollback: boolean): Promise<void> {
    const s = await gateRollout(this.#approvalDeps, r, r.createdBy, actor, { rollback, now: this.#now() });
    if (s === null) return;
    this.#decisions.log(r);
    await this.#persist(r);
    if (s.needed) this.#alert(r, 'approval.requested', null, 'removes_pins', actor, { approval: { creator: r.createdBy, required: s.required, remaining: s.remaining, removed: s.removed } });
  }

  /** What the approval gate reads (gateway/approval-gate.ts). */
  get #approvalDeps(): ApprovalGateDeps {
    return {
      policy: this.#approval,
      getDevice: (id) => this.#store.getDevice(id),
      baseline: (group) => baselineOf(this.#store, group),
      manifests: this.#manifests.byModel(),
      pins: async (id) => {
        const { record, bundle } = await this.#bundles.decoded(id);
        return { seq: record.seq, endpoints: bundle.endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins.map(formatPin) })) };
      },
    };
  }

  async #resolveTarget(target: Target): Promise<string[]> {
    if (target && typeof target === 'object' && 'group' in target && typeof target.group === 'string') {
      const live = (await activeDevicesOf(this.#store, target.group)).map((d) => d.id);
      if (live.length === 0) throw invalid(`target.group: group "${target.group}" has no provisioned devices`);
      return live;
    }
    if (target && typeof target === 'object' && 'devices' in target && Array.isArray(target.devices) && target.devices.length > 0) {
      const ids = [...new Set(target.devices)];
      const found = ids.every((id) => typeof id === 'string') && ids.length <= 10_000 ? await this.#store.getDevices(ids) : ids.map(() => null);
      const unknown = ids.filter((_, i) => !found[i] || found[i]!.revokedAt !== null).map(String);
      if (unknown.length > 0) throw invalid(`target.devices: unknown or revoked device${unknown.length === 1 ? '' : 's'}: ${unknown.slice(0, 20).join(', ')}`, { devices: unknown });
      return ids;
    }
    throw invalid('target: must be { "group": G } or { "devices": [ids...] } with at least one device');
  }

  /** PW_CONFLICT for targeted devices in another rollout, naming each such rollout and its state (pending, running or held). */
  #busy(ids: string[]): GatewayError {
    const byRollout = new Map<string, string[]>();
    for (const dev of ids) {
      const rid = this.#deviceRollout.get(dev)!;
      byRollout.set(rid, [...(byRollout.get(rid) ?? []), dev]);
    }
    const rollouts = [...byRollout].map(([rid, devs]) => ({ id: rid, state: this.#rollouts.get(rid)!.state, devices: devs.length }));
    const where =
      rollouts.length === 1
        ? `rollout ${rollouts[0].id}, which is ${rollouts[0].state}`
        : `other rollouts: ${rollouts.map((r) => `${r.devices} in ${r.id} (${r.state})`).join(', ')}`;
    const are = ids.length === 1 ? ' is' : 's are';
    return new GatewayError('PW_CONFLICT', `${ids.length} targeted device${are} already in ${where}: ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}`, { devices: ids.slice(0, 1000), rollouts });
  }

  // ---------------------------------------------------------------- operator actions

  /** PW_APPROVAL_REQUIRED while the rollout waits for operators other than its creator (docs/architecture.md §10). */
  async start(id: string, actor: string): Promise<RolloutSummary> {
    const pending = this.get(id);
    if (pending.state === 'pending') {
      await this.#gate(pending, actor, false);
      const missing = startGate(pending, pending.createdBy);
      if (missing !== null) throw new GatewayError('PW_APPROVAL_REQUIRED', missing, { approval: approvalState(pending, pending.createdBy) });
    }
    return this.#act(id, (r) => engine.start(r, this.#now(), actor, this.#isOnline));
  }

  /** An operator other than its creator agrees to a pending rollout that asked for approval; a second approval by one identity counts once. */
  async approve(id: string, actor: string): Promise<RolloutSummary> {
    const r = this.get(id);
    const result = approve(r, r.createdBy, actor, this.#now());
    if (!result.ok) throw new GatewayError(result.code, result.message);
    if (result.counted) {
      this.#decisions.log(r);
      await this.#persist(r);
    }
    return summary(r);
  }

  async pause(id: string, actor: string): Promise<RolloutSummary> {
    return this.#act(id, (r) => engine.pause(r, this.#now(), actor));
  }

  /** `scope`: the new thresholds are for the held wave only (default), or for it and every wave after it. */
  async resume(id: string, actor: string, changes: Partial<WaveThresholds> = {}, scope: ResumeScope = 'held'): Promise<RolloutSummary> {
    // Validation before state: bad thresholds are a 400 whatever state the rollout is in.
    const errors: string[] = [];
    checkThresholds((changes ?? {}) as Record<string, unknown>, '', errors);
    if (scope !== 'held' && scope !== 'remaining') errors.push(`for must be one of held, remaining, got ${JSON.stringify(scope)}`);
    if (errors.length > 0) throw new GatewayError('PW_INVALID_PLAN', errors.join('; '), { errors });
    return this.#act(id, (r) => {
      const result = engine.resume(r, this.#now(), actor, this.#isOnline, changes, scope);
      // Raised here, before the effects: a wave held again at once alerts after its resume.
      if (result.ok) {
        const d = [...r.decisions].reverse().find((x) => x.action === 'resume')!;
        this.#alert(r, 'rollout.resumed', d.wave ?? r.wave, d.reason, actor, { scope, thresholds: { ...d.thresholds! } });
      }
      return result;
    });
  }

  async abort(id: string, actor: string, reason = 'operator'): Promise<RolloutSummary> {
    return this.#act(id, (r) => engine.abort(r, this.#now(), actor, reason));
  }

  /**
   * Rolls back: a new bundle with the pins the group ran before (a higher seq, so devices take it),
   * sent in one wave to every device this rollout reached; this rollout is aborted with the reason,
   * or, completed, keeps its state with a rollback decision. Nothing changes until the rollback
   * rollout exists: a refusal leaves this rollout as it was. What may be rolled back, to which
   * bundle, for which devices, and the baseline after, are gateway/rollout/policy.ts's.
   *
   * One batch (docs/architecture.md §7): the rollback rollout, created and started with its members
   * sent, the links both ways, this rollout's rollback decision (or abort) and the group's baseline
   * commit together or not at all; nothing is sent before. Only the bundle is stored before it (a
   * bundle no rollout sends is harmless).
   */
  async rollback(id: string, actor: string, opts: { bundle?: string } = {}): Promise<{ aborted: RolloutSummary; rollback: RolloutSummary }> {
    const r = this.get(id);
    const eligible = rollbackEligibility(r);
    if (!eligible.ok) throw new GatewayError(eligible.code, eligible.message);
    const live = new Map<string, DeviceRecord>();
    // A compacted rollout (every rollout has members until then) keeps no members: who it reached
    // is who reports its bundle (docs/storage.md, bounded growth).
    const compacted = Object.keys(r.devices).length === 0;
    const reached = compacted ? [] : reachedMembers(r);
    for (let i = 0; i < reached.length; i += 10_000) {
      const chunk = reached.slice(i, i + 10_000);
      (await this.#store.getDevices(chunk)).forEach((d, j) => d && d.revokedAt === null && live.set(chunk[j], d));
    }
    if (compacted) for (const d of await allDevices(this.#store, { group: r.bundle.group, bundleId: r.bundle.id })) if (d.revokedAt === null) live.set(d.id, d);
    if (compacted && live.size === 0) throw new GatewayError('PW_INVALID_STATE', `rollout ${r.id} is compacted and no live device reports its bundle: nothing to roll back`);
    const targets = compacted ? { ok: true as const, devices: [...live.keys()] } : rollbackTargets(r, (dev) => live.has(dev));
    if (!targets.ok) throw new GatewayError(targets.code, targets.message);
    // Who holds the bundle must trust the rollback's signing key (gateway/key-rotation.ts rollbackSigner).
    // So may a member whose ack was lost (sent, timed_out): it may run the bundle, and, the bundle a
    // key rotation, be at its epoch as well as the one it reports.
    const loaded = await this.#bundles.load(r.bundle.id);
    const rotatesTo = loaded ? this.#bundles.rotationEpoch(r.bundle.id, loaded.bytes) : null;
    const reachedDevices = targets.devices.map((dev) => {
      const record = live.get(dev)!;
      const status = r.devices[dev]?.status;
      const unacked = status === 'sent' || status === 'timed_out';
      return { record, holds: compacted || unacked || record.bundleId === r.bundle.id || engine.runsBundle(r, dev), ...(unacked && rotatesTo !== null && { alsoAt: rotatesTo }) };
    });
    const { bundle, leftOut } = await this.#rollbackBundle(r, eligible.returnTo, actor, opts.bundle, reachedDevices);
    const out = new Set(leftOut);
    const sendTo = out.size === 0 ? targets.devices : targets.devices.filter((dev) => !out.has(dev));
    if (sendTo.length === 0) throw new GatewayError('PW_INVALID_STATE', `rollout ${r.id}: no device it reached holds its bundle, and none would trust the rollback's signing key: nothing to roll back`, { leftOut });
    if (leftOut.length > 0) this.#log.info({ rollout: r.id, leftOut: leftOut.slice(0, 100), count: leftOut.length }, 'rollback leaves out reached devices that never took the bundle and would reject its signing key');
    const { r: created, bundle: stored, bytes, targetIds } = await this.#prepare({ bundle: bundle.id, target: { devices: sendTo }, waves: [{ size: '100%' }] }, actor, id);
    created.rollbackOf = id;
    created.previousBundle = r.bundle.id;
    const approval = await gateRollout(this.#approvalDeps, created, created.createdBy, actor, { rollback: true, now: this.#now() });
    const baseline = await baselineOf(this.#store, r.bundle.group);
    // After the last await: the rollout may have moved meanwhile (another rollback, an abort).
    if (this.reloading) await this.reloading;
    if (this.#rollouts.get(id) !== r) throw new GatewayError('PW_INVALID_STATE', `rollout ${id} was read again from the store while it was rolled back; roll it back again`);
    const still = rollbackEligibility(r);
    if (!still.ok) throw new GatewayError(still.code, still.message);
    const missing = startGate(created, created.createdBy);
    if (missing !== null) throw new GatewayError('PW_APPROVAL_REQUIRED', missing, { approval: approvalState(created, created.createdBy) });
    // A rollout created meanwhile may have taken the devices: refused here, before this rollout is
    // changed in memory (#commitNew would refuse them only after, leaving the change uncommitted).
    const taken = this.#taken(targetIds, id);
    if (taken.length > 0) throw this.#busy(taken);
    const now = this.#now();
    const started = engine.start(created, now, actor, this.#isOnline);
    if (!started.ok) throw new GatewayError(started.code, started.message);
    const wasCompleted = r.state === 'completed';
    const rolled = engine.rollBack(r, now, actor);
    if (!rolled.ok) throw new GatewayError(rolled.code, rolled.message);
    r.rolledBackBy = created.id;
    const next = baselineAfterRollback(r, wasCompleted, baseline, bundle.id);
    const { changes } = this.#changesOf(r, rolled.effects);
    if (next !== null) changes.push({ type: 'group.baseline', group: r.bundle.group, bundleId: next });
    await this.#commitNew(created, targetIds, changes);
    this.#bundles.remember(stored.id, bytes, stored);
    this.#log.info({ rollout: created.id, rollbackOf: id, bundle: stored.id, devices: targetIds.length, actor }, 'rollback rollout created');
    // Members never reached leave this rollout: they get the group's baseline when they connect.
    for (const dev of Object.keys(r.devices)) if (this.#deviceRollout.get(dev) === id) this.#deviceRollout.delete(dev);
    this.#perform(r, rolled.effects, true);
    this.#perform(created, started.effects, true);
    if (approval?.needed) this.#alert(created, 'approval.requested', null, 'removes_pins', actor, { approval: { creator: created.createdBy, required: approval.required, remaining: approval.remaining, removed: approval.removed } });
    return { aborted: summary(r), rollback: summary(created) };
  }

  /**
   * The bundle a rollback sends (docs/architecture.md §6): the one given (uploaded, for a gateway
   * without a signing key), else the previous bundle's pins signed again with a higher seq, else (a
   * group's first rollout) the initial pins of the manifests of the group's models
   * (gateway/initial-pins.ts); PW_INVALID_STATE naming the manifests to push when some are missing.
   */
  async #rollbackBundle(r: GatewayRollout, returnTo: string | null, actor: string, given: string | undefined, reached: ReadonlyArray<RollbackReach>): Promise<{ bundle: BundleRecord; leftOut: string[] }> {
    const group = r.bundle.group;
    let restore: BundleInput;
    if (returnTo !== null) {
      const previous = await this.#bundles.decoded(returnTo);
      restore = {
        group,
        endpoints: previous.bundle.endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins.map(formatPin), mode: e.mode, notBefore: e.notBefore, notAfter: e.notAfter })),
        expiryPolicy: previous.bundle.expiryPolicy,
      };
    } else {
      const devices: DeviceRecord[] = await activeDevicesOf(this.#store, group);
      const pins = initialPins(devices, (model, firmware) => this.#findManifest(model, firmware));
      if (!pins.ok) throw new GatewayError('PW_INVALID_STATE', missingManifestMessage(r.id, group, pins.missing), { missing: pins.missing });
      restore = { group, endpoints: pins.endpoints, expiryPolicy: pins.expiryPolicy };
    }
    if (given !== undefined) {
      const b = await this.#bundles.get(await this.#bundles.resolveId(given));
      if (b.group !== group) throw invalid(`bundle: ${b.id} is for group "${b.group}"; rollout ${r.id} is for "${group}"`);
      if (b.seq <= r.bundle.seq) throw new GatewayError('PW_INVALID_STATE', `bundle ${b.id} has seq ${b.seq}: the devices that applied rollout ${r.id} hold seq ${r.bundle.seq} and would reject it as replayed`);
      // A rollback passes approval (docs/architecture.md §10) because it restores fixed pins; a
      // bundle with any other pins, or a key rotation, would ride that pass: it goes out as a rollout.
      const { bundle } = await this.#bundles.decoded(b.id);
      const carried = bundle.endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins.map(formatPin), mode: e.mode, notBefore: e.notBefore, notAfter: e.notAfter }));
      if (bundle.keyRotation !== undefined || pinSetKey(carried) !== pinSetKey(restore.endpoints)) {
        const from = returnTo !== null ? `those of bundle ${returnTo}` : "the initial pins of the group's firmware manifests";
        throw new GatewayError('PW_INVALID_STATE', `bundle ${b.id} does not carry the pins a rollback of ${r.id} restores (${from}, in details.pins)${bundle.keyRotation !== undefined ? ' and rotates the signing keys' : ''}: roll it out as a rollout of its own, which passes approval like any other`, { pins: restore.endpoints });
      }
      const envelope = inspectBundle(new Uint8Array(Buffer.from(b.bytes, 'base64')));
      if (!envelope.ok) throw new Error(`stored bundle ${b.id} does not decode: ${envelope.detail}`);
      const { leftOut } = await this.#bundles.rollbackKey(group, r.id, reached, envelope.envelope.kid);
      return { bundle: b, leftOut };
    }
    if (!(await this.#bundles.canSign(group))) {
      throw new GatewayError('PW_NO_SIGNING_KEY', `this gateway has no signing key: sign the bundle to restore elsewhere (group ${group}, seq ${(await this.#bundles.highestSeq(group)) + 1}, the pins in details.pins), upload it (pinwave bundle upload FILE), then: pinwave rollout rollback ${r.id} --bundle BUNDLE`, { pins: restore.endpoints });
    }
    const { key, leftOut } = await this.#bundles.rollbackKey(group, r.id, reached);
    return { bundle: await this.#bundles.create(restore, actor, key ? { key } : {}), leftOut };
  }

  /** The manifest a device of this model and firmware was born with; with no firmware known, the model's only one. */
  #findManifest(model: string, firmware: string | null): FirmwareManifest | null {
    if (firmware !== null) return this.#manifests.find(model, firmware)?.manifest ?? null;
    const all = this.#manifests.ofModel(model);
    return all.length === 1 ? all[0].manifest : null;
  }

  // ---------------------------------------------------------------- reading

  /** The API's view of a rollout, with the gateway's own fields, as the store holds it. */
  describe(id: string): Promise<RolloutSummary & { createdBy: string; previousBundle: string | null; rollbackOf?: string; rolledBackBy?: string; approval?: ApprovalState; gatesBypassed?: BypassedGate[] }> {
    this.get(id);
    return this.committed([id], () => {
      const r = this.get(id);
      const approval = approvalState(r, r.createdBy);
      return {
        ...summary(r, this.#now()),
        createdBy: r.createdBy,
        previousBundle: r.previousBundle,
        ...(r.rollbackOf && { rollbackOf: r.rollbackOf }),
        ...(r.rolledBackBy && { rolledBackBy: r.rolledBackBy }),
        ...(approval && { approval }),
        ...(r.gatesBypassed && { gatesBypassed: structuredClone(r.gatesBypassed) }),
      };
    });
  }

  /** Every rollout's summary, or those in `state`, in creation order, as the store holds them. */
  list(state?: string): Promise<RolloutSummary[]> {
    return this.committed(null, () => [...this.#rollouts.values()].filter((r) => state === undefined || r.state === state).map((r) => summary(r, this.#now())));
  }

  /**
   * What `take` reads of the rollouts `ids` (null: all), shown once it is in the store
   * (docs/architecture.md §7). A record in memory is ahead of the store by the batches in flight,
   * and a change made while they commit is ahead of what they hold: `take` copies the record now,
   * with exactly the changes handed to the store so far, and the copy is given once their last
   * batch has committed (batches commit in the order they are handed over). A batch that fails
   * (the last, or one before it: the last may still commit) has the records read again from the
   * store; they are then copied again.
   */
  async committed<T>(ids: readonly string[] | null, take: () => T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.#reloads.dirty) await this.#reloads.settled();
      const view = take();
      const last = ids === null ? [...this.#lastCommit.values()] : ids.flatMap((id) => this.#lastCommit.get(id) ?? []);
      if (last.length === 0) return view;
      let failed: unknown = null;
      try {
        await Promise.all(last);
      } catch (err) {
        failed = err;
      }
      // A failure meanwhile (of an earlier batch than the last, too): the copy may hold what failed.
      if (failed === null && !this.#reloads.dirty) return view;
      if (attempt === 3) throw failed ?? new StoreError('PW_STORE_IO', 'commits failed while this read waited for them; try again');
    }
  }

  /** The device's latest rollout that is not aborted, and where the device stands in it; null when none. */
  deviceRollout(deviceId: string): { id: string; state: RolloutState; status: DeviceStatus; wave: number; reason?: string; at: number | null } | null {
    const r = this.activeOrLatest(deviceId);
    const e = r?.devices[deviceId];
    if (!r || !e) return null;
    return { id: r.id, state: r.state, status: e.status, wave: e.wave, ...(e.reason !== undefined && { reason: e.reason }), at: e.at };
  }

  /** Rollouts by state, the waves standing held, members by status and rollouts at risk (gauges.ts), for metrics. */
  counts(): RolloutGauges {
    return rolloutGauges(this.#rollouts.values());
  }

  /** Times a rollout turned at risk of missing its deadline. */
  get atRisk(): number {
    return this.#atRisk;
  }

  /** A rollout id from a whole id or a unique prefix of at least 8 characters; errors as Bundles.resolveId. */
  resolveId(input: string): string {
    const prefix = String(input);
    if (this.#rollouts.has(prefix)) return prefix;
    const matches = prefix.length < MIN_PREFIX ? [] : [...this.#rollouts.keys()].filter((id) => id.startsWith(prefix));
    const r = resolveIdPrefix(prefix, matches, 'rollout', false);
    if (!r.ok) throw unresolved(r);
    return r.id;
  }

  /** Whether a rollout of the bundle of this id was rolled back (its pins undone: it bridges no late joiner, key-rotation.ts bridgeFor). */
  rolledBack(bundleId: string): boolean {
    for (const r of this.#rollouts.values()) if (r.rolledBackBy !== undefined && r.bundle.id === bundleId) return true;
    return false;
  }

  /** The device's rollout that is pending, running or held, or null. */
  activeRolloutOf(id: string): GatewayRollout | null {
    const rid = this.#deviceRollout.get(id);
    const r = rid ? this.#rollouts.get(rid) : undefined;
    return r && (r.state === 'pending' || r.state === 'running' || r.state === 'held') ? r : null;
  }

  /** The device's latest rollout that is not aborted (a completed one still delivers to its late members). */
  activeOrLatest(id: string): GatewayRollout | null {
    const rid = this.#deviceRollout.get(id);
    const r = rid ? this.#rollouts.get(rid) : undefined;
    return r && r.state !== 'aborted' ? r : null;
  }

  // ---------------------------------------------------------------- time

  /**
   * Evaluates deadlines and soaks of running rollouts; called by the timer, or by tests with an
   * injected clock. Resolves once what it decided is committed and performed (a failure is logged).
   */
  async tick(): Promise<void> {
    if (this.reloading) return;
    const now = this.#now();
    const done: Array<Promise<void> | undefined> = [];
    for (const r of this.#rollouts.values()) {
      // docs/architecture.md §9: running and held rollouts are judged against their deadline.
      if (r.deadline) done.push(this.#tasks.track(this.apply(r, engine.checkDeadline(r, now))));
      if (r.state !== 'running' && r.state !== 'completed') continue;
      const due = engine.nextDeadline(r);
      if (due === null || due > now) continue;
      done.push(this.#tasks.track(this.apply(r, engine.tick(r, now, this.#isOnline))));
    }
    await Promise.all(done);
  }

  // ---------------------------------------------------------------- the effect interpreter

  async #act(id: string, action: (r: GatewayRollout) => ActionResult): Promise<RolloutSummary> {
    if (this.reloading) await this.reloading;
    const r = this.get(id);
    const result = action(r);
    if (!result.ok) throw new GatewayError(result.code, result.message, result.errors ? { errors: result.errors } : undefined);
    await this.apply(r, result.effects);
    return summary(r);
  }

  /**
   * Commits what the engine changed (the `persist` effect), with `batch` (the caller's changes that
   * go with it: a device's seq and history for its ack) in one atomic batch, then performs the other
   * effects: nothing leaves the gateway (a bundle, an alert) before the decision is durable
   * (docs/architecture.md §7). Rejects when the store could not commit; the records are then read
   * again from the store, so what failed holds nowhere.
   */
  apply(r: GatewayRollout, effects: Effect[], batch: readonly Change[] = []): Promise<void> {
    // Not an async function (#commitFor, for one rollout, inline): what waits for an ack's fsync
    // is the rollout, its effects and the commit, not a frame holding the batch and all it was built from.
    let committed: Promise<unknown>;
    let persisted: boolean;
    try {
      if (this.#rollouts.get(r.id) !== r) throw new Error(`rollout ${r.id} was read again from the store while this change was made; send it again`);
      const c = this.#changesOf(r, effects, batch);
      persisted = c.persisted;
      if (c.changes.length === 0) {
        this.#perform(r, effects, persisted);
        return Promise.resolve();
      }
      committed = this.#commit(c.changes);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    this.#lastCommit.set(r.id, committed);
    const forget = () => {
      if (this.#lastCommit.get(r.id) === committed) this.#lastCommit.delete(r.id);
    };
    return committed.then(
      () => {
        forget();
        this.#perform(r, effects, persisted);
      },
      (err: unknown) => {
        forget();
        throw err;
      },
    );
  }

  /** The store's changes for what the engine did to `r` (its `persist` effects), after `batch`. */
  #changesOf(r: GatewayRollout, effects: readonly Effect[], batch: readonly Change[] = []): { changes: Change[]; persisted: boolean } {
    const changes: Change[] = [...batch];
    let persisted = false;
    for (const e of effects) {
      if (e.type === 'persist') {
        persisted = true;
        changes.push(...this.#ledger(r).changes(r, e.members));
      } else if (e.type === 'completed' && 'group' in r.target) {
        // docs/architecture.md §6: the group's baseline is the bundle of its last completed rollout.
        changes.push({ type: 'group.baseline', group: r.target.group, bundleId: r.bundle.id });
      }
    }
    return { changes, persisted };
  }

  /** Commits `changes` as the last commit of each of `ids` (a read of one waits for it). */
  async #commitFor(ids: readonly string[], changes: Change[]): Promise<void> {
    const committed = this.#commit(changes);
    for (const id of ids) this.#lastCommit.set(id, committed);
    try {
      await committed;
    } finally {
      for (const id of ids) if (this.#lastCommit.get(id) === committed) this.#lastCommit.delete(id);
    }
  }

  /** Performs the effects that leave the gateway, once what they follow from is committed. */
  #perform(r: GatewayRollout, effects: readonly Effect[], persisted: boolean): void {
    this.#decisions.log(r);
    for (const e of effects) {
      switch (e.type) {
        case 'send':
          this.#delivery.send(e.deviceIds, r.bundle.id, r.id);
          break;
        case 'held':
          this.#alert(r, 'rollout.held', e.wave, e.reason);
          break;
        case 'completed':
          this.#alert(r, 'rollout.completed', r.wave, 'all_waves_passed');
          break;
        case 'aborted':
          for (const dev of Object.keys(r.devices)) if (this.#deviceRollout.get(dev) === r.id) this.#deviceRollout.delete(dev);
          this.#alert(r, 'rollout.aborted', r.wave, e.reason);
          break;
        case 'at_risk':
          this.#atRisk++;
          this.#alert(r, 'rollout.at_risk', r.wave, e.projected === null ? 'plan_after_deadline' : 'projected_after_deadline', 'system', { deadline: e.deadline, projected: e.projected });
          break;
        case 'persist':
          break;
      }
    }
    if (persisted) this.#changed(r);
  }

  /** Commits a change the engine did not make (an approval, a link, a bypassed gate), with `batch`. */
  #persist(r: GatewayRollout, batch: readonly Change[] = []): Promise<void> {
    return this.apply(r, [{ type: 'persist', members: [] }], batch);
  }

  /**
   * Stores a new rollout and takes its devices, with `also` (a rollback's changes to the rollout it
   * undoes) in the same batch; on failure nothing of it is left, in memory either (what `also`
   * changed in memory is read again from the store, as after any failed commit).
   */
  async #commitNew(r: GatewayRollout, deviceIds: readonly string[], also: Change[] | null = null): Promise<void> {
    // Checked again with no await before the devices are taken: two concurrent calls must not both take them.
    const taken = this.#taken(deviceIds, r.rollbackOf ?? null);
    if (taken.length > 0) throw this.#busy(taken);
    const before = deviceIds.map((dev) => this.#deviceRollout.get(dev));
    this.#rollouts.set(r.id, r);
    for (const dev of deviceIds) this.#deviceRollout.set(dev, r.id);
    const changes = createChanges(r);
    this.#ledgers.set(r, new RolloutLedger(r));
    try {
      // A read of the new rollout (the list) waits for its creation too: it may fail.
      if (also === null) await this.#commitFor([r.id], changes);
      else await this.#commitFor([r.id, r.rollbackOf!], [...changes, ...also]);
    } catch (err) {
      this.#rollouts.delete(r.id);
      deviceIds.forEach((dev, i) => (before[i] === undefined ? this.#deviceRollout.delete(dev) : this.#deviceRollout.set(dev, before[i]!)));
      throw err;
    }
    this.#changed(r);
  }

  /** The devices among `deviceIds` in a rollout in progress other than `replacing` (the one a rollback takes them over from). */
  #taken(deviceIds: readonly string[], replacing: string | null): string[] {
    return deviceIds.filter((dev) => this.activeRolloutOf(dev) !== null && this.#deviceRollout.get(dev) !== replacing);
  }

  #ledger(r: GatewayRollout): RolloutLedger {
    let l = this.#ledgers.get(r);
    if (!l) this.#ledgers.set(r, (l = new RolloutLedger(r)));
    return l;
  }

  /**
   * One batch to the store. Batches are handed over in the order the engine made them (the store
   * commits them in that order). When one fails, the records in memory hold changes the store does
   * not: once no commit is in flight they are read again from the store (reloads.ts).
   */
  #commit(changes: Change[]): Promise<unknown> {
    return this.#reloads.commit(changes);
  }

  #changed(r: GatewayRollout): void {
    for (const listener of this.#listeners) {
      try {
        listener(r.id);
      } catch (err) {
        this.#log.error({ rollout: r.id, err: (err as Error).message }, 'rollout change listener failed');
      }
    }
  }

  /** The one place rollout events leave the gateway: queued for the webhooks, never waited on. */
  #alert(r: GatewayRollout, event: AlertEventName, wave: number | null, reason: string, actor?: string, extra: Pick<RolloutAlert, 'scope' | 'thresholds' | 'approval' | 'deadline' | 'projected'> = {}): void {
    if (!this.#webhooks) return;
    const last = r.decisions[r.decisions.length - 1];
    this.#webhooks.emit({
      event,
      rollout: { id: r.id, state: r.state, bundle: r.bundle, target: r.target },
      wave,
      waves: r.waves.length,
      reason,
      actor: actor ?? last?.actor ?? 'system',
      ...extra,
    });
  }
}
