// The embedded store's private copy of a checked batch (docs/storage.md): the in-memory state
// commits the same value its journal record replays, `JSON.parse(JSON.stringify(batch))`, and
// never an object the caller still holds. Parsing the record back costs more than writing it; the
// changes every ack, state and telemetry message carries (a device's fields, a history entry, a
// member's status, a wave's count deltas, a counter) are flat objects of known keys and scalar
// values, copied field by field at a quarter of that. A batch holding anything else (or a shape
// these do not know, such as an extra field) is parsed back from its JSON.
//
// Call it only on changes the state has checked (fleet-state.ts `check`): numbers are finite there.
//
//   const body = JSON.stringify(checked.resolved);
//   const copy = copyBatch(checked.resolved, body);   // deep-equal to JSON.parse(body), key order included
import type { Change } from './changes.ts';

/**
 * Which keys an object of a hot change may hold: a scalar (null, a boolean, a string, a number),
 * or a nested object of its own shape. Prototype-less, so no key is found on Object.prototype.
 */
type Shape = { readonly [k: string]: true | Shape };

const shape = (o: Record<string, true | Shape>): Shape => Object.assign(Object.create(null) as Record<string, true | Shape>, o);
const scalars = (names: readonly string[]): Shape => shape(Object.fromEntries(names.map((k) => [k, true])));
const COUNTS = scalars(['pending', 'sent', 'applied', 'rejected', 'timed_out', 'failing', 'unreachable', 'verifying', 'verified', 'unverified', 'reverted']);
const SHAPES: ReadonlyMap<string, Shape> = new Map([
  ['device.patch', shape({ type: true, id: true, set: scalars(['seq', 'bundleId', 'model', 'firmware', 'keyEpoch', 'lastSeen', 'lastConnectAt', 'lastDisconnectAt', 'tokenHash', 'revokedAt']) })],
  ['device.history', shape({ type: true, id: true, entry: scalars(['at', 'rolloutId', 'bundleId', 'seq', 'event', 'reason']) })],
  ['rollout.member', scalars(['type', 'id', 'device', 'status', 'reason', 'at', 'wave'])],
  // Count deltas only: reason tallies carry keys from devices, `set` whole objects.
  ['rollout.wave', shape({ type: true, id: true, wave: true, add: shape({ count: COUNTS }) })],
  ['counter.add', scalars(['type', 'name', 'by'])],
]);

const plain = (v: object): boolean => {
  const p = Object.getPrototypeOf(v) as unknown;
  return p === Object.prototype || p === null;
};

/** A copy of `o` by `s` as a JSON round trip makes it, or null when `o` does not fit `s`. */
function copyByShape(o: Record<string, unknown>, s: Shape): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  // for…in of a plain object is Object.keys, in JSON.stringify's order.
  for (const k in o) {
    const want = s[k];
    const v = o[k];
    if (want === undefined) return null;
    if (v === undefined) continue; // JSON leaves it out
    if (want === true) {
      if (typeof v === 'number') out[k] = v + 0; // -0 is 0 after JSON
      else if (v === null || typeof v === 'string' || typeof v === 'boolean') out[k] = v;
      else return null;
    } else {
      if (typeof v !== 'object' || v === null || !plain(v)) return null;
      const inner = copyByShape(v as Record<string, unknown>, want);
      if (inner === null) return null;
      out[k] = inner;
    }
  }
  return out;
}

/** `JSON.parse(body)`, where `body` is `JSON.stringify(changes)` of checked changes. */
export function copyBatch(changes: readonly Change[], body: string): Change[] {
  const copy: Change[] = new Array(changes.length);
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i];
    const s = SHAPES.get(c.type);
    const mine = s === undefined || !plain(c) ? null : copyByShape(c as unknown as Record<string, unknown>, s);
    if (mine === null) return JSON.parse(body) as Change[];
    copy[i] = mine as unknown as Change;
  }
  return copy;
}
