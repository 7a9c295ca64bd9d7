// The conformance vectors, `pinwave bundle verify` and an independent implementation
// (test/interop/verify_bundle.py: Python cbor2 + PyNaCl, written from docs/bundle-format.md) agree
// on every vector: the outcome, the reason, the bundle id and the state after.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../scripts/cli.ts';
import { spkiPemFromRaw } from '../../firmware-manifest/keys.ts';
import { emptyState } from '../../firmware-manifest/trust-state.ts';
import type { Io } from '../../scripts/args.ts';
import type { BundleVector } from '../../firmware-manifest/vectors.ts';

const dir = fileURLToPath(new URL('../../firmware-manifest/vectors/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.startsWith('bundle-') && f.endsWith('.json')).sort();
const vectors: BundleVector[] = files.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
const PY = '/usr/bin/python3';
const VERIFIER = fileURLToPath(new URL('./verify_bundle.py', import.meta.url));
const CLI = fileURLToPath(new URL('../../dist/scripts/pinwave.js', import.meta.url));

async function pinwave(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => void out.push(l), err: (l) => void err.push(l), env: {}, tty: false };
  const code = await run(args, io);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

const outcome = (v: BundleVector) => (v.expected.result === 'applied' ? 'valid' : `rejected: ${v.expected.reason}`);

t.test('the independent Python verifier gives every vector its expected outcome, id and state after', async (t) => {
  t.equal(spawnSync(PY, ['-c', 'import cbor2, nacl']).status, 0, 'python3-cbor2 and python3-nacl are installed (.ci/run installs them)');
  const py = spawnSync(PY, [VERIFIER, '--vector', ...files.map((f) => join(dir, f))], { encoding: 'utf8' });
  t.equal(py.status, 0, py.stderr);
  const results = new Map<string, { result: string; reason?: string; id?: string; stateAfter?: unknown; error?: string }>(
    py.stdout.trim().split('\n').map((l) => {
      const r = JSON.parse(l);
      return [r.name, r];
    }),
  );
  t.equal(results.size, vectors.length, 'one answer per vector');
  for (const v of vectors) {
    const r = results.get(v.name)!;
    if (v.expected.result === 'applied') {
      t.same(r, { name: v.name, result: 'applied', id: v.expected.bundleId, stateAfter: v.expected.stateAfter }, `${v.name}: applied, same id and state`);
    } else {
      t.equal(r.reason ?? r.result, v.expected.reason, `${v.name}: rejected as ${v.expected.reason} (${r.error})`);
    }
  }
});

t.test('pinwave bundle verify --vector gives every vector its expected outcome and says it agrees', async (t) => {
  for (const [i, v] of vectors.entries()) {
    const r = await pinwave('bundle', 'verify', '--vector', join(dir, files[i]));
    t.equal(r.stdout, outcome(v), v.name);
    t.equal(r.code, v.expected.result === 'applied' ? 0 : 1, `${v.name}: exit status`);
    t.match(r.stderr, /: agrees$/, `${v.name}: agrees with the vector`);
  }
});

t.test('pinwave bundle verify FILE with flags for the vector\'s state agrees with every vector', async (t) => {
  const tmp = t.testdir();
  const defaults = emptyState('g', []);
  // A key as an operator might hold it: hex or base64 on the command line, or a file of PEM, hex or base64.
  const forms = [
    (raw: Buffer) => raw.toString('hex'),
    (raw: Buffer) => raw.toString('base64'),
    (raw: Buffer, n: string) => (writeFileSync(join(tmp, `${n}.pem`), spkiPemFromRaw(raw)), join(tmp, `${n}.pem`)),
    (raw: Buffer, n: string) => (writeFileSync(join(tmp, `${n}.hex`), raw.toString('hex') + '\n'), join(tmp, `${n}.hex`)),
    (raw: Buffer, n: string) => (writeFileSync(join(tmp, `${n}.b64`), raw.toString('base64') + '\n'), join(tmp, `${n}.b64`)),
  ];
  for (const [i, v] of vectors.entries()) {
    const s = v.stateBefore;
    // The flags cover what the vectors vary; a vector that varied more would need a flag first.
    t.same([s.clockSkewSeconds, s.acceptedVersions], [defaults.clockSkewSeconds, defaults.acceptedVersions], `${v.name}: skew and versions are the defaults`);
    const keys = s.trustedKeys.flatMap((k, j) => ['--pub', forms[(i + j) % forms.length](Buffer.from(k, 'base64'), `${v.name}-${j}`)]);
    const args = ['bundle', 'verify', join(dir, files[i].replace(/\.json$/, '.cbor')), ...keys, '--group', s.group, '--current-seq', String(s.seq),
      '--key-epoch', String(s.keyEpoch), '--now', String(v.now), '--max-bytes', String(s.maxBundleBytes), ...(s.bundleId ? ['--active-bundle', s.bundleId] : [])];
    const r = await pinwave(...args);
    t.equal(r.stdout, outcome(v), `${v.name}: ${r.stderr.split('\n')[0]}`);
  }
});

t.test('the built CLI runs a vector that needs an active bundle id or a key epoch', async (t) => {
  for (const name of ['valid-redelivery', 'stale-key-epoch']) {
    const r = spawnSync(process.execPath, [CLI, 'bundle', 'verify', '--vector', join(dir, `bundle-${name}.json`)], { encoding: 'utf8' });
    const v = vectors.find((x) => x.name === name)!;
    t.equal(r.stdout.trim(), outcome(v), `${name}: ${r.stderr}`);
    t.match(r.stderr, /agrees/);
  }
});

t.test('a vector whose expected outcome pinwave does not give exits 3 and says so', async (t) => {
  const tmp = t.testdir();
  const v = JSON.parse(readFileSync(join(dir, 'bundle-malformed-untagged.json'), 'utf8'));
  v.expected = { result: 'rejected', reason: 'bad_signature' };
  writeFileSync(join(tmp, 'edited.json'), JSON.stringify(v));
  const r = await pinwave('bundle', 'verify', '--vector', join(tmp, 'edited.json'));
  t.equal(r.code, 3);
  t.equal(r.stdout, 'rejected: malformed');
  t.match(r.stderr, /expects rejected: bad_signature: DISAGREES/);
});

t.test('a file that is not a bundle vector, or flags beside --vector, exit 2 naming what is wrong', async (t) => {
  const tmp = t.testdir();
  const good = JSON.parse(readFileSync(join(dir, 'bundle-valid-basic.json'), 'utf8'));
  const write = (name: string, text: string) => (writeFileSync(join(tmp, name), text), join(tmp, name));
  const cases: [string[], RegExp][] = [
    [['--vector', write('text.json', 'not json')], /not JSON/],
    [['--vector', write('list.json', '[]')], /expected a JSON object/],
    [['--vector', write('hex.json', JSON.stringify({ ...good, bundle: 'zz' }))], /"bundle" must be hex/],
    [['--vector', write('state.json', JSON.stringify({ ...good, stateBefore: { ...good.stateBefore, seq: 'one', exp: 'soon' } }))], /"stateBefore" has no valid seq, exp/],
    [['--vector', write('expected.json', JSON.stringify({ ...good, expected: { result: 'maybe' } }))], /"expected" must be/],
    [['--vector', join(tmp, 'absent.json')], /cannot read it \(ENOENT\)/],
    [['--vector', join(dir, 'bundle-valid-basic.json'), '--group', 'g', '--now', '0'], /takes no FILE and no --group, --now/],
    [['x.cbor', '--pub', 'nonsense', '--group', 'g'], /--pub nonsense: no such file, and not a raw Ed25519 public key/],
    [['x.cbor', '--pub', write('bad.key', 'hello'), '--group', 'g'], /bad\.key: expected an SPKI PEM, or a raw 32-byte Ed25519 public key in hex or standard padded base64/],
    [['x.cbor', '--pub', 'ab'.repeat(32), '--group', 'g', '--active-bundle', 'c0ffee'], /--active-bundle expects a bundle id \(64 hex characters/],
    [['x.cbor', '--pub', 'ab'.repeat(32), '--group', 'g', '--key-epoch', 'one'], /--key-epoch expects a non-negative integer, got "one"/],
  ];
  for (const [args, message] of cases) {
    const r = await pinwave('bundle', 'verify', ...args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
  }
});

t.test('the Python verifier\'s format mode checks what a device without state checks', async (t) => {
  const tmp = t.testdir();
  for (const v of vectors) {
    const file = join(tmp, `${v.name}.cbor`);
    writeFileSync(file, Buffer.from(v.bundle, 'hex'));
    const out = spawnSync(PY, [VERIFIER, file, v.signer.publicKey, v.stateBefore.group], { encoding: 'utf8' });
    const r = JSON.parse(out.stdout);
    // Without a device state, only the device checks (rules 40 to 44) and the size limit can differ.
    const stateless = v.expected.result === 'applied' || ['replayed', 'expired', 'not_yet_valid', 'stale_key_epoch', 'too_large', 'unknown_key'].includes(v.expected.reason);
    if (!stateless && v.expected.result === 'rejected') {
      t.same([out.status, r.reason], [1, v.expected.reason], `${v.name}: refused as ${v.expected.reason}`);
    } else if (v.expected.result === 'applied' && v.stateBefore.maxBundleBytes >= 4096) {
      t.same([out.status, r.id], [0, v.expected.bundleId], `${v.name}: verifies, with the same id`);
    }
  }
});
