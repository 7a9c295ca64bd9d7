// A numeric flag given a negative or otherwise bad number (`--limit -1`): a usage error naming the
// flag and what it takes (exit 2, README), not node:util parseArgs' "argument is ambiguous", which
// `--limit -1` (a value that starts with a dash) got before the flag's own check saw it.
import t from 'tap';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

async function pinwave(args: string[]) {
  const err: string[] = [];
  // nothing listens there: a flag refused locally never gets as far as the network
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: 'http://127.0.0.1:9', PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  return { code: await run(args, io), stderr: err.join('\n') };
}

t.test('devices list --limit: 1 to 1000 (a page of the API), anything else a usage error naming the flag and the range', async (t) => {
  for (const args of [['--limit', '-1'], ['--limit=-1'], ['--limit', '-5'], ['--limit', '0'], ['--limit', '1001'], ['--limit', 'abc'], ['--limit', '2.5']]) {
    const r = await pinwave(['devices', 'list', ...args]);
    t.equal(r.code, 2, args.join(' '));
    const value = args.length === 1 ? '-1' : args[1];
    t.match(r.stderr, new RegExp(`^pinwave devices: --limit expects a whole number from 1 to 1000, got "${value.replace('.', '\\.')}"\n`), args.join(' '));
    t.notMatch(r.stderr, /ambiguous|Unknown option/, args.join(' '));
  }
  for (const v of ['1', '1000']) t.match((await pinwave(['devices', 'list', '--limit', v])).stderr, /cannot reach the gateway/, `--limit ${v} is taken`);
});

t.test('a negative number for other numeric flags names the flag, as a non-number does', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['devices', 'list', '--seq', '-1'], /^pinwave devices: --seq expects a non-negative integer, got "-1"/],
    [['bundle', 'verify', 'x.cbor', '--pub', 'ab'.repeat(32), '--group', 'g', '--current-seq', '-1'], /^pinwave bundle: --current-seq expects a non-negative integer, got "-1"/],
    [['sim', '--api', 'http://127.0.0.1:9', '--devices', '-3'], /^pinwave sim: --devices expects a non-negative integer, got "-3"/],
    [['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g', '--min-devices', '-2'], /^pinwave rollout: --min-devices expects a whole number, got "-2"/],
  ];
  for (const [args, message] of cases) {
    const r = await pinwave(args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
  }
});

t.test('only a value that is a negative number is taken so: a flag after a flag is still a missing value, and -- ends the flags', async (t) => {
  const missing = await pinwave(['devices', 'list', '--limit', '--json']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /Option '--limit' argument is ambiguous/, "parseArgs' own message: the value looks like a flag, not a number");
  const positional = await pinwave(['manifest', 'validate', '--', '-1']);
  t.match(positional.stderr, /cannot read -1: ENOENT/, 'after --, "-1" is a FILE');
});
