// `pinwave --help` lists every subcommand a command takes (README: "Run pinwave <command> --help").
import t from 'tap';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

t.test('the top-level help names every subcommand', async (t) => {
  const out: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: () => {}, env: {}, tty: false };
  t.equal(await run(['--help'], io), 0);
  const help = out.join('\n');
  const line = (cmd: string) => help.split('\n').filter((l) => l.trimStart().startsWith(`${cmd} `)).join(' ');
  const subs: Record<string, string[]> = {
    bundle: ['create', 'inspect', 'verify', 'push', 'upload', 'list', 'show'],
    manifest: ['create', 'validate', 'push', 'list'],
    rollout: ['create', 'start', 'status', 'pause', 'resume', 'abort', 'rollback', 'approve', 'list'],
    devices: ['provision', 'list', 'show', 'stuck', 'revoke'],
  };
  for (const [cmd, list] of Object.entries(subs)) {
    const names = new Set(line(cmd).split(/[\s|]+/));
    for (const s of list) t.ok(names.has(s), `pinwave --help names ${cmd} ${s}`);
  }
});

t.test('pinwave alone prints the help on stdout and exits 2 (usage), as a command without its subcommand does; the help says so', async (t) => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l), env: {}, tty: false } as Io };
  };
  const bare = io();
  t.equal(await run([], bare.io), 2);
  t.same(bare.err, [], 'nothing on stderr');
  t.match(bare.out.join('\n'), /^pinwave — over-the-air certificate-pin updates/);
  t.match(bare.out.join('\n'), /Exit codes: 0 ok; 1 failed, rejected or held; 2 usage/, 'the help states the exit codes');
  t.match(bare.out.join('\n'), /"pinwave" alone, or a command without its subcommand \("pinwave rollout"\), prints its help on\nstandard output, exit 2/);
  const sub = io();
  t.equal(await run(['rollout'], sub.io), 2, 'a command without its subcommand: the same');
  t.match(sub.out.join('\n'), /^Usage:\n {2}pinwave rollout /);
  const asked = io();
  t.equal(await run(['help', 'rollout'], asked.io), 0, 'pinwave help CMD is CMD --help');
  t.same(asked.out, sub.out);
  const unknown = io();
  t.equal(await run(['help', 'nope'], unknown.io), 2);
  t.match(unknown.err[0], /^pinwave: unknown command "nope"/);
});

t.test('an option before the command is named as an option, with where it goes, not as an unknown command', async (t) => {
  const err: string[] = [];
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: {}, tty: false };
  t.equal(await run(['--api', 'http://10.0.0.5:8080', 'rollout', 'list'], io), 2);
  t.match(err[0], /^pinwave: unknown option "--api": options follow the command \(pinwave rollout \.\.\. --api \.\.\.\)/);
  err.length = 0;
  t.equal(await run(['--verbose'], io), 2);
  t.match(err[0], /^pinwave: unknown option "--verbose": options follow the command \(pinwave <command> \[options\]\)/);
  t.notMatch(err.join('\n'), /unknown command/);
});
