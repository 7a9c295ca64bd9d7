// The firmware manifest (docs/architecture.md §4): what a device model is born with. JSON for people,
// validated against MANIFEST_SCHEMA with errors that carry JSON paths; deterministic CBOR for flash.
// initialState() turns a manifest into a device's first trust state; bundleFitsManifest() is the
// gateway's pre-flight question "could a device of this model accept this bundle at all?".
// healthCheckOf() gives the provisional-apply policy of provisional.ts (docs/pin-safety.md).
//
//   const r = validateManifest(JSON.parse(text));
//   if (!r.ok) r.errors; // [{ path: '/pins/0/pins', message: 'must hold at least 2 distinct pins ...' }]
//   const state = initialState(r.manifest, 'thermostats');
import { X509Certificate } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import { decodeCanonical, encodeCanonical, equalBytes, type CborValue } from './cbor.ts';
import { DEFAULT_MAX_BUNDLE_BYTES, decodeEnvelope, FORMAT_VERSION, hex, kidOf, smallestBundleBytes, type ExpiryPolicy, type PinMode, type RejectReason } from './codec.ts';
import { endpointText } from './endpoint-text.ts';
import { publicKeyFromText } from './keys.ts';
import { parsePin, tryParsePin } from './pins.ts';
import type { HealthCheck } from './provisional.ts';
import type { TrustState } from './trust-state.ts';

export interface ManifestEndpoint {
  host: string;
  /** default 443 */
  port?: number;
  /** "sha256/<base64>", at least two distinct (RFC 7469 §2.5) */
  pins: string[];
  /** default "enforce" */
  mode?: PinMode;
}

/**
 * Provisional apply with a health-checked commit (docs/pin-safety.md): after a valid bundle, the
 * device checks these endpoints under the new pins and commits or reverts by itself.
 */
export interface ManifestHealthCheck {
  /** the endpoints to check (no wildcards: each is dialled); default: every enforced endpoint of the new bundle */
  endpoints?: Array<{ host: string; /** default 443 */ port?: number }>;
  /** how long the provisional window lasts, seconds (1 to 604800) */
  commitTimeoutSeconds: number;
  /** how long a handshake is given and the wait before an endpoint that did not answer is tried again, seconds (1 to commitTimeoutSeconds) */
  retrySeconds: number;
  /** when an endpoint never answered within commitTimeoutSeconds: commit without verification (ack `applied`) or revert */
  onUnverifiable: 'commit' | 'revert';
}

export interface FirmwareManifest {
  model: string;
  firmware: string;
  /** bundle format versions this firmware accepts; default [1] */
  acceptedVersions?: number[];
  /** largest bundle this firmware accepts, bytes; default 4096 */
  maxBundleBytes?: number;
  /** Ed25519 keys trusted to sign bundles: SPKI PEM or the base64 of the raw 32 bytes */
  trustedKeys: string[];
  /** how far the device clock may be off, seconds; default 300 */
  clockSkewSeconds?: number;
  /** the pins the firmware ships with */
  pins: ManifestEndpoint[];
  /** what the device does once its bundle has expired; default "enforce" (keep enforcing) */
  expiryPolicy?: ExpiryPolicy;
  /** the gateway's MQTT URL, e.g. mqtts://gateway.example.com:8883 */
  gatewayUrl?: string;
  /** the CA certificate (PEM) the gateway's TLS link is checked against: never the bundle's pins (docs/architecture.md §5) */
  gatewayCa?: string;
  /** provisional apply; default none: a bundle is committed at once and acked `applied` */
  healthCheck?: ManifestHealthCheck;
}

const HOST_PATTERN = '^(\\*\\.)?[a-z0-9.:-]+$';
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;

/** The JSON schema of `healthCheck`; scenario files (device-sim/scenario.ts) use it too. */
export const HEALTH_CHECK_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['commitTimeoutSeconds', 'retrySeconds', 'onUnverifiable'],
  properties: {
    endpoints: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['host'],
        properties: { host: { type: 'string', minLength: 1, maxLength: 253, pattern: HOST_PATTERN }, port },
      },
    },
    commitTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 604800 },
    retrySeconds: { type: 'integer', minimum: 1, maximum: 604800 },
    onUnverifiable: { enum: ['commit', 'revert'] },
  },
} as const;

export const MANIFEST_SCHEMA = {
  $id: 'https://pinwave.dev/schemas/firmware-manifest.json',
  title: 'pinwave firmware manifest',
  type: 'object',
  additionalProperties: false,
  required: ['model', 'firmware', 'trustedKeys', 'pins'],
  properties: {
    $schema: { type: 'string' },
    model: { type: 'string', minLength: 1, maxLength: 64 },
    firmware: { type: 'string', minLength: 1, maxLength: 64 },
    acceptedVersions: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'integer', minimum: 1 } },
    maxBundleBytes: { type: 'integer', minimum: 128, maximum: 65536 },
    trustedKeys: { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', minLength: 1 } },
    clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 86400 },
    pins: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['host', 'pins'],
        properties: {
          host: { type: 'string', minLength: 1, maxLength: 253, pattern: HOST_PATTERN },
          port,
          pins: { type: 'array', minItems: 2, items: { type: 'string' } },
          mode: { enum: ['enforce', 'report-only'] },
        },
      },
    },
    expiryPolicy: { enum: ['enforce', 'ca-fallback'] },
    gatewayUrl: { type: 'string', pattern: '^(mqtt|mqtts|ws|wss)://' },
    gatewayCa: { type: 'string' },
    healthCheck: HEALTH_CHECK_SCHEMA,
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
const validateSchema = ajv.compile(MANIFEST_SCHEMA);
const validateHealthCheckSchema = ajv.compile(HEALTH_CHECK_SCHEMA);

export interface ManifestError {
  /** JSON pointer to the offending value, e.g. "/pins/0/pins/1" ("" for the whole document) */
  path: string;
  message: string;
}

export type ManifestResult = { ok: true; manifest: FirmwareManifest } | { ok: false; errors: ManifestError[] };

/**
 * Validate a parsed JSON manifest: the schema, then what a schema cannot say (keys, pins,
 * certificates, the health check's timings). Every problem is reported at once: a field the schema
 * refuses (an unknown one, say) does not hide what is wrong elsewhere.
 */
export function validateManifest(value: unknown): ManifestResult {
  const errors: ManifestError[] = validateSchema(value) ? [] : (validateSchema.errors ?? []).map(schemaError);
  if (isRecord(value)) {
    // The schema has spoken about a value it refused; the checks below only add what it could not see.
    const said = new Set(errors.map((e) => e.path));
    for (const e of semanticErrors(value)) if (!said.has(e.path)) errors.push(e);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, manifest: value as unknown as FirmwareManifest };
}

/** The checks no schema can make, on a value that may be malformed anywhere: each looks only at parts of the right shape. */
function semanticErrors(m: Record<string, unknown>): ManifestError[] {
  const errors: ManifestError[] = [];
  if (Array.isArray(m.trustedKeys)) {
    m.trustedKeys.forEach((k, i) => {
      if (typeof k !== 'string' || k === '') return;
      try {
        publicKeyFromText(k);
      } catch (err) {
        errors.push({ path: `/trustedKeys/${i}`, message: (err as Error).message });
      }
    });
  }
  if (Array.isArray(m.pins)) {
    const seen = new Set<string>();
    m.pins.forEach((e, i) => {
      if (!isRecord(e)) return;
      const where = endpointText(String(e.host), typeof e.port === 'number' ? e.port : 443);
      if (typeof e.host === 'string') {
        if (seen.has(where)) errors.push({ path: `/pins/${i}`, message: `${where} is listed twice` });
        seen.add(where);
      }
      if (!Array.isArray(e.pins)) return;
      const distinct = new Set<string>();
      e.pins.forEach((p, j) => {
        if (typeof p !== 'string') return;
        const r = tryParsePin(p);
        if (!r.ok) errors.push({ path: `/pins/${i}/pins/${j}`, message: r.error.message });
        else distinct.add(p);
      });
      // RFC 7469 §2.5: a backup pin, or the device cannot survive one key change.
      if (distinct.size < 2 && e.pins.length >= 2) errors.push({ path: `/pins/${i}/pins`, message: `must hold at least 2 distinct pins (RFC 7469 §2.5 backup pin), got ${distinct.size}` });
    });
  }
  if (typeof m.gatewayCa === 'string') {
    try {
      new X509Certificate(m.gatewayCa);
    } catch {
      errors.push({ path: '/gatewayCa', message: 'must be a PEM certificate' });
    }
  }
  if (isRecord(m.healthCheck)) errors.push(...healthCheckErrors(m.healthCheck, '/healthCheck'));
  return errors;
}

/**
 * What the schema cannot say about a health check: its retry fits in its window, its endpoints can be
 * dialled and are listed once. `at` is the JSON path of the health check.
 */
export function healthCheckErrors(hc: Record<string, unknown>, at: string): ManifestError[] {
  const errors: ManifestError[] = [];
  const { commitTimeoutSeconds: timeout, retrySeconds: retry } = hc;
  if (typeof timeout === 'number' && typeof retry === 'number' && retry > timeout) {
    errors.push({ path: `${at}/retrySeconds`, message: `must be at most commitTimeoutSeconds (${timeout}), got ${retry}: a retry must fall inside the window` });
  }
  if (Array.isArray(hc.endpoints)) {
    const seen = new Set<string>();
    hc.endpoints.forEach((e, i) => {
      if (!isRecord(e) || typeof e.host !== 'string') return;
      if (e.host.startsWith('*.')) errors.push({ path: `${at}/endpoints/${i}/host`, message: `cannot be a wildcard: a health check dials a host, got "${e.host}"` });
      const where = endpointText(e.host, typeof e.port === 'number' ? e.port : 443);
      if (seen.has(where)) errors.push({ path: `${at}/endpoints/${i}`, message: `${where} is listed twice` });
      seen.add(where);
    });
  }
  return errors;
}

/** Every problem with a health check given on its own (a scenario file's), paths under `at`. */
export function validateHealthCheck(value: unknown, at: string): ManifestError[] {
  const errors = validateHealthCheckSchema(value) ? [] : (validateHealthCheckSchema.errors ?? []).map(schemaError);
  const said = new Set(errors.map((e) => e.path));
  if (isRecord(value)) for (const e of healthCheckErrors(value, '')) if (!said.has(e.path)) errors.push(e);
  return errors.map((e) => ({ path: `${at}${e.path}`, message: e.message }));
}

/** The manifest's health check with ports resolved, for provisional.ts; null when it declares none. */
export function healthCheckOf(m: FirmwareManifest): HealthCheck | null {
  const hc = m.healthCheck;
  if (!hc) return null;
  return {
    ...(hc.endpoints && { endpoints: hc.endpoints.map((e) => ({ host: e.host, port: e.port ?? 443 })) }),
    commitTimeoutSeconds: hc.commitTimeoutSeconds,
    retrySeconds: hc.retrySeconds,
    onUnverifiable: hc.onUnverifiable,
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function schemaError(e: ErrorObject): ManifestError {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: e.instancePath, message: `unknown field "${String(p.additionalProperty)}"` };
    case 'required':
      return { path: e.instancePath, message: `missing required field "${String(p.missingProperty)}"` };
    case 'enum':
      return { path: e.instancePath, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    default:
      return { path: e.instancePath, message: e.message ?? e.keyword };
  }
}

/**
 * The first trusted key listed again (compared by kid, so one key as PEM and as base64 is listed
 * twice), or null: such a manifest leaves its model one key short of what it seems to trust. Refused
 * in a manifest new to the gateway (config, push, `pinwave manifest create|validate`), but not by
 * validateManifest: a manifest an earlier release stored is read again at start and must not stop it.
 */
export function duplicateTrustedKey(m: FirmwareManifest): ManifestError | null {
  const kids = m.trustedKeys.map((k) => hex(kidOf(publicKeyFromText(k))));
  const twice = kids.findIndex((k, j) => kids.indexOf(k) !== j);
  if (twice === -1) return null;
  return { path: `/trustedKeys/${twice}`, message: `trustedKeys[${twice}] is the same key as trustedKeys[${kids.indexOf(kids[twice])}] (kid ${kids[twice]}): list each key once` };
}

/** A manifest new to the gateway: `r` (validateManifest's, decodeManifest's), made invalid when its manifest lists a trusted key twice (duplicateTrustedKey). */
export function keysOnce(r: ManifestResult): ManifestResult {
  const twice = r.ok ? duplicateTrustedKey(r.manifest) : null;
  return twice ? { ok: false, errors: [twice] } : r;
}

/** One line per error: "/pins/0/pins/1: expected 32 bytes after base64 decoding, got 31". */
export function formatManifestErrors(errors: ManifestError[]): string {
  return errors.map((e) => `${e.path || '/'}: ${e.message}`).join('\n');
}

/**
 * What is valid but will not work as meant: the initial pins too large for one bundle this firmware
 * takes, so a rollback to them (a group's first rollout's, docs/architecture.md §6) can never be
 * signed. Warnings, not errors: a manifest already pushed is read again at start and must not stop it.
 */
export function manifestWarnings(m: FirmwareManifest): ManifestError[] {
  const max = m.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  const bytes = smallestBundleBytes(m.pins.map((e) => ({ host: e.host, port: e.port ?? 443, pins: e.pins.map((p) => parsePin(p)), mode: e.mode ?? 'enforce' })));
  if (bytes <= max) return [];
  return [{ path: '/pins', message: `the initial pins (${m.pins.length} endpoint${m.pins.length === 1 ? '' : 's'}) need a bundle of at least ${bytes} bytes, above the ${max} bytes this firmware takes (maxBundleBytes${m.maxBundleBytes === undefined ? ', its default' : ''}): a rollback to them could never be signed. Pin fewer endpoints, or raise maxBundleBytes` }];
}

/** A device's first trust state: the manifest's keys and pins, seq 0, no bundle. */
export function initialState(m: FirmwareManifest, group: string): TrustState {
  return {
    group,
    seq: 0,
    bundleId: null,
    keyEpoch: 0,
    trustedKeys: m.trustedKeys.map((k) => Buffer.from(publicKeyFromText(k)).toString('base64')),
    endpoints: m.pins.map((e) => ({
      host: e.host,
      port: e.port ?? 443,
      pins: e.pins.map((p) => p.replace(/^sha256\//, '')),
      mode: e.mode ?? 'enforce',
    })),
    exp: null,
    expiryPolicy: m.expiryPolicy ?? 'enforce',
    maxBundleBytes: m.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES,
    acceptedVersions: m.acceptedVersions ?? [FORMAT_VERSION],
    clockSkewSeconds: m.clockSkewSeconds ?? 300,
  };
}

/**
 * Could a device of this model accept this bundle at all? Checked by the gateway before a rollout
 * starts (docs/architecture.md §4): size, format version and signing key. Per-device matters (seq, group) are not.
 * `extraKeys` are keys the fleet trusts beyond the manifest's (after a key rotation).
 */
export function bundleFitsManifest(m: FirmwareManifest, bytes: Uint8Array, version: number, extraKeys: readonly Uint8Array[] = []): { ok: true } | { ok: false; reason: RejectReason; detail: string } {
  const max = m.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
  if (bytes.length > max) return { ok: false, reason: 'too_large', detail: `bundle is ${bytes.length} bytes; ${m.model} ${m.firmware} takes at most ${max}` };
  const accepted = m.acceptedVersions ?? [FORMAT_VERSION];
  if (!accepted.includes(version)) return { ok: false, reason: 'unsupported_version', detail: `format version ${version}; ${m.model} ${m.firmware} accepts ${accepted.join(', ')}` };
  const env = decodeEnvelope(bytes, Infinity);
  if (!env.ok) return env;
  const keys = [...m.trustedKeys.map(publicKeyFromText), ...extraKeys];
  if (!keys.some((k) => equalBytes(kidOf(k), env.envelope.kid))) return { ok: false, reason: 'unknown_key', detail: `${m.model} ${m.firmware} does not trust the signing key` };
  return { ok: true };
}

// CBOR for flash (docs/firmware-manifest.md has the CDDL): integer keys like the bundle.
const F = { model: 1, firmware: 2, acceptedVersions: 3, maxBundleBytes: 4, trustedKeys: 5, clockSkewSeconds: 6, pins: 7, expiryPolicy: 8, gatewayUrl: 9, gatewayCa: 10, healthCheck: 11 } as const;
const H = { commitTimeoutSeconds: 1, retrySeconds: 2, onUnverifiable: 3, endpoints: 4 } as const;

/** The manifest in deterministic CBOR, defaults written out (flash has no defaults file). Keys raw, pins as 32 bytes, CA as DER. */
export function encodeManifest(m: FirmwareManifest): Uint8Array {
  const s = initialState(m, '');
  const map = new Map<number, CborValue>([
    [F.model, m.model],
    [F.firmware, m.firmware],
    [F.acceptedVersions, s.acceptedVersions],
    [F.maxBundleBytes, s.maxBundleBytes],
    [F.trustedKeys, m.trustedKeys.map(publicKeyFromText)],
    [F.clockSkewSeconds, s.clockSkewSeconds],
    [
      F.pins,
      s.endpoints.map((e) => {
        const em = new Map<number, CborValue>([[1, e.host], [2, e.port], [3, e.pins.map((p) => new Uint8Array(Buffer.from(p, 'base64')))]]);
        if (e.mode === 'report-only') em.set(4, 1);
        return em;
      }),
    ],
    [F.expiryPolicy, s.expiryPolicy === 'ca-fallback' ? 1 : 0],
  ]);
  if (m.gatewayUrl !== undefined) map.set(F.gatewayUrl, m.gatewayUrl);
  if (m.gatewayCa !== undefined) map.set(F.gatewayCa, new Uint8Array(new X509Certificate(m.gatewayCa).raw));
  const hc = healthCheckOf(m);
  if (hc) {
    const hm = new Map<number, CborValue>([
      [H.commitTimeoutSeconds, hc.commitTimeoutSeconds],
      [H.retrySeconds, hc.retrySeconds],
      [H.onUnverifiable, hc.onUnverifiable === 'revert' ? 1 : 0],
    ]);
    if (hc.endpoints) hm.set(H.endpoints, hc.endpoints.map((e) => new Map<number, CborValue>([[1, e.host], [2, e.port]])));
    map.set(F.healthCheck, hm);
  }
  return encodeCanonical(map);
}

/** Read a CBOR manifest back into its JSON form (keys as raw base64, pins as sha256/). */
export function decodeManifest(bytes: Uint8Array): ManifestResult {
  const d = decodeCanonical(bytes);
  if (!d.ok || !(d.value instanceof Map)) return { ok: false, errors: [{ path: '', message: d.ok ? 'must be a CBOR map' : d.detail }] };
  const m = d.value;
  const b64 = (v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v);
  const pins = m.get(F.pins);
  const json: Record<string, unknown> = {
    model: m.get(F.model),
    firmware: m.get(F.firmware),
    acceptedVersions: m.get(F.acceptedVersions),
    maxBundleBytes: m.get(F.maxBundleBytes),
    trustedKeys: Array.isArray(m.get(F.trustedKeys)) ? (m.get(F.trustedKeys) as CborValue[]).map(b64) : m.get(F.trustedKeys),
    clockSkewSeconds: m.get(F.clockSkewSeconds),
    pins: Array.isArray(pins)
      ? pins.map((e) =>
          e instanceof Map
            ? { host: e.get(1), port: e.get(2), pins: Array.isArray(e.get(3)) ? (e.get(3) as CborValue[]).map((p) => `sha256/${b64(p)}`) : e.get(3), ...(e.get(4) === 1 && { mode: 'report-only' }) }
            : e,
        )
      : pins,
    expiryPolicy: m.get(F.expiryPolicy) === 1 ? 'ca-fallback' : 'enforce',
  };
  if (m.has(F.gatewayUrl)) json.gatewayUrl = m.get(F.gatewayUrl);
  if (m.has(F.healthCheck)) {
    const h = m.get(F.healthCheck);
    if (!(h instanceof Map)) return { ok: false, errors: [{ path: '/healthCheck', message: 'must be a CBOR map' }] };
    const unknown = [...h.keys()].filter((k) => !Object.values(H).includes(k as never));
    if (unknown.length > 0) return { ok: false, errors: [{ path: '/healthCheck', message: `unknown key ${unknown[0]} in the CBOR health check` }] };
    const policy = h.get(H.onUnverifiable);
    const eps = h.get(H.endpoints);
    json.healthCheck = {
      commitTimeoutSeconds: h.get(H.commitTimeoutSeconds),
      retrySeconds: h.get(H.retrySeconds),
      onUnverifiable: policy === 0 ? 'commit' : policy === 1 ? 'revert' : policy,
      ...(h.has(H.endpoints) && { endpoints: Array.isArray(eps) ? eps.map((e) => (e instanceof Map ? { host: e.get(1), port: e.get(2) } : e)) : eps }),
    };
  }
  const ca = m.get(F.gatewayCa);
  if (ca instanceof Uint8Array) {
    try {
      json.gatewayCa = new X509Certificate(Buffer.from(ca)).toString();
    } catch {
      return { ok: false, errors: [{ path: '/gatewayCa', message: 'must be a DER certificate' }] };
    }
  }
  return validateManifest(json);
}
