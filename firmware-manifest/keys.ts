// Ed25519 signing keys for pin bundles, docs/architecture.md §3 (and §4: trusted keys in a firmware manifest
// are SPKI PEM or raw base64). Raw forms are what the wire and devices use: a 32-byte public key,
// a 32-byte private seed (RFC 8032 §5.1.5), and kid = the first 8 bytes of SHA-256(raw public key).
// Pure: node:crypto only, no I/O. Error messages never carry key material.
//
//   const { seed, publicKey, privatePem } = generateKeyPair();
//   privateKeyFromPem(privatePem);        // === seed
//   kid(publicKey);                       // 8 bytes, the COSE kid (label 4)
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export const KEY_BYTES = 32;
export const KID_BYTES = 8;

export type KeyErrorCode = 'PW_KEY_FORMAT' | 'PW_KEY_TYPE' | 'PW_KEY_LENGTH' | 'PW_KEY_ENCRYPTED' | 'PW_KEY_PRIVATE';

/** A key that is not an (unencrypted) Ed25519 key in a form pinwave reads; `code` is stable. */
export class KeyFormatError extends Error {
  constructor(readonly code: KeyErrorCode, message: string) {
    super(message);
    this.name = 'KeyFormatError';
  }
}

export interface Ed25519KeyPair {
  /** the 32-byte private seed */
  seed: Uint8Array;
  /** the 32-byte raw public key */
  publicKey: Uint8Array;
  /** PKCS#8 PEM of the private key, as `openssl genpkey -algorithm ed25519` writes it */
  privatePem: string;
  /** SPKI PEM of the public key */
  publicPem: string;
}

// Fixed DER prefixes of Ed25519 keys (RFC 8410 §4, §7): the raw 32 bytes follow them.
const SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The raw public key of an SPKI PEM, or of a PKCS#8 private key PEM (its public part is derived). */
export function publicKeyFromPem(pem: string): Uint8Array {
  return rawPublic(decode(pem, createPublicKey, 'an SPKI public key or PKCS#8 private key PEM'));
}

/** The 32-byte seed of an unencrypted PKCS#8 private key PEM (`-----BEGIN PRIVATE KEY-----`). */
export function privateKeyFromPem(pem: string): Uint8Array {
  const key = decode(pem, createPrivateKey, 'a PKCS#8 private key PEM ("-----BEGIN PRIVATE KEY-----")');
  ed25519Only(key);
  return jwkBytes(key, 'd');
}

/**
 * A trusted signing key as a person writes it in a manifest or config: SPKI PEM, or the base64 of
 * the raw 32-byte key. A private key is refused here: it has no place in a file that is shared.
 */
export function publicKeyFromText(text: string): Uint8Array {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) {
    if (/^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(trimmed)) {
      throw new KeyFormatError('PW_KEY_PRIVATE', 'expected a public key, got a private key PEM (never share or commit it)');
    }
    return publicKeyFromPem(trimmed);
  }
  if (!STRICT_BASE64.test(trimmed)) {
    throw new KeyFormatError(
      'PW_KEY_FORMAT',
      'expected an SPKI PEM or standard padded base64 of a raw 32-byte Ed25519 public key, got neither',
    );
  }
  return checkLength(new Uint8Array(Buffer.from(trimmed, 'base64')), 'after base64 decoding');
}

/** kid = first 8 bytes of SHA-256(raw 32-byte public key), docs/architecture.md §3. */
export function kid(publicKey: Uint8Array): Uint8Array {
  checkLength(publicKey, 'of raw public key');
  return new Uint8Array(createHash('sha256').update(publicKey).digest().subarray(0, KID_BYTES));
}

/** SPKI PEM of a raw 32-byte public key. */
export function spkiPemFromRaw(raw: Uint8Array): string {
  checkLength(raw, 'of raw public key');
  const der = Buffer.concat([SPKI_PREFIX, raw]);
  return createPublicKey({ key: der, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }) as string;
}

/** PKCS#8 PEM of a 32-byte private seed. */
export function pkcs8PemFromSeed(seed: Uint8Array): string {
  return keyPairOf(privateFromSeed(seed)).privatePem;
}

/** The whole key pair of a 32-byte seed (deterministic: for tests and simulated devices). */
export function keyPairFromSeed(seed: Uint8Array): Ed25519KeyPair {
  return keyPairOf(privateFromSeed(seed));
}

/** A fresh key pair from the operating system's randomness. */
export function generateKeyPair(): Ed25519KeyPair {
  return keyPairOf(generateKeyPairSync('ed25519').privateKey);
}

function privateFromSeed(seed: Uint8Array): KeyObject {
  checkLength(seed, 'of private seed');
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function keyPairOf(privateKey: KeyObject): Ed25519KeyPair {
  const publicKey = createPublicKey(privateKey);
  return {
    seed: jwkBytes(privateKey, 'd'),
    publicKey: jwkBytes(publicKey, 'x'),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

function rawPublic(key: KeyObject): Uint8Array {
  ed25519Only(key);
  return jwkBytes(key, 'x'); // createPublicKey already took the public part of a private key
}

// PKCS#8 `ENCRYPTED PRIVATE KEY`, or a legacy PEM with `Proc-Type: 4,ENCRYPTED`.
const ENCRYPTED_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/;

function decode(pem: string, read: (pem: string) => KeyObject, expected: string): KeyObject {
  if (ENCRYPTED_PEM.test(pem)) {
    throw new KeyFormatError('PW_KEY_ENCRYPTED', `expected ${expected}, got an encrypted key (decrypt it first)`);
  }
  try {
    return read(pem);
  } catch (err) {
    // Node's error code names what failed, never the bytes: safe to pass on.
    const { code } = err as NodeJS.ErrnoException;
    throw new KeyFormatError('PW_KEY_FORMAT', `expected ${expected}, could not decode it (${code})`);
  }
}

function ed25519Only(key: KeyObject): void {
  const type = String(key.asymmetricKeyType);
  if (type === 'ed25519') return;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  throw new KeyFormatError('PW_KEY_TYPE', `expected an Ed25519 key, got ${type}${curve ? ` (${curve})` : ''}`);
}

function jwkBytes(key: KeyObject, field: 'd' | 'x'): Uint8Array {
  const value = key.export({ format: 'jwk' })[field];
  return checkLength(new Uint8Array(Buffer.from(value as string, 'base64url')), `of ${field === 'd' ? 'private seed' : 'raw public key'}`);
}

function checkLength(bytes: Uint8Array, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== KEY_BYTES) {
    const got = bytes instanceof Uint8Array ? `${bytes.length}` : typeof bytes;
    throw new KeyFormatError('PW_KEY_LENGTH', `expected ${KEY_BYTES} bytes ${what}, got ${got}`);
  }
  return bytes;
}
