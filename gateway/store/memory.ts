// The fleet store without a disk, for tests of the parts above it (engine adapters, HTTP routes):
// the lowdb store over an adapter that keeps the serialised JSON in memory. Keeping text, not
// lowdb's Memory adapter (which keeps the live object), makes a "restart" honest: a second store
// on the same MemoryFile reads back only what was written, as copies, like a reload from disk.
//
// Usage:
//   const file = new MemoryFile();
//   const a = createMemoryStore({ file }); await a.load(); ...; await a.close();
//   const b = createMemoryStore({ file }); await b.load();   // sees what a wrote
import type { Adapter } from 'lowdb';
import { LowdbStore, type StoreFile } from './lowdb.ts';

export class MemoryFile implements Adapter<StoreFile> {
  #text: string | null = null;

  /** The JSON last written, or null; tests may set it to simulate a file on disk. */
  get text(): string | null {
    return this.#text;
  }
  set text(value: string | null) {
    this.#text = value;
  }

  async read(): Promise<StoreFile | null> {
    return this.#text === null ? null : (JSON.parse(this.#text) as StoreFile);
  }

  write(data: StoreFile): Promise<void> {
    // Serialised inside the call, as lowdb's DataFile does: the store relies on it.
    this.#text = JSON.stringify(data);
    return Promise.resolve();
  }
}

export interface MemoryStoreOptions {
  /** Share one between instances to simulate a restart; default a fresh one. */
  file?: MemoryFile;
  /** Coalescing window in ms, default 0: writes are cheap here and tests should not wait. */
  windowMs?: number;
}

export function createMemoryStore(options: MemoryStoreOptions = {}): LowdbStore {
  return new LowdbStore({ adapter: options.file ?? new MemoryFile(), name: 'memory', windowMs: options.windowMs ?? 0 });
}
