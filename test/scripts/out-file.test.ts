// scripts/out-file.ts: a file the CLI writes for the operator appears whole or not at all, and an
// existing one is replaced only with --force, on a filesystem with hard links or without.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeOutFile } from '../../scripts/out-file.ts';
import { withoutHardLinks } from '../fixtures/no-hard-links.ts';

t.test('on a filesystem without hard links the file is written all the same, and an existing one still needs --force', async (t) => {
  const dir = t.testdir({ 'old.cbor': 'the bundle of yesterday' });
  withoutHardLinks(t);
  const out = join(dir, 'b.cbor');
  await writeOutFile(out, 'a new bundle', { flag: 'out' });
  t.equal(readFileSync(out, 'utf8'), 'a new bundle');
  t.equal(statSync(out).mode & 0o777, 0o644 & ~process.umask());
  await t.rejects(writeOutFile(join(dir, 'old.cbor'), 'x', { flag: 'out' }), { message: `--out ${join(dir, 'old.cbor')} already exists: pass --force to replace it` });
  t.equal(readFileSync(join(dir, 'old.cbor'), 'utf8'), 'the bundle of yesterday', 'untouched');
  t.same(readdirSync(dir).sort(), ['b.cbor', 'old.cbor'], 'no temp file left');
});

t.test('a write that fails names the flag and the path, not the temp file, and leaves nothing behind', async (t) => {
  const dir = t.testdir();
  const out = join(dir, `${'x'.repeat(250)}.cbor`);
  // The name fits (254 bytes), the temp file beside it does not (ENAMETOOLONG).
  await t.rejects(writeOutFile(out, 'a bundle', { flag: 'out' }), { message: `--out ${out}: ENAMETOOLONG` });
  t.same(readdirSync(dir), [], 'nothing written');
});
