// Signing-key rotation through the gateway (docs/architecture.md §3, §6; docs/bundle-format.md, key rotation): which key
// signs a group's next bundle, and whether each targeted device trusts the key a bundle is signed
// with at the key epoch it reports. Pure.
//
// The gateway signs every bundle with a key all its targets trust. It holds its signing key and,
// optionally, the next one (config nextKeyPath). It switches a group to the next key only once a
// bundle that makes devices trust it is the group's baseline (its rollout completed): until then
// held waves, offline devices and late joiners still run keys that would reject the next key's
// signature as unknown_key. Epochs only go up: undoing a rotation is a further rotation.
//
//   const key = signerFor(baseline, current, next);                 // current until the rotation is the baseline
//   const f = keyEpochFindings({ kid, rotation, devices, rotations });  // devices that would say unknown_key / stale_key_epoch
import { equalBytes, hex, kidOf } from '../firmware-manifest/index.ts';

export interface RotationRef {
  epoch: number;
  /** raw Ed25519 public keys */
  keys: readonly Uint8Array[];
}

/** The group's baseline as far as the choice of signer goes: who signed it and what rotation it carries. */
export interface BaselineKeys {
  kid: Uint8Array;
  keyRotation?: RotationRef;
}

export interface KeyHolder {
  publicKey: Uint8Array;
  kid: Uint8Array;
}

/**
 * The key the group's next bundle is signed with: the next key once the baseline makes the whole
 * group trust it (the baseline carries a rotation listing it, or was itself signed by it), else the
 * current key. Null when the gateway holds neither that can sign for the group.
 */
export function signerFor<K extends KeyHolder>(baseline: BaselineKeys | null, current: K | null, next: K | null): K | null {
  if (next && baseline) {
    const trusted = baseline.keyRotation?.keys.some((k) => equalBytes(k, next.publicKey)) ?? false;
    if (trusted || equalBytes(baseline.kid, next.kid)) return next;
  }
  return current;
}

export interface EpochDevice {
  id: string;
  keyEpoch?: number | null;
}

export interface EpochFinding {
  code: 'unknown_key' | 'stale_key_epoch' | 'unknown_key_epoch';
  message: string;
  devices: string[];
  count: number;
}

export interface EpochInput {
  /** the kid of the bundle's signing key */
  kid: Uint8Array;
  /** the bundle's own rotation, if it carries one */
  rotation?: RotationRef;
  devices: readonly EpochDevice[];
  /** the group's rotations the gateway knows (its stored bundles'), by epoch */
  rotations: ReadonlyMap<number, readonly Uint8Array[]>;
}

/**
 * Pre-flight for keys: each rotated device, at the epoch it reports, must trust the bundle's signing
 * key, and a rotation must carry an epoch above every device's. Devices at epoch 0 trust their
 * manifest's keys, which pre-flight checks already (bundleFitsManifest); devices at an epoch the
 * gateway has no rotation for (rotated elsewhere) are warned about, not refused.
 */
export function keyEpochFindings(input: EpochInput): { problems: EpochFinding[]; warnings: EpochFinding[] } {
  const untrusted: string[] = [];
  const stale: string[] = [];
  const unknown: string[] = [];
  for (const d of input.devices) {
    const epoch = d.keyEpoch ?? 0;
    if (input.rotation && input.rotation.epoch <= epoch) stale.push(d.id);
    if (epoch === 0) continue;
    const keys = input.rotations.get(epoch);
    if (!keys) {
      unknown.push(d.id);
      continue;
    }
    if (!keys.some((k) => equalBytes(kidOf(k), input.kid))) untrusted.push(d.id);
  }
  const f = (code: EpochFinding['code'], ids: string[], message: string): EpochFinding => ({ code, message, devices: ids.slice(0, 100), count: ids.length });
  const n = (ids: string[]) => `${ids.length} device${ids.length === 1 ? '' : 's'}`;
  const problems: EpochFinding[] = [];
  const warnings: EpochFinding[] = [];
  if (untrusted.length > 0) problems.push(f('unknown_key', untrusted, `${n(untrusted)} would reject the bundle as unknown_key: at the key epoch they report they do not trust key ${hex(input.kid)} (a rotation to it must be their group's baseline first)`));
  if (stale.length > 0) problems.push(f('stale_key_epoch', stale, `${n(stale)} report key epoch ${input.rotation!.epoch} or above and would reject this rotation as stale_key_epoch: epochs only go up`));
  if (unknown.length > 0) warnings.push(f('unknown_key_epoch', unknown, `${n(unknown)} report a key epoch the gateway has no rotation for; their signing key was not checked`));
  return { problems, warnings };
}

/** A rotation bundle of the group, as the bridge choice reads it. */
export interface RotationBundle extends RotationRef {
  id: string;
  seq: number;
  /** the kid of the key that signed it */
  kid: Uint8Array;
  /** expiry, seconds since the epoch */
  exp: number;
}

/**
 * What a device behind its group's baseline is sent first (docs/architecture.md §6, baseline): the
 * baseline itself when the device trusts its signing key at the epoch it reports, else the group's
 * next rotation above that epoch (a late joiner born with the firmware's keys, after the group
 * moved to a new key): once it applied that, it is offered the baseline again. Null when no rotation
 * can bring it there (none above its epoch, none newer than its seq, expired, or rolled back: its
 * pins were undone, docs/architecture.md §6): the baseline, which it will reject, is then all there is.
 */
export function bridgeFor(
  device: { seq: number | null; keyEpoch?: number | null },
  baselineKid: Uint8Array,
  rotations: readonly RotationBundle[],
  now: number,
  /** the keys of the device's firmware manifest (epoch 0), when the gateway has it */
  firmwareKeys?: readonly Uint8Array[],
  /** whether a rollout of the bundle of this id was rolled back; asked only of the rotations that could bridge */
  rolledBack: (bundleId: string) => boolean = () => false,
): RotationBundle | null {
  const epoch = device.keyEpoch ?? 0;
  const has = (keys: readonly Uint8Array[]) => keys.some((k) => equalBytes(kidOf(k), baselineKid));
  const at = rotations.find((r) => r.epoch === epoch);
  let trusted: boolean;
  if (at) trusted = has(at.keys);
  else if (epoch === 0) {
    // At epoch 0 the device trusts its firmware's keys; without its manifest, the key that signed the
    // first rotation is one (the group's devices at epoch 0 accepted it).
    const first = Math.min(...rotations.map((r) => r.epoch));
    trusted = firmwareKeys ? has(firmwareKeys) : rotations.some((r) => r.epoch === first && equalBytes(r.kid, baselineKid));
  } else trusted = false;
  if (trusted) return null;
  const next = rotations.filter((r) => r.epoch > epoch && r.seq > (device.seq ?? 0) && r.exp > now && !rolledBack(r.id)).sort((a, b) => a.epoch - b.epoch)[0];
  return next ?? null;
}

/** A device a rollback reaches, as the choice of its signing key reads it. */
export interface RollbackDevice {
  id: string;
  /** runs (or may run) the bundle rolled back: it must take the rollback */
  holds: boolean;
  /** whether it trusts the key of this kid at the epoch it reports, and at every other it may be at (docs/bundle-format.md, key rotation) */
  trusts(kid: Uint8Array): boolean;
}

/**
 * The key a rollback is signed with (docs/architecture.md §6): the first of `candidates` (the
 * gateway's usual signer first) that every device holding the rolled-back bundle trusts at the epoch
 * it reports. Rolling back a key rotation undoes its pins, never its keys (epochs only go up): the
 * devices that applied it trust only its keys, and a rollback signed with any other key is rejected
 * by each as unknown_key, leaving them on the pins being rolled back. A reached device that does not
 * hold the bundle (it rejected it, or never took it) and would not trust the key is left out: it runs
 * nothing to undo. Refused when no candidate is trusted by every holder, naming those that would
 * reject the best one.
 */
export function rollbackSigner<K extends { kid: Uint8Array }>(candidates: readonly K[], devices: readonly RollbackDevice[]): { ok: true; key: K; leftOut: string[] } | { ok: false; key: K | null; rejecting: string[] } {
  let best: { key: K; rejecting: string[] } | null = null;
  for (const key of candidates) {
    const rejecting = devices.filter((d) => d.holds && !d.trusts(key.kid)).map((d) => d.id);
    if (rejecting.length === 0) return { ok: true, key, leftOut: devices.filter((d) => !d.holds && !d.trusts(key.kid)).map((d) => d.id) };
    if (best === null || rejecting.length < best.rejecting.length) best = { key, rejecting };
  }
  return { ok: false, key: best?.key ?? null, rejecting: best?.rejecting ?? [] };
}
