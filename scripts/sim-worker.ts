// One worker process of `pinwave sim --processes N` (scripts/sim-processes.ts): builds its shard of
// the fleet, starts it when told, sends its summary every `reportMs` and a last one once stopped.
// Not run by hand: forked with an IPC channel, it exits when that channel closes, so a parent that
// dies leaves nothing behind. Signals are the parent's to handle: a Ctrl-C stops the fleet there.
import { Fleet } from '../device-sim/index.ts';
import type { FromWorker, ToWorker } from './sim-processes.ts';

if (!process.send) {
  process.stderr.write('sim-worker is forked by pinwave sim --processes N\n');
  process.exit(2);
}

const say = (m: FromWorker) => process.send!(m);
let fleet: Fleet | null = null;
let report: NodeJS.Timeout | null = null;
let starting: Promise<void> | null = null;

process.on('message', (m: ToWorker) => {
  try {
    if (m.cmd === 'build') {
      fleet = new Fleet({ ...m.spec, shard: m.shard });
      say({ type: 'summary', summary: fleet.summary() });
      report = setInterval(() => say({ type: 'summary', summary: fleet!.summary() }), m.reportMs);
      say({ type: 'built' });
    } else if (m.cmd === 'start') {
      starting = fleet!.start();
      starting.then(
        () => say({ type: 'started' }),
        (err: Error) => say({ type: 'error', message: err.message }),
      );
    } else if (m.cmd === 'stop') {
      if (report) clearInterval(report);
      const f = fleet!;
      void (async () => {
        await f.stop();
        await starting?.catch(() => {});
        say({ type: 'stopped', summary: f.summary() });
      })().catch((err: Error) => say({ type: 'error', message: err.message }));
    }
  } catch (err) {
    say({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => {});
