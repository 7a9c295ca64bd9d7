// Pre-flight (docs/architecture.md §6): before a rollout starts, refuse a bundle that some targeted devices
// could not accept (their firmware manifest says too large, unknown key, unsupported version; or
// another group), and, where asked and reachable, one whose pins do not match the keys the live
// endpoints present now. Warn about what is odd but not fatal. The verdict is a value.
import type { FirmwareManifest, PinBundle, RejectReason } from '../firmware-manifest/index.ts';
import type { BundleRecord, DeviceRecord } from './store/types.ts';
import { fetchServedChain } from './tls-probe.ts';

export interface PreflightFinding {
  code: 'wrong_group' | 'too_large' | 'unsupported_version' | 'unknown_key' | 'malformed' | 'endpoint_mismatch' | 'endpoint_unreachable' | 'no_manifest' | 'ahead' | 'never_connected' | 'rotated_keys' | 'stale_key_epoch' | 'unknown_key_epoch';
  message: string;
  /** the devices concerned (the first 100) and how many there are */
  devices?: string[];
  count?: number;
  endpoint?: string;
}

export interface Preflight {
  ok: boolean;
  targeted: number;
  /** reasons the rollout is refused */
  problems: PreflightFinding[];
  /** what the operator should know */
  warnings: PreflightFinding[];
}

type Fits = (m: FirmwareManifest, bytes: Uint8Array, version: number) => { ok: true } | { ok: false; reason: RejectReason; detail: string };

export interface PreflightInput {
  bundle: { record: BundleRecord; bytes: Uint8Array; decoded: PinBundle };
  devices: DeviceRecord[];
  manifests: ReadonlyMap<string, FirmwareManifest>;
  fits: Fits;
  checkEndpoints: boolean;
  /** seconds since the epoch, for which pin sets are in force; default now */
  now?: number;
  probeTimeoutMs?: number;
}

const finding = (code: PreflightFinding['code'], message: string, ids: string[]): PreflightFinding => ({ code, message, devices: ids.slice(0, 100), count: ids.length });
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export async function preflight(input: PreflightInput): Promise<Preflight> {
  const { record, bytes, decoded } = input.bundle;
  const problems: PreflightFinding[] = [];
  const warnings: PreflightFinding[] = [];

  const otherGroup = input.devices.filter((d) => d.group !== record.group).map((d) => d.id);
  if (otherGroup.length > 0) problems.push(finding('wrong_group', `${plural(otherGroup.length, 'device')} not in group "${record.group}" would reject the bundle as wrong_group`, otherGroup));

  const byModel = new Map<string, DeviceRecord[]>();
  for (const d of input.devices) {
    const key = d.model ?? '';
    const list = byModel.get(key);
    if (list) list.push(d);
    else byModel.set(key, [d]);
  }
  for (const [model, devices] of byModel) {
    const manifest = model ? input.manifests.get(model) : undefined;
    if (!manifest) {
      warnings.push(finding('no_manifest', `${plural(devices.length, 'device')} ${model ? `of model "${model}"` : 'with no model'} not checked: no firmware manifest`, devices.map((d) => d.id)));
      continue;
    }
    const verdict = input.fits(manifest, bytes, decoded.version);
    if (verdict.ok) continue;
    // A device that took a key rotation trusts keys its manifest does not list.
    const affected = verdict.reason === 'unknown_key' ? devices.filter((d) => !d.keyEpoch) : devices;
    const rotated = devices.length - affected.length;
    if (rotated > 0) warnings.push(finding('rotated_keys', `${plural(rotated, 'device')} of model "${model}" rotated their keys; the signing key was not checked for them`, devices.filter((d) => d.keyEpoch).map((d) => d.id)));
    if (affected.length > 0) problems.push(finding(verdict.reason as PreflightFinding['code'], `${plural(affected.length, 'device')} of model "${model}": ${verdict.reason}: ${verdict.detail}`, affected.map((d) => d.id)));
  }

  const ahead = input.devices.filter((d) => d.seq !== null && d.seq >= record.seq && d.bundleId !== record.id).map((d) => d.id);
  if (ahead.length > 0) warnings.push(finding('ahead', `${plural(ahead.length, 'device')} report seq ${record.seq} or above and will reject seq ${record.seq} as replayed`, ahead));
  const never = input.devices.filter((d) => d.lastSeen === null).map((d) => d.id);
  if (never.length > 0) warnings.push(finding('never_connected', `${plural(never.length, 'device')} never connected; they get the bundle when they do`, never));

  if (input.checkEndpoints) {
    const now = input.now ?? Math.floor(Date.now() / 1000);
    const checks = decoded.endpoints
      .filter((e) => !e.host.startsWith('*.'))
      .filter((e) => (e.notBefore === undefined || e.notBefore <= now) && (e.notAfter === undefined || now < e.notAfter))
      .map(async (e) => {
        const where = `${e.host}:${e.port}`;
        try {
          const served = await fetchServedChain(e.host, e.port, { timeoutMs: input.probeTimeoutMs ?? 3000 });
          const pinned = new Set(e.pins.map((p) => Buffer.from(p).toString('base64')));
          const match = served.pins.some((p) => pinned.has(Buffer.from(p.pin).toString('base64')));
          if (!match) {
            const f: PreflightFinding = { code: 'endpoint_mismatch', endpoint: where, message: `${where} presents ${served.pins.map((p) => p.text).join(', ')}; none is in the new pin set, so every device would fail to connect` };
            (e.mode === 'report-only' ? warnings : problems).push(f);
          }
        } catch (err) {
          warnings.push({ code: 'endpoint_unreachable', endpoint: where, message: `${where} not checked: ${(err as Error).message}` });
        }
      });
    await Promise.all(checks);
  }
  return { ok: problems.length === 0, targeted: input.devices.length, problems, warnings };
}
