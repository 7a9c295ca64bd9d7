// Device and API tokens (docs/architecture.md §7, §11): secrets the gateway stores only as hashes,
// so a leaked store or config does not let anyone connect as a device or call the API.
//
// A token is 32 random bytes (256 bits) from the OS CSPRNG, base64url (43 characters). At that
// entropy nothing can be guessed offline from a leaked hash, so key stretching buys nothing; what
// matters is the form of the hash.
//
// Device tokens are stored as Mosquitto stores passwords (its password file and its
// dynamic-security plugin, mosquitto 2.0 `src/password_mosq.c`): PBKDF2-HMAC-SHA512 over the token
// with a 12-byte random salt, 64-byte output, written `$7$<iterations>$<salt b64>$<hash b64>`, the
// password file's own notation. A fleet can then move to an external Mosquitto (§8) with the hashes
// it has, and no deployed device needs a new token. DEVICE_TOKEN_ITERATIONS is 10, not Mosquitto's
// default 101: for a 256-bit random secret iterations add no strength, and 10 costs ~9 µs a CONNECT
// against ~57 µs for 101 (Node 20, one core; test/gateway/credentials.test.ts prints the figures).
// The hashes of earlier releases (`sha256:` + SHA-256 over a domain prefix and the token) still
// match; `isLegacyTokenHash` tells the gateway to re-hash one on the device's next good CONNECT.
//
// API tokens stay `sha256:` (deterministic): the API finds the configured token by its hash.
//
//   const token = newToken();                 // give to the device once
//   const stored = hashDeviceToken(token);    // '$7$10$<salt>$<hash>', keep this
//   tokenMatches(token, stored);              // true, in time independent of where they differ
import { createHash, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOKEN_BYTES = 32;
/** Prefix of every stored token hash; a future scheme gets a different one. */
export const TOKEN_HASH_PREFIX = 'sha256:';

const DOMAIN = 'pinwave/device-token/v1\0';
const DIGEST_BYTES = 32;

/** A fresh device token: 32 random bytes, base64url without padding. */
export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/** PBKDF2 iterations of a new device token hash (see the header for why so few). */
export const DEVICE_TOKEN_ITERATIONS = 10;
/** Mosquitto's salt and hash lengths (mosquitto 2.0 `SALT_LEN`, SHA-512 output). */
export const DEVICE_TOKEN_SALT_BYTES = 12;
const PBKDF2_BYTES = 64;
/** A stored hash naming more iterations than this is refused as malformed (a corrupt or hostile record must not cost seconds a CONNECT). */
const MAX_ITERATIONS = 100_000;
const PBKDF2_RE = /^\$7\$([1-9][0-9]{0,5})\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==)$/;

/** The parts of a `$7$` device token hash, as Mosquitto's dynamic-security plugin takes them (`iterations`, `salt`, `password`). */
export interface DeviceTokenHash {
  iterations: number;
  salt: Buffer;
  hash: Buffer;
}

/** The form of an API token to store: `sha256:` + base64url of SHA-256("pinwave/device-token/v1\0" + token). */
export function hashToken(token: string): string {
  return TOKEN_HASH_PREFIX + tokenDigest(token).toString('base64url');
}

/** The form of a device token to store: `$7$<iterations>$<salt b64>$<hash b64>`, PBKDF2-HMAC-SHA512 with a fresh salt. */
export function hashDeviceToken(token: string, iterations = DEVICE_TOKEN_ITERATIONS): string {
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) throw new RangeError(`expected iterations 1..${MAX_ITERATIONS}, got ${iterations}`);
  const salt = randomBytes(DEVICE_TOKEN_SALT_BYTES);
  return formatDeviceTokenHash({ iterations, salt, hash: pbkdf2Sync(token, salt, iterations, PBKDF2_BYTES, 'sha512') });
}

/** `$7$…` from its parts (an import from Mosquitto's dynamic-security file goes this way). */
export function formatDeviceTokenHash(h: DeviceTokenHash): string {
  return `$7$${h.iterations}$${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
}

/** The parts of a `$7$` hash, or null when `stored` is not one (a `sha256:` hash included). */
export function parseDeviceTokenHash(stored: string | undefined | null): DeviceTokenHash | null {
  if (typeof stored !== 'string') return null;
  const m = PBKDF2_RE.exec(stored);
  if (!m) return null;
  const iterations = Number(m[1]);
  if (iterations > MAX_ITERATIONS) return null;
  return { iterations, salt: Buffer.from(m[2], 'base64'), hash: Buffer.from(m[3], 'base64') };
}

/** Whether `stored` is a hash this module can check: a `$7$` device hash or an earlier release's `sha256:` one. */
export function isTokenHash(stored: unknown): stored is string {
  return typeof stored === 'string' && (parseDeviceTokenHash(stored) !== null || storedDigest(stored) !== null);
}

/** An earlier release's `sha256:` device hash: valid, but to be replaced by `hashDeviceToken` on the next good CONNECT. */
export function isLegacyTokenHash(stored: string | undefined | null): boolean {
  return storedDigest(stored) !== null;
}

// Compared against when the stored hash is missing or malformed, so an unknown device costs one
// PBKDF2 like a known one and response time does not tell which ids exist.
const DUMMY_PBKDF2: DeviceTokenHash = { iterations: DEVICE_TOKEN_ITERATIONS, salt: Buffer.alloc(DEVICE_TOKEN_SALT_BYTES), hash: Buffer.alloc(PBKDF2_BYTES) };

/**
 * True when `token` hashes to `storedHash` (either form). The digests are compared with
 * `timingSafeEqual`; a missing or malformed `storedHash` is checked against a dummy PBKDF2 hash and
 * then reported false, so no branch returns early on what the caller sent.
 */
export function tokenMatches(token: string, storedHash: string | undefined | null): boolean {
  const legacy = storedDigest(storedHash);
  if (legacy !== null) return timingSafeEqual(tokenDigest(token), legacy);
  const parsed = parseDeviceTokenHash(storedHash);
  const h = parsed ?? DUMMY_PBKDF2;
  const equal = timingSafeEqual(pbkdf2Sync(token, h.salt, h.iterations, PBKDF2_BYTES, 'sha512'), h.hash);
  return equal && parsed !== null;
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
