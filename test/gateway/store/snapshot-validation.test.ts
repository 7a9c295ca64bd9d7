// A snapshot record the API would refuse stops the start, naming the file and the record, and
// nothing in the dir is changed (docs/storage.md, "when the store refuses to start").
import t, { type Test } from 'tap';
import { readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import { snapshotName } from '../../../gateway/store/snapshot.ts';
import { device, provision, rollout } from './fixtures/conformance.ts';

async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of (await readdir(dir)).sort()) out[n] = (await readFile(join(dir, n))).toString('base64');
  return out;
}

/** A data dir holding one snapshot of a small fleet (and no journal before it); returns the snapshot's lines. */
async function snapshotDir(dir: string): Promise<{ path: string; lines: string[]; gen: number }> {
  const s = new EmbeddedStore({ dir });
  await s.open();
  const ids = ['d-0', 'd-1', 'd-2', 'd-3'];
  await s.apply([...provision(...ids.map((id) => device(id))), rollout('r-1', ids).change, { type: 'counter.add', name: 'acks', by: 2 }]);
  await s.snapshotNow();
  await s.close();
  const names = await readdir(dir);
  const snap = names.filter((n) => n.startsWith('snapshot-')).sort().at(-1)!;
  const gen = Number(/(\d+)/.exec(snap)![1]);
  for (const n of names) if (n.startsWith('journal-') && Number(/(\d+)/.exec(n)![1]) < gen) await unlink(join(dir, n));
  const path = join(dir, snap);
  return { path, lines: (await readFile(path, 'utf8')).split('\n'), gen };
}

async function refused(t: Test, dir: string, why: RegExp, name: string): Promise<void> {
  const before = await contents(dir);
  const s = new EmbeddedStore({ dir });
  const err = await s.open().then(() => null, (e: unknown) => e as Error & { code: string });
  if (err === null) await s.close();
  t.equal(err?.code, 'PW_STORE_CORRUPT', `${name}: refused`);
  t.match(err?.message, why, `${name}: says what is wrong`);
  t.same(await contents(dir), before, `${name}: nothing changed`);
}

t.test('a member row given twice is refused (its header count made to match)', async (t) => {
  const dir = join(t.testdir(), 'data');
  const { path, lines } = await snapshotDir(dir);
  const m = lines.indexOf('"members":[');
  const row = JSON.parse(lines[m + 1].replace(/,$/, '')) as [string, string, number];
  const r = lines.findIndex((l) => l.startsWith('{"format":1,"id":"r-1"'));
  const header = JSON.parse(lines[r].replace(/,$/, '')) as { waves: Array<{ memberCount: number; count: { pending: number } }> };
  header.waves[row[2]].memberCount++;
  lines[r] = JSON.stringify(header) + (lines[r].endsWith(',') ? ',' : '');
  lines.splice(m + 1, 0, `${JSON.stringify(row)},`);
  await writeFile(path, lines.join('\n'));
  await refused(t, dir, /appears twice/, 'a member twice');
});

t.test('a counter name the API refuses, or one given twice, is refused', async (t) => {
  for (const [name, edit, why] of [
    ['a counter name with a space', (l: string) => l.replace('{"name":"acks","value":2}', '{"name":"a b","value":2}'), /counters\[0\]/],
    ['a counter given twice', (l: string) => l.replace('{"name":"acks","value":2}', '{"name":"acks","value":2},\n{"name":"acks","value":5}'), /appears twice/],
  ] as const) {
    const dir = join(t.testdir(), name.replace(/\W+/g, '-'));
    const { path, lines } = await snapshotDir(dir);
    const text = lines.join('\n');
    t.ok(text.includes('{"name":"acks","value":2}'), 'the counter is in the snapshot');
    await writeFile(path, edit(text));
    await refused(t, dir, why, name);
  }
});

t.test('a snapshot whose header names another journal than its file name is refused', async (t) => {
  const dir = join(t.testdir(), 'data');
  const { path, lines, gen } = await snapshotDir(dir);
  // As if an older snapshot had been copied over the newer one's name: it lacks journal gen-1.
  lines[0] = lines[0].replace(`"journal":${gen},`, `"journal":${gen - 1},`);
  await writeFile(path, lines.join('\n'));
  t.equal(path, join(dir, snapshotName(gen)));
  await refused(t, dir, /journal/, 'a header of another generation');
});
