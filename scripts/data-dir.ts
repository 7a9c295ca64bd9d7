// Whether a folder holds an embedded store (docs/storage.md: its journal and snapshot files, or the
// single file of the release before): what a command that only reads a data dir checks first, so a
// mistyped path is named instead of opened (opening one creates an empty store there).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LEGACY_FILENAME } from '../gateway/store/upgrade.ts';

export function isDataDir(dir: string): boolean {
  if (existsSync(join(dir, LEGACY_FILENAME))) return true;
  try {
    return readdirSync(dir).some((f) => /^(journal|snapshot)-\d+\.(log|json)$/.test(f));
  } catch {
    return false;
  }
}

/** What a command says of a path that is no data dir. */
export const notADataDir = (flag: string, dir: string) => `${flag} ${dir}: no pinwave store there (no journal, snapshot or ${LEGACY_FILENAME}: is it the gateway's --data dir?)`;
