// The files the CLI writes for an operator (bundle create --out, manifest create --out/--cbor, keygen
// --out): an existing file is replaced only with --force, a folder where a file is meant (or a file
// where a folder is) is named with its flag, and a replaced file is a new one renamed into place.
import t from 'tap';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { runCli } from '../fixtures/cli.ts';

const pin = (s: string) => 'sha256/' + createHash('sha256').update(s).digest('base64');

const pinwave = (...args: string[]) => runCli(args);

const bundleArgs = (dir: string) => ['bundle', 'create', '--key', join(dir, 'signing.key'), '--group', 'g', '--seq', '1', '--pin', `api.example.com=${pin('a')}`, '--pin', `api.example.com=${pin('b')}`];
const manifestArgs = (dir: string) => ['manifest', 'create', '--model', 'th-100', '--firmware', '1.0.0', '--key', join(dir, 'signing.pub'), '--pin', `api.example.com=${pin('a')}`, '--pin', `api.example.com=${pin('b')}`];

t.test('bundle create refuses to replace an existing --out file unless --force, and then renames a new file into place', async (t) => {
  const dir = t.testdir();
  t.equal((await pinwave('keygen', '--out', dir)).code, 0);
  const out = join(dir, 'b.cbor');
  writeFileSync(out, 'the bundle of yesterday');
  const refused = await pinwave(...bundleArgs(dir), '--out', out);
  t.equal(refused.code, 1);
  t.equal(refused.stderr, `pinwave bundle: --out ${out} already exists: pass --force to replace it`);
  t.equal(readFileSync(out, 'utf8'), 'the bundle of yesterday', 'the file is untouched');

  const inode = statSync(out).ino;
  const forced = await pinwave(...bundleArgs(dir), '--out', out, '--force');
  t.equal(forced.code, 0, forced.stderr);
  t.equal(JSON.parse(forced.stdout).size, readFileSync(out).length);
  t.not(statSync(out).ino, inode, 'a new file renamed over the old one, not the old one rewritten in place');
  t.same(readdirSync(dir).sort(), ['b.cbor', 'signing.key', 'signing.pub'], 'no temp file left');
});

t.test('bundle create refuses an existing --out before it reads the key or signs: the key is not even opened', async (t) => {
  const dir = t.testdir({ 'b.cbor': 'the bundle of yesterday', 'signing.key': 'not a key at all' });
  chmodSync(join(dir, 'signing.key'), 0o644); // loose too: not even the mode warning, since it is never read
  const out = join(dir, 'b.cbor');
  const refused = await pinwave(...bundleArgs(dir), '--out', out);
  t.equal(refused.code, 1);
  t.equal(refused.stderr, `pinwave bundle: --out ${out} already exists: pass --force to replace it`, 'the --out refusal, not the key\'s');
  t.equal(refused.stdout, '');
  t.equal(readFileSync(out, 'utf8'), 'the bundle of yesterday');
});

t.test('bundle create --out a directory names --out and the directory, and writes nothing into it', async (t) => {
  const dir = t.testdir({ d: {} });
  t.equal((await pinwave('keygen', '--out', dir)).code, 0);
  const r = await pinwave(...bundleArgs(dir), '--out', join(dir, 'd'));
  t.equal(r.code, 1);
  t.equal(r.stderr, `pinwave bundle: --out ${join(dir, 'd')} is a directory: give the path of a file to write`);
  t.same(readdirSync(join(dir, 'd')), []);
  const missing = await pinwave(...bundleArgs(dir), '--out', join(dir, 'nowhere', 'b.cbor'));
  t.equal(missing.code, 1);
  t.equal(missing.stderr, `pinwave bundle: --out ${join(dir, 'nowhere', 'b.cbor')}: the folder ${join(dir, 'nowhere')} does not exist`);
});

t.test('manifest create refuses an existing --cbor before it writes --out, and replaces both with --force', async (t) => {
  const dir = t.testdir();
  t.equal((await pinwave('keygen', '--out', dir)).code, 0);
  const json = join(dir, 'm.json');
  const cbor = join(dir, 'm.cbor');
  writeFileSync(cbor, 'old flash image');
  const refused = await pinwave(...manifestArgs(dir), '--out', json, '--cbor', cbor);
  t.equal(refused.code, 1);
  t.equal(refused.stderr, `pinwave manifest: --cbor ${cbor} already exists: pass --force to replace it`);
  t.same(readdirSync(dir).sort(), ['m.cbor', 'signing.key', 'signing.pub'], '--out was not written either');

  const forced = await pinwave(...manifestArgs(dir), '--out', json, '--cbor', cbor, '--force');
  t.equal(forced.code, 0, forced.stderr);
  t.equal(JSON.parse(readFileSync(json, 'utf8')).model, 'th-100');
  t.equal((await pinwave('manifest', 'validate', cbor)).code, 0);

  mkdirSync(join(dir, 'out.json'));
  const folder = await pinwave(...manifestArgs(dir), '--out', join(dir, 'out.json'));
  t.equal(folder.code, 1);
  t.equal(folder.stderr, `pinwave manifest: --out ${join(dir, 'out.json')} is a directory: give the path of a file to write`);
});

t.test('manifest create with --out and --cbor naming one file is refused, and writes nothing', async (t) => {
  const dir = t.testdir();
  t.equal((await pinwave('keygen', '--out', dir)).code, 0);
  const r = await pinwave(...manifestArgs(dir), '--out', join(dir, 'm'), '--cbor', join(dir, '.', 'm'));
  t.equal(r.code, 2);
  t.match(r.stderr, `pinwave manifest: --out and --cbor name the same file, ${join(dir, 'm')}: the JSON and the flash form are two files`);
  t.same(readdirSync(dir).sort(), ['signing.key', 'signing.pub'], 'no JSON left where a manifest was asked for');
});

t.test('keygen --out a regular file names --out and leaves the file as it was', async (t) => {
  const dir = t.testdir({ 'keys.txt': 'not a folder' });
  const path = join(dir, 'keys.txt');
  const r = await pinwave('keygen', '--out', path);
  t.equal(r.code, 1);
  t.equal(r.stderr, `pinwave keygen: --out ${path} is a file: give a directory (created if missing) for signing.key and signing.pub`);
  t.equal(readFileSync(path, 'utf8'), 'not a folder');
});
