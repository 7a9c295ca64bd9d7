// The device contract (docs/architecture.md §1): bundle codec and verification, pins, keys, the device trust
// state and its provisional apply with a health-checked commit, the device's own messages and the
// firmware manifest. Pure: no file or network I/O.
// Other parts import from here only.
export * from './codec.ts';
export { decodeCanonical, encodeCanonical, equalBytes, type CborValue } from './cbor.ts';
export * from './keys.ts';
export * from './pins.ts';
export * from './trust-state.ts';
export * from './provisional.ts';
export * from './messages.ts';
export * from './manifest.ts';
export * from './view.ts';
export * from './endpoint-text.ts';
