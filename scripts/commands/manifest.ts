// `pinwave manifest create|validate|push|list`: the firmware manifest a device model ships with
// (docs/architecture.md §4), and the manifests the gateway knows.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { endpointText } from '../../firmware-manifest/endpoint-text.ts';
import { publicKeyFromPem } from '../../firmware-manifest/keys.ts';
import { decodeManifest, encodeManifest, formatManifestErrors, keysOnce, manifestWarnings, validateManifest, type FirmwareManifest, type ManifestError } from '../../firmware-manifest/manifest.ts';
import { durationFlag, parse, required, uintFlag, UsageError, type Io } from '../args.ts';
import { pinSpecs } from '../pin-specs.ts';
import { checkOutFile, writeOutFile } from '../out-file.ts';
import { apiFrom, ApiError } from '../api-client.ts';
import { table, when } from '../table.ts';
import { MANIFEST_BODY_LIMIT } from '../../gateway/http/manifests.ts';

const USAGE = `Usage:
  pinwave manifest create --model M --firmware V --key PUB.pem [--key PUB2.pem] --pin HOST[:PORT]=sha256/B64 ...
                          [--report-only HOST[:PORT]] [--max-bundle-bytes N] [--clock-skew 5m]
                          [--expiry-policy enforce|ca-fallback] [--accepted-versions 1,2]
                          [--gateway-url mqtts://HOST:PORT] [--gateway-ca CA.pem] [--out FILE.json] [--cbor FILE.cbor] [--force]
  pinwave manifest validate FILE        (JSON, or the CBOR form for flash)
  pinwave manifest push FILE [--api URL] [--json]
  pinwave manifest list [--api URL] [--json]

create    write a manifest (JSON to --out, or to standard output; --cbor also writes the flash form);
          each file appears whole or not at all, and an existing one is replaced only with --force
validate  check a manifest: exit 0 and "valid", or exit 1 and one line per error with its JSON path
          (a trusted key listed twice, as PEM and as base64 say, is one: compared by kid)
push      give the gateway a manifest (an admin token): pre-flight checks bundles against it, and the
          rollback of a group's first rollout restores its initial pins. Refused (exit 1) when invalid
          (one line per error) or when the gateway's config has a different one of the same model and
          firmware (the config's wins); pushing the one it knows changes nothing
list      the manifests the gateway knows, the config's first
push and list talk to a gateway: --api URL (default $PINWAVE_API or http://127.0.0.1:8080), token from $PINWAVE_TOKEN`;

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': return create(rest, io);
    case 'validate': return validate(rest, io);
    case 'push': return push(rest, io);
    case 'list': return list(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

async function create(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, {
    model: { type: 'string' },
    firmware: { type: 'string' },
    key: { type: 'string', multiple: true },
    pin: { type: 'string', multiple: true },
    'report-only': { type: 'string', multiple: true },
    'max-bundle-bytes': { type: 'string' },
    'clock-skew': { type: 'string' },
    'expiry-policy': { type: 'string' },
    'accepted-versions': { type: 'string' },
    'gateway-url': { type: 'string' },
    'gateway-ca': { type: 'string' },
    out: { type: 'string' },
    cbor: { type: 'string' },
    force: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const keys = values.key ?? [];
  if (keys.length === 0) throw new UsageError('missing required flag --key (a trusted signing public key)', USAGE);
  const manifest: FirmwareManifest = {
    model: required(values.model, 'model', USAGE),
    firmware: required(values.firmware, 'firmware', USAGE),
    trustedKeys: keys.map((path) => {
      const text = readText(path, 'key');
      try {
        // A private key given here by mistake contributes only its public half, never itself.
        return Buffer.from(publicKeyFromPem(text)).toString('base64');
      } catch (err) {
        throw new UsageError(`--key ${path}: ${(err as Error).message}`, USAGE);
      }
    }),
    pins: pinSpecs(values.pin ?? [], values['report-only'] ?? [], USAGE).map((e) => ({ host: e.host, port: e.port, pins: e.pins, ...(e.mode === 'report-only' && { mode: e.mode }) })),
  };
  if (values['max-bundle-bytes'] !== undefined) manifest.maxBundleBytes = uintFlag(values['max-bundle-bytes'], 'max-bundle-bytes', USAGE);
  if (values['clock-skew'] !== undefined) manifest.clockSkewSeconds = durationFlag(values['clock-skew'], 'clock-skew', USAGE);
  if (values['expiry-policy'] !== undefined) manifest.expiryPolicy = values['expiry-policy'] as FirmwareManifest['expiryPolicy'];
  if (values['accepted-versions'] !== undefined) manifest.acceptedVersions = values['accepted-versions'].split(',').map((v) => uintFlag(v.trim(), 'accepted-versions', USAGE));
  if (values['gateway-url'] !== undefined) manifest.gatewayUrl = values['gateway-url'];
  if (values['gateway-ca'] !== undefined) manifest.gatewayCa = readText(values['gateway-ca'], 'gateway-ca');
  const checked = keysOnce(validateManifest(manifest));
  if (!checked.ok) throw new UsageError(`the manifest would be invalid:\n${formatManifestErrors(checked.errors)}`, USAGE);
  const json = JSON.stringify(manifest, null, 2) + '\n';
  // Both refused before either is written: half of what was asked for is not left behind.
  if (values.out && values.cbor && resolve(values.out) === resolve(values.cbor)) throw new UsageError(`--out and --cbor name the same file, ${values.out}: the JSON and the flash form are two files`, USAGE);
  if (values.out) await checkOutFile(values.out, { flag: 'out', force: values.force });
  if (values.cbor) await checkOutFile(values.cbor, { flag: 'cbor', force: values.force });
  if (values.out) await writeOutFile(values.out, json, { flag: 'out', force: values.force });
  else io.out(json.trimEnd());
  if (values.cbor) await writeOutFile(values.cbor, encodeManifest(manifest), { flag: 'cbor', force: values.force });
  if (values.out || values.cbor) io.err(`wrote ${[values.out, values.cbor].filter(Boolean).join(' and ')}`);
  return 0;
}

async function validate(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('validate takes exactly one FILE', USAGE);
  const file = positionals[0];
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const text = bytes.toString('utf8').trimStart();
  if (text === '') {
    io.out(`invalid: ${file} is empty`);
    return 1;
  }
  let result;
  // The CBOR form is a map (major type 5) or a tagged map: its first byte is never ASCII, so a
  // file that starts with ASCII text is JSON, whatever value it holds.
  if (text.charCodeAt(0) < 0x80) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      io.out(`invalid: ${file} is not JSON: ${(err as Error).message}`);
      return 1;
    }
    result = notAnObject(json) ?? validateManifest(json);
  } else {
    result = decodeManifest(new Uint8Array(bytes));
  }
  result = keysOnce(result);
  if (!result.ok) {
    io.out(`invalid: ${file}`);
    io.out(formatManifestErrors(result.errors));
    return 1;
  }
  const m = result.manifest;
  io.out(`valid: ${m.model} ${m.firmware}, ${m.trustedKeys.length} trusted key${m.trustedKeys.length === 1 ? '' : 's'}, ${m.pins.length} pinned endpoint${m.pins.length === 1 ? '' : 's'}`);
  warn(manifestWarnings(m), io);
  return 0;
}

async function push(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('push takes exactly one FILE (a JSON manifest)', USAGE);
  const file = positionals[0];
  // With --json a refusal is JSON too: { ok: false, file, errors: [{ path, message }] }. So is any
  // other failure (the file unreadable or no JSON, the gateway unreachable or refusing the push):
  // one error at the root, its message what the plain output says. A usage error stays one (exit 2).
  const invalid = (errors: Array<{ path: string; message: string }>) => {
    if (values.json) io.out(JSON.stringify({ ok: false, file, errors }, null, 2));
    else {
      io.out(`invalid: ${file}`);
      io.out(formatManifestErrors(errors));
    }
    return 1;
  };
  const failed = (err: unknown) => {
    if (!values.json || err instanceof UsageError) throw err;
    return invalid([{ path: '', message: (err as Error).message }]);
  };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return failed(new Error(e.code ? `cannot read ${file}: ${e.code}` : `${file} is not JSON: ${e.message}`));
  }
  // Checked here first, as the gateway checks it: every problem at once, without a round trip.
  const checked = notAnObject(json) ?? keysOnce(validateManifest(json));
  if (!checked.ok) return invalid(checked.errors);
  // The gateway drops the connection on a body past its limit before it could answer 413: said here instead.
  const bytes = Buffer.byteLength(JSON.stringify(json));
  if (bytes > MANIFEST_BODY_LIMIT) return failed(new Error(`${file}: ${bytes} bytes as JSON; the gateway takes a manifest of at most ${MANIFEST_BODY_LIMIT} bytes (POST /v1/manifests)`));
  let res: ManifestEntry & { status: string; warnings?: ManifestError[] };
  try {
    res = await apiFrom(values.api, io).post('/v1/manifests', json);
  } catch (err) {
    const errors = (err instanceof ApiError ? (err.body as { details?: { errors?: Array<{ path: string; message: string }> } } | undefined)?.details?.errors : undefined) ?? null;
    if (errors) return invalid(errors);
    return failed(err);
  }
  if (values.json) return io.out(JSON.stringify(res, null, 2)), 0;
  warn(res.warnings ?? [], io);
  const said = { created: 'pushed', replaced: 'pushed (it replaces the one pushed before)', unchanged: 'unchanged (the gateway has this manifest already)' }[res.status] ?? res.status;
  io.out(`${said}: ${res.model} ${res.firmware}${res.source === 'config' ? " (from the gateway's config)" : ''}`);
  return 0;
}

/** What is valid but will not work as meant (manifestWarnings): on standard error, the exit status unchanged. */
function warn(warnings: readonly ManifestError[], io: Io): void {
  for (const w of warnings) io.err(`warning: ${w.path || '/'}: ${w.message}`);
}

interface ManifestEntry {
  model: string;
  firmware: string;
  source: 'config' | 'pushed';
  pushedBy?: string;
  pushedAt?: number;
  manifest: FirmwareManifest;
}

async function list(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length > 0) throw new UsageError('list takes no arguments', USAGE);
  const { items } = await apiFrom(values.api, io).get<{ items: ManifestEntry[] }>('/v1/manifests');
  if (values.json) return io.out(JSON.stringify(items, null, 2)), 0;
  if (items.length === 0) return io.out('no manifests: push one with pinwave manifest push FILE'), 0;
  const rows = items.map((e) => [e.model, e.firmware, e.source, e.manifest.trustedKeys.length, e.manifest.pins.map((p) => endpointText(p.host, p.port ?? 443)).join(' '), e.pushedAt !== undefined ? `${when(e.pushedAt)} by ${e.pushedBy}` : '-']);
  for (const l of table(['model', 'firmware', 'source', 'keys', 'pinned', 'pushed'], rows)) io.out(l);
  return 0;
}

/** A JSON value that is no object (an array, a number, null): one error saying what a manifest is, and what came. */
function notAnObject(json: unknown): { ok: false; errors: Array<{ path: string; message: string }> } | undefined {
  if (typeof json === 'object' && json !== null && !Array.isArray(json)) return undefined;
  const got = json === null ? 'null' : Array.isArray(json) ? 'an array' : `a ${typeof json}`;
  return { ok: false, errors: [{ path: '', message: `a manifest is a JSON object ({ "model", "firmware", "trustedKeys", "pins", ... }), got ${got}` }] };
}

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, USAGE);
  }
}
