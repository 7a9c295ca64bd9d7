// `--pin HOST[:PORT]=sha256/B64` and `--report-only HOST[:PORT]` flags, shared by `bundle create`
// and `manifest create`: grouped into one endpoint per host and port, checked as the codec would.
import { tryParsePin } from '../firmware-manifest/pins.ts';
import { endpointText } from '../firmware-manifest/endpoint-text.ts';
import { UsageError } from './args.ts';

export interface PinSpec {
  host: string;
  port: number;
  /** "sha256/<base64>" texts, in flag order */
  pins: string[];
  mode: 'enforce' | 'report-only';
}

/** "api.example.com", "api.example.com:8443" → host and port (443 by default). */
export function hostPort(text: string, flag: string, usage: string): { host: string; port: number } {
  const m = /^(\*\.)?([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[3] === undefined ? 443 : Number(m[3]);
  if (!m || port < 1 || port > 65535) throw new UsageError(`--${flag} expects HOST[:PORT] (port 1-65535), got "${text}"`, usage);
  return { host: `${m[1] ?? ''}${m[2]}`.toLowerCase(), port };
}

export function pinSpecs(pins: readonly string[], reportOnly: readonly string[], usage: string): PinSpec[] {
  const byEndpoint = new Map<string, PinSpec>();
  for (const flag of pins) {
    const eq = flag.indexOf('=');
    if (eq <= 0) throw new UsageError(`--pin expects HOST[:PORT]=sha256/BASE64, got "${flag}"`, usage);
    const { host, port } = hostPort(flag.slice(0, eq), 'pin', usage);
    const pin = flag.slice(eq + 1);
    const parsed = tryParsePin(pin);
    if (!parsed.ok) throw new UsageError(`--pin ${flag.slice(0, eq)}: ${parsed.error.message}`, usage);
    const key = `${host}:${port}`;
    const spec = byEndpoint.get(key) ?? { host, port, pins: [], mode: 'enforce' as const };
    if (!spec.pins.includes(pin)) spec.pins.push(pin);
    byEndpoint.set(key, spec);
  }
  for (const flag of reportOnly) {
    const { host, port } = hostPort(flag, 'report-only', usage);
    const spec = byEndpoint.get(`${host}:${port}`);
    if (!spec) throw new UsageError(`--report-only ${flag}: no --pin was given for ${endpointText(host, port)}`, usage);
    spec.mode = 'report-only';
  }
  if (byEndpoint.size === 0) throw new UsageError('missing required flag --pin (at least one endpoint with two pins)', usage);
  for (const spec of byEndpoint.values()) {
    // RFC 7469 §2.5: refuse here, before a bundle is signed that every device would reject.
    if (spec.pins.length < 2) {
      throw new UsageError(`${endpointText(spec.host, spec.port)} has ${spec.pins.length} distinct pin; give at least two (a backup pin, RFC 7469 §2.5)`, usage);
    }
  }
  return [...byEndpoint.values()];
}
