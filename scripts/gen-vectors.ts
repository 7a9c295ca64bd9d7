// Writes the conformance vectors to firmware-manifest/vectors/ (docs/conformance-vectors.md): for each
// bundle vector its JSON and its raw bundle bytes (bundle-<name>.json, bundle-<name>.cbor, the latter
// for C harnesses), chain.json for checkChain, and messages.json for the device's own messages.
// `npm run vectors`; the tests fail when the committed files differ from what this would write.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleVectors, chainVectors, messageVectors } from '../firmware-manifest/vectors.ts';

/** A vector file's name and its content: text for JSON, bytes for a raw bundle. */
export type VectorFiles = Map<string, string | Uint8Array>;

/** What the generator owns in the vectors folder; anything else there is left alone. */
export const GENERATED = /^(bundle-[a-z0-9-]+\.(json|cbor)|chain\.json|messages\.json)$/;

const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

function bundleVectorFiles(files: VectorFiles): void {
  for (const v of bundleVectors()) {
    files.set(`bundle-${v.name}.json`, json(v));
    files.set(`bundle-${v.name}.cbor`, new Uint8Array(Buffer.from(v.bundle, 'hex')));
  }
}

function chainVectorFiles(files: VectorFiles): void {
  files.set('chain.json', json(chainVectors()));
}

function messageVectorFiles(files: VectorFiles): void {
  files.set('messages.json', json(messageVectors()));
}

export function vectorFiles(): VectorFiles {
  const files: VectorFiles = new Map();
  bundleVectorFiles(files);
  chainVectorFiles(files);
  messageVectorFiles(files);
  return files;
}

export function writeVectors(dir: string): number {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (GENERATED.test(f)) rmSync(join(dir, f));
  const files = vectorFiles();
  for (const [name, content] of files) writeFileSync(join(dir, name), content);
  return files.size;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/.*\//, ''))) {
  const dir = new URL('../firmware-manifest/vectors/', import.meta.url).pathname.replace('/dist/', '/');
  console.log(`wrote ${writeVectors(dir)} vector files to ${dir}`);
}
