// `pinwave store migrate`: a fleet moves from the embedded store's data dir to PostgreSQL whole,
// the data dir unchanged, and a database that holds a fleet already is refused.
import t from 'tap';
import { join } from 'node:path';
import { readdir, readFile } from 'node:fs/promises';
import { main } from '../../scripts/commands/store.ts';
import { UsageError, type Io } from '../../scripts/args.ts';
import { EmbeddedStore } from '../../gateway/store/embedded.ts';
import { PostgresStore } from '../../gateway/store/postgres.ts';
import { compactFinishedRollouts } from '../../gateway/store/compaction.ts';
import type { ChangeStore } from '../../gateway/store/changes.ts';
import { bucket, device, hex, provision, rollout } from '../gateway/store/fixtures/conformance.ts';
import { testDatabase } from '../gateway/store/fixtures/pg-database.ts';

function fakeIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, tty: false };
  return { io, out, err };
}

/** Everything a store answers, to compare two stores. */
async function everything(s: ChangeStore) {
  const rollouts = (await s.listRollouts({ limit: 1000 })).items;
  return {
    devices: (await s.listDevices({ limit: 1000 })).items,
    bundles: (await s.listBundles()).items,
    groups: (await s.listGroups()).items,
    rollouts,
    members: await Promise.all(rollouts.map(async (r) => (await s.listMembers(r.id, { limit: 1000 })).items)),
    telemetry: (await s.listTelemetry()).items,
    counters: await s.getCounters(),
    collections: await s.listCollections(),
    items: (await s.listItems('manifests')).items,
  };
}

t.test('store migrate copies a whole fleet into an empty database, and refuses one that holds a fleet', async (t) => {
  const dir = join(t.testdir(), 'data');
  const src = new EmbeddedStore({ dir });
  await src.open();
  const ids = Array.from({ length: 30 }, (_, i) => `lock-${i}`);
  await src.apply([...provision(...ids.map((id) => device(id))), { type: 'bundle.put', bundle: { id: hex(2), group: 'door-locks', seq: 2, size: 180, createdAt: 1, bytes: 'AAAA' } }]);
  await src.apply([{ type: 'group.allocateSeq', group: 'door-locks', above: 1 }, { type: 'group.baseline', group: 'door-locks', bundleId: hex(2) }]);
  const done = rollout('r-done', ids.slice(0, 10), 2, [{ size: '100%' }]);
  const live = rollout('r-live', ids.slice(10), 3);
  await src.apply([done.change, live.change]);
  await src.apply([
    { type: 'rollout.member', id: 'r-live', device: live.engine.waves[0].members[0], status: 'rejected', reason: 'expired', at: 5 },
    { type: 'rollout.wave', id: 'r-live', wave: 0, add: { count: { pending: -1, rejected: 1 }, rejectedByReason: { expired: 1 } } },
    { type: 'rollout.decision', id: 'r-live', decision: { at: 5, actor: 'alice', action: 'start', reason: 'operator', from: 'pending', to: 'running', wave: 0, waveFrom: 'pending', waveTo: 'active' } },
    // a member that never verified and then failed: what compaction keeps beyond the counts (docs/storage.md)
    { type: 'rollout.member', id: 'r-done', device: done.engine.waves[0].members[0], status: 'failing', reason: 'unverified', at: 6 },
    { type: 'rollout.wave', id: 'r-done', wave: 0, add: { count: { pending: -1, failing: 1 } } },
    { type: 'rollout.patch', id: 'r-done', set: { state: 'completed', endedAt: 10 } },
    { type: 'device.history', id: ids[3], entry: { at: 4, rolloutId: 'r-done', bundleId: hex(2), seq: 2, event: 'applied' } },
    { type: 'device.telemetry', id: ids[3], report: { at: 4, hostname: 'api.example.com', port: 443 } },
    { type: 'telemetry.put', key: 'k', bucket: bucket(2) },
    { type: 'counter.add', name: 'acks', by: 7 },
    { type: 'item.put', collection: 'manifests', key: 'dl-200', value: { model: 'dl-200' } },
  ]);
  t.same(await compactFinishedRollouts(src, { now: 100, olderThanMs: 0 }), ['r-done']);
  const want = await everything(src);
  t.equal((await src.getRollout('r-done'))!.waves[0].failingUnverified, 1, 'compacted with its failing-unverified member counted');
  await src.close();
  const files = async () => Object.fromEntries(await Promise.all((await readdir(dir)).map(async (n) => [n, (await readFile(join(dir, n))).toString('base64')])));
  const before = await files();

  const url = await testDatabase(t);
  const { io, out, err } = fakeIo();
  t.equal(await main(['migrate', '--from', dir, '--to', url], io), 0, err.join('\n'));
  t.match(out.join('\n'), /copied from .* 30 devices, 1 bundles, 1 groups, 2 rollouts \(1 compacted, 20 members\), 1 telemetry buckets, 1 counters, 1 collection items/);
  t.same(await files(), before, 'the data dir is not changed');

  const dst = new PostgresStore({ url });
  await dst.open();
  t.teardown(() => dst.close());
  t.same(await everything(dst), want, 'the database answers as the data dir did');
  t.same((await dst.apply([{ type: 'group.allocateSeq', group: 'door-locks' }])) as unknown, { ok: true, seqs: [3] }, 'the next seq follows the copied one');

  const again = fakeIo();
  t.equal(await main(['migrate', '--from', dir, '--to', url], again.io), 1);
  t.match(again.err.join('\n'), /already holds a fleet; refusing/);
});

t.test('store migrate: usage errors', async (t) => {
  const { io } = fakeIo();
  await t.rejects(main(['migrate', '--to', 'postgres://x@127.0.0.1/x'], io), UsageError);
  await t.rejects(main(['migrate', '--from', 'd'], io), UsageError);
  await t.rejects(main(['migrate', '--from', 'd', '--to', 'mysql://x'], io), { name: 'UsageError', message: /postgres:\/\// });
  await t.rejects(main(['nope'], io), UsageError);
  t.equal(await main([], io), 2);
});

t.test('store migrate: a --from that holds no store is refused by name, and is not created (docs/storage.md: DIR is only read)', async (t) => {
  const { io } = fakeIo();
  const root = t.testdir({ empty: {} });
  for (const from of [join(root, 'typo'), join(root, 'empty')]) {
    await t.rejects(main(['migrate', '--from', from, '--to', 'postgres://x@127.0.0.1:9/x'], io), { name: 'UsageError', message: /--from .*: no pinwave store there/ }, from);
  }
  t.same(await readdir(root), ['empty'], 'nothing was created');
  t.same(await readdir(join(root, 'empty')), [], 'nor written into the empty folder');
});
