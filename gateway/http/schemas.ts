// JSON schemas shared by the route files (every body and query validated by JSON schema).
// Request schemas are inlined into each route (they are validated by the API's own Ajv, see
// server.ts); response schemas are registered once under an `$id` and referenced as `Name#`, so
// the OpenAPI document names them as components. A response schema is also an allowlist: fastify
// serialises only the properties it lists, so a record field such as a device's tokenHash can never
// reach a client by accident.
import type { FastifyInstance } from 'fastify';

// ---------------------------------------------------------------- request pieces

/** gateway/device-id.ts: 1–64 of A-Z a-z 0-9 . _ : -, not only dots (so `..` never names a device). */
export const deviceId = { type: 'string', minLength: 1, maxLength: 64, pattern: '^(?!\\.+$)[A-Za-z0-9._:-]+$' } as const;
export const group = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._:-]+$' } as const;
/** A model or firmware version: printable ASCII. */
export const label = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[\\x20-\\x7e]+$' } as const;
/** docs/architecture.md §3: a bundle's id is the hex SHA-256 of its payload. */
export const bundleId = { type: 'string', minLength: 64, maxLength: 64, pattern: '^[0-9a-f]+$' } as const;
/** A bundle id, or a unique prefix of it of at least 8 hex digits (gateway/id-prefix.ts; a shorter one is a 400 naming the rule). */
export const bundleIdOrPrefix = { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9a-f]+$', description: 'a bundle id, or a unique prefix of at least 8 hex digits' } as const;
/** The gateway names rollouts `r-<group>-<seq>-<suffix>`; a unique prefix of at least 8 characters names one too (gateway/id-prefix.ts). */
export const rolloutId = { type: 'string', minLength: 1, maxLength: 160, pattern: '^(?!\\.+$)[A-Za-z0-9._:-]+$', description: 'a rollout id, or a unique prefix of at least 8 characters' } as const;
export const limit = { type: 'integer', minimum: 1, maximum: 1000, description: 'items per page; default 100' } as const;
export const cursor = { type: 'string', minLength: 1, maxLength: 200, description: 'the `next` of the previous page' } as const;

/** The body of a route that takes none: absent, null or {}; any field is refused by name. */
export const noBody = { type: ['object', 'null'], additionalProperties: false, properties: {} } as const;

/** The query of a route that takes none: any parameter is refused by name (server.ts gives it to every route that declares no querystring). */
export const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

/**
 * The query of what a browser or a prober loads (the pages `/ui` and `/docs`, the console's assets,
 * `/healthz` and `/readyz`): whatever it is, it is ignored. These are reached by bookmarks and links
 * that carry parameters of their own (`?utm_source=x`), cache-busters (`?v=3`) and load balancers'
 * probes (`?probe=1`); they read none, so none can be misspelt. The API's routes keep noQuery.
 */
export const ignoredQuery = { type: 'object', additionalProperties: true, properties: {} } as const;

export const idParams = (id: object) => ({ type: 'object', additionalProperties: false, required: ['id'], properties: { id } }) as const;

/** The thresholds of a wave (gateway/rollout/types.ts WaveThresholds); the engine checks them again. */
export const thresholdProperties = {
  ackThreshold: { type: 'number', minimum: 0, maximum: 1, description: 'share of reachable members that must ack applied; default 0.95' },
  failureThreshold: { type: 'number', minimum: 0, maximum: 1, description: 'share of responders rejecting or failing above which the wave is held at once; default 0.02' },
  minDevices: { type: 'integer', minimum: 0, description: 'responders needed before the failure ratio counts; default 5' },
  maxUnreachable: { type: 'number', minimum: 0, maximum: 1, description: 'share of members offline for the whole wave above which it is held; default 0.5' },
  timeoutSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 31536000, description: 'from the wave start to its deadline; default 3600' },
  soakSeconds: { type: 'number', minimum: 0, maximum: 31536000, description: 'after the ack threshold is met, how long failures may still hold the wave; default 0' },
  requireVerified: { type: 'boolean', description: 'only `verified` counts toward the ack ratio for devices whose firmware has a health check (docs/architecture.md §9); others count `applied`; default true' },
} as const;

/** A rollout's deadline as the operator gives it at creation (gateway/rollout/deadline.ts). */
export const deadlineProperties = {
  deadline: { type: 'string', minLength: 1, maxLength: 40, description: 'an ISO 8601 date with a time zone, or "certificate": the certificate\'s notAfter less marginDays' },
  certificate: { type: 'string', minLength: 1, maxLength: 65536, description: 'with deadline "certificate": the certificate, PEM' },
  marginDays: { type: 'number', minimum: 0, maximum: 3650, description: 'with deadline "certificate": days before its notAfter; default 7' },
  targetRatio: { type: 'number', exclusiveMinimum: 0, maximum: 1, description: 'share of the target that must hold the bundle by the deadline; default 0.95' },
} as const;

// ---------------------------------------------------------------- response shapes

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const num = { type: 'number' } as const;
const bool = { type: 'boolean' } as const;
const nullable = <T extends { type: string }>(s: T) => ({ ...s, type: [s.type, 'null'] });
/** epoch milliseconds */
const time = { type: 'number', description: 'epoch milliseconds' } as const;
const ntime = { type: ['number', 'null'], description: 'epoch milliseconds' } as const;
const strings = { type: 'array', items: str } as const;

export const ErrorSchema = {
  $id: 'Error',
  type: 'object',
  description: 'fastify-style error; `code` is a stable PW_/FST_ code, `details` carries offending ids, field errors or the pre-flight result',
  required: ['statusCode', 'error', 'message'],
  properties: { statusCode: int, error: str, message: str, code: str, details: {} },
} as const;

const thresholds = { type: 'object', properties: thresholdProperties } as const;

export const DeviceSchema = {
  $id: 'Device',
  type: 'object',
  required: ['id', 'group', 'model', 'firmware', 'seq', 'bundle', 'connected', 'lastSeen', 'state'],
  properties: {
    id: str,
    group: str,
    model: nullable(str),
    firmware: nullable(str),
    seq: { type: ['integer', 'null'], description: 'the bundle seq the device last reported; null before it ever reported' },
    bundle: { type: ['string', 'null'], description: 'the bundle id the device last reported' },
    keyEpoch: nullable(int),
    broker: { type: ['string', 'null'], description: 'the broker the device connects to, as it was provisioned (external broker mode, docs/architecture.md §8); null on the embedded broker' },
    connected: bool,
    state: { type: 'string', enum: ['connected', 'offline', 'never_connected', 'revoked'] },
    lastSeen: ntime,
    lastConnectAt: ntime,
    lastDisconnectAt: ntime,
    createdAt: time,
    revokedAt: ntime,
  },
} as const;

const historyEntry = {
  type: 'object',
  properties: { at: time, rolloutId: str, bundleId: str, seq: int, event: { type: 'string', enum: ['sent', 'applied', 'rejected', 'timed_out', 'failing', 'unreachable', 'verified', 'reverted'] }, reason: str },
} as const;

const telemetryReport = {
  type: 'object',
  description: 'a pin-failure report as the device sent it (RFC 7469 §3 names)',
  properties: {
    at: time,
    firmware: str,
    hostname: str,
    port: int,
    result: str,
    servedPins: strings,
    knownPins: strings,
    seq: int,
    bundleId: nullable(str),
    count: int,
    suppressed: int,
    firstSeen: { type: 'integer', description: 'device clock, epoch seconds' },
    lastSeen: { type: 'integer', description: 'device clock, epoch seconds' },
    counter: int,
    rolloutId: nullable(str),
    wave: nullable(int),
  },
} as const;

export const DeviceDetailSchema = {
  $id: 'DeviceDetail',
  type: 'object',
  required: [...DeviceSchema.required, 'history', 'telemetry', 'rollout'],
  properties: {
    ...DeviceSchema.properties,
    rollout: {
      type: ['object', 'null'],
      description: 'the latest rollout (not aborted) the device is in, and its status there',
      properties: { id: str, state: str, status: str, wave: int, reason: str, at: ntime },
    },
    history: { type: 'array', description: 'rollout history, newest last', items: historyEntry },
    telemetry: { type: 'array', description: 'recent pin-failure reports, newest last', items: telemetryReport },
  },
} as const;

export const BundleSchema = {
  $id: 'Bundle',
  type: 'object',
  required: ['id', 'group', 'seq', 'size', 'createdAt'],
  properties: { id: str, group: str, seq: int, size: { type: 'integer', description: 'bytes of the COSE_Sign1 message' }, createdAt: time, createdBy: nullable(str) },
} as const;

export const BundleDetailSchema = {
  $id: 'BundleDetail',
  type: 'object',
  required: [...BundleSchema.required, 'kid', 'version', 'iat', 'exp', 'endpoints'],
  properties: {
    ...BundleSchema.properties,
    kid: str,
    alg: str,
    version: int,
    iat: { type: 'integer', description: 'epoch seconds' },
    issuedAt: str,
    exp: { type: 'integer', description: 'epoch seconds' },
    expires: str,
    expiryPolicy: { type: 'string', enum: ['enforce', 'ca-fallback'] },
    endpoints: {
      type: 'array',
      items: {
        type: 'object',
        properties: { host: str, port: int, pins: strings, mode: { type: 'string', enum: ['enforce', 'report-only'] }, notBefore: int, notAfter: int },
      },
    },
    keyRotation: { type: 'object', properties: { epoch: int, keys: { type: 'array', description: 'raw Ed25519 public keys, base64', items: str } } },
    diff: {
      type: 'object',
      description: "GET /v1/bundles/:id only: the bundle's pins against what its group runs now (its baseline, the bundle of its last completed rollout; kind none when it has none)",
      required: ['against', 'endpoints'],
      properties: {
        against: {
          type: 'object',
          required: ['kind'],
          properties: { kind: { type: 'string', enum: ['baseline', 'none'] }, bundleId: str, seq: int },
        },
        endpoints: {
          type: 'array',
          description: "the bundle's endpoints in its order, then those it removes",
          items: {
            type: 'object',
            required: ['host', 'port', 'change', 'added', 'removed', 'kept'],
            properties: { host: str, port: int, change: { type: 'string', enum: ['added', 'removed', 'changed', 'unchanged'] }, added: strings, removed: strings, kept: strings },
          },
        },
      },
    },
  },
} as const;

const figureProperties = {
  members: int,
  pending: int,
  sent: int,
  applied: int,
  rejected: int,
  failing: int,
  timedOut: int,
  unreachable: { type: 'integer', description: 'members offline for the whole wave: left out of the ack ratio, judged by unreachableRatio against maxUnreachable' },
  verifying: { type: 'integer', description: 'health-checked devices holding the bundle provisionally, no verdict yet' },
  verified: { type: 'integer', description: 'health-checked devices that committed with every check passed' },
  unverified: { type: 'integer', description: 'health-checked devices that committed without a verified ack (endpoints that never answered)' },
  reverted: { type: 'integer', description: 'health-checked devices that went back to their previous pins by themselves; counted against the failure ratio' },
  acked: { type: 'integer', description: 'members counted toward the ack ratio' },
  responded: int,
  ackRatio: { type: 'number', description: 'acked / (members - unreachable): over the reachable members only (1 when none is); a wave held for max_unreachable can show 1' },
  failureRatio: num,
  failureCounted: bool,
  unreachableRatio: { type: 'number', description: 'unreachable / members, held against maxUnreachable' },
} as const;

const waveSummary = {
  type: 'object',
  properties: {
    index: { type: 'integer', description: 'the wave\'s place in `waves`, from 0 (as decisions\' `wave` and telemetry\'s `wave` count)' },
    number: { type: 'integer', description: 'the wave as people count it, from 1 (index + 1): what the CLI and logs show' },
    state: { type: 'string', enum: ['pending', 'active', 'soaking', 'passed', 'missed', 'aborted', 'cancelled'], description: 'aborted: in progress when the rollout was aborted; cancelled: never reached by an aborted rollout' },
    plannedSize: { type: ['integer', 'string'], description: 'the cumulative size the plan asked for' },
    size: { type: 'integer', description: 'members of this wave' },
    ...figureProperties,
    rejectedByReason: { type: 'object', additionalProperties: int },
    thresholds,
    startedAt: ntime,
    deadline: ntime,
    soakUntil: ntime,
    endedAt: ntime,
  },
} as const;

const decision = {
  type: 'object',
  properties: {
    at: time,
    actor: { type: 'string', description: "the operator token's name, or 'system'" },
    action: str,
    reason: str,
    from: str,
    to: str,
    wave: { type: 'integer', description: 'the wave decided on, as an index from 0 (wave number − 1)' },
    waveFrom: str,
    waveTo: str,
    figures: { type: 'object', properties: figureProperties },
    thresholds,
    scope: { type: 'string', enum: ['held', 'remaining'], description: 'on resume: whether the new thresholds were for the held wave only or for every wave from it on' },
    findings: { ...strings, description: 'on force: the pre-flight refusals the operator overrode' },
    endpoint: { type: 'string', description: 'on a hold for a revert: the endpoint (host:port) the device reverted on' },
    deadline: { ...time, description: 'on at_risk / on_track: the deadline, epoch milliseconds' },
    projected: { ...ntime, description: 'on at_risk / on_track: when the target share is projected, epoch milliseconds; null with no progress yet' },
    approval: {
      type: 'object',
      description: 'on request_approval: operators who must agree (the creator being one) and the pins the change removes',
      properties: { required: int, removed: { type: 'array', items: { $ref: 'RemovedPins#' } } },
    },
  },
} as const;

export const RemovedPinsSchema = {
  $id: 'RemovedPins',
  type: 'object',
  description: 'pins of one endpoint that the target holds now (its baseline, or its firmware manifests before any rollout) and the bundle drops',
  properties: { host: str, port: int, pins: strings, endpoint: { type: 'boolean', description: 'the whole endpoint goes' } },
} as const;

/** docs/architecture.md §10: present on a rollout that asked for approval (config approval). */
const approval = {
  type: 'object',
  description: 'present when the rollout asked for approval: how many operators must agree, who did, and what it removes',
  properties: {
    needed: { type: 'boolean', description: 'true while it cannot start for want of approvals' },
    required: { type: 'integer', description: 'operators who must agree, the creator being one' },
    remaining: { type: 'integer', description: 'approvals still wanted from operators other than the creator' },
    approvals: { type: 'array', items: { type: 'object', properties: { actor: str, at: time } }, description: 'by operators other than the creator, the first of each identity' },
    requestedBy: str,
    requestedAt: time,
    removed: { type: 'array', items: { $ref: 'RemovedPins#' } },
    reason: { type: 'string', description: 'what it removes, in words' },
    passedBy: { type: 'string', enum: ['rollback'], description: 'a rollback passes the gate without waiting' },
  },
} as const;

const deadlineSource = {
  type: 'object',
  required: ['kind'],
  properties: { kind: { type: 'string', enum: ['date', 'certificate'] }, notAfter: time, marginDays: num, subject: str },
} as const;

/** A rollout against its deadline (gateway/rollout/deadline.ts deadlineStatus). */
const deadlineStatus = {
  type: 'object',
  required: ['status', 'at', 'targetRatio', 'target', 'done', 'projected', 'plannedEnd'],
  properties: {
    status: { type: 'string', enum: ['on_track', 'at_risk'] },
    at: { ...time, description: 'the deadline, epoch milliseconds' },
    targetRatio: num,
    source: deadlineSource,
    target: { type: 'integer', description: 'devices that must count toward the ack ratio by the deadline' },
    done: { type: 'integer', description: 'devices counted now' },
    projected: { ...ntime, description: 'when the target is reached at the rate so far; null with no progress yet' },
    plannedEnd: { ...time, description: "the plan's worst case: every remaining wave's timeout and soak" },
  },
} as const;

/** At creation: whether the plan's worst case reaches the target share by the deadline (a warning, never a refusal). */
const deadlineFit = {
  type: 'object',
  required: ['fits', 'plannedEnd', 'warnings'],
  properties: { fits: bool, plannedEnd: time, warnings: strings },
} as const;

export const RolloutSchema = {
  $id: 'Rollout',
  type: 'object',
  required: ['id', 'state', 'bundle', 'target', 'waves', 'decisions'],
  properties: {
    id: str,
    state: { type: 'string', enum: ['pending', 'running', 'held', 'completed', 'aborted'] },
    bundle: { type: 'object', properties: { id: str, seq: int, group: str } },
    target: { type: 'object', properties: { group: str, devices: strings } },
    onMiss: { type: 'string', enum: ['hold', 'abort'] },
    devices: { type: 'integer', description: 'devices targeted' },
    wave: { type: 'integer', description: 'the wave in progress, or the last one reached, as an index from 0' },
    createdAt: time,
    startedAt: ntime,
    endedAt: ntime,
    nextDeadline: ntime,
    createdBy: str,
    previousBundle: nullable(str),
    rollbackOf: str,
    rolledBackBy: str,
    gatesBypassed: {
      type: 'array',
      description: 'a rollback only: the gates the rollout it undoes had to pass, passed here as recorded decisions with their findings, never a refusal',
      items: { type: 'object', properties: { gate: { type: 'string', enum: ['preflight'] }, at: time, actor: str, reason: str, findings: { type: 'array', items: { type: 'object', properties: { code: str, message: str, devices: strings, count: int, endpoint: str } } } } },
    },
    waves: { type: 'array', items: waveSummary },
    decisions: { type: 'array', items: decision },
    deadline: deadlineStatus,
    approval,
  },
} as const;

const finding = {
  type: 'object',
  properties: { code: str, message: str, devices: { ...strings, description: 'the devices concerned (the first 100)' }, count: int, endpoint: str },
} as const;

export const PreflightSchema = {
  $id: 'Preflight',
  type: 'object',
  required: ['ok', 'targeted', 'problems', 'warnings'],
  properties: {
    ok: bool,
    targeted: int,
    problems: { type: 'array', items: finding },
    warnings: { type: 'array', items: finding },
    endpoints: {
      type: 'array',
      description: 'pin continuity (docs/pin-safety.md#pre-flight-pin-continuity): how each endpoint of the new pin set was judged: by what it serves now (check served), or by overlap with what the target runs (check overlap)',
      items: { type: 'object', properties: { endpoint: str, check: { type: 'string', enum: ['served', 'overlap'] }, served: strings, held: str, ok: bool } },
    },
    forced: {
      type: 'object',
      description: 'present when pin continuity refused and the operator forced the start (recorded as a force decision)',
      properties: { by: str, at: time, reason: str },
    },
  },
} as const;

export const RolloutCreatedSchema = {
  $id: 'RolloutCreated',
  type: 'object',
  description: 'the rollout, with the pre-flight result that let it be created',
  required: [...RolloutSchema.required, 'preflight'],
  properties: { ...RolloutSchema.properties, preflight: { $ref: 'Preflight#' }, deadlineFit },
} as const;

export const StuckDeviceSchema = {
  $id: 'StuckDevice',
  type: 'object',
  properties: {
    id: str,
    group: str,
    model: nullable(str),
    seq: nullable(int),
    bundle: nullable(str),
    targetSeq: int,
    reason: { type: 'string', description: 'never_connected, offline, no_ack, failing, verifying, rejected:<reason> or reverted:<host:port>' },
    since: ntime,
    connected: bool,
  },
} as const;

export const PinFailureSchema = {
  $id: 'PinFailure',
  type: 'object',
  description: 'pin-failure reports aggregated by endpoint and observed pin',
  properties: {
    host: str,
    port: int,
    result: str,
    observedPin: nullable(str),
    bundleId: nullable(str),
    rollouts: strings,
    waves: { type: 'array', items: { type: 'object', properties: { rolloutId: str, wave: int } } },
    groups: strings,
    devices: int,
    devicesCapped: bool,
    failures: int,
    suppressed: int,
    firstSeen: str,
    lastSeen: str,
    firstReceived: str,
    lastReceived: str,
  },
} as const;

/** `{ items, next }`: a page of `item`; `next` is the cursor of the following page, null on the last. */
export const listOf = (ref: string) =>
  ({
    type: 'object',
    required: ['items', 'next'],
    properties: { items: { type: 'array', items: { $ref: `${ref}#` } }, next: { type: ['string', 'null'] } },
  }) as const;

/** Response schemas for a route: its success shape and the error shape for everything else. */
export const responses = (ok: Record<number, unknown>) => ({ ...ok, '4xx': { $ref: 'Error#' }, '5xx': { $ref: 'Error#' } });

export function addSharedSchemas(app: FastifyInstance): void {
  for (const s of [ErrorSchema, DeviceSchema, DeviceDetailSchema, BundleSchema, BundleDetailSchema, PreflightSchema, RemovedPinsSchema, RolloutSchema, RolloutCreatedSchema, StuckDeviceSchema, PinFailureSchema]) app.addSchema(s);
}
