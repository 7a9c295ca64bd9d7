// Pushed manifests (docs/architecture.md §4): a push is durable before it counts, and one that
// fails changes nothing, not even a push made while it was being written.
import t from 'tap';
import { join } from 'node:path';
import { loadPushedManifests, Manifests } from '../../gateway/manifests.ts';
import { ManifestRegistry } from '../../gateway/manifest-registry.ts';
import { NO_LOG } from '../../gateway/logger.ts';
import { MemoryChangeStore, MemoryDisk } from '../../gateway/store/memory-store.ts';
import type { Applied, ApplyOptions, Change } from '../../gateway/store/changes.ts';
import { StoreError } from '../../gateway/store/types.ts';
import type { FirmwareManifest } from '../../firmware-manifest/index.ts';
import { harness, pin } from '../fixtures/gateway.ts';
import { generateKeyPair } from '../../firmware-manifest/index.ts';

const KEY = 'Bk3iAsEB2V12GK2VSF14vfCO+F2kR3YGhmMA5onUoC0=';
const manifest = (model: string): FirmwareManifest => ({ model, firmware: '1.0.0', trustedKeys: [KEY], pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] });

/** A store whose first batch fails (a full disk), a turn of the loop after the second was handed over. */
class FirstFails extends MemoryChangeStore {
  calls = 0;
  override async apply(changes: readonly Change[], options?: ApplyOptions): Promise<Applied> {
    if (++this.calls > 1) return super.apply(changes, options);
    await new Promise((resolve) => setTimeout(resolve, 20));
    throw new StoreError('PW_STORE_IO', 'store memory: writing failed (ENOSPC: injected); nothing of the batch was stored');
  }
}

t.test('a push that fails while another is on its way leaves memory as the store holds it', async (t) => {
  const store = new FirstFails();
  await store.open();
  t.teardown(() => store.close());
  const registry = new ManifestRegistry([], []);
  const manifests = new Manifests({ registry, store, log: NO_LOG, now: () => 1 });
  const [a, b] = await Promise.allSettled([manifests.push(manifest('th-100'), 'adam'), manifests.push(manifest('lk-200'), 'eve')]);
  t.equal(a.status, 'rejected', 'the first push is refused: its batch failed');
  t.match(b, { status: 'fulfilled', value: { status: 'created' } });
  const stored = ((await store.getItem('manifests', 'pushed'))?.entries ?? []) as Array<{ manifest: { model: string } }>;
  t.same(stored.map((e) => e.manifest.model), ['lk-200'], 'the store holds the push that committed, and only it');
  t.same(
    registry.list().map((e) => e.manifest.model),
    ['lk-200'],
    'memory holds what the store holds',
  );
});

t.test("an earlier release's manifests.json: read while the store holds none, checked entry by entry", async (t) => {
  const store = new MemoryChangeStore();
  await store.open();
  t.teardown(() => store.close());
  const file = (v: unknown) => JSON.stringify(v);
  const dir = t.testdir({
    old: { 'manifests.json': file({ version: 1, manifests: [{ manifest: manifest('th-100'), pushedBy: 'adam', pushedAt: 7 }] }) },
    none: {},
    notJson: { 'manifests.json': '{"version": 1,' },
    shape: { 'manifests.json': file({ version: 2, manifests: [] }) },
    badEntry: { 'manifests.json': file({ version: 1, manifests: [{ manifest: manifest('th-100') }, { manifest: { ...manifest('lk-200'), trustedKeys: [] } }] }) },
  });
  t.same(await loadPushedManifests(store, join(dir, 'old')), [{ manifest: manifest('th-100'), source: 'pushed', pushedBy: 'adam', pushedAt: 7 }]);
  t.same(await loadPushedManifests(store, join(dir, 'none')), [], 'no file: none');
  t.same(await loadPushedManifests(store, null), [], 'no data dir (PostgreSQL): none');
  await t.rejects(loadPushedManifests(store, join(dir, 'notJson')), { name: 'ManifestFileError', message: `${join(dir, 'notJson', 'manifests.json')}: not JSON: ` });
  await t.rejects(loadPushedManifests(store, join(dir, 'shape')), { message: /manifests\.json: expected \{"version": 1, "manifests": \[\.\.\.\]\}$/ });
  await t.rejects(loadPushedManifests(store, join(dir, 'badEntry')), { message: /manifests\.json: manifests\[1\] is not a valid firmware manifest: .*trustedKeys/ });
  // Once a push is in the store, the file is not read again.
  await store.apply([{ type: 'item.put', collection: 'manifests', key: 'pushed', value: { entries: [{ manifest: manifest('lk-200'), source: 'pushed' }] } }]);
  t.same((await loadPushedManifests(store, join(dir, 'badEntry'))).map((e) => e.manifest.model), ['lk-200']);
});

t.test('a configured manifest with warnings (too large for one bundle of its firmware) is logged at start, as a pushed one is', async (t) => {
  const warns: Array<{ obj: Record<string, unknown>; msg?: string }> = [];
  const logger = { debug() {}, info() {}, error() {}, warn: (obj: Record<string, unknown>, msg?: string) => void warns.push({ obj, msg }) };
  const tight = { model: 'th-200', firmware: '2.0.0', trustedKeys: [generateKeyPair().publicPem], maxBundleBytes: 128, pins: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] };
  await harness(t, { logger, manifests: [tight] });
  const said = warns.filter((w) => w.msg === 'configured manifest has warnings');
  t.equal(said.length, 1, 'once');
  t.match(said[0].obj, { model: 'th-200', firmware: '2.0.0', warnings: [/^\/pins: the initial pins \(1 endpoint\) need a bundle of at least \d+ bytes, above the 128 bytes this firmware takes \(maxBundleBytes\)/] });
});


t.test('a gateway whose store holds a manifest an earlier release took with one trusted key twice still starts, and warns naming it', async (t) => {
  const key = generateKeyPair();
  const twice: FirmwareManifest = { ...manifest('lk-200'), trustedKeys: [key.publicPem, Buffer.from(key.publicKey).toString('base64')] };
  const said = /^\/trustedKeys\/1: trustedKeys\[1\] is the same key as trustedKeys\[0\] \(kid [0-9a-f]{16}\): list each key once$/;
  const warned = (warns: Array<{ obj: Record<string, unknown>; msg?: string }>) => warns.filter((w) => w.msg === 'stored manifest lists a trusted key twice: push it again with each key once');
  for (const where of ['store', 'manifests.json'] as const) {
    const warns: Array<{ obj: Record<string, unknown>; msg?: string }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: Record<string, unknown>, msg?: string) => void warns.push({ obj, msg }) };
    const disk = new MemoryDisk();
    if (where === 'store') {
      const earlier = new MemoryChangeStore({ disk });
      await earlier.open();
      await earlier.apply([{ type: 'item.put', collection: 'manifests', key: 'pushed', value: { entries: [{ manifest: twice, source: 'pushed', pushedBy: 'adam', pushedAt: 7 }] } as never }]);
      await earlier.close();
    }
    const store = new MemoryChangeStore({ disk });
    const dataDir = join(t.testdir({ data: where === 'store' ? {} : { 'manifests.json': JSON.stringify({ version: 1, manifests: [{ manifest: twice, pushedBy: 'adam' }] }) } }), 'data');
    const h = await harness(t, { logger, store, dataDir });
    t.match(h.gw.listManifests(), [{ source: 'config' }, { manifest: { model: 'lk-200' }, source: 'pushed' }], `${where}: it loads`);
    t.equal(warned(warns).length, 1, `${where}: one warning`);
    t.match(warned(warns)[0].obj, { model: 'lk-200', firmware: '1.0.0', warnings: [said] }, `${where}: naming the model, firmware and the key`);
  }
});
