// Where a simulated device keeps what firmware keeps in flash between restarts: its trust state and
// its telemetry report counter. In memory, or one JSON file per device in a directory, written as
// docs/pin-safety.md ("What to persist, when") tells firmware on a file system to: a temp file,
// fsync, rename over the old one, fsync of the directory. Without the first fsync a power cut after
// the rename can leave the new name on an empty or torn file (the data not yet on disk); without the
// second, the rename itself may be lost and the old record come back after an ack was sent.
//
// A device without a health check keeps its trust state alone. A health-checked one keeps one
// record (a DeviceTrust, docs/pin-safety.md): the active state, an open provisional window with the
// previous state, and the last window's outcome, written whole so a power cut leaves one or the other.
// Either form loads as either: load() gives the active state, loadTrust() the whole record.
import * as fs from 'node:fs';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { trustOf, type DeviceTrust, type TrustState } from '../firmware-manifest/index.ts';

export interface StateStore {
  /** the active trust state, from either form */
  load(id: string): TrustState | null;
  save(id: string, state: TrustState): void;
  /** the whole record of a health-checked device (a bare trust state loads with no window) */
  loadTrust(id: string): DeviceTrust | null;
  saveTrust(id: string, trust: DeviceTrust): void;
  /** the last telemetry report counter the device used, or null (optional: a device without one starts from its boot time) */
  loadCounter?(id: string): number | null;
  saveCounter?(id: string, counter: number): void;
}

export class MemoryStateStore implements StateStore {
  // Trust states are never changed in place, only replaced (firmware-manifest/trust-state.ts), so
  // the object saved is kept as it is; a "restarted" device gets a copy of it when it loads, not the
  // object it was holding. (Saving is on every bundle of every device, loading once per device.)
  readonly #states = new Map<string, TrustState | DeviceTrust>();
  readonly #counters = new Map<string, number>();
  load(id: string): TrustState | null {
    return this.loadTrust(id)?.active ?? null;
  }
  save(id: string, state: TrustState): void {
    this.#states.set(id, state);
  }
  loadTrust(id: string): DeviceTrust | null {
    const s = this.#states.get(id);
    return s === undefined ? null : recordOf(JSON.parse(JSON.stringify(s)), `device ${id}`);
  }
  saveTrust(id: string, trust: DeviceTrust): void {
    this.#states.set(id, trust);
  }
  loadCounter(id: string): number | null {
    return this.#counters.get(id) ?? null;
  }
  saveCounter(id: string, counter: number): void {
    this.#counters.set(id, counter);
  }
}

/** The file operations a DirStateStore writes through; replaceable in tests to watch their order. */
export type StateFileIo = Pick<typeof fs, 'openSync' | 'writeSync' | 'fsyncSync' | 'closeSync' | 'renameSync' | 'unlinkSync'>;

export class DirStateStore implements StateStore {
  readonly #io: StateFileIo;
  constructor(
    readonly dir: string,
    io: StateFileIo = fs,
  ) {
    this.#io = io;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  load(id: string): TrustState | null {
    return this.loadTrust(id)?.active ?? null;
  }
  save(id: string, state: TrustState): void {
    this.#write(`${id}.json`, state);
  }
  loadTrust(id: string): DeviceTrust | null {
    const v = this.#read<unknown>(`${id}.json`, id, 'trust state');
    return v === null ? null : recordOf(v, `device ${id}: ${join(this.dir, `${id}.json`)}`);
  }
  saveTrust(id: string, trust: DeviceTrust): void {
    this.#write(`${id}.json`, trust);
  }
  loadCounter(id: string): number | null {
    // '~' is not a device-id character: no device's state file can be another's counter file.
    return this.#read<{ counter: number }>(`${id}~counter.json`, id, 'report counter')?.counter ?? null;
  }
  saveCounter(id: string, counter: number): void {
    this.#write(`${id}~counter.json`, { counter });
  }
  #read<T>(name: string, id: string, what: string): T | null {
    try {
      return JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new Error(`device ${id}: cannot read its ${what}: ${(err as Error).message}`);
    }
  }
  #write(name: string, value: unknown): void {
    const io = this.#io;
    const file = join(this.dir, name);
    const tmp = `${file}.tmp`;
    const buf = Buffer.from(JSON.stringify(value), 'utf8');
    const fd = io.openSync(tmp, 'w', 0o600);
    try {
      for (let off = 0; off < buf.length; ) off += io.writeSync(fd, buf, off, buf.length - off);
      io.fsyncSync(fd); // the new record's bytes on disk before its name replaces the old one's
    } catch (err) {
      io.closeSync(fd);
      try {
        io.unlinkSync(tmp);
      } catch {
        // already gone
      }
      throw err; // the old record stands, whole
    }
    io.closeSync(fd);
    io.renameSync(tmp, file);
    const dirFd = io.openSync(this.dir, 'r');
    try {
      io.fsyncSync(dirFd); // the rename itself on disk before the ack it comes before
    } finally {
      io.closeSync(dirFd);
    }
  }
}

/** A stored record in either form, checked enough that a corrupt one is named rather than half-used. */
function recordOf(v: unknown, where: string): DeviceTrust {
  const obj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  const isState = (x: unknown): x is TrustState => obj(x) && typeof x.group === 'string' && typeof x.seq === 'number' && Array.isArray(x.endpoints) && Array.isArray(x.trustedKeys);
  if (isState(v)) return trustOf(v);
  if (obj(v) && isState(v.active) && (v.window === null || (obj(v.window) && isState(v.window.previous) && Array.isArray(v.window.checks))) && (v.outcome === null || obj(v.outcome))) return v as unknown as DeviceTrust;
  throw new Error(`${where}: the stored trust state is neither a trust state nor a health-checked device's record`);
}
