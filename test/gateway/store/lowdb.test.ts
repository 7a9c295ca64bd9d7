import t from 'tap';
import { readFile, stat, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Adapter } from 'lowdb';
import { LowdbStore, STORE_FILENAME, type StoreFile } from '../../../gateway/store/lowdb.ts';
import { newDeviceRecord, StoreError, type BundleRecord, type DeviceRecord, type RolloutRecord } from '../../../gateway/store/types.ts';

function device(id: string, group = 'door-locks', extra: Partial<DeviceRecord> = {}): DeviceRecord {
  return { ...newDeviceRecord({ id, group, model: 'dl-200', firmware: '1.4.2', tokenHash: `scrypt$${id}`, createdAt: 1_700_000_000_000 }), ...extra };
}

function bundle(id: string, group = 'door-locks', seq = 1): BundleRecord {
  return { id, group, seq, size: 200, createdAt: 1_700_000_000_000, bytes: '0oRDoQEnoFhA', createdBy: 'ops', meta: { note: 'q3 rotation' } };
}

/** Ids in a scrambled but reproducible order, so an index that merely kept insertion order fails. */
function scrambledIds(n: number): string[] {
  const ids = Array.from({ length: n }, (_, i) => `dev-${String(i).padStart(6, '0')}`);
  let s = 12345;
  for (let i = ids.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids;
}

async function open(dir: string, windowMs?: number): Promise<LowdbStore> {
  const store = new LowdbStore({ dir, windowMs });
  await store.load();
  return store;
}

t.test('load creates a 0700 data dir and a versioned file', async (t) => {
  const dir = join(t.testdir(), 'data');
  const store = await open(dir);
  t.equal((await stat(dir)).mode & 0o777, 0o700);
  const file = JSON.parse(await readFile(join(dir, STORE_FILENAME), 'utf8'));
  t.equal(file.version, 1);
  t.same(file.devices, []);
  t.equal(store.file, join(dir, STORE_FILENAME));
  await store.close();
});

t.test('every record type survives a reload from disk', async (t) => {
  const dir = t.testdir();
  const a = await open(dir);
  const history = [{ at: 5, rolloutId: 'r1', bundleId: 'b1', seq: 1, event: 'rejected' as const, reason: 'weak_pin_set' }];
  const telemetry = [{ at: 6, host: 'api.example.com', port: 443, count: 3 }];
  t.same(await a.putDevices([device('d1', 'g1', { history, telemetry, keyEpoch: 2 }), device('d2', 'g2')]), { ok: true, count: 2 });
  await a.updateDevice('d2', { seq: 4, bundleId: 'b4', lastSeen: 99 });
  t.same(await a.putBundle(bundle('b1', 'g1', 1)), { ok: true, count: 1 });
  t.equal(await a.allocateSeq('g1'), 1);
  await a.setBaseline('g1', 'b1');
  const rollout: RolloutRecord = { id: 'r1', state: 'running', waves: [{ state: 'active', size: 10 }], devices: { d1: 'sent' } };
  await a.putRollout(rollout);
  await a.putRollout({ id: 'r0', state: 'completed' });
  await a.putTelemetry({ byHost: { 'api.example.com': 3 } });
  await a.incrementCounter('acks');
  await a.incrementCounter('acks', 2);
  await a.close();

  const b = await open(dir);
  t.same(await b.getDevice('d1'), device('d1', 'g1', { history, telemetry, keyEpoch: 2 }));
  t.match(await b.getDevice('d2'), { seq: 4, bundleId: 'b4', lastSeen: 99 });
  t.same(await b.getBundle('b1'), bundle('b1', 'g1', 1));
  t.equal(await b.getBaseline('g1'), 'b1');
  t.equal(await b.getBaseline('g2'), null);
  t.same(await b.getRollout('r1'), rollout);
  t.same(
    (await b.listRollouts()).map((r) => r.id),
    ['r1', 'r0'],
    'rollouts keep the order they were first stored in',
  );
  t.same((await b.listRollouts({ state: 'completed' })).map((r) => r.id), ['r0']);
  t.same(await b.getTelemetry(), { byHost: { 'api.example.com': 3 } });
  t.same(await b.getCounters(), { acks: 3 });
  t.same(await b.devicesInGroup('g1'), ['d1']);
  t.equal(await b.allocateSeq('g1'), 2, 'the seq high-water mark came back too');
  t.equal(await b.getDevice('nope'), null);
  await b.close();
});

t.test('10,000 devices inserted in bulk come back after a reload', async (t) => {
  const dir = t.testdir();
  const a = await open(dir);
  const ids = scrambledIds(10_000);
  let started = performance.now();
  t.same(await a.putDevices(ids.map((id) => device(id))), { ok: true, count: 10_000 });
  t.comment(`putDevices(10,000), durable on return: ${(performance.now() - started).toFixed(1)} ms`);
  const { size } = await stat(a.file);
  t.comment(`file: ${(size / 1024).toFixed(0)} KiB`);
  await a.close();

  started = performance.now();
  const b = await open(dir);
  t.comment(`load of 10,000 devices: ${(performance.now() - started).toFixed(1)} ms`);
  t.equal((await b.devicesInGroup('door-locks')).length, 10_000);
  t.same(await b.getDevice(ids[1234]), device(ids[1234]));
  await b.close();
});

t.test('a bulk insert with a duplicate id stores nothing and names the id', async (t) => {
  const dir = t.testdir();
  const a = await open(dir, 60_000);
  t.same(await a.putDevices([device('d1')]), { ok: true, count: 1 });
  const writes = a.writes;
  const clash = await a.putDevices([device('d2'), device('d1'), device('d3'), device('d3')]);
  t.same(clash, { ok: false, code: 'PW_STORE_DUPLICATE_ID', ids: ['d1', 'd3'] }, 'names an id already stored and one given twice');
  t.equal(await a.getDevice('d2'), null, 'the new ids in the batch were not stored');
  t.same(await a.devicesInGroup('door-locks'), ['d1']);
  t.same((await a.listDevices()).items.map((d) => d.id), ['d1']);
  t.equal(a.writes, writes, 'nothing was written');
  await a.close();
  const b = await open(dir);
  t.same((await b.listDevices()).items.map((d) => d.id), ['d1']);
  await b.close();
});

t.test('10,000 updates within one window are one write', async (t) => {
  const dir = t.testdir();
  const store = await open(dir); // the default 100 ms window
  const ids = scrambledIds(10_000);
  await store.putDevices(ids.map((id) => device(id)));
  const rollout: RolloutRecord = { id: 'r1', state: 'running', applied: 0 };
  await store.putRollout(rollout);
  await store.flush();
  const before = store.writes;
  const started = performance.now();
  for (const [i, id] of ids.entries()) {
    await store.updateDevice(id, (d) => {
      d.seq = 2;
      d.bundleId = 'b2';
      d.lastSeen = i;
      d.history.push({ at: i, rolloutId: 'r1', bundleId: 'b2', seq: 2, event: 'applied' });
    });
    rollout.applied = (rollout.applied as number) + 1;
    await store.putRollout(rollout);
  }
  const ingest = performance.now() - started;
  await store.flush();
  const writes = store.writes - before;
  t.comment(`10,000 acks (updateDevice + putRollout): ${ingest.toFixed(1)} ms in memory, ${writes} file write(s)`);
  t.ok(writes <= 3, `writes: ${writes}`);
  await store.close();
  const again = await open(dir);
  t.equal(((await again.getRollout('r1')) as RolloutRecord).applied, 10_000);
  t.equal((await again.listDevices({ seq: 2, limit: 1000 })).items.length, 1000);
  await again.close();
});

t.test('a change is written when its window ends, without flush', async (t) => {
  const store = await open(t.testdir(), 5);
  const before = store.writes;
  await store.incrementCounter('acks');
  for (let i = 0; i < 100 && store.writes === before; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(store.writes, before + 1);
  const file = JSON.parse(await readFile(store.file, 'utf8'));
  t.same(file.counters, { acks: 1 });
  await store.close();
});

t.test('close flushes the last change', async (t) => {
  const dir = t.testdir();
  const a = await open(dir, 60_000);
  await a.putDevices([device('d1')]);
  await a.updateDevice('d1', { seq: 9 });
  await a.incrementCounter('acks');
  await a.close();
  const b = await open(dir);
  t.equal((await b.getDevice('d1'))?.seq, 9);
  t.same(await b.getCounters(), { acks: 1 });
  await b.close();
});

t.test('allocateSeq never hands out a seq twice, even across a crash right after it', async (t) => {
  const dir = t.testdir();
  // A long window: only the write-through can have put the seq on disk.
  const a = await open(dir, 60_000);
  t.equal(await a.allocateSeq('g1'), 1);
  t.equal(await a.allocateSeq('g1'), 2);
  t.equal(await a.allocateSeq('g2'), 1, 'each group has its own seq');
  // No flush, no close: a second instance on the same dir is what a restart after a crash sees.
  const b = await open(dir, 60_000);
  t.equal(await b.allocateSeq('g1'), 3);
  const c = await open(dir, 60_000);
  t.equal(await c.allocateSeq('g1'), 4);
  t.equal(await c.allocateSeq('g1', 41), 42, 'above lifts the seq past what devices already hold');
  t.equal(await c.allocateSeq('g1', 10), 43, 'and never lowers it');
  const several = await Promise.all([c.allocateSeq('g3'), c.allocateSeq('g3'), c.allocateSeq('g3')]);
  t.same(several, [1, 2, 3], 'concurrent allocations are distinct');
  const d = await open(dir, 60_000);
  t.equal(await d.allocateSeq('g3'), 4);
  await t.rejects(c.allocateSeq(''), TypeError);
  await t.rejects(c.allocateSeq('g1', -1), RangeError);
  for (const s of [c, d]) await s.close();
});

t.test('a corrupt file is refused and left untouched', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['truncated JSON', '{"version":1,"devices":[{"id":"d1","gro', 'PW_STORE_CORRUPT'],
    ['empty file', '', 'PW_STORE_CORRUPT'],
    ['wrong shape', '{"version":1,"devices":{},"bundles":[],"seq":{},"baselines":{},"rollouts":[],"telemetry":null,"counters":{}}', 'PW_STORE_CORRUPT'],
    ['no version', '{"devices":[]}', 'PW_STORE_CORRUPT'],
    ['newer schema', '{"version":2,"devices":[]}', 'PW_STORE_VERSION'],
  ];
  for (const [name, text, code] of cases) {
    const dir = t.testdir();
    const file = join(dir, STORE_FILENAME);
    await writeFile(file, text);
    const store = new LowdbStore({ dir, windowMs: 0 });
    const err = await store.load().then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(err instanceof StoreError, `${name}: refused`);
    t.equal((err as StoreError).code, code, `${name}: ${code}`);
    t.match((err as StoreError).message, file, `${name}: the error names the file`);
    await t.rejects(store.putDevices([device('d1')]), { code: 'PW_STORE_NOT_LOADED' }, `${name}: unusable`);
    await store.close();
    t.equal(await readFile(file, 'utf8'), text, `${name}: the file is untouched`);
    t.same(await readdir(dir), [STORE_FILENAME], `${name}: nothing else was written`);
  }
});

t.test('pagination returns each device exactly once, in id order', async (t) => {
  const store = await open(t.testdir(), 60_000);
  const ids = scrambledIds(2_500);
  await store.putDevices(ids.map((id, i) => device(id, i % 2 === 0 ? 'even' : 'odd', { model: i % 5 === 0 ? 'dl-300' : 'dl-200' })));
  const all: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: { items: DeviceRecord[]; next: string | null } = await store.listDevices({ limit: 1000, cursor });
    all.push(...page.items.map((d) => d.id));
    cursor = page.next;
    pages++;
  } while (cursor !== null);
  t.equal(pages, 3);
  t.same(all, [...ids].sort(), 'every id once, sorted');

  const exact = await store.listDevices({ limit: 500, cursor: [...ids].sort()[1999] });
  t.equal(exact.items.length, 500);
  t.equal(exact.next, null, 'no empty last page: next is null when nothing follows');

  const odd: string[] = [];
  cursor = null;
  do {
    const page: { items: DeviceRecord[]; next: string | null } = await store.listDevices({ group: 'odd', model: 'dl-200', limit: 7, cursor });
    odd.push(...page.items.map((d) => d.id));
    cursor = page.next;
  } while (cursor !== null);
  const expected = ids.filter((_, i) => i % 2 === 1 && i % 5 !== 0).sort();
  t.same(odd, expected, 'filters page the same way');

  // Inserts between pages: an id behind the cursor is not seen again, one ahead of it is.
  const first = await store.listDevices({ limit: 10 });
  await store.putDevices([device('dev-000000a'), device('zzz')]);
  await store.deleteDevice(first.items[9].id);
  const rest = await store.listDevices({ limit: 1000, cursor: first.next });
  t.equal(rest.items[0].id, 'dev-000010', 'an inserted id lands in order');
  const tail: string[] = [];
  cursor = first.next;
  do {
    const page: { items: DeviceRecord[]; next: string | null } = await store.listDevices({ limit: 1000, cursor });
    tail.push(...page.items.map((d) => d.id));
    cursor = page.next;
  } while (cursor !== null);
  t.equal(tail.at(-1), 'zzz');
  t.equal(new Set(tail).size, tail.length);
  t.notOk(tail.includes('dev-000000a'));

  // A bulk insert after the index was built: the index is rebuilt, in order.
  const bulk = Array.from({ length: 100 }, (_, i) => `bulk-${String(99 - i).padStart(3, '0')}`);
  await store.putDevices(bulk.map((id) => device(id)));
  const bulkPage = await store.listDevices({ limit: 100, cursor: 'bulk-' });
  t.same(bulkPage.items.map((d) => d.id), [...bulk].sort());

  await t.rejects(store.listDevices({ limit: 1001 }), RangeError);
  await t.rejects(store.listDevices({ limit: 0 }), RangeError);
  await store.close();
});

t.test('the file always parses while writes are happening', async (t) => {
  const dir = t.testdir();
  const store = await open(dir, 0);
  await store.putDevices(scrambledIds(3_000).map((id) => device(id)));
  const file = store.file;
  let reads = 0;
  let writing = true;
  const reader = (async () => {
    while (writing) {
      const text = await readFile(file, 'utf8');
      JSON.parse(text); // throws, failing the test, on a partial file
      reads++;
    }
  })();
  const before = store.writes;
  for (let i = 0; i < 40; i++) {
    await store.incrementCounter('acks');
    await store.flush();
  }
  writing = false;
  await reader;
  t.equal(store.writes - before, 40);
  t.ok(reads > 0, `${reads} reads during 40 writes all parsed`);
  t.same(await readdir(dir), [STORE_FILENAME], 'no temp file left behind');
  await store.close();
});

t.test('device updates keep history bounded and the group index true', async (t) => {
  const store = await open(t.testdir(), 60_000);
  await store.putDevices([device('d1', 'g1'), device('d2', 'g1')]);
  for (let i = 0; i < 30; i++) {
    await store.updateDevice('d1', (d) => {
      d.history.push({ at: i, bundleId: 'b', seq: i, event: 'sent' });
      d.telemetry.push({ at: i });
    });
  }
  const d1 = (await store.getDevice('d1')) as DeviceRecord;
  t.equal(d1.history.length, 20);
  t.equal(d1.history[0].at, 10, 'the oldest entries go first');
  t.equal(d1.telemetry.length, 20);

  await store.updateDevice('d2', { group: 'g2' });
  t.same(await store.devicesInGroup('g1'), ['d1']);
  t.same(await store.devicesInGroup('g2'), ['d2']);
  t.same((await store.listDevices({ group: 'g2' })).items.map((d) => d.id), ['d2']);

  await t.rejects(store.updateDevice('d1', { id: 'd9' } as never), TypeError);
  t.equal(d1.id, 'd1', 'the id is restored');
  t.equal(await store.updateDevice('nope', { seq: 1 }), null);
  await store.close();
});

t.test('revocation and deletion are on disk when they return', async (t) => {
  const dir = t.testdir();
  const a = await open(dir, 60_000);
  await a.putDevices([device('d1'), device('d2')]);
  t.match(await a.revokeDevice('d1', 1000), { revokedAt: 1000 });
  t.match(await a.revokeDevice('d1', 2000), { revokedAt: 1000 }, 'the first revocation time stays');
  t.equal(await a.deleteDevice('d2'), true);
  t.equal(await a.deleteDevice('d2'), false);
  t.equal(await a.revokeDevice('d2', 1), null);
  const b = await open(dir, 60_000); // a not closed: as after a crash
  t.equal((await b.getDevice('d1'))?.revokedAt, 1000);
  t.equal(await b.getDevice('d2'), null);
  t.same(await b.devicesInGroup('door-locks'), ['d1']);
  await b.close();
});

t.test('bundles: an id is stored once, listed by id and group', async (t) => {
  const dir = t.testdir();
  const a = await open(dir, 60_000);
  await a.putBundle(bundle('bb', 'g1', 1));
  await a.putBundle(bundle('aa', 'g2', 1));
  await a.putBundle(bundle('cc', 'g1', 2));
  t.same(await a.putBundle(bundle('aa', 'g2', 1)), { ok: false, code: 'PW_STORE_DUPLICATE_ID', ids: ['aa'] });
  const b = await open(dir, 60_000); // durable on return
  t.same((await b.listBundles()).items.map((x) => x.id), ['aa', 'bb', 'cc']);
  const p1 = await b.listBundles({ group: 'g1', limit: 1 });
  t.same([p1.items.map((x) => x.id), p1.next], [['bb'], 'bb']);
  const p2 = await b.listBundles({ group: 'g1', limit: 1, cursor: p1.next });
  t.same([p2.items.map((x) => x.id), p2.next], [['cc'], null]);
  await b.close();
});

t.test('a store is unusable before load and after close', async (t) => {
  const store = new LowdbStore({ dir: t.testdir() });
  await t.rejects(store.getDevice('d1'), { code: 'PW_STORE_NOT_LOADED' });
  await store.load();
  await t.rejects(store.load(), /load\(\) may be called once/);
  await store.close();
  await t.rejects(store.getDevice('d1'), { code: 'PW_STORE_CLOSED' });
  await store.close(); // twice is harmless
  await store.flush();
});

/** An adapter whose writes the test completes or fails by hand, to watch the scheduling. */
class HeldFile implements Adapter<StoreFile> {
  saved: string | null = null;
  pending: Array<{ text: string; done: (err?: Error) => void }> = [];
  maxInFlight = 0;
  async read(): Promise<StoreFile | null> {
    return this.saved === null ? null : JSON.parse(this.saved);
  }
  write(data: StoreFile): Promise<void> {
    const text = JSON.stringify(data);
    return new Promise((resolve, reject) => {
      this.pending.push({
        text,
        done: (err) => {
          if (err) return reject(err);
          this.saved = text;
          resolve();
        },
      });
      this.maxInFlight = Math.max(this.maxInFlight, this.pending.length);
    });
  }
  /** Completes the oldest write. */
  finish(err?: Error): void {
    const w = this.pending.shift();
    if (!w) throw new Error('no write in flight');
    w.done(err);
  }
}

const tick = () => new Promise((r) => setImmediate(r));
/** Waits (a few ms at a time, 1 s at most) until a write reaches the adapter. */
async function writeStarted(held: HeldFile): Promise<void> {
  for (let i = 0; i < 500 && held.pending.length === 0; i++) await new Promise((r) => setTimeout(r, 2));
}

t.test('one write at a time; changes during a write get one more write after it', async (t) => {
  const held = new HeldFile();
  const store = new LowdbStore({ adapter: held, name: 'held', windowMs: 0 });
  const loading = store.load();
  await tick();
  held.finish();
  await loading;

  await store.incrementCounter('acks');
  const flushed = store.flush();
  await tick();
  t.equal(held.pending.length, 1, 'first write in flight');
  for (let i = 0; i < 100; i++) await store.incrementCounter('acks');
  await tick();
  t.equal(held.pending.length, 1, 'no second write while one is in flight');
  held.finish();
  await flushed;
  t.same(JSON.parse(held.saved as string).counters, { acks: 1 }, 'the first write held the state at its start');
  await writeStarted(held);
  t.equal(held.pending.length, 1, 'one more write for the changes made during the first');
  held.finish();
  await tick();
  t.same(JSON.parse(held.saved as string).counters, { acks: 101 });
  t.equal(held.maxInFlight, 1);
  t.equal(store.writes, 3);
  await store.close();
});

t.test('a failed write rejects its waiters, is retried, and loses nothing', async (t) => {
  const held = new HeldFile();
  const warnings: string[] = [];
  const store = new LowdbStore({ adapter: held, name: 'held', windowMs: 0, onWriteError: (e) => warnings.push(e.message) });
  const loading = store.load();
  await tick();
  held.finish();
  await loading;

  const seq = store.allocateSeq('g1');
  await tick();
  held.finish(new Error('ENOSPC: no space left on device'));
  await t.rejects(seq, /ENOSPC/, 'the caller of a durable operation hears of the failure');
  t.same(warnings, [], 'an awaited failure is not reported twice');

  const next = store.allocateSeq('g1');
  await tick();
  held.finish();
  t.equal(await next, 2, 'the seq of the failed write is not handed out again');

  await store.incrementCounter('acks'); // nobody awaits this one
  await writeStarted(held);
  held.finish(new Error('EIO'));
  await tick();
  t.same(warnings, ['EIO'], 'a failure nobody awaits is reported');
  await writeStarted(held);
  t.equal(held.pending.length, 1, 'and retried');
  held.finish();
  await store.close();
  t.same(JSON.parse(held.saved as string).counters, { acks: 1 });
  t.same(JSON.parse(held.saved as string).seq, { g1: 2 });
});

t.test('each malformed part of a file is refused by name', async (t) => {
  const good = { version: 1, devices: [], bundles: [], seq: {}, baselines: {}, rollouts: [], telemetry: null, counters: {} };
  const dev = device('d1');
  const cases: Array<[Record<string, unknown> | unknown[], RegExp]> = [
    [[], /a JSON object at the top/],
    [{ ...good, version: 0 }, /schema version/],
    [{ ...good, bundles: {} }, /"bundles" to be an array/],
    [{ ...good, rollouts: null }, /"rollouts" to be an array/],
    [{ ...good, seq: [] }, /"seq" to be an object/],
    [{ ...good, baselines: 'b1' }, /"baselines" to be an object/],
    [{ ...good, counters: null }, /"counters" to be an object/],
    [{ ...good, telemetry: [] }, /"telemetry" to be an object or null/],
    [{ ...good, devices: [{ ...dev, history: null }] }, /devices\[0\] is not a device record/],
    [{ ...good, devices: [dev, dev] }, /devices\[1\]: device id "d1" appears twice/],
    [{ ...good, bundles: [{ id: 'b1' }] }, /bundles\[0\] is not a bundle record/],
    [{ ...good, bundles: [bundle('b1'), bundle('b1')] }, /bundles\[1\]: bundle id "b1" appears twice/],
    [{ ...good, rollouts: [{ id: 'r1' }] }, /rollouts\[0\] is not a rollout record/],
    [{ ...good, rollouts: [{ id: 'r1', state: 'held' }, { id: 'r1', state: 'held' }] }, /rollouts\[1\]: rollout id "r1" appears twice/],
    [{ ...good, seq: { g1: -1 } }, /seq\["g1"\] is not an integer/],
    [{ ...good, baselines: { g1: 7 } }, /baselines\["g1"\] is not a bundle id/],
    [{ ...good, counters: { acks: '3' } }, /counters\["acks"\] is not a number/],
  ];
  for (const [data, message] of cases) {
    const dir = t.testdir();
    const text = JSON.stringify(data);
    await writeFile(join(dir, STORE_FILENAME), text);
    const store = new LowdbStore({ dir });
    await t.rejects(store.load(), { code: 'PW_STORE_CORRUPT', message }, String(message));
    await store.close();
    t.equal(await readFile(join(dir, STORE_FILENAME), 'utf8'), text);
  }
});

t.test('a data file that cannot be read is an I/O fault, not a fresh start', async (t) => {
  const dir = t.testdir({ [STORE_FILENAME]: {} }); // a directory where the file should be
  const store = new LowdbStore({ dir });
  await t.rejects(store.load(), { code: 'EISDIR' });
  await store.close();
});

t.test('programmer errors throw with what was expected', async (t) => {
  t.throws(() => new LowdbStore({ dir: t.testdir(), windowMs: -1 }), RangeError);
  const store = await open(t.testdir(), 60_000);
  await t.rejects(store.putDevices('d1' as never), /expected an array of devices/);
  await t.rejects(store.putDevices([null as never]), /records\[0\]: expected a device record, got null/);
  await t.rejects(store.putDevices([device('d0'), 5 as never]), /records\[1\]: expected a device record, got number/);
  await t.rejects(store.putDevices([device('')]), /records\[0\]: expected a non-empty string id/);
  await t.rejects(store.putDevices([device('d1', '')]), /expected a non-empty string group/);
  await t.rejects(store.putDevices([{ ...device('d1'), history: undefined } as never]), /expected history and telemetry arrays/);
  await t.rejects(store.putBundle({} as never), /putBundle: expected a bundle with a non-empty string id/);
  await t.rejects(store.putRollout({ state: 'running' } as never), /putRollout: expected a rollout with a non-empty string id/);
  await t.rejects(store.incrementCounter('acks', NaN), RangeError);
  t.same(await store.putDevices([]), { ok: true, count: 0 });
  t.equal(await store.getBundle('nope'), null);
  t.equal(await store.getRollout('nope'), null);
  t.same(await store.devicesInGroup('nope'), []);
  await store.close();
});

t.test('a mutator that throws still leaves the record, its group and the file consistent', async (t) => {
  const dir = t.testdir();
  const a = await open(dir, 60_000);
  await a.putDevices([device('d1', 'g1')]);
  await t.rejects(
    a.updateDevice('d1', (d) => {
      d.group = 'g2';
      throw new Error('engine bug');
    }),
    /engine bug/,
  );
  t.same(await a.devicesInGroup('g1'), [], 'a group emptied by a move is gone');
  t.same(await a.devicesInGroup('g2'), ['d1']);
  await a.close();
  const b = await open(dir);
  t.equal((await b.getDevice('d1'))?.group, 'g2');
  await b.close();
});

t.test('a record JSON cannot hold fails the write until it is replaced', async (t) => {
  const warnings: Error[] = [];
  const store = new LowdbStore({ dir: t.testdir(), windowMs: 0, onWriteError: (e) => warnings.push(e) });
  await store.load();
  await store.putRollout({ id: 'r1', state: 'running', n: 1n });
  await t.rejects(store.flush(), /BigInt/);
  await store.putRollout({ id: 'r1', state: 'running', n: 1 });
  await store.flush();
  await store.close();
  t.same(warnings, []);
});

t.test('a failing write reporter does not stop the retries; the default one warns', async (t) => {
  const held = new HeldFile();
  const store = new LowdbStore({
    adapter: held,
    name: 'held',
    windowMs: 0,
    onWriteError: () => {
      throw new Error('reporter bug');
    },
  });
  const loading = store.load();
  await writeStarted(held);
  held.finish();
  await loading;
  await store.incrementCounter('acks');
  await writeStarted(held);
  held.finish(new Error('EIO'));
  await tick();
  await writeStarted(held);
  t.equal(held.pending.length, 1, 'retried');
  held.finish();
  await store.close();

  const held2 = new HeldFile();
  const quiet = new LowdbStore({ adapter: held2, name: 'held2', windowMs: 0 });
  const loading2 = quiet.load();
  await writeStarted(held2);
  held2.finish();
  await loading2;
  const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
  await quiet.incrementCounter('acks');
  await writeStarted(held2);
  held2.finish(new Error('EIO'));
  t.match((await warned).message, /pinwave store: writing held2 failed, will retry: EIO/);
  await writeStarted(held2);
  held2.finish();
  await quiet.close();
});
