// Scenario files for `pinwave sim --scenario FILE.json`: the models of a fleet, their
// shares, firmware manifests and behaviours, and the endpoints devices call home to. JSON, checked
// against SCENARIO_SCHEMA (ajv), then for what a schema cannot say; every error names its JSON path.
// A model (or the whole scenario) can declare its devices' health check (docs/pin-safety.md), turn a
// manifest's off with `false`, and give a share of its devices older firmware without one.
//
//   const r = await loadScenario('device-sim/scenarios/mixed-fleet.json');
//   if (!r.ok) console.error(formatScenarioErrors(r.errors)); // "/models/1/behaviours/silentRate: must be <= 1"
//   allocate(1000, r.scenario.models.map((m) => m.weight)); // [750, 250]
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { validateHealthCheck, validateManifest, type FirmwareManifest, type ManifestHealthCheck } from '../firmware-manifest/index.ts';
import { checkBehaviours, type Behaviours } from './behaviours.ts';
import { overTimerLimit } from './timer-limit.ts';
import type { CallHomeEndpoint } from './handshakes.ts';

const distribution = {
  anyOf: [
    { type: 'number' },
    { type: 'object', additionalProperties: false, required: ['min', 'max'], properties: { min: { type: 'number' }, max: { type: 'number' } } },
    { type: 'object', additionalProperties: false, required: ['mean'], properties: { mean: { type: 'number' }, max: { type: 'number' } } },
  ],
} as const;
const rate = { type: 'number', minimum: 0, maximum: 1 } as const;

const behaviours = {
  type: 'object',
  additionalProperties: false,
  properties: {
    silentRate: rate,
    rejectRate: rate,
    crashRate: rate,
    rebootMs: distribution,
    ackDelayMs: distribution,
    offlineRate: rate,
    offlineAtSeconds: distribution,
    offlineForSeconds: distribution,
    clockSkewRate: rate,
    clockSkewSeconds: distribution,
    oldFormatRate: rate,
    reconnectStorm: {
      type: 'object',
      additionalProperties: false,
      required: ['atSeconds', 'rate'],
      properties: { atSeconds: { type: 'number', minimum: 0 }, rate, spreadMs: { type: 'number', minimum: 0 } },
    },
  },
} as const;

const name = { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$' } as const;
// A health check object (checked by validateHealthCheck, with the manifest's own rules) or false.
const healthCheck = { type: ['object', 'boolean'] } as const;
const withoutHealthCheck = {
  type: 'object',
  additionalProperties: false,
  required: ['share'],
  properties: { share: rate, firmware: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

/** The most devices one run simulates: a scenario's `devices`, and `pinwave sim --devices`. */
export const MAX_SIM_DEVICES = 1_000_000;

export const SCENARIO_SCHEMA = {
  $id: 'https://pinwave.dev/schemas/sim-scenario.json',
  title: 'pinwave sim scenario',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    description: { type: 'string' },
    seed: { type: ['string', 'integer'] },
    group: name,
    devices: { type: 'integer', minimum: 1, maximum: MAX_SIM_DEVICES },
    behaviours,
    healthCheck,
    models: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['model'],
        properties: {
          model: name,
          firmware: { type: 'string', minLength: 1, maxLength: 64 },
          weight: { type: 'number', exclusiveMinimum: 0 },
          manifest: { type: ['string', 'object'] },
          behaviours,
          healthCheck,
          withoutHealthCheck,
        },
      },
    },
    endpoints: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['host'],
        properties: {
          host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[a-z0-9.:-]+$' },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          connect: { type: 'string', pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' },
          servername: { type: 'string', minLength: 1, maxLength: 253 },
        },
      },
    },
    callHomeSeconds: { type: 'number', minimum: 0 },
    reportIntervalSeconds: { type: 'number', minimum: 0 },
    ramp: {
      type: 'object',
      additionalProperties: false,
      properties: { perTick: { type: 'integer', minimum: 1 }, tickMs: { type: 'number', minimum: 0 } },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validateSchema = ajv.compile(SCENARIO_SCHEMA);

export interface ScenarioError {
  /** JSON pointer to the offending value, e.g. "/models/0/behaviours/silentRate" ("" for the whole document) */
  path: string;
  message: string;
}

/** A model as a scenario gives it, manifest read and checked, behaviours merged over the scenario's own. */
export interface ScenarioModel {
  model: string;
  /** for a default manifest; a given manifest's own firmware wins */
  firmware?: string;
  /** share of the devices, relative to the other models'; default 1 */
  weight: number;
  manifest?: FirmwareManifest;
  behaviours: Behaviours;
  /** its devices' health check, over the manifest's (the model's, else the scenario's); false: none, whatever the manifest says */
  healthCheck?: ManifestHealthCheck | false;
  /** a share of its devices run older firmware without a health check, reporting `firmware` */
  withoutHealthCheck?: { share: number; firmware?: string };
}

export interface Scenario {
  description?: string;
  seed?: string | number;
  group?: string;
  devices?: number;
  /** empty when the file names none (the command line's model is used) */
  models: ScenarioModel[];
  /** the scenario-wide behaviours, already merged into each model's */
  behaviours: Behaviours;
  /** the scenario-wide health check, already given to each model that names none */
  healthCheck?: ManifestHealthCheck | false;
  endpoints: CallHomeEndpoint[];
  callHomeSeconds?: number;
  reportIntervalSeconds?: number;
  ramp?: { perTick?: number; tickMs?: number };
}

export type ScenarioResult = { ok: true; scenario: Scenario } | { ok: false; errors: ScenarioError[] };

interface RawModel {
  model: string;
  firmware?: string;
  weight?: number;
  manifest?: string | Record<string, unknown>;
  behaviours?: Behaviours;
  healthCheck?: ManifestHealthCheck | boolean;
  withoutHealthCheck?: { share: number; firmware?: string };
}
interface RawScenario extends Omit<Scenario, 'models' | 'endpoints' | 'behaviours' | 'healthCheck'> {
  healthCheck?: ManifestHealthCheck | boolean;
  behaviours?: Behaviours;
  models?: RawModel[];
  endpoints?: Array<{ host: string; port?: number; connect?: string; servername?: string }>;
}

/**
 * Checks a parsed scenario: the schema, then behaviour ranges, model names, manifests (a path is read
 * relative to `baseDir`) and endpoints. Errors carry JSON paths; a manifest's own errors are nested
 * under its model's path.
 */
export async function validateScenario(value: unknown, baseDir = '.'): Promise<ScenarioResult> {
  if (!validateSchema(value)) return { ok: false, errors: schemaErrors(validateSchema.errors ?? []) };
  const raw = value as RawScenario;
  const errors: ScenarioError[] = [];
  // Waits on a timer: the call-home period and the ramp's tick (timer-limit.ts); and the report
  // interval, how long a repeated report waits, under the same bound as every scenario wait.
  const waits = [['/callHomeSeconds', raw.callHomeSeconds, 's'], ['/reportIntervalSeconds', raw.reportIntervalSeconds, 's'], ['/ramp/tickMs', raw.ramp?.tickMs, 'ms']] as const;
  for (const [path, v, unit] of waits) {
    const over = v === undefined ? null : overTimerLimit(v, unit);
    if (over) errors.push({ path, message: over });
  }
  const top = raw.behaviours ?? {};
  errors.push(...checkBehaviours(top, '/behaviours'));
  errors.push(...healthCheckErrors(raw.healthCheck, '/healthCheck'));
  const topCheck = raw.healthCheck as ManifestHealthCheck | false | undefined;
  const seen = new Set<string>();
  const models: ScenarioModel[] = [];
  for (const [i, m] of (raw.models ?? []).entries()) {
    const at = `/models/${i}`;
    if (seen.has(m.model)) errors.push({ path: `${at}/model`, message: `model "${m.model}" is listed twice` });
    seen.add(m.model);
    errors.push(...checkBehaviours(m.behaviours ?? {}, `${at}/behaviours`));
    errors.push(...healthCheckErrors(m.healthCheck, `${at}/healthCheck`));
    const check = (m.healthCheck as ManifestHealthCheck | false | undefined) ?? topCheck;
    let manifest: FirmwareManifest | undefined;
    if (m.manifest !== undefined) {
      const loaded = await readManifest(m.manifest, baseDir, `${at}/manifest`);
      if (!loaded.ok) errors.push(...loaded.errors);
      else if (loaded.manifest.model !== m.model) errors.push({ path: `${at}/model`, message: `is "${m.model}" but its manifest is for model "${loaded.manifest.model}"` });
      else manifest = loaded.manifest;
    }
    models.push({
      model: m.model,
      ...(m.firmware !== undefined && { firmware: m.firmware }),
      weight: m.weight ?? 1,
      ...(manifest && { manifest }),
      behaviours: { ...top, ...m.behaviours },
      ...(check !== undefined && { healthCheck: check }),
      ...(m.withoutHealthCheck && { withoutHealthCheck: m.withoutHealthCheck }),
    });
  }
  const endpoints: CallHomeEndpoint[] = (raw.endpoints ?? []).map((e, i) => {
    const ep: CallHomeEndpoint = { host: e.host, port: e.port ?? 443 };
    if (e.connect !== undefined) {
      const c = hostPort(e.connect);
      if (!c) errors.push({ path: `/endpoints/${i}/connect`, message: `must be HOST:PORT with a port from 1 to 65535, got "${e.connect}"` });
      else ep.connect = c;
    }
    if (e.servername !== undefined) ep.servername = e.servername;
    return ep;
  });
  if (errors.length > 0) return { ok: false, errors };
  const { models: _m, endpoints: _e, behaviours: _b, healthCheck: _h, $schema: _s, ...rest } = raw as RawScenario & { $schema?: string };
  return { ok: true, scenario: { ...rest, models, behaviours: top, endpoints, ...(topCheck !== undefined && { healthCheck: topCheck }) } };
}

/** A health check setting: absent, false, or a health check as a manifest declares one. */
function healthCheckErrors(v: unknown, at: string): ScenarioError[] {
  if (v === undefined || v === false) return [];
  if (v === true) return [{ path: at, message: 'must be a health check ({ "commitTimeoutSeconds", "retrySeconds", "onUnverifiable", "endpoints"? }) or false' }];
  return validateHealthCheck(v, at);
}

/**
 * The manifest a model's devices run: its health check replaced by the model's setting (false takes
 * it away), or `fallback` when the model says nothing and the manifest declares none.
 */
export function withHealthCheck(manifest: FirmwareManifest, setting: ManifestHealthCheck | false | undefined, fallback?: ManifestHealthCheck): FirmwareManifest {
  const { healthCheck: own, ...rest } = manifest;
  const chosen = setting === false ? undefined : (setting ?? own ?? fallback);
  return chosen ? { ...rest, healthCheck: chosen } : rest;
}

/** Reads and checks a scenario file. */
export async function loadScenario(file: string): Promise<ScenarioResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ path: '', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }] };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, errors: [{ path: '', message: `not JSON: ${(err as Error).message}` }] };
  }
  return validateScenario(value, dirname(resolve(file)));
}

/** One line per error: "/models/0/behaviours/silentRate: must be <= 1". */
export function formatScenarioErrors(errors: ScenarioError[]): string {
  return errors.map((e) => `${e.path || '/'}: ${e.message}`).join('\n');
}

/** Splits `n` devices by weight, largest remainder first: the counts add up to n exactly, and ties go to the earlier model. */
export function allocate(n: number, weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (n * w) / total);
  const counts = exact.map(Math.floor);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0, left = n - counts.reduce((a, b) => a + b, 0); k < left; k++) counts[order[k][1]]++;
  return counts;
}

async function readManifest(ref: string | Record<string, unknown>, baseDir: string, at: string): Promise<{ ok: true; manifest: FirmwareManifest } | { ok: false; errors: ScenarioError[] }> {
  let value: unknown = ref;
  if (typeof ref === 'string') {
    const file = resolve(baseDir, ref);
    try {
      value = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { ok: false, errors: [{ path: at, message: e.code ? `cannot read ${file}: ${e.code}` : `${file} is not JSON: ${e.message}` }] };
    }
  }
  const r = validateManifest(value);
  // Inline, the path goes on into the manifest; in a file of its own, the message names the file and its path.
  if (!r.ok) return { ok: false, errors: r.errors.map((e) => (typeof ref === 'string' ? { path: at, message: `${ref} ${e.path || '/'}: ${e.message}` } : { path: `${at}${e.path}`, message: e.message })) };
  return { ok: true, manifest: r.manifest };
}

function hostPort(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

/** ajv's errors with their paths; a value that fits no form of a distribution gets one message naming the forms. */
function schemaErrors(errors: ErrorObject[]): ScenarioError[] {
  const anyOf = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath);
  const out: ScenarioError[] = [];
  for (const e of errors) {
    const p = e.params as Record<string, unknown>;
    if (e.keyword !== 'anyOf' && anyOf.some((a) => e.instancePath === a || e.instancePath.startsWith(`${a}/`))) continue;
    switch (e.keyword) {
      case 'anyOf':
        out.push({ path: e.instancePath, message: 'must be a number, { "min", "max" } or { "mean", "max"? }' });
        break;
      case 'additionalProperties':
        out.push({ path: e.instancePath, message: `unknown field "${String(p.additionalProperty)}"` });
        break;
      case 'required':
        out.push({ path: e.instancePath, message: `missing required field "${String(p.missingProperty)}"` });
        break;
      default:
        out.push({ path: e.instancePath, message: e.message ?? e.keyword });
    }
  }
  return out;
}
