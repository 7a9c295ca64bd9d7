// A command that can print CSV or JSON (`devices stuck`, README: "every read command takes --json")
// prints one of them: both at once is a usage error naming the two flags, not one silently winning.
import t from 'tap';
import { standIn } from '../fixtures/stand-in.ts';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

t.test('devices stuck --csv --json is a usage error naming both flags, and asks the gateway nothing', async (t) => {
  const seen: string[] = [];
  const api = await standIn(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'text/csv' });
    res.end('id,reason\n');
  });
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: { PINWAVE_API: api, PINWAVE_TOKEN: 'x'.repeat(32) }, tty: false };
  t.equal(await run(['devices', 'stuck', '--group', 'thermostats', '--csv', '--json'], io), 2);
  t.match(err[0], /^pinwave devices: give either --csv or --json, not both$/);
  t.same(out, [], 'nothing on stdout for a script to mistake for its answer');
  t.same(seen, [], 'no request was made');
});
