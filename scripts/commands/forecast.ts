// `pinwave forecast`: the lockout forecast for support teams (GET /v1/forecast, docs/runbook.md): which
// devices would lock themselves out if an endpoint served a key from a date, by group, model and
// seq, then the devices; those with a rollout in flight with what they will hold after it.
import { apiFrom } from '../api-client.ts';
import { parse, UsageError, type Io } from '../args.ts';
import { parseInstant } from '../../gateway/rollout/instant.ts';
import { fetchServedChain } from '../../gateway/tls-probe.ts';
import { endpointText, tryParsePin } from '../../firmware-manifest/index.ts';
import { table } from '../table.ts';
import { hostPort, pinsOfFile, read } from './pin.ts';

const USAGE = `Usage:
  pinwave forecast --endpoint HOST:PORT (--pin sha256/... | --cert FILE | --connect [--via ADDR:PORT]) [--at DATE] [--all] [--json]

Which devices would lock themselves out if HOST:PORT served this key from DATE (default now): each
device judged under the pins it holds (its bundle, or its model's firmware pins) at that date,
overlap windows and expiry policy included.
  --pin sha256/...    the key (repeat it for every certificate of the chain: any one held lets a device in)
  --cert FILE         the key of the certificate(s) in FILE (PEM or DER), e.g. the one about to be installed
  --connect           the key HOST:PORT serves now, read by a TLS handshake from here (--via: dial ADDR:PORT instead)
  --at DATE           an ISO 8601 date, or a date-time with a zone, e.g. 2026-03-01 or 2026-03-01T12:00:00Z
  --all               every page of devices (default: the first 100)
Exit codes: 0 none locked out, 1 some would be, 2 usage.

Common: --api URL (default $PINWAVE_API or http://127.0.0.1:8080); the API token is read from $PINWAVE_TOKEN.`;

interface ForecastItem {
  id: string;
  group: string;
  model: string | null;
  seq: number | null;
  lockedOut: boolean;
  after?: { rollout: string; seq: number; lockedOut: boolean };
}

interface ForecastPage {
  endpoint: string;
  at: string;
  devices: number;
  unknown: number;
  lockedOut: number;
  lockedOutAfterRollouts: number;
  byGroup: Record<string, number>;
  byModel: Record<string, number>;
  bySeq: Record<string, number>;
  items: ForecastItem[];
  next: string | null;
}

export async function main(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    api: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    endpoint: { type: 'string' },
    pin: { type: 'string', multiple: true },
    cert: { type: 'string' },
    connect: { type: 'boolean' },
    via: { type: 'string' },
    at: { type: 'string' },
    all: { type: 'boolean' },
  }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length > 0) throw new UsageError(`forecast takes no arguments, got "${positionals[0]}"`, USAGE);
  if (values.endpoint === undefined) throw new UsageError('missing required flag --endpoint HOST:PORT', USAGE);
  const { host, port } = hostPort(values.endpoint, '--endpoint', USAGE);
  const given = [values.pin !== undefined, values.cert !== undefined, values.connect === true].filter(Boolean).length;
  if (given !== 1) throw new UsageError('give exactly one of --pin sha256/..., --cert FILE or --connect', USAGE);
  if (values.via !== undefined && !values.connect) throw new UsageError('--via needs --connect', USAGE);
  if (values.at !== undefined && Number.isNaN(parseInstant(values.at))) throw new UsageError(`--at expects an ISO 8601 date like 2026-03-01, or a date-time with a zone like 2026-03-01T12:00:00Z, got "${values.at}"`, USAGE);
  let pins: string[];
  if (values.pin) {
    for (const p of values.pin) {
      const r = tryParsePin(p);
      if (!r.ok) throw new UsageError(`--pin: ${r.error.message}`, USAGE);
    }
    pins = [...new Set(values.pin)]; // a pin given twice is one key
  } else if (values.cert !== undefined) {
    pins = pinsOfFile(values.cert, await read(values.cert)).map((p) => p.text);
  } else {
    const dial = values.via !== undefined ? hostPort(values.via, '--via', USAGE) : { host, port };
    pins = (await fetchServedChain(dial.host, dial.port, { servername: host })).pins.map((p) => p.text);
  }

  const params = new URLSearchParams({ host, port: String(port), pin: pins.join(','), limit: values.all ? '1000' : '100' });
  if (values.at !== undefined) params.set('at', values.at);
  const api = apiFrom(values.api, io);
  let first: ForecastPage | null = null;
  const items: ForecastItem[] = [];
  for (let cursor: string | null = null; ; ) {
    if (cursor !== null) params.set('cursor', cursor);
    const page: ForecastPage = await api.get(`/v1/forecast?${params}`);
    first ??= page;
    items.push(...page.items);
    cursor = values.all ? page.next : null;
    if (cursor === null) break;
  }
  const f = { ...first!, items };
  if (values.json) {
    io.out(JSON.stringify(f, null, 2));
    return f.lockedOut > 0 || f.lockedOutAfterRollouts > 0 ? 1 : 0;
  }
  const counts = (c: Record<string, number>) => Object.entries(c).map(([k, n]) => `${k} ${n}`).join(', ') || '-';
  io.out(`${endpointText(host, port)} serving ${pins.map((p) => `${p.slice(0, 20)}…`).join(', ')} at ${f.at}: locked out ${f.lockedOut} of ${f.devices} devices (after the rollouts in flight: ${f.lockedOutAfterRollouts})${f.unknown > 0 ? `; ${f.unknown} not judged (pins unknown to the gateway)` : ''}`);
  if (f.lockedOut > 0) {
    io.out(`  by group: ${counts(f.byGroup)}`);
    io.out(`  by model: ${counts(f.byModel)}`);
    io.out(`  by seq:   ${counts(f.bySeq)}`);
  }
  if (items.length > 0) {
    const rows = items.map((d) => [d.id, d.group, d.model ?? '-', d.seq ?? '-', d.lockedOut ? 'locked out' : 'ok', d.after ? `${d.after.rollout} (seq ${d.after.seq}): ${d.after.lockedOut ? 'locked out' : 'ok'}` : '-']);
    for (const l of table(['device', 'group', 'model', 'seq', 'now', 'after its rollout in flight'], rows)) io.out(l);
    if (!values.all && first!.next !== null) io.out('… more devices: --all for every one');
  }
  return f.lockedOut > 0 || f.lockedOutAfterRollouts > 0 ? 1 : 0;
}
