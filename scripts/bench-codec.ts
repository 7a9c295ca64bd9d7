// Benchmark of the bundle codec against the bare Ed25519 primitives it is built on
// (docs/architecture.md §3, its size and speed goals). Prints a table: encode+sign and
// decode+verify per second, bundle sizes for 1/4/16 endpoints, noble sign/verify and node:crypto
// verify over the same bytes, and the ratios.
// Goals: a one-endpoint two-pin bundle <= 210 bytes; decode+verify within 1.2x of bare noble verify.
//   npm run bench:codec [-- --seconds 1]
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as ed from '@noble/ed25519';
import { decodeCanonical } from '../firmware-manifest/cbor.ts';
import { decodeEnvelope, sigStructure, signBundle, verifyBundle, type BundleInput } from '../firmware-manifest/codec.ts';
import { spkiPemFromRaw } from '../firmware-manifest/keys.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '1' } } });
const seconds = Number(values.seconds);
if (!(seconds > 0 && seconds <= 60)) throw new Error(`--seconds expects 0 < s <= 60, got ${values.seconds}`);

const seed = new Uint8Array(createHash('sha256').update('bench key').digest());
const pub = ed.getPublicKey(seed);
const pin = (i: number) => new Uint8Array(createHash('sha256').update(`pin ${i}`).digest());
const now = Math.floor(Date.now() / 1000);
const input = (endpoints: number): BundleInput => ({
  seq: 42,
  iat: now,
  exp: now + 30 * 86400,
  group: 'thermostats',
  endpoints: Array.from({ length: endpoints }, (_, i) => ({ host: i === 0 ? 'api.example.com' : `svc${i}.example.com`, port: 443, pins: [pin(2 * i), pin(2 * i + 1)] })),
});

/** Calls per second of fn, run for about `seconds` (bounded: it stops by itself). */
function rate(fn: () => unknown): number {
  for (let i = 0; i < 50; i++) fn(); // warm up the JIT
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  const start = performance.now();
  while (performance.now() < deadline) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
  }
  return n / ((performance.now() - start) / 1000);
}

const one = signBundle(input(1), seed);
const env = decodeEnvelope(one.bytes);
if (!env.ok) throw new Error(env.detail);
const tbs = sigStructure(env.envelope.protectedBytes, env.envelope.payload);
const sig = env.envelope.signature;
const nodeKey = createPublicKey(spkiPemFromRaw(pub));

const rows: [string, number, string][] = [];
const encodeSign = rate(() => signBundle(input(1), seed));
const decodeVerify = rate(() => verifyBundle(one.bytes, [pub]));
const nobleSign = rate(() => ed.sign(tbs, seed));
const nobleVerify = rate(() => ed.verify(sig, tbs, pub, { zip215: false }));
const nodeVerifyRate = rate(() => nodeVerify(null, tbs, nodeKey, sig));
const payloadDecode = rate(() => decodeCanonical(env.envelope.payload));
rows.push(['bundle encode + sign', encodeSign, `${(nobleSign / encodeSign).toFixed(2)}x the time of a bare noble sign`]);
rows.push(['bundle decode + verify', decodeVerify, `${(nobleVerify / decodeVerify).toFixed(2)}x the time of a bare noble verify (goal <= 1.20)`]);
rows.push(['noble ed25519 sign', nobleSign, 'bare primitive']);
rows.push(['noble ed25519 verify (zip215: false)', nobleVerify, 'bare primitive']);
rows.push(['node:crypto ed25519 verify', nodeVerifyRate, `${(nodeVerifyRate / nobleVerify).toFixed(1)}x noble (reference only: pinwave verifies with noble)`]);
rows.push(['payload canonical decode (cbor-x + check)', payloadDecode, '']);

const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(12);
console.log(`pinwave bench-codec: node ${process.version}, ${seconds}s per row, one core`);
console.log('');
console.log('operation'.padEnd(44) + 'per second'.padStart(12) + '  note');
for (const [name, r, note] of rows) console.log(name.padEnd(44) + fmt(r) + '  ' + note);
console.log('');
console.log('bundle size (2 pins per endpoint)');
for (const n of [1, 4, 16]) {
  const size = signBundle(input(n), seed).bytes.length;
  console.log(`  ${String(n).padStart(2)} endpoint${n === 1 ? ' ' : 's'}  ${String(size).padStart(5)} bytes${n === 1 ? `  (goal <= 210: ${size <= 210 ? 'met' : 'MISSED'})` : ''}`);
}
