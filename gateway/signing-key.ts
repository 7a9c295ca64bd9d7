// The bundle signing key on disk: a PKCS#8 PEM file (as `pinwave keygen` or
// `openssl genpkey -algorithm ed25519` writes it). The gateway refuses a key file that group or
// others may read: whoever reads it can sign pins for the whole fleet.
import { readFileSync, statSync } from 'node:fs';
import { kidOf } from '../firmware-manifest/codec.ts';
import { keyPairFromSeed, privateKeyFromPem } from '../firmware-manifest/keys.ts';

export interface SigningKey {
  seed: Uint8Array;
  publicKey: Uint8Array;
  kid: Uint8Array;
  publicPem: string;
}

export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningKeyError';
  }
}

/**
 * Read a private key file. `strictMode` (the gateway) refuses a file with any group/other
 * permission; otherwise (a CLI run by the key's owner) `onLooseMode` is told and it goes on.
 */
export function loadSigningKey(path: string, opts: { strictMode: boolean; onLooseMode?: (message: string) => void }): SigningKey {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode & 0o777;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SigningKeyError(`cannot read the signing key ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (mode & 0o077) {
    const message = `the signing key ${path} is readable by group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${path}`;
    if (opts.strictMode) throw new SigningKeyError(message);
    opts.onLooseMode?.(message);
  }
  let seed: Uint8Array;
  try {
    seed = privateKeyFromPem(text);
  } catch (err) {
    throw new SigningKeyError(`${path}: ${(err as Error).message}`);
  }
  const pair = keyPairFromSeed(seed);
  return { seed, publicKey: pair.publicKey, kid: kidOf(pair.publicKey), publicPem: pair.publicPem };
}
