// Where a simulated device keeps its trust state between restarts: in memory, or one JSON file per
// device in a directory, written atomically (temp file + rename) as flash would be.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrustState } from '../firmware-manifest/index.ts';

export interface StateStore {
  load(id: string): TrustState | null;
  save(id: string, state: TrustState): void;
}

export class MemoryStateStore implements StateStore {
  readonly #states = new Map<string, string>();
  load(id: string): TrustState | null {
    const s = this.#states.get(id);
    return s === undefined ? null : (JSON.parse(s) as TrustState);
  }
  save(id: string, state: TrustState): void {
    // Stored as text, so a "restarted" device gets a copy, not the object it was holding.
    this.#states.set(id, JSON.stringify(state));
  }
}

export class DirStateStore implements StateStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  load(id: string): TrustState | null {
    try {
      return JSON.parse(readFileSync(join(this.dir, `${id}.json`), 'utf8')) as TrustState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new Error(`device ${id}: cannot read its trust state: ${(err as Error).message}`);
    }
  }
  save(id: string, state: TrustState): void {
    const file = join(this.dir, `${id}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify(state));
    renameSync(`${file}.tmp`, file);
  }
}
