// The CLI for what the API has: --version, bundle list/show with the diff against the group's
// baseline, telemetry pin-failures, readable devices show/list, ids by prefix (ambiguity named),
// resume --for and its exit codes, a pending rollout named as pending, and a closed stdout.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { TOKENS } from '../fixtures/http.ts';
import { liveCli } from '../fixtures/cli.ts';
import { withoutCoverage } from '../fixtures/child-env.ts';
import { fleet, pin, until } from '../fixtures/gateway.ts';
import { run } from '../../scripts/cli.ts';
import { seedOrder } from '../../gateway/rollout/plan.ts';

const ENTRY = new URL('../../dist/scripts/pinwave.js', import.meta.url).pathname;
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const push = async (pinwave: Awaited<ReturnType<typeof liveCli>>['pinwave'], group: string, a: string, b = 'backup') =>
  JSON.parse((await pinwave(['bundle', 'push', '--group', group, '--pin', `api.example.com=${pin(a)}`, '--pin', `api.example.com=${pin(b)}`, '--json'])).stdout) as { id: string; seq: number };

t.test('--version and -V print the package version', async (t) => {
  for (const flag of ['--version', '-V']) {
    const out: string[] = [];
    const code = await run([flag], { out: (l) => void out.push(l), err: () => {}, env: {}, tty: false });
    t.equal(code, 0);
    t.same(out, [VERSION]);
  }
});

t.test('bundle list and show: decoded, pins in sha256/ form, against the group baseline; ids by prefix, pasted with their ellipsis', async (t) => {
  const { h, pinwave } = await liveCli(t);
  const sims = await fleet(h, 2);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b1 = await push(pinwave, 'thermostats', 'one');
  const created = JSON.parse((await pinwave(['rollout', 'create', '--bundle', `${b1.id.slice(0, 8)}…`, '--group', 'thermostats', '--waves', '100%', '--start', '--json'])).stdout);
  t.equal(created.bundle.id, b1.id, 'rollout create --bundle takes a prefix, even with the … a view put after it');
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(created.id)).state === 'completed'), 5000, 'completion');
  const b2 = await push(pinwave, 'thermostats', 'two');

  const list = await pinwave(['bundle', 'list']);
  t.equal(list.code, 0, list.stderr);
  const lines = list.stdout.split('\n');
  t.match(lines[0], /^id\s+group\s+seq\s+bytes\s+created\s+by$/);
  t.equal(lines.length, 3);
  for (const b of [b1, b2]) t.match(list.stdout, new RegExp(`^${b.id}\\s+thermostats\\s+${b.seq}\\s+\\d+\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\s+adam$`, 'm'));
  t.same(JSON.parse((await pinwave(['bundle', 'list', '--group', 'thermostats', '--json'])).stdout).map((b: { seq: number }) => b.seq).sort(), [1, 2]);
  t.match((await pinwave(['bundle', 'list', '--group', 'locks'])).stdout, /^no bundles for group locks$/);

  const show = await pinwave(['bundle', 'show', b2.id.slice(0, 10)]);
  t.equal(show.code, 0, show.stderr);
  t.match(show.stdout, new RegExp(`^bundle ${b2.id}$`, 'm'));
  t.match(show.stdout, /^ {2}group thermostats, seq 2, \d+ bytes, kid [0-9a-f]{16}$/m);
  t.match(show.stdout, new RegExp(`^  against the group's baseline: bundle ${b1.id.slice(0, 16)}… \\(seq 1\\)$`, 'm'));
  t.match(show.stdout, /^ {2}api\.example\.com:443 {2}changed$/m);
  t.match(show.stdout, new RegExp(`^    \\+ ${pin('two').replace(/[+/]/g, '\\$&')}$`, 'm'));
  t.match(show.stdout, new RegExp(`^    - ${pin('one').replace(/[+/]/g, '\\$&')}$`, 'm'));
  t.match(show.stdout, new RegExp(`^    = ${pin('backup').replace(/[+/]/g, '\\$&')}$`, 'm'));
  const json = JSON.parse((await pinwave(['bundle', 'show', b2.id, '--json'])).stdout);
  t.match(json.diff, { against: { kind: 'baseline', bundleId: b1.id, seq: 1 }, endpoints: [{ change: 'changed', added: [pin('two')], removed: [pin('one')], kept: [pin('backup')] }] });

  const short = await pinwave(['bundle', 'show', b2.id.slice(0, 7)]);
  t.equal(short.code, 1);
  t.match(short.stderr, /400 Bad Request: bundle id "[0-9a-f]{7}" is neither a bundle id nor a prefix of at least 8 characters/);
  const stored = await h.gw.store.getBundle(b1.id);
  for (const id of ['cafef00d' + '0'.repeat(56), 'cafef00d' + '1'.repeat(56)]) await h.gw.store.apply([{ type: 'bundle.put', bundle: { ...stored!, id } }]);
  const amb = await pinwave(['bundle', 'show', 'cafef00d']);
  t.equal(amb.code, 1);
  t.match(amb.stderr, `409 Conflict: bundle id prefix "cafef00d" is ambiguous: it starts cafef00d${'0'.repeat(56)}, cafef00d${'1'.repeat(56)}; give more characters`);
  t.equal((await pinwave(['bundle', 'show'])).code, 2, 'show needs an ID');
});

t.test('telemetry pin-failures: by endpoint and served pin, waves numbered from 1, filters, --json', async (t) => {
  const { h, pinwave } = await liveCli(t);
  const sims = await fleet(h, 3);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b = await push(pinwave, 'thermostats', 'new');
  const ro = JSON.parse((await pinwave(['rollout', 'create', '--bundle', b.id, '--group', 'thermostats', '--waves', '100%', '--min-devices', '10', '--start', '--json'])).stdout);
  t.match((await pinwave(['telemetry', 'pin-failures'])).stdout, /^no pin failures reported$/);
  await until(() => sims.every((s) => s.state.seq === 1), 5000, 'every device applied');
  for (const s of sims) s.recordHandshake('api.example.com', 443, [pin('evil')]);
  await Promise.all(sims.map((s) => s.flushTelemetry()));
  await until(async () => h.gw.pinFailures({}).length === 1 && h.gw.pinFailures({})[0].failures === 3, 5000, 'the reports');

  const r = await pinwave(['telemetry', 'pin-failures', '--rollout', ro.id.slice(0, 16)]);
  t.equal(r.code, 0, r.stderr);
  const [head, row] = r.stdout.split('\n');
  t.match(head, /^endpoint\s+result\s+served pin\s+devices\s+failures\s+rollout \(wave\)\s+groups\s+last seen$/);
  t.match(row, new RegExp(`^api\\.example\\.com:443\\s+pin_mismatch\\s+${pin('evil').replace(/[+/]/g, '\\$&')}\\s+3\\s+3\\s+${ro.id} \\(1\\)\\s+thermostats\\s+\\d{4}-`));
  t.match((await pinwave(['telemetry', 'pin-failures', '--host', 'other.example.com'])).stdout, /^no pin failures reported$/);
  t.match(JSON.parse((await pinwave(['telemetry', 'pin-failures', '--group', 'thermostats', '--json'])).stdout), [{ host: 'api.example.com', devices: 3, failures: 3, waves: [{ rolloutId: ro.id, wave: 0 }] }], 'the API keeps its index from 0');
  t.equal((await pinwave(['telemetry', 'pin-failures', 'extra'])).code, 2);
  t.equal((await pinwave(['telemetry'])).code, 2);
  t.equal((await pinwave(['telemetry', 'nope'])).code, 2);

  const dev = await pinwave(['devices', 'show', 'th-0000']);
  t.equal(dev.code, 0, dev.stderr);
  t.match(dev.stdout, /^device th-0000$/m);
  t.match(dev.stdout, /^ {2}group thermostats, model th-100, firmware 1\.0\.0$/m);
  t.match(dev.stdout, /^ {2}connected since \d{4}-\d\d-\d\dT[\d:.]+Z; last seen \d{4}-.+Z; provisioned \d{4}-.+Z$/m);
  t.match(dev.stdout, /^ {2}pins: seq 1, bundle [0-9a-f]{16}…/m);
  t.match(dev.stdout, new RegExp(`^  rollout ${ro.id} \\(held\\): wave 1, failing since \\d{4}-`, 'm'), 'the rollout it is in, its wave from 1');
  t.match(dev.stdout, new RegExp(`^  last ack: \\d{4}-[^ ]+Z applied, seq 1, bundle [0-9a-f]{16}…, rollout ${ro.id}$`, 'm'));
  t.match(dev.stdout, new RegExp(`^    \\d{4}-[^ ]+Z  api\\.example\\.com:443  pin_mismatch  served ${pin('evil').replace(/[+/]/g, '\\$&')}.*rollout ${ro.id} wave 1$`, 'm'));
  t.notMatch(dev.stdout, /\b1[67]\d{11}\b/, 'no epoch milliseconds');
  const raw = JSON.parse((await pinwave(['devices', 'show', 'th-0000', '--json'])).stdout);
  t.match(raw, { id: 'th-0000', seq: 1, rollout: { id: ro.id, wave: 0, status: 'failing' } }, '--json: the API record for scripts');

  const list = await pinwave(['devices', 'list']);
  t.match(list.stdout.split('\n')[0], /^id\s+group\s+model\s+firmware\s+seq\s+state\s+last seen$/);
  t.match(list.stdout, /^th-0001\s+thermostats\s+th-100\s+1\.0\.0\s+1\s+connected\s+\d{4}-\d\d-\d\dT[\d:.]+Z$/m);
});

t.test('resume --for remaining: every wave from the held one takes the thresholds, the output says which; exit 1 when held again at once', async (t) => {
  const { h, pinwave } = await liveCli(t);
  const sims = await fleet(h, 9, 'b', (i) => ({ flashFails: i < 3 }));
  // The rejecting ones land in wave 1 (seeded order): connect them first, the rest later.
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b = await push(pinwave, 'thermostats', 'new');
  const ro = JSON.parse((await pinwave(['rollout', 'create', '--bundle', b.id, '--group', 'thermostats', '--waves', '100%', '--min-devices', '2', '--start', '--json'])).stdout);
  await until(async () => (await h.gw.getRollout(ro.id)).state === 'held', 10_000, 'the hold');

  t.equal((await pinwave(['rollout', 'resume', ro.id, '--for', 'remaining'])).code, 2, '--for without a threshold is a usage error');
  t.equal((await pinwave(['rollout', 'resume', ro.id, '--for', 'all', '--failure-threshold', '0.9'])).code, 2);
  const again = await pinwave(['rollout', 'resume', ro.id.slice(0, 14), '--failure-threshold', '0.01']);
  t.equal(again.code, 1, 'held again at once: exit 1');
  t.match(again.stdout, new RegExp(`^resumed ${ro.id} at wave 1/1$`, 'm'));
  t.match(again.stdout, /^ {2}wave 1\/1 \(held\): ack ≥ 95%, fail ≤ 1%, min devices 2, unreachable ≤ 50%, timeout 1h, soak 0s, verified required {2}← new thresholds$/m);
  t.match(again.stdout, /^held again at once: wave 1 failure_threshold$/m);

  const ok = await pinwave(['rollout', 'resume', ro.id, '--failure-threshold', '0.9', '--ack-threshold', '0.5', '--for', 'remaining']);
  t.equal(ok.code, 0, `runs on: exit 0\n${ok.stdout}\n${ok.stderr}`);
  t.notMatch(ok.stdout, /again at once/);

  // Three waves: held in wave 2, resumed for the held wave only, then for the remaining ones.
  const b2 = await push(pinwave, 'thermostats', 'newer');
  await h.gw.abortRollout(ro.id, 'adam');
  // A seed whose first wave of three holds none of the rejecting devices, so no threshold below holds it.
  const ids = sims.map((_, i) => `b-${String(i).padStart(4, '0')}`);
  const seed = Array.from({ length: 100 }, (_, i) => `s${i}`).find((s) => seedOrder(s, ids).slice(0, 3).filter((id) => id < 'b-0003').length === 0)!;
  const three = JSON.parse((await pinwave(['rollout', 'create', '--bundle', b2.id, '--group', 'thermostats', '--waves', '3,6,100%', '--seed', seed, '--start', '--json'])).stdout);
  await pinwave(['rollout', 'pause', three.id]);
  const held = await pinwave(['rollout', 'resume', three.id, '--failure-threshold', '0.5']);
  t.equal(held.code, 0, held.stderr);
  t.match(held.stdout, /^ {2}wave 1\/3 \(held\): .*fail ≤ 50%.* {2}← new thresholds$/m);
  t.match(held.stdout, /^ {2}wave 2\/3: .*fail ≤ 2%.* {2}\(as planned: --for remaining changes it too\)$/m);
  t.match(held.stdout, /^ {2}wave 3\/3: .*fail ≤ 2%/m);
  await pinwave(['rollout', 'pause', three.id]);
  const rest = await pinwave(['rollout', 'resume', three.id, '--failure-threshold', '0.25', '--for', 'remaining']);
  t.equal(rest.code, 0, rest.stderr);
  for (const n of [1, 2, 3]) t.match(rest.stdout, new RegExp(`^  wave ${n}/3${n === 1 ? ' \\(held\\)' : ''}: .*fail ≤ 25%.* {2}← new thresholds$`, 'm'));
  // The wave may advance right after the resume: the resume is the last decision an operator made.
  const decisions = JSON.parse((await pinwave(['rollout', 'status', three.id, '--json'])).stdout).decisions as Array<{ action: string; actor: string }>;
  t.match(decisions.findLast((d) => d.action === 'resume'), { action: 'resume', scope: 'remaining' });
  t.notMatch((await pinwave(['rollout', 'status', three.id])).stdout, /wave 0\b/, 'waves from 1 in the status view');
});

t.test('a pending rollout is named as pending, never as running, when its devices are asked for again', async (t) => {
  const { h, pinwave } = await liveCli(t);
  await fleet(h, 3);
  const b = await push(pinwave, 'thermostats', 'new');
  const first = JSON.parse((await pinwave(['rollout', 'create', '--bundle', b.id, '--group', 'thermostats', '--json'])).stdout);
  t.equal(first.state, 'pending');
  const second = await pinwave(['rollout', 'create', '--bundle', b.id, '--group', 'thermostats']);
  t.equal(second.code, 1);
  t.match(second.stderr, `409 Conflict: 3 targeted devices are already in rollout ${first.id}, which is pending: th-0000, th-0001, th-0002`);
  t.notMatch(second.stderr, /running/);
});

t.test('a closed stdout ends the command quietly: `pinwave rollout abort ID | head -1` has no EPIPE trace', async (t) => {
  const { h, api } = await liveCli(t);
  await fleet(h, 2);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] }, 'adam');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' } }, 'adam');
  const child = spawn(...withoutCoverage(process.execPath, [ENTRY, 'rollout', 'abort', rollout.id]), { env: { ...process.env, PINWAVE_API: api, PINWAVE_TOKEN: TOKENS.admin }, stdio: ['ignore', 'pipe', 'pipe'] });
  // The reader is gone before the command writes a line: every write fails with EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(stderr, '', 'nothing on stderr');
  t.equal(code, 0, 'the abort was done: exit 0');
  t.equal((await h.gw.getRollout(rollout.id)).state, 'aborted');
});
