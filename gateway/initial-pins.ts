// What a group ran before its first rollout (docs/architecture.md §6, rollback): the initial pins of
// the firmware manifests its devices were born with. A rollback of a group's first rollout restores
// them, signed again with a higher seq; for a group of several models, per endpoint the union of
// their initial pins, so that every device gets back every pin its firmware shipped with. Pure.
//
//   const r = initialPins(devices, (model, firmware) => registry.find(model, firmware)?.manifest ?? null);
//   if (!r.ok) r.missing;   // [{ model: 'th-100', firmware: '1.4.2', devices: 3 }]: push these manifests
import type { ExpiryPolicy, FirmwareManifest, PinMode } from '../firmware-manifest/index.ts';

export interface InitialEndpoint {
  host: string;
  port: number;
  /** "sha256/<base64>", in the order first seen */
  pins: string[];
  mode?: PinMode;
}

export interface MissingManifest {
  /** null: devices whose model the gateway does not know (never reported, not provisioned with one) */
  model: string | null;
  /** null: any firmware of the model (the devices never reported theirs) */
  firmware: string | null;
  devices: number;
}

export type InitialPins =
  | { ok: true; endpoints: InitialEndpoint[]; expiryPolicy: ExpiryPolicy; manifests: Array<{ model: string; firmware: string }> }
  | { ok: false; missing: MissingManifest[] };

type Find = (model: string, firmware: string | null) => FirmwareManifest | null;

/**
 * The union of the initial pins of the devices' manifests. Endpoints are keyed by host and port; an
 * endpoint is report-only only if every manifest that pins it says so; the expiry policy is
 * ca-fallback only if every manifest says so (the stricter choice wins).
 */
export function initialPins(devices: ReadonlyArray<{ model: string | null; firmware: string | null }>, find: Find): InitialPins {
  const kinds = new Map<string, { model: string | null; firmware: string | null; devices: number }>();
  for (const d of devices) {
    const key = `${d.model ?? ''}\u0000${d.firmware ?? ''}`;
    const k = kinds.get(key);
    if (k) k.devices++;
    else kinds.set(key, { model: d.model, firmware: d.firmware, devices: 1 });
  }
  const missing: MissingManifest[] = [];
  const found: FirmwareManifest[] = [];
  for (const k of kinds.values()) {
    const m = k.model === null ? null : find(k.model, k.firmware);
    if (m) found.push(m);
    else missing.push({ model: k.model, firmware: k.firmware, devices: k.devices });
  }
  if (missing.length > 0) return { ok: false, missing };
  const endpoints = new Map<string, InitialEndpoint & { enforced: boolean }>();
  const seen = new Set<string>();
  const manifests: Array<{ model: string; firmware: string }> = [];
  for (const m of found) {
    const id = `${m.model}\u0000${m.firmware}`;
    if (seen.has(id)) continue;
    seen.add(id);
    manifests.push({ model: m.model, firmware: m.firmware });
    for (const e of m.pins) {
      const port = e.port ?? 443;
      const key = `${e.host}:${port}`;
      const enforced = (e.mode ?? 'enforce') === 'enforce';
      const have = endpoints.get(key);
      if (!have) endpoints.set(key, { host: e.host, port, pins: [...new Set(e.pins)], enforced });
      else {
        for (const p of e.pins) if (!have.pins.includes(p)) have.pins.push(p);
        have.enforced ||= enforced;
      }
    }
  }
  const policy: ExpiryPolicy = found.every((m) => m.expiryPolicy === 'ca-fallback') ? 'ca-fallback' : 'enforce';
  return {
    ok: true,
    endpoints: [...endpoints.values()].map(({ enforced, ...e }) => ({ ...e, ...(!enforced && { mode: 'report-only' as const }) })),
    expiryPolicy: policy,
    manifests,
  };
}

/** The sentence a 409 carries when manifests are missing: which to push, and how. */
export function missingManifestMessage(rolloutId: string, group: string, missing: readonly MissingManifest[]): string {
  const what = missing.map((m) =>
    m.model === null
      ? `${m.devices} device${m.devices === 1 ? '' : 's'} with no known model (provision them with --model, or let them connect and report it)`
      : `model "${m.model}"${m.firmware === null ? '' : ` firmware "${m.firmware}"`} (${m.devices} device${m.devices === 1 ? '' : 's'})`,
  );
  return `rollout ${rolloutId} is the first of group "${group}": rolling it back restores the initial pins of the firmware manifests, and the gateway has none for ${what.join(', ')}: push ${missing.length === 1 ? 'it' : 'them'} with \`pinwave manifest push FILE\` (POST /v1/manifests), then roll back again`;
}
