// Writes the conformance vectors to firmware-manifest/vectors/: one JSON file per bundle vector,
// and messages.json for the device's own messages. `npm run vectors`; the tests fail when the
// committed files differ from what this would write.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleVectors, messageVectors } from '../firmware-manifest/vectors.ts';

export function vectorFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const v of bundleVectors()) files.set(`bundle-${v.name}.json`, JSON.stringify(v, null, 2) + '\n');
  files.set('messages.json', JSON.stringify(messageVectors(), null, 2) + '\n');
  return files;
}

export function writeVectors(dir: string): number {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.json')) rmSync(join(dir, f));
  const files = vectorFiles();
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  return files.size;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/.*\//, ''))) {
  const dir = new URL('../firmware-manifest/vectors/', import.meta.url).pathname.replace('/dist/', '/');
  console.log(`wrote ${writeVectors(dir)} vector files to ${dir}`);
}
