// Where a simulated device keeps its flash: a bare trust state (a device without a health check, as
// before) or the whole record of a health-checked one, each loading as either; a corrupt record is
// named, never half-used.
import t from 'tap';
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
