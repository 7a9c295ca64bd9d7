// Pre-flight (docs/architecture.md §6): before a rollout starts, refuse a bundle that some targeted devices
// could not accept (their firmware manifest says too large, unknown key, unsupported version; or
// another group), and pin continuity (gateway/continuity.ts): the endpoints the config lists are read
// by live TLS, the others judged by overlap with what the target runs now. Warn about what is odd but
// not fatal. The verdict is a value.
import { endpointText, type FirmwareManifest, type PinBundle, type RejectReason } from '../firmware-manifest/index.ts';
import type { BundleRecord, DeviceRecord } from './store/types.ts';
import { isIP } from 'node:net';
import { continuity, type ContinuityCode, type EndpointContinuity, type PinSetNow, type Served } from './continuity.ts';
import { fetchServedChain, type ServedChain } from './tls-probe.ts';

export interface PreflightFinding {
  code: 'wrong_group' | 'too_large' | 'unsupported_version' | 'unknown_key' | 'malformed' | 'no_manifest' | 'ahead' | 'never_connected' | 'rotated_keys' | 'continuity_skipped' | 'stale_key_epoch' | 'unknown_key_epoch' | ContinuityCode;
  message: string;
  /** the devices concerned (the first 100) and how many there are */
  devices?: string[];
  count?: number;
  endpoint?: string;
}

/** Config `preflight` (gateway/config.ts): which endpoints are read by live TLS, and how strict the overlap check is. */
export interface PreflightOptions {
  /** by `host:port`: the endpoints probed, each with the address to dial, or null to dial its name */
  endpoints?: Record<string, { host: string; port: number } | null>;
  /** probe every endpoint of a new bundle by name; default false */
  probeAll?: boolean;
  /** refuse, not warn, a pin set that keeps no pin of what the target runs now; default false */
  requireOverlap?: boolean;
}

export interface Preflight {
  ok: boolean;
  targeted: number;
  /** reasons the rollout is refused */
  problems: PreflightFinding[];
  /** what the operator should know */
  warnings: PreflightFinding[];
  /** how each endpoint of the new pin set was judged (gateway/continuity.ts) */
  endpoints: EndpointContinuity[];
  /** a refusal the operator overrode: who, when, why (the rollout records it as a `force` decision) */
  forced?: { by: string; at: number; reason: string };
}

type Fits = (m: FirmwareManifest, bytes: Uint8Array, version: number) => { ok: true } | { ok: false; reason: RejectReason; detail: string };

export interface PreflightInput {
  bundle: { record: BundleRecord; bytes: Uint8Array; decoded: PinBundle };
  devices: DeviceRecord[];
  manifests: ReadonlyMap<string, FirmwareManifest>;
  fits: Fits;
  /** probe every endpoint of the bundle by name (config preflight.probeAll, or the request's checkEndpoints) */
  checkEndpoints: boolean;
  /** config preflight.endpoints: the endpoints probed (`host:port`), each with the address to dial, or null for its name */
  probeTargets?: ReadonlyMap<string, { host: string; port: number } | null>;
  /** by `host:port`: keys the operator says will be served (`sha256/…`) */
  nextKeys?: Readonly<Record<string, readonly string[]>>;
  /** what the target runs now, for the overlap check of endpoints not probed */
  current?: readonly PinSetNow[];
  /** config preflight.requireOverlap: no overlap with what runs now refuses instead of warning */
  requireOverlap?: boolean;
  /** pin continuity is not checked, for this reason (a rollback restores pins that ran before) */
  skipContinuity?: string;
  /** seconds since the epoch, for which pin sets are in force; default now */
  now?: number;
  probeTimeoutMs?: number;
  /** how an endpoint is read (tests); default fetchServedChain */
  probe?: (dial: { host: string; port: number }, servername: string | undefined) => Promise<ServedChain>;
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

  // A device refuses a seq not above its own as replayed (docs/bundle-format.md, rollback
  // protection): a rollout of an older bundle can only fail there. Going back to older pins is a
  // rollback, a new bundle with a higher seq (docs/architecture.md §6).
  const aheadOf = input.devices.filter((d) => d.seq !== null && d.seq >= record.seq && d.bundleId !== record.id);
  if (aheadOf.length > 0) {
    const seqs = aheadOf.map((d) => d.seq as number);
    const [lowest, highest] = [Math.min(...seqs), Math.max(...seqs)];
    problems.push(finding('ahead', `bundle seq ${record.seq} is not above what ${plural(aheadOf.length, 'device')} ${aheadOf.length === 1 ? 'reports' : 'report'} (seq ${lowest === highest ? highest : `${lowest} to ${highest}`}): they would reject it as replayed; push the pins as a new bundle (seq above ${highest}), or roll back the rollout that took them there`, aheadOf.map((d) => d.id)));
  }
  const never = input.devices.filter((d) => d.lastSeen === null).map((d) => d.id);
  if (never.length > 0) warnings.push(finding('never_connected', `${plural(never.length, 'device')} never connected; they get the bundle when they do`, never));

  if (input.skipContinuity !== undefined) {
    warnings.push({ code: 'continuity_skipped', message: `pin continuity not checked: ${input.skipContinuity}` });
    return { ok: problems.length === 0, targeted: input.devices.length, problems, warnings, endpoints: [] };
  }
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const probe = input.probe ?? ((where: { host: string; port: number }, servername: string | undefined) => fetchServedChain(where.host, where.port, { timeoutMs: input.probeTimeoutMs ?? 3000, ...(servername !== undefined && { servername }) }));
  // Only endpoints the config names (or all, when asked) are dialled, and only while a set of theirs is in force.
  const targets = new Map<string, { host: string; port: number; servername?: string }>();
  for (const e of decoded.endpoints) {
    const where = endpointText(e.host, e.port);
    if (e.host.startsWith('*.') || targets.has(where)) continue;
    if (!((e.notBefore === undefined || e.notBefore <= now) && (e.notAfter === undefined || now < e.notAfter))) continue;
    const listed = input.probeTargets?.get(where);
    if (listed === undefined && !input.checkEndpoints) continue;
    targets.set(where, listed ? { ...listed, ...(isIP(e.host) === 0 && { servername: e.host }) } : { host: e.host, port: e.port });
  }
  const served = new Map<string, Served>();
  await Promise.all(
    [...targets].map(async ([where, dial]) => {
      try {
        const chain = await probe(dial, dial.servername);
        served.set(where, { ok: true, pins: chain.pins.map((p) => p.text) });
      } catch (err) {
        served.set(where, { ok: false, error: (err as Error).message });
      }
    }),
  );
  const c = continuity({ endpoints: decoded.endpoints, served, nextKeys: input.nextKeys, current: input.current ?? [], requireOverlap: input.requireOverlap ?? false, now });
  problems.push(...c.problems);
  warnings.push(...c.warnings);
  return { ok: problems.length === 0, targeted: input.devices.length, problems, warnings, endpoints: c.endpoints };
}
