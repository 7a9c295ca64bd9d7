// What a stored record and a change may hold (docs/storage.md): checked on every `apply` (a bad
// change is a programmer's error, a TypeError) and on every record a store loads (a bad record
// stops the start, naming the file and the record), as strictly as the API checks its input, so a
// hand-edited or damaged file cannot smuggle in what the API would refuse: a device id such as
// `../x`, a device without a token hash, a `null` where a record belongs.
//
// Each check returns null, or what is wrong in words that name the field: "devices[3].tokenHash:
// expected a token hash ($7$… or sha256:…)".
import { isTokenHash } from '../credentials.ts';
import { isBrokerUrl } from '../broker/broker-url.ts';
import { checkDeviceId } from '../device-id.ts';
import type { Change, JsonObject, NewRollout } from './changes.ts';
import { DEVICE_HISTORY_LIMIT, DEVICE_TELEMETRY_LIMIT, type BundleRecord, type DeviceRecord } from './types.ts';

/** A group name, as the API takes it. */
export const GROUP_RE = /^[A-Za-z0-9._:-]{1,64}$/;
/** A model or firmware label: printable ASCII, as the API takes it (no terminal escapes). */
export const LABEL_RE = /^[\x20-\x7e]{1,64}$/;
/** A bundle id: hex SHA-256 of its payload (docs/architecture.md §3). */
export const BUNDLE_ID_RE = /^[0-9a-f]{64}$/;
/** Rollout ids, counter names, collection keys: printable ASCII without spaces. */
const NAME_RE = /^[\x21-\x7e]{1,200}$/;
export const COLLECTION_RE = /^[a-z][a-z0-9._-]{0,63}$/;

// The health-check statuses (docs/architecture.md §9) came later: a count record may lack them.
const HEALTH_STATUSES = ['verifying', 'verified', 'unverified', 'reverted'];
const DEVICE_STATUSES = new Set(['pending', 'sent', 'applied', 'rejected', 'timed_out', 'failing', 'unreachable', ...HEALTH_STATUSES]);
const HISTORY_EVENTS = new Set(['sent', 'applied', 'rejected', 'timed_out', 'failing', 'unreachable', 'verified', 'reverted']);
const ROLLOUT_STATES = new Set(['pending', 'running', 'held', 'completed', 'aborted']);
const WAVE_STATES = new Set(['pending', 'active', 'soaking', 'passed', 'missed', 'aborted', 'cancelled']);
const DECISION_ACTIONS = new Set(['start', 'pause', 'resume', 'abort', 'hold', 'soak', 'pass', 'complete', 'rollback', 'baseline', 'resend', 'force', 'request_approval', 'approve', 'at_risk', 'on_track']);
const REQUIRED_COUNT_KEYS = ['pending', 'sent', 'applied', 'rejected', 'timed_out', 'failing', 'unreachable'];
const COUNT_KEYS = [...REQUIRED_COUNT_KEYS, ...HEALTH_STATUSES];

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const shown = (v: unknown): string => (v === undefined ? 'nothing' : v === null ? 'null' : typeof v === 'string' ? JSON.stringify(v.length > 80 ? v.slice(0, 80) + '…' : v) : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : String(v));
const isTime = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isUint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
/** A rollout id, a counter name: 1 to 200 printable characters without spaces. */
export const isName = (v: unknown): v is string => typeof v === 'string' && NAME_RE.test(v);

/** A little builder: the first problem wins, each prefixed by where it is. */
function first(...problems: Array<string | null>): string | null {
  for (const p of problems) if (p !== null) return p;
  return null;
}
const need = (ok: boolean, where: string, expected: string, got: unknown): string | null => (ok ? null : `${where}: expected ${expected}, got ${shown(got)}`);
const time = (v: unknown, where: string) => need(isTime(v), where, 'a time (epoch ms, an integer >= 0)', v);
const timeOrNull = (v: unknown, where: string) => need(v === null || isTime(v), where, 'a time (epoch ms) or null', v);
const uintOrNull = (v: unknown, where: string) => need(v === null || isUint(v), where, 'an integer >= 0 or null', v);
const bundleIdOrNull = (v: unknown, where: string) => need(v === null || (typeof v === 'string' && BUNDLE_ID_RE.test(v)), where, 'a bundle id (64 hex digits) or null', v);
const labelOrNull = (v: unknown, where: string) => need(v === null || (typeof v === 'string' && LABEL_RE.test(v)), where, '1 to 64 printable characters or null', v);

export function checkDeviceIdAt(v: unknown, where: string): string | null {
  const c = checkDeviceId(v);
  return c.ok ? null : `${where}: ${c.message}`;
}

export function checkHistoryEntry(e: unknown, where: string): string | null {
  if (!isObject(e)) return need(false, where, 'a history entry (an object)', e);
  return first(
    time(e.at, `${where}.at`),
    need(e.rolloutId === undefined || isName(e.rolloutId), `${where}.rolloutId`, 'a rollout id', e.rolloutId),
    need(typeof e.bundleId === 'string' && BUNDLE_ID_RE.test(e.bundleId), `${where}.bundleId`, 'a bundle id (64 hex digits)', e.bundleId),
    need(isUint(e.seq), `${where}.seq`, 'an integer >= 0', e.seq),
    need(HISTORY_EVENTS.has(e.event as string), `${where}.event`, `one of ${[...HISTORY_EVENTS].join(', ')}`, e.event),
    need(e.reason === undefined || (typeof e.reason === 'string' && e.reason.length <= 200), `${where}.reason`, 'a reason of at most 200 characters', e.reason),
  );
}

export function checkTelemetryReport(r: unknown, where: string): string | null {
  if (!isObject(r)) return need(false, where, 'a telemetry report (an object)', r);
  return time(r.at, `${where}.at`);
}

export function checkDeviceRecord(d: unknown, where: string): string | null {
  if (!isObject(d)) return need(false, where, 'a device record (an object)', d);
  const p = first(
    checkDeviceIdAt(d.id, `${where}.id`),
    need(typeof d.group === 'string' && GROUP_RE.test(d.group), `${where}.group`, 'a group name (1 to 64 of A-Z a-z 0-9 . _ : -)', d.group),
    labelOrNull(d.model, `${where}.model`),
    labelOrNull(d.firmware, `${where}.firmware`),
    need(isTokenHash(d.tokenHash), `${where}.tokenHash`, 'a token hash ($7$… or sha256:…)', d.tokenHash === undefined ? undefined : typeof d.tokenHash === 'string' ? 'a string of another form' : d.tokenHash),
    time(d.createdAt, `${where}.createdAt`),
    timeOrNull(d.revokedAt, `${where}.revokedAt`),
    timeOrNull(d.lastSeen, `${where}.lastSeen`),
    timeOrNull(d.lastConnectAt, `${where}.lastConnectAt`),
    timeOrNull(d.lastDisconnectAt, `${where}.lastDisconnectAt`),
    uintOrNull(d.seq, `${where}.seq`),
    bundleIdOrNull(d.bundleId, `${where}.bundleId`),
    need(d.keyEpoch === undefined || d.keyEpoch === null || isUint(d.keyEpoch), `${where}.keyEpoch`, 'an integer >= 0 or null', d.keyEpoch),
    need(d.broker === undefined || isBrokerUrl(d.broker), `${where}.broker`, 'a broker URL (mqtt://, mqtts://, ws:// or wss://HOST:PORT)', d.broker),
    need(Array.isArray(d.history), `${where}.history`, 'an array', d.history),
    need(Array.isArray(d.telemetry), `${where}.telemetry`, 'an array', d.telemetry),
  );
  if (p !== null) return p;
  const history = d.history as unknown[];
  for (let i = 0; i < history.length; i++) {
    const e = checkHistoryEntry(history[i], `${where}.history[${i}]`);
    if (e !== null) return e;
  }
  const telemetry = d.telemetry as unknown[];
  for (let i = 0; i < telemetry.length; i++) {
    const e = checkTelemetryReport(telemetry[i], `${where}.telemetry[${i}]`);
    if (e !== null) return e;
  }
  if (history.length > DEVICE_HISTORY_LIMIT || telemetry.length > DEVICE_TELEMETRY_LIMIT) {
    return `${where}: expected at most ${DEVICE_HISTORY_LIMIT} history entries and ${DEVICE_TELEMETRY_LIMIT} telemetry reports, got ${history.length} and ${telemetry.length}`;
  }
  return null;
}

export function checkBundleRecord(b: unknown, where: string): string | null {
  if (!isObject(b)) return need(false, where, 'a bundle record (an object)', b);
  return first(
    need(typeof b.id === 'string' && BUNDLE_ID_RE.test(b.id), `${where}.id`, 'a bundle id (64 hex digits)', b.id),
    need(typeof b.group === 'string' && GROUP_RE.test(b.group), `${where}.group`, 'a group name', b.group),
    need(isUint(b.seq), `${where}.seq`, 'an integer >= 0', b.seq),
    need(isUint(b.size) && (b.size as number) > 0, `${where}.size`, 'a size in bytes (> 0)', b.size),
    time(b.createdAt, `${where}.createdAt`),
    need(typeof b.bytes === 'string' && b.bytes.length > 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(b.bytes), `${where}.bytes`, 'the COSE_Sign1 message in base64', b.bytes),
    need(b.createdBy === undefined || typeof b.createdBy === 'string', `${where}.createdBy`, 'a name', b.createdBy),
    need(b.meta === undefined || isObject(b.meta), `${where}.meta`, 'an object', b.meta),
  );
}

// Stored counts are whatever the deltas applied made them (an integer); new ones start at >= 0.
function checkCounts(c: unknown, where: string, signed = false): string | null {
  if (!isObject(c)) return need(false, where, 'status counts (an object)', c);
  for (const k of COUNT_KEYS) {
    if (c[k] === undefined && HEALTH_STATUSES.includes(k)) continue;
    if (!(signed ? Number.isSafeInteger(c[k]) : isUint(c[k]))) return need(false, `${where}.${k}`, signed ? 'an integer' : 'an integer >= 0', c[k]);
  }
  return Object.keys(c).every((k) => COUNT_KEYS.includes(k)) ? null : `${where}: expected the keys ${COUNT_KEYS.join(', ')} (the last ${HEALTH_STATUSES.length} may be absent)`;
}

function checkTally(t: unknown, where: string, signed: boolean): string | null {
  if (!isObject(t)) return need(false, where, 'counts by reason (an object)', t);
  for (const [k, v] of Object.entries(t)) {
    if (k.length === 0 || k.length > 200) return `${where}: expected reasons of 1 to 200 characters, got ${shown(k)}`;
    if (!(signed ? Number.isSafeInteger(v) : isUint(v))) return need(false, `${where}[${JSON.stringify(k)}]`, signed ? 'an integer' : 'an integer >= 0', v);
  }
  return null;
}

function checkThresholds(t: unknown, where: string): string | null {
  if (!isObject(t)) return need(false, where, 'wave thresholds (an object)', t);
  for (const k of ['ackThreshold', 'failureThreshold', 'minDevices', 'maxUnreachable', 'timeoutSeconds', 'soakSeconds']) {
    if (typeof t[k] !== 'number' || !Number.isFinite(t[k])) return need(false, `${where}.${k}`, 'a number', t[k]);
  }
  return need(t.requireVerified === undefined || typeof t.requireVerified === 'boolean', `${where}.requireVerified`, 'true or false', t.requireVerified);
}

export function checkWaveFields(w: Record<string, unknown>, where: string, whole: boolean, stored = false): string | null {
  const has = (k: string) => whole || k in w;
  return first(
    has('state') ? need(WAVE_STATES.has(w.state as string), `${where}.state`, `one of ${[...WAVE_STATES].join(', ')}`, w.state) : null,
    has('startedAt') ? timeOrNull(w.startedAt, `${where}.startedAt`) : null,
    has('deadline') ? timeOrNull(w.deadline, `${where}.deadline`) : null,
    has('soakUntil') ? timeOrNull(w.soakUntil, `${where}.soakUntil`) : null,
    has('endedAt') ? timeOrNull(w.endedAt, `${where}.endedAt`) : null,
    has('swept') ? need(typeof w.swept === 'boolean', `${where}.swept`, 'true or false', w.swept) : null,
    has('thresholds') ? checkThresholds(w.thresholds, `${where}.thresholds`) : null,
    has('count') ? checkCounts(w.count, `${where}.count`, stored) : null,
    has('rejectedByReason') ? checkTally(w.rejectedByReason, `${where}.rejectedByReason`, stored) : null,
  );
}

export function checkDecision(d: unknown, where: string): string | null {
  if (!isObject(d)) return need(false, where, 'a decision (an object)', d);
  return first(
    time(d.at, `${where}.at`),
    need(typeof d.actor === 'string' && d.actor.length > 0 && d.actor.length <= 200, `${where}.actor`, 'a name', d.actor),
    need(DECISION_ACTIONS.has(d.action as string), `${where}.action`, `one of ${[...DECISION_ACTIONS].join(', ')}`, d.action),
    need(typeof d.reason === 'string' && d.reason.length <= 200, `${where}.reason`, 'a reason of at most 200 characters', d.reason),
    need(ROLLOUT_STATES.has(d.from as string), `${where}.from`, 'a rollout state', d.from),
    need(ROLLOUT_STATES.has(d.to as string), `${where}.to`, 'a rollout state', d.to),
    need(d.wave === undefined || isUint(d.wave), `${where}.wave`, 'a wave index', d.wave),
  );
}

const ROLLOUT_REFS = ['previousBundle', 'rollbackOf', 'rolledBackBy'] as const;

export function checkRolloutFields(r: Record<string, unknown>, where: string, whole: boolean): string | null {
  const has = (k: string) => whole || k in r;
  return first(
    has('state') ? need(ROLLOUT_STATES.has(r.state as string), `${where}.state`, `one of ${[...ROLLOUT_STATES].join(', ')}`, r.state) : null,
    has('wave') ? need(isUint(r.wave), `${where}.wave`, 'a wave index', r.wave) : null,
    has('startedAt') ? timeOrNull(r.startedAt, `${where}.startedAt`) : null,
    has('endedAt') ? timeOrNull(r.endedAt, `${where}.endedAt`) : null,
    ...ROLLOUT_REFS.map((k) => (has(k) ? need(r[k] === null || isName(r[k]), `${where}.${k}`, 'an id or null', r[k]) : null)),
  );
}

/**
 * A wave's `failingUnverified` (rollout-records.ts keepFailingUnverified): only a compacted rollout
 * keeps it (a rollout with members counts it from them), from 1 to the wave's failing members.
 */
function checkFailingUnverified(w: Record<string, unknown>, at: string, compacted: boolean): string | null {
  const n = w.failingUnverified;
  if (n === undefined) return null;
  if (!compacted) return need(false, `${at}.failingUnverified`, 'nothing (a rollout that keeps its members counts it from them)', n);
  const failing = (w.count as Record<string, unknown> | undefined)?.failing;
  return need(isUint(n) && (n as number) >= 1 && (n as number) <= (failing as number), `${at}.failingUnverified`, `an integer from 1 to the wave's failing count (${shown(failing)})`, n);
}

/** A rollout header (NewRollout, or a stored one with `stored`), and its members when given. */
export function checkRolloutRecord(r: unknown, where: string, stored: boolean, members?: unknown): string | null {
  if (!isObject(r)) return need(false, where, 'a rollout (an object)', r);
  const bundle = r.bundle as Record<string, unknown>;
  const target = r.target as Record<string, unknown>;
  const p = first(
    need(r.format === 1, `${where}.format`, '1', r.format),
    need(isName(r.id), `${where}.id`, 'a rollout id (1 to 200 printable characters, no spaces)', r.id),
    need(isObject(bundle), `${where}.bundle`, 'a bundle reference', bundle),
    isObject(bundle) ? need(typeof bundle.id === 'string' && BUNDLE_ID_RE.test(bundle.id), `${where}.bundle.id`, 'a bundle id', bundle.id) : null,
    isObject(bundle) ? need(isUint(bundle.seq), `${where}.bundle.seq`, 'an integer >= 0', bundle.seq) : null,
    isObject(bundle) ? need(typeof bundle.group === 'string' && GROUP_RE.test(bundle.group), `${where}.bundle.group`, 'a group name', bundle.group) : null,
    need(isObject(target) && ((typeof target.group === 'string' && GROUP_RE.test(target.group)) || (Array.isArray(target.devices) && target.devices.every((d) => checkDeviceId(d).ok))), `${where}.target`, '{ group } or { devices: [ids] }', target),
    need(isObject(r.plan) && Array.isArray((r.plan as Record<string, unknown>).waves), `${where}.plan`, 'a plan with waves', r.plan),
    checkRolloutFields(r, where, true),
    time(r.createdAt, `${where}.createdAt`),
    need(typeof r.createdBy === 'string' && r.createdBy.length > 0 && r.createdBy.length <= 200, `${where}.createdBy`, 'a name', r.createdBy),
    need(Array.isArray(r.waves) && r.waves.length > 0 && r.waves.length <= 1000, `${where}.waves`, '1 to 1000 waves', r.waves),
    need(r.decisions === undefined ? !stored : Array.isArray(r.decisions), `${where}.decisions`, 'an array', r.decisions),
    stored || r.compactedAt !== undefined ? timeOrNull(r.compactedAt, `${where}.compactedAt`) : null,
    !stored && r.compactedAt != null && !['completed', 'aborted'].includes(r.state as string) ? `${where}.compactedAt: only a completed or aborted rollout is compacted` : null,
  );
  if (p !== null) return p;
  const waves = r.waves as unknown[];
  if ((r.wave as number) >= waves.length) return `${where}.wave: expected an index below ${waves.length}, got ${r.wave}`;
  for (let i = 0; i < waves.length; i++) {
    const w = waves[i];
    const at = `${where}.waves[${i}]`;
    if (!isObject(w)) return need(false, at, 'a wave (an object)', w);
    const q = first(
      need(w.index === i, `${at}.index`, String(i), w.index),
      need(isUint(w.planIndex), `${at}.planIndex`, 'an integer >= 0', w.planIndex),
      need(isUint(w.size) || typeof w.size === 'string', `${at}.size`, 'a count or a percentage', w.size),
      checkWaveFields(w, at, true, stored),
      stored || r.compactedAt != null
        ? need(isUint(w.memberCount), `${at}.memberCount`, 'an integer >= 0', w.memberCount)
        : need(w.memberCount === undefined, `${at}.memberCount`, 'nothing (the store counts the members)', w.memberCount),
      checkFailingUnverified(w, at, r.compactedAt != null),
    );
    if (q !== null) return q;
  }
  for (const [i, d] of ((r.decisions as unknown[]) ?? []).entries()) {
    const q = checkDecision(d, `${where}.decisions[${i}]`);
    if (q !== null) return q;
  }
  if (members === undefined) return null;
  if (!Array.isArray(members) || members.length !== waves.length) return `${where} members: expected one array of device ids per wave (${waves.length}), got ${shown(members)}`;
  const seen = new Set<string>();
  for (let i = 0; i < members.length; i++) {
    const list = members[i];
    if (!Array.isArray(list)) return need(false, `${where} members[${i}]`, 'an array of device ids', list);
    const count = (waves[i] as Record<string, Record<string, number>>).count;
    const total = COUNT_KEYS.reduce((n, k) => n + (count[k] ?? 0), 0);
    if (r.compactedAt != null) {
      if (list.length > 0) return `${where} members[${i}]: a compacted rollout comes without members`;
      continue;
    }
    if (total !== list.length) return `${where}.waves[${i}].count: expected counts adding up to its ${list.length} members, got ${total}`;
    for (let j = 0; j < list.length; j++) {
      const q = checkDeviceIdAt(list[j], `${where} members[${i}][${j}]`);
      if (q !== null) return q;
      if (seen.has(list[j])) return `${where} members[${i}][${j}]: device ${JSON.stringify(list[j])} appears twice`;
      seen.add(list[j]);
    }
  }
  return null;
}

export function checkMemberStatus(status: unknown, reason: unknown, at: unknown, where: string): string | null {
  return first(
    need(DEVICE_STATUSES.has(status as string), `${where}.status`, `one of ${[...DEVICE_STATUSES].join(', ')}`, status),
    need(reason === undefined || reason === null || (typeof reason === 'string' && reason.length > 0 && reason.length <= 200), `${where}.reason`, 'a reason of 1 to 200 characters, or null', reason),
    timeOrNull(at, `${where}.at`),
  );
}

export function checkBucket(b: unknown, where: string): string | null {
  if (!isObject(b)) return need(false, where, 'a telemetry bucket (an object)', b);
  return first(
    need(typeof b.host === 'string' && b.host.length > 0 && b.host.length <= 253, `${where}.host`, 'a host name', b.host),
    need(isUint(b.port) && (b.port as number) <= 65535, `${where}.port`, 'a port', b.port),
    need(b.bundleId === null || (typeof b.bundleId === 'string' && BUNDLE_ID_RE.test(b.bundleId)), `${where}.bundleId`, 'a bundle id or null', b.bundleId),
    need(typeof b.owner === 'string', `${where}.owner`, 'the device that opened it', b.owner),
    need(Array.isArray(b.deviceIds), `${where}.deviceIds`, 'an array', b.deviceIds),
    time(b.updatedAt, `${where}.updatedAt`),
    time(b.createdAt, `${where}.createdAt`),
    need(isUint(b.failures), `${where}.failures`, 'an integer >= 0', b.failures),
  );
}

const isJsonValue = (v: unknown, depth: number): boolean => {
  if (depth > 32) return false;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every((x) => isJsonValue(x, depth + 1));
  if (!isObject(v) || Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return false;
  return Object.values(v).every((x) => isJsonValue(x, depth + 1));
};

export function checkItem(collection: unknown, key: unknown, value: unknown, where: string): string | null {
  return first(
    need(typeof collection === 'string' && COLLECTION_RE.test(collection), `${where}.collection`, 'a collection name (a-z first, then a-z 0-9 . _ -, at most 64)', collection),
    need(typeof key === 'string' && key.length > 0 && key.length <= 512, `${where}.key`, 'a key of 1 to 512 characters', key),
    value === undefined ? null : need(isObject(value) && isJsonValue(value, 0), `${where}.value`, 'a JSON object', value),
  );
}

const DEVICE_ID_FAST = /^[A-Za-z0-9._:-]{1,64}$/;
/** Whether `v` holds a character other than '.' (a device id of dots alone names a directory, device-id.ts). */
const notDotsAlone = (v: string): boolean => {
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) !== 0x2e) return true;
  return false;
};
const isId = (v: unknown) => typeof v === 'string' && DEVICE_ID_FAST.test(v) && notDotsAlone(v);
const isTimeOrNull = (v: unknown) => v === null || isTime(v);
/** The last bundle id isBundleId passed: every ack of a rollout names the same one, compared, not matched again. */
let lastBundleId = '';
const isBundleId = (v: unknown): boolean => {
  if (typeof v !== 'string') return false;
  if (v === lastBundleId) return true;
  if (!BUNDLE_ID_RE.test(v)) return false;
  lastBundleId = v;
  return true;
};
/** How many own enumerable keys `o` has, without an array of them (this runs for every change applied and replayed). */
const keyCount = (o: Record<string, unknown>): number => {
  let n = 0;
  for (const k in o) if (Object.hasOwn(o, k)) n++;
  return n;
};

/**
 * The per-ack changes, checked without building a message: most of what a store applies and
 * replays. False sends the change through the full check, which says what is wrong.
 */
function fastValid(c: Record<string, unknown>): boolean {
  switch (c.type) {
    case 'device.patch': {
      if (!isId(c.id) || !isObject(c.set)) return false;
      let n = 0;
      for (const k in c.set) {
        const v = c.set[k];
        n++;
        if (k === 'lastSeen' || k === 'lastConnectAt' || k === 'lastDisconnectAt') { if (!isTimeOrNull(v)) return false; }
        else if (k === 'seq') { if (!(v === null || isUint(v))) return false; }
        else if (k === 'bundleId') { if (!(v === null || isBundleId(v))) return false; }
        else return false;
      }
      return n > 0;
    }
    case 'device.history': {
      const e = c.entry as Record<string, unknown>;
      return isId(c.id) && isObject(e) && isTime(e.at) && (e.rolloutId === undefined || isName(e.rolloutId)) && isBundleId(e.bundleId) && isUint(e.seq) && HISTORY_EVENTS.has(e.event as string) && (e.reason === undefined || (typeof e.reason === 'string' && e.reason.length <= 200)) && keyCount(e) <= 6;
    }
    case 'rollout.member':
      return isName(c.id) && isId(c.device) && DEVICE_STATUSES.has(c.status as string) && (c.reason === undefined || c.reason === null) && isTimeOrNull(c.at) && c.wave === undefined;
    case 'rollout.wave': {
      if (!isName(c.id) || !isUint(c.wave) || c.set !== undefined || !isObject(c.add)) return false;
      const add = c.add as Record<string, unknown>;
      if (keyCount(add) !== 1 || !isObject(add.count)) return false;
      for (const k in add.count) if (!COUNT_KEYS.includes(k) || !Number.isSafeInteger(add.count[k])) return false;
      return true;
    }
    case 'counter.add':
      return isName(c.name) && typeof c.by === 'number' && Number.isFinite(c.by);
    default:
      return false;
  }
}

/** The shape of change `i` of a batch: checkChange(c, `changes[${i}]`), naming it only when wrong. */
export function checkChangeAt(c: unknown, i: number, journaled: boolean): string | null {
  if (isObject(c) && fastValid(c)) return null;
  return checkChange(c, `changes[${i}]`, journaled);
}

/** The shape of one change, as `apply` takes it (`journaled`: as a store wrote it, allocated seqs filled in). */
export function checkChange(c: unknown, where: string, journaled: boolean): string | null {
  if (!isObject(c)) return need(false, where, 'a change (an object with a type)', c);
  if (fastValid(c)) return null;
  const id = (v: unknown, what: string) => need(isName(v), `${where}.${what}`, 'an id (1 to 200 printable characters, no spaces)', v);
  switch (c.type) {
    case 'device.provision':
      return checkDeviceRecord(c.device, `${where}.device`);
    case 'device.patch': {
      const p = checkDeviceIdAt(c.id, `${where}.id`);
      if (p !== null) return p;
      if (!isObject(c.set) || Object.keys(c.set).length === 0) return need(false, `${where}.set`, 'an object of fields to set', c.set);
      for (const [k, v] of Object.entries(c.set)) {
        const at = `${where}.set.${k}`;
        let q: string | null;
        switch (k) {
          case 'seq': case 'keyEpoch': q = uintOrNull(v, at); break;
          case 'bundleId': q = bundleIdOrNull(v, at); break;
          case 'model': case 'firmware': q = labelOrNull(v, at); break;
          case 'lastSeen': case 'lastConnectAt': case 'lastDisconnectAt': case 'revokedAt': q = timeOrNull(v, at); break;
          case 'tokenHash': q = need(isTokenHash(v), at, 'a token hash ($7$… or sha256:…)', typeof v === 'string' ? 'a string of another form' : v); break;
          default: q = `${at}: a device.patch may set only seq, bundleId, model, firmware, keyEpoch, lastSeen, lastConnectAt, lastDisconnectAt, tokenHash, revokedAt`;
        }
        if (q !== null) return q;
      }
      return null;
    }
    case 'device.history':
      return first(checkDeviceIdAt(c.id, `${where}.id`), checkHistoryEntry(c.entry, `${where}.entry`));
    case 'device.telemetry':
      return first(checkDeviceIdAt(c.id, `${where}.id`), checkTelemetryReport(c.report, `${where}.report`));
    case 'device.delete':
      return checkDeviceIdAt(c.id, `${where}.id`);
    case 'bundle.put':
      return checkBundleRecord(c.bundle, `${where}.bundle`);
    case 'group.allocateSeq':
      return first(
        need(typeof c.group === 'string' && GROUP_RE.test(c.group), `${where}.group`, 'a group name', c.group),
        need(c.above === undefined || isUint(c.above), `${where}.above`, 'an integer >= 0', c.above),
        journaled ? need(isUint(c.seq) && (c.seq as number) >= 1, `${where}.seq`, 'the allocated seq', c.seq) : need(c.seq === undefined, `${where}.seq`, 'nothing (the store allocates it)', c.seq),
      );
    case 'group.baseline':
      return first(need(typeof c.group === 'string' && GROUP_RE.test(c.group), `${where}.group`, 'a group name', c.group), bundleIdOrNull(c.bundleId, `${where}.bundleId`));
    case 'rollout.create':
      return checkRolloutRecord(c.rollout, `${where}.rollout`, false, c.members);
    case 'rollout.patch':
      if (!isObject(c.set) || Object.keys(c.set).length === 0) return need(false, `${where}.set`, 'an object of fields to set', c.set);
      for (const k of Object.keys(c.set)) if (!['state', 'wave', 'startedAt', 'endedAt', ...ROLLOUT_REFS].includes(k)) return `${where}.set.${k}: a rollout.patch may set only state, wave, startedAt, endedAt, previousBundle, rollbackOf, rolledBackBy`;
      return first(id(c.id, 'id'), checkRolloutFields(c.set, `${where}.set`, false));
    case 'rollout.wave': {
      const p = first(id(c.id, 'id'), need(isUint(c.wave), `${where}.wave`, 'a wave index', c.wave), need(c.set !== undefined || c.add !== undefined, where, 'set or add', undefined));
      if (p !== null) return p;
      if (c.set !== undefined) {
        if (!isObject(c.set)) return need(false, `${where}.set`, 'an object', c.set);
        for (const k of Object.keys(c.set)) if (!['state', 'startedAt', 'deadline', 'soakUntil', 'endedAt', 'swept', 'thresholds', 'count', 'rejectedByReason'].includes(k)) return `${where}.set.${k}: not a wave field a change may set`;
        const q = checkWaveFields(c.set, `${where}.set`, false);
        if (q !== null) return q;
      }
      if (c.add !== undefined) {
        if (!isObject(c.add)) return need(false, `${where}.add`, 'an object', c.add);
        const add = c.add;
        for (const k of Object.keys(add)) if (k !== 'count' && k !== 'rejectedByReason') return `${where}.add.${k}: only count and rejectedByReason take deltas`;
        if (add.count !== undefined) {
          if (!isObject(add.count)) return need(false, `${where}.add.count`, 'an object', add.count);
          for (const [k, v] of Object.entries(add.count)) if (!COUNT_KEYS.includes(k) || !Number.isSafeInteger(v)) return `${where}.add.count.${k}: expected a status and an integer delta, got ${shown(v)}`;
        }
        if (add.rejectedByReason !== undefined) {
          const q = checkTally(add.rejectedByReason, `${where}.add.rejectedByReason`, true);
          if (q !== null) return q;
        }
      }
      return null;
    }
    case 'rollout.decision':
      return first(id(c.id, 'id'), checkDecision(c.decision, `${where}.decision`));
    case 'rollout.member':
      return first(id(c.id, 'id'), checkDeviceIdAt(c.device, `${where}.device`), checkMemberStatus(c.status, c.reason, c.at, where), need(c.wave === undefined || isUint(c.wave), `${where}.wave`, 'a wave index', c.wave));
    case 'rollout.compact':
      return first(id(c.id, 'id'), time(c.at, `${where}.at`));
    case 'telemetry.put':
      return first(need(typeof c.key === 'string' && c.key.length > 0 && c.key.length <= 1024, `${where}.key`, 'a bucket key of 1 to 1024 characters', c.key), checkBucket(c.bucket, `${where}.bucket`));
    case 'telemetry.remove':
      return need(typeof c.key === 'string' && c.key.length > 0 && c.key.length <= 1024, `${where}.key`, 'a bucket key', c.key);
    case 'counter.add':
      return first(id(c.name, 'name'), need(typeof c.by === 'number' && Number.isFinite(c.by), `${where}.by`, 'a finite number', c.by));
    case 'item.put':
      return checkItem(c.collection, c.key, c.value ?? null, where);
    case 'item.delete':
      return checkItem(c.collection, c.key, undefined, where);
    default:
      return `${where}.type: expected a change type (device.provision, device.patch, …), got ${shown(c.type)}`;
  }
}

export type { BundleRecord, DeviceRecord, Change, JsonObject, NewRollout };
