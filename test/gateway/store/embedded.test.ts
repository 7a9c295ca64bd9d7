import t from 'tap';
import { spawn } from 'node:child_process';
import { appendFile, chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JSONFile } from 'lowdb/node';
import { hashDeviceToken } from '../../../gateway/credentials.ts';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import { frame } from '../../../gateway/store/journal.ts';
import { LOCK_FILENAME } from '../../../gateway/store/lock.ts';
import { journalName, snapshotName } from '../../../gateway/store/snapshot.ts';
import { logger } from './fixtures/store-logger.ts';
import type { Change } from '../../../gateway/store/changes.ts';
import { writeLegacyStore } from '../../fixtures/legacy-store.ts';
import { readOnly, tmpfs } from '../../fixtures/tmpfs.ts';
import { bucket, device, hex, provision, rollout } from './fixtures/conformance.ts';


async function opened(dir: string, o: Partial<ConstructorParameters<typeof EmbeddedStore>[0]> = {}) {
  const s = new EmbeddedStore({ dir, ...o });
  await s.open();
  return s;
}

/** Every file of a dir and its bytes, to check that a refused start changed nothing. */
async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of (await readdir(dir)).sort()) out[n] = (await readFile(join(dir, n))).toString('base64');
  return out;
}

const counter = (by = 1): Change[] => [{ type: 'counter.add', name: 'acks', by }];

t.test('the data dir is 0700 and its files 0600, fixed on start when wider', async (t) => {
  const dir = join(t.testdir(), 'data');
  let s = await opened(dir);
  await s.apply(counter());
  await s.snapshotNow();
  await s.close();
  await chmod(dir, 0o755);
  for (const n of await readdir(dir)) await chmod(join(dir, n), 0o644);
  s = await opened(dir);
  t.equal((await stat(dir)).mode & 0o777, 0o700);
  for (const n of await readdir(dir)) t.equal((await stat(join(dir, n))).mode & 0o777, 0o600, n);
  await s.close();
});

t.test("a new journal's empty start counts in the store's figures: its bytes and its fdatasync", async (t) => {
  const dir = join(t.testdir(), 'data');
  const s = await opened(dir);
  const file = s.journalFile;
  const start = (await stat(file)).size;
  t.ok(start > 0, 'the journal begins with its empty start');
  t.match(s.status(), { writes: 0, fsyncs: 2, bytesWritten: start }, 'the start\'s fdatasync and the directory\'s fsync');
  await s.apply(counter());
  const before = s.status();
  await s.snapshotNow();
  const after = s.status();
  t.equal(after.bytesWritten - before.bytesWritten, start + (await stat(join(dir, snapshotName(2)))).size, 'a rotation: the new journal\'s start and the snapshot');
  await s.close();
});

t.test('a snapshot taken just after a write holds it: the worker is told of every write before it snapshots', async (t) => {
  const dir = join(t.testdir(), 'data');
  const s = await opened(dir);
  for (let i = 0; i < 3; i++) await s.apply(counter());
  // At once: within the time the worker may be left behind the journal.
  await s.snapshotNow();
  await s.snapshotSettled();
  await s.close();
  t.ok((await readdir(dir)).includes(snapshotName(2)), 'the next start loads snapshot 2 and replays journal 2 only');
  const again = await opened(dir);
  t.same(await again.getCounters(), { acks: 3 }, 'every write is in the snapshot');
  await again.close();
});

t.test('records within a commit window share one write and one fsync', async (t) => {
  const s = await opened(join(t.testdir(), 'data'), { commitWindowMs: 5 });
  await s.apply(provision(device('d1')));
  const before = s.status();
  const all = await Promise.all(Array.from({ length: 500 }, (_, i) => s.apply([{ type: 'device.patch', id: 'd1', set: { seq: i } }, ...counter()])));
  t.ok(all.every((r) => r.ok));
  const after = s.status();
  t.equal(after.batches - before.batches, 500);
  t.ok(after.writes - before.writes <= 3, `500 batches, ${after.writes - before.writes} write(s)`);
  t.ok(after.fsyncs - before.fsyncs <= 3, `${after.fsyncs - before.fsyncs} fsync(s)`);
  t.ok(after.lastDurableAt !== null);
  await s.close();
});

t.test('a second store on the same dir is refused with the holder’s pid; a SIGKILLed holder’s lock does not block', async (t) => {
  const dir = join(t.testdir(), 'data');
  const a = await opened(dir);
  const err = await opened(dir).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_LOCKED');
  t.match(err?.message, `in use by pid ${process.pid}`);
  await a.close();

  const child = spawn(process.execPath, [...process.execArgv, join(import.meta.dirname, '../../fixtures/store-holder.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
  const held = await opened(dir).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(held?.code, 'PW_STORE_LOCKED');
  t.match(held?.message, `in use by pid ${pid}`, 'names the other process');
  const dead = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await dead;
  t.ok((await readdir(dir)).includes(LOCK_FILENAME), 'the killed holder left its lock file');
  const b = await opened(dir);
  t.same(await b.getCounters(), { holder: 1 }, 'and the restart takes over, with what the holder committed');
  await b.close();
  t.notOk((await readdir(dir)).includes(LOCK_FILENAME), 'close releases the lock');
});

t.test('a power loss that left a hole inside the last group written, its later pages whole: the group is cut off, the start goes on', async (t) => {
  const dir = join(t.testdir(), 'data');
  const a = await opened(dir);
  await a.apply(counter(1));
  const acked = (await stat(a.journalFile)).size; // everything up to here was answered
  // One group of three batches (applied together, written in one write), then the "crash".
  await Promise.all([a.apply(counter(2)), a.apply(counter(4)), a.apply(counter(8))]);
  const file = a.journalFile;
  await a.close();
  const bytes = await readFile(file);
  t.ok(bytes.length > acked + 40, 'the group was written');
  // The disk got the group's last page but not its first: zeros over its header and first record.
  bytes.fill(0, acked, acked + 30);
  await writeFile(file, bytes);
  const { log, lines } = logger();
  const b = await opened(dir, { logger: log });
  t.same(await b.getCounters(), { acks: 1 }, 'what was answered before the group stays; nothing of the group');
  t.equal((await stat(file)).size, acked, 'the group is cut off');
  t.match(lines, [{ level: 'warn', msg: /torn last journal record/, obj: { file, offset: acked, problem: /in the last group written/ } }]);
  await b.apply(counter(16));
  await b.close();
  const c = await opened(dir);
  t.same(await c.getCounters(), { acks: 17 }, 'and the journal goes on from there');
  await c.close();
});

t.test('a hole after the first record of the last group: the group goes whole, header and all, and the snapshot worker agrees', async (t) => {
  const dir = join(t.testdir(), 'data');
  const a = await opened(dir);
  await a.apply(counter(1));
  const acked = (await stat(a.journalFile)).size;
  await Promise.all([a.apply(counter(2)), a.apply(counter(4)), a.apply(counter(8))]);
  const file = a.journalFile;
  await a.close();
  const bytes = await readFile(file);
  const first = acked + 8 + bytes.readUInt32LE(acked); // the group's first record, after its header
  const second = first + 8 + bytes.readUInt32LE(first);
  bytes.fill(0, second, second + 8); // the page with the second record's frame never reached the disk
  await writeFile(file, bytes);
  const { log, lines } = logger();
  const b = await opened(dir, { logger: log });
  t.same(await b.getCounters(), { acks: 1 }, 'nothing of the unacknowledged group, not even its record before the hole');
  t.equal((await stat(file)).size, acked, 'cut where the group begins: no header is left declaring records that are gone');
  t.match(lines, [{ level: 'warn', obj: { file, offset: acked, problem: /in the last group written/ } }]);
  await b.apply(counter(16));
  await b.snapshotNow(); // the worker's copy, loaded from the journal as cut and followed after it
  await b.apply(counter(32));
  await b.close();
  const c = await opened(dir);
  t.same(await c.getCounters(), { acks: 49 }, 'the snapshot holds what the store held');
  await c.close();
});

t.test('an empty journal a crash left while creating it gets its empty start before any group: a torn first group is then a torn tail', async (t) => {
  const dir = join(t.testdir(), 'data');
  await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dir, journalName(1)), Buffer.alloc(0), { mode: 0o600 }); // its name durable, nothing in it
  const a = await opened(dir);
  const start = (await stat(a.journalFile)).size;
  t.ok(start > 0, 'the start is written at open');
  await Promise.all([a.apply(counter(1)), a.apply(counter(2)), a.apply(counter(4))]);
  await a.close();
  const file = join(dir, journalName(1));
  const bytes = await readFile(file);
  bytes.fill(0, start, start + 30); // the first group's header and first record never reached the disk
  await writeFile(file, bytes);
  const b = await opened(dir);
  t.same(await b.getCounters(), {}, 'nothing of the torn first group');
  t.equal((await stat(file)).size, start, 'cut back to the empty start');
  await b.close();
});

t.test('a torn last record is cut off and logged; the store goes on from the record before it', async (t) => {
  const dir = join(t.testdir(), 'data');
  const a = await opened(dir);
  await a.apply(counter(1));
  await a.apply(counter(2));
  const file = a.journalFile;
  await a.close();
  const good = (await stat(file)).size;
  const torn = frame(JSON.stringify(counter(4))).subarray(0, 11); // a crash mid-append
  await appendFile(file, torn);
  const { log, lines } = logger();
  const b = await opened(dir, { logger: log });
  t.same(await b.getCounters(), { acks: 3 });
  t.equal((await stat(file)).size, good, 'the torn bytes are gone');
  t.match(lines, [{ level: 'warn', msg: /torn last journal record/, obj: { file, offset: good } }]);
  await b.apply(counter(10));
  await b.close();
  const c = await opened(dir);
  t.same(await c.getCounters(), { acks: 13 });
  await c.close();

  // Zeros where the file was extended but not written are torn too.
  await appendFile(file, Buffer.alloc(64));
  const d = await opened(dir);
  t.same(await d.getCounters(), { acks: 13 });
  await d.close();
});

t.test('damage before the last record stops the start with the file and offset, and changes nothing', async (t) => {
  const cases: Array<[string, (b: Buffer, offsets: number[]) => Buffer, RegExp]> = [
    ['a flipped byte in a middle record', (b, o) => { const c = Buffer.from(b); c[o[1] + 12] ^= 0x20; return c; }, /byte \d+: a record whose CRC-32 does not match its body, with a whole record after it/],
    ['garbage between records', (b, o) => Buffer.concat([b.subarray(0, o[1]), Buffer.from('garbage!garbage!'), b.subarray(o[1])]), /byte \d+: .*with a whole record after it/],
    ['a whole record that is not JSON', (b, o) => Buffer.concat([b.subarray(0, o[1]), frame('{not json'), b.subarray(o[1])]), /byte \d+: a record whose body is not JSON/],
    ['a whole record the state refuses', (b, o) => Buffer.concat([b.subarray(0, o[1]), frame(JSON.stringify([{ type: 'device.patch', id: 'ghost', set: { seq: 1 } }])), b.subarray(o[1])]), /byte \d+: a batch the state before it refuses \(PW_STORE_NOT_FOUND/],
    ['a record with a change the API would refuse', (b, o) => Buffer.concat([b.subarray(0, o[1]), frame(JSON.stringify(provision({ ...device('x'), id: '../x' }))), b.subarray(o[1])]), /byte \d+: changes\[0\]\.device\.id: device id may hold only/],
  ];
  for (const [name, damage, why] of cases) {
    const dir = join(t.testdir(), name.replace(/\W+/g, '-'));
    const a = await opened(dir);
    for (let i = 1; i <= 3; i++) await a.apply(counter(i));
    const file = a.journalFile;
    await a.close();
    const bytes = await readFile(file);
    const offsets = [0];
    for (let o = 0; o < bytes.length; ) offsets.push((o += 8 + bytes.readUInt32LE(o)));
    await writeFile(file, damage(bytes, offsets));
    const before = await contents(dir);
    const err = await opened(dir).then(() => null, (e: unknown) => e as Error & { code: string });
    t.equal(err?.code, 'PW_STORE_CORRUPT', name);
    t.match(err?.message, file, `${name}: names the file`);
    t.match(err?.message, why, `${name}: says where and what`);
    t.same(await contents(dir), before, `${name}: every file is byte-identical afterwards, and no lock is left`);
  }
});

t.test('a snapshot is written off the loop, in lowdb’s JSON format; the previous one is kept; loading is snapshot + journal', async (t) => {
  const dir = join(t.testdir(), 'data');
  const { log, lines } = logger();
  const a = await opened(dir, { minSnapshotJournalBytes: 32 * 1024, snapshotFactor: 1, logger: log });
  const ids = Array.from({ length: 300 }, (_, i) => `dev-${String(i).padStart(4, '0')}`);
  await a.apply(provision(...ids.map((id) => device(id))));
  // Rounds of acks until the journal has crossed its threshold twice (bounded).
  for (let round = 0; round < 30 && a.status().snapshots < 2; round++) {
    await Promise.all(ids.map((id, i) => a.apply([{ type: 'device.patch', id, set: { seq: round, lastSeen: round * 1000 + i } }, { type: 'device.history', id, entry: { at: round, bundleId: hex((round % 5) + 1), seq: round, event: 'applied' } }])));
    await a.snapshotSettled();
  }
  await a.apply(counter(5)); // after the last snapshot: only in the journal
  const st = a.status();
  t.equal(st.snapshots, 2, 'the journal outgrew the last snapshot twice: two snapshots');
  t.ok(lines.some((l) => l.msg === 'store: snapshot written'));
  const names = (await readdir(dir)).sort();
  const snaps = names.filter((n) => n.startsWith('snapshot-'));
  t.equal(snaps.length, 2, `the newest snapshot and the one before it: ${names.join(' ')}`);
  const oldest = Number(/(\d+)/.exec(snaps[0])![1]);
  t.ok(names.filter((n) => n.startsWith('journal-')).every((n) => Number(/(\d+)/.exec(n)![1]) >= oldest), 'the journals after the previous snapshot are kept, older ones removed');
  const lowdb = await new JSONFile<{ version: number; devices: Array<{ id: string }> }>(join(dir, snaps[1])).read();
  t.equal(lowdb?.version, 2, 'lowdb reads a snapshot as it is');
  t.equal(lowdb?.devices.length, 300);
  const want = await a.listDevices({ limit: 1000 });
  await a.close();
  const b = await opened(dir);
  t.same(await b.listDevices({ limit: 1000 }), want, 'snapshot + journal replay give back every device');
  t.same(await b.getCounters(), { acks: 5 });
  await b.close();
});

t.test('a broken snapshot or whole-file store is refused naming the file and the record, and left as it is', async (t) => {
  const good = device('d1');
  const cases: Array<[string, string, string, RegExp]> = [
    ['a null file', 'pinwave.json', 'null', /expected a JSON object at the top, got null/],
    ['a device without a token hash', 'pinwave.json', JSON.stringify({ version: 1, devices: [{ ...good, tokenHash: undefined }], bundles: [], seq: {}, baselines: {}, rollouts: [], telemetry: null, counters: {} }), /devices\[0\]\.tokenHash: expected a token hash/],
    ['an id the API refuses', 'pinwave.json', JSON.stringify({ version: 1, devices: [{ ...good, id: '../x' }], bundles: [], seq: {}, baselines: {}, rollouts: [], telemetry: null, counters: {} }), /devices\[0\]\.id: device id may hold only/],
    ['an empty whole-file store', 'pinwave.json', '', /not JSON/],
    ['a snapshot with a bad device', snapshotName(2), `{"pinwave":"snapshot","version":2,"journal":2,"writtenAt":1,\n"devices":[\n${JSON.stringify(good)},\n${JSON.stringify({ ...good, id: 'd2', tokenHash: 'x' })}\n],\n`, /byte \d+: devices\[1\]\.tokenHash: expected a token hash/],
    ['a snapshot cut short', snapshotName(2), `{"pinwave":"snapshot","version":2,"journal":2,"writtenAt":1,\n"devices":[\n${JSON.stringify(good)}\n`, /cut short/],
  ];
  for (const [name, file, text, why] of cases) {
    const dir = join(t.testdir(), name.replace(/\W+/g, '-'));
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, file), text, { mode: 0o600 });
    const before = await contents(dir);
    const err = await opened(dir).then(() => null, (e: unknown) => e as Error & { code: string });
    t.equal(err?.code, 'PW_STORE_CORRUPT', name);
    t.match(err?.message, join(dir, file), `${name}: names the file`);
    t.match(err?.message, why, `${name}: names the record`);
    t.same(await contents(dir), before, `${name}: untouched`);
  }
});

t.test('upgrade: a data dir of the earlier whole-file store loads as the first snapshot, and is kept', async (t) => {
  for (const [name, make] of [
    ["written now in the earlier release's format", async (dir: string) => writeLegacyStore(dir)],
    ['the committed fixture', async (dir: string) => {
      await mkdir(dir);
      await writeFile(join(dir, 'pinwave.json'), await readFile(join(import.meta.dirname, '../../fixtures/store-v1/pinwave.json')), { mode: 0o644 });
    }],
  ] as const) {
    const dir = join(t.testdir(), name.replace(/\W+/g, '-'));
    await make(dir);
    const original = await readFile(join(dir, 'pinwave.json'));
    const old = JSON.parse(original.toString());
    const s = await opened(dir);
    const devices = (await s.listDevices({ limit: 1000 })).items;
    t.equal(devices.length, old.devices.length, `${name}: every device`);
    t.same(devices.map((d) => d.tokenHash), old.devices.map((d: { tokenHash: string }) => d.tokenHash), `${name}: token hashes kept as they are`);
    t.same(await s.getGroup('door-locks'), { name: 'door-locks', seq: 2, baseline: hex(1) }, `${name}: seq high-water and baseline`);
    t.equal((await s.listBundles()).items.length, 2);
    const r = (await s.getRollout('r-door-locks-2-abc'))!;
    t.equal(r.state, old.rollouts[0].state);
    t.same(r.waves.map((w) => w.count), old.rollouts[0].waves.map((w: { count: unknown }) => w.count), `${name}: wave counts`);
    t.equal(r.decisions.length, old.rollouts[0].decisions.length);
    const members = (await s.listMembers(r.id, { limit: 1000 })).items;
    t.equal(members.length, old.devices.length, `${name}: a member row per device`);
    for (const m of members) t.equal(m.status, old.rollouts[0].devices[m.deviceId].status, `${name}: ${m.deviceId} keeps its status`);
    t.equal((await s.listTelemetry()).items.length, 1, `${name}: telemetry buckets`);
    t.ok(devices.some((d) => d.telemetry.length === 1), `${name}: a device's recent reports`);
    t.equal((await s.getCounters()).acks, old.counters.acks);
    t.equal((await s.apply([{ type: 'group.allocateSeq', group: 'door-locks' }]) as { seqs: number[] }).seqs[0], 3, `${name}: the next seq is above every one handed out`);
    await s.close();
    t.same(await readFile(join(dir, 'pinwave.json')), original, `${name}: the old file is not rewritten`);
    t.equal((await stat(join(dir, 'pinwave.json'))).mode & 0o777, 0o600, `${name}: but made 0600`);
    const again = await opened(dir);
    t.equal((await again.getGroup('door-locks'))!.seq, 3, `${name}: restarts from it and the journal`);
    await again.close();
  }
});

t.test('an unwritable data dir stops the start with a clear error', async (t) => {
  const parent = t.testdir({ file: 'not a directory' });
  const err = await opened(join(parent, 'file', 'data')).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_UNWRITABLE');
  t.match(err?.message, join(parent, 'file', 'data'));

  const ro = await tmpfs(t, 'size=1m,mode=0700');
  const s = await opened(join(ro, 'data'));
  await s.apply(counter());
  await s.close();
  readOnly(ro);
  const again = await opened(join(ro, 'data')).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(again?.code, 'PW_STORE_UNWRITABLE', 'a read-only file system (root ignores modes)');
  t.match(again?.message, /EROFS/);
});

t.test('a full disk: apply rejects with PW_STORE_FULL, nothing of the batch happens, and once space returns it goes on', async (t) => {
  const mnt = await tmpfs(t, 'size=256k');
  const dir = join(mnt, 'data');
  const { log, lines } = logger();
  const s = await opened(dir, { logger: log, minSnapshotJournalBytes: 1 << 30 });
  await s.apply(provision(device('d1')));
  const filler = join(mnt, 'filler');
  await writeFile(filler, Buffer.alloc(0));
  // Fill the disk to the last byte.
  for (let chunk = 64 * 1024; chunk >= 1; chunk = Math.floor(chunk / 2)) {
    for (;;) {
      try {
        await appendFile(filler, Buffer.alloc(chunk));
      } catch {
        break;
      }
    }
  }
  // The journal's last page may still have room for a small record: use it up (tmpfs holds pages).
  let filled = false;
  for (let i = 0; i < 2000 && !filled; i++) filled = await s.apply(counter(1)).then(() => false, () => true);
  t.ok(filled, 'the disk is full');
  const acks = (await s.getCounters()).acks;
  const journal = s.journalFile;
  const good = await readFile(journal);
  const big = Array.from({ length: 200 }, (_, i) => device(`big-${i}`));
  const refused = await s.apply(provision(...big)).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(refused?.code, 'PW_STORE_FULL');
  t.match(refused?.message, `store ${dir}`);
  t.match(refused?.message, /insufficient storage/);
  t.equal(await s.getDevice('big-0'), null, 'not in memory');
  t.same(await readFile(journal), good, 'the journal is cut back to its last good record');
  t.equal(s.status().writable, false);
  t.equal(s.status().lastError?.code, 'PW_STORE_FULL');
  t.ok(lines.some((l) => l.level === 'error' && /journal write failed/.test(l.msg)), 'logged');
  const oldHash = (await s.getDevice('d1'))!.tokenHash;
  const rotate = await s.apply([{ type: 'device.patch', id: 'd1', set: { tokenHash: hashDeviceToken('a new token') } }]).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(rotate?.code, 'PW_STORE_FULL', 'a token rotation is refused too');
  t.equal((await s.getDevice('d1'))!.tokenHash, oldHash, 'and the old token hash stays');
  await writeFile(filler, ''); // space returns
  t.same(await s.apply(provision(...big)), { ok: true, seqs: [] }, 'the next apply succeeds without a restart');
  t.equal(s.status().writable, true);
  await s.close();
  const again = await opened(dir);
  t.equal((await again.listDevices({ limit: 1000 })).items.length, 201);
  t.equal((await again.getCounters()).acks, acks, 'the refused batches never appear');
  t.equal((await again.getDevice('d1'))!.tokenHash, oldHash);
  await again.close();
});

t.test('an fsync that fails (EIO): the batch is refused and never appears later', async (t) => {
  const dir = join(t.testdir(), 'data');
  let failSync = false;
  const s = await opened(dir, {
    io: {
      datasync: async (fh) => {
        if (failSync) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
        await fh.datasync();
      },
    },
  });
  await s.apply(counter(1));
  failSync = true;
  const queued = [s.apply(counter(10)), s.apply(provision(device('d9')))];
  const results = await Promise.allSettled(queued);
  t.same(results.map((r) => r.status === 'rejected' && (r.reason as { code: string }).code), ['PW_STORE_IO', 'PW_STORE_IO'], 'every batch of the failed write is refused');
  t.match((results[0] as PromiseRejectedResult).reason.message, /fdatasync/);
  t.same(await s.getCounters(), { acks: 1 });
  failSync = false;
  await s.apply(counter(100));
  await s.close();
  const again = await opened(dir);
  t.same(await again.getCounters(), { acks: 101 }, 'the refused batch is not in the journal');
  t.equal(await again.getDevice('d9'), null);
  await again.close();
});

t.test('a journal missing between a snapshot and a later one refuses the start', async (t) => {
  const dir = join(t.testdir(), 'data');
  const s = await opened(dir);
  await s.apply(counter(1));
  await s.snapshotNow();
  await s.apply(counter(1));
  await s.snapshotNow();
  await s.apply(counter(1));
  await s.close();
  const names = await readdir(dir);
  const journals = names.filter((n) => n.startsWith('journal-')).sort();
  const { unlink } = await import('node:fs/promises');
  await unlink(join(dir, journals.at(-2)!));
  await writeFile(join(dir, journalName(99)), '');
  const err = await opened(dir).then(() => null, (e: unknown) => e as Error & { code: string });
  t.equal(err?.code, 'PW_STORE_CORRUPT');
  t.match(err?.message, /is missing/);
});

t.test('a snapshot carries every kind of record: what loads from it is what was there', async (t) => {
  const dir = join(t.testdir(), 'data');
  const a = await opened(dir);
  const ids = Array.from({ length: 12 }, (_, i) => `d-${i}`);
  const r = rollout('r-1', ids.slice(0, 8));
  const done = rollout('r-0', ids.slice(8), 3, [{ size: '100%' }]);
  await a.apply([...provision(...ids.map((id) => device(id))), { type: 'bundle.put', bundle: { id: hex(2), group: 'door-locks', seq: 2, size: 180, createdAt: 1, bytes: 'AAAA', meta: { note: 'x' } } }, r.change, done.change]);
  await a.apply([
    { type: 'group.allocateSeq', group: 'door-locks', above: 4 },
    { type: 'group.baseline', group: 'door-locks', bundleId: hex(2) },
    { type: 'rollout.member', id: 'r-1', device: r.engine.waves[0].members[0], status: 'rejected', reason: 'expired', at: 9 },
    { type: 'rollout.wave', id: 'r-1', wave: 0, add: { count: { pending: -1, rejected: 1 }, rejectedByReason: { expired: 1 } } },
    { type: 'rollout.decision', id: 'r-1', decision: { at: 9, actor: 'system', action: 'hold', reason: 'failure_threshold', from: 'running', to: 'held', wave: 0 } },
    { type: 'rollout.patch', id: 'r-0', set: { state: 'aborted', endedAt: 10 } },
    { type: 'rollout.compact', id: 'r-0', at: 11 },
    { type: 'device.history', id: ids[0], entry: { at: 9, rolloutId: 'r-1', bundleId: hex(2), seq: 2, event: 'rejected', reason: 'expired' } },
    { type: 'device.telemetry', id: ids[0], report: { at: 9, hostname: 'api.example.com', servedPins: ['sha256/x'] } },
    { type: 'telemetry.put', key: 'k1', bucket: bucket(4) },
    { type: 'counter.add', name: 'acks', by: 3 },
    { type: 'item.put', collection: 'sessions', key: 's1', value: { operator: 'alice', nested: { list: [1, 'two', null] } } },
  ]);
  const read = async (s: EmbeddedStore) => ({
    devices: await s.listDevices(),
    bundles: await s.listBundles(),
    groups: await s.listGroups(),
    rollouts: await s.listRollouts(),
    members: await s.listMembers('r-1'),
    compacted: await s.listMembers('r-0'),
    memberships: await s.membershipsOf(ids[0]),
    telemetry: await s.listTelemetry(),
    counters: await s.getCounters(),
    items: await s.listItems('sessions'),
  });
  const want = await read(a);
  await a.snapshotNow();
  await a.close();
  // Only the snapshot holds the state now: the journals before it are not needed to load it.
  const names = await readdir(dir);
  const snap = names.filter((n) => n.startsWith('snapshot-')).sort().at(-1)!;
  const gen = Number(/(\d+)/.exec(snap)![1]);
  const { unlink } = await import('node:fs/promises');
  for (const n of names) if (n.startsWith('journal-') && Number(/(\d+)/.exec(n)![1]) < gen) await unlink(join(dir, n));
  const b = await opened(dir);
  t.same(await read(b), want, 'every record, from the snapshot alone');
  t.same(await b.apply([{ type: 'group.allocateSeq', group: 'door-locks' }]), { ok: true, seqs: [6] });
  await b.close();
});
