// The conformance suite every Store of changes passes (docs/storage.md), in the habit of
// aedes-persistence's abstract.js: memory.test, embedded.test and postgres.test each call
// `conformance(t, backend)` with their own way to make a fresh backing and a store on it.
import type { Test } from 'tap';
import { hashDeviceToken } from '../../../gateway/credentials.ts';
import { createRollout as engineCreate } from '../../../gateway/rollout/engine.ts';
import type { Applied, Change, ChangeStore, Refused } from '../../../gateway/store/changes.ts';
import { compactFinishedRollouts } from '../../../gateway/store/compaction.ts';
import { defineCollection } from '../../../gateway/store/collections.ts';
import { rolloutCreate } from '../../../gateway/store/rollout-records.ts';
import { DEVICE_HISTORY_LIMIT, DEVICE_TELEMETRY_LIMIT, newDeviceRecord, type BundleRecord, type DeviceRecord } from '../../../gateway/store/types.ts';

export interface Backing {
  /** A new store on this backing, not yet opened: a second one is what a restart sees. */
  store(): ChangeStore;
}

export interface Backend {
  name: string;
  /** A fresh, empty backing (a directory, a database), removed when `t` ends. */
  backing(t: Test): Promise<Backing>;
}

// One hash for every test device: hashing is not what is tested here.
const HASH = hashDeviceToken('conformance-token');
const T0 = 1_700_000_000_000;
export const hex = (n: number) => n.toString(16).padStart(64, '0');

export function device(id: string, group = 'door-locks', extra: Partial<DeviceRecord> = {}): DeviceRecord {
  return { ...newDeviceRecord({ id, group, model: 'dl-200', firmware: '1.4.2', tokenHash: HASH, createdAt: T0 }), ...extra };
}

export function bundle(n: number, group = 'door-locks', seq = n): BundleRecord {
  return { id: hex(n), group, seq, size: 180, createdAt: T0 + n, bytes: '0oRDoQEnoFhA', createdBy: 'ops' };
}

export const provision = (...ds: DeviceRecord[]): Change[] => ds.map((d) => ({ type: 'device.provision', device: d }));

/** A rollout as the engine makes it, as one `rollout.create` change. */
export function rollout(id: string, deviceIds: string[], bundleN = 2, waves: Array<{ size: number | string }> = [{ size: '50%' }, { size: '100%' }]) {
  const c = engineCreate({ id, bundle: { id: hex(bundleN), seq: bundleN, group: 'door-locks' }, target: { group: 'door-locks' }, deviceIds, plan: { waves }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return { engine: c.rollout, change: rolloutCreate({ ...c.rollout, createdBy: 'alice', previousBundle: null }) };
}

function ok(t: Test, r: Applied, what: string): number[] {
  if (!r.ok) t.fail(`${what}: refused ${r.code} ${r.message}`);
  return r.ok ? r.seqs : [];
}

const ids = (n: number, prefix = 'dev-') => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(5, '0')}`);

/** Ids in a scrambled but reproducible order, so an index that merely kept insertion order fails. */
function scrambled(list: string[]): string[] {
  const out = [...list];
  let s = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export function conformance(t: Test, backend: Backend): void {
  const open = async (b: Backing) => {
    const s = b.store();
    await s.open();
    return s;
  };
  /** A store on a fresh backing, closed when the test ends. */
  const fresh = async (t: Test) => {
    // Registered before the backing's own clean-up, so the store is closed before its backing goes.
    let s: ChangeStore | null = null;
    t.teardown(() => s?.close());
    const b = await backend.backing(t);
    s = await open(b);
    return { b, s };
  };

  t.test(`${backend.name}: what is applied reads back, as copies`, async (t) => {
    const { s } = await fresh(t);
    const d1 = device('d1', 'g1', { keyEpoch: 2 });
    const change: Change[] = provision(d1, device('d2', 'g2'));
    t.same(await s.apply(change), { ok: true, seqs: [] });
    d1.model = 'changed after apply';
    t.same(await s.getDevice('d1'), device('d1', 'g1', { keyEpoch: 2 }), 'the store copied what apply took');
    const got = (await s.getDevice('d1'))!;
    got.seq = 99;
    got.history.push({ at: 1, bundleId: hex(1), seq: 1, event: 'sent' });
    t.same(await s.getDevice('d1'), device('d1', 'g1', { keyEpoch: 2 }), 'what a read returned is the caller’s');
    t.same(await s.getDevices(['d2', 'nope', 'd1']), [device('d2', 'g2'), null, device('d1', 'g1', { keyEpoch: 2 })], 'a batch read answers in the order asked, null for unknown ids');
    t.equal(await s.getDevice('nope'), null);
    ok(t, await s.apply([{ type: 'device.patch', id: 'd2', set: { seq: 4, bundleId: hex(4), lastSeen: T0 + 5, model: 'dl-300', revokedAt: T0 + 6 } }]), 'patch');
    t.match(await s.getDevice('d2'), { seq: 4, bundleId: hex(4), lastSeen: T0 + 5, model: 'dl-300', revokedAt: T0 + 6, group: 'g2' });
    ok(t, await s.apply([{ type: 'device.delete', id: 'd2' }]), 'delete');
    t.equal(await s.getDevice('d2'), null);
    t.same(await s.apply([{ type: 'device.delete', id: 'd2' }]), { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['d2'], message: 'no such device: "d2"' }, 'deleting twice names the missing device');
  });

  t.test(`${backend.name}: a bulk provision with a known or repeated id stores nothing and names the ids`, async (t) => {
    const { b, s } = await fresh(t);
    ok(t, await s.apply(provision(device('d1'))), 'first');
    const r = (await s.apply(provision(device('d2'), device('d1'), device('d3'), device('d3')))) as Refused;
    t.equal(r.ok, false);
    t.equal(r.code, 'PW_STORE_DUPLICATE_ID');
    t.same(r.ids, ['d1', 'd3'], 'names an id already stored and one given twice');
    t.same(await s.getDevices(['d2', 'd3']), [null, null], 'the new ids in the batch were not stored');
    t.same((await s.listDevices()).items.map((d) => d.id), ['d1']);
    await s.close();
    const again = await open(b);
    t.same((await again.listDevices()).items.map((d) => d.id), ['d1'], 'nor after a restart');
    await again.close();
  });

  t.test(`${backend.name}: a batch is atomic: one bad change and nothing of it happens`, async (t) => {
    const { b, s } = await fresh(t);
    ok(t, await s.apply(provision(device('d1'))), 'provision');
    const bad: Change[] = [
      { type: 'device.provision', device: device('d2') },
      { type: 'counter.add', name: 'acks', by: 1 },
      { type: 'device.patch', id: 'd1', set: { seq: 3 } },
      { type: 'device.patch', id: 'ghost', set: { seq: 3 } },
    ];
    t.match(await s.apply(bad), { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['ghost'] }, 'a change naming an unknown device refuses the batch');
    await t.rejects(
      s.apply([{ type: 'device.provision', device: device('d3') }, { type: 'device.patch', id: 'd1', set: { seq: -1 } }]),
      { name: 'TypeError', message: /changes\[1\]\.set\.seq/ },
      'a malformed change is a TypeError naming it',
    );
    await t.rejects(s.apply([{ type: 'device.provision', device: { ...device('../x') } }]), { name: 'TypeError', message: /device id may hold only/ });
    await t.rejects(s.apply([{ type: 'device.provision', device: { ...device('d4'), tokenHash: 'plain' } }]), { name: 'TypeError', message: /tokenHash/ });
    await t.rejects(s.apply([{ type: 'nope' } as unknown as Change]), TypeError);
    await t.rejects(s.apply([]), TypeError);
    t.same(await s.getDevices(['d2', 'd3', 'd4']), [null, null, null]);
    t.equal((await s.getDevice('d1'))!.seq, null);
    t.same(await s.getCounters(), {});
    await s.close();
    const again = await open(b);
    t.same((await again.listDevices()).items.map((d) => d.id), ['d1'], 'a refused batch never appears later');
    t.same(await again.getCounters(), {});
    await again.close();
  });

  t.test(`${backend.name}: everything committed comes back after a restart`, async (t) => {
    const b = await backend.backing(t);
    const a = await open(b);
    const all = ids(6);
    const history = { at: T0 + 1, rolloutId: 'r1', bundleId: hex(2), seq: 2, event: 'rejected' as const, reason: 'weak_pin_set' };
    const report = { at: T0 + 2, hostname: 'api.example.com', port: 443, servedPins: ['sha256/abc'], count: 3 };
    const r = rollout('r1', all);
    ok(t, await a.apply([...provision(...all.map((id) => device(id))), { type: 'bundle.put', bundle: bundle(1) }, { type: 'bundle.put', bundle: bundle(2) }]), 'fleet');
    const seqs = ok(t, await a.apply([{ type: 'group.allocateSeq', group: 'door-locks' }, { type: 'group.allocateSeq', group: 'door-locks' }, { type: 'group.baseline', group: 'door-locks', bundleId: hex(1) }]), 'group');
    t.same(seqs, [1, 2]);
    ok(t, await a.apply([r.change]), 'rollout');
    const member = all[0];
    ok(
      t,
      await a.apply([
        { type: 'rollout.patch', id: 'r1', set: { state: 'running', startedAt: T0 + 1 } },
        { type: 'rollout.decision', id: 'r1', decision: { at: T0 + 1, actor: 'alice', action: 'start', reason: 'operator', from: 'pending', to: 'running' } },
        { type: 'rollout.wave', id: 'r1', wave: 0, set: { state: 'active', startedAt: T0 + 1, deadline: T0 + 3_600_000 }, add: { count: { pending: -1, rejected: 1 }, rejectedByReason: { weak_pin_set: 1 } } },
        { type: 'rollout.member', id: 'r1', device: member, status: 'rejected', reason: 'weak_pin_set', at: T0 + 1 },
        { type: 'device.patch', id: member, set: { lastSeen: T0 + 1, seq: 1, bundleId: hex(1) } },
        { type: 'device.history', id: member, entry: history },
        { type: 'device.telemetry', id: member, report },
        { type: 'telemetry.put', key: 'k1', bucket: bucket(3) },
        { type: 'counter.add', name: 'acks', by: 2 },
        { type: 'counter.add', name: 'acks', by: 1 },
        { type: 'item.put', collection: 'manifests', key: 'dl-200', value: { model: 'dl-200', keys: ['a', 'b'] } },
      ]),
      'ack',
    );
    const before = {
      devices: await a.listDevices({ limit: 1000 }),
      bundles: await a.listBundles(),
      group: await a.getGroup('door-locks'),
      rollout: await a.getRollout('r1'),
      members: await a.listMembers('r1'),
      telemetry: await a.listTelemetry(),
      counters: await a.getCounters(),
      item: await a.getItem('manifests', 'dl-200'),
    };
    await a.close();

    const b2 = await open(b);
    t.same(await b2.listDevices({ limit: 1000 }), before.devices, 'devices');
    t.same((await b2.getDevice(member))!.history, [history]);
    t.same((await b2.getDevice(member))!.telemetry, [report]);
    t.same(await b2.listBundles(), before.bundles, 'bundles');
    t.same(await b2.getGroup('door-locks'), { name: 'door-locks', seq: 2, baseline: hex(1) }, 'group seq and baseline');
    t.same(await b2.getRollout('r1'), before.rollout, 'the rollout header');
    const got = (await b2.getRollout('r1'))!;
    t.same(got.waves[0].count, { ...r.engine.waves[0].count, pending: r.engine.waves[0].count.pending - 1, rejected: 1 });
    t.same(got.waves[0].rejectedByReason, { weak_pin_set: 1 });
    t.same(got.waves.map((w) => w.memberCount), r.engine.waves.map((w) => w.members.length));
    t.equal(got.decisions.length, 1);
    t.same(await b2.listMembers('r1'), before.members, 'members');
    t.same(await b2.listTelemetry(), before.telemetry, 'telemetry');
    t.same(await b2.getCounters(), { acks: 3 }, 'counters');
    t.same(await b2.getItem('manifests', 'dl-200'), { model: 'dl-200', keys: ['a', 'b'] }, 'collections');
    await b2.close();
  });

  t.test(`${backend.name}: a seq is never handed out twice, across restarts and concurrent calls`, async (t) => {
    const b = await backend.backing(t);
    const a = await open(b);
    const alloc = async (s: ChangeStore, group: string, above?: number) => ok(t, await s.apply([{ type: 'group.allocateSeq', group, ...(above !== undefined && { above }) }]), 'alloc')[0];
    t.equal(await alloc(a, 'g1'), 1);
    t.equal(await alloc(a, 'g1'), 2);
    t.equal(await alloc(a, 'g2'), 1, 'each group has its own seq');
    await a.close();
    const b2 = await open(b);
    t.equal(await alloc(b2, 'g1'), 3, 'after a restart');
    t.equal(await alloc(b2, 'g1', 41), 42, 'above lifts the seq past what devices already hold');
    t.equal(await alloc(b2, 'g1', 10), 43, 'and never lowers it');
    const several = await Promise.all([alloc(b2, 'g3'), alloc(b2, 'g3'), alloc(b2, 'g3'), alloc(b2, 'g3')]);
    t.same([...several].sort((x, y) => x - y), [1, 2, 3, 4], 'concurrent allocations are distinct');
    t.same(several, [1, 2, 3, 4], 'and in the order apply was called');
    await t.rejects(b2.apply([{ type: 'group.allocateSeq', group: 'g1', seq: 7 }]), TypeError, 'a caller cannot choose the seq');
    await b2.close();
    const c = await open(b);
    t.equal(await alloc(c, 'g3'), 5);
    t.equal((await c.getGroup('g1'))!.seq, 43);
    t.equal(await c.getGroup('never'), null);
    t.same((await c.listGroups()).items.map((g) => [g.name, g.seq]), [['g1', 43], ['g2', 1], ['g3', 5]], 'groups in name order');
    t.same((await c.listGroups({ limit: 1, cursor: 'g1' })), { items: [{ name: 'g2', seq: 1, baseline: null }], next: 'g2' });
    await c.close();
  });

  t.test(`${backend.name}: pages hold each record once, in id order, filtered`, async (t) => {
    const { s } = await fresh(t);
    const all = scrambled(ids(1_234));
    const records = all.map((id, i) => device(id, i % 2 === 0 ? 'even' : 'odd', { model: i % 5 === 0 ? 'dl-300' : 'dl-200', seq: i % 3 === 0 ? 7 : null, bundleId: i % 3 === 0 ? hex(7) : null }));
    ok(t, await s.apply(provision(...records)), 'provision');
    const walk = async (q: Record<string, unknown>) => {
      const out: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { items: DeviceRecord[]; next: string | null } = await s.listDevices({ ...q, cursor, limit: 500 });
        out.push(...page.items.map((d) => d.id));
        cursor = page.next;
        pages++;
      } while (cursor !== null && pages < 100);
      return { out, pages };
    };
    const everything = await walk({});
    t.same(everything.out, [...all].sort(), 'every id once, sorted');
    t.equal(everything.pages, 3);
    const expect = (f: (d: DeviceRecord) => boolean) => records.filter(f).map((d) => d.id).sort();
    t.same((await walk({ group: 'even' })).out, expect((d) => d.group === 'even'));
    t.same((await walk({ group: 'odd', model: 'dl-300' })).out, expect((d) => d.group === 'odd' && d.model === 'dl-300'));
    t.same((await walk({ seq: 7 })).out, expect((d) => d.seq === 7));
    t.same((await walk({ seq: null })).out, expect((d) => d.seq === null));
    t.same((await walk({ bundleId: hex(7) })).out, expect((d) => d.bundleId === hex(7)), 'by the bundle devices report');
    t.same((await walk({ group: 'none' })).out, []);
    const exact = await s.listDevices({ group: 'even', limit: 617 });
    t.same([exact.items.length, exact.next], [617, null], 'a page that ends the listing says so, even when full');
    const one = await s.listDevices({ limit: 1, cursor: [...all].sort()[1232] });
    t.same([one.items.length, one.next], [1, null]);
    await t.rejects(s.listDevices({ limit: 0 }), RangeError);
    await t.rejects(s.listDevices({ limit: 1001 }), RangeError);

    ok(t, await s.apply([3, 1, 2].map((n) => ({ type: 'bundle.put', bundle: bundle(n, n === 2 ? 'other' : 'door-locks') }) as Change)), 'bundles');
    const bundles = await s.listBundles({ limit: 1 });
    t.same(bundles.items.map((x) => x.id), [hex(1)]);
    t.same((await s.listBundles({ cursor: bundles.next })).items.map((x) => x.id), [hex(2), hex(3)]);
    t.same((await s.listBundles({ group: 'door-locks' })).items.map((x) => x.id), [hex(1), hex(3)]);
    t.same(await s.apply([{ type: 'bundle.put', bundle: { ...bundle(1), seq: 9 } }]), { ok: false, code: 'PW_STORE_DUPLICATE_ID', ids: [hex(1)], message: `a bundle is immutable and this one is stored: "${hex(1)}"` });
    t.equal((await s.getBundle(hex(1)))!.seq, 1, 'a bundle is immutable');
  });

  t.test(`${backend.name}: rollouts: header, waves, members, decisions, in creation order`, async (t) => {
    const { s } = await fresh(t);
    const fleet = ids(40);
    ok(t, await s.apply(provision(...fleet.map((id) => device(id)))), 'fleet');
    const r2 = rollout('r-b', fleet.slice(0, 20));
    const r1 = rollout('r-a', fleet.slice(20), 3, [{ size: '100%' }]);
    ok(t, await s.apply([r2.change]), 'r-b first');
    ok(t, await s.apply([r1.change]), 'r-a second');
    t.same((await s.apply([r1.change])) as Refused, { ok: false, code: 'PW_STORE_DUPLICATE_ID', ids: ['r-a'], message: 'a rollout of this id exists: "r-a"' });
    t.same((await s.listRollouts()).items.map((r) => r.id), ['r-b', 'r-a'], 'in creation order, not id order');
    const first = await s.listRollouts({ limit: 1 });
    t.same([first.items.map((r) => r.id), first.next], [['r-b'], 'r-b']);
    t.same((await s.listRollouts({ cursor: 'r-b' })).items.map((r) => r.id), ['r-a']);
    ok(t, await s.apply([{ type: 'rollout.patch', id: 'r-a', set: { state: 'running', startedAt: T0 } }]), 'start');
    t.same((await s.listRollouts({ state: 'running' })).items.map((r) => r.id), ['r-a']);
    t.same((await s.listRollouts({ group: 'door-locks', state: 'pending' })).items.map((r) => r.id), ['r-b']);

    const wave0 = r2.engine.waves[0].members;
    const members = await s.getMembers('r-b', [wave0[1], 'not-a-member', wave0[0]]);
    t.same(members, [{ rolloutId: 'r-b', deviceId: wave0[1], wave: 0, ord: 1, status: 'pending', reason: null, at: null }, null, { rolloutId: 'r-b', deviceId: wave0[0], wave: 0, ord: 0, status: 'pending', reason: null, at: null }]);
    const page = await s.listMembers('r-b', { limit: 1000 });
    t.same(page.items.map((m) => m.deviceId), [...r2.engine.waves[0].members, ...r2.engine.waves[1].members].sort(), 'members in device id order');
    t.same((await s.listMembers('r-b', { wave: 1 })).items.map((m) => m.deviceId), [...r2.engine.waves[1].members].sort());
    ok(
      t,
      await s.apply([
        { type: 'rollout.member', id: 'r-b', device: wave0[0], status: 'sent', at: T0 + 1 },
        { type: 'rollout.member', id: 'r-b', device: wave0[0], status: 'applied', at: T0 + 2 },
        { type: 'rollout.wave', id: 'r-b', wave: 0, add: { count: { pending: -1, applied: 1 } } },
        { type: 'rollout.wave', id: 'r-b', wave: 0, set: { state: 'soaking', soakUntil: T0 + 9 } },
        { type: 'rollout.wave', id: 'r-b', wave: 1, add: { rejectedByReason: { expired: 2, replayed: 1 } } },
        { type: 'rollout.wave', id: 'r-b', wave: 1, add: { rejectedByReason: { expired: -2 } } },
      ]),
      'member and wave',
    );
    t.match((await s.getMembers('r-b', [wave0[0]]))[0], { status: 'applied', at: T0 + 2, reason: null }, 'the last status set wins');
    t.same((await s.listMembers('r-b', { status: 'applied' })).items.map((m) => m.deviceId), [wave0[0]]);
    const header = (await s.getRollout('r-b'))!;
    t.equal(header.waves[0].state, 'soaking');
    t.equal(header.waves[0].count.applied, 1);
    t.equal(header.waves[0].count.pending, r2.engine.waves[0].members.length - 1);
    t.same(header.waves[1].rejectedByReason, { replayed: 1 }, 'a tally that reaches 0 is dropped');
    t.same(await s.membershipsOf(fleet[0]).then((m) => m.map((x) => x.rolloutId)), ['r-b']);
    t.same(await s.membershipsOf(fleet[25]).then((m) => m.map((x) => x.rolloutId)), ['r-a']);
    t.same(await s.membershipsOf('nobody'), []);
    t.match(await s.apply([{ type: 'rollout.member', id: 'r-b', device: fleet[30], status: 'sent', at: 1 }]), { ok: false, code: 'PW_STORE_NOT_FOUND', ids: [fleet[30]] }, 'a device outside the rollout');
    t.match(await s.apply([{ type: 'rollout.wave', id: 'r-b', wave: 5, set: { swept: true } }]), { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['r-b#5'] });
    t.match(await s.apply([{ type: 'rollout.patch', id: 'r-zzz', set: { state: 'aborted' } }]), { ok: false, code: 'PW_STORE_NOT_FOUND', ids: ['r-zzz'] });
    const rollback = rollout('r-c', fleet.slice(0, 2), 4, [{ size: '100%' }]);
    ok(t, await s.apply([rollback.change, { type: 'rollout.patch', id: 'r-b', set: { rolledBackBy: 'r-c', state: 'aborted', endedAt: T0 + 5 } }]), 'rollback');
    t.same(await s.membershipsOf(fleet[0]).then((m) => m.map((x) => x.rolloutId)), ['r-c', 'r-b'], 'newest first');
    t.match(await s.getRollout('r-b'), { rolledBackBy: 'r-c', state: 'aborted', endedAt: T0 + 5, rollbackOf: null });
  });

  t.test(`${backend.name}: history and telemetry are capped, finished rollouts compacted`, async (t) => {
    const { b, s } = await fresh(t);
    const fleet = ids(10);
    ok(t, await s.apply(provision(...fleet.map((id) => device(id)))), 'fleet');
    for (let i = 0; i < DEVICE_HISTORY_LIMIT + 7; i++) {
      ok(t, await s.apply([
        { type: 'device.history', id: fleet[0], entry: { at: T0 + i, bundleId: hex(2), seq: 2, event: 'sent' } },
        { type: 'device.telemetry', id: fleet[0], report: { at: T0 + i, n: i } },
      ]), 'append');
    }
    const d = (await s.getDevice(fleet[0]))!;
    t.equal(d.history.length, DEVICE_HISTORY_LIMIT);
    t.equal(d.history[0].at, T0 + 7, 'the oldest were dropped');
    t.equal(d.history.at(-1)!.at, T0 + DEVICE_HISTORY_LIMIT + 6);
    t.equal(d.telemetry.length, DEVICE_TELEMETRY_LIMIT);
    t.equal(d.telemetry.at(-1)!.n, DEVICE_HISTORY_LIMIT + 6);

    const done = rollout('r-done', fleet.slice(0, 6), 2, [{ size: '100%' }]);
    const live = rollout('r-live', fleet.slice(6), 3, [{ size: '100%' }]);
    ok(t, await s.apply([done.change, live.change]), 'rollouts');
    const reached = fleet.slice(0, 4);
    ok(t, await s.apply([
      ...reached.map((id): Change => ({ type: 'rollout.member', id: 'r-done', device: id, status: 'applied', at: T0 + 1 })),
      ...reached.map((id): Change => ({ type: 'device.patch', id, set: { seq: 2, bundleId: hex(2) } })),
      { type: 'rollout.wave', id: 'r-done', wave: 0, add: { count: { pending: -4, applied: 4 } } },
      { type: 'rollout.decision', id: 'r-done', decision: { at: T0 + 2, actor: 'system', action: 'complete', reason: 'all_waves_passed', from: 'running', to: 'completed' } },
      { type: 'rollout.patch', id: 'r-done', set: { state: 'completed', endedAt: T0 + 2 } },
    ]), 'complete');
    t.match(await s.apply([{ type: 'rollout.compact', id: 'r-live', at: T0 + 3 }]), { ok: false, code: 'PW_STORE_CONFLICT', ids: ['r-live'] }, 'a running rollout is not compacted');
    const compacted = await compactFinishedRollouts(s, { now: T0 + 2 + 1000, olderThanMs: 1000 });
    t.same(compacted, ['r-done'], 'the helper compacts what finished long enough ago');
    t.same(await compactFinishedRollouts(s, { now: T0 + 2 + 1000, olderThanMs: 1000 }), [], 'and only once');
    const header = (await s.getRollout('r-done'))!;
    t.equal(header.compactedAt, T0 + 2 + 1000);
    t.equal(header.waves[0].count.applied, 4, 'its counts stay');
    t.equal(header.decisions.length, 1, 'its decisions stay');
    t.equal(header.waves[0].memberCount, 6);
    t.same(await s.listMembers('r-done'), { items: [], next: null }, 'its members are gone');
    t.same(await s.getMembers('r-done', [fleet[0]]), [null]);
    t.same(await s.membershipsOf(fleet[0]), []);
    t.match(await s.apply([{ type: 'rollout.member', id: 'r-done', device: fleet[0], status: 'failing', at: 1 }]), { ok: false, code: 'PW_STORE_CONFLICT' });
    t.same((await s.listDevices({ bundleId: header.bundle.id })).items.map((x) => x.id), reached, 'who it reached: the devices that report its bundle');
    await s.close();
    const again = await open(b);
    t.same((await again.listDevices({ bundleId: hex(2) })).items.map((x) => x.id), reached, 'after a restart too');
    t.same(await again.listMembers('r-done'), { items: [], next: null });
    t.equal((await again.listMembers('r-live')).items.length, 4);
    t.equal((await again.getDevice(fleet[0]))!.history.length, DEVICE_HISTORY_LIMIT);
    await again.close();
  });

  t.test(`${backend.name}: many batches in flight commit in order, and none is lost`, async (t) => {
    const { b, s } = await fresh(t);
    ok(t, await s.apply(provision(device('d1'))), 'device');
    const order: number[] = [];
    const n = 300;
    const all = Array.from({ length: n }, (_, i) =>
      s
        .apply(
          i === 5
            ? [{ type: 'device.provision', device: device('d2') }]
            : [
                { type: 'counter.add', name: 'acks', by: 1 },
                { type: 'device.history', id: i < 5 ? 'd1' : 'd2', entry: { at: T0 + i, bundleId: hex(1), seq: i, event: 'applied' } },
                { type: 'device.patch', id: 'd1', set: { seq: i } },
              ],
          { durable: i % 7 !== 0 },
        )
        .then((r) => {
          order.push(i);
          return r;
        }),
    );
    const results = await Promise.all(all);
    t.ok(results.every((r) => r.ok), 'a batch may build on one still on its way to disk (d2 provisioned by batch 5)');
    t.same(order, Array.from({ length: n }, (_, i) => i), 'resolved in the order applied');
    t.equal((await s.getCounters()).acks, n - 1);
    t.equal((await s.getDevice('d1'))!.seq, n - 1, 'the last patch wins');
    t.same((await s.getDevice('d2'))!.history.map((h) => h.seq), Array.from({ length: DEVICE_HISTORY_LIMIT }, (_, i) => n - DEVICE_HISTORY_LIMIT + i), 'appends in order');
    await s.close();
    const again = await open(b);
    t.equal((await again.getCounters()).acks, n - 1, 'every batch that resolved is there after a restart');
    t.equal((await again.getDevice('d1'))!.seq, n - 1);
    await again.close();
  });

  t.test(`${backend.name}: telemetry buckets, counters and keyed collections`, async (t) => {
    const { s } = await fresh(t);
    ok(t, await s.apply([{ type: 'telemetry.put', key: 'b|x:443', bucket: bucket(1) }, { type: 'telemetry.put', key: 'a|x:443', bucket: bucket(2) }]), 'buckets');
    ok(t, await s.apply([{ type: 'telemetry.put', key: 'b|x:443', bucket: bucket(5) }]), 'replace');
    t.same((await s.listTelemetry()).items, [{ key: 'a|x:443', bucket: bucket(2) }, { key: 'b|x:443', bucket: bucket(5) }]);
    ok(t, await s.apply([{ type: 'telemetry.remove', key: 'a|x:443' }, { type: 'telemetry.remove', key: 'never' }]), 'remove');
    t.same((await s.listTelemetry()).items.map((x) => x.key), ['b|x:443']);

    ok(t, await s.apply([{ type: 'counter.add', name: 'x', by: 2.5 }, { type: 'counter.add', name: 'y', by: -1 }]), 'counters');
    t.same(await s.getCounters(), { x: 2.5, y: -1 });

    const sessions = defineCollection<{ operator: string; expiresAt: number }>('sessions', (v) => (typeof v.operator === 'string' && typeof v.expiresAt === 'number' ? null : 'expected { operator, expiresAt }'));
    ok(t, await s.apply([sessions.put('s2', { operator: 'bob', expiresAt: 2 }), sessions.put('s1', { operator: 'alice', expiresAt: 1 }), sessions.put('__proto__', { operator: 'eve', expiresAt: 3 })]), 'items');
    t.same(await sessions.get(s, 's1'), { operator: 'alice', expiresAt: 1 });
    t.same(await sessions.get(s, '__proto__'), { operator: 'eve', expiresAt: 3 }, 'any key is a key');
    t.same(await s.getItems('sessions', ['s2', 'nope']), [{ operator: 'bob', expiresAt: 2 }, null]);
    t.same((await sessions.list(s)).items.map((x) => x.key), ['__proto__', 's1', 's2']);
    ok(t, await s.apply([sessions.delete('s1')]), 'delete');
    t.equal(await sessions.get(s, 's1'), null);
    t.same((await s.listItems('sessions', { limit: 1 })).next, '__proto__');
    t.same(await s.listItems('nothing-here'), { items: [], next: null });
    t.same(await s.listCollections(), ['sessions']);
    t.throws(() => sessions.put('s3', { operator: 3 } as unknown as { operator: string; expiresAt: number }), { name: 'TypeError', message: /expected \{ operator, expiresAt \}/ });
    await t.rejects(s.apply([{ type: 'item.put', collection: 'Bad Name', key: 'k', value: {} }]), TypeError);
  });

  t.test(`${backend.name}: a lazy batch commits without a durable one to carry it`, async (t) => {
    const { s } = await fresh(t);
    ok(t, await s.apply(provision(device('d1'))), 'device');
    const r = await s.apply([{ type: 'device.patch', id: 'd1', set: { lastConnectAt: T0 + 1, lastSeen: T0 + 1 } }], { durable: false });
    t.same(r, { ok: true, seqs: [] });
    t.match(await s.getDevice('d1'), { lastConnectAt: T0 + 1 });
    const st = s.status();
    t.equal(st.writable, true);
    t.equal(st.lastError, null);
    t.ok(st.batches >= 2, 'status counts the batches');
    t.type(st.name, 'string');
  });

  t.test(`${backend.name}: a closed store refuses use`, async (t) => {
    const b = await backend.backing(t);
    const s = b.store();
    await t.rejects(s.getDevice('d1'), { code: 'PW_STORE_NOT_LOADED' });
    await s.open();
    await s.close();
    await t.rejects(s.apply(provision(device('d1'))), { code: 'PW_STORE_CLOSED' });
    await t.rejects(s.getDevice('d1'), { code: 'PW_STORE_CLOSED' });
  });
}

export function bucket(n: number) {
  return {
    bundleId: hex(2),
    host: 'api.example.com',
    port: 443,
    observedPin: 'sha256/abc',
    result: 'pin_mismatch' as const,
    rollouts: ['r1'],
    waves: [{ rolloutId: 'r1', wave: 0 }],
    groups: ['door-locks'],
    deviceIds: ['d1'],
    devicesCapped: false,
    failures: n,
    suppressed: 0,
    firstSeen: 1_700_000_000,
    lastSeen: 1_700_000_000 + n,
    createdAt: T0,
    updatedAt: T0 + n,
    owner: 'd1',
  };
}
