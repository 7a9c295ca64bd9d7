// Files written as one (scripts/out-pair.ts): all land, or none of them does.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeOutPair } from '../../scripts/out-pair.ts';

t.test('a move that fails takes back the ones already made, and leaves no temp file', async (t) => {
  const dir = t.testdir();
  const a = join(dir, 'a');
  // The same name twice: the second move finds the first one's file, as it would a file that appeared meanwhile.
  await t.rejects(writeOutPair([{ path: a, data: 'one' }, { path: a, data: 'two' }], { flag: 'out' }), { message: `--out ${a} already exists: pass --force to replace it` });
  t.same(readdirSync(dir), [], 'the first file is gone again');
});
