// A flag that takes one value given twice with different values (`--group prod ... --group staging`):
// a usage error naming the flag and both values (exit 2), before any request, not the last one taken
// without a word. Flags meant to repeat (--pin, --next-key) still repeat.
import t from 'tap';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

async function pinwave(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  // nothing listens there: a flag refused locally never gets as far as the network
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: { PINWAVE_API: 'http://127.0.0.1:9', PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  return { code: await run(args, io), stdout: out.join('\n'), stderr: err.join('\n') };
}

t.test('a one-value flag given twice with different values is a usage error naming it and both values', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['rollout', 'create', '--bundle', 'abcdef12', '--group', 'thermostats', '--group', 'locks'], /^pinwave rollout: --group given twice \("thermostats", then "locks"\): give it once\n/],
    [['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g', '--waves', '1%,100%', '--waves=50%,100%'], /^pinwave rollout: --waves given twice \("1%,100%", then "50%,100%"\)/],
    [['devices', 'revoke', 'd-1', '--api', 'http://127.0.0.1:9', '--api', 'http://127.0.0.1:10'], /^pinwave devices: --api given twice/],
  ];
  for (const [args, message] of cases) {
    const r = await pinwave(args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
  }
});

t.test('the same value twice, a repeatable flag and a boolean flag twice are taken', async (t) => {
  for (const args of [
    ['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g', '--group', 'g'],
    ['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g', '--next-key', `a.example.com:443=sha256/${'A'.repeat(43)}=`, '--next-key', `a.example.com:443=sha256/${'B'.repeat(43)}=`],
    ['rollout', 'list', '--json', '--json'],
  ]) {
    const r = await pinwave(args);
    t.match([r.code, r.stdout + r.stderr], [1, /cannot reach the gateway/], args.join(' '));
  }
});
