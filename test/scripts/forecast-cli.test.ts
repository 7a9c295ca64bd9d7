// `pinwave forecast` (the key by --pin, --cert or --connect) and `rollout create --next-key / --force`
// against a live gateway whose config has pre-flight refuse a pin set sharing nothing with what runs.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveCli } from '../fixtures/cli.ts';
import { pin } from '../fixtures/gateway.ts';
import { makeCertificate, startTlsEndpoint } from '../../device-sim/endpoints.ts';

t.test('forecast and forced rollouts from the CLI', async (t) => {
  const { h, pinwave } = await liveCli(t, {}, { preflight: { requireOverlap: true } });
  await h.gw.provision(Array.from({ length: 3 }, (_, i) => ({ id: `th-${i}`, group: 'thermostats', model: 'th-100' })));

  t.test('forecast by --pin: every device on the firmware pins would lock out of a new key, none of the old one', async (t) => {
    const r = await pinwave(['forecast', '--endpoint', 'api.example.com:443', '--pin', pin('new')]);
    t.equal(r.code, 1, r.stderr);
    t.match(r.stdout, /^api\.example\.com:443 serving sha256\/.{13}… at 2026-01-01T00:00:00\.000Z: locked out 3 of 3 devices/);
    t.match(r.stdout, /by model: th-100 3/);
    t.match(r.stdout, /^th-0\s+thermostats\s+th-100\s+-\s+locked out/m);
    const ok = await pinwave(['forecast', '--endpoint', 'api.example.com:443', '--pin', pin('old'), '--json']);
    t.equal(ok.code, 0);
    t.match(JSON.parse(ok.stdout), { lockedOut: 0, devices: 3, items: [] });
  });

  t.test('forecast of an IPv6 endpoint writes it [::1]:443, and a --pin given twice is one key', async (t) => {
    const r = await pinwave(['forecast', '--endpoint', '[::1]:443', '--pin', pin('new'), '--pin', pin('new')]);
    t.match(r.stdout, /^\[::1\]:443 serving sha256\/.{13}… at /, r.stderr);
    t.notMatch(r.stdout.split('\n')[0], /…, /, 'the pin once');
    const json = JSON.parse((await pinwave(['forecast', '--endpoint', '[::1]:443', '--pin', pin('new'), '--pin', pin('new'), '--json'])).stdout);
    t.same([json.endpoint, json.pins], ['[::1]:443', [pin('new')]]);
  });

  t.test('forecast by --cert and by --connect: the key of a certificate, or of what an endpoint serves', async (t) => {
    const dir = t.testdir();
    const cert = makeCertificate('api.example.com');
    writeFileSync(join(dir, 'next.pem'), cert.cert);
    const byCert = JSON.parse((await pinwave(['forecast', '--endpoint', 'api.example.com:443', '--cert', join(dir, 'next.pem'), '--json'])).stdout);
    t.same([byCert.pins, byCert.lockedOut], [[cert.pin], 3]);
    const api = await startTlsEndpoint({ name: 'api.example.com' });
    t.teardown(() => api.close());
    const byConnect = JSON.parse((await pinwave(['forecast', '--endpoint', 'api.example.com:443', '--connect', '--via', `127.0.0.1:${api.address.port}`, '--json'])).stdout);
    t.same([byConnect.pins, byConnect.lockedOut], [[api.pins[0]], 3]);
    t.match((await pinwave(['forecast', '--endpoint', 'api.example.com:443', '--pin', pin('new'), '--at', '2027-06-01', '--json'])).stdout, /"at": "2027-06-01T00:00:00.000Z"/);
  });

  t.test('usage: one source of the key, a HOST:PORT, a date', async (t) => {
    for (const args of [['--endpoint', 'api.example.com:443'], ['--endpoint', 'api.example.com:443', '--pin', pin('a'), '--connect'], ['--endpoint', 'api.example.com', '--pin', pin('a')], ['--endpoint', 'api.example.com:443', '--pin', 'sha256/x'], ['--endpoint', 'api.example.com:443', '--pin', pin('a'), '--at', 'soon'], ['--endpoint', 'api.example.com:443', '--pin', pin('a'), '--at', '2027-02-30'], ['--endpoint', 'api.example.com:443', '--pin', pin('a'), '--at', '12'], ['--endpoint', 'a:1', '--pin', pin('a'), '--via', '1.2.3.4:5']]) {
      const r = await pinwave(['forecast', ...args]);
      t.equal(r.code, 2, args.join(' '));
      t.match(r.stderr, /\n\nUsage:\n  pinwave forecast --endpoint/, `${args.join(' ')}: the forecast's own usage`);
    }
  });

  t.test('rollout create: refused for no overlap, let through by --next-key, forced with --force REASON', async (t) => {
    const pushed = JSON.parse((await pinwave(['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('new')}`, '--pin', `api.example.com=${pin('backup2')}`, '--json'])).stdout);
    const refused = await pinwave(['rollout', 'create', '--bundle', pushed.id, '--group', 'thermostats']);
    t.equal(refused.code, 1);
    t.match(refused.stderr, /api\.example\.com:443: the new pin set keeps no pin of the firmware pins of model th-100/);
    t.equal((await pinwave(['rollout', 'create', '--bundle', pushed.id, '--group', 'thermostats', '--next-key', 'api.example.com:443'])).code, 2, '--next-key needs =PIN');
    const next = await pinwave(['rollout', 'create', '--bundle', pushed.id, '--devices', 'th-0', '--next-key', `api.example.com:443=${pin('new')}`, '--json']);
    t.equal(next.code, 0, next.stderr);
    t.equal(JSON.parse(next.stdout).preflight.ok, true);
    const forced = await pinwave(['rollout', 'create', '--bundle', pushed.id, '--devices', 'th-1', '--force', 'service switched keys at 09:00']);
    t.equal(forced.code, 0, forced.stderr);
    t.match(forced.stderr, /forced past pre-flight by adam: service switched keys at 09:00/);
  });
});
