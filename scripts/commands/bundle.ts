// `pinwave bundle create|inspect|verify|push|upload|list|show`: make, read and check signed pin
// bundles (docs/architecture.md §3), offline or through the gateway.
import { existsSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { COSE_SIGN1_TAG, decodeEnvelope, hex, inspectBundle, signBundle } from '../../firmware-manifest/codec.ts';
import { decodeCanonical, Tag, type DecodeResult } from '../../firmware-manifest/cbor.ts';
import { bundleView, isoSeconds } from '../../firmware-manifest/view.ts';
import { KeyFormatError, publicKeyFromPem, publicKeyFromText } from '../../firmware-manifest/keys.ts';
import { parsePin } from '../../firmware-manifest/pins.ts';
import { endpointText } from '../../firmware-manifest/endpoint-text.ts';
import { apply, emptyState, type ApplyResult, type TrustState } from '../../firmware-manifest/trust-state.ts';
import type { BundleVector } from '../../firmware-manifest/vectors.ts';
import { parseInstant } from '../../gateway/rollout/instant.ts';
import { loadSigningKey } from '../../gateway/signing-key.ts';
import { durationFlag, parse, required, uintFlag, UsageError, type Io } from '../args.ts';
import { pinSpecs } from '../pin-specs.ts';
import { checkOutFile, writeOutFile } from '../out-file.ts';
import { ApiError, apiFrom, idArg, seg } from '../api-client.ts';
import { table, when } from '../table.ts';

const USAGE = `Usage:
  pinwave bundle create --key KEY.pem --group G --seq N --pin HOST[:PORT]=sha256/B64 ... --out FILE [--force]
                        [--expires-in 30d] [--report-only HOST[:PORT]] [--expiry-policy enforce|ca-fallback]
                        [--rotate-keys PUB.pem ... --key-epoch N]
  pinwave bundle inspect FILE
  pinwave bundle verify FILE --pub KEY ... --group G [--current-seq N] [--active-bundle ID] [--key-epoch N]
                        [--now ISO|EPOCH] [--max-bytes N]
  pinwave bundle verify --vector VECTOR.json
  pinwave bundle push --group G --pin HOST[:PORT]=sha256/B64 ... [--expires-in 30d] [--report-only HOST[:PORT]]
                      [--expiry-policy enforce|ca-fallback] [--rotate-keys PUB.pem ... --key-epoch N] [--api URL] [--json]
  pinwave bundle upload FILE [--group G] [--api URL] [--json]
  pinwave bundle list [--group G] [--all] [--api URL] [--json]
  pinwave bundle show ID [--api URL] [--json]

create    sign a bundle with the complete pin set (port defaults to 443; each host needs two distinct
          pins, one a backup); prints a JSON summary: id, size, seq, group. FILE appears whole or not
          at all; an existing FILE is replaced only with --force
inspect   print the decoded bundle as JSON (no signature check), pins in sha256/ form
verify    check a bundle as a device would: exit 0 and "valid", or exit 1 and "rejected: <reason>".
          The device: trusting each --pub KEY (a file holding an SPKI PEM, or the base64 or hex of the
          raw 32-byte key; or that base64 or hex itself), in group G, at seq --current-seq (default 0)
          running bundle --active-bundle (its 64-hex id; default none), at key epoch --key-epoch
          (default 0), its clock at --now (default the system clock), taking --max-bytes (default 4096).
          --vector runs a conformance vector instead: its bundle, against its device state and clock;
          exit 3 when the outcome differs from the one the vector expects
push      have the gateway sign and store a bundle with its key and the group's next seq. --rotate-keys
          makes it a key rotation: the devices' trusted keys become these (keep the current one among
          them until every device runs the new one) at epoch --key-epoch, above any the group holds;
          once it is the group's baseline the gateway signs with its next key (--next-key)
upload    give the gateway a bundle signed elsewhere (bundle create, on the machine that holds the key):
          taken only when a device of its group would accept it: signed by a key the group trusts (the
          gateway's, or its models' manifests'), for the group (--group, default the bundle's own),
          with the group's next seq. A refusal (exit 1) names the verifier's reason: unknown_key,
          bad_signature, wrong_group, replayed, seq_not_next (with the seq to sign), expired, ...
list      the gateway's bundles in id order (default: the first 100; --all for every one)
show      one of them decoded, pins in sha256/ form, and its pins against what its group runs now
          (its baseline: the bundle of the group's last completed rollout): per endpoint the pins
          added (+), removed (-) and kept (=). ID may be a unique prefix of 8+ hex digits
push, upload, list and show talk to a gateway: --api URL (default $PINWAVE_API or http://127.0.0.1:8080),
token from $PINWAVE_TOKEN`;

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'create': return create(rest, io);
    case 'inspect': return inspect(rest, io);
    case 'verify': return verify(rest, io);
    case 'push': return push(rest, io);
    case 'upload': return upload(rest, io);
    case 'list': return list(rest, io);
    case 'show': return show(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

/** The longest --expires-in, as the gateway bounds body/expiresIn. */
const MAX_LIFETIME_SECONDS = 100 * 365 * 86400;

/** --expires-in in seconds: more than 0, at most MAX_LIFETIME_SECONDS. */
function lifetimeFlag(value: string): number {
  const lifetime = durationFlag(value, 'expires-in', USAGE);
  if (lifetime === 0) throw new UsageError('--expires-in must be more than 0', USAGE);
  // The gateway's own bound for a bundle it signs (POST /v1/bundles): beyond it, exp would not even be a date.
  if (lifetime > MAX_LIFETIME_SECONDS) throw new UsageError(`--expires-in must be at most 100 years, got "${value}"`, USAGE);
  return lifetime;
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
    force: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const keyPath = required(values.key, 'key', USAGE);
  const group = required(values.group, 'group', USAGE);
  const seq = uintFlag(required(values.seq, 'seq', USAGE), 'seq', USAGE);
  const out = required(values.out, 'out', USAGE);
  const endpoints = pinSpecs(values.pin ?? [], values['report-only'] ?? [], USAGE);
  const lifetime = lifetimeFlag(values['expires-in'] ?? '30d');
  const policy = values['expiry-policy'] ?? 'enforce';
  if (policy !== 'enforce' && policy !== 'ca-fallback') throw new UsageError(`--expiry-policy must be enforce or ca-fallback, got "${policy}"`, USAGE);
  const keyRotation = rotationFlags(values['rotate-keys'], values['key-epoch']);
  // Refused before the key is read or anything signed: a bundle made only to be thrown away is work
  // (and a signature) for nothing.
  await checkOutFile(out, { flag: 'out', force: values.force });
  const key = loadSigningKey(keyPath, { strictMode: false, onLooseMode: (m) => io.err(`warning: ${m}`) });
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
  await writeOutFile(out, signed.bytes, { flag: 'out', force: values.force });
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
    'rotate-keys': { type: 'string', multiple: true },
    'key-epoch': { type: 'string' },
    api: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const group = required(values.group, 'group', USAGE);
  const rotate = rotationFlags(values['rotate-keys'], values['key-epoch']);
  const endpoints = pinSpecs(values.pin ?? [], values['report-only'] ?? [], USAGE);
  const policy = values['expiry-policy'];
  if (policy !== undefined && policy !== 'enforce' && policy !== 'ca-fallback') throw new UsageError(`--expiry-policy must be enforce or ca-fallback, got "${policy}"`, USAGE);
  const body = {
    group,
    pins: endpoints.map((e) => ({ host: e.host, port: e.port, pins: e.pins, ...(e.mode === 'report-only' && { mode: e.mode }) })),
    ...(values['expires-in'] !== undefined && { expiresIn: lifetimeFlag(values['expires-in']) }),
    ...(policy && { expiryPolicy: policy }),
    ...(rotate && { rotateKeys: { epoch: rotate.epoch, keys: rotate.keys.map((k) => Buffer.from(k).toString('base64')) } }),
  };
  const res = await apiFrom(values.api, io).post<{ id: string; seq: number; size: number; group: string; kid: string }>('/v1/bundles', body);
  const rotation = rotate ? `; rotates the trusted keys to ${rotate.keys.length} key${rotate.keys.length === 1 ? '' : 's'} at epoch ${rotate.epoch}` : '';
  io.out(values.json ? JSON.stringify(res, null, 2) : `bundle ${res.id}\n  group ${res.group}, seq ${res.seq}, ${res.size} bytes, signed by the gateway (kid ${res.kid})${rotation}`);
  return 0;
}

async function upload(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { group: { type: 'string' }, api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('upload takes exactly one FILE (a COSE_Sign1 bundle, as bundle create writes it)', USAGE);
  const bytes = readBytes(positionals[0]);
  // With --json a refusal is JSON too: { ok: false, reason, detail }.
  const refused = (reason: string, detail: string) => {
    if (values.json) io.out(JSON.stringify({ ok: false, reason, detail }, null, 2));
    else {
      io.out(`rejected: ${reason}`);
      io.err(detail);
    }
    return 1;
  };
  const decoded = inspectBundle(bytes);
  if (!decoded.ok) return refused(decoded.reason, notABundle(positionals[0], bytes, decoded));
  const group = values.group ?? decoded.bundle.group;
  let res: BundleSummary & { kid: string };
  try {
    res = await apiFrom(values.api, io).post('/v1/bundles', { group, cose: Buffer.from(bytes).toString('base64') });
  } catch (err) {
    const details = err instanceof ApiError ? (err.body as { details?: { reason?: string; detail?: string } } | undefined)?.details : undefined;
    if (details?.reason) return refused(details.reason, details.detail ?? (err as Error).message);
    throw err;
  }
  io.out(values.json ? JSON.stringify(res, null, 2) : `bundle ${res.id}\n  group ${res.group}, seq ${res.seq}, ${res.size} bytes, signed offline (kid ${res.kid}), uploaded`);
  return 0;
}

interface BundleSummary {
  id: string;
  group: string;
  seq: number;
  size: number;
  createdAt: number;
  createdBy: string | null;
}

interface EndpointDiff {
  host: string;
  port: number;
  change: 'added' | 'removed' | 'changed' | 'unchanged';
  added: string[];
  removed: string[];
  kept: string[];
}

interface BundleDetail extends BundleSummary {
  kid: string;
  issuedAt: string;
  expires: string;
  expiryPolicy: string;
  endpoints: Array<{ host: string; port: number; pins: string[]; mode: string; notBefore?: number; notAfter?: number }>;
  keyRotation?: { epoch: number; keys: string[] };
  diff: { against: { kind: 'baseline'; bundleId: string; seq: number } | { kind: 'none' }; endpoints: EndpointDiff[] };
}

async function list(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { group: { type: 'string' }, all: { type: 'boolean' }, api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  const api = apiFrom(values.api, io);
  const params = new URLSearchParams({ limit: values.all ? '1000' : '100' });
  if (values.group !== undefined) params.set('group', values.group);
  const { items, next } = await api.pages<BundleSummary>('/v1/bundles', params, Boolean(values.all));
  if (values.json) return io.out(JSON.stringify(items, null, 2)), 0;
  if (items.length === 0) return io.out(values.group ? `no bundles for group ${values.group}` : 'no bundles'), 0;
  for (const l of table(['id', 'group', 'seq', 'bytes', 'created', 'by'], items.map((b) => [b.id, b.group, b.seq, b.size, when(b.createdAt), b.createdBy ?? '-']))) io.out(l);
  if (next !== null) io.out('… more bundles: --all for every one');
  return 0;
}

async function show(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('show takes exactly one bundle ID', USAGE);
  const b = await apiFrom(values.api, io).get<BundleDetail>(`/v1/bundles/${seg(idArg(positionals[0]))}`);
  if (values.json) return io.out(JSON.stringify(b, null, 2)), 0;
  for (const l of bundleLines(b)) io.out(l);
  return 0;
}

/** A bundle as a person reads it: what it is, then each endpoint with its pins marked against the group's. */
export function bundleLines(b: BundleDetail): string[] {
  const lines = [
    `bundle ${b.id}`,
    `  group ${b.group}, seq ${b.seq}, ${b.size} bytes, kid ${b.kid}`,
    `  created ${when(b.createdAt)}${b.createdBy ? ` by ${b.createdBy}` : ''}; issued ${b.issuedAt}, expires ${b.expires} (then: ${b.expiryPolicy === 'ca-fallback' ? 'CA validation' : 'its pins still enforced'})`,
  ];
  if (b.keyRotation) lines.push(`  key rotation to epoch ${b.keyRotation.epoch}: ${b.keyRotation.keys.length} trusted key${b.keyRotation.keys.length === 1 ? '' : 's'}`);
  const a = b.diff.against;
  lines.push(a.kind === 'baseline' ? `  against the group's baseline: bundle ${a.bundleId.slice(0, 16)}… (seq ${a.seq})` : "  against: nothing the gateway knows the group runs (no completed rollout yet): every endpoint reads as added");
  const own = new Map(b.endpoints.map((e) => [`${e.host}:${e.port}`, e]));
  for (const e of b.diff.endpoints) {
    const ep = own.get(`${e.host}:${e.port}`);
    const notes = [ep && ep.mode !== 'enforce' ? ep.mode : '', ep?.notBefore !== undefined ? `from ${when(ep.notBefore * 1000)}` : '', ep?.notAfter !== undefined ? `until ${when(ep.notAfter * 1000)}` : ''].filter(Boolean);
    lines.push(`  ${endpointText(e.host, e.port)}  ${e.change}${notes.length ? ` (${notes.join(', ')})` : ''}`);
    for (const p of e.added) lines.push(`    + ${p}`);
    for (const p of e.removed) lines.push(`    - ${p}`);
    for (const p of e.kept) lines.push(`    = ${p}`);
  }
  return lines;
}

async function inspect(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { help: { type: 'boolean', short: 'h' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one FILE', USAGE);
  const bytes = readBytes(positionals[0]);
  const r = inspectBundle(bytes);
  if (!r.ok) {
    io.out(`rejected: ${r.reason}`);
    io.err(notABundle(positionals[0], bytes, r));
    return 1;
  }
  io.out(JSON.stringify({ id: r.id, size: bytes.length, kid: hex(r.envelope.kid), alg: 'EdDSA', ...bundleView(r.bundle) }, null, 2));
  return 0;
}

/**
 * Why a malformed `file` is no bundle: what it is not, what a bundle is (docs/architecture.md §3: a
 * COSE_Sign1 message, CBOR tag 18, whose payload is the pin bundle) and what the file holds instead.
 * Any other refusal (too large, an alg other than EdDSA) is the codec's own detail.
 */
function notABundle(file: string, bytes: Uint8Array, r: { reason: string; detail: string }): string {
  if (r.reason !== 'malformed') return r.detail;
  const outer = decodeCanonical(bytes);
  if (outer.ok && outer.value instanceof Tag && outer.value.tag === COSE_SIGN1_TAG) {
    return decodeEnvelope(bytes).ok
      ? `${file} is not a pinwave bundle: it is a COSE_Sign1 message, but its payload is not a pin bundle: ${r.detail}`
      : `${file} is not a pinwave bundle: it is a COSE_Sign1 message (CBOR tag 18), but ${r.detail}`;
  }
  return `${file} is not a pinwave bundle: expected a COSE_Sign1 message (CBOR tag 18) that signs a pin bundle, found ${found(bytes, outer)}`;
}

/** What a file that is no COSE_Sign1 message holds: nothing, text (a JSON or PEM file), no CBOR, or which CBOR item. */
function found(bytes: Uint8Array, outer: DecodeResult): string {
  if (bytes.length === 0) return 'an empty file';
  const head = Buffer.from(bytes.subarray(0, 64)).toString('latin1');
  if (/^[\t\n\r\x20-\x7e]+$/.test(head) && head.trim() !== '') {
    const line = head.trim().split(/\r?\n/)[0];
    return `text ("${line.length > 40 ? `${line.slice(0, 40)}…` : line}")`;
  }
  if (!outer.ok) return outer.detail.startsWith('not CBOR') ? `bytes that are not CBOR (they start ${hex(bytes.subarray(0, 8))}${bytes.length > 8 ? '…' : ''})` : `CBOR ${outer.detail}`;
  const v = outer.value;
  if (v instanceof Tag) return `CBOR tag ${v.tag}`;
  if (Array.isArray(v)) return 'a CBOR array (a COSE_Sign1 message must carry its tag)';
  if (v instanceof Map) return 'a CBOR map';
  if (v instanceof Uint8Array) return 'a CBOR byte string';
  return typeof v === 'string' ? 'a CBOR text string' : typeof v === 'boolean' || v === null ? `CBOR ${v}` : 'a CBOR integer';
}

async function verify(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    pub: { type: 'string', multiple: true },
    group: { type: 'string' },
    'current-seq': { type: 'string' },
    'active-bundle': { type: 'string' },
    'key-epoch': { type: 'string' },
    now: { type: 'string' },
    'max-bytes': { type: 'string' },
    vector: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (values.vector !== undefined) {
    const stateFlags = ['pub', 'group', 'current-seq', 'active-bundle', 'key-epoch', 'now', 'max-bytes'] as const;
    const given = stateFlags.filter((f) => values[f] !== undefined);
    if (given.length > 0 || positionals.length > 0) {
      throw new UsageError(`--vector carries the bundle, the device state and the clock: it takes no FILE${given.length ? ` and no --${given.join(', --')}` : ''}`, USAGE);
    }
    return verifyVector(values.vector, io);
  }
  if (positionals.length !== 1) throw new UsageError('verify takes exactly one FILE (or --vector VECTOR.json)', USAGE);
  const keys = values.pub ?? [];
  if (keys.length === 0) throw new UsageError('missing required flag --pub', USAGE);
  const group = required(values.group, 'group', USAGE);
  const state = emptyState(group, keys.map((k) => verificationKey(k)));
  if (values['current-seq'] !== undefined) state.seq = uintFlag(values['current-seq'], 'current-seq', USAGE);
  if (values['active-bundle'] !== undefined) {
    const id = values['active-bundle'].toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(id)) throw new UsageError(`--active-bundle expects a bundle id (64 hex characters, the SHA-256 of its payload), got "${values['active-bundle']}"`, USAGE);
    state.bundleId = id;
  }
  if (values['key-epoch'] !== undefined) state.keyEpoch = uintFlag(values['key-epoch'], 'key-epoch', USAGE);
  if (values['max-bytes'] !== undefined) state.maxBundleBytes = uintFlag(values['max-bytes'], 'max-bytes', USAGE);
  const now = values.now === undefined ? Math.floor(Date.now() / 1000) : nowFlag(values.now);
  return report(apply(state, readBytes(positionals[0]), now), io);
}

function report(r: ApplyResult, io: Io): number {
  if (r.ok) {
    io.out('valid');
    io.err(`id ${r.id}, seq ${r.bundle.seq}, group ${r.bundle.group}, expires ${isoSeconds(r.bundle.exp)}${r.unchanged ? ' (the active bundle: a re-delivery, nothing changes)' : ''}`);
    return 0;
  }
  io.out(`rejected: ${r.reason}`);
  io.err(r.detail);
  return 1;
}

/** A conformance vector (docs/conformance-vectors.md) run as the device it describes. */
function verifyVector(path: string, io: Io): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--vector ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, USAGE);
  }
  const v = bundleVectorOf(text, path);
  const r = apply(v.stateBefore, new Uint8Array(Buffer.from(v.bundle, 'hex')), v.now);
  const code = report(r, io);
  const expected = v.expected.result === 'applied' ? 'valid' : `rejected: ${v.expected.reason}`;
  const agrees = v.expected.result === 'applied'
    ? r.ok && r.id === v.expected.bundleId && isDeepStrictEqual(r.state, v.expected.stateAfter)
    : !r.ok && r.reason === v.expected.reason;
  if (agrees) {
    io.err(`vector ${v.name}: expects ${expected}${v.expected.result === 'applied' ? ' and its state after' : ''}: agrees`);
    return code;
  }
  io.err(`vector ${v.name}: expects ${expected}${v.expected.result === 'applied' ? ' and its state after' : ''}: DISAGREES`);
  return 3;
}

/** The parts of a bundle vector that verify needs, each checked, so a wrong file is named, not crashed on. */
function bundleVectorOf(text: string, path: string): BundleVector {
  let v: Partial<BundleVector>;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--vector ${path}: not JSON (${(err as Error).message})`, USAGE);
  }
  const wrong = (what: string) => new UsageError(`--vector ${path}: not a bundle vector: ${what}`, USAGE);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw wrong('expected a JSON object (a bundle-<name>.json file)');
  if (typeof v.name !== 'string') throw wrong('"name" must be a string');
  if (typeof v.bundle !== 'string' || !/^([0-9a-f]{2})*$/.test(v.bundle)) throw wrong('"bundle" must be hex');
  if (!Number.isSafeInteger(v.now)) throw wrong('"now" must be an integer (seconds since the epoch)');
  const s = v.stateBefore as Partial<TrustState> | undefined;
  if (typeof s !== 'object' || s === null) throw wrong('"stateBefore" must be a trust state');
  const problems = [
    typeof s.group !== 'string' && 'group',
    !Number.isSafeInteger(s.seq) && 'seq',
    !(s.bundleId === null || (typeof s.bundleId === 'string' && /^[0-9a-f]{64}$/.test(s.bundleId))) && 'bundleId',
    !Number.isSafeInteger(s.keyEpoch) && 'keyEpoch',
    !(Array.isArray(s.trustedKeys) && s.trustedKeys.every((k) => typeof k === 'string')) && 'trustedKeys',
    !Array.isArray(s.endpoints) && 'endpoints',
    !(s.exp === null || Number.isSafeInteger(s.exp)) && 'exp',
    !(s.expiryPolicy === 'enforce' || s.expiryPolicy === 'ca-fallback') && 'expiryPolicy',
    !Number.isSafeInteger(s.maxBundleBytes) && 'maxBundleBytes',
    !(Array.isArray(s.acceptedVersions) && s.acceptedVersions.every(Number.isSafeInteger)) && 'acceptedVersions',
    !Number.isSafeInteger(s.clockSkewSeconds) && 'clockSkewSeconds',
  ].filter(Boolean);
  if (problems.length > 0) throw wrong(`"stateBefore" has no valid ${problems.join(', ')}`);
  const e = v.expected as Partial<BundleVector['expected']> | undefined;
  if (!e || !(e.result === 'applied' || (e.result === 'rejected' && typeof (e as { reason?: unknown }).reason === 'string'))) {
    throw wrong('"expected" must be {"result": "applied", ...} or {"result": "rejected", "reason": ...}');
  }
  return v as BundleVector;
}

/**
 * A public key given to verify: a file (SPKI PEM, or the base64 or hex of the raw 32 bytes), or the
 * raw key written out in hex (64 characters) or base64. A file of that name wins over the literal.
 */
function verificationKey(value: string): Uint8Array {
  if (existsSync(value)) {
    let text: string;
    try {
      text = readFileSync(value, 'utf8');
    } catch (err) {
      throw new UsageError(`--pub ${value}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, USAGE);
    }
    return keyText(text, `--pub ${value}`);
  }
  if (HEX_KEY.test(value.trim()) || BASE64_KEY.test(value.trim())) return keyText(value, '--pub');
  throw new UsageError(`--pub ${value}: no such file, and not a raw Ed25519 public key in hex (64 characters) or base64 (44)`, USAGE);
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

function keyText(text: string, where: string): Uint8Array {
  const trimmed = text.trim();
  if (HEX_KEY.test(trimmed)) return new Uint8Array(Buffer.from(trimmed, 'hex'));
  try {
    // SPKI PEM, or standard padded base64 of the raw key; a private key PEM is refused by name.
    return publicKeyFromText(trimmed);
  } catch (err) {
    if (err instanceof KeyFormatError && err.code === 'PW_KEY_FORMAT' && !trimmed.startsWith('-----BEGIN')) {
      throw new UsageError(`${where}: expected an SPKI PEM, or a raw 32-byte Ed25519 public key in hex or standard padded base64, got none of these`, USAGE);
    }
    throw new UsageError(`${where}: ${(err as Error).message}`, USAGE);
  }
}

function nowFlag(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const ms = parseInstant(text);
  if (Number.isNaN(ms)) throw new UsageError(`--now expects an ISO 8601 time with a zone (2027-03-01T12:00:00Z), a date, or seconds since the epoch, got "${text}"`, USAGE);
  return Math.floor(ms / 1000);
}

function readBytes(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** --rotate-keys PUB.pem ... (or comma-separated) with --key-epoch N: the rotation, or undefined when neither is given. */
function rotationFlags(files: string[] | undefined, epoch: string | undefined): { epoch: number; keys: Uint8Array[] } | undefined {
  const rotate = (files ?? []).flatMap((v) => v.split(',')).filter(Boolean);
  if (rotate.length > 0 && epoch === undefined) throw new UsageError('--rotate-keys needs --key-epoch N (above the devices\' current epoch)', USAGE);
  if (rotate.length === 0 && epoch !== undefined) throw new UsageError('--key-epoch goes with --rotate-keys', USAGE);
  return rotate.length > 0 ? { epoch: uintFlag(epoch!, 'key-epoch', USAGE), keys: rotate.map((p) => readPublicKey(p, 'rotate-keys')) } : undefined;
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
