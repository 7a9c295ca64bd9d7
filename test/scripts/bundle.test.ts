import t from 'tap';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { run } from '../../scripts/cli.ts';
import type { Io } from '../../scripts/args.ts';

const pin = (s: string) => 'sha256/' + createHash('sha256').update(s).digest('base64');

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const sink: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, tty: false };
  return { sink, out, err, text: () => out.join('\n'), errors: () => err.join('\n') };
}

async function pinwave(...args: string[]) {
  const o = io();
  const code = await run(args, o.sink);
  return { code, stdout: o.text(), stderr: o.errors() };
}

t.test('create, inspect and verify a bundle; an independent verifier agrees', async (t) => {
  const dir = t.testdir();
  t.equal((await pinwave('keygen', '--out', dir)).code, 0);
  const out = join(dir, 'b.cbor');
  const created = await pinwave('bundle', 'create', '--key', join(dir, 'signing.key'), '--group', 'thermostats', '--seq', '7',
    '--pin', `api.example.com=${pin('a')}`, '--pin', `api.example.com=${pin('b')}`,
    '--pin', `mqtt.example.com:8883=${pin('c')}`, '--pin', `mqtt.example.com:8883=${pin('d')}`, '--report-only', 'mqtt.example.com:8883',
    '--expires-in', '12h', '--out', out);
  t.equal(created.code, 0, created.stderr);
  const summary = JSON.parse(created.stdout);
  t.equal(summary.seq, 7);
  t.equal(summary.group, 'thermostats');
  t.equal(summary.size, readFileSync(out).length);

  const inspected = await pinwave('bundle', 'inspect', out);
  t.equal(inspected.code, 0);
  const b = JSON.parse(inspected.stdout);
  t.equal(b.id, summary.id);
  t.same(b.endpoints.map((e: { host: string; port: number; mode: string; pins: string[] }) => [e.host, e.port, e.mode, e.pins]), [
    ['api.example.com', 443, 'enforce', [pin('a'), pin('b')]],
    ['mqtt.example.com', 8883, 'report-only', [pin('c'), pin('d')]],
  ]);
  t.equal(b.exp - b.iat, 12 * 3600);

  const pub = join(dir, 'signing.pub');
  t.same(await pinwave('bundle', 'verify', out, '--pub', pub, '--group', 'thermostats'), { code: 0, stdout: 'valid', stderr: (await pinwave('bundle', 'verify', out, '--pub', pub, '--group', 'thermostats')).stderr });
  t.equal((await pinwave('bundle', 'verify', out, '--pub', pub, '--group', 'boilers')).stdout, 'rejected: wrong_group');
  t.equal((await pinwave('bundle', 'verify', out, '--pub', pub, '--group', 'thermostats', '--current-seq', '7')).stdout, 'rejected: replayed');
  const later = new Date((b.exp + 3600) * 1000).toISOString();
  t.equal((await pinwave('bundle', 'verify', out, '--pub', pub, '--group', 'thermostats', '--now', later)).stdout, 'rejected: expired');
  t.equal((await pinwave('bundle', 'verify', out, '--pub', pub, '--group', 'thermostats', '--now', String(b.iat - 3600))).stdout, 'rejected: not_yet_valid');
  t.equal((await pinwave('bundle', 'verify', out, '--pub', pub, '--group', 'thermostats', '--max-bytes', '100')).stdout, 'rejected: too_large');
  const other = join(dir, 'other');
  await pinwave('keygen', '--out', other);
  t.equal((await pinwave('bundle', 'verify', out, '--pub', join(other, 'signing.pub'), '--group', 'thermostats')).stdout, 'rejected: unknown_key');
  const tampered = join(dir, 'tampered.cbor');
  const bytes = readFileSync(out);
  bytes[bytes.length - 5] ^= 1;
  writeFileSync(tampered, bytes);
  t.equal((await pinwave('bundle', 'verify', tampered, '--pub', pub, '--group', 'thermostats')).stdout, 'rejected: bad_signature');

  // Python cbor2 + PyNaCl, and openssl for the raw public key: no code shared with ours.
  const raw = execFileSync('openssl', ['pkey', '-pubin', '-in', pub, '-outform', 'der']).subarray(-32).toString('hex');
  const py = spawnSync('/usr/bin/python3', [new URL('../interop/verify_bundle.py', import.meta.url).pathname, out, raw, 'thermostats'], { encoding: 'utf8' });
  t.equal(py.status, 0, py.stdout + py.stderr);
  const independent = JSON.parse(py.stdout);
  t.equal(independent.id, summary.id);
  t.equal(independent.seq, 7);
  t.same(independent.endpoints[1].pins, [pin('c'), pin('d')]);
});

t.test('keys made by openssl genpkey sign bundles; a loose key file mode is warned about', async (t) => {
  const dir = t.testdir();
  const key = join(dir, 'o.key');
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]);
  execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', join(dir, 'o.pub')]);
  chmodSync(key, 0o644);
  const out = join(dir, 'b.cbor');
  const created = await pinwave('bundle', 'create', '--key', key, '--group', 'g', '--seq', '1', '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`, '--out', out);
  t.equal(created.code, 0);
  t.match(created.stderr, /readable by group or others \(mode 0644\); run: chmod 600/);
  t.equal((await pinwave('bundle', 'verify', out, '--pub', join(dir, 'o.pub'), '--group', 'g')).code, 0);
});

t.test('key rotation flags produce a rotating bundle', async (t) => {
  const dir = t.testdir();
  await pinwave('keygen', '--out', join(dir, 'a'));
  await pinwave('keygen', '--out', join(dir, 'b'));
  const out = join(dir, 'r.cbor');
  const r = await pinwave('bundle', 'create', '--key', join(dir, 'a', 'signing.key'), '--group', 'g', '--seq', '2', '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`,
    '--rotate-keys', join(dir, 'a', 'signing.pub'), '--rotate-keys', join(dir, 'b', 'signing.pub'), '--key-epoch', '1', '--out', out);
  t.equal(r.code, 0, r.stderr);
  const b = JSON.parse((await pinwave('bundle', 'inspect', out)).stdout);
  t.equal(b.keyRotation.epoch, 1);
  t.equal(b.keyRotation.keys.length, 2);
});

t.test('wrong or missing flags exit 2 with a message naming the flag', async (t) => {
  const dir = t.testdir();
  await pinwave('keygen', '--out', dir);
  const key = join(dir, 'signing.key');
  const base = ['bundle', 'create', '--key', key, '--group', 'g', '--seq', '1', '--out', join(dir, 'x.cbor')];
  const cases: [string[], RegExp][] = [
    [['bundle', 'create', '--group', 'g'], /missing required flag --key/],
    [[...base], /missing required flag --pin/],
    [[...base, '--pin', `h.example.com=${pin('a')}`], /h\.example\.com:443 has 1 distinct pin/],
    [[...base, '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('a')}`], /has 1 distinct pin/],
    [[...base, '--pin', 'h.example.com=sha256/AAAA'], /--pin h\.example\.com: .*32 bytes/],
    [[...base, '--pin', `h.example.com:99999=${pin('a')}`], /--pin expects HOST\[:PORT\]/],
    [[...base, '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`, '--expires-in', 'soon'], /--expires-in expects a duration/],
    [[...base, '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`, '--report-only', 'other.example.com'], /--report-only other\.example\.com: no --pin/],
    [['bundle', 'create', '--key', key, '--group', 'g', '--seq', 'seven'], /--seq expects a non-negative integer, got "seven"/],
    [['bundle', 'push', '--group', 'g', '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`, '--expires-in', '0s'], /--expires-in must be more than 0/],
    [['bundle', 'push', '--group', 'g', '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`, '--expires-in', '36501d'], /--expires-in must be at most 100 years, got "36501d"/],
    [['bundle', 'create', '--colour', 'red'], /Unknown option '--colour'/],
    [['bundle', 'frobnicate'], /unknown subcommand "frobnicate"/],
    [['bundle', 'verify', 'x.cbor', '--group', 'g'], /missing required flag --pub/],
    [['bundle', 'verify', 'x.cbor', '--pub', join(dir, 'signing.pub'), '--group', 'g', '--now', 'yesterday'], /--now expects an ISO 8601 time/],
    [['bundle', 'verify', 'x.cbor', '--pub', join(dir, 'signing.pub'), '--group', 'g', '--now', 'March 7'], /--now expects an ISO 8601 time/],
    [['bundle', 'verify', 'x.cbor', '--pub', join(dir, 'signing.pub'), '--group', 'g', '--now', '2027-02-30T00:00:00Z'], /--now expects an ISO 8601 time/],
    [['manifest', 'create', '--model', 'm'], /missing required flag --key/],
  ];
  for (const [args, message] of cases) {
    const r = await pinwave(...args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
  }
  const missing = await pinwave('bundle', 'inspect', join(dir, 'nope.cbor'));
  t.equal(missing.code, 1, 'a missing file is an error, not a usage error');
  t.match(missing.stderr, /cannot read .*nope\.cbor: ENOENT/);
});

t.test('inspect: a file that is no bundle says what it is not, what was expected and what it found', async (t) => {
  const dir = t.testdir();
  const { encodeCanonical, Tag } = await import('../../firmware-manifest/cbor.ts');
  const sign1 = (payload: Uint8Array) => encodeCanonical(new Tag([encodeCanonical(new Map<number, number | Uint8Array>([[1, -8], [4, new Uint8Array(8)]])), new Map(), payload, new Uint8Array(64)], 18));
  const expected = 'is not a pinwave bundle: expected a COSE_Sign1 message (CBOR tag 18) that signs a pin bundle, found';
  const cases: Array<[string, Uint8Array | string, string]> = [
    ['random.bin', Buffer.from('3fa19c0be2a1f40077', 'hex'), `${expected} bytes that are not CBOR (they start 3fa19c0be2a1f400…)`],
    ['empty.bin', '', `${expected} an empty file`],
    ['map.cbor', encodeCanonical(new Map([[1, 2]])), `${expected} a CBOR map`],
    ['array.cbor', encodeCanonical([1, 2, 3, 4]), `${expected} a CBOR array (a COSE_Sign1 message must carry its tag)`],
    ['tag.cbor', encodeCanonical(new Tag(new Uint8Array(4), 61)), `${expected} CBOR tag 61`],
    ['m.json', '{"model":"th-100","firmware":"1.0.0"}\n', `${expected} text ("{"model":"th-100","firmware":"1.0.0"}")`],
    ['short-sig.cbor', encodeCanonical(new Tag([new Uint8Array(0), new Map(), new Uint8Array(0), new Uint8Array(3)], 18)), 'is not a pinwave bundle: it is a COSE_Sign1 message (CBOR tag 18), but signature must be 64 bytes (Ed25519)'],
    ['other-payload.cbor', sign1(encodeCanonical('hello')), 'is not a pinwave bundle: it is a COSE_Sign1 message, but its payload is not a pin bundle: payload must be a map'],
  ];
  for (const [name, bytes, message] of cases) {
    const file = join(dir, name);
    writeFileSync(file, bytes);
    const r = await pinwave('bundle', 'inspect', file);
    t.equal(r.code, 1, name);
    t.equal(r.stdout, 'rejected: malformed', name);
    t.equal(r.stderr, `${file} ${message}`, name);
  }
});

t.test('manifest create and validate', async (t) => {
  const dir = t.testdir();
  await pinwave('keygen', '--out', dir);
  const json = join(dir, 'm.json');
  const cbor = join(dir, 'm.cbor');
  const created = await pinwave('manifest', 'create', '--model', 'th-100', '--firmware', '1.4.2', '--key', join(dir, 'signing.pub'),
    '--pin', `api.example.com=${pin('a')}`, '--pin', `api.example.com=${pin('b')}`, '--max-bundle-bytes', '1024', '--clock-skew', '2m', '--out', json, '--cbor', cbor);
  t.equal(created.code, 0, created.stderr);
  const m = JSON.parse(readFileSync(json, 'utf8'));
  t.equal(m.clockSkewSeconds, 120);
  t.equal(m.maxBundleBytes, 1024);
  t.same(await pinwave('manifest', 'validate', json), { code: 0, stdout: 'valid: th-100 1.4.2, 1 trusted key, 1 pinned endpoint', stderr: '' });
  t.equal((await pinwave('manifest', 'validate', cbor)).code, 0);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ ...m, pins: [{ host: 'api.example.com', pins: [pin('a'), 'sha256/xyz'] }] }));
  const r = await pinwave('manifest', 'validate', bad);
  t.equal(r.code, 1);
  t.match(r.stdout, /\/pins\/0\/pins\/1: /);
  writeFileSync(bad, '{ not json');
  t.match((await pinwave('manifest', 'validate', bad)).stdout, /is not JSON/);
});

t.test('manifest validate and push: JSON that is no object (an array, a number, null) is invalid, naming the file and what a manifest is', async (t) => {
  const dir = t.testdir();
  for (const [text, got] of [['[]', 'an array'], ['[{"model":"th-100"}]', 'an array'], ['42', 'a number'], ['null', 'null'], ['"th-100"', 'a string']]) {
    const file = join(dir, 'm.json');
    writeFileSync(file, text);
    const r = await pinwave('manifest', 'validate', file);
    t.equal(r.code, 1, text);
    t.equal(r.stdout, `invalid: ${file}\n/: a manifest is a JSON object ({ "model", "firmware", "trustedKeys", "pins", ... }), got ${got}`, text);
    t.notMatch(r.stdout, /CBOR/, 'JSON text is not read as the CBOR form');
    const pushed = await pinwave('manifest', 'push', file, '--json', '--api', 'http://127.0.0.1:9');
    t.equal(pushed.code, 1, text);
    t.same(JSON.parse(pushed.stdout), { ok: false, file, errors: [{ path: '', message: `a manifest is a JSON object ({ "model", "firmware", "trustedKeys", "pins", ... }), got ${got}` }] });
  }
  writeFileSync(join(dir, 'empty.json'), ' \n');
  t.same(await pinwave('manifest', 'validate', join(dir, 'empty.json')), { code: 1, stdout: `invalid: ${join(dir, 'empty.json')} is empty`, stderr: '' });
});

t.test('create refuses an --expires-in beyond what the gateway signs (100 years), before anything is signed or written', async (t) => {
  const dir = t.testdir();
  await pinwave('keygen', '--out', dir);
  const out = join(dir, 'far.cbor');
  const r = await pinwave('bundle', 'create', '--key', join(dir, 'signing.key'), '--group', 'g', '--seq', '1',
    '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`, '--expires-in', '99999999d', '--out', out);
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, /--expires-in must be at most 100 years, got "99999999d"/);
  t.notOk(existsSync(out), 'no bundle file is left behind');
  const ok = await pinwave('bundle', 'create', '--key', join(dir, 'signing.key'), '--group', 'g', '--seq', '1',
    '--pin', `h.example.com=${pin('a')}`, '--pin', `h.example.com=${pin('b')}`, '--expires-in', '36500d', '--out', out);
  t.equal(ok.code, 0, ok.stderr);
});
