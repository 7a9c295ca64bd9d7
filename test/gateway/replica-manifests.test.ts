// A firmware manifest pushed to any gateway replica counts on every replica (docs/architecture.md
// §8): the push is performed by the leader (so two pushes on two replicas cannot overwrite each
// other's set), and the followers read the pushed set again when the leader tells them, without a
// restart. Two replicas in this process, on one Mosquitto of the test's own and one database.
import t from 'tap';
import { join } from 'node:path';
import pg from 'pg';
import { harness, until } from './../fixtures/gateway.ts';
import { mosquitto } from '../fixtures/mosquitto.ts';
import { testDatabase } from './store/fixtures/pg-database.ts';
import { Gateway, type GatewayOptions } from '../../gateway/gateway.ts';
import type { FirmwareManifest } from '../../firmware-manifest/index.ts';

t.test('a manifest pushed on a follower is taken by the leader and reaches the other follower, with no restart', async (t) => {
  const url = await testDatabase(t);
  const b = await mosquitto(t);
  const broker = (id: string): GatewayOptions['broker'] => ({ url: b.url, username: b.gateway.username, password: b.gateway.password, clientId: `pinwave@${id}`, client: { reconnectMinMs: 50, reconnectMaxMs: 200 } });
  const h = await harness(t, { storeUrl: url, broker: broker('a') });
  const follower = (id: string) =>
    Gateway.start({ dataDir: join(h.dir, id), keyPath: h.keyPath, mqttPort: 0, now: h.clock.now, tickIntervalMs: 0, manifests: [h.manifest], storeUrl: url, broker: broker(id) });
  const gb = await follower('b');
  t.teardown(() => gb.stop());
  const gc = await follower('c');
  t.teardown(() => gc.stop());
  await until(() => h.gw.replica?.leader === true, 5000, 'a to lead');
  t.equal(gb.replica?.leader, false);
  t.equal(gc.replica?.leader, false);

  const door: FirmwareManifest = { model: 'door-7', firmware: '2.1.0', trustedKeys: h.manifest.trustedKeys, pins: [{ host: 'locks.example.com', pins: h.manifest.pins[0].pins }] };
  const models = (gw: Gateway) => gw.listManifests().map((m) => `${m.manifest.model} ${m.manifest.firmware} ${m.source}`);
  const pushed = await gb.pushManifest(door, 'fiona');
  t.equal(pushed.status, 'created');
  t.ok(models(gb).includes('door-7 2.1.0 pushed'), 'the replica it was pushed to knows it when it answers');
  t.ok(models(h.gw).includes('door-7 2.1.0 pushed'), 'so does the leader, which took it');
  await until(() => models(gc).includes('door-7 2.1.0 pushed'), 5000, 'the other follower to read it again');

  // Two pushes at once on two followers: both are kept (one set, written by one engine).
  const other = { ...door, firmware: '2.2.0' };
  const third = { ...door, firmware: '2.3.0' };
  await Promise.all([gb.pushManifest(other, 'fiona'), gc.pushManifest(third, 'gus')]);
  for (const gw of [h.gw, gb, gc]) await until(() => ['2.1.0', '2.2.0', '2.3.0'].every((f) => models(gw).includes(`door-7 ${f} pushed`)), 5000, 'all three pushes on every replica');
  t.equal((await h.gw.store.getItem('manifests', 'pushed'))?.entries.length, 3, 'and in the database');

  await t.rejects(gc.pushManifest({ model: 'door-7' }, 'gus'), { code: 'PW_INVALID' }, 'a bad manifest is refused through the leader with its code');
  const changed = { ...door, pins: [{ host: 'gates.example.com', pins: h.manifest.pins[0].pins }] };
  await t.rejects(gc.pushManifest(changed, 'gus', { replace: false }), { code: 'PW_CONFLICT' }, 'a push that must not replace is refused through the leader when the pushed one differs');
  t.ok(models(h.gw).includes('door-7 2.1.0 pushed') && h.gw.listManifests().find((m) => m.manifest.firmware === '2.1.0')?.manifest.pins[0].host === 'locks.example.com', 'and the one pushed first is kept');
});

/**
 * Two replicas: a leads, b follows; a took a push of door-7 2.1.0 and stopped before it told the
 * followers (its notification is coalesced over 100 ms): the set is in the database, and b never
 * read it. `beforeStop` runs just before a stops.
 */
async function leaderGoneUntold(t: Parameters<typeof testDatabase>[0] & { teardown(fn: () => unknown): void }, beforeStop: (url: string) => Promise<void> = async () => {}) {
  const url = await testDatabase(t);
  const b = await mosquitto(t);
  const broker = (id: string): GatewayOptions['broker'] => ({ url: b.url, username: b.gateway.username, password: b.gateway.password, clientId: `pinwave@${id}`, client: { reconnectMinMs: 50, reconnectMaxMs: 200 } });
  const h = await harness(t, { storeUrl: url, broker: broker('a') });
  const gb = await Gateway.start({ dataDir: join(h.dir, 'b'), keyPath: h.keyPath, mqttPort: 0, now: h.clock.now, tickIntervalMs: 0, manifests: [h.manifest], storeUrl: url, broker: broker('b'), replica: { retryMs: 100 } });
  t.teardown(() => gb.stop());
  await until(() => h.gw.replica?.leader === true, 5000, 'a to lead');
  const door: FirmwareManifest = { model: 'door-7', firmware: '2.1.0', trustedKeys: h.manifest.trustedKeys, pins: [{ host: 'locks.example.com', pins: h.manifest.pins[0].pins }] };
  await h.gw.store.apply([{ type: 'item.put', collection: 'manifests', key: 'pushed', value: { entries: [{ manifest: door, source: 'pushed', pushedBy: 'fiona', pushedAt: h.clock.now() }] } as never }]);
  await beforeStop(url);
  await h.gw.stop();
  const stored = async () => ((await gb.store.getItem('manifests', 'pushed'))?.entries as unknown as Array<{ manifest: FirmwareManifest }>).map((e) => e.manifest.firmware).sort();
  return { gb, door, stored };
}

t.test('a follower that takes over reads the pushed manifests first: its next push keeps one it was never told of', async (t) => {
  const { gb, door, stored } = await leaderGoneUntold(t);
  await until(() => gb.replica?.leader === true, 10_000, 'b to take over');
  const models = (gw: Gateway) => gw.listManifests().map((m) => `${m.manifest.model} ${m.manifest.firmware} ${m.source}`);
  t.ok(models(gb).includes('door-7 2.1.0 pushed'), 'b, leading, knows the pushed manifest');
  await gb.pushManifest({ ...door, firmware: '2.2.0' }, 'gus');
  t.same(await stored(), ['2.1.0', '2.2.0'], "b's push kept the one before it");
});

t.test('an action asked of a replica while it is still taking over waits until it has read what the last leader committed', async (t) => {
  // The window between taking the lock and reading the database is held open here: the rollouts
  // table is locked (before a stops, so b cannot read it first), and the new leader's first read
  // waits. A push asked of it meanwhile must not write a set computed before that read
  // (docs/architecture.md §8). The pushed set's table is locked too, so a push performed too early
  // waits there with the set it computed, whatever the machine's speed, and is written after the release.
  let release = async () => {};
  const { gb, door, stored } = await leaderGoneUntold(t, async (url) => {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    t.teardown(() => admin.end());
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE rollouts, items IN ACCESS EXCLUSIVE MODE');
    let released = false;
    release = async () => {
      if (!released) await admin.query('COMMIT');
      released = true;
    };
    t.teardown(() => release());
  });
  await until(() => (gb.replica?.terms ?? 0) > 0, 10_000, 'b to take the lock');
  t.equal(gb.replica?.leader, false, 'b does not answer as leader while it has not read the database');
  const push = gb.pushManifest({ ...door, firmware: '2.2.0' }, 'gus');
  await release();
  await push;
  await until(() => gb.replica?.leader === true, 5000, 'b to lead');
  t.same(await stored(), ['2.1.0', '2.2.0'], "b's push, asked while it took over, kept the one the last leader committed");
});
