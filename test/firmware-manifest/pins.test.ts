// docs/architecture.md §2: pins equal the openssl recipe, for every key type a server may present.
import t from 'tap';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  certificatesOf, formatPin, parsePin, pinOfSpki, pinsOfCertificates, tryParsePin, PinFormatError,
} from '../../firmware-manifest/pins.ts';
import { chain, openssl, recipePin, selfSigned, type KeyType } from '../fixtures/openssl.ts';

const b64 = (bytes: number) => Buffer.alloc(bytes, 7).toString('base64');

for (const type of ['rsa', 'p256', 'p384', 'ed25519'] as KeyType[]) {
  t.test(`the pin of a ${type} certificate equals the openssl recipe`, async (t) => {
    const dir = t.testdir();
    const cert = selfSigned(dir, `server-${type}`, type);
    const [entry, ...rest] = pinsOfCertificates(readFileSync(cert.pem, 'utf8'));
    t.equal(rest.length, 0);
    t.equal(entry.text, `sha256/${recipePin(cert.pem)}`);
    t.same(entry.pin, parsePin(entry.text));
    t.equal(entry.subject, `CN=server-${type}, O=pinwave test`);

    // the same digest straight from openssl's SPKI DER
    const spki = openssl(['x509', '-in', cert.pem, '-pubkey', '-noout'], dir);
    const der = openssl(['pkey', '-pubin', '-outform', 'der'], dir, spki);
    t.equal(formatPin(pinOfSpki(der)), entry.text);
  });
}

t.test('a chain file gives one pin per certificate, in file order', async (t) => {
  const dir = t.testdir();
  const c = chain(dir);
  const pins = pinsOfCertificates(readFileSync(c.file, 'utf8'));
  t.same(pins.map((p) => p.subject), ['CN=leaf, O=pinwave test', 'CN=intermediate, O=pinwave test', 'CN=root, O=pinwave test']);
  t.same(pins.map((p) => p.text), [c.leaf, c.intermediate, c.root].map((x) => `sha256/${recipePin(x.pem)}`));
  t.equal(new Set(pins.map((p) => p.text)).size, 3);
});

t.test('a DER certificate, and PEM given as bytes, pin the same as PEM text', async (t) => {
  const dir = t.testdir();
  const cert = selfSigned(dir, 'der', 'p256');
  const der = openssl(['x509', '-in', cert.pem, '-outform', 'der'], dir);
  const fromText = pinsOfCertificates(readFileSync(cert.pem, 'utf8'));
  t.same(pinsOfCertificates(der), fromText);
  t.same(pinsOfCertificates(new Uint8Array(der)), fromText);
  t.same(pinsOfCertificates(readFileSync(cert.pem)), fromText);
  t.equal(certificatesOf(der)[0].fingerprint256, new X509Certificate(der).fingerprint256);
});

t.test('text around and between PEM blocks is ignored (openssl -text output, bundles with comments)', async (t) => {
  const dir = t.testdir();
  const cert = selfSigned(dir, 'noisy', 'p256');
  const pem = readFileSync(cert.pem, 'utf8');
  const pins = pinsOfCertificates(`# leaf\r\nsubject=CN = noisy\r\n${pem.replace(/\n/g, '\r\n')}\n# end\n${pem}`);
  t.equal(pins.length, 2);
  t.equal(pins[0].text, `sha256/${recipePin(cert.pem)}`);
});

t.test('a subject reads on one line, most specific first, with RFC 4514 escaping', async (t) => {
  const dir = t.testdir();
  const cert = selfSigned(dir, 'subj', 'p256', '/C=US/O=Example, Inc/OU=a/OU=b/CN=example.com');
  t.equal(pinsOfCertificates(readFileSync(cert.pem, 'utf8'))[0].subject, 'CN=example.com, OU=b, OU=a, O=Example\\, Inc, C=US');
});

t.test('input without a certificate is refused with what was expected', async (t) => {
  t.throws(() => pinsOfCertificates('hello'), { message: /expected PEM "-----BEGIN CERTIFICATE-----" blocks or one DER certificate, found none/ });
  t.throws(() => pinsOfCertificates(new Uint8Array()), { message: /found none/ });
  const dir = t.testdir();
  openssl(['genpkey', '-algorithm', 'ed25519', '-out', join(dir, 'k.pem')], dir);
  t.throws(() => pinsOfCertificates(readFileSync(join(dir, 'k.pem'), 'utf8')), { message: /found none/ });
  t.throws(() => pinsOfCertificates('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), {
    message: /^PEM certificate 1 is not a valid X\.509 certificate/,
  });
  t.throws(() => pinsOfCertificates(Uint8Array.from([0x30, 0x03, 0x02, 0x01, 0x00])), {
    message: /^the DER input is not a valid X\.509 certificate/,
  });
});

t.test('pinOfSpki is SHA-256 of its input', async (t) => {
  const spki = Uint8Array.from([1, 2, 3]);
  t.same(pinOfSpki(spki), new Uint8Array(createHash('sha256').update(spki).digest()));
  t.equal(pinOfSpki(spki).constructor, Uint8Array);
});

t.test('formatPin and parsePin round-trip', async (t) => {
  const pin = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
  const text = formatPin(pin);
  t.match(text, /^sha256\/[A-Za-z0-9+/]{43}=$/);
  t.same(parsePin(text), pin);
  t.equal(parsePin(text).constructor, Uint8Array);
  t.same(tryParsePin(text), { ok: true, pin });
  t.equal(formatPin(new Uint8Array(Buffer.concat([Buffer.alloc(5), Buffer.from(pin)])).subarray(5)), text);
  t.throws(() => formatPin(new Uint8Array(31)), { code: 'PW_PIN_LENGTH', message: 'expected a pin of 32 bytes, got 31' });
});

t.test('parsePin refuses anything but sha256/ + strict base64 of 32 bytes', async (t) => {
  const good = `sha256/${b64(32)}`;
  const cases: [string, string, RegExp | string][] = [
    [b64(32), 'PW_PIN_PREFIX', /^expected a pin of the form sha256\/<base64>, got "/],
    [`SHA256/${b64(32)}`, 'PW_PIN_PREFIX', /sha256\/<base64>/],
    [`sha1/${b64(20)}`, 'PW_PIN_PREFIX', /sha256\/<base64>/],
    [`pin-sha256="${b64(32)}"`, 'PW_PIN_PREFIX', /sha256\/<base64>/],
    ['', 'PW_PIN_PREFIX', /got ""/],
    [` ${good}`, 'PW_PIN_PREFIX', /sha256\/<base64>/],
    [`${good} `, 'PW_PIN_BASE64', /expected standard padded base64/],
    [`${good}\n`, 'PW_PIN_BASE64', /no whitespace/],
    [`sha256/${b64(32).slice(0, 20)}\n${b64(32).slice(20)}`, 'PW_PIN_BASE64', /base64/],
    [`sha256/${b64(32).replace(/=$/, '')}`, 'PW_PIN_BASE64', /padded/],
    [`sha256/${Buffer.alloc(32, 0xfb).toString('base64url')}=`, 'PW_PIN_BASE64', /A-Z a-z 0-9 \+ \//],
    [`sha256/${b64(32).replace('B', '*')}`, 'PW_PIN_BASE64', /base64/],
    [`sha256/${b64(31)}`, 'PW_PIN_LENGTH', 'expected 32 bytes after base64 decoding, got 31'],
    [`sha256/${b64(33)}`, 'PW_PIN_LENGTH', 'expected 32 bytes after base64 decoding, got 33'],
    [`sha256/${b64(64)}`, 'PW_PIN_LENGTH', 'expected 32 bytes after base64 decoding, got 64'],
    ['sha256/', 'PW_PIN_LENGTH', 'expected 32 bytes after base64 decoding, got 0'],
    // last character carries 2 unused bits: "Bz=" and "Bw=" would both decode to the same bytes
    [`sha256/${b64(32).slice(0, 42)}x=`, 'PW_PIN_BASE64', /canonical/],
  ];
  for (const [text, code, message] of cases) {
    t.throws(() => parsePin(text), { name: 'PinFormatError', code, message }, JSON.stringify(text));
    const r = tryParsePin(text);
    t.equal(r.ok, false);
    if (!r.ok) t.ok(r.error instanceof PinFormatError);
  }
  t.throws(() => parsePin(42 as unknown as string), { code: 'PW_PIN_PREFIX', message: /got number/ });
  t.throws(() => parsePin(`x${'A'.repeat(100)}`), { message: /…"$/ }, 'long input is cut in the message');
});
