// `pinwave telemetry pin-failures`: pin-failure reports aggregated by endpoint and served pin
// (GET /v1/telemetry/pin-failures), most failures first, as a table or as JSON for scripts.
import { apiFrom, idArg } from '../api-client.ts';
import { parse, UsageError, type Io } from '../args.ts';
import { table } from '../table.ts';
import { endpointText } from '../../firmware-manifest/index.ts';

const USAGE = `Usage:
  pinwave telemetry pin-failures [--rollout ID] [--group G] [--host H] [--all] [--json]

pin-failures   reports by endpoint and the pin the endpoint served, most failures first: how many
               devices and failures, the rollout and wave they came in (waves from 1), when
               --rollout ID   only reports on that rollout's bundle (ID may be a unique prefix of 8+ characters)
               --group G      only reports from devices of the group
               --host H       only reports about that host name
               --all          every page (default: the first 100 rows)

Common: --api URL (default $PINWAVE_API or http://127.0.0.1:8080); the API token is read from $PINWAVE_TOKEN.`;

const COMMON = { api: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;

interface PinFailureRow {
  host: string;
  port: number;
  result: string;
  observedPin: string | null;
  bundleId: string | null;
  rollouts: string[];
  waves: Array<{ rolloutId: string; wave: number }>;
  groups: string[];
  devices: number;
  devicesCapped: boolean;
  failures: number;
  suppressed: number;
  lastSeen: string;
  lastReceived: string;
}

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'pin-failures': return pinFailures(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

async function pinFailures(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { ...COMMON, rollout: { type: 'string' }, group: { type: 'string' }, host: { type: 'string' }, all: { type: 'boolean' } }, USAGE, true);
  if (values.help) return io.out(USAGE), 0;
  if (positionals.length > 0) throw new UsageError(`pin-failures takes no arguments, got "${positionals[0]}" (filter with --rollout, --group or --host)`, USAGE);
  const params = new URLSearchParams();
  if (values.rollout !== undefined) params.set('rollout', idArg(values.rollout));
  for (const k of ['group', 'host'] as const) if (values[k] !== undefined) params.set(k, values[k]!);
  params.set('limit', values.all ? '1000' : '100');
  const api = apiFrom(values.api, io);
  const rows: PinFailureRow[] = [];
  let cursor: string | null = null;
  let more = false;
  do {
    if (cursor !== null) params.set('cursor', cursor);
    const page: { items: PinFailureRow[]; next: string | null } = await api.get(`/v1/telemetry/pin-failures?${params}`);
    rows.push(...page.items);
    cursor = values.all ? page.next : null;
    more = !values.all && page.next !== null;
  } while (cursor !== null);
  if (values.json) return io.out(JSON.stringify(rows, null, 2)), 0;
  if (rows.length === 0) return io.out('no pin failures reported'), 0;
  const lines = table(
    ['endpoint', 'result', 'served pin', 'devices', 'failures', 'rollout (wave)', 'groups', 'last seen'],
    rows.map((r) => [
      endpointText(r.host, r.port),
      r.result,
      r.observedPin ?? '-',
      `${r.devices}${r.devicesCapped ? '+' : ''}`,
      r.failures,
      r.waves.length > 0 ? r.waves.map((w) => `${w.rolloutId} (${w.wave + 1})`).join(', ') : r.rollouts.join(', ') || '-',
      r.groups.join(', ') || '-',
      r.lastSeen,
    ]),
  );
  for (const l of lines) io.out(l);
  if (more) io.out('… more rows: --all for every one');
  return 0;
}
