// Upgrade (docs/storage.md): a data dir written by the earlier whole-file store (DIR/pinwave.json,
// schema version 1, written by the whole-file lowdb store of earlier releases) loads as the embedded store's first
// snapshot, so an installation keeps its fleet. The file is read, never written: it stays as the
// previous snapshot until two newer ones replace it.
//
// Every record is checked as the API checks input and carried over through the same changes the
// gateway applies (changes.ts), so what loads is what apply would have accepted. The old rollout
// records (the engine's, with every member inline) become a header and member rows; the telemetry
// book's state becomes aggregate buckets, device reports and keyed-collection items.
import { readFile } from 'node:fs/promises';
import type { Change } from './changes.ts';
import { FleetState } from './fleet-state.ts';
import { memberChanges, rolloutCreate, type RolloutLinks } from './rollout-records.ts';
import { StoreError } from './types.ts';
import { checkBucket, checkBundleRecord, checkDeviceRecord, checkRolloutRecord, isObject, BUNDLE_ID_RE, GROUP_RE } from './validate.ts';
import type { Rollout } from '../rollout/types.ts';

export const LEGACY_FILENAME = 'pinwave.json';
/** The collections the telemetry book's per-device and per-wave state is carried into. */
export const TELEMETRY_DEVICES = 'telemetry.devices';
export const TELEMETRY_WAVES = 'telemetry.waves';

/** The state held by a version-1 whole-file store at `path`. */
export async function readLegacyFile(path: string): Promise<FleetState> {
  const text = await readFile(path, 'utf8');
  const bad = (what: string) => new StoreError('PW_STORE_CORRUPT', `${path}: ${what}; refusing to load it so that nothing stored there is lost (docs/storage.md, "when the store refuses to start")`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw bad(`not JSON (${(err as Error).message})`);
  }
  if (!isObject(data)) throw bad(`expected a JSON object at the top, got ${data === null ? 'null' : Array.isArray(data) ? 'an array' : typeof data}`);
  if (data.version !== 1) {
    if (Number.isSafeInteger(data.version)) throw new StoreError('PW_STORE_VERSION', `${path} has schema version ${data.version}; this pinwave upgrades version 1 files`);
    throw bad(`expected a schema version (1), got ${JSON.stringify(data.version)}`);
  }
  const { devices, bundles, seq, baselines, rollouts, telemetry, counters } = data;
  if (!Array.isArray(devices)) throw bad('expected "devices" to be an array');
  if (!Array.isArray(bundles)) throw bad('expected "bundles" to be an array');
  if (!Array.isArray(rollouts)) throw bad('expected "rollouts" to be an array');
  if (!isObject(seq)) throw bad('expected "seq" to be an object');
  if (!isObject(baselines)) throw bad('expected "baselines" to be an object');
  if (!isObject(counters)) throw bad('expected "counters" to be an object');
  if (telemetry !== null && telemetry !== undefined && !isObject(telemetry)) throw bad('expected "telemetry" to be an object or null');

  const state = new FleetState();
  const changes: Change[] = [];
  const seen = new Set<string>();
  for (const [i, d] of devices.entries()) {
    const p = checkDeviceRecord(d, `devices[${i}]`);
    if (p !== null) throw bad(p);
    if (seen.has(d.id)) throw bad(`devices[${i}]: device id ${JSON.stringify(d.id)} appears twice`);
    seen.add(d.id);
    changes.push({ type: 'device.provision', device: d });
  }
  for (const [i, b] of bundles.entries()) {
    const p = checkBundleRecord(b, `bundles[${i}]`);
    if (p !== null) throw bad(p);
    changes.push({ type: 'bundle.put', bundle: b });
  }
  for (const [group, n] of Object.entries(seq)) {
    if (!GROUP_RE.test(group) || !Number.isSafeInteger(n) || (n as number) < 0) throw bad(`seq[${JSON.stringify(group)}]: expected a group name and an integer >= 0`);
    if ((n as number) > 0) changes.push({ type: 'group.allocateSeq', group, seq: n as number });
  }
  for (const [group, id] of Object.entries(baselines)) {
    if (!GROUP_RE.test(group) || typeof id !== 'string' || !BUNDLE_ID_RE.test(id)) throw bad(`baselines[${JSON.stringify(group)}]: expected a group name and a bundle id`);
    changes.push({ type: 'group.baseline', group, bundleId: id });
  }
  for (const [i, r] of rollouts.entries()) {
    if (!isObject(r) || !isObject(r.devices) || !Array.isArray(r.waves) || !r.waves.every((w) => isObject(w) && Array.isArray(w.members))) throw bad(`rollouts[${i}] is not a rollout record (waves with members, devices)`);
    const old = r as unknown as Rollout & RolloutLinks;
    let create: Extract<Change, { type: 'rollout.create' }>;
    try {
      create = rolloutCreate({ ...old, createdBy: old.createdBy ?? 'unknown', previousBundle: old.previousBundle ?? null });
    } catch (err) {
      throw bad(`rollouts[${i}]: ${(err as Error).message}`);
    }
    const p = checkRolloutRecord(create.rollout, `rollouts[${i}]`, false, create.members);
    if (p !== null) throw bad(p);
    for (const [dev, e] of Object.entries(old.devices)) {
      if (!isObject(e) || !Number.isSafeInteger(e.wave) || !create.members[e.wave as number]?.includes(dev)) throw bad(`rollouts[${i}].devices[${JSON.stringify(dev)}]: expected a member of one of its waves`);
    }
    changes.push(create, ...memberChanges(old));
  }
  for (const [name, n] of Object.entries(counters)) {
    if (typeof n !== 'number' || !Number.isFinite(n)) throw bad(`counters[${JSON.stringify(name)}]: expected a number`);
    changes.push({ type: 'counter.add', name, by: n });
  }
  if (isObject(telemetry)) changes.push(...telemetryChanges(telemetry, seen, bad));

  let checked;
  try {
    checked = state.check(changes, null, true);
  } catch (err) {
    throw bad((err as Error).message.replace(/^apply: /, ''));
  }
  if (!checked.ok) throw bad(checked.message);
  state.commit(JSON.parse(JSON.stringify(checked.resolved)) as Change[]);
  state.reindex();
  return state;
}

function telemetryChanges(t: Record<string, unknown>, devices: Set<string>, bad: (what: string) => StoreError): Change[] {
  const out: Change[] = [];
  if (t.version !== 1 || !isObject(t.buckets) || !isObject(t.devices) || !isObject(t.waves) || !isObject(t.counters)) throw bad('telemetry: expected the telemetry book state (version 1: buckets, devices, waves, counters)');
  for (const [key, b] of Object.entries(t.buckets)) {
    const p = checkBucket(b, `telemetry.buckets[${JSON.stringify(key)}]`);
    if (p !== null) throw bad(p);
    out.push({ type: 'telemetry.put', key, bucket: b as never });
  }
  for (const [id, d] of Object.entries(t.devices)) {
    if (!isObject(d) || !Array.isArray(d.recent) || !Array.isArray(d.marks)) throw bad(`telemetry.devices[${JSON.stringify(id)}]: expected { counter, recent, marks, owned }`);
    out.push({ type: 'item.put', collection: TELEMETRY_DEVICES, key: id, value: { counter: d.counter as number, marks: d.marks as string[], owned: d.owned as number } });
    // The reports the book kept per device go where the store keeps them now: the device record.
    if (devices.has(id)) for (const r of d.recent.slice(-20)) out.push({ type: 'device.telemetry', id, report: r as never });
  }
  for (const [key, w] of Object.entries(t.waves)) {
    if (!isObject(w)) throw bad(`telemetry.waves[${JSON.stringify(key)}]: expected an object`);
    out.push({ type: 'item.put', collection: TELEMETRY_WAVES, key, value: w as never });
  }
  const c = t.counters;
  for (const k of ['messages', 'reports', 'accepted'] as const) if (typeof c[k] === 'number') out.push({ type: 'counter.add', name: `telemetry.${k}`, by: c[k] as number });
  if (isObject(c.dropped)) for (const [reason, n] of Object.entries(c.dropped)) if (typeof n === 'number' && n !== 0) out.push({ type: 'counter.add', name: `telemetry.dropped.${reason}`, by: n });
  return out;
}
