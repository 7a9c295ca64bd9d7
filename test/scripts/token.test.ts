// `pinwave token hash|new`: hashes for the gateway config, the token read from stdin when not given.
import t from 'tap';
import { Readable } from 'node:stream';
import { main } from '../../scripts/commands/token.ts';
import { UsageError, type Io } from '../../scripts/args.ts';
import { hashToken } from '../../gateway/credentials.ts';
import { loadConfig } from '../../gateway/config.ts';
import { findToken } from '../../gateway/http/auth.ts';

function fakeIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, tty: false };
  return { io, out, err };
}

const stdin = (...chunks: string[]) => Object.assign(Readable.from(chunks), { isTTY: false });
const TOKEN = 'Zm9vYmFyLXRva2VuLTAxMjM0NTY3ODk';

t.test('token hash prints the hash of its argument', async (t) => {
  const { io, out, err } = fakeIo();
  t.equal(await main(['hash', TOKEN], io, stdin()), 0);
  t.same(out, [hashToken(TOKEN)]);
  t.same(err, []);
});

t.test('without an argument the token is read from stdin: the first line, line ending and blanks dropped', async (t) => {
  for (const input of [[`${TOKEN}\n`], [`  ${TOKEN}\r\nsecond line\n`], [TOKEN.slice(0, 10), TOKEN.slice(10)]]) {
    const { io, out } = fakeIo();
    t.equal(await main(['hash'], io, stdin(...input)), 0);
    t.same(out, [hashToken(TOKEN)], JSON.stringify(input));
  }
  const tty = fakeIo();
  t.equal(await main(['hash'], tty.io, Object.assign(Readable.from([`${TOKEN}\n`]), { isTTY: true })), 0);
  t.same(tty.err, ['token (one line):'], 'a terminal is told what to type');
});

t.test('an empty, short or odd token is a usage error that does not repeat it', async (t) => {
  await t.rejects(main(['hash'], fakeIo().io, stdin('')), { name: 'UsageError', message: 'no token given: pass TOKEN or write it to stdin' });
  await t.rejects(main(['hash'], fakeIo().io, stdin('hunter2\n')), { message: 'a token must be 16 to 512 characters of A-Z a-z 0-9 - . _ ~ + / (got 7 characters)' });
  await t.rejects(main(['hash', 'has a space in it, long enough'], fakeIo().io, stdin()), { message: /got 30 characters, with whitespace\)$/ });
  await t.rejects(main(['hash', 'a', 'b'], fakeIo().io, stdin()), UsageError);
  await t.rejects(main(['hash', '--salt', 'x'], fakeIo().io, stdin()), UsageError);
});

t.test('token new prints a fresh token and its hash; the hash works in the config and finds the token', async (t) => {
  const { io, out, err } = fakeIo();
  t.equal(await main(['new'], io), 0);
  t.equal(out.length, 2);
  const token = /^token: ([A-Za-z0-9_-]{43})$/.exec(out[0])![1];
  const hash = /^hash: (sha256:[A-Za-z0-9_-]{43})$/.exec(out[1])![1];
  t.equal(hash, hashToken(token));
  t.match(err[0], /^add to the gateway config's tokens: {2}- \{ name: operator, role: operator, hash: "sha256:/);
  const config = loadConfig({ env: { PINWAVE_DATA_DIR: '/d', PINWAVE_KEY: '/k' }, file: null, flags: {} });
  t.same(config.tokens, []);
  t.same(findToken([{ name: 'operator', role: 'operator', hash }], token), { name: 'operator', role: 'operator', hash });

  const two = fakeIo();
  await main(['new'], two.io);
  t.not(two.out[0], out[0], 'every token is new');

  const json = fakeIo();
  t.equal(await main(['new', '--json', '--role', 'admin', '--name', 'ci-bot'], json.io), 0);
  const j = JSON.parse(json.out[0]);
  t.same(Object.keys(j), ['name', 'role', 'token', 'hash']);
  t.match(j, { name: 'ci-bot', role: 'admin' });
  t.equal(j.hash, hashToken(j.token));
  await t.rejects(main(['new', '--role', 'root'], fakeIo().io), { message: '--role must be one of viewer, operator, admin, got "root"' });
  await t.rejects(main(['new', '--name', 'a b'], fakeIo().io), { message: /--name must be 1 to 64 characters/ });
});

t.test('help and unknown subcommands', async (t) => {
  const none = fakeIo();
  t.equal(await main([], none.io), 2);
  t.match(none.out[0], /^Usage:\n {2}pinwave token hash \[TOKEN\]/);
  t.equal(await main(['--help'], fakeIo().io), 0);
  t.equal(await main(['hash', '--help'], fakeIo().io, stdin()), 0);
  t.equal(await main(['new', '-h'], fakeIo().io), 0);
  await t.rejects(main(['rotate'], fakeIo().io), { name: 'UsageError', message: 'unknown subcommand "rotate"' });
});
