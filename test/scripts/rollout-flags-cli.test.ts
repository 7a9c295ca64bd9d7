// `pinwave rollout create|resume` threshold flags: a ratio from 0 to 1 or a percentage, anything else a
// usage error naming the flag (exit 2) before the gateway is asked (README: exit 2, the message names the flag).
import t from 'tap';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

async function pinwave(args: string[]) {
  const err: string[] = [];
  // nothing listens there: a flag refused locally never gets as far as the network
  const io: Io = { out: () => {}, err: (l) => void err.push(l), env: { PINWAVE_API: 'http://127.0.0.1:9', PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  return { code: await run(args, io), stderr: err.join('\n') };
}

t.test('a threshold that is no number is refused, not read as 0', async (t) => {
  for (const v of ['%', ' ', '0x1', '1e', '.%', '50%%', '-0']) {
    for (const flag of ['--ack-threshold', '--failure-threshold', '--max-unreachable', '--target-ratio']) {
      const r = await pinwave(['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g', `${flag}=${v}`]);
      t.equal(r.code, 2, `${flag} "${v}": ${r.stderr}`);
      t.match(r.stderr, new RegExp(`${flag} expects a ratio from 0 to 1`), `${flag} "${v}"`);
    }
    const resumed = await pinwave(['rollout', 'resume', 'r-g-1-abcdef', `--ack-threshold=${v}`]);
    t.equal(resumed.code, 2, `resume --ack-threshold "${v}"`);
  }
  for (const v of ['0', '1', '0.95', '.5', '95%', '2.5%', '100%']) {
    const r = await pinwave(['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g', `--ack-threshold=${v}`]);
    t.equal(r.code, 1, `"${v}" is taken: the command goes on to the gateway`);
    t.match(r.stderr, /cannot reach the gateway/);
  }
});

t.test('--margin-days must be a number of days, not blank', async (t) => {
  for (const v of [' ', '0x10', 'soon']) {
    const r = await pinwave(['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g', '--deadline-cert', '/dev/null', `--margin-days=${v}`]);
    t.equal(r.code, 2, `"${v}": ${r.stderr}`);
    t.match(r.stderr, /--margin-days expects a number of days/);
  }
});

t.test('--timeout and --soak outside what a wave takes (timeout 1 s to 365 d, soak 0 to 365 d) name the flag, before the gateway is asked', async (t) => {
  for (const [args, message] of [
    [['--timeout', '0s'], /^pinwave rollout: --timeout must be from 1s to 365d, got "0s"/],
    [['--timeout', '366d'], /^pinwave rollout: --timeout must be from 1s to 365d, got "366d"/],
    [['--soak', '400d'], /^pinwave rollout: --soak must be from 0s to 365d, got "400d"/],
  ] as Array<[string[], RegExp]>) {
    for (const cmd of [['rollout', 'create', '--bundle', 'abcdef12', '--group', 'g'], ['rollout', 'resume', 'r-g-1-abcdef']]) {
      const r = await pinwave([...cmd, ...args]);
      t.equal(r.code, 2, `${cmd[1]} ${args.join(' ')}`);
      t.match(r.stderr, message, `${cmd[1]} ${args.join(' ')}`);
    }
  }
  for (const args of [['--timeout', '1s'], ['--timeout', '365d'], ['--soak', '0s']]) {
    t.match((await pinwave(['rollout', 'resume', 'r-g-1-abcdef', ...args])).stderr, /cannot reach the gateway/, `${args.join(' ')} is taken`);
  }
});

t.test('status --interval beyond an hour is a usage error naming the flag, not a timer that overflows into a poll every millisecond', async (t) => {
  for (const v of ['61m', '99999999m', '3600001ms']) {
    const r = await pinwave(['rollout', 'status', 'r-g-1-abcdef', '--watch', '--interval', v]);
    t.equal(r.code, 2, v);
    t.match(r.stderr, new RegExp(`^pinwave rollout: --interval must be at most 1 hour \\(60m\\), got "${v}"`), v);
  }
  t.match((await pinwave(['rollout', 'status', 'r-g-1-abcdef', '--watch', '--interval', '60m'])).stderr, /cannot reach the gateway/, '60m is taken');
});
