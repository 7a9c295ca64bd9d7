import t from 'tap';
import { decodeCanonical, encodeCanonical, equalBytes, Tag, type CborValue } from '../../firmware-manifest/cbor.ts';

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const verdict = (bytes: Uint8Array) => {
  const r = decodeCanonical(bytes);
  return r.ok ? 'ok' : r.detail;
};

t.test('deterministic items decode (RFC 8949 §4.2.1)', async (t) => {
  const cases: [string, string][] = [
    ['0', '00'],
    ['23', '17'],
    ['24', '1818'],
    ['256', '190100'],
    ['65536', '1a00010000'],
    ['2^32 - 1', '1affffffff'],
    ['-1', '20'],
    ['-2^32', '3affffffff'],
    ['2^32 (8-byte form)', '1b0000000100000000'],
    ['empty byte string', '40'],
    ['text', '6568656c6c6f'],
    ['UTF-8 text', '62c3a9'],
    ['map, keys ascending', 'a301f50243010203036178'],
    ['nested arrays', '8201820203'],
    ['null, true, false', '83f6f5f4'],
    ['a tag (COSE_Sign1)', 'd28440a0f640'],
  ];
  for (const [what, bytes] of cases) t.equal(verdict(hex(bytes)), 'ok', what);
});

t.test('anything not in deterministic encoding is refused, whichever way it is not', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['24 in two bytes', '190018', /deterministic/],
    ['1 in a 1-byte argument', '1801', /deterministic/],
    ['255 in a 2-byte argument', '1900ff', /deterministic/],
    ['65535 in a 4-byte argument', '1a0000ffff', /deterministic/],
    ['1 in an 8-byte argument', '1b0000000000000001', /deterministic/],
    ['a short length in a 1-byte argument', '580100', /deterministic/],
    ['keys out of order', 'a202010101', /deterministic/],
    ['a duplicate key', 'a201010102', /deterministic/],
    ['an indefinite array', '9f0102ff', /deterministic|not CBOR/],
    ['an indefinite text string', '7f6161ff', /deterministic|not CBOR/],
    ['a float standing in for an integer', 'f93c00', /deterministic|data model/],
    ['undefined', 'f7', /data model|deterministic/],
    ['a text key', 'a1616101', /data model/],
    ['invalid UTF-8', '62c328', /deterministic|not CBOR/],
    ['trailing bytes', '0000', /not CBOR/],
    ['truncated', '1a0001', /not CBOR/],
  ];
  for (const [what, bytes, expected] of cases) t.match(verdict(hex(bytes)), expected, what);
  let deep = '00';
  for (let i = 0; i < 17; i++) deep = `81${deep}`;
  t.match(verdict(hex(deep)), /data model/, 'nested 18 deep');
});

/** A small deterministic PRNG, so a failure is reproducible from its seed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function value(rnd: () => number, depth: number): CborValue {
  const pick = Math.floor(rnd() * (depth > 3 ? 5 : 8));
  switch (pick) {
    case 0:
      return Math.floor(rnd() * [24, 256, 65536, 2 ** 32, 2 ** 40][Math.floor(rnd() * 5)]);
    case 1:
      return -1 - Math.floor(rnd() * [24, 256, 2 ** 32][Math.floor(rnd() * 3)]);
    case 2:
      return [...'aé€😀'].slice(0, Math.floor(rnd() * 5)).join('').repeat(Math.floor(rnd() * 30));
    case 3:
      return new Uint8Array(Math.floor(rnd() * 40)).map(() => Math.floor(rnd() * 256));
    case 4:
      return [null, true, false][Math.floor(rnd() * 3)];
    case 5:
      return Array.from({ length: Math.floor(rnd() * 4) }, () => value(rnd, depth + 1));
    case 6:
      return new Map(Array.from({ length: Math.floor(rnd() * 5) }, () => [Math.floor(rnd() * 300), value(rnd, depth + 1)] as [number, CborValue]));
    default:
      return new Tag(value(rnd, depth + 1), 18);
  }
}

t.test('random items round-trip, and a mutated one decodes only when it is still deterministic', async (t) => {
  const rnd = random(0x5eed);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const bytes = encodeCanonical(value(rnd, 0));
    const r = decodeCanonical(bytes);
    if (!r.ok) return t.fail(`item ${i}: ${r.detail}`);
    if (!equalBytes(encodeCanonical(r.value), bytes)) return t.fail(`item ${i}: does not round-trip`);
    // Flip, insert or drop a byte: whatever still decodes must be the deterministic encoding of what it decodes to.
    const m = Array.from(bytes);
    const at = Math.floor(rnd() * m.length);
    const how = Math.floor(rnd() * 3);
    if (how === 0) m[at] ^= 1 << Math.floor(rnd() * 8);
    else if (how === 1) m.splice(at, 0, Math.floor(rnd() * 256));
    else m.splice(at, 1);
    const mutated = new Uint8Array(m);
    const again = decodeCanonical(mutated);
    if (!again.ok) {
      refused++;
      continue;
    }
    accepted++;
    if (!equalBytes(encodeCanonical(again.value), mutated)) return t.fail(`mutation of item ${i} accepted though not deterministic: ${Buffer.from(mutated).toString('hex')}`);
  }
  t.ok(accepted > 100 && refused > 100, `both verdicts were exercised (${accepted} accepted, ${refused} refused)`);
});
