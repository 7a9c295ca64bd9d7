// Pin continuity, the part of pre-flight about the endpoints themselves (docs/architecture.md §6, §9):
// for each endpoint of a new pin set,
// - where the gateway could read what the endpoint serves now (gateway/preflight.ts probes the
//   endpoints its config lists), the set in force must hold that key, or a key the operator names as
//   coming (`nextKeys`): else every device that applies it locks itself out of the endpoint;
// - where it could not, an enforced set must keep a pin of what the target runs now (each bundle a part of
//   the target reports, or its model's firmware pins): a set that shares nothing with the old one is
//   only right if the service switched keys, which nobody here saw. A warning, or a refusal when the
//   config says `preflight.requireOverlap`.
// Pure: the served pins come in as values. Pins are judged as devices judge them (trust-state.ts).
import { activePinSets, checkChain, endpointText, pinsOnlyState, trustedEndpoints, type Endpoint, type TrustedEndpoint } from '../firmware-manifest/index.ts';

/** What a part of the target runs now: the same pins on every one of `devices`. */
export interface PinSetNow {
  /** how people name it: "seq 3 (bundle 1a2b3c4d)", or "the firmware pins of model th-100" */
  label: string;
  devices: string[];
  endpoints: TrustedEndpoint[];
}

/** One probe's outcome: the served chain's pins (`sha256/…`, leaf first), or why it failed. */
export type Served = { ok: true; pins: string[] } | { ok: false; error: string };

export interface ContinuityInput {
  /** the new bundle's endpoints */
  endpoints: readonly Endpoint[];
  /** by `host:port`: what the endpoints that were probed served */
  served: ReadonlyMap<string, Served>;
  /** by `host:port`: keys the operator says the endpoint will serve (`sha256/…`) */
  nextKeys?: Readonly<Record<string, readonly string[]>>;
  current: readonly PinSetNow[];
  requireOverlap: boolean;
  /** seconds since the epoch */
  now: number;
}

export type ContinuityCode = 'endpoint_mismatch' | 'endpoint_unreachable' | 'no_overlap' | 'next_key_missing' | 'next_key_only';

export interface ContinuityFinding {
  code: ContinuityCode;
  endpoint: string;
  message: string;
  devices?: string[];
  count?: number;
}

/** How each enforced endpoint was judged, for the create response and the demo. */
export interface EndpointContinuity {
  endpoint: string;
  /** probed: what it serves; otherwise the overlap with what the target runs */
  check: 'served' | 'overlap';
  served?: string[];
  /** the served key (or next key) the new set holds; absent when none */
  held?: string;
  ok: boolean;
}

export interface Continuity {
  problems: ContinuityFinding[];
  warnings: ContinuityFinding[];
  endpoints: EndpointContinuity[];
}

/** The codes a forced start may override (gateway/gateway.ts): every refusal of this file. */
export const CONTINUITY_CODES: ReadonlySet<string> = new Set<ContinuityCode>(['endpoint_mismatch', 'no_overlap']);

const short = (pin: string) => `${pin.slice(0, 20)}…`;
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function continuity(input: ContinuityInput): Continuity {
  const problems: ContinuityFinding[] = [];
  const warnings: ContinuityFinding[] = [];
  const endpoints: EndpointContinuity[] = [];
  const state = pinsOnlyState(trustedEndpoints(input.endpoints));

  for (const where of pinnedEndpoints(input.endpoints)) {
    const [host, port] = splitEndpoint(where);
    const enforced = input.endpoints.some((e) => endpointText(e.host, e.port) === where && (e.mode ?? 'enforce') === 'enforce');
    // Every pin the new bundle holds for the endpoint, in any window: a key named as coming may be staged for later.
    const all = new Set(state.endpoints.filter((e) => e.host === host && e.port === port).flatMap((e) => e.pins));
    const next = (input.nextKeys?.[where] ?? []).map(bare);
    const served = input.served.get(where);

    if (served?.ok) {
      const verdict = checkChain(state, host, port, served.pins, input.now);
      const heldNext = next.find((k) => all.has(k));
      if (verdict === 'ok') {
        endpoints.push({ endpoint: where, check: 'served', served: served.pins, held: served.pins.find((p) => all.has(bare(p))), ok: true });
        const missing = next.filter((k) => !all.has(k));
        if (missing.length > 0) warnings.push({ code: 'next_key_missing', endpoint: where, message: `${where}: the key named as coming (${missing.map((k) => short(`sha256/${k}`)).join(', ')}) is not in the new pin set: devices will lock out when the endpoint switches to it` });
      } else if (verdict === 'pin_mismatch' && heldNext !== undefined) {
        endpoints.push({ endpoint: where, check: 'served', served: served.pins, held: `sha256/${heldNext}`, ok: true });
        warnings.push({ code: 'next_key_only', endpoint: where, message: `${where} presents ${served.pins.map(short).join(', ')}, which the new pin set leaves out; it holds the key named as coming (${short(`sha256/${heldNext}`)}): devices cannot reach the endpoint until it serves that key` });
      } else {
        endpoints.push({ endpoint: where, check: 'served', served: served.pins, ok: false });
        const named = next.length > 0 ? ` nor the key named as coming (${next.map((k) => short(`sha256/${k}`)).join(', ')})` : '';
        const f: ContinuityFinding = { code: 'endpoint_mismatch', endpoint: where, message: `${where} presents ${served.pins.join(', ')}; none is in the new pin set${named}, so every device would fail to connect: missing ${served.pins[0]}${next.length === 0 ? ` (or name the key it will serve: --next-key ${where}=sha256/…)` : ''}` };
        (verdict === 'report_only_mismatch' ? warnings : problems).push(f);
      }
      continue;
    }
    if (served && !served.ok) warnings.push({ code: 'endpoint_unreachable', endpoint: where, message: `${where} not checked: ${served.error}` });
    if (!enforced) continue;

    // Not seen: keep a pin of what each part of the target runs now.
    const fresh = [...all];
    let ok = true;
    for (const set of input.current) {
      const old = activePinSets(set.endpoints, host, port, input.now).flatMap((e) => e.pins);
      if (old.length === 0 || old.some((p) => all.has(p)) || next.some((k) => fresh.includes(k))) continue;
      ok = false;
      const f: ContinuityFinding = {
        code: 'no_overlap',
        endpoint: where,
        message: `${where}: the new pin set keeps no pin of ${set.label}, which ${plural(set.devices.length, 'device')} ${set.devices.length === 1 ? 'runs' : 'run'} now; unless the endpoint already serves a new key, they would lock themselves out${input.requireOverlap ? '' : ' (preflight.requireOverlap refuses this)'}`,
        devices: set.devices.slice(0, 100),
        count: set.devices.length,
      };
      (input.requireOverlap ? problems : warnings).push(f);
    }
    endpoints.push({ endpoint: where, check: 'overlap', ok });
  }
  return { problems, warnings, endpoints };
}

/** `host:port` of each endpoint of a bundle, once, in bundle order, as people write it (`[::1]:443`): the key of findings, probes and next keys. */
export function pinnedEndpoints(endpoints: readonly Endpoint[]): string[] {
  return [...new Set(endpoints.map((e) => endpointText(e.host, e.port)))];
}

/** `host:port` → [host, port]; an IPv6 host in brackets (`[::1]:443`) or, as older clients send it, bare (`::1:443`). */
export function splitEndpoint(where: string): [string, number] {
  const i = where.lastIndexOf(':');
  return [where.slice(0, i).replace(/^\[(.*)\]$/, '$1'), Number(where.slice(i + 1))];
}

const bare = (pin: string) => pin.replace(/^sha256\//, '');
