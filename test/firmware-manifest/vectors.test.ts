import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { apply, type TrustState } from '../../firmware-manifest/trust-state.ts';
import { REJECT_REASONS } from '../../firmware-manifest/codec.ts';
import { decodeAck, decodeAnyAck, decodeAnyState, decodeState, decodeTelemetry } from '../../firmware-manifest/messages.ts';
import { vectorFiles } from '../../scripts/gen-vectors.ts';
import type { BundleVector, MessageVector } from '../../firmware-manifest/vectors.ts';

const dir = new URL('../../firmware-manifest/vectors/', import.meta.url).pathname;

t.test('the committed vector files are exactly what the generator writes', async (t) => {
  const expected = vectorFiles();
  const present = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  t.same(present, [...expected.keys()].sort(), 'the same files (run `npm run vectors` after changing the codec)');
  for (const [name, text] of expected) t.equal(readFileSync(join(dir, name), 'utf8'), text, name);
});

const vectors: BundleVector[] = readdirSync(dir).filter((f) => f.startsWith('bundle-')).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));

t.test('every rejection reason has a vector, and there are valid ones', async (t) => {
  const reasons = new Set(vectors.map((v) => (v.expected.result === 'rejected' ? v.expected.reason : 'applied')));
  for (const r of [...REJECT_REASONS, 'applied']) t.ok(reasons.has(r), r);
  t.ok(vectors.some((v) => v.laxLibraryAccepts), 'includes envelopes a lax library would accept');
});

t.test('apply() gives each vector its expected outcome, from the file alone', async (t) => {
  for (const v of vectors) {
    const r = apply(v.stateBefore as TrustState, new Uint8Array(Buffer.from(v.bundle, 'hex')), v.now);
    if (v.expected.result === 'applied') {
      if (!r.ok) { t.fail(`${v.name}: ${r.reason} ${r.detail}`); continue; }
      t.equal(r.id, v.expected.bundleId, `${v.name}: bundle id`);
      t.same(r.state, v.expected.stateAfter, `${v.name}: state after`);
    } else {
      t.equal(r.ok ? 'applied' : r.reason, v.expected.reason, v.name);
    }
  }
});

t.test('message vectors decode to what they say, and invalid ones are refused', async (t) => {
  const list: MessageVector[] = JSON.parse(readFileSync(join(dir, 'messages.json'), 'utf8'));
  const decoders = { state: decodeAnyState, ack: decodeAnyAck, telemetry: decodeTelemetry };
  for (const v of list) {
    const r = decoders[v.kind](new Uint8Array(Buffer.from(v.hex, 'hex')));
    if (v.decoded === null) t.notOk(r.ok, `${v.name} is refused`);
    else t.same(r, { ok: true, message: v.decoded }, v.name);
  }
  for (const status of ['applied', 'rejected', 'verified', 'reverted']) t.ok(list.some((v) => v.kind === 'ack' && (v.decoded as { status?: string } | null)?.status === status), `a vector for the ${status} ack`);
  t.ok(list.some((v) => v.kind === 'state' && v.decoded !== null && 'provisional' in v.decoded), 'a vector for a state during a provisional window');
});

t.test('the readers of a gateway that does not count health checks take every other vector and refuse the health-checked ones', async (t) => {
  const list: MessageVector[] = JSON.parse(readFileSync(join(dir, 'messages.json'), 'utf8'));
  const decoders = { state: decodeState, ack: decodeAck, telemetry: decodeTelemetry };
  for (const v of list) {
    const r = decoders[v.kind](new Uint8Array(Buffer.from(v.hex, 'hex')));
    if (v.decoded === null || v.healthCheck) t.notOk(r.ok, `${v.name} is refused`);
    else t.same(r, { ok: true, message: v.decoded }, v.name);
  }
});

t.test('an independent implementation (Python cbor2 + PyNaCl) verifies every valid vector', async (t) => {
  const py = '/usr/bin/python3';
  const probe = spawnSync(py, ['-c', 'import cbor2, nacl']);
  if (probe.status !== 0) {
    t.fail('python3-cbor2 and python3-nacl are required (.ci/run installs them)');
    return;
  }
  const tmp = t.testdir();
  for (const v of vectors.filter((v) => v.expected.result === 'applied')) {
    const file = join(tmp, `${v.name}.cbor`);
    writeFileSync(file, Buffer.from(v.bundle, 'hex'));
    const out = spawnSync(py, [new URL('../interop/verify_bundle.py', import.meta.url).pathname, file, v.signer.publicKey, v.stateBefore.group], { encoding: 'utf8' });
    t.equal(out.status, 0, `${v.name}: ${out.stdout}${out.stderr}`);
    const decoded = JSON.parse(out.stdout);
    if (v.expected.result === 'applied') t.equal(decoded.id, v.expected.bundleId, `${v.name}: same bundle id`);
  }
  for (const name of ['bad-signature', 'bad-signature-without-external-aad', 'unsupported-alg', 'malformed-non-shortest-integer']) {
    const v = vectors.find((x) => x.name === name)!;
    const file = join(tmp, `${name}.cbor`);
    writeFileSync(file, Buffer.from(v.bundle, 'hex'));
    const out = spawnSync(py, [new URL('../interop/verify_bundle.py', import.meta.url).pathname, file, v.signer.publicKey], { encoding: 'utf8' });
    t.equal(out.status, 1, `${name} is refused by the independent verifier too`);
  }
});
