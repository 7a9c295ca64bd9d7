// Between the rollout engine's record (gateway/rollout/types.ts: one object holding every member)
// and the store's (changes.ts: a header, and members as rows of their own): pure conversions the
// gateway uses to create a rollout in the store and to rebuild the engine's record from it, and
// the upgrade uses to carry rollouts of the whole-file store over.
import type { Change, MemberRecord, NewRollout, StoredRollout, StoredWave } from './changes.ts';
import type { DeviceEntry, Rollout } from '../rollout/types.ts';
import { FAILING_UNVERIFIED } from '../rollout/verification.ts';

/** What the gateway keeps beside the engine's record (docs/architecture.md §6, rollback). */
export interface RolloutLinks {
  createdBy: string;
  previousBundle: string | null;
  rollbackOf?: string | null;
  rolledBackBy?: string | null;
}

/** The `rollout.create` change for an engine record: its header, and each wave's members in seed order. */
export function rolloutCreate(r: Rollout & RolloutLinks): Extract<Change, { type: 'rollout.create' }> {
  const rollout: NewRollout = {
    format: 1,
    id: r.id,
    bundle: { ...r.bundle },
    target: structuredClone(r.target),
    plan: structuredClone(r.plan),
    state: r.state,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    endedAt: r.endedAt,
    wave: r.wave,
    waves: r.waves.map(({ members: _members, failingUnverified: _derived, ...w }) => structuredClone(w)),
    decisions: structuredClone(r.decisions),
    createdBy: r.createdBy,
    previousBundle: r.previousBundle,
    rollbackOf: r.rollbackOf ?? null,
    rolledBackBy: r.rolledBackBy ?? null,
  };
  return { type: 'rollout.create', rollout, members: r.waves.map((w) => [...w.members]) };
}

/** `rollout.member` changes for members whose status differs from a fresh rollout's (an upgrade, a rollout created mid-way). */
export function memberChanges(r: Rollout): Change[] {
  const out: Change[] = [];
  for (const id of Object.keys(r.devices)) {
    const d = r.devices[id];
    if (d.status === 'pending' && d.at === null) continue;
    out.push({ type: 'rollout.member', id: r.id, device: id, status: d.status, reason: d.reason ?? null, at: d.at });
  }
  return out;
}

/**
 * The engine's record from the store's header and all its members (listMembers, every page). A
 * compacted rollout has no members: its waves come back empty, their counts as they were.
 */
export function engineRollout(stored: StoredRollout, members: readonly MemberRecord[]): Rollout & Required<RolloutLinks> {
  const byWave: MemberRecord[][] = stored.waves.map(() => []);
  const devices: Record<string, DeviceEntry> = Object.create(null);
  for (const m of members) {
    byWave[m.wave]?.push(m);
    devices[m.deviceId] = { wave: m.wave, status: m.status, ...(m.reason !== null && { reason: m.reason }), at: m.at };
  }
  return {
    format: 1,
    id: stored.id,
    bundle: { ...stored.bundle },
    target: structuredClone(stored.target),
    plan: structuredClone(stored.plan),
    state: stored.state,
    createdAt: stored.createdAt,
    startedAt: stored.startedAt,
    endedAt: stored.endedAt,
    wave: stored.wave,
    waves: stored.waves.map(({ memberCount: _n, ...w }, i) => ({ ...structuredClone(w), members: byWave[i].sort((a, b) => a.ord - b.ord).map((m) => m.deviceId) })),
    devices,
    decisions: structuredClone(stored.decisions),
    createdBy: stored.createdBy,
    previousBundle: stored.previousBundle,
    rollbackOf: stored.rollbackOf,
    rolledBackBy: stored.rolledBackBy,
  };
}

/**
 * What compaction keeps of the members beyond their counts (docs/storage.md, bounded growth): each
 * wave's failing members that had not verified (verification.ts FAILING_UNVERIFIED). Under
 * requireVerified they are failing and not acked; the engine counts them from the members
 * (rebuildCounters), so once the members go, the wave's header keeps the count (0: left out).
 */
export function keepFailingUnverified(waves: StoredWave[], members: Iterable<MemberRecord>): void {
  const n = waves.map(() => 0);
  for (const m of members) if (m.status === 'failing' && m.reason === FAILING_UNVERIFIED && m.wave < n.length) n[m.wave]++;
  waves.forEach((w, i) => {
    if (n[i] > 0) w.failingUnverified = n[i];
    else delete w.failingUnverified;
  });
}
