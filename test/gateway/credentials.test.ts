// Device tokens and secret comparison (gateway/credentials.ts).
import { createHash } from 'node:crypto';
import t from 'tap';
import {
  TOKEN_BYTES,
  TOKEN_HASH_PREFIX,
  constantTimeEqualStrings,
  hashToken,
  newToken,
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

t.test('hashing 10,000 tokens takes milliseconds (figure only, no assertion)', async (t) => {
  const tokens = Array.from({ length: 10_000 }, newToken);
  const start = process.hrtime.bigint();
  const hashes = tokens.map(hashToken);
  const hashMs = Number(process.hrtime.bigint() - start) / 1e6;
  const verifyStart = process.hrtime.bigint();
  let matched = 0;
  for (let i = 0; i < tokens.length; i++) if (tokenMatches(tokens[i], hashes[i])) matched++;
  const verifyMs = Number(process.hrtime.bigint() - verifyStart) / 1e6;
  t.comment(`hashToken ×10,000: ${hashMs.toFixed(1)} ms; tokenMatches ×10,000: ${verifyMs.toFixed(1)} ms`);
  t.equal(matched, 10_000);
  t.equal(new Set(hashes).size, 10_000);
});
