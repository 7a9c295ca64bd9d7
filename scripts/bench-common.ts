// What the benchmarks share: checking the machine can hold the connections asked for, and
// worker processes (scripts/bench-worker) driven over IPC with a timeout on every call and
// killed on the way out, whatever the way out is.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './args.ts';

/** The disk's floor: 300 appends of 512 bytes, each followed by fdatasync, in a temp dir under `dir` (where the store writes); ms. */
export async function fdatasyncFloor(dir: string): Promise<{ p50: number; p99: number }> {
  const under = mkdtempSync(join(dir, 'pinwave-bench-sync-'));
  try {
    const fh = await open(join(under, 'f'), 'w');
    const buf = Buffer.alloc(512, 1);
    const t: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      await fh.write(buf, 0, buf.length, i * 512);
      await fh.datasync();
      t.push(performance.now() - t0);
    }
    await fh.close();
    t.sort((a, b) => a - b);
    return { p50: t[150], p99: t[297] };
  } finally {
    rmSync(under, { recursive: true, force: true });
  }
}

/** CPU of each thread of this process so far, ms (Linux /proc; empty elsewhere). */
export function threadCpu(): Map<string, { name: string; ms: number }> {
  const out = new Map<string, { name: string; ms: number }>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, ms: (Number(f[11]) + Number(f[12])) * 10 });
    }
  } catch {
    // not Linux: the process's total only
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Descriptors a broker process needs beyond one per connection: listeners, the store, IPC, node itself. */
const FD_SPARE = 256;

/** The soft descriptor limit children inherit (node cannot raise it), or null if unknown. */
function fdLimit(): number | null {
  try {
    const out = execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Infinity : Number(out);
  } catch {
    return null;
  }
}

/** Local ports for outgoing connections: every client connection takes one. */
function ephemeralPorts(): number | null {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return hi - lo + 1;
  } catch {
    return null;
  }
}

/** Refuses, with what to do about it, a run of `connections` this machine cannot hold; `flag` names the option that sets it. */
export function checkLimits(connections: number, flag: string, usage: string): void {
  const limit = fdLimit();
  if (limit !== null && limit < connections + FD_SPARE) {
    throw new UsageError(
      `ulimit -n is ${limit}: a broker process holds one descriptor per connection and needs ${connections + FD_SPARE} for ${connections} devices. ` +
        `Raise it in the shell that runs the bench (ulimit -n ${connections + FD_SPARE}; node cannot raise it itself), or run ${flag} ${Math.max(0, limit - FD_SPARE)} or fewer.`,
      usage,
    );
  }
  const ports = ephemeralPorts();
  if (ports !== null && ports < connections + 1000) {
    throw new UsageError(`only ${ports} local ports (net.ipv4.ip_local_port_range) for ${connections} client connections: widen the range or run a smaller ${flag}`, usage);
  }
}

const children = new Set<ChildProcess>();

export function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}

/** Lets a child exit by itself (it does when its IPC channel closes, writing any profile), killing it if it has not within `graceMs`. */
export async function closeChild(c: ChildProcess, graceMs = 5000): Promise<void> {
  if (c.exitCode === null && c.signalCode === null) {
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    if (c.connected) c.disconnect();
    await Promise.race([exited, sleep(graceMs)]);
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.delete(c);
}

export async function closeChildren(graceMs = 2000): Promise<void> {
  await Promise.all([...children].map((c) => closeChild(c, graceMs)));
  killChildren();
}

/** Kills every worker when the bench exits or is interrupted. */
export function killChildrenOnExit(onSignal?: () => void): void {
  process.on('exit', killChildren);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killChildren();
      onSignal?.();
      process.exit(130);
    });
  }
}

/** A bench-worker process with one role, answering calls over IPC. */
export class Worker {
  #seq = 0;
  readonly #calls = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly role: string,
    readonly child: ChildProcess,
  ) {
    child.on('message', (m: { id?: number; ok?: boolean; result?: unknown; error?: string }) => {
      const call = m.id === undefined ? undefined : this.#calls.get(m.id);
      if (!call) return;
      this.#calls.delete(m.id!);
      if (m.ok) call.resolve(m.result);
      else call.reject(new Error(`${role} worker: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      for (const call of this.#calls.values()) call.reject(new Error(`${role} worker exited (${signal ?? code})`));
      this.#calls.clear();
    });
  }

  /** Forks bench-worker with `role` (the one beside this file, .js built or .ts under a loader), ready once it says so (bounded). */
  static async spawn(role: string): Promise<Worker> {
    // fork passes this process's execArgv on, a TypeScript loader included.
    const here = fileURLToPath(import.meta.url);
    const child = fork(join(here, '..', `bench-worker${extname(here)}`), [role], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(child);
    const w = new Worker(role, child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${role} worker did not start within 30 s`)), 30_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${role} worker exited with ${code} before it was ready`));
      });
    });
    return w;
  }

  call<T = any>(cmd: string, args: object = {}, timeoutMs = 60_000): Promise<T> {
    const id = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id);
        reject(new Error(`${this.role} worker: "${cmd}" got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#calls.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.send({ id, cmd, args });
    });
  }

  close(graceMs?: number): Promise<void> {
    return closeChild(this.child, graceMs);
  }

  kill(): void {
    this.child.kill('SIGKILL');
    children.delete(this.child);
  }
}
