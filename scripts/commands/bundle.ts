// `pinwave bundle create|inspect|verify`: make, read and check signed pin bundles (docs/architecture.md §3).
import { readFileSync, writeFileSync } from 'node:fs';
import { hex, inspectBundle, signBundle } from '../../firmware-manifest/codec.ts';
import { bundleView } from '../../firmware-manifest/view.ts';
import { publicKeyFromPem } from '../../firmware-manifest/keys.ts';
import { parsePin } from '../../firmware-manifest/pins.ts';
import { apply, emptyState } from '../../firmware-manifest/trust-state.ts';
import { loadSigningKey } from '../../gateway/signing-key.ts';
import { durationFlag, parse, required, uintFlag, UsageError, type Io } from '../args.ts';
import { pinSpecs } from '../pin-specs.ts';
import { apiFrom } from '../api-client.ts';

const USAGE = `Usage:
  pinwave bundle create --key KEY.pem --group G --seq N --pin HOST[:PORT]=sha256/B64 ... --out FILE
                        [--expires-in 30d] [--report-only HOST[:PORT]] [--expiry-policy enforce|ca-fallback]
                        [--rotate-keys PUB.pem ... --key-epoch N]
  pinwave bundle inspect FILE
  pinwave bundle verify FILE --pub PUB.pem --group G [--current-seq N] [--now ISO|EPOCH] [--max-bytes N]
  pinwave bundle push --group G --pin HOST[:PORT]=sha256/B64 ... [--expires-in 30d] [--report-only HOST[:PORT]]
                      [--expiry-policy enforce|ca-fallback] [--api URL] [--json]

create    sign a bundle with the complete pin set (port defaults to 443; each host needs two distinct
          pins, one a backup); prints a JSON summary: id, size, seq, group
inspect   print the decoded bundle as JSON (no signature check), pins in sha256/ form
verify    check a bundle as a device would: exit 0 and "valid", or exit 1 and "rejected: <reason>"
push      have the gateway sign and store a bundle with its key and the group's next seq
          (--api URL, default $PINWAVE_API or http://127.0.0.1:8080; token from $PINWAVE_TOKEN)`;

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': return create(rest, io);
    case 'inspect': return inspect(rest, io);
    case 'verify': return verify(rest, io);
    case 'push': return push(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

async function create(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, {
    key: { type: 'string' },
    group: { type: 'string' },
    seq: { type: 'string' },
    pin: { type: 'string', multiple: true },
    'expires-in': { type: 'string' },
    'report-only': { type: 'string', multiple: true },
    'expiry-policy': { type: 'string' },
    'rotate-keys': { type: 'string', multiple: true },
    'key-epoch': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const keyPath = required(values.key, 'key', USAGE);
  const group = required(values.group, 'group', USAGE);
  const seq = uintFlag(required(values.seq, 'seq', USAGE), 'seq', USAGE);
  const out = required(values.out, 'out', USAGE);
  const endpoints = pinSpecs(values.pin ?? [], values['report-only'] ?? [], USAGE);
  const lifetime = durationFlag(values['expires-in'] ?? '30d', 'expires-in', USAGE);
  if (lifetime === 0) throw new UsageError('--expires-in must be more than 0', USAGE);
  const policy = values['expiry-policy'] ?? 'enforce';
  if (policy !== 'enforce' && policy !== 'ca-fallback') throw new UsageError(`--expiry-policy must be enforce or ca-fallback, got "${policy}"`, USAGE);
  const rotate = (values['rotate-keys'] ?? []).flatMap((v) => v.split(',')).filter(Boolean);
  if (rotate.length > 0 && values['key-epoch'] === undefined) throw new UsageError('--rotate-keys needs --key-epoch N (above the devices\' current epoch)', USAGE);
  if (rotate.length === 0 && values['key-epoch'] !== undefined) throw new UsageError('--key-epoch goes with --rotate-keys', USAGE);

  const key = loadSigningKey(keyPath, { strictMode: false, onLooseMode: (m) => io.err(`warning: ${m}`) });
  const keyRotation = rotate.length > 0
    ? { epoch: uintFlag(values['key-epoch']!, 'key-epoch', USAGE), keys: rotate.map((p) => readPublicKey(p, 'rotate-keys')) }
    : undefined;
  const iat = Math.floor(Date.now() / 1000);
  const signed = signBundle(
    {
      seq,
      iat,
      exp: iat + lifetime,
      group,
      endpoints: endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins.map(parsePin), ...(e.mode === 'report-only' && { mode: e.mode }) })),
      ...(keyRotation && { keyRotation }),
      ...(policy === 'ca-fallback' && { expiryPolicy: policy }),
    },
    key.seed,
  );
  writeFileSync(out, signed.bytes);
  io.out(JSON.stringify({ id: signed.id, size: signed.bytes.length, seq, group, kid: hex(signed.kid), expires: new Date((iat + lifetime) * 1000).toISOString(), file: out }, null, 2));
  return 0;
}

async function push(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, {
    group: { type: 'string' },
    pin: { type: 'string', multiple: true },
    'report-only': { type: 'string', multiple: true },
    'expires-in': { type: 'string' },
    'expiry-policy': { type: 'string' },
    api: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const group = required(values.group, 'group', USAGE);
  const endpoints = pinSpecs(values.pin ?? [], values['report-only'] ?? [], USAGE);
  const policy = values['expiry-policy'];
  if (policy !== undefined && policy !== 'enforce' && policy !== 'ca-fallback') throw new UsageError(`--expiry-policy must be enforce or ca-fallback, got "${policy}"`, USAGE);
  const body = {
    group,
    pins: endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins, ...(e.mode === 'report-only' && { mode: e.mode }) })),
    ...(values['expires-in'] !== undefined && { expiresIn: durationFlag(values['expires-in'], 'expires-in', USAGE) }),
    ...(policy && { expiryPolicy: policy }),
  };
  const res = await apiFrom(values.api, io).post<{ id: string; seq: number; size: number; group: string }>('/v1/bundles', body);
  io.out(values.json ? JSON.stringify(res, null, 2) : `bundle ${res.id}\n  group ${res.group}, seq ${res.seq}, ${res.size} bytes, signed by the gateway`);
  return 0;
}

async function inspect(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one FILE', USAGE);
  const bytes = readBytes(positionals[0]);
  const r = inspectBundle(bytes);
  if (!r.ok) {
    io.out(`rejected: ${r.reason}`);
    io.err(r.detail);
    return 1;
  }
  io.out(JSON.stringify({ id: r.id, size: bytes.length, kid: hex(r.envelope.kid), alg: 'EdDSA', ...bundleView(r.bundle) }, null, 2));
  return 0;
}

async function verify(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    pub: { type: 'string' },
    group: { type: 'string' },
    'current-seq': { type: 'string' },
    now: { type: 'string' },
    'max-bytes': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('verify takes exactly one FILE', USAGE);
  const pub = readPublicKey(required(values.pub, 'pub', USAGE), 'pub');
  const group = required(values.group, 'group', USAGE);
  const state = emptyState(group, [pub]);
  if (values['current-seq'] !== undefined) state.seq = uintFlag(values['current-seq'], 'current-seq', USAGE);
  if (values['max-bytes'] !== undefined) state.maxBundleBytes = uintFlag(values['max-bytes'], 'max-bytes', USAGE);
  const now = values.now === undefined ? Math.floor(Date.now() / 1000) : nowFlag(values.now);
  const r = apply(state, readBytes(positionals[0]), now);
  if (r.ok) {
    io.out('valid');
    io.err(`id ${r.id}, seq ${r.bundle.seq}, group ${r.bundle.group}, expires ${new Date(r.bundle.exp * 1000).toISOString()}`);
    return 0;
  }
  io.out(`rejected: ${r.reason}`);
  io.err(r.detail);
  return 1;
}

function nowFlag(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new UsageError(`--now expects an ISO 8601 time or seconds since the epoch, got "${text}"`, USAGE);
  return Math.floor(ms / 1000);
}

function readBytes(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function readPublicKey(path: string, flag: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, USAGE);
  }
  try {
    return publicKeyFromPem(text);
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: ${(err as Error).message}`, USAGE);
  }
}
