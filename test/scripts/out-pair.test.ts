// Files written as one (scripts/out-pair.ts): all land, or none of them does.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeOutPair } from '../../scripts/out-pair.ts';
import { withoutHardLinks } from '../fixtures/no-hard-links.ts';

t.test('a move that fails takes back the ones already made, and leaves no temp file', async (t) => {
  const dir = t.testdir();
  const a = join(dir, 'a');
  // The same name twice: the second move finds the first one's file, as it would a file that appeared meanwhile.
  await t.rejects(writeOutPair([{ path: a, data: 'one' }, { path: a, data: 'two' }], { flag: 'out' }), { message: `--out ${a} already exists: pass --force to replace it` });
  t.same(readdirSync(dir), [], 'the first file is gone again');
});

t.test('on a filesystem without hard links (FAT) the pair is written, and replaced with --force', async (t) => {
  const dir = t.testdir();
  withoutHardLinks(t);
  const [a, b] = [join(dir, 'a'), join(dir, 'b')];
  await writeOutPair([{ path: a, data: 'one' }, { path: b, data: 'two' }], { flag: 'out' });
  await t.rejects(writeOutPair([{ path: a, data: 'x' }, { path: b, data: 'y' }], { flag: 'out' }), { message: `--out ${a} already exists` });
  await writeOutPair([{ path: a, data: 'new one' }, { path: b, data: 'new two' }], { flag: 'out', force: true });
  t.same([readFileSync(a, 'utf8'), readFileSync(b, 'utf8')], ['new one', 'new two']);
  t.same(readdirSync(dir).sort(), ['a', 'b'], 'no temp or old file left');
});
