// docs/architecture.md §3: Ed25519 signing keys in their raw, PEM and kid forms.
import t from 'tap';
import { createHash, createPrivateKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateKeyPair, keyPairFromSeed, kid, pkcs8PemFromSeed, privateKeyFromPem, publicKeyFromPem,
  publicKeyFromText, spkiPemFromRaw, KeyFormatError,
} from '../../firmware-manifest/keys.ts';
import { openssl } from '../fixtures/openssl.ts';

const pemBody = (pem: string) => pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
/** no 12-character run of the key's base64 appears in an error message */
const leaks = (message: string, pem: string) =>
  Array.from({ length: pemBody(pem).length - 12 }, (_, i) => pemBody(pem).slice(i, i + 12)).some((s) => message.includes(s));

t.test('keys made by `openssl genpkey -algorithm ed25519` are read, and written back identically', async (t) => {
  const dir = t.testdir();
  const keyPath = join(dir, 'k.pem');
  openssl(['genpkey', '-algorithm', 'ed25519', '-out', keyPath], dir);
  openssl(['pkey', '-in', keyPath, '-pubout', '-out', join(dir, 'p.pem')], dir);
  const privatePem = readFileSync(keyPath, 'utf8');
  const publicPem = readFileSync(join(dir, 'p.pem'), 'utf8');
  const rawFromOpenssl = openssl(['pkey', '-in', keyPath, '-pubout', '-outform', 'der'], dir).subarray(-32);
  const seedFromOpenssl = openssl(['pkey', '-in', keyPath, '-outform', 'der'], dir).subarray(-32);

  const publicKey = publicKeyFromPem(publicPem);
  t.same(publicKey, new Uint8Array(rawFromOpenssl));
  t.equal(publicKey.constructor, Uint8Array);
  t.same(publicKeyFromPem(privatePem), publicKey, 'the public part of a private key PEM');
  const seed = privateKeyFromPem(privatePem);
  t.same(seed, new Uint8Array(seedFromOpenssl));
  t.equal(pkcs8PemFromSeed(seed), privatePem);
  t.equal(spkiPemFromRaw(publicKey), publicPem);
  t.same(keyPairFromSeed(seed), { seed, publicKey, privatePem, publicPem });
  t.same(publicKeyFromText(publicPem), publicKey);
  t.same(publicKeyFromText(Buffer.from(publicKey).toString('base64')), publicKey);
});

t.test('generateKeyPair round-trips through every form, and openssl agrees', async (t) => {
  const dir = t.testdir();
  const pair = generateKeyPair();
  t.equal(pair.seed.length, 32);
  t.equal(pair.publicKey.length, 32);
  t.match(pair.privatePem, /^-----BEGIN PRIVATE KEY-----\n/);
  t.match(pair.publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
  t.same(privateKeyFromPem(pair.privatePem), pair.seed);
  t.same(publicKeyFromPem(pair.publicPem), pair.publicKey);
  t.same(publicKeyFromPem(pair.privatePem), pair.publicKey);
  t.same(publicKeyFromText(`\n  ${pair.publicPem}\n`), pair.publicKey);
  t.same(publicKeyFromText(Buffer.from(pair.publicKey).toString('base64')), pair.publicKey);
  t.equal(spkiPemFromRaw(pair.publicKey), pair.publicPem);
  t.equal(pkcs8PemFromSeed(pair.seed), pair.privatePem);
  t.same(keyPairFromSeed(pair.seed), pair);
  t.notSame(generateKeyPair().seed, pair.seed);

  const message = Buffer.from('pinwave/v1');
  const signature = sign(null, message, pair.privatePem);
  t.ok(verify(null, message, pair.publicPem, signature));
  t.equal(openssl(['pkey', '-pubout'], dir, pair.privatePem).toString(), pair.publicPem);
});

t.test('kid is the first 8 bytes of SHA-256 of the raw public key', async (t) => {
  const { publicKey } = generateKeyPair();
  const id = kid(publicKey);
  t.equal(id.length, 8);
  t.equal(id.constructor, Uint8Array);
  t.same(id, new Uint8Array(createHash('sha256').update(publicKey).digest()).subarray(0, 8));
  t.throws(() => kid(new Uint8Array(31)), { code: 'PW_KEY_LENGTH', message: 'expected 32 bytes of raw public key, got 31' });
  t.throws(() => kid(new TextEncoder().encode(spkiPemFromRaw(publicKey))), { code: 'PW_KEY_LENGTH' });
});

t.test('a key that is not Ed25519 is refused, naming the type found', async (t) => {
  const dir = t.testdir();
  const pems: [string, string][] = [];
  for (const [name, args] of [
    ['rsa', ['-algorithm', 'rsa', '-pkeyopt', 'rsa_keygen_bits:1024']],
    ['ec (prime256v1)', ['-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
    ['ed448', ['-algorithm', 'ed448']],
    ['x25519', ['-algorithm', 'x25519']],
  ] as const) {
    const file = join(dir, `${name.split(' ')[0]}.pem`);
    openssl(['genpkey', ...args, '-out', file], dir);
    pems.push([name, readFileSync(file, 'utf8')]);
  }
  for (const [type, privatePem] of pems) {
    const publicPem = openssl(['pkey', '-pubout'], dir, privatePem).toString();
    const message = `expected an Ed25519 key, got ${type}`;
    t.throws(() => privateKeyFromPem(privatePem), { name: 'KeyFormatError', code: 'PW_KEY_TYPE', message });
    t.throws(() => publicKeyFromPem(privatePem), { code: 'PW_KEY_TYPE', message });
    t.throws(() => publicKeyFromPem(publicPem), { code: 'PW_KEY_TYPE', message });
    t.throws(() => publicKeyFromText(publicPem), { code: 'PW_KEY_TYPE', message });
  }
  const rsaPkcs1 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  t.throws(() => privateKeyFromPem(rsaPkcs1), { code: 'PW_KEY_TYPE', message: 'expected an Ed25519 key, got rsa' });
});

t.test('unreadable keys are refused with what was expected, never echoing key material', async (t) => {
  const pair = generateKeyPair();
  const encrypted = createPrivateKey(pair.privatePem).export({
    type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret',
  }) as string;
  const legacyEncrypted = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({
    type: 'pkcs1', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'secret',
  }) as string;
  const damaged = pair.privatePem.replace(/\n[A-Za-z0-9+/]{8}/, '\n!!!!!!!!');
  const cases: [() => unknown, string, RegExp | string, string][] = [
    [() => privateKeyFromPem(pair.publicPem), 'PW_KEY_FORMAT', /^expected a PKCS#8 private key PEM/, pair.publicPem],
    [() => privateKeyFromPem(encrypted), 'PW_KEY_ENCRYPTED', /got an encrypted key/, encrypted],
    [() => publicKeyFromPem(encrypted), 'PW_KEY_ENCRYPTED', /got an encrypted key/, encrypted],
    [() => privateKeyFromPem(legacyEncrypted), 'PW_KEY_ENCRYPTED', /got an encrypted key/, legacyEncrypted],
    [() => privateKeyFromPem(damaged), 'PW_KEY_FORMAT', /could not decode it/, damaged],
    [() => publicKeyFromPem('not a key'), 'PW_KEY_FORMAT', /^expected an SPKI public key or PKCS#8 private key PEM/, 'not a key'],
    [() => publicKeyFromText(pair.privatePem), 'PW_KEY_PRIVATE', 'expected a public key, got a private key PEM (never share or commit it)', pair.privatePem],
    [() => publicKeyFromText(encrypted), 'PW_KEY_PRIVATE', /got a private key PEM/, encrypted],
    [() => publicKeyFromText(Buffer.from(pair.publicKey).toString('base64url')), 'PW_KEY_FORMAT', /standard padded base64/, pair.publicPem],
    [() => publicKeyFromText(Buffer.from(pair.publicKey.subarray(1)).toString('base64')), 'PW_KEY_LENGTH', 'expected 32 bytes after base64 decoding, got 31', pair.publicPem],
    [() => spkiPemFromRaw(new Uint8Array(33)), 'PW_KEY_LENGTH', 'expected 32 bytes of raw public key, got 33', ''],
    [() => pkcs8PemFromSeed(new Uint8Array(64)), 'PW_KEY_LENGTH', 'expected 32 bytes of private seed, got 64', ''],
    [() => keyPairFromSeed('x' as unknown as Uint8Array), 'PW_KEY_LENGTH', 'expected 32 bytes of private seed, got string', ''],
  ];
  for (const [call, code, message, material] of cases) {
    let caught: unknown;
    try {
      call();
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof KeyFormatError, `${code}: throws a KeyFormatError`);
    t.match(caught, { code, message });
    if (material.length > 20) t.notOk(leaks((caught as Error).message, material), `${code}: no key material in the message`);
  }
});
