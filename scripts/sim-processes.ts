// `pinwave sim --processes N` (docs/architecture.md §8): one fleet across N worker processes, each
// running the shard of it Fleet's `shard` option picks (device i in process i mod N), so a fleet
// can pass what one process may hold (here 20,000 open files) and use more than one core. The
// processes are forks of scripts/sim-worker; each sends its summary every `reportMs`, and
// summary() is their sum (device-sim/latency.ts mergeSummaries), counts and latency histograms
// alike: one fleet to whoever reads it.
//
//   const fleet = await ProcessFleet.spawn(spec, 4);   // resolves once every worker has built its shard
//   await fleet.start();                               // every device of every shard has made its first connect
//   fleet.summary();                                   // the whole fleet's
//   await fleet.stop();                                // clean DISCONNECTs; the workers exit
import { fork, type ChildProcess } from 'node:child_process';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mergeSummaries, type FleetOptions, type FleetSummary } from '../device-sim/index.ts';

/** What a worker builds its Fleet from: FleetOptions that survive IPC (no functions), without its shard. */
export type WorkerSpec = Omit<FleetOptions, 'url' | 'shard' | 'store' | 'now' | 'timers' | 'onOutcome'> & { url: string };

/** parent → worker */
export type ToWorker = { cmd: 'build'; spec: WorkerSpec; shard: { index: number; count: number }; reportMs: number } | { cmd: 'start' } | { cmd: 'stop' };
/** worker → parent */
export type FromWorker = { type: 'summary'; summary: FleetSummary } | { type: 'built' } | { type: 'started' } | { type: 'stopped'; summary: FleetSummary } | { type: 'error'; message: string };

interface Child {
  process: ChildProcess;
  summary: FleetSummary | null;
  waiting: Map<string, { resolve: () => void; reject: (err: Error) => void }>;
  failed: Error | null;
}

const WORKER_START_MS = 60_000;

export class ProcessFleet {
  readonly #children: Child[];

  private constructor(children: Child[]) {
    this.#children = children;
  }

  /** Forks `count` workers and has each build its shard of `spec`; rejects, with every worker killed, if one fails. */
  static async spawn(spec: WorkerSpec, count: number, o: { reportMs?: number } = {}): Promise<ProcessFleet> {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`expected a whole number of processes from 1, got ${count}`);
    const here = fileURLToPath(import.meta.url);
    const entry = join(here, '..', `sim-worker${extname(here)}`);
    const children: Child[] = [];
    for (let index = 0; index < count; index++) {
      // fork passes this process's execArgv on (a TypeScript loader included); the parent coordinates
      // a Ctrl-C, so the workers are told to stop rather than signalled by the terminal.
      const child = fork(entry, [], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true });
      const c: Child = { process: child, summary: null, waiting: new Map(), failed: null };
      child.on('message', (m: FromWorker) => {
        if (m.type === 'summary' || m.type === 'stopped') c.summary = m.summary;
        if (m.type === 'error') return fail(c, new Error(`sim worker ${index}: ${m.message}`));
        const w = c.waiting.get(m.type);
        c.waiting.delete(m.type);
        w?.resolve();
      });
      child.on('exit', (code, signal) => fail(c, new Error(`sim worker ${index} exited (${signal ?? code})`)));
      child.on('error', (err) => fail(c, err));
      children.push(c);
    }
    const fleet = new ProcessFleet(children);
    try {
      await fleet.#all('built', (c, index) => send(c, { cmd: 'build', spec, shard: { index, count }, reportMs: o.reportMs ?? 250 }), WORKER_START_MS);
    } catch (err) {
      fleet.kill();
      throw err;
    }
    return fleet;
  }

  /** Resolves once every worker's devices have each made a first connect. */
  start(): Promise<void> {
    return this.#all('started', (c) => send(c, { cmd: 'start' }));
  }

  /** Every worker stops its devices cleanly and sends its last summary; then the workers exit. */
  async stop(): Promise<void> {
    try {
      await this.#all('stopped', (c) => send(c, { cmd: 'stop' }));
    } finally {
      for (const c of this.#children) if (c.process.connected) c.process.disconnect();
    }
  }

  /** The whole fleet's summary, from each worker's latest. */
  summary(): FleetSummary {
    return mergeSummaries(this.#children.map((c) => c.summary!));
  }

  /** SIGKILL to every worker still running. */
  kill(): void {
    for (const c of this.#children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
  }

  #all(type: FromWorker['type'], ask: (c: Child, index: number) => void, timeoutMs?: number): Promise<void> {
    return Promise.all(
      this.#children.map(
        (c, index) =>
          new Promise<void>((resolve, reject) => {
            if (c.failed) return reject(c.failed);
            const timer = timeoutMs === undefined ? null : setTimeout(() => reject(new Error(`sim worker ${index}: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
            c.waiting.set(type, {
              resolve: () => (timer && clearTimeout(timer), resolve()),
              reject: (err) => (timer && clearTimeout(timer), reject(err)),
            });
            ask(c, index);
          }),
      ),
    ).then(() => undefined);
  }
}

function send(c: Child, m: ToWorker): void {
  if (c.process.connected) c.process.send(m);
}

function fail(c: Child, err: Error): void {
  // after a clean stop the exit is expected
  if (c.failed || (c.summary && !c.process.connected && c.waiting.size === 0)) return;
  c.failed = err;
  for (const w of c.waiting.values()) w.reject(err);
  c.waiting.clear();
}
