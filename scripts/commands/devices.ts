// `pinwave devices provision|list|show|stuck|revoke`: the fleet registry through the gateway's HTTP API.
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { apiFrom, idArg, seg } from '../api-client.ts';
import { MAX_PAGE_LIMIT } from '../../gateway/store/types.ts';
import { parse, required, uintFlag, UsageError, type Io } from '../args.ts';
import { table, when } from '../table.ts';
import { endpointText } from '../../firmware-manifest/endpoint-text.ts';

const USAGE = `Usage:
  pinwave devices provision FILE --out TOKENS.json [--group G]
        FILE is CSV with a header (id,group,model,firmware; group may come from --group) or JSON
        ([{ "id", "group", "model", "firmware" }] or { "devices": [...] }). The device tokens, shown
        this once, are written to TOKENS.json (mode 0600, never overwritten) as { "devices": [{ "id", "token" }] }.
  pinwave devices list [--group G] [--model M] [--seq N] [--limit N] [--all] [--json]
  pinwave devices show ID [--json]
        its state, the pins it runs, the rollout it is in (waves from 1), its last ack, its recent
        pin failures and its history; times in ISO 8601. --json: the API's record as it is
  pinwave devices stuck (--group G | --rollout ID) [--csv | --json]
        devices not on the pins they should run, with why (docs/runbook.md says what each reason means)
  pinwave devices revoke ID [--json]
        disconnects the device and refuses it from now on; a device revoked already stays so, and
        is said to be (exit 0: revoking is idempotent, and the first revocation's time stands)

Common: --api URL (default $PINWAVE_API or http://127.0.0.1:8080); the API token is read from $PINWAVE_TOKEN.`;

const COMMON = { api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;
const CHUNK = 10_000;

interface DeviceRow {
  id: string;
  group: string;
  model?: string;
  firmware?: string;
}

interface DeviceView {
  id: string;
  group: string;
  model: string | null;
  firmware: string | null;
  seq: number | null;
  bundle: string | null;
  connected: boolean;
  lastSeen: string | number | null;
  [k: string]: unknown;
}

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'provision': return provision(rest, io);
    case 'list': return list(rest, io);
    case 'show': return show(rest, io);
    case 'stuck': return stuck(rest, io);
    case 'revoke': return revoke(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

/** A device's group: its own in the file, else --group; both, and different, is a slip to name, not one to pick. */
function groupOf(path: string, id: string, own: string | undefined, flag: string | undefined): string {
  if (own && flag !== undefined && own !== flag) throw new UsageError(`${path}: device "${id}" is in group "${own}" in the file, and --group says "${flag}": give one of them`, USAGE);
  return own ?? flag ?? '';
}

/** Reads a device list from CSV or JSON; errors name the line or index. */
export function readDeviceFile(path: string, defaultGroup: string | undefined): DeviceRow[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, USAGE);
  }
  const trimmed = text.trimStart();
  let rows: DeviceRow[];
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (err) {
      throw new UsageError(`${path} is not valid JSON: ${(err as Error).message}`, USAGE);
    }
    const list = Array.isArray(json) ? json : (json as { devices?: unknown }).devices;
    if (!Array.isArray(list)) throw new UsageError(`${path}: expected an array of devices or { "devices": [...] }`, USAGE);
    rows = list.map((d, i) => {
      if (!d || typeof d !== 'object' || typeof (d as DeviceRow).id !== 'string') throw new UsageError(`${path}: devices[${i}] needs an "id" string`, USAGE);
      const row = d as DeviceRow;
      return { ...row, group: groupOf(path, row.id, row.group, defaultGroup) };
    });
  } else {
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
    const header = (lines.shift() ?? '').split(',').map((h) => h.trim().toLowerCase());
    if (!header.includes('id')) throw new UsageError(`${path}: the CSV needs a header line with an "id" column (id,group,model,firmware)`, USAGE);
    rows = lines.map((line, n) => {
      const cells = line.split(',').map((c) => c.trim());
      if (cells.length > header.length) throw new UsageError(`${path}:${n + 2}: ${cells.length} fields, the header has ${header.length}`, USAGE);
      const get = (k: string) => (header.includes(k) ? cells[header.indexOf(k)] || undefined : undefined);
      const id = get('id') ?? '';
      return { id, group: groupOf(path, id, get('group'), defaultGroup), ...(get('model') && { model: get('model') }), ...(get('firmware') && { firmware: get('firmware') }) };
    });
  }
  const noGroup = rows.findIndex((r) => !r.group);
  if (noGroup >= 0) throw new UsageError(`${path}: device "${rows[noGroup].id}" has no group: add a group column or pass --group G`, USAGE);
  if (rows.length === 0) throw new UsageError(`${path}: no devices in it`, USAGE);
  return rows;
}

async function provision(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...COMMON, out: { type: 'string' }, group: { type: 'string' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('provision takes exactly one FILE of devices', USAGE);
  const out = required(values.out, 'out', USAGE);
  const rows = readDeviceFile(positionals[0], values.group);
  const api = apiFrom(values.api, io);
  // Created before the first call, 0600 and never over an existing file: tokens are shown once.
  let fd: number;
  try {
    fd = openSync(out, 'wx', 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A link to nothing is EEXIST too: it is "another file", not a stat error to throw.
    const folder = code === 'EEXIST' && statSync(out, { throwIfNoEntry: false })?.isDirectory() === true;
    throw new UsageError(
      folder ? `--out ${out} is a directory: give the path of a new file for the tokens`
        : code === 'EEXIST' ? `--out ${out} exists already; tokens are never written over another file`
          : code === 'ENOENT' ? `--out ${out}: the folder ${dirname(out)} does not exist`
            : `--out ${out}: ${code}`,
      USAGE,
    );
  }
  const tokens: Array<{ id: string; token: string }> = [];
  try {
    for (let i = 0; i < rows.length; i += CHUNK) {
      const res = await api.post<{ devices: Array<{ id: string; token: string }> }>('/v1/devices', { devices: rows.slice(i, i + CHUNK) });
      tokens.push(...res.devices);
    }
  } catch (err) {
    if (tokens.length > 0) io.err(`provisioned ${tokens.length} of ${rows.length} devices before the error; their tokens are in ${out}`);
    throw err;
  } finally {
    // No token given out: the file goes again (it holds nothing shown-once), so the same command
    // can be run again; otherwise the tokens the gateway gave are kept, even after an error.
    if (tokens.length > 0) writeSync(fd, JSON.stringify({ devices: tokens }, null, 2) + '\n');
    closeSync(fd);
    if (tokens.length === 0) rmSync(out, { force: true });
  }
  if (values.json) io.out(JSON.stringify({ provisioned: tokens.length, tokens: out }));
  else io.out(`provisioned ${tokens.length} device${tokens.length === 1 ? '' : 's'}; tokens written to ${out} (mode 0600, shown this once)`);
  return 0;
}

async function list(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { ...COMMON, group: { type: 'string' }, model: { type: 'string' }, seq: { type: 'string' }, limit: { type: 'string' }, all: { type: 'boolean' } }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  if (values.limit !== undefined) uintFlag(values.limit, 'limit', USAGE, [1, MAX_PAGE_LIMIT]);
  if (values.seq !== undefined) uintFlag(values.seq, 'seq', USAGE);
  const api = apiFrom(values.api, io);
  const params = new URLSearchParams();
  for (const k of ['group', 'model', 'seq', 'limit'] as const) if (values[k] !== undefined) params.set(k, values[k]!);
  const { items, next } = await api.pages<DeviceView>('/v1/devices', params, Boolean(values.all));
  if (values.json) return io.out(JSON.stringify(items, null, 2)), 0;
  if (items.length === 0) return io.out('no devices'), 0;
  const rows = items.map((d) => [d.id, d.group, d.model ?? '-', d.firmware ?? '-', d.seq ?? '-', String(d.state ?? (d.connected ? 'connected' : 'offline')), when(d.lastSeen)]);
  for (const l of table(['id', 'group', 'model', 'firmware', 'seq', 'state', 'last seen'], rows)) io.out(l);
  if (next !== null) io.out('… more devices: --all for every one');
  return 0;
}

interface DeviceDetail extends DeviceView {
  state: string;
  keyEpoch: number | null;
  createdAt: number;
  revokedAt: number | null;
  lastConnectAt: number | null;
  lastDisconnectAt: number | null;
  /** external broker mode: the broker it connects to (docs/architecture.md §8) */
  broker?: string | null;
  rollout: { id: string; state: string; status: string; wave: number; reason?: string; at: number | null } | null;
  history: Array<{ at: number; rolloutId?: string; bundleId: string; seq: number; event: string; reason?: string }>;
  telemetry: Array<{ at: number; hostname: string; port: number; result: string; servedPins?: string[]; count?: number; seq?: number; rolloutId?: string | null; wave?: number | null }>;
}

/** A device as support reads it: where it stands, the rollout it is in, its last ack, its pin failures, its history. */
export function deviceLines(d: DeviceDetail): string[] {
  const short = (id: string | null) => (id ? `${id.slice(0, 16)}…` : '-');
  const lines = [`device ${d.id}`, `  group ${d.group}, model ${d.model ?? '-'}, firmware ${d.firmware ?? '-'}`];
  const seen = d.state === 'connected' ? `connected since ${when(d.lastConnectAt)}` : d.state === 'never_connected' ? 'never connected' : d.state === 'revoked' ? `revoked ${when(d.revokedAt)}` : `offline since ${when(d.lastDisconnectAt ?? d.lastSeen)}`;
  lines.push(`  ${seen}; last seen ${when(d.lastSeen)}; provisioned ${when(d.createdAt)}${d.broker ? ` onto ${d.broker}` : ''}`);
  lines.push(d.seq === null ? '  pins: never reported (runs what its firmware was born with, as far as the gateway knows)' : `  pins: seq ${d.seq}, bundle ${short(d.bundle)}${d.keyEpoch !== null && d.keyEpoch !== undefined ? `, key epoch ${d.keyEpoch}` : ''}`);
  const r = d.rollout;
  lines.push(r ? `  rollout ${r.id} (${r.state}): wave ${r.wave + 1}, ${r.status}${r.reason ? ` (${r.reason})` : ''}${r.at !== null ? ` since ${when(r.at)}` : ''}` : '  rollout: none');
  const ack = [...d.history].reverse().find((h) => h.event === 'applied' || h.event === 'rejected');
  lines.push(ack ? `  last ack: ${when(ack.at)} ${ack.event}${ack.reason ? ` (${ack.reason})` : ''}, seq ${ack.seq}, bundle ${short(ack.bundleId)}${ack.rolloutId ? `, rollout ${ack.rolloutId}` : ''}` : '  last ack: none');
  if (d.telemetry.length === 0) lines.push('  pin failures: none reported');
  else {
    lines.push(`  pin failures (${d.telemetry.length} most recent, newest last):`);
    for (const f of d.telemetry) {
      const served = f.servedPins && f.servedPins.length > 0 ? `served ${f.servedPins[0]}${f.servedPins.length > 1 ? ` (+${f.servedPins.length - 1})` : ''}` : 'no served pins';
      const where = f.rolloutId ? `, rollout ${f.rolloutId}${f.wave !== null && f.wave !== undefined ? ` wave ${f.wave + 1}` : ''}` : '';
      lines.push(`    ${when(f.at)}  ${endpointText(f.hostname, f.port)}  ${f.result}  ${served}${f.count !== undefined ? `  ×${f.count}` : ''}${f.seq !== undefined ? `  on seq ${f.seq}` : ''}${where}`);
    }
  }
  if (d.history.length > 0) {
    lines.push('  history (newest last):');
    for (const h of d.history) lines.push(`    ${when(h.at)}  ${h.event}${h.reason ? ` (${h.reason})` : ''}  seq ${h.seq}  bundle ${short(h.bundleId)}${h.rolloutId ? `  rollout ${h.rolloutId}` : ''}`);
  }
  return lines;
}

async function show(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, COMMON, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('show takes exactly one device ID', USAGE);
  const d = await apiFrom(values.api, io).get<DeviceDetail>(`/v1/devices/${seg(positionals[0])}`);
  if (values.json) return io.out(JSON.stringify(d, null, 2)), 0;
  for (const l of deviceLines(d)) io.out(l);
  return 0;
}

async function stuck(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { ...COMMON, group: { type: 'string' }, rollout: { type: 'string' }, csv: { type: 'boolean' } }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  if ((values.group === undefined) === (values.rollout === undefined)) throw new UsageError('give exactly one of --group G or --rollout ID', USAGE);
  if (values.csv && values.json) throw new UsageError('give either --csv or --json, not both', USAGE);
  const query = values.group !== undefined ? `group=${encodeURIComponent(values.group)}` : `rollout=${encodeURIComponent(idArg(values.rollout!))}`;
  const api = apiFrom(values.api, io);
  if (values.csv) {
    // Without a limit the gateway sends every row as CSV.
    io.out((await api.get<string>(`/v1/stuck?${query}`, 'text/csv')).trimEnd());
    return 0;
  }
  const items: Array<Record<string, unknown>> = [];
  let cursor: string | null = null;
  do {
    const page: { items: Array<Record<string, unknown>>; next: string | null } = await api.get(`/v1/stuck?${query}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.items);
    cursor = page.next;
  } while (cursor);
  if (values.json) return io.out(JSON.stringify(items, null, 2)), 0;
  if (items.length === 0) return io.out('no stuck devices'), 0;
  const rows = items.map((d) => [String(d.id), String(d.reason), when(d.since as number | null), String(d.seq ?? '-'), String(d.targetSeq ?? '-'), d.connected ? 'yes' : 'no']);
  for (const l of table(['id', 'reason', 'since', 'seq', 'target seq', 'connected'], rows)) io.out(l);
  return 0;
}

async function revoke(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, COMMON, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length !== 1) throw new UsageError('revoke takes exactly one device ID', USAGE);
  const api = apiFrom(values.api, io);
  const path = `/v1/devices/${seg(positionals[0])}`;
  // Revoking is idempotent (README, HTTP API): a second DELETE changes nothing, and its answer looks
  // like the first's; the record read before tells the operator which one this was.
  const before = await api.get<DeviceView>(path);
  const d = await api.delete<DeviceView>(path);
  if (values.json) return io.out(JSON.stringify(d, null, 2)), 0;
  if (before.revokedAt !== null && before.revokedAt !== undefined) io.out(`${positionals[0]} was revoked already (at ${when(before.revokedAt as number)}): nothing changed, it stays refused`);
  else io.out(`revoked ${positionals[0]}: disconnected, and refused from now on`);
  return 0;
}
