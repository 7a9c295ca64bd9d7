// Where an earlier release kept pushed firmware manifests (docs/architecture.md §4): `manifests.json`
// in the data dir, mode 0600. Pushes now go to the store (manifests.ts); this file is read at start
// while the store holds none, and the next push carries its entries into the store. Each entry is
// validated again when read: a file edited by hand cannot feed pre-flight or a rollback a manifest
// the API would have refused. A trusted key listed twice, which the API refuses now but an earlier
// release took, is no reason to stop the start: validateManifest lets it through, and the gateway
// warns of it (Manifests.warnStored).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
