// One process per data dir (docs/storage.md): DIR/pinwave.lock names the holder by pid and by the
// kernel's start time of that process (/proc/PID/stat field 22, in clock ticks since boot), so
// a lock left by a process killed with SIGKILL is recognised as stale even once its pid has been
// reused, and never blocks a restart. Two processes on one dir would each overwrite the other's
// journal: the second is refused with the holder's pid.
//
//   const lock = await DataDirLock.acquire('/var/lib/pinwave');   // StoreError PW_STORE_LOCKED if held
//   ...; await lock.release();
import { readFileSync } from 'node:fs';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { StoreError } from './types.ts';

export const LOCK_FILENAME = 'pinwave.lock';

interface Holder {
  pid: number;
  /** field 22 of /proc/PID/stat, or null where there is no /proc */
  start: string | null;
  host: string;
  since: number;
}

/** The start time of a process as the kernel counts it, or null when it is not running (or there is no /proc). */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // proc(5): "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so count from the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 is the 20th after comm
  } catch {
    return null;
  }
}

function alive(h: Holder): boolean {
  if (h.host !== hostname()) return true; // another machine's process: cannot tell, so never break it
  const start = processStart(h.pid);
  if (start !== null) return h.start === null || start === h.start;
  try {
    process.kill(h.pid, 0);
    return h.start === null; // no /proc entry but a live pid: only trust it if the lock had no start time
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DataDirLock {
  readonly path: string;
  readonly #text: string;
  #released = false;

  private constructor(path: string, text: string) {
    this.path = path;
    this.#text = text;
  }

  /** Takes the lock of `dir` (which must exist), breaking a stale one; refuses a live holder. */
  static async acquire(dir: string): Promise<DataDirLock> {
    const path = join(dir, LOCK_FILENAME);
    const breaker = `${path}.break`;
    const me: Holder = { pid: process.pid, start: processStart(process.pid), host: hostname(), since: Date.now() };
    const text = JSON.stringify(me) + '\n';
    const create = async (): Promise<DataDirLock | null> => {
      let fh;
      try {
        fh = await open(path, 'wx', 0o600);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return null;
        throw new StoreError('PW_STORE_UNWRITABLE', `store ${dir}: cannot create the lock ${path}: ${code ?? ''} ${(err as Error).message}`, { cause: err });
      }
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return new DataDirLock(path, text);
    };
    for (let attempt = 0; attempt < 50; attempt++) {
      const mine = await create();
      if (mine !== null) return mine;
      let seen: string;
      try {
        seen = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
        throw new StoreError('PW_STORE_UNWRITABLE', `store ${dir}: cannot read the lock ${path}: ${(err as Error).message}`, { cause: err });
      }
      const holder = parseHolder(seen);
      if (holder !== null && alive(holder)) {
        throw new StoreError(
          'PW_STORE_LOCKED',
          `store ${dir} is in use by pid ${holder.pid}${holder.host !== hostname() ? ` on ${holder.host}` : ''} since ${new Date(holder.since).toISOString()} (${path}); one gateway per data dir` +
            // docs/storage.md: a lock from another host is never broken here (that host may run it).
            (holder.host !== hostname() ? `; this host cannot see whether it still runs there: if no gateway runs on ${holder.host} (a container recreated under a new name), remove ${path}` : ''),
        );
      }
      // An unreadable lock is one being written right now, or one a crash left half written: it is
      // broken only once it is old enough not to be the former.
      if (holder === null) {
        const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => Infinity);
        if (age < 10_000) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
      }
      // Stale: break it under a lock of its own, and take ours before letting that go. Two starters
      // that both saw the stale lock would otherwise both remove it, one of them the other's new
      // lock, and both run on the dir. Only the breaker's holder removes a lock that is not its own,
      // and only the stale one it has just read again; a breaker a crash left is old, and removed.
      let b;
      try {
        b = await open(breaker, 'wx', 0o600);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') throw new StoreError('PW_STORE_UNWRITABLE', `store ${dir}: cannot create ${breaker}: ${code ?? ''} ${(err as Error).message}`, { cause: err });
        const age = await stat(breaker).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age >= 10_000) await unlink(breaker).catch(() => undefined);
        else await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      try {
        const again = await readFile(path, 'utf8').catch(() => null);
        if (again === seen) await unlink(path).catch(() => undefined);
        if (again === seen || again === null) {
          const taken = await create();
          if (taken !== null) return taken;
        }
      } finally {
        await b.close();
        await unlink(breaker).catch(() => undefined);
      }
    }
    throw new StoreError('PW_STORE_LOCKED', `store ${dir}: could not take the lock ${path} (another process keeps taking it)`);
  }

  /** Removes the lock file if it is still ours. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const now = await readFile(this.path, 'utf8').catch(() => null);
    if (now === this.#text) await unlink(this.path).catch(() => undefined);
  }
}

function parseHolder(text: string): Holder | null {
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isSafeInteger(h.pid) && typeof h.host === 'string' && typeof h.since === 'number' ? h : null;
  } catch {
    return null;
  }
}
