// `pinwave devices provision` when the gateway takes none of the devices: no tokens file is left
// behind, so the same command can be run again once the gateway is there (README: the tokens are
// written to a new file, never over another one).
import t from 'tap';
import { closedPort } from '../fixtures/stand-in.ts';
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';


t.test('a provision that reaches no gateway fails (exit 1) and leaves no empty tokens file in the way of the retry', async (t) => {
  const dir = t.testdir();
  const csv = join(dir, 'devices.csv');
  writeFileSync(csv, 'id,group\nth-1,thermostats\n');
  const out = join(dir, 'tokens.json');
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: `http://127.0.0.1:${await closedPort()}`, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  t.equal(await run(['devices', 'provision', csv, '--out', out], io), 1);
  t.match(err.join('\n'), /cannot reach the gateway/);
  t.notOk(existsSync(out), 'no tokens file: none was given out');
  err.length = 0;
  t.equal(await run(['devices', 'provision', csv, '--out', out], io), 1, 'the retry fails the same way, not on the file');
  t.notMatch(err.join('\n'), /exists already/);
});

t.test('--group that disagrees with a device\'s own group in the file is a usage error naming both, before any request; it fills in the ones without', async (t) => {
  const dir = t.testdir();
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: `http://127.0.0.1:${await closedPort()}`, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  const files = { 'a.csv': 'id,group\nth-1,\nth-2,locks\n', 'a.json': JSON.stringify([{ id: 'th-1' }, { id: 'th-2', group: 'locks' }]) };
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(dir, name), text);
    err.length = 0;
    t.equal(await run(['devices', 'provision', join(dir, name), '--group', 'thermostats', '--out', join(dir, `${name}.tokens`)], io), 2, name);
    t.match(err.join('\n'), /: device "th-2" is in group "locks" in the file, and --group says "thermostats": give one of them/, name);
  }
  writeFileSync(join(dir, 'b.csv'), 'id,group\nth-1,\nth-2,thermostats\n');
  err.length = 0;
  t.equal(await run(['devices', 'provision', join(dir, 'b.csv'), '--group', 'thermostats', '--out', join(dir, 'b.tokens')], io), 1, 'the same group: taken, on to the gateway');
  t.match(err.join('\n'), /cannot reach the gateway/);
});

t.test('--out a directory, or in a folder that does not exist, is a usage error saying which, before any request', async (t) => {
  const dir = t.testdir({ tokens: {} });
  const csv = join(dir, 'devices.csv');
  writeFileSync(csv, 'id,group\nth-1,thermostats\n');
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: `http://127.0.0.1:${await closedPort()}`, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  t.equal(await run(['devices', 'provision', csv, '--out', join(dir, 'tokens')], io), 2);
  t.equal(err[0], `pinwave devices: --out ${join(dir, 'tokens')} is a directory: give the path of a new file for the tokens`);
  err.length = 0;
  t.equal(await run(['devices', 'provision', csv, '--out', join(dir, 'nowhere', 't.json')], io), 2);
  t.equal(err[0], `pinwave devices: --out ${join(dir, 'nowhere', 't.json')}: the folder ${join(dir, 'nowhere')} does not exist`);
});

t.test('--out a link that points nowhere is another file, refused as such before any request', async (t) => {
  const dir = t.testdir();
  const csv = join(dir, 'devices.csv');
  writeFileSync(csv, 'id,group\nth-1,thermostats\n');
  const out = join(dir, 'tokens.json');
  symlinkSync(join(dir, 'gone.json'), out);
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: `http://127.0.0.1:${await closedPort()}`, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  t.equal(await run(['devices', 'provision', csv, '--out', out], io), 2);
  t.equal(err[0], `pinwave devices: --out ${out} exists already; tokens are never written over another file`);
});
