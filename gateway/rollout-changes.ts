// What a rollout's change is to the store (docs/architecture.md §6, §7; docs/storage.md): the engine
// changes its record in memory and says which members it moved (`persist` carries their ids); a
// ledger per rollout remembers what it last gave the store — the header's fields, each wave's
// fields and counts, how many decisions — and turns the difference into the store's changes:
//
//   rollout.patch   the header fields that differ
//   rollout.wave    a wave's fields that differ (`set`), its counts as deltas (`add`)
//   rollout.decision each decision appended since
//   rollout.member  each member the engine moved
//   item.put        the gateway's own fields the store has no column for (deadline, bypassed gates)
//
// Pure: no I/O. Per ack the cost is O(waves + members moved), never O(members): the rollout's
// member list is never compared. Counts go as deltas so that each batch's counts match the member
// rows it carries, whatever happens to the batches around it.
//
//   const ledger = new RolloutLedger(r);              // r as the store holds it (created or loaded)
//   const changes = ledger.changes(r, ['th-1']);      // after engine.deviceAcked(r, 'th-1', …)
import type { Change, JsonObject, WaveFields } from './store/changes.ts';
import { memberChanges, rolloutCreate } from './store/rollout-records.ts';
import type { GatewayRollout } from './rollouts.ts';
import type { StatusCounts, Wave } from './rollout/types.ts';

/** The keyed collection of what a rollout holds beyond the store's header (deadline, bypassed gates). */
export const ROLLOUT_EXTRAS = 'rollout.extras';

const HEADER = ['state', 'wave', 'startedAt', 'endedAt', 'previousBundle', 'rollbackOf', 'rolledBackBy'] as const;
const WAVE_SET = ['state', 'startedAt', 'deadline', 'soakUntil', 'endedAt', 'swept', 'thresholds'] as const;

interface WaveSeen {
  fields: unknown[];
  count: StatusCounts;
  reasons: Record<string, number>;
}

/** The gateway's fields of a rollout that the store keeps as an item (ROLLOUT_EXTRAS). */
export function rolloutExtras(r: GatewayRollout): JsonObject {
  return JSON.parse(JSON.stringify({ deadline: r.deadline ?? null, gatesBypassed: r.gatesBypassed ?? null })) as JsonObject;
}

/** The changes that store a new rollout: its header and members, members already moved, its extras. */
export function createChanges(r: GatewayRollout): Change[] {
  const create = rolloutCreate({ ...r, rollbackOf: r.rollbackOf ?? null, rolledBackBy: r.rolledBackBy ?? null });
  return [create, ...memberChanges(r), { type: 'item.put', collection: ROLLOUT_EXTRAS, key: r.id, value: rolloutExtras(r) }];
}

const header = (r: GatewayRollout, k: (typeof HEADER)[number]): unknown => (r as unknown as Record<string, unknown>)[k] ?? null;

/** What the ledger last gave the store of a rollout: its header, each wave's fields (as JSON) and counts, its decisions, its extras (JSON). */
interface Seen {
  header: unknown[];
  waves: WaveSeen[];
  decisions: number;
  extras: string;
}

/** A wave field as the ledger keeps it: a primitive as it is, an object (the thresholds, flat) as a shallow copy. */
const fieldSeen = (v: unknown): unknown => (typeof v === 'object' && v !== null ? { ...v } : v);

/** Whether a wave field moved: primitives by value, a flat object key by key, anything deeper by its JSON. */
function fieldMoved(was: unknown, now: unknown): boolean {
  if (typeof was !== 'object' || was === null || typeof now !== 'object' || now === null) return was !== now;
  const a = was as Record<string, unknown>;
  const b = now as Record<string, unknown>;
  // Own keys without arrays of them: this runs for every wave on every ack.
  let n = 0;
  for (const k in a) if (Object.hasOwn(a, k)) n++;
  for (const k in b) {
    if (!Object.hasOwn(b, k)) continue;
    if (--n < 0 || !Object.hasOwn(a, k)) return true;
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (typeof x !== 'object' || typeof y !== 'object') return true;
    if (JSON.stringify(x) !== JSON.stringify(y)) return true;
  }
  return n !== 0;
}

/** The record's stored parts as they are now, each object serialised once. */
const NO_EXTRAS = JSON.stringify({ deadline: null, gatesBypassed: null });

function seen(r: GatewayRollout): Seen {
  return {
    header: HEADER.map((k) => header(r, k)),
    waves: r.waves.map((w: Wave) => ({ fields: WAVE_SET.map((k) => fieldSeen(w[k])), count: { ...w.count }, reasons: { ...w.rejectedByReason } })),
    decisions: r.decisions.length,
    extras: JSON.stringify({ deadline: r.deadline ?? null, gatesBypassed: r.gatesBypassed ?? null }),
  };
}

export class RolloutLedger {
  /** what the store holds, changed in place as changes are given out: an ack costs no copy of the rollout's waves */
  readonly #seen: Seen;

  /** A ledger that has seen `r` as it is now (what the store holds). */
  constructor(r: GatewayRollout) {
    this.#seen = seen(r);
  }

  /**
   * The changes from what the ledger saw last to `r`, `members` being the ids whose entries the
   * engine moved; the ledger then has seen `r`. Empty when nothing the store keeps changed.
   */
  changes(r: GatewayRollout, members: Iterable<string> = []): Change[] {
    const seen = this.#seen;
    const out: Change[] = [];
    let set: Record<string, unknown> | null = null;
    for (let i = 0; i < HEADER.length; i++) {
      const v = header(r, HEADER[i]);
      if (v !== seen.header[i]) {
        (set ??= {})[HEADER[i]] = v;
        seen.header[i] = v;
      }
    }
    if (set !== null) out.push({ type: 'rollout.patch', id: r.id, set });
    for (let i = 0; i < r.waves.length; i++) {
      const w = r.waves[i];
      const was = seen.waves[i];
      let ws: Record<string, unknown> | null = null;
      for (let j = 0; j < WAVE_SET.length; j++) {
        const k = WAVE_SET[j];
        if (fieldMoved(was.fields[j], w[k])) {
          (ws ??= {})[k] = w[k];
          was.fields[j] = fieldSeen(w[k]);
        }
      }
      const count = countDeltas(was.count, w.count);
      const reasons = deltas(was.reasons, w.rejectedByReason);
      if (reasons !== null) was.reasons = { ...w.rejectedByReason };
      if (ws === null && count === null && reasons === null) continue;
      // Built field by field, in the order the journal has always had them (type, id, wave, set, add).
      const change: Extract<Change, { type: 'rollout.wave' }> = { type: 'rollout.wave', id: r.id, wave: i };
      if (ws !== null) change.set = structuredClone(ws) as WaveFields;
      if (count !== null || reasons !== null) {
        const add: NonNullable<typeof change.add> = {};
        if (count !== null) add.count = count;
        if (reasons !== null) add.rejectedByReason = reasons;
        change.add = add;
      }
      out.push(change);
    }
    for (let i = seen.decisions; i < r.decisions.length; i++) out.push({ type: 'rollout.decision', id: r.id, decision: structuredClone(r.decisions[i]) });
    seen.decisions = r.decisions.length;
    // An ack moves one member: a set (each member once) only where there are more.
    const list = Array.isArray(members) ? (members as readonly string[]) : [...members];
    for (const device of list.length > 1 ? new Set(list) : list) {
      const e = r.devices[device];
      if (e) out.push({ type: 'rollout.member', id: r.id, device, status: e.status, reason: e.reason ?? null, at: e.at });
    }
    // Most rollouts have neither a deadline nor a bypassed gate: no JSON per ack to find that out.
    const extras = r.deadline == null && r.gatesBypassed == null ? NO_EXTRAS : JSON.stringify({ deadline: r.deadline ?? null, gatesBypassed: r.gatesBypassed ?? null });
    if (extras !== seen.extras) {
      out.push({ type: 'item.put', collection: ROLLOUT_EXTRAS, key: r.id, value: JSON.parse(extras) as JsonObject });
      seen.extras = extras;
    }
    return out;
  }
}

/**
 * A wave's count deltas, `after - before` for the statuses that moved (null when none did), and
 * `before` brought to `after` in place: no copy of the counts per ack. The statuses are the
 * engine's own keys (a stored wave's are checked on load), so the deltas are a plain object.
 */
function countDeltas(before: StatusCounts, after: Readonly<StatusCounts>): Partial<StatusCounts> | null {
  const was = before as unknown as Record<string, number>;
  const now = after as unknown as Record<string, number>;
  let out: Record<string, number> | null = null;
  for (const k in now) {
    if (!Object.hasOwn(now, k)) continue;
    const d = now[k] - (Object.hasOwn(was, k) ? was[k] : 0);
    if (d !== 0) {
      (out ??= {})[k] = d;
      was[k] = now[k];
    }
  }
  for (const k in was) {
    if (!Object.hasOwn(was, k) || Object.hasOwn(now, k)) continue;
    const d = -was[k];
    if (d !== 0) (out ??= {})[k] = d;
    delete was[k];
  }
  return out as Partial<StatusCounts> | null;
}

/** `after - before` per key, only the keys that moved; null when none did. Keys come from devices (reasons): the object has no prototype. */
function deltas(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>): Record<string, number> | null {
  let out: Record<string, number> | null = null;
  // Own keys only, without an array of them: this runs for every wave on every ack.
  for (const k in after) {
    if (!Object.hasOwn(after, k)) continue;
    const d = after[k] - (Object.hasOwn(before, k) ? before[k] : 0);
    if (d !== 0) (out ??= Object.create(null) as Record<string, number>)[k] = d;
  }
  for (const k in before) {
    if (!Object.hasOwn(before, k) || Object.hasOwn(after, k)) continue;
    const d = -before[k];
    if (d !== 0) (out ??= Object.create(null) as Record<string, number>)[k] = d;
  }
  return out;
}
