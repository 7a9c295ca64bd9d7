// Deterministic CBOR for pinwave's wire messages (docs/architecture.md §3), on top of cbor-x.
//
// RFC 8949 §4.2.1 core deterministic encoding: definite lengths, shortest integer forms, map keys
// in bytewise order of their encodings. Our maps use small non-negative integer keys only, so
// ascending numeric order is bytewise order. A decoder must not trust that its input was encoded
// that way: `decodeCanonical` decodes, re-encodes the value canonically, and refuses bytes that
// differ. That one comparison rules out duplicate map keys, indefinite lengths, non-shortest
// integers, floats standing in for integers, tag 64 typed arrays and any tag we did not ask for.
// Device messages and most items are plain (integers, strings, arrays, maps, no tags): a walk over
// their bytes proves them deterministic without the second encoding (plainDeterministic).
import { Decoder, Encoder, Tag } from 'cbor-x';

export { Tag };

/** A CBOR value as pinwave uses it: integers, strings, byte strings, arrays, integer-keyed maps, tags. */
export type CborValue =
  | number
  | bigint
  | string
  | boolean
  | null
  | Uint8Array
  | CborValue[]
  | Map<number, CborValue>
  | Tag;

// cbor-x pitfalls (docs/architecture.md §3): byte strings need tagUint8Array: false (else tag 64), maps need
// useRecords: false and Maps (else the records extension), integers >= 2^32 need BigInt (else float64).
const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  variableMapSize: true,
  structuredClone: false,
  pack: false,
});
const decoder = new Decoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false });

const UINT32_LIMIT = 2 ** 32;

/** The canonical JS form of a value, so cbor-x writes its deterministic encoding. Throws on what pinwave never encodes. */
function canonical(value: unknown, depth = 0): unknown {
  if (depth > 16) throw new TypeError('nesting deeper than 16 levels');
  switch (typeof value) {
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError(`not an integer: ${value}`);
      // cbor-x writes numbers >= 2^32 (and <= -2^32-1) as float64; BigInt gets the 8-byte integer form.
      return value >= UINT32_LIMIT || value < -UINT32_LIMIT ? BigInt(value) : value;
    case 'bigint':
      if (value > 0xffff_ffff_ffff_ffffn || value < -0x1_0000_0000_0000_0000n) throw new TypeError('integer out of 64-bit range');
      // cbor-x writes every BigInt in the 8-byte form: small ones go back to numbers for the shortest form.
      return value < BigInt(UINT32_LIMIT) && value >= -BigInt(UINT32_LIMIT) ? Number(value) : value;
    case 'string':
    case 'boolean':
      return value;
    case 'object': {
      if (value === null) return null;
      if (value instanceof Uint8Array) return value;
      if (Array.isArray(value)) return value.map((v) => canonical(v, depth + 1));
      if (value instanceof Map) {
        const keys = [...value.keys()];
        for (const k of keys) if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 0) throw new TypeError(`map key is not a non-negative integer: ${String(k)}`);
        keys.sort((a, b) => a - b);
        return new Map(keys.map((k) => [k, canonical(value.get(k), depth + 1)]));
      }
      if (value instanceof Tag) return new Tag(canonical(value.value, depth + 1), value.tag);
      throw new TypeError(`unsupported value: ${Object.prototype.toString.call(value)}`);
    }
    default:
      throw new TypeError(`unsupported value of type ${typeof value}`);
  }
}

/** Encode deterministically (RFC 8949 §4.2.1). Throws TypeError for values outside pinwave's data model. */
export function encodeCanonical(value: CborValue): Uint8Array {
  const bytes = encoder.encode(canonical(value));
  // cbor-x returns a view on a shared buffer it reuses: copy, the caller keeps these bytes.
  return new Uint8Array(bytes);
}

export type DecodeResult = { ok: true; value: CborValue } | { ok: false; detail: string };

/**
 * Decode one CBOR data item that must be in deterministic encoding and fill `bytes` exactly.
 * Never throws: hostile input comes back as `{ ok: false, detail }`.
 */
export function decodeCanonical(bytes: Uint8Array): DecodeResult {
  let value: unknown;
  try {
    value = decoder.decode(bytes); // cbor-x refuses trailing bytes ("end of buffer not reached")
  } catch (err) {
    return { ok: false, detail: `not CBOR: ${(err as Error).message}` };
  }
  // The common case needs no second encoding: bytes the walk below vouches for are exactly what
  // re-encoding would give back. Anything it does not vouch for takes the comparison.
  if (plainDeterministic(bytes)) return { ok: true, value: value as CborValue };
  let again: Uint8Array;
  try {
    again = encoder.encode(canonical(value));
  } catch (err) {
    return { ok: false, detail: `outside the data model: ${(err as Error).message}` };
  }
  if (!equalBytes(again, bytes)) return { ok: false, detail: 'not in deterministic encoding (RFC 8949 §4.2.1)' };
  return { ok: true, value: value as CborValue };
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Whether `bytes` is one data item in RFC 8949 §4.2.1 deterministic encoding made only of what
 * round-trips through cbor-x unchanged: unsigned and negative integers below 2^32 in their shortest
 * form, definite-length byte strings, valid UTF-8 text strings, arrays, maps whose keys are such
 * unsigned integers in strictly ascending order (no duplicates), false, true and null, nested at
 * most 16 deep. Anything else (tags, floats, undefined, 8-byte integers, indefinite lengths) is not
 * vouched for, which is not a refusal: decodeCanonical then compares a re-encoding.
 */
function plainDeterministic(bytes: Uint8Array): boolean {
  let at = 0;
  /** The argument of the head at `at` in its shortest form, or -1 (not shortest, 8-byte, indefinite, reserved, or past the end). */
  const argument = (): number => {
    const info = bytes[at] & 0x1f;
    at++;
    if (info < 24) return info;
    let v: number;
    if (info === 24) {
      if (at + 1 > bytes.length) return -1;
      v = bytes[at];
      at += 1;
      return v < 24 ? -1 : v;
    }
    if (info === 25) {
      if (at + 2 > bytes.length) return -1;
      v = (bytes[at] << 8) | bytes[at + 1];
      at += 2;
      return v <= 0xff ? -1 : v;
    }
    if (info === 26) {
      if (at + 4 > bytes.length) return -1;
      v = ((bytes[at] << 24) >>> 0) + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
      at += 4;
      return v <= 0xffff ? -1 : v;
    }
    return -1;
  };
  const item = (depth: number): boolean => {
    if (depth > 16 || at >= bytes.length) return false;
    const major = bytes[at] >> 5;
    if (major === 7) {
      const simple = bytes[at++] & 0x1f;
      return simple === 20 || simple === 21 || simple === 22;
    }
    if (major === 6) return false;
    const n = argument();
    if (n < 0) return false;
    switch (major) {
      case 0:
      case 1:
        return true;
      case 2:
      case 3: {
        if (at + n > bytes.length) return false;
        if (major === 3) {
          try {
            utf8.decode(bytes.subarray(at, at + n));
          } catch {
            return false;
          }
        }
        at += n;
        return true;
      }
      case 4:
        for (let i = 0; i < n; i++) if (!item(depth + 1)) return false;
        return true;
      default: {
        let last = -1;
        for (let i = 0; i < n; i++) {
          if (at >= bytes.length || bytes[at] >> 5 !== 0) return false;
          const key = argument();
          if (key <= last || !item(depth + 1)) return false;
          last = key;
        }
        return true;
      }
    }
  };
  return item(0) && at === bytes.length;
}

/** Byte equality; not constant-time (callers compare public data only). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
