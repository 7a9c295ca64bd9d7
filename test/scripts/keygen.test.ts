// `pinwave keygen`: a signing key pair on disk, the private key born 0600 and never overwritten by accident.
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../scripts/cli.ts';
import { main } from '../../scripts/commands/keygen.ts';
import { kid, privateKeyFromPem, publicKeyFromPem, keyPairFromSeed } from '../../firmware-manifest/keys.ts';
import type { Io } from '../../scripts/args.ts';

function fakeIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, tty: false };
  return { io, out, err };
}

const mode = (path: string) => statSync(path).mode & 0o777;
const umask = process.umask();

t.test('keygen writes a key pair: signing.key 0600, signing.pub 0644, and prints the kid', async (t) => {
  const dir = join(t.testdir(), 'new', 'keys');
  const { io, out, err } = fakeIo();
  t.equal(await run(['keygen', '--out', dir], io), 0);
  t.same(err, []);
  const keyPath = join(dir, 'signing.key');
  const pubPath = join(dir, 'signing.pub');
  t.equal(mode(keyPath), 0o600);
  t.equal(mode(pubPath), 0o644 & ~umask);

  const privatePem = readFileSync(keyPath, 'utf8');
  const publicPem = readFileSync(pubPath, 'utf8');
  t.match(privatePem, /^-----BEGIN PRIVATE KEY-----\n/);
  t.match(publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
  const publicKey = publicKeyFromPem(publicPem);
  t.same(keyPairFromSeed(privateKeyFromPem(privatePem)).publicKey, publicKey, 'the two files are one pair');

  t.equal(out[0], `kid ${Buffer.from(kid(publicKey)).toString('hex')}`);
  t.match(out[0], /^kid [0-9a-f]{16}$/);
  t.ok(out.some((l) => l.includes(keyPath)), 'prints the private key path');
  t.ok(out.some((l) => l.includes(pubPath)), 'prints the public key path');
  t.notOk(out.join('\n').includes(privatePem.split('\n')[1]), 'never prints the private key');
});

t.test('keygen refuses to overwrite an existing key pair unless --force', async (t) => {
  const dir = t.testdir();
  t.equal(await main(['--out', dir], fakeIo().io), 0);
  const keyPath = join(dir, 'signing.key');
  const before = readFileSync(keyPath, 'utf8');

  const again = fakeIo();
  t.equal(await main(['--out', dir], again.io), 1);
  t.match(again.err.join('\n'), /signing\.key and .*signing\.pub already exist; pass --force/);
  t.same(again.out, []);
  t.equal(readFileSync(keyPath, 'utf8'), before, 'the old key is untouched');

  // an old key left world-readable does not pass its mode on to the new one
  chmodSync(keyPath, 0o644);
  const forced = fakeIo();
  t.equal(await main(['--out', dir, '--force'], forced.io), 0);
  t.not(readFileSync(keyPath, 'utf8'), before);
  t.equal(mode(keyPath), 0o600);
});

t.test('keygen refuses when only one of the two files exists', async (t) => {
  const dir = t.testdir({ 'signing.pub': 'someone else’s key\n' });
  const { io, err } = fakeIo();
  t.equal(await main(['--out', dir], io), 1);
  t.match(err.join('\n'), /signing\.pub already exists; pass --force/);
  t.notOk(existsSync(join(dir, 'signing.key')));
});

t.test('keygen --force lands the pair together: when signing.pub cannot be written, the old signing.key stays and no temp file is left', async (t) => {
  const dir = t.testdir();
  t.equal(await main(['--out', dir], fakeIo().io), 0);
  const keyPath = join(dir, 'signing.key');
  const pubPath = join(dir, 'signing.pub');
  const before = readFileSync(keyPath, 'utf8');
  rmSync(pubPath);
  mkdirSync(pubPath); // a folder in the way: root writes through any mode, not through this
  const { io, out, err } = fakeIo();
  t.equal(await run(['keygen', '--out', dir, '--force'], io), 1);
  t.match(err.join('\n'), `--out ${pubPath} is a directory`);
  t.same(out, [], 'no kid printed: no pair was made');
  t.equal(readFileSync(keyPath, 'utf8'), before, 'the old private key is untouched');
  t.same(readdirSync(dir).sort(), ['signing.key', 'signing.pub'], 'nothing half-written beside them');
});

t.test('keygen into an empty folder with a folder named signing.pub writes no signing.key', async (t) => {
  const dir = t.testdir({ 'signing.pub': {} });
  const { io } = fakeIo();
  t.equal(await run(['keygen', '--out', dir, '--force'], io), 1);
  t.same(readdirSync(dir), ['signing.pub'], 'no private key without its public key');
});

t.test('keygen fails with exit 1 when DIR cannot be made', async (t) => {
  const dir = t.testdir();
  writeFileSync(join(dir, 'file'), '');
  const { io, err } = fakeIo();
  t.equal(await run(['keygen', '--out', join(dir, 'file', 'keys')], io), 1);
  t.match(err[0], /^pinwave keygen: .*(EEXIST|ENOTDIR)/);
});

t.test('keygen usage: --help exits 0, wrong or missing flags exit 2 naming the flag', async (t) => {
  const help = fakeIo();
  t.equal(await run(['keygen', '--help'], help.io), 0);
  t.match(help.out[0], /^Usage: pinwave keygen --out DIR/);

  const cases: [string[], RegExp][] = [
    [[], /missing required flag --out/],
    [['--out'], /--out/],
    [['--out', ''], /missing required flag --out/],
    [['--bogus'], /--bogus/],
    [['--out', t.testdir(), 'extra'], /extra/],
  ];
  for (const [args, message] of cases) {
    const { io, err } = fakeIo();
    t.equal(await run(['keygen', ...args], io), 2, args.join(' '));
    t.match(err[0], message);
    t.match(err.join('\n'), /Usage: pinwave keygen/);
  }
});
