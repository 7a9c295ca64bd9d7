// `pinwave manifest push|list`, `pinwave bundle upload` (the round trip with an offline `bundle
// create`), an upload-only gateway, and `rollout rollback --bundle`, against a live gateway.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveCli } from '../fixtures/cli.ts';
import { fleet, pin, until } from '../fixtures/gateway.ts';

const esc = (s: string) => s.replace(/[+/.()]/g, '\\$&');

t.test('manifest push and list: every problem listed, the config wins with a 409 naming it, an identical push changes nothing', async (t) => {
  const { h, pinwave } = await liveCli(t);
  const dir = t.testdir();
  const file = (name: string, value: unknown) => (writeFileSync(join(dir, name), JSON.stringify(value)), join(dir, name));

  const same = await pinwave(['manifest', 'push', file('same.json', h.manifest)]);
  t.equal(same.code, 0, same.stderr);
  t.equal(same.stdout, "unchanged (the gateway has this manifest already): th-100 1.0.0 (from the gateway's config)");
  const conflict = await pinwave(['manifest', 'push', file('conflict.json', { ...h.manifest, maxBundleBytes: 512 })]);
  t.equal(conflict.code, 1);
  t.match(conflict.stderr, /409 Conflict: the gateway's config has a different manifest for model "th-100" firmware "1\.0\.0" \(it differs in maxBundleBytes\), and the config's wins/);

  const lock = { model: 'lk-200', firmware: '2.1', trustedKeys: h.manifest.trustedKeys, pins: [{ host: 'lock.example.com', port: 8443, pins: [pin('l1'), pin('l2')] }] };
  const created = await pinwave(['manifest', 'push', file('lock.json', lock)]);
  t.equal(created.code, 0, created.stderr);
  t.equal(created.stdout, 'pushed: lk-200 2.1');
  const viewer = await pinwave(['manifest', 'push', file('lock2.json', { ...lock, firmware: '2.2' })], (await import('../fixtures/http.ts')).TOKENS.operator);
  t.equal(viewer.code, 1, 'pushing needs an admin');
  t.match(viewer.stderr, /403/);

  const bad = await pinwave(['manifest', 'push', file('bad.json', { ...lock, color: 'red', pins: [{ host: 'x.example.com', pins: [pin('a'), 'sha256/AAAA'] }] })]);
  t.equal(bad.code, 1);
  t.match(bad.stdout, /^invalid: .*bad\.json\n\/: unknown field "color"\n\/pins\/0\/pins\/1: expected 32 bytes/, 'every problem, not only the first');

  const list = await pinwave(['manifest', 'list']);
  t.equal(list.code, 0, list.stderr);
  const lines = list.stdout.split('\n');
  t.match(lines[0], /^model\s+firmware\s+source\s+keys\s+pinned\s+pushed$/);
  t.match(lines[1], /^th-100\s+1\.0\.0\s+config\s+1\s+api\.example\.com:443\s+-$/);
  t.match(lines[2], /^lk-200\s+2\.1\s+pushed\s+1\s+lock\.example\.com:8443\s+\d{4}-\d\d-\d\dT[\d:.]+Z by adam$/);
  t.same(JSON.parse((await pinwave(['manifest', 'list', '--json'])).stdout).map((e: { model: string; source: string }) => `${e.model} ${e.source}`), ['th-100 config', 'lk-200 pushed']);
  t.equal((await pinwave(['manifest', 'push'])).code, 2, 'push needs a FILE');
});

t.test('bundle create offline, bundle upload: accepted under a key the group trusts, refused with the verifier reason', async (t) => {
  const { h, pinwave } = await liveCli(t);
  const sims = await fleet(h, 2);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const dir = t.testdir();
  const create = async (name: string, seq: number, group = 'thermostats', key = h.keyPath) => {
    const out = join(dir, name);
    const r = await pinwave(['bundle', 'create', '--key', key, '--group', group, '--seq', String(seq), '--pin', `api.example.com=${pin('up')}`, '--pin', `api.example.com=${pin('backup')}`, '--out', out]);
    t.equal(r.code, 0, r.stderr);
    return out;
  };
  const one = await create('one.cose', 1);
  // The clock of the harness gateway is 2026-01-01; bundle create signs with the real clock, so the
  // gateway sees a bundle issued ahead of it. Move it to now.
  h.clock.t = Date.now();
  const up = await pinwave(['bundle', 'upload', one]);
  t.equal(up.code, 0, up.stderr);
  t.match(up.stdout, /^bundle [0-9a-f]{64}\n {2}group thermostats, seq 1, \d+ bytes, signed offline \(kid [0-9a-f]{16}\), uploaded$/);
  const again = await pinwave(['bundle', 'upload', one]);
  t.equal(again.code, 1);
  t.equal(again.stdout, 'rejected: replayed');
  t.match((await pinwave(['bundle', 'upload', await create('gap.cose', 7)])).stdout, 'rejected: seq_not_next');
  const other = await pinwave(['bundle', 'upload', await create('locks.cose', 2, 'locks'), '--group', 'thermostats']);
  t.equal(other.stdout, 'rejected: wrong_group');
  const strangerDir = join(dir, 'stranger');
  t.equal((await pinwave(['keygen', '--out', strangerDir])).code, 0);
  const stranger = await pinwave(['bundle', 'upload', await create('stranger.cose', 2, 'thermostats', join(strangerDir, 'signing.key'))]);
  t.equal(stranger.stdout, 'rejected: unknown_key');
  t.match(stranger.stderr, /which group "thermostats" does not trust/);

  const id = /^bundle ([0-9a-f]{64})/.exec(up.stdout)![1];
  const ro = await pinwave(['rollout', 'create', '--bundle', id.slice(0, 8), '--group', 'thermostats', '--waves', '100%', '--start', '--json']);
  t.equal(ro.code, 0, ro.stderr);
  await until(() => sims.every((s) => s.state.seq === 1), 5000, 'the devices to apply the uploaded bundle');
  t.same(sims[0].state.endpoints[0].pins, [pin('up'), pin('backup')].map((p) => p.slice(7)));
});

t.test('an upload-only gateway: bundle push says to upload; rollout rollback --bundle takes an uploaded one', async (t) => {
  const { h, pinwave } = await liveCli(t, {}, { keyPath: null });
  h.clock.t = Date.now();
  const sims = await fleet(h, 2);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const push = await pinwave(['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('a')}`, '--pin', `api.example.com=${pin('b')}`]);
  t.equal(push.code, 1);
  t.match(push.stderr, /409 Conflict: this gateway has no signing key; upload a signed bundle/);
  const dir = t.testdir();
  const sign = async (seq: number, a: string) => {
    const out = join(dir, `${seq}.cose`);
    t.equal((await pinwave(['bundle', 'create', '--key', h.keyPath, '--group', 'thermostats', '--seq', String(seq), '--pin', `api.example.com=${pin(a)}`, '--pin', `api.example.com=${pin('backup')}`, '--out', out])).code, 0);
    const up = await pinwave(['bundle', 'upload', out, '--json']);
    t.equal(up.code, 0, up.stderr);
    return JSON.parse(up.stdout) as { id: string; seq: number };
  };
  const bad = await sign(1, 'bad');
  const ro = JSON.parse((await pinwave(['rollout', 'create', '--bundle', bad.id, '--group', 'thermostats', '--waves', '100%', '--start', '--json'])).stdout);
  await until(() => sims.every((s) => s.state.seq === 1), 5000, 'the bad bundle to apply');
  const cannot = await pinwave(['rollout', 'rollback', ro.id]);
  t.equal(cannot.code, 1);
  t.match(cannot.stderr, new RegExp(`409 Conflict: this gateway has no signing key: sign the bundle to restore elsewhere \\(group thermostats, seq 2, .*pinwave rollout rollback ${esc(ro.id)} --bundle BUNDLE`));
  const restore = await sign(2, 'old');
  const rb = await pinwave(['rollout', 'rollback', ro.id, '--bundle', restore.id.slice(0, 8)]);
  t.equal(rb.code, 0, rb.stderr);
  t.match(rb.stdout, new RegExp(`^rolled back: ${esc(ro.id)} aborted; rollback rollout \\S+ sends bundle ${restore.id} as seq 2$`));
  await until(() => sims.every((s) => s.state.seq === 2), 5000, 'the uploaded rollback to apply');
});

t.test('bundle push --rotate-keys --key-epoch: the gateway signs a key rotation; epochs only go up', async (t) => {
  const { pinwave } = await liveCli(t);
  const dir = t.testdir();
  t.equal((await pinwave(['keygen', '--out', join(dir, 'next')])).code, 0);
  const pub = join(dir, 'next', 'signing.pub');
  const args = (epoch: string) => ['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('a')}`, '--pin', `api.example.com=${pin('b')}`, '--rotate-keys', pub, '--key-epoch', epoch];
  const r = await pinwave(args('1'));
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^bundle [0-9a-f]{64}\n {2}group thermostats, seq 1, \d+ bytes, signed by the gateway \(kid [0-9a-f]{16}\); rotates the trusted keys to 1 key at epoch 1$/);
  const id = /^bundle ([0-9a-f]{64})/.exec(r.stdout)![1];
  t.match((await pinwave(['bundle', 'show', id])).stdout, /key rotation to epoch 1: 1 trusted key/);
  const again = await pinwave(args('1'));
  t.equal(again.code, 1);
  t.match(again.stderr, /rotateKeys\.epoch: must be above 1, .*epochs only go up/);
  t.equal((await pinwave(['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('a')}`, '--key-epoch', '2'])).code, 2, '--key-epoch goes with --rotate-keys');
});

t.test("rollout rollback of a group's first rollout: the 409 names the manifest to push; pushed, the devices get its initial pins; pre-flight is recorded, not a refusal", async (t) => {
  const { h, pinwave } = await liveCli(t, {}, { manifests: [] });
  const sims = await fleet(h, 2);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  const b = JSON.parse((await pinwave(['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('bad')}`, '--pin', `api.example.com=${pin('bad2')}`, '--json'])).stdout);
  const ro = JSON.parse((await pinwave(['rollout', 'create', '--bundle', b.id, '--group', 'thermostats', '--waves', '100%', '--start', '--json'])).stdout);
  await until(() => sims.every((s) => s.state.seq === 1), 5000, 'the first rollout to apply');
  const refused = await pinwave(['rollout', 'rollback', ro.id]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /409 Conflict: rollout \S+ is the first of group "thermostats": .*none for model "th-100" firmware "1\.0\.0" \(2 devices\): push it with `pinwave manifest push FILE`/);

  const dir = t.testdir();
  writeFileSync(join(dir, 'th-100.json'), JSON.stringify({ ...h.manifest, maxBundleBytes: 128 }));
  t.equal((await pinwave(['manifest', 'push', join(dir, 'th-100.json')])).stdout, 'pushed: th-100 1.0.0');
  // That manifest says 128 bytes: pre-flight would refuse any bundle; a rollback goes anyway, recorded.
  const rb = await pinwave(['rollout', 'rollback', ro.id]);
  t.equal(rb.code, 0, rb.stderr);
  t.match(rb.stdout, new RegExp(`^rolled back: ${esc(ro.id)} aborted; rollback rollout (\\S+) sends the pins its group ran before as seq 2$`));
  t.match(rb.stderr, /warning: preflight bypassed for the rollback \(recorded\): 2 devices of model "th-100": too_large/);
  await until(() => sims.every((s) => s.state.seq === 2), 5000, 'the rollback to apply');
  t.same(sims[0].state.endpoints[0].pins, [pin('old'), pin('backup')].map((p) => p.slice(7)), "the manifest's initial pins");
  const id = /rollback rollout (\S+)/.exec(rb.stdout)![1];
  t.match((await pinwave(['rollout', 'status', id])).stdout, /^preflight bypassed for this rollback \(adam, [\d-]+T[\d:.]+Z\): 2 devices of model "th-100": too_large/m);
});
