// `pinwave store migrate --from DIR --to postgres://…`: moves a fleet from the embedded store in a
// data dir to PostgreSQL (docs/storage.md, "moving to PostgreSQL"). The data dir is opened as a
// gateway would (its lock refuses a running gateway on it) and is only read; a target database
// that holds anything already is refused unless --allow-non-empty.
import { EmbeddedStore } from '../../gateway/store/embedded.ts';
import { copyStore, isEmpty } from '../../gateway/store/migrate.ts';
import { PostgresStore, redactUrl } from '../../gateway/store/postgres.ts';
import { parse, UsageError, type Io } from '../args.ts';
import { isDataDir, notADataDir } from '../data-dir.ts';

const USAGE = `Usage:
  pinwave store migrate --from DIR --to postgres://USER[:PASSWORD]@HOST:PORT/DB [--allow-non-empty]

migrate  copy every device, bundle, group seq and baseline, rollout (members and decisions),
         telemetry aggregate, counter and collection item from the embedded store in DIR (stop
         the gateway first: the data dir's lock refuses it otherwise) into the database, whose
         tables are created if missing. DIR is not changed. Reports what it copied.
         --allow-non-empty  copy into a database that already holds a fleet (ids it holds are refused)`;

export async function main(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'migrate':
      return migrate(rest, io);
    case '--help': case '-h': case undefined:
      io.out(USAGE);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown subcommand "${sub}"`, USAGE);
  }
}

async function migrate(args: string[], io: Io): Promise<number> {
  const { values } = parse(args, { from: { type: 'string' }, to: { type: 'string' }, 'allow-non-empty': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) return io.out(USAGE), 0;
  if (values.from === undefined) throw new UsageError('--from DIR is required: the data dir of the embedded store', USAGE);
  if (values.to === undefined) throw new UsageError('--to postgres://… is required: the database to copy into', USAGE);
  if (!/^postgres(ql)?:\/\//.test(values.to)) throw new UsageError(`--to must be a postgres:// URL, got ${redactUrl(values.to)}`, USAGE);
  // Opening a folder with no store creates one: a mistyped --from would copy an empty fleet, "successfully".
  if (!isDataDir(values.from)) throw new UsageError(notADataDir('--from', values.from), USAGE);
  const from = new EmbeddedStore({ dir: values.from });
  const to = new PostgresStore({ url: values.to });
  await from.open();
  try {
    await to.open();
    try {
      if (!values['allow-non-empty'] && !(await isEmpty(to))) {
        io.err(`pinwave store migrate: ${to.name} already holds a fleet; refusing to copy into it (pass --allow-non-empty to add to it)`);
        return 1;
      }
      const started = performance.now();
      const n = await copyStore(from, to, (what) => io.err(`  … ${what}`));
      io.out(
        `copied from ${values.from} to ${to.name} in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
          `${n.devices} devices, ${n.bundles} bundles, ${n.groups} groups, ${n.rollouts} rollouts (${n.compactedRollouts} compacted, ${n.members} members), ` +
          `${n.telemetryBuckets} telemetry buckets, ${n.counters} counters, ${n.items} collection items`,
      );
      return 0;
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}
