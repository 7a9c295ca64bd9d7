// Where a simulated device keeps its flash: a bare trust state (a device without a health check, as
// before) or the whole record of a health-checked one, each loading as either; a corrupt record is
// named, never half-used.
import t from 'tap';
import * as fs from 'node:fs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { emptyState, trustOf, type DeviceTrust } from '../../firmware-manifest/index.ts';
import { DirStateStore, MemoryStateStore } from '../../device-sim/state-store.ts';

const state = { ...emptyState('thermostats', [new Uint8Array(32).fill(1)]), seq: 3 };
const record: DeviceTrust = {
  active: { ...state, seq: 4 },
  window: { previous: state, openedAt: 100, deadline: 160, retrySeconds: 5, onUnverifiable: 'commit', checks: [{ host: 'api.example.com', port: 443, passed: false, dialable: true, attempts: 1, askedAt: 100, dueAt: 100 }] },
  outcome: null,
};

for (const [name, make] of [['memory', () => new MemoryStateStore()], ['directory', () => new DirStateStore(t.testdir())]] as const) {
  t.test(`${name}: a bare state and a health-checked record each load as either`, async (t) => {
    const store = make();
    t.equal(store.load('a'), null);
    t.equal(store.loadTrust('a'), null);
    store.save('a', state);
    t.same(store.loadTrust('a'), trustOf(state), 'a bare state is a record with no window');
    store.saveTrust('b', record);
    t.same(store.loadTrust('b'), record);
    t.same(store.load('b'), record.active, 'load() gives the active state: the provisional one during a window');
  });
}

t.test('a bare trust state is written as before, and a corrupt record is named with its file', async (t) => {
  const dir = t.testdir();
  const store = new DirStateStore(dir);
  store.save('a', state);
  t.same(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')), state, 'the file of a device without a health check is its trust state alone');
  store.saveTrust('b', record);
  t.same(Object.keys(JSON.parse(readFileSync(join(dir, 'b.json'), 'utf8'))), ['active', 'window', 'outcome']);
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ active: state, window: { previous: 'nope' }, outcome: null }));
  t.throws(() => store.loadTrust('c'), new RegExp(`device c: ${dir}/c\\.json: the stored trust state is neither a trust state nor a health-checked device's record`));
  writeFileSync(join(dir, 'd.json'), '{"seq":');
  t.throws(() => store.load('d'), /device d: cannot read its trust state/);
});

t.test('a directory store writes a record as docs/pin-safety.md tells firmware to: temp file, fsync, rename, fsync of the directory', async (t) => {
  const dir = t.testdir();
  const ops: string[] = [];
  const names = new Map<number, string>();
  const rel = (p: string) => (p === dir ? '<dir>' : p.slice(dir.length + 1));
  const io = {
    ...fs,
    openSync: ((path: string, flags: string, mode?: number) => {
      const fd = fs.openSync(path, flags, mode);
      names.set(fd, rel(path));
      ops.push(`open ${rel(path)}`);
      return fd;
    }) as typeof fs.openSync,
    writeSync: ((fd: number, ...rest: unknown[]) => {
      ops.push(`write ${names.get(fd)}`);
      return (fs.writeSync as (...a: unknown[]) => number)(fd, ...rest);
    }) as typeof fs.writeSync,
    fsyncSync: (fd: number) => {
      ops.push(`fsync ${names.get(fd)}`);
      fs.fsyncSync(fd);
    },
    closeSync: (fd: number) => {
      ops.push(`close ${names.get(fd)}`);
      fs.closeSync(fd);
    },
    renameSync: (from: fs.PathLike, to: fs.PathLike) => {
      ops.push(`rename ${rel(String(from))} ${rel(String(to))}`);
      fs.renameSync(from, to);
    },
  };
  const store = new DirStateStore(dir, io);
  store.saveTrust('a', record);
  t.same(ops, ['open a.json.tmp', 'write a.json.tmp', 'fsync a.json.tmp', 'close a.json.tmp', 'rename a.json.tmp a.json', 'open <dir>', 'fsync <dir>', 'close <dir>']);
  t.same(store.loadTrust('a'), record);
  t.equal(fs.statSync(join(dir, 'a.json')).mode & 0o777, 0o600, 'a trust state is the device owner\'s alone');
  ops.length = 0;
  store.saveCounter('a', 7);
  t.same(ops.slice(2), ['fsync a~counter.json.tmp', 'close a~counter.json.tmp', 'rename a~counter.json.tmp a~counter.json', 'open <dir>', 'fsync <dir>', 'close <dir>'], 'the report counter too');
});

t.test('a directory store whose write fails keeps the old record whole and leaves no temp file', async (t) => {
  const dir = t.testdir();
  let fail = false;
  const store = new DirStateStore(dir, {
    ...fs,
    fsyncSync: (fd: number) => {
      if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      fs.fsyncSync(fd);
    },
  });
  store.save('a', state);
  fail = true;
  t.throws(() => store.save('a', { ...state, seq: 9 }), /EIO/);
  t.same(store.load('a'), state, 'the old state stands');
  t.same(fs.readdirSync(dir), ['a.json']);
});
