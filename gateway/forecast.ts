// The lockout forecast (docs/architecture.md §9, docs/pin-safety.md#lockout-forecast): which devices
// would lock themselves out of `host:port` if it served `pins` at date `at`. Each device is judged as
// it judges a handshake (trust-state.ts checkChain), under the pin set it holds: the bundle it reports,
// or its model's firmware pins; overlap windows in force at `at` and the bundle's expiry policy
// included. A device with a rollout in flight is shown with what it will hold after it as well.
// Pure: the records come in as values (the gateway reads them).
import { checkChain, endpointText, initialState, pinsOnlyState, trustedEndpoints, type ChainCheck, type FirmwareManifest, type PinBundle, type TrustState } from '../firmware-manifest/index.ts';
import type { DeviceRecord } from './store/types.ts';

export interface ForecastQuery {
  host: string;
  port: number;
  /** the served chain's pins, `sha256/…` (any of them held lets a device in) */
  pins: string[];
  /** seconds since the epoch */
  at: number;
}

export interface InFlight {
  rollout: string;
  bundleId: string;
}

export interface ForecastInput {
  devices: Iterable<DeviceRecord>;
  /** decoded bundles by id; a device reporting one not here is counted `unknown` */
  bundles: ReadonlyMap<string, PinBundle>;
  manifests: ReadonlyMap<string, FirmwareManifest>;
  /** the rollout (pending, running or held) that will bring the device another bundle, if any */
  inFlight: (deviceId: string) => InFlight | null;
  query: ForecastQuery;
}

export interface ForecastDevice {
  id: string;
  group: string;
  model: string | null;
  seq: number | null;
  bundleId: string | null;
  /** checkChain's verdict under what it holds now; `pin_mismatch` is a lockout */
  check: ChainCheck;
  lockedOut: boolean;
  /** under the bundle of its rollout in flight */
  after?: { rollout: string; seq: number; bundleId: string; check: ChainCheck; lockedOut: boolean };
}

export interface Forecast {
  endpoint: string;
  pins: string[];
  at: number;
  /** devices judged (revoked ones are not) */
  devices: number;
  /** devices whose pins are unknown here: a bundle the gateway does not hold, or a model with no manifest */
  unknown: number;
  lockedOut: number;
  /** locked out once every rollout in flight has landed */
  lockedOutAfterRollouts: number;
  byGroup: Record<string, number>;
  byModel: Record<string, number>;
  bySeq: Record<string, number>;
  /** devices locked out now or after their rollout in flight, in id order */
  items: ForecastDevice[];
}

export function forecast(input: ForecastInput): Forecast {
  const { host, port, pins, at } = input.query;
  const states = new Map<string, TrustState | null>();
  const stateOf = (bundleId: string | null, d: DeviceRecord): TrustState | null => {
    const key = bundleId !== null ? `b:${bundleId}` : `m:${d.model ?? ''}:${d.group}`;
    if (!states.has(key)) {
      const b = bundleId !== null ? input.bundles.get(bundleId) : undefined;
      const m = bundleId === null && d.model !== null ? input.manifests.get(d.model) : undefined;
      states.set(key, b ? bundleState(b) : m ? initialState(m, d.group) : null);
    }
    return states.get(key)!;
  };
  const judge = (s: TrustState) => checkChain(s, host, port, pins, at);

  const out: Forecast = { endpoint: endpointText(host, port), pins, at, devices: 0, unknown: 0, lockedOut: 0, lockedOutAfterRollouts: 0, byGroup: {}, byModel: {}, bySeq: {}, items: [] };
  for (const d of input.devices) {
    if (d.revokedAt !== null) continue;
    out.devices++;
    const now = stateOf(d.bundleId, d);
    if (!now) {
      out.unknown++;
      continue;
    }
    const check = judge(now);
    const lockedOut = check === 'pin_mismatch';
    const flight = input.inFlight(d.id);
    const next = flight && flight.bundleId !== d.bundleId ? input.bundles.get(flight.bundleId) : undefined;
    let after: ForecastDevice['after'];
    if (flight && next) {
      const c = judge(bundleState(next));
      after = { rollout: flight.rollout, seq: next.seq, bundleId: flight.bundleId, check: c, lockedOut: c === 'pin_mismatch' };
    }
    if (lockedOut) {
      out.lockedOut++;
      bump(out.byGroup, d.group);
      bump(out.byModel, d.model ?? '(none)');
      bump(out.bySeq, String(d.seq ?? 0));
    }
    if (after ? after.lockedOut : lockedOut) out.lockedOutAfterRollouts++;
    if (lockedOut || after?.lockedOut) out.items.push({ id: d.id, group: d.group, model: d.model, seq: d.seq, bundleId: d.bundleId, check, lockedOut, ...(after && { after }) });
  }
  out.items.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return out;
}

/** What a device holds after applying `b`, as far as judging a handshake goes. */
function bundleState(b: PinBundle): TrustState {
  return pinsOnlyState(trustedEndpoints(b.endpoints), b.exp, b.expiryPolicy ?? 'enforce');
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
