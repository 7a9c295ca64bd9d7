// A snapshot record the API would refuse stops the start, naming the file and the record, and
// nothing in the dir is changed (docs/storage.md, "when the store refuses to start").
import t, { type Test } from 'tap';
import { readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../gateway/store/embedded.ts';
import { snapshotName } from '../../../gateway/store/snapshot.ts';
import { device, provision, rollout } from './fixtures/conformance.ts';
import type { Change } from '../../../gateway/store/changes.ts';

async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of (await readdir(dir)).sort()) out[n] = (await readFile(join(dir, n))).toString('base64');
  return out;
}

/** A data dir holding one snapshot of a small fleet (and no journal before it); returns the snapshot's lines. */
async function snapshotDir(dir: string, more: (s: EmbeddedStore) => Promise<unknown> = async () => undefined): Promise<{ path: string; lines: string[]; gen: number }> {
  const s = new EmbeddedStore({ dir });
  await s.open();
  const ids = ['d-0', 'd-1', 'd-2', 'd-3'];
  await s.apply([...provision(...ids.map((id) => device(id))), rollout('r-1', ids).change, { type: 'counter.add', name: 'acks', by: 2 }]);
  await more(s);
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

/**
 * r-1 completed with two failing members, one of them never verified (docs/architecture.md §9),
 * and compacted (docs/storage.md, bounded growth) before the snapshot; the header's line and wave 0.
 */
async function compactedDir(dir: string) {
  const snap = await snapshotDir(dir, async (s) => {
    const [a, b, ...rest] = ['d-0', 'd-1', 'd-2', 'd-3'];
    const wave = (await s.getMembers('r-1', [a, b, ...rest])).map((m) => m!.wave);
    const changes: Change[] = [
      { type: 'rollout.member', id: 'r-1', device: a, status: 'failing', reason: 'unverified', at: 1 },
      { type: 'rollout.member', id: 'r-1', device: b, status: 'failing', at: 1 },
      ...rest.map((id): Change => ({ type: 'rollout.member', id: 'r-1', device: id, status: 'verified', at: 1 })),
    ];
    for (const [i, id] of [a, b, ...rest].entries()) changes.push({ type: 'rollout.wave', id: 'r-1', wave: wave[i], add: { count: { pending: -1, [i < 2 ? 'failing' : 'verified']: 1 } } });
    changes.push({ type: 'rollout.patch', id: 'r-1', set: { state: 'completed', endedAt: 2 } }, { type: 'rollout.compact', id: 'r-1', at: 3 });
    const r = await s.apply(changes);
    if (!r.ok) throw new Error(r.message);
  });
  const line = snap.lines.findIndex((l) => l.startsWith('{"format":1,"id":"r-1"'));
  const header = JSON.parse(snap.lines[line].replace(/,$/, '')) as { waves: Array<Record<string, unknown>> };
  return { ...snap, line, header };
}

const rewrite = async (path: string, lines: string[], line: number, header: object) => {
  const out = [...lines];
  out[line] = JSON.stringify(header) + (lines[line].endsWith(',') ? ',' : '');
  await writeFile(path, out.join('\n'));
};

t.test('a compacted rollout in a snapshot keeps its failing-unverified count; one written before it existed loads without', async (t) => {
  const dir = join(t.testdir(), 'data');
  const { path, lines, line, header } = await compactedDir(dir);
  const kept = header.waves.map((w) => w.failingUnverified ?? 0);
  t.equal(kept.reduce((n, k) => n + (k as number), 0), 1, `the snapshot keeps the one member that never verified (${JSON.stringify(kept)})`);
  let s = new EmbeddedStore({ dir });
  await s.open();
  t.same((await s.getRollout('r-1'))!.waves.map((w) => w.failingUnverified ?? 0), kept, 'loaded from the snapshot');
  await s.close();

  // As an earlier release wrote it: no such field; it loads, with nothing to say.
  for (const w of header.waves) delete w.failingUnverified;
  await rewrite(path, lines, line, header);
  s = new EmbeddedStore({ dir });
  await s.open();
  t.ok((await s.getRollout('r-1'))!.waves.every((w) => w.failingUnverified === undefined), 'an older compacted rollout loads as it was');
  await s.close();
});

t.test('a failing-unverified count on a rollout that keeps its members, or above its failing count, is refused', async (t) => {
  for (const [name, edit, why] of [
    ['above the failing count', (h: { waves: Array<Record<string, unknown>> }) => (h.waves[0].failingUnverified = 3), /failingUnverified: expected an integer from 1 to the wave's failing count/],
    ['zero', (h: { waves: Array<Record<string, unknown>> }) => (h.waves[0].failingUnverified = 0), /failingUnverified: expected an integer from 1/],
    ['not compacted', (h: { waves: Array<Record<string, unknown>>; compactedAt?: unknown }) => ((h.waves[0].failingUnverified = 1), (h.compactedAt = null)), /failingUnverified: expected nothing \(a rollout that keeps its members counts it from them\)/],
  ] as const) {
    const dir = join(t.testdir(), name.replace(/\W+/g, '-'));
    const { path, lines, line, header } = await compactedDir(dir);
    const w0 = header.waves[0];
    // Whichever wave the failing members fell in, wave 0 is made to count two of them.
    (w0.count as Record<string, number>).failing = 2;
    edit(header as never);
    await rewrite(path, lines, line, header);
    await refused(t, dir, why, name);
  }
});
