// Device behaviours: what a simulated device does beyond firmware's happy path,
// as rates and distributions per device model, and the seeded generator that turns them into one
// device's plan. Pure: randomness comes from a seed, never Math.random, so a fleet of the same
// seed, device ids and behaviours does the same things on every run.
//
// Each device draws from its own stream, seeded by (seed, device id): a device's plan does not
// change when devices are added, removed or sharded across processes, or when another model's
// behaviours change.
//
//   const plan = planDevice('th-0042', { silentRate: 0.01, ackDelayMs: { min: 10, max: 200 } }, 'demo');
//   plan.silent;            // false for most devices
//   plan.ackDelayMs();      // a fresh draw per ack, from the device's own stream
import { FORMAT_VERSION } from '../firmware-manifest/index.ts';
import { overTimerLimit } from './timer-limit.ts';

/**
 * A number of ms or seconds: fixed (`250`), uniform (`{ "min": 10, "max": 200 }`) or exponential
 * with a mean, capped (`{ "mean": 100, "max": 2000 }`; max defaults to 10 × mean).
 */
export type Distribution = number | { min: number; max: number } | { mean: number; max?: number };

/** A reconnect storm: at `atSeconds` after the fleet starts, `rate` of the devices drop their link at once and reconnect within `spreadMs`. */
export interface ReconnectStorm {
  atSeconds: number;
  rate: number;
  /** default 0: all at once */
  spreadMs?: number;
}

/** Behaviours of one device model. Every rate is a share of the model's devices (0..1), default 0. */
export interface Behaviours {
  /** never acknowledge (the bundle is still applied) */
  silentRate?: number;
  /** the flash write fails: the bundle is rejected with `apply_failed` and the old state stays */
  rejectRate?: number;
  /** crash after persisting a new state, before acking, once; the next `state` heals the lost ack */
  crashRate?: number;
  /** how long a crashed device takes to reboot and reconnect, ms; default 1000 */
  rebootMs?: Distribution;
  /** delay between apply and ack, ms, drawn per ack; default 0 */
  ackDelayMs?: Distribution;
  /** offline for a period, then reconnect */
  offlineRate?: number;
  /** when the offline period starts, seconds after the fleet starts; default 0 (dark from the start) */
  offlineAtSeconds?: Distribution;
  /** how long the offline period lasts, seconds; default { min: 30, max: 300 } */
  offlineForSeconds?: Distribution;
  /** devices whose clock is off */
  clockSkewRate?: number;
  /** how far off, seconds (positive: ahead); default { min: -3600, max: 3600 } */
  clockSkewSeconds?: Distribution;
  /** firmware one bundle-format version behind: it rejects current bundles as `unsupported_version` */
  oldFormatRate?: number;
  reconnectStorm?: ReconnectStorm;
}

/** What one device does, drawn from its behaviours and the seed. */
export interface DevicePlan {
  silent: boolean;
  flashFails: boolean;
  crashBeforeAck: boolean;
  rebootMs: number;
  /** dark from atMs (after the fleet starts) for forMs; null when the device is never offline */
  offline: { atMs: number; forMs: number } | null;
  /** dropped by the storm at atMs and back after delayMs; null when the storm spares it */
  storm: { atMs: number; delayMs: number } | null;
  clockSkewSeconds: number;
  /** format versions the firmware accepts: [FORMAT_VERSION], or the one before it */
  acceptedVersions: number[];
  /** where in each call-home period the device checks its endpoints (0..1), so checks spread out */
  callHomePhase: number;
  /** the next ack delay, ms: a fresh draw from the device's own stream each call */
  ackDelayMs: () => number;
}

/**
 * How far off a simulated device's clock may be, seconds either way: ten years. Far more moves its
 * clock out of what a Date holds (±1e20 s is no time at all) and no device connects.
 */
export const MAX_CLOCK_SKEW_SECONDS = 10 * 365 * 86_400;

export const BEHAVIOUR_DEFAULTS = {
  rebootMs: 1000,
  offlineAtSeconds: 0,
  offlineForSeconds: { min: 30, max: 300 },
  clockSkewSeconds: { min: -3600, max: 3600 },
} as const satisfies Behaviours;

/** mulberry32: a small, fast 32-bit PRNG, good enough to spread behaviours (not for secrets). Returns [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit seed from text (FNV-1a, then a murmur3 finalizer so close strings land far apart). */
export function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** One draw from a distribution with the generator `u`. */
export function sample(d: Distribution, u: () => number): number {
  if (typeof d === 'number') return d;
  if ('mean' in d) {
    // Exponential: most acks fast, a long tail of slow ones, as a busy fleet's are; capped.
    const x = -d.mean * Math.log(1 - u());
    return Math.min(x, d.max ?? 10 * d.mean);
  }
  return d.min + (d.max - d.min) * u();
}

/**
 * The plan of device `id` under `behaviours` and `seed`. Draws happen in a fixed order, one per
 * behaviour whether it is enabled or not, so enabling one behaviour never changes another's picks.
 */
export function planDevice(id: string, behaviours: Behaviours, seed: string | number): DevicePlan {
  const u = mulberry32(seedOf(`${seed}\0${id}`));
  const b = { ...BEHAVIOUR_DEFAULTS, ...behaviours };
  const hit = (rate: number | undefined) => u() < (rate ?? 0);
  const silent = hit(b.silentRate);
  const flashFails = hit(b.rejectRate);
  const crashBeforeAck = hit(b.crashRate);
  const rebootMs = Math.round(sample(b.rebootMs, u));
  const offlineHit = hit(b.offlineRate);
  const offlineAt = sample(b.offlineAtSeconds, u);
  const offlineFor = sample(b.offlineForSeconds, u);
  const skewHit = hit(b.clockSkewRate);
  const skew = Math.round(sample(b.clockSkewSeconds, u));
  const oldFormat = hit(b.oldFormatRate);
  const stormHit = hit(b.reconnectStorm?.rate);
  const stormDelay = u() * (b.reconnectStorm?.spreadMs ?? 0);
  const callHomePhase = u();
  const ack = mulberry32(seedOf(`${seed}\0${id}\0ack`));
  const ackDelay = b.ackDelayMs;
  return {
    silent,
    flashFails,
    crashBeforeAck,
    rebootMs: Math.max(0, rebootMs),
    offline: offlineHit ? { atMs: Math.max(0, Math.round(offlineAt * 1000)), forMs: Math.max(0, Math.round(offlineFor * 1000)) } : null,
    storm: stormHit && b.reconnectStorm ? { atMs: Math.round(b.reconnectStorm.atSeconds * 1000), delayMs: Math.round(stormDelay) } : null,
    clockSkewSeconds: skewHit ? skew : 0,
    acceptedVersions: oldFormat ? [FORMAT_VERSION - 1] : [FORMAT_VERSION],
    callHomePhase,
    ackDelayMs: ackDelay === undefined ? () => 0 : () => Math.max(0, Math.round(sample(ackDelay, ack))),
  };
}

/** What is wrong with a set of behaviours, each with its JSON path under `at`; empty when nothing is. */
export function checkBehaviours(b: Behaviours, at = ''): Array<{ path: string; message: string }> {
  const errors: Array<{ path: string; message: string }> = [];
  const rate = (v: number | undefined, name: string) => {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0 && v <= 1)) errors.push({ path: `${at}/${name}`, message: `must be a rate from 0 to 1, got ${v}` });
  };
  // `unit`: a duration a device waits on a timer, bounded by the longest one can wait (timer-limit.ts);
  // 'skew': a clock's offset, either way, bounded by MAX_CLOCK_SKEW_SECONDS.
  const dist = (d: Distribution | undefined, name: string, unit: 'ms' | 's' | 'skew') => {
    if (d === undefined) return;
    const signed = unit === 'skew';
    const bad = (message: string, field = '') => errors.push({ path: `${at}/${name}${field}`, message });
    const ok = (v: number) => Number.isFinite(v) && (signed || v >= 0);
    const bounded = (v: number, field: string, note = '') => {
      const over = signed ? (Math.abs(v) > MAX_CLOCK_SKEW_SECONDS ? `must be from -${MAX_CLOCK_SKEW_SECONDS} to ${MAX_CLOCK_SKEW_SECONDS} s (10 years either way), got ${v}` : null) : overTimerLimit(v, unit);
      if (over) bad(`${over}${note}`, field);
    };
    if (typeof d === 'number') {
      if (!ok(d)) bad(`must be a ${signed ? '' : 'non-negative '}number, got ${d}`);
      else bounded(d, '');
    } else if ('mean' in d) {
      if (!(ok(d.mean) && d.mean > 0)) bad(`mean must be a positive number, got ${d.mean}`);
      else if (d.max !== undefined && !(ok(d.max) && d.max >= d.mean)) bad(`max must be at least the mean (${d.mean}), got ${d.max}`);
      else if (d.max !== undefined) bounded(d.max, '/max');
      else bounded(10 * d.mean, '/mean', ` (10 × the mean ${d.mean}: its draws go up to that without a max)`);
    } else if (!ok(d.min) || !ok(d.max)) {
      bad(`min and max must be ${signed ? '' : 'non-negative '}numbers`);
    } else if (d.max < d.min) {
      bad(`max (${d.max}) must not be below min (${d.min})`);
    } else if (signed && Math.abs(d.min) > Math.abs(d.max)) {
      bounded(d.min, '/min');
    } else {
      bounded(d.max, '/max');
    }
  };
  rate(b.silentRate, 'silentRate');
  rate(b.rejectRate, 'rejectRate');
  rate(b.crashRate, 'crashRate');
  rate(b.offlineRate, 'offlineRate');
  rate(b.clockSkewRate, 'clockSkewRate');
  rate(b.oldFormatRate, 'oldFormatRate');
  dist(b.rebootMs, 'rebootMs', 'ms');
  dist(b.ackDelayMs, 'ackDelayMs', 'ms');
  dist(b.offlineAtSeconds, 'offlineAtSeconds', 's');
  dist(b.offlineForSeconds, 'offlineForSeconds', 's');
  dist(b.clockSkewSeconds, 'clockSkewSeconds', 'skew');
  if (b.reconnectStorm) {
    rate(b.reconnectStorm.rate, 'reconnectStorm/rate');
    dist(b.reconnectStorm.atSeconds, 'reconnectStorm/atSeconds', 's');
    dist(b.reconnectStorm.spreadMs, 'reconnectStorm/spreadMs', 'ms');
  }
  return errors;
}
