// Rollout plans (docs/architecture.md §6): validation with defaults, cumulative wave sizes, and the
// seeded order that decides which device falls in which wave.
//
//   const p = validatePlan({ waves: [{ size: '10%' }, { size: '100%' }] }, 'rollout-7');
//   if (!p.ok) return reply.code(400).send(p.errors);
//   const cuts = cutWaves(p.plan, ids.length);        // [{ planIndex, end }] cumulative ends
//   const ordered = seedOrder(p.plan.seed, ids);      // members of wave k: ordered.slice(prevEnd, end)
import { createHash } from 'node:crypto';
import type { Invalid, OnMiss, Plan, PlanInput, WavePlan, WaveThresholds } from './types.ts';

/** The longest wave timeout or soak: one year, in seconds. */
export const MAX_WAVE_SECONDS = 365 * 86400;

export const WAVE_DEFAULTS: Readonly<WaveThresholds> = Object.freeze({
  ackThreshold: 0.95,
  failureThreshold: 0.02,
  minDevices: 5,
  maxUnreachable: 0.5,
  timeoutSeconds: 3600,
  soakSeconds: 0,
  requireVerified: true,
});

export const DEFAULT_SIZES: readonly string[] = Object.freeze(['1%', '10%', '50%', '100%']);

const PLAN_FIELDS = ['waves', 'onMiss', 'seed'];
const ON_MISS: readonly OnMiss[] = ['hold', 'abort'];

const share = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;
const seconds = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

/** What each threshold accepts, and how an error says so. */
const THRESHOLD_RULES: { readonly [K in keyof WaveThresholds]: readonly [accepts: (v: unknown) => boolean, expected: string] } = {
  ackThreshold: [share, 'must be between 0 and 1'],
  failureThreshold: [share, 'must be between 0 and 1'],
  minDevices: [(v) => Number.isSafeInteger(v) && (v as number) >= 0, 'must be an integer of 0 or more'],
  maxUnreachable: [share, 'must be between 0 and 1'],
  // Bounded: a deadline must stay a finite number of ms through JSON (a year is plenty).
  timeoutSeconds: [(v) => seconds(v) && (v as number) > 0 && (v as number) <= MAX_WAVE_SECONDS, 'must be a number of seconds above 0 and at most a year (31536000)'],
  soakSeconds: [(v) => seconds(v) && (v as number) >= 0 && (v as number) <= MAX_WAVE_SECONDS, 'must be a number of seconds from 0 to a year (31536000)'],
  // docs/architecture.md §9: only `verified` counts for health-checked devices while on.
  requireVerified: [(v) => typeof v === 'boolean', 'must be true or false'],
};

/** How a value that came reads in an error: strings quoted, so `"25"` and `25` differ. */
export function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The threshold fields present in `input`, checked; errors name each field as `prefix + name`.
 * Unknown fields other than `allowed` are errors too: a misspelt threshold silently left at its
 * default would let a wave pass that the operator meant to hold.
 */
export function checkThresholds(
  input: Record<string, unknown>,
  prefix: string,
  errors: string[],
  allowed: readonly string[] = [],
): Partial<WaveThresholds> {
  const out: Partial<WaveThresholds> = {};
  for (const [key, value] of Object.entries(input)) {
    if (!Object.hasOwn(THRESHOLD_RULES, key)) {
      if (!allowed.includes(key)) errors.push(`${prefix}${key} is not a known field`);
      continue;
    }
    if (value === undefined) continue;
    const [accepts, expected] = THRESHOLD_RULES[key as keyof WaveThresholds];
    if (accepts(value)) (out as Record<string, unknown>)[key] = value;
    else errors.push(`${prefix}${key} ${expected}, got ${shown(value)}`);
  }
  return out;
}

const PERCENT = /^(\d{1,3}(?:\.\d+)?)%$/;

/** A wave size as a count or a percentage, or null (with an error naming `field`) when it is neither. */
function parseSize(value: unknown, field: string, errors: string[]): { count: number } | { percent: number } | null {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1) return { count: value };
  const m = typeof value === 'string' ? PERCENT.exec(value) : null;
  if (m) {
    const percent = Number(m[1]);
    if (percent > 0 && percent <= 100) return { percent };
    errors.push(`${field} must be above 0% and at most 100%, got ${shown(value)}`);
    return null;
  }
  errors.push(`${field} must be a device count (an integer of 1 or more) or a percentage like "10%", got ${shown(value)}`);
  return null;
}

/**
 * Check an operator's plan and fill in the defaults. `fallbackSeed` (the rollout id, say) is
 * used when the plan names no seed. Sizes of the same kind must not decrease; a count against a
 * percentage can only be compared once the target is known (cutWaves).
 */
export function validatePlan(input: unknown, fallbackSeed?: string): { ok: true; plan: Plan } | Invalid {
  const errors: string[] = [];
  const raw: PlanInput & Record<string, unknown> = input === undefined || input === null ? {} : (input as PlanInput & Record<string, unknown>);
  if (!isRecord(raw)) return { ok: false, errors: [`plan must be an object, got ${shown(input)}`] };
  for (const key of Object.keys(raw)) if (!PLAN_FIELDS.includes(key)) errors.push(`${key} is not a known field`);

  const onMiss = raw.onMiss ?? 'hold';
  if (!ON_MISS.includes(onMiss)) errors.push(`onMiss must be "hold" or "abort", got ${shown(raw.onMiss)}`);

  const seed = raw.seed ?? fallbackSeed;
  if (typeof seed !== 'string' || seed === '') errors.push(`seed must be a non-empty string, got ${shown(raw.seed)}`);

  const wavesIn: unknown = raw.waves ?? DEFAULT_SIZES.map((size) => ({ size }));
  const waves: WavePlan[] = [];
  if (!Array.isArray(wavesIn) || wavesIn.length === 0) {
    errors.push(`waves must be a non-empty array, got ${Array.isArray(wavesIn) ? 'an empty array' : shown(wavesIn)}`);
  } else {
    const lastOfKind: { count?: [number, number]; percent?: [number, number] } = {};
    wavesIn.forEach((w: unknown, i: number) => {
      const at = `waves[${i}]`;
      if (!isRecord(w)) {
        errors.push(`${at} must be an object, got ${shown(w)}`);
        return;
      }
      const thresholds = checkThresholds(w, `${at}.`, errors, ['size']);
      if (w.size === undefined) {
        errors.push(`${at}.size is required (a device count or a percentage like "10%")`);
        return;
      }
      const size = parseSize(w.size, `${at}.size`, errors);
      if (size === null) return;
      const [kind, amount] = 'count' in size ? (['count', size.count] as const) : (['percent', size.percent] as const);
      const before = lastOfKind[kind];
      if (before && amount < before[1]) {
        errors.push(`${at}.size must not be below waves[${before[0]}].size (sizes are cumulative), got ${shown(w.size)}`);
      }
      lastOfKind[kind] = [i, amount];
      waves.push({ size: w.size as number | string, ...WAVE_DEFAULTS, ...thresholds });
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, plan: { waves, onMiss, seed: seed as string } };
}

/**
 * The whole check of an operator's plan, as createRollout will make it, for a caller that must
 * refuse a bad plan before it looks at any state (a device's rollout, a bundle's existence): the
 * fields and, given the target's size, the cumulative sizes against it. A missing seed is not an
 * error here: the rollout's id stands in for it.
 */
export function checkPlan(input: unknown, total?: number): { ok: true } | Invalid {
  const planned = validatePlan(input, 'the rollout id');
  if (!planned.ok) return planned;
  if (total === undefined) return { ok: true };
  const cut = cutWaves(planned.plan, total);
  return cut.ok ? { ok: true } : cut;
}

/** The cumulative number of devices a size asks for, out of `total`. */
export function wantedBy(size: number | string, total: number): number {
  if (typeof size === 'number') return size;
  // Percentages round up so a 1% wave of a small fleet still reaches a device; the epsilon keeps
  // binary float error (1000 × 33.3 / 100 = 333.00000000000006) from adding one.
  return Math.ceil((total * Number(size.slice(0, -1))) / 100 - 1e-9);
}

/**
 * Where each wave ends in the seed order (cumulative), for a target of `total` devices. The last
 * plan wave takes the remainder whatever its size says; a wave that would get no new device is
 * dropped, so a small target gets fewer waves. A count below an earlier percentage (or the
 * reverse) is an error naming the wave.
 */
export function cutWaves(plan: Plan, total: number): { ok: true; cuts: { planIndex: number; end: number }[] } | Invalid {
  const wanted = plan.waves.map((w) => wantedBy(w.size, total));
  const errors: string[] = [];
  for (let i = 1; i < wanted.length; i++) {
    if (wanted[i] < wanted[i - 1]) {
      errors.push(
        `waves[${i}].size ${shown(plan.waves[i].size)} (${wanted[i]} of ${total} devices) must not be below ` +
          `waves[${i - 1}].size ${shown(plan.waves[i - 1].size)} (${wanted[i - 1]} devices): sizes are cumulative`,
      );
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  const cuts: { planIndex: number; end: number }[] = [];
  let reached = 0;
  wanted.forEach((n, i) => {
    const end = i === wanted.length - 1 ? total : Math.min(n, total);
    if (end > reached) cuts.push({ planIndex: i, end });
    reached = Math.max(reached, end);
  });
  return { ok: true, cuts };
}

/**
 * The target in wave order: by SHA-256(seed ‖ 0x00 ‖ id) over UTF-8, as hex, so anyone holding
 * the seed and the ids can recompute who was in which wave. The NUL keeps seed "a" + id "bc" apart
 * from seed "ab" + id "c".
 */
export function seedOrder(seed: string, ids: readonly string[]): string[] {
  const keyed = ids.map((id) => ({ id, key: createHash('sha256').update(seed).update('\0').update(id).digest('hex') }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : 1)); // distinct ids have distinct digests: no ties
  return keyed.map((k) => k.id);
}
