// The embedded store's snapshots (docs/storage.md): the whole fleet state as one JSON document in
// lowdb's format (a JSON file lowdb's JSONFile reads as it is), written through a lowdb adapter of
// our own, SnapshotFile, because stock lowdb writes through steno, which never fsyncs and
// stringifies the whole document on the calling thread in one string (V8 caps a string near
// 512 MiB). SnapshotFile writes one record a line, in ~1 MiB chunks, to a temp file; fsyncs it;
// renames it over; fsyncs the directory. It runs in the snapshot worker (snapshot-worker.ts), off
// the event loop.
//
// The document, one line each, in this order:
//   {"pinwave":"snapshot","version":2,"journal":G,"writtenAt":T,
//   "devices":[            then one device record a line, each but the last ending in ","
//   ],
//   "bundles":[ … ], "groups":[ … ], "rollouts":[ … ],
//   "members":[            [rolloutId, deviceId, wave, ord, status, reason, at] a line
//   ], "telemetry":[ {key, bucket} … ], "counters":[ {name, value} … ],
//   "items":[ {collection, key, value} … ]}
// `journal` G: the snapshot holds every batch of the journals before journal-G; loading replays
// journal-G and later. Reading checks every record as strictly as the API checks input, and names
// the file, the byte offset and the record of the first one that is wrong.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Adapter } from 'lowdb';
import type { GroupRecord, JsonObject, MemberRecord, StoredRollout, TelemetryBucket } from './changes.ts';
import { FleetState } from './fleet-state.ts';
import { StoreError, type BundleRecord, type DeviceRecord } from './types.ts';
import { BUNDLE_ID_RE, GROUP_RE, checkBucket, checkBundleRecord, checkDeviceIdAt, checkDeviceRecord, checkItem, checkMemberStatus, checkRolloutRecord, isName, isObject } from './validate.ts';

export const SNAPSHOT_VERSION = 2;
const SECTIONS = ['devices', 'bundles', 'groups', 'rollouts', 'members', 'telemetry', 'counters', 'items'] as const;
type Section = (typeof SECTIONS)[number];
const CHUNK = 1 << 20;

export const snapshotName = (gen: number) => `snapshot-${String(gen).padStart(10, '0')}.json`;
export const journalName = (gen: number) => `journal-${String(gen).padStart(10, '0')}.log`;
export const SNAPSHOT_RE = /^snapshot-(\d{10})\.json$/;
export const JOURNAL_RE = /^journal-(\d{10})\.log$/;

export interface Snapshot {
  /** the first journal generation not in it */
  journal: number;
  state: FleetState;
}

export interface WriteFigures {
  bytes: number;
  fsyncs: number;
  ms: number;
}

/** lowdb's Adapter over one snapshot file. */
export class SnapshotFile implements Adapter<Snapshot> {
  readonly path: string;
  /** what the last write() measured */
  last: WriteFigures | null = null;

  constructor(path: string) {
    this.path = path;
  }

  async read(): Promise<Snapshot | null> {
    return readSnapshot(this.path);
  }

  /** Synchronous inside (the worker has nothing else to do); never leaves a temp file behind. */
  async write(data: Snapshot): Promise<void> {
    this.last = writeSnapshotSync(this.path, data);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeSnapshotSync(path: string, data: Snapshot): WriteFigures {
  const started = performance.now();
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  let bytes = 0;
  let parts: string[] = [];
  let pending = 0;
  const flush = () => {
    if (pending === 0) return;
    const buf = Buffer.from(parts.join(''), 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    bytes += buf.length;
    parts = [];
    pending = 0;
  };
  const put = (s: string) => {
    parts.push(s);
    pending += s.length;
    if (pending >= CHUNK) flush();
  };
  try {
    const s = data.state;
    put(`{"pinwave":"snapshot","version":${SNAPSHOT_VERSION},"journal":${data.journal},"writtenAt":${Date.now()},\n`);
    const section = (name: Section, rows: Iterable<unknown>, last = false) => {
      put(`"${name}":[\n`);
      let first = true;
      for (const row of rows) {
        put(first ? JSON.stringify(row) : `,\n${JSON.stringify(row)}`);
        first = false;
      }
      put(first ? (last ? ']}\n' : '],\n') : last ? '\n]}\n' : '\n],\n');
    };
    section('devices', s.devices.values());
    section('bundles', s.bundles.values());
    section('groups', s.groups.values());
    section('rollouts', s.rollouts.values());
    section('members', memberRows(s));
    section('telemetry', (function* () { for (const [key, bucket] of s.telemetry) yield { key, bucket }; })());
    section('counters', (function* () { for (const [name, value] of s.counters) yield { name, value }; })());
    section('items', (function* () { for (const [collection, m] of s.items) for (const [key, value] of m) yield { collection, key, value }; })(), true);
    flush();
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(tmp); // a full disk gets its space back
    } catch {
      // already gone
    }
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
  return { bytes, fsyncs: 2, ms: performance.now() - started };
}

function* memberRows(s: FleetState): Generator<unknown[]> {
  for (const [rolloutId, members] of s.members) for (const m of members.values()) yield [rolloutId, m.deviceId, m.wave, m.ord, m.status, m.reason, m.at];
}

/** Lines of a file with the byte offset each starts at, read in chunks. */
async function* lines(path: string): AsyncGenerator<{ line: string; offset: number }> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * CHUNK);
    let carry: Buffer = Buffer.alloc(0);
    let carryOffset = 0;
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      let chunk = buf.subarray(0, bytesRead);
      if (carry.length > 0) chunk = Buffer.concat([carry, chunk]);
      let start = 0;
      for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
        yield { line: chunk.toString('utf8', start, nl), offset: carryOffset + start };
        start = nl + 1;
      }
      carryOffset += start;
      carry = Buffer.from(chunk.subarray(start));
    }
    if (carry.length > 0) yield { line: carry.toString('utf8'), offset: carryOffset };
  } finally {
    await fh.close();
  }
}

/** Reads and checks a snapshot; StoreError PW_STORE_CORRUPT naming the file, offset and record, PW_STORE_VERSION for another version. */
export async function readSnapshot(path: string): Promise<Snapshot> {
  const name = path;
  const bad = (offset: number, what: string) =>
    new StoreError('PW_STORE_CORRUPT', `${name}: byte ${offset}: ${what}; refusing to start so that nothing stored there is lost (docs/storage.md, "when the store refuses to start")`);
  const state = new FleetState();
  let journal = -1;
  let section: Section | null = null;
  let next = 0; // index into SECTIONS of the section expected next
  let index = 0;
  let ended = false;
  let expectComma = false;
  const rollouts = new Map<string, { r: StoredRollout; members: MemberRecord[]; seen: Set<string> }>();
  for await (const { line, offset } of lines(path)) {
    if (ended) {
      if (line === '') continue;
      throw bad(offset, 'text after the end of the document');
    }
    if (journal < 0) {
      let header: unknown;
      try {
        header = JSON.parse(line.endsWith(',') ? `${line.slice(0, -1)}}` : line);
      } catch {
        throw bad(offset, 'expected the snapshot header {"pinwave":"snapshot","version":2,…}');
      }
      if (!isObject(header) || header.pinwave !== 'snapshot') throw bad(offset, 'expected the snapshot header {"pinwave":"snapshot",…}');
      if (header.version !== SNAPSHOT_VERSION) {
        throw new StoreError('PW_STORE_VERSION', `${name} has snapshot version ${JSON.stringify(header.version)}, this pinwave reads version ${SNAPSHOT_VERSION}: run the pinwave that wrote it, or a newer one`);
      }
      if (!Number.isSafeInteger(header.journal) || (header.journal as number) < 1) throw bad(offset, `expected "journal" to be a generation >= 1, got ${JSON.stringify(header.journal)}`);
      journal = header.journal as number;
      continue;
    }
    if (section === null) {
      const want = SECTIONS[next];
      if (want === undefined || line !== `"${want}":[`) throw bad(offset, `expected the "${want ?? 'end'}" section to open here`);
      section = want;
      index = 0;
      expectComma = false;
      continue;
    }
    if (line === '],' || line === ']}') {
      if (expectComma) throw bad(offset, `a trailing comma before the end of "${section}"`);
      const last = next === SECTIONS.length - 1;
      if ((line === ']}') !== last) throw bad(offset, last ? 'expected the document to end here with "]}"' : 'the document ends before its last section');
      next++;
      section = null;
      if (last) ended = true;
      continue;
    }
    if (index > 0 && !expectComma) throw bad(offset, `a comma missing after ${section}[${index - 1}]`);
    const text = line.endsWith(',') ? line.slice(0, -1) : line;
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch (err) {
      throw bad(offset, `${section}[${index}] is not JSON (${(err as Error).message})`);
    }
    // Every record but a section's last ends its line with a comma.
    expectComma = line.endsWith(',');
    const where = `${section}[${index}]`;
    const problem = take(state, section, row, where, rollouts);
    if (problem !== null) throw bad(offset, problem);
    index++;
  }
  if (journal < 0) throw bad(0, 'the file is empty');
  if (!ended) throw bad(0, `the document is cut short (in section "${section ?? SECTIONS[next]}")`);
  for (const [id, { r, members }] of rollouts) {
    if (r.compactedAt === null) {
      const counts = r.waves.map(() => 0);
      for (const m of members) counts[m.wave]++;
      const w = r.waves.findIndex((wave, i) => wave.memberCount !== counts[i]);
      if (w >= 0) throw bad(0, `rollout ${JSON.stringify(id)} wave ${w} has ${r.waves[w].memberCount} members in its header and ${counts[w]} member rows`);
    } else if (members.length > 0) throw bad(0, `rollout ${JSON.stringify(id)} is compacted but has member rows`);
    state.loadRollout(r, r.compactedAt === null ? members : null);
  }
  state.reindex();
  return { journal, state };
}

function take(state: FleetState, section: Section, row: unknown, where: string, rollouts: Map<string, { r: StoredRollout; members: MemberRecord[]; seen: Set<string> }>): string | null {
  switch (section) {
    case 'devices': {
      const p = checkDeviceRecord(row, where);
      if (p !== null) return p;
      return state.loadDevice(row as DeviceRecord) ? null : `${where}: device id ${JSON.stringify((row as DeviceRecord).id)} appears twice`;
    }
    case 'bundles': {
      const p = checkBundleRecord(row, where);
      if (p !== null) return p;
      const b = row as BundleRecord;
      if (state.bundles.has(b.id)) return `${where}: bundle id ${b.id} appears twice`;
      state.bundles.set(b.id, b);
      return null;
    }
    case 'groups': {
      const g = row as GroupRecord;
      if (!isObject(row) || typeof g.name !== 'string' || !GROUP_RE.test(g.name) || !Number.isSafeInteger(g.seq) || g.seq < 0 || !(g.baseline === null || (typeof g.baseline === 'string' && BUNDLE_ID_RE.test(g.baseline)))) {
        return `${where}: expected a group { name, seq (an integer >= 0), baseline (a bundle id or null) }`;
      }
      if (state.groups.has(g.name)) return `${where}: group ${JSON.stringify(g.name)} appears twice`;
      state.groups.set(g.name, { name: g.name, seq: g.seq, baseline: g.baseline });
      return null;
    }
    case 'rollouts': {
      const p = checkRolloutRecord(row, where, true);
      if (p !== null) return p;
      const r = row as StoredRollout;
      if (rollouts.has(r.id)) return `${where}: rollout id ${JSON.stringify(r.id)} appears twice`;
      rollouts.set(r.id, { r, members: [], seen: new Set() });
      return null;
    }
    case 'members': {
      if (!Array.isArray(row) || row.length !== 7) return `${where}: expected [rolloutId, deviceId, wave, ord, status, reason, at]`;
      const [rolloutId, deviceId, wave, ord, status, reason, at] = row as [string, string, number, number, MemberRecord['status'], string | null, number | null];
      const r = rollouts.get(rolloutId);
      if (r === undefined) return `${where}: names rollout ${JSON.stringify(rolloutId)}, which is not in the snapshot`;
      const p = checkDeviceIdAt(deviceId, `${where} device`) ?? checkMemberStatus(status, reason, at, where);
      if (p !== null) return p;
      if (!Number.isSafeInteger(wave) || wave < 0 || wave >= r.r.waves.length || !Number.isSafeInteger(ord) || ord < 0) return `${where}: expected a wave of rollout ${JSON.stringify(rolloutId)} and a position >= 0`;
      // A member given twice would load as one under a header that counts two (checkRolloutRecord refuses it in a create).
      if (r.seen.has(deviceId)) return `${where}: device ${JSON.stringify(deviceId)} appears twice in rollout ${JSON.stringify(rolloutId)}`;
      r.seen.add(deviceId);
      r.members.push({ rolloutId, deviceId, wave, ord, status, reason, at });
      return null;
    }
    case 'telemetry': {
      const e = row as { key: string; bucket: TelemetryBucket };
      if (!isObject(row) || typeof e.key !== 'string' || e.key === '' || e.key.length > 1024) return `${where}: expected { key (1 to 1024 characters), bucket }`;
      const p = checkBucket(e.bucket, `${where}.bucket`);
      if (p !== null) return p;
      if (state.telemetry.has(e.key)) return `${where}: telemetry bucket ${JSON.stringify(e.key)} appears twice`;
      state.telemetry.set(e.key, e.bucket);
      return null;
    }
    case 'counters': {
      const e = row as { name: string; value: number };
      if (!isObject(row) || !isName(e.name) || typeof e.value !== 'number' || !Number.isFinite(e.value)) return `${where}: expected { name (1 to 200 printable characters, no spaces), value (a number) }`;
      if (state.counters.has(e.name)) return `${where}: counter ${JSON.stringify(e.name)} appears twice`;
      state.counters.set(e.name, e.value);
      return null;
    }
    case 'items': {
      const e = row as { collection: string; key: string; value: JsonObject };
      const p = isObject(row) ? checkItem(e.collection, e.key, e.value ?? null, where) : `${where}: expected { collection, key, value }`;
      if (p !== null) return p;
      let col = state.items.get(e.collection);
      if (col === undefined) state.items.set(e.collection, (col = new Map()));
      if (col.has(e.key)) return `${where}: item ${JSON.stringify(e.key)} of collection ${e.collection} appears twice`;
      col.set(e.key, e.value);
      return null;
    }
  }
}

export const snapshotPath = (dir: string, gen: number) => join(dir, snapshotName(gen));
export const fileName = basename;
