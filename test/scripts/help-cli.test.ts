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
