// Device tokens and secret comparison (gateway/credentials.ts).
import { createHash, pbkdf2Sync } from 'node:crypto';
import t from 'tap';
import {
  DEVICE_TOKEN_ITERATIONS,
  TOKEN_BYTES,
  TOKEN_HASH_PREFIX,
  constantTimeEqualStrings,
  formatDeviceTokenHash,
  hashDeviceToken,
  hashToken,
  isLegacyTokenHash,
  isTokenHash,
  newToken,
  parseDeviceTokenHash,
  tokenMatches,
} from '../../gateway/credentials.ts';

t.test('a token is 256 random bits, base64url, and never repeats', async (t) => {
  const tokens = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const token = newToken();
    t.match(token, /^[A-Za-z0-9_-]{43}$/);
    t.equal(Buffer.from(token, 'base64url').length, TOKEN_BYTES);
    tokens.add(token);
  }
  t.ok(TOKEN_BYTES * 8 >= 128);
  t.equal(tokens.size, 1000, '1000 tokens, all distinct');
});

t.test('the stored hash is SHA-256 over the domain prefix and the token, and only that token matches it', async (t) => {
  const token = newToken();
  const stored = hashToken(token);
  const expected = createHash('sha256').update('pinwave/device-token/v1\0' + token).digest('base64url');
  t.equal(stored, TOKEN_HASH_PREFIX + expected);
  t.equal(hashToken(token), stored, 'deterministic');
  t.not(stored.slice(TOKEN_HASH_PREFIX.length), createHash('sha256').update(token).digest('base64url'), 'domain-separated');
  t.notOk(stored.includes(token), 'the token is not in its hash');
  t.ok(tokenMatches(token, stored));
  t.notOk(tokenMatches(newToken(), stored), 'another token');
  t.notOk(tokenMatches(token.slice(0, -1), stored), 'a truncated token');
  t.notOk(tokenMatches('', stored));
  t.notOk(tokenMatches(stored, stored), 'the hash itself is not a token');
});

t.test('a missing or malformed stored hash matches nothing', async (t) => {
  const token = newToken();
  const digest = hashToken(token).slice(TOKEN_HASH_PREFIX.length);
  const truncated = `${TOKEN_HASH_PREFIX}${digest.slice(0, 20)}`;
  const extended = `${TOKEN_HASH_PREFIX}${digest}AAAA`;
  for (const stored of [undefined, null, '', 'sha256:', digest, `md5:${digest}`, truncated, extended]) {
    t.notOk(tokenMatches(token, stored), String(stored));
  }
  t.notOk(tokenMatches(token, TOKEN_HASH_PREFIX + Buffer.alloc(32).toString('base64url')), 'an all-zero digest');
});

t.test('constantTimeEqualStrings: equal strings only, whatever the lengths', async (t) => {
  t.ok(constantTimeEqualStrings('operator-secret', 'operator-secret'));
  t.ok(constantTimeEqualStrings('', ''));
  t.notOk(constantTimeEqualStrings('operator-secret', 'operator-secreT'));
  t.notOk(constantTimeEqualStrings('operator-secret', 'operator-secret-longer'), 'different lengths');
  t.notOk(constantTimeEqualStrings('a', ''), 'different lengths');
  t.notOk(constantTimeEqualStrings('é', 'e\u0301'), 'compared as UTF-8 bytes, not normalized');
});

t.test('a device token hash is Mosquitto\'s PBKDF2-SHA512 form: 12-byte salt, 64-byte hash, $7$ notation', async (t) => {
  const token = newToken();
  const stored = hashDeviceToken(token);
  t.match(stored, /^\$7\$10\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
  const parts = parseDeviceTokenHash(stored)!;
  t.equal(parts.iterations, DEVICE_TOKEN_ITERATIONS);
  t.equal(parts.salt.length, 12);
  // What Mosquitto computes (PKCS5_PBKDF2_HMAC over the password, no prefix): the same bytes.
  t.same(parts.hash, pbkdf2Sync(token, parts.salt, parts.iterations, 64, 'sha512'));
  t.equal(formatDeviceTokenHash(parts), stored, 'round trip');
  t.not(hashDeviceToken(token), stored, 'a fresh salt each time');
  t.ok(tokenMatches(token, stored));
  t.notOk(tokenMatches(newToken(), stored), 'another token');
  t.notOk(tokenMatches(token.slice(0, -1), stored), 'a truncated token');
  t.notOk(tokenMatches('', stored));
  t.ok(isTokenHash(stored));
  t.notOk(isLegacyTokenHash(stored));
  t.ok(tokenMatches(token, hashDeviceToken(token, 101)), "Mosquitto's default iterations verify too");
  t.throws(() => hashDeviceToken(token, 0), RangeError);
});

t.test('an earlier release\'s sha256: device hash still matches and is flagged for re-hashing', async (t) => {
  const token = newToken();
  const legacy = hashToken(token);
  t.ok(tokenMatches(token, legacy));
  t.ok(isLegacyTokenHash(legacy));
  t.ok(isTokenHash(legacy));
  t.equal(parseDeviceTokenHash(legacy), null);
});

t.test('a malformed $7$ hash matches nothing and is not a token hash', async (t) => {
  const token = newToken();
  const good = hashDeviceToken(token);
  const [, , iter, salt, hash] = good.split('$');
  for (const bad of [
    `$7$0$${salt}$${hash}`,
    `$7$1000000$${salt}$${hash}`,
    `$7$${iter}$${salt.slice(1)}$${hash}`,
    `$7$${iter}$${salt}$${hash.slice(4)}`,
    `$6$${iter}$${salt}$${hash}`,
    `$7$${iter}$${salt}$${hash}x`,
    `$7$-1$${salt}$${hash}`,
  ]) {
    t.notOk(tokenMatches(token, bad), bad);
    t.notOk(isTokenHash(bad), bad);
  }
  t.notOk(isTokenHash(null));
  t.notOk(isTokenHash('h'));
});

t.test('hashing and checking 10,000 tokens (figures only, no assertion on time)', async (t) => {
  const tokens = Array.from({ length: 10_000 }, newToken);
  const time = <T>(f: () => T): [T, number] => {
    const start = process.hrtime.bigint();
    const out = f();
    return [out, Number(process.hrtime.bigint() - start) / 1e6];
  };
  const [hashes, hashMs] = time(() => tokens.map((k) => hashDeviceToken(k)));
  const [matched, verifyMs] = time(() => tokens.filter((k, i) => tokenMatches(k, hashes[i])).length);
  const [, defaultMs] = time(() => tokens.slice(0, 1000).map((k) => hashDeviceToken(k, 101)));
  const [, legacyMs] = time(() => tokens.map(hashToken));
  t.comment(`hashDeviceToken (${DEVICE_TOKEN_ITERATIONS} iterations) ×10,000: ${hashMs.toFixed(1)} ms; tokenMatches ×10,000: ${verifyMs.toFixed(1)} ms; 101 iterations (Mosquitto's default) ×10,000: ${(defaultMs * 10).toFixed(1)} ms; sha256: ×10,000: ${legacyMs.toFixed(1)} ms`);
  t.equal(matched, 10_000);
  t.equal(new Set(hashes).size, 10_000);
});
