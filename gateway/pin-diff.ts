// A bundle's pins against what its group runs now, for an operator (and the console) to read before
// a rollout: per endpoint (host and port, as a bundle names them) the pins added, removed and kept,
// and the endpoints added or removed. Pure: the caller finds the
// group's current pins. Today those are its baseline, the bundle of its last completed rollout
// (docs/architecture.md §6); a group with none is diffed against nothing, so every endpoint reads
// "added". The approval gate (gateway/rollout/approval.ts) also diffs against a firmware manifest's
// initial pins, for a group that never completed a rollout; endpoints are diffed the same way whatever it is.
//
//   pinDiff(bundle.endpoints, { kind: 'baseline', bundleId, seq, endpoints: baseline.endpoints })
//
// Only pin sets are compared: a change of mode or of a pin set's window with the same pins reads
// "unchanged" here, and the bundle's own endpoints (beside the diff) say what each is.

/** An endpoint with its pins in the `sha256/<base64>` text form (docs/architecture.md §2). */
export interface PinnedEndpoint {
  host: string;
  port: number;
  pins: readonly string[];
}

/** What the bundle is compared with, as the API shows it. */
export type DiffAgainst = { kind: 'baseline'; bundleId: string; seq: number } | { kind: 'manifest'; model: string; firmware: string } | { kind: 'none' };

/** What the caller passes: the `against` as shown, with the current pins where there are any. */
export type DiffBase =
  | { kind: 'baseline'; bundleId: string; seq: number; endpoints: readonly PinnedEndpoint[] }
  | { kind: 'manifest'; model: string; firmware: string; endpoints: readonly PinnedEndpoint[] }
  | { kind: 'none' };

export type EndpointChange = 'added' | 'removed' | 'changed' | 'unchanged';

export interface EndpointDiff {
  host: string;
  port: number;
  change: EndpointChange;
  added: string[];
  removed: string[];
  kept: string[];
}

export interface PinDiff {
  against: DiffAgainst;
  /** the bundle's endpoints in its order, then the removed ones in the order the group has them */
  endpoints: EndpointDiff[];
}

const key = (e: { host: string; port: number }) => `${e.host.toLowerCase()}:${e.port}`;
const unique = (pins: readonly string[]) => [...new Set(pins)];

export function pinDiff(bundle: readonly PinnedEndpoint[], base: DiffBase): PinDiff {
  const current = new Map<string, PinnedEndpoint>();
  if (base.kind !== 'none') for (const e of base.endpoints) current.set(key(e), e);
  const seen = new Set<string>();
  const endpoints: EndpointDiff[] = [];
  for (const e of bundle) {
    const k = key(e);
    if (seen.has(k)) continue; // a bundle names each endpoint once; a second entry would say nothing new
    seen.add(k);
    const pins = unique(e.pins);
    const before = current.get(k);
    if (!before) {
      endpoints.push({ host: e.host, port: e.port, change: 'added', added: pins, removed: [], kept: [] });
      continue;
    }
    const old = new Set(before.pins);
    const now = new Set(pins);
    const added = pins.filter((p) => !old.has(p));
    const removed = unique(before.pins).filter((p) => !now.has(p));
    const kept = pins.filter((p) => old.has(p));
    endpoints.push({ host: e.host, port: e.port, change: added.length + removed.length === 0 ? 'unchanged' : 'changed', added, removed, kept });
  }
  for (const [k, e] of current) {
    if (seen.has(k)) continue;
    seen.add(k);
    endpoints.push({ host: e.host, port: e.port, change: 'removed', added: [], removed: unique(e.pins), kept: [] });
  }
  const against: DiffAgainst =
    base.kind === 'none' ? { kind: 'none' } : base.kind === 'manifest' ? { kind: 'manifest', model: base.model, firmware: base.firmware } : { kind: base.kind, bundleId: base.bundleId, seq: base.seq };
  return { against, endpoints };
}
