// A bundle signed elsewhere (docs/architecture.md §3, §6: offline signing): the gateway takes a
// COSE_Sign1 it did not make only when a device of the target group would, and only as the group's
// next seq. The check is the device's own (firmware-manifest trust-state apply), run against a
// state that trusts every key the group trusts, so a refusal carries the verifier's reason
// (`unknown_key`, `bad_signature`, `wrong_group`, `replayed`, `expired`, …). Pure.
//
//   const r = checkUpload(bytes, { group: 'thermostats', nextSeq: 4, trustedKeys, keyEpoch: 0, now });
//   if (!r.ok) r.reason, r.detail;   // e.g. 'replayed', 'bundle seq 3 is not above the current seq 3'
import { apply, FORMAT_VERSION, hex, kidOf, equalBytes, inspectBundle, type PinBundle, type RejectReason } from '../firmware-manifest/index.ts';

/** The largest bundle a manifest may take (its schema's maxBundleBytes maximum); pre-flight checks each model's own. */
export const MAX_UPLOAD_BYTES = 65536;

export interface TrustedKey {
  key: Uint8Array;
  /** where the group's trust in it comes from, for people: "the gateway's signing key", "manifest th-100 1.4.2" */
  source: string;
}

export interface UploadContext {
  group: string;
  /** the seq the group's next bundle must carry */
  nextSeq: number;
  trustedKeys: readonly TrustedKey[];
  /** the key epoch the group's devices hold now (0: the keys their firmware shipped with) */
  keyEpoch: number;
  /** seconds since the epoch */
  now: number;
}

export type UploadReason = RejectReason | 'seq_not_next';

export type UploadCheck =
  | { ok: true; id: string; bundle: PinBundle; kid: string; signedBy: string }
  | { ok: false; reason: UploadReason; detail: string };

export function checkUpload(bytes: Uint8Array, c: UploadContext): UploadCheck {
  const state = {
    group: c.group,
    seq: c.nextSeq - 1,
    bundleId: null,
    keyEpoch: c.keyEpoch,
    trustedKeys: c.trustedKeys.map((k) => Buffer.from(k.key).toString('base64')),
    endpoints: [],
    exp: null,
    expiryPolicy: 'enforce' as const,
    maxBundleBytes: MAX_UPLOAD_BYTES,
    acceptedVersions: [FORMAT_VERSION],
    clockSkewSeconds: 300,
  };
  const r = apply(state, bytes, c.now);
  if (!r.ok) {
    // The verifier names the key it does not know by its kid; say which keys the group trusts.
    if (r.reason === 'unknown_key') {
      const i = inspectBundle(bytes);
      const kid = i.ok ? hex(i.envelope.kid) : '?';
      return { ok: false, reason: r.reason, detail: `signed by key ${kid}, which group "${c.group}" does not trust (it trusts ${c.trustedKeys.map((k) => `${hex(kidOf(k.key))}: ${k.source}`).join('; ') || 'no key'})` };
    }
    return r;
  }
  if (r.bundle.seq !== c.nextSeq) return { ok: false, reason: 'seq_not_next', detail: `bundle seq ${r.bundle.seq}: the next seq of group "${c.group}" is ${c.nextSeq}; sign it again with --seq ${c.nextSeq}` };
  const kid = inspectBundle(bytes);
  const signer = kid.ok ? c.trustedKeys.find((k) => equalBytes(kidOf(k.key), kid.envelope.kid)) : undefined;
  return { ok: true, id: r.id, bundle: r.bundle, kid: kid.ok ? hex(kid.envelope.kid) : '', signedBy: signer?.source ?? '' };
}
