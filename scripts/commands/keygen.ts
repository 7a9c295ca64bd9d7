// `pinwave keygen --out DIR`: a fresh Ed25519 bundle-signing key pair (docs/architecture.md §3).
// DIR/signing.key is PKCS#8 PEM created 0600 (born private: no window in which another user can read
// it), DIR/signing.pub is SPKI PEM, 0644 less the umask; the two land together or not at all
// (scripts/out-pair.ts): never a new private key beside an old public one. An existing key is never replaced without --force: losing a signing key that
// devices trust means those devices take no more bundles from you.
import { mkdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse, required, type Io } from '../args.ts';
import { generateKeyPair, kid } from '../../firmware-manifest/keys.ts';
import { writeOutPair } from '../out-pair.ts';

const USAGE = `Usage: pinwave keygen --out DIR [--force]

Make an Ed25519 key pair for signing pin bundles.

  --out DIR   directory to write signing.key (private, PKCS#8 PEM, mode 0600) and
              signing.pub (public, SPKI PEM) to; created if missing
  --force     replace an existing key pair in DIR (the old private key is lost)
  -h, --help  print this help`;

export async function main(args: string[], io: Io): Promise<number> {
  const { values } = parse(
    args,
    {
      out: { type: 'string' },
      force: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    USAGE,
  );
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const dir = required(values.out, 'out', USAGE);
  const keyPath = join(dir, 'signing.key');
  const pubPath = join(dir, 'signing.pub');

  if ((await stat(dir).catch(() => null))?.isDirectory() === false) {
    io.err(`pinwave keygen: --out ${dir} is a file: give a directory (created if missing) for signing.key and signing.pub`);
    return 1;
  }
  const existing = [keyPath, pubPath].filter((p) => existsSync(p));
  if (existing.length > 0 && !values.force) {
    io.err(`pinwave keygen: ${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; ` +
      'pass --force to replace the key pair (the old private key is lost)');
    return 1;
  }

  await mkdir(dir, { recursive: true });
  const pair = generateKeyPair();
  // New files renamed over the old ones: an old file's mode never passes to the new key.
  await writeOutPair([{ path: keyPath, data: pair.privatePem, mode: 0o600 }, { path: pubPath, data: pair.publicPem, mode: 0o644 }], { flag: 'out', force: values.force });

  io.out(`kid ${Buffer.from(kid(pair.publicKey)).toString('hex')}`);
  io.out(`private key ${keyPath} (keep it secret)`);
  io.out(`public key  ${pubPath}`);
  return 0;
}
