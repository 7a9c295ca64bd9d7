// The operator CLI against a live gateway over a real HTTP port, with real MQTT devices.
import t from 'tap';
import { statSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOKENS } from '../fixtures/http.ts';
import { liveCli } from '../fixtures/cli.ts';
import { pin, until } from '../fixtures/gateway.ts';

t.test('provision, push a bundle, create/start a rollout and follow it to completion from the CLI', async (t) => {
  const { h, pinwave } = await liveCli(t);
  const dir = h.dir;
  const csv = join(dir, 'devices.csv');
  writeFileSync(csv, 'id,group,model,firmware\n' + Array.from({ length: 4 }, (_, i) => `th-${i},thermostats,th-100,1.0.0`).join('\n') + '\n');
  const tokensFile = join(dir, 'tokens.json');
  const provisioned = await pinwave(['devices', 'provision', csv, '--out', tokensFile]);
  t.equal(provisioned.code, 0, provisioned.stderr);
  t.match(provisioned.stdout, /provisioned 4 devices/);
  t.equal(statSync(tokensFile).mode & 0o777, 0o600, 'the tokens file is 0600');
  const { devices } = JSON.parse(readFileSync(tokensFile, 'utf8')) as { devices: { id: string; token: string }[] };
  t.equal(devices.length, 4);
  t.equal((await pinwave(['devices', 'provision', csv, '--out', tokensFile])).code, 2, 'an existing tokens file is never written over');

  const sims = devices.map((d) => h.device(d.id, d.token));
  await Promise.all(sims.map((d) => d.connect()));
  t.teardown(() => Promise.all(sims.map((d) => d.disconnect())));

  const pushed = await pinwave(['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('new')}`, '--pin', `api.example.com=${pin('backup')}`, '--json']);
  t.equal(pushed.code, 0, pushed.stderr);
  const bundle = JSON.parse(pushed.stdout);
  t.equal(bundle.seq, 1);

  const created = await pinwave(['rollout', 'create', '--bundle', bundle.id, '--group', 'thermostats', '--waves', '50%,100%', '--json']);
  t.equal(created.code, 0, created.stderr);
  const rollout = JSON.parse(created.stdout);
  t.equal(rollout.state, 'pending');
  t.equal((await pinwave(['rollout', 'start', rollout.id])).code, 0);
  await until(async () => {
    await h.gw.tick();
    const s = await pinwave(['rollout', 'status', rollout.id, '--json']);
    return JSON.parse(s.stdout).state === 'completed';
  }, 10_000, 'the rollout to complete');
  const status = await pinwave(['rollout', 'status', rollout.id]);
  t.equal(status.code, 0);
  t.match(status.stdout, /completed/);
  t.match(status.stdout, /wave 2\/2\s+passed/);

  const listed = JSON.parse((await pinwave(['devices', 'list', '--group', 'thermostats', '--json'])).stdout);
  t.same(listed.map((d: { seq: number }) => d.seq), [1, 1, 1, 1], 'every device reports the new seq');
  t.match((await pinwave(['devices', 'stuck', '--group', 'thermostats'])).stdout, /no stuck devices/);
  t.match((await pinwave(['devices', 'show', 'th-0'])).stdout, /^device th-0$/m);
  t.match((await pinwave(['devices', 'show', 'th-0', '--json'])).stdout, /"id": "th-0"/);
  t.match((await pinwave(['rollout', 'list'])).stdout, new RegExp(`${rollout.id} completed`));
});

t.test('rollout status --watch on a rollout that gets held exits 1, one line per change without a terminal', async (t) => {
  const { h, pinwave } = await liveCli(t);
  const { devices } = await h.gw.provision(Array.from({ length: 6 }, (_, i) => ({ id: `b-${i}`, group: 'boilers' })));
  const sims = devices.map((d) => h.device(d.id, d.token, { flashFails: true }, 'boilers'));
  await Promise.all(sims.map((d) => d.connect()));
  t.teardown(() => Promise.all(sims.map((d) => d.disconnect())));
  const bundle = JSON.parse((await pinwave(['bundle', 'push', '--group', 'boilers', '--pin', `api.example.com=${pin('n')}`, '--pin', `api.example.com=${pin('b')}`, '--json'])).stdout);
  const created = JSON.parse((await pinwave(['rollout', 'create', '--bundle', bundle.id, '--group', 'boilers', '--waves', '100%', '--min-devices', '2', '--start', '--json'])).stdout);
  const watched = await pinwave(['rollout', 'status', created.id, '--watch', '--interval', '100ms']);
  t.equal(watched.code, 1, 'held: the operator has something to decide');
  t.match(watched.stdout, /held/);
  t.match(watched.stdout, /rejected \d+ \(apply_failed \d+\)/, 'the held wave shows why');
  t.match(watched.stdout, /last decision: .* hold wave 1: failure_threshold/);
  const stuck = await pinwave(['devices', 'stuck', '--rollout', created.id, '--csv']);
  t.match(stuck.stdout.split('\n')[0], /^id,/, 'CSV with a header');
  t.match(stuck.stdout, /rejected:apply_failed/);
  const resumed = await pinwave(['rollout', 'resume', created.id, '--failure-threshold', '1']);
  t.equal(resumed.code, 0, resumed.stderr);
  const aborted = await pinwave(['rollout', 'abort', created.id, '--json']);
  t.equal(JSON.parse(aborted.stdout).state, 'aborted');
});

t.test('errors: the wrong role, an unknown id, a forbidden action, and usage', async (t) => {
  const { pinwave, api } = await liveCli(t);
  const viewer = await pinwave(['bundle', 'push', '--group', 'g', '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`], TOKENS.viewer);
  t.equal(viewer.code, 1);
  t.match(viewer.stderr, /403/);
  const noToken = await pinwave(['rollout', 'list'], '');
  t.equal(noToken.code, 1);
  t.match(noToken.stderr, /401 .*PINWAVE_TOKEN/);
  const unknown = await pinwave(['rollout', 'status', 'r-nope-not-here']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /404/);
  t.match((await pinwave(['rollout', 'status', 'r-nope'])).stderr, /400 Bad Request: rollout id "r-nope" is neither a rollout id nor a prefix of at least 8 characters/);
  t.equal((await pinwave(['rollout', 'create', '--group', 'g'])).code, 2, 'a missing --bundle is a usage error');
  t.match((await pinwave(['rollout', 'create', '--bundle', 'x', '--group', 'g', '--devices', 'a'])).stderr, /exactly one of --group/);
  t.match((await pinwave(['rollout', 'create', '--bundle', 'x', '--group', 'g', '--ack-threshold', '2'])).stderr, /--ack-threshold expects a ratio/);
  t.match((await pinwave(['rollout', 'status', 'a', 'b'])).stderr, /exactly one rollout ID/);
  t.match((await pinwave(['devices', 'list', '--api', 'ftp://x'])).stderr, /--api expects an http/);
  const down = await pinwave(['rollout', 'list', '--api', 'http://127.0.0.1:9']);
  t.equal(down.code, 1);
  t.match(down.stderr, /cannot reach the gateway at http:\/\/127\.0\.0\.1:9/);
  t.ok(api.startsWith('http://127.0.0.1:'));
});
