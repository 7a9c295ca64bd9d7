// Where a simulated device keeps what firmware keeps in flash between restarts: its trust state and
// its telemetry report counter. In memory, or one JSON file per device in a directory, written
// atomically (temp file + rename) as flash would be.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrustState } from '../firmware-manifest/index.ts';

export interface StateStore {
  load(id: string): TrustState | null;
  save(id: string, state: TrustState): void;
  /** the last telemetry report counter the device used, or null (optional: a device without one starts from its boot time) */
  loadCounter?(id: string): number | null;
  saveCounter?(id: string, counter: number): void;
}

export class MemoryStateStore implements StateStore {
  readonly #states = new Map<string, string>();
  readonly #counters = new Map<string, number>();
  load(id: string): TrustState | null {
    const s = this.#states.get(id);
    return s === undefined ? null : (JSON.parse(s) as TrustState);
  }
  save(id: string, state: TrustState): void {
    // Stored as text, so a "restarted" device gets a copy, not the object it was holding.
    this.#states.set(id, JSON.stringify(state));
  }
  loadCounter(id: string): number | null {
    return this.#counters.get(id) ?? null;
  }
  saveCounter(id: string, counter: number): void {
    this.#counters.set(id, counter);
  }
}

export class DirStateStore implements StateStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  load(id: string): TrustState | null {
    return this.#read<TrustState>(`${id}.json`, id, 'trust state');
  }
  save(id: string, state: TrustState): void {
    this.#write(`${id}.json`, state);
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
    const file = join(this.dir, name);
    writeFileSync(`${file}.tmp`, JSON.stringify(value));
    renameSync(`${file}.tmp`, file);
  }
}
