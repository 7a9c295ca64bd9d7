// What the gateway hands pin continuity (docs/architecture.md §6, §9) when a rollout is created: the
// request's `nextKeys` checked, the config's probe list, what each part of the target runs now; and
// the operator's forced start past a refusal, as the decision the rollout records.
import { endpointText, initialState, tryParsePin, type FirmwareManifest, type PinBundle } from '../firmware-manifest/index.ts';
import { trustedEndpoints } from '../firmware-manifest/trust-state.ts';
import { CONTINUITY_CODES, splitEndpoint, type PinSetNow } from './continuity.ts';
import { invalid } from './errors.ts';
import type { Preflight, PreflightInput, PreflightOptions } from './preflight.ts';
import type { Decision } from './rollout/types.ts';
import type { DeviceRecord } from './store/types.ts';

/** The part of a create request this file reads. */
export interface ContinuityRequest {
  nextKeys?: Record<string, string[]>;
  force?: boolean;
  reason?: string;
}

const REASON_RE = /^[\x20-\x7e]{1,200}$/;

/** The pre-flight input of pin continuity; a malformed `nextKeys`, `force` or `reason` is a 400 naming it. */
export async function continuityInput(
  input: ContinuityRequest,
  bundle: PinBundle,
  devices: readonly DeviceRecord[],
  manifests: ReadonlyMap<string, FirmwareManifest>,
  options: PreflightOptions | undefined,
  decoded: (bundleId: string) => Promise<PinBundle | null>,
  skip: string | undefined,
): Promise<Pick<PreflightInput, 'probeTargets' | 'nextKeys' | 'current' | 'requireOverlap' | 'skipContinuity'>> {
  if (input.force !== undefined && typeof input.force !== 'boolean') throw invalid('force: must be true or false');
  if (input.force && (typeof input.reason !== 'string' || !REASON_RE.test(input.reason))) throw invalid('reason: a forced start needs a reason, 1 to 200 printable characters');
  if (!input.force && input.reason !== undefined) throw invalid('reason: only with force: true');
  const nextKeys = checkNextKeys(input.nextKeys, bundle);
  if (skip !== undefined) return { skipContinuity: skip };
  return {
    probeTargets: new Map(Object.entries(options?.endpoints ?? {})),
    nextKeys,
    current: await pinSetsNow(devices, manifests, decoded),
    requireOverlap: options?.requireOverlap ?? false,
  };
}

function checkNextKeys(v: unknown, bundle: PinBundle): Record<string, string[]> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('nextKeys: must map "host:port" to a list of pins (sha256/…)');
  const known = new Set(bundle.endpoints.map((e) => endpointText(e.host, e.port)));
  const out: Record<string, string[]> = {};
  for (const [given, pins] of Object.entries(v as Record<string, unknown>)) {
    // An IPv6 endpoint is `[::1]:443`; `::1:443`, as clients wrote it before, names the same one.
    const where = endpointText(...splitEndpoint(given));
    if (!known.has(where)) throw invalid(`nextKeys.${given}: not an endpoint of the bundle (its endpoints: ${[...known].join(', ')})`);
    if (!Array.isArray(pins) || pins.length === 0) throw invalid(`nextKeys.${given}: must be a non-empty list of pins (sha256/…)`);
    out[where] = pins.map((p, i) => {
      const parsed = typeof p === 'string' ? tryParsePin(p) : null;
      if (!parsed?.ok) throw invalid(`nextKeys.${given}[${i}]: ${parsed ? parsed.error.message : 'must be a pin, sha256/<base64>'}`);
      return p as string;
    });
  }
  return out;
}

/** The targeted devices by what they run now: a bundle the gateway signed, or their model's firmware pins. */
async function pinSetsNow(devices: readonly DeviceRecord[], manifests: ReadonlyMap<string, FirmwareManifest>, decoded: (bundleId: string) => Promise<PinBundle | null>): Promise<PinSetNow[]> {
  const parts = new Map<string, DeviceRecord[]>();
  for (const d of devices) {
    const key = d.bundleId !== null ? `b:${d.bundleId}` : `m:${d.model ?? ''}`;
    const list = parts.get(key);
    if (list) list.push(d);
    else parts.set(key, [d]);
  }
  const out: PinSetNow[] = [];
  for (const [key, list] of parts) {
    const ids = list.map((d) => d.id);
    if (key.startsWith('b:')) {
      const b = await decoded(key.slice(2));
      if (b) out.push({ label: `seq ${b.seq} (bundle ${key.slice(2, 10)})`, devices: ids, endpoints: trustedEndpoints(b.endpoints) });
    } else {
      const m = manifests.get(key.slice(2));
      if (m) out.push({ label: `the firmware pins of model ${m.model}`, devices: ids, endpoints: initialState(m, '').endpoints });
    }
  }
  return out;
}

/**
 * What force overrides (docs/pin-safety.md): pin continuity, and devices reported ahead of the
 * bundle's seq (what a device last reported: one reflashed since reports less when it connects).
 * A bundle that devices would reject for what it is (wrong group, too large, unknown key) is refused still.
 */
const FORCEABLE: ReadonlySet<string> = new Set([...CONTINUITY_CODES, 'ahead']);

/**
 * A refused pre-flight the operator forces: the `force` decision to record (who, why, what was
 * refused), with `check.forced` set; null when nothing was refused, the start is not forced, or a
 * refusal is not one force overrides (FORCEABLE).
 */
export function forcedDecision(check: Preflight, input: ContinuityRequest, actor: string, now: number): Decision | null {
  if (check.ok || !input.force) return null;
  if (!check.problems.every((p) => FORCEABLE.has(p.code))) return null;
  check.forced = { by: actor, at: now, reason: input.reason! };
  return { at: now, actor, action: 'force', reason: input.reason!, from: 'pending', to: 'pending', findings: check.problems.map((p) => p.message.slice(0, 500)) };
}
