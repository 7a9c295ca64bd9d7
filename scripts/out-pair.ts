// Files a command writes as one (`keygen --out`: signing.key and signing.pub): each is checked as
// writeOutFile checks it, all are written to temp files beside their names and fsynced, and only then
// moved into place. When a move fails, those already moved are put back as they were (the old file,
// or none), so a failure never leaves a new private key beside an old public key, or one without the
// other (docs/architecture.md §3).
//
//   await writeOutPair([{ path: keyPath, data: pem, mode: 0o600 }, { path: pubPath, data: pub }], { flag: 'out', force });
import { randomBytes } from 'node:crypto';
import { copyFile, link, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { checkOutFile, failed, NO_HARD_LINKS, place, syncDir, writeTemp, type OutFileOptions } from './out-file.ts';

export interface OutPart {
  path: string;
  data: string | Uint8Array;
  /** the new file's mode (less the umask); default 0644 */
  mode?: number;
}

/** Writes every part or none: checked first, then temp files, then moved in; a failed move undoes the others. */
export async function writeOutPair(parts: OutPart[], o: OutFileOptions): Promise<void> {
  for (const p of parts) await checkOutFile(p.path, o);
  const temps: string[] = [];
  const backups: Array<string | null> = [];
  const placed: number[] = [];
  try {
    for (const p of parts) temps.push(await writeTemp(p.path, p.data, p.mode ?? 0o644).catch(failed(p.path, o)));
    // With --force the old files are kept under another name until every new one is in place.
    for (const p of parts) backups.push(o.force ? await keep(p.path) : null);
    for (const [i, p] of parts.entries()) {
      await place(temps[i], p.path, o);
      placed.push(i);
    }
  } catch (err) {
    for (const i of placed) {
      const back = backups[i];
      // An old file that cannot be put back is left under its .old name, never removed.
      await (back !== null ? rename(back, parts[i].path) : rm(parts[i].path, { force: true })).catch(() => (backups[i] = null));
    }
    throw err;
  } finally {
    for (const f of [...temps, ...backups]) if (f !== null) await rm(f, { force: true });
  }
  for (const dir of new Set(parts.map((p) => dirname(p.path)))) await syncDir(dir);
}

/** A second name for the file at `path` (a hard link, or a copy where there are none), or null when there is no file. */
async function keep(path: string): Promise<string | null> {
  const backup = `${path}.${randomBytes(4).toString('hex')}.old`;
  return link(path, backup).then(
    () => backup,
    async (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      if (!NO_HARD_LINKS.has(err.code ?? '')) throw err;
      await copyFile(path, backup);
      return backup;
    },
  );
}
