// The files a command writes for the operator (`bundle create --out`, `manifest create --out`,
// `keygen --out`, `broker mosquitto-config --out`): each appears whole or not at all (a temp file
// beside it, fsynced, then renamed over the name, and the folder fsynced), so a crash or a full disk
// never leaves half a bundle or half a key where the old one was. An existing file is replaced only
// with --force, and a folder given where a file is meant is named as such, not reported as EISDIR.
//
//   await writeOutFile(path, bytes, { flag: 'out', force: values.force });  // Error naming --out otherwise
import { randomBytes } from 'node:crypto';
import { link, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface OutFileOptions {
  /** the flag that named the path, for the error messages (`out`: "--out FILE ...") */
  flag: string;
  /** replace a file that is there; default false: refuse, naming the file and --force */
  force?: boolean;
  /** the new file's mode (less the umask); default 0644. Keys and credentials: 0600 */
  mode?: number;
}

/** What link(2) says on a filesystem with no hard links: FAT and exFAT (a USB stick carrying a bundle off an offline signer), some network and FUSE mounts. */
export const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** Writes `data` to `path` whole (temp file, fsync, rename); refuses a folder, and an existing file unless `force`. */
export async function writeOutFile(path: string, data: string | Uint8Array, o: OutFileOptions): Promise<void> {
  await checkOutFile(path, o);
  const tmp = await writeTemp(path, data, o.mode ?? 0o644).catch(failed(path, o));
  try {
    await place(tmp, path, o);
  } finally {
    await rm(tmp, { force: true });
  }
  await syncDir(dirname(path));
}

/** An I/O error as a line naming the flag and the path. */
export const failed = (path: string, o: OutFileOptions) => (err: NodeJS.ErrnoException): never => {
  throw new Error(`--${o.flag} ${path}: ${err.code ?? err.message}`);
};

/**
 * Moves a temp file to its name: over an old file with --force; else link(), which fails on a name
 * that appeared meanwhile (where rename() would replace it); where there are no hard links (FAT),
 * looked at again, then renamed: a file made between the two is replaced.
 */
export async function place(tmp: string, path: string, o: OutFileOptions): Promise<void> {
  if (o.force) return rename(tmp, path).catch(failed(path, o));
  await link(tmp, path).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') throw new Error(exists(`--${o.flag} ${path}`));
    if (!NO_HARD_LINKS.has(err.code ?? '')) failed(path, o)(err);
    await checkOutFile(path, o);
    await rename(tmp, path).catch(failed(path, o));
  });
}

/** Throws what writeOutFile would refuse `path` for (a folder, a file there without `force`, no folder to put it in): a command writing two files checks both first. */
export async function checkOutFile(path: string, o: OutFileOptions): Promise<void> {
  const named = `--${o.flag} ${path}`;
  const there = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw new Error(`${named}: ${err.code ?? err.message}`);
  });
  if (there?.isDirectory()) throw new Error(`${named} is a directory: give the path of a file to write`);
  if (there && !o.force) throw new Error(exists(named));
  const parent = await stat(dirname(path)).catch(() => null);
  if (!parent?.isDirectory()) throw new Error(`${named}: the folder ${dirname(path)} does not exist`);
}

const exists = (named: string) => `${named} already exists: pass --force to replace it`;

/** Replaces `path` whole with `data` (temp file, fsync, rename): a crash leaves the old file or the new one. The caller fsyncs the folder. */
export async function replaceFile(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const tmp = await writeTemp(path, data, mode);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** `data` in a new file beside `path`, created with `mode` and fsynced; its name. */
export async function writeTemp(path: string, data: string | Uint8Array, mode: number): Promise<string> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.datasync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  return tmp;
}

/** Makes the names in `dir` durable (a rename is not, until its folder is synced). */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
