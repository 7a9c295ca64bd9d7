// Where an earlier release kept pushed firmware manifests (docs/architecture.md §4): `manifests.json`
// in the data dir, mode 0600. Pushes now go to the store (manifests.ts); this file is read at start
// while the store holds none, and the next push carries its entries into the store. It was written
// whole on each push: temp file, fsync, rename, directory fsync. Each entry is validated again when
// read: a file edited by hand cannot feed pre-flight or a rollback a manifest the API would have refused.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatManifestErrors, validateManifest } from '../firmware-manifest/index.ts';
import type { KnownManifest } from './manifest-registry.ts';

export const MANIFESTS_FILENAME = 'manifests.json';

interface FileShape {
  version: 1;
  manifests: Array<{ manifest: unknown; pushedBy?: string; pushedAt?: number }>;
}

export class ManifestFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestFileError';
  }
}

/** The pushed manifests in `dir`; none when the file does not exist. Throws ManifestFileError naming the entry at fault. */
export function readManifestFile(dir: string): KnownManifest[] {
  const file = join(dir, MANIFESTS_FILENAME);
  if (!existsSync(file)) return [];
  let data: FileShape;
  try {
    data = JSON.parse(readFileSync(file, 'utf8')) as FileShape;
  } catch (err) {
    throw new ManifestFileError(`${file}: not JSON: ${(err as Error).message}`);
  }
  if (data?.version !== 1 || !Array.isArray(data.manifests)) throw new ManifestFileError(`${file}: expected {"version": 1, "manifests": [...]}`);
  return data.manifests.map((e, i) => {
    const r = validateManifest(e?.manifest);
    if (!r.ok) throw new ManifestFileError(`${file}: manifests[${i}] is not a valid firmware manifest: ${formatManifestErrors(r.errors).replace(/\n/g, '; ')}`);
    return { manifest: r.manifest, source: 'pushed' as const, ...(typeof e.pushedBy === 'string' && { pushedBy: e.pushedBy }), ...(typeof e.pushedAt === 'number' && { pushedAt: e.pushedAt }) };
  });
}

/** Replaces the file with these manifests, durably (see the top of this file). */
export function writeManifestFile(dir: string, entries: readonly KnownManifest[]): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, MANIFESTS_FILENAME);
  const tmp = `${file}.${process.pid}.tmp`;
  const body: FileShape = { version: 1, manifests: entries.map((e) => ({ manifest: e.manifest, ...(e.pushedBy !== undefined && { pushedBy: e.pushedBy }), ...(e.pushedAt !== undefined && { pushedAt: e.pushedAt }) })) };
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(body, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const d = openSync(dirname(file), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}
