// Device tokens (docs/architecture.md §5): the MQTT password a device presents, stored by the gateway only
// as a hash, so a leaked store does not let anyone connect as a device.
//
// A token is 32 random bytes (256 bits) from the OS CSPRNG, base64url (43 characters). At that
// entropy nothing can be guessed offline from a leaked hash, so a slow password KDF buys nothing:
// one SHA-256 over a domain-separation prefix plus the token is as strong, and it hashes 10,000
// tokens in about 50 ms (test/gateway/credentials.test.ts prints the figure), where scrypt at
// interactive cost would take minutes and make every CONNECT cost tens of milliseconds of CPU.
// The prefix keeps these digests from equalling SHA-256 of the same string used anywhere else,
// and names the scheme so it can be replaced.
//
//   const token = newToken();            // give to the device once
//   const stored = hashToken(token);     // 'sha256:<base64url>', keep this
//   tokenMatches(token, stored);         // true, in time independent of where they differ
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOKEN_BYTES = 32;
/** Prefix of every stored token hash; a future scheme gets a different one. */
export const TOKEN_HASH_PREFIX = 'sha256:';

const DOMAIN = 'pinwave/device-token/v1\0';
const DIGEST_BYTES = 32;
// Compared against when the stored hash is missing or malformed, so an unknown device id costs
// the same as a wrong token and response time does not tell which ids exist.
const DUMMY_DIGEST = Buffer.alloc(DIGEST_BYTES);

/** A fresh device token: 32 random bytes, base64url without padding. */
export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/** The form of `token` to store: `sha256:` + base64url of SHA-256("pinwave/device-token/v1\0" + token). */
export function hashToken(token: string): string {
  return TOKEN_HASH_PREFIX + tokenDigest(token).toString('base64url');
}

/**
 * True when `token` hashes to `storedHash`. The digests are compared with `timingSafeEqual`; a
 * missing or malformed `storedHash` is compared against a dummy digest and then reported false,
 * so no branch returns early on what the caller sent.
 */
export function tokenMatches(token: string, storedHash: string | undefined | null): boolean {
  const candidate = tokenDigest(token);
  const stored = storedDigest(storedHash);
  const equal = timingSafeEqual(candidate, stored ?? DUMMY_DIGEST);
  return equal && stored !== null;
}

/**
 * Constant-time string equality for secrets such as operator API tokens. Both sides are hashed
 * first, so the comparison runs over two equal-length digests and leaks neither the length of the
 * secret nor the position of the first difference.
 */
export function constantTimeEqualStrings(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db);
}

function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(DOMAIN, 'utf8').update(token, 'utf8').digest();
}

function storedDigest(storedHash: string | undefined | null): Buffer | null {
  if (typeof storedHash !== 'string' || !storedHash.startsWith(TOKEN_HASH_PREFIX)) return null;
  const digest = Buffer.from(storedHash.slice(TOKEN_HASH_PREFIX.length), 'base64url');
  return digest.length === DIGEST_BYTES ? digest : null;
}
