// Pins: RFC 7469 pin-sha256, docs/architecture.md §2. A pin is SHA-256 over the DER SubjectPublicKeyInfo of a
// certificate's key; people read and write it as `sha256/<base64>` (the OkHttp form), and it equals
// what the openssl recipe prints:
//   openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der \
//     | openssl dgst -sha256 -binary | base64
// Pure: node:crypto computation only, no I/O.
//
//   const [leaf] = pinsOfCertificates(pemText);   // { pin, text: 'sha256/…', subject: 'CN=…, O=…' }
//   parsePin(leaf.text);                          // the same 32 bytes back
import { X509Certificate, createHash } from 'node:crypto';

export const PIN_PREFIX = 'sha256/';
export const PIN_BYTES = 32;

export type PinErrorCode = 'PW_PIN_PREFIX' | 'PW_PIN_BASE64' | 'PW_PIN_LENGTH';

/** A pin whose text or bytes are not a pin-sha256; `code` is stable, the message says what came. */
export class PinFormatError extends Error {
  constructor(readonly code: PinErrorCode, message: string) {
    super(message);
    this.name = 'PinFormatError';
  }
}

/** One certificate's pin, in bytes and text, with its subject on one line (RFC 4514 order: `CN=…, O=…, C=…`). */
export interface CertificatePin {
  pin: Uint8Array;
  text: string;
  subject: string;
}

// Standard alphabet, padded, no whitespace: a pin has exactly one spelling, so two operators'
// copies of the same pin compare equal as text, and a base64url or wrapped pin is caught at the edge.
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** SHA-256 over DER SubjectPublicKeyInfo bytes (RFC 7469 §2.4). */
export function pinOfSpki(spkiDer: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(spkiDer).digest());
}

/** The pin of a parsed certificate's public key. */
export function pinOfCertificate(cert: X509Certificate): CertificatePin {
  const pin = pinOfSpki(cert.publicKey.export({ type: 'spki', format: 'der' }));
  return { pin, text: formatPin(pin), subject: oneLineSubject(cert.subject ?? '') };
}

/**
 * The pins of every certificate in `input`: PEM text (or its bytes) with one or more
 * `CERTIFICATE` blocks, in file order, or the bytes of one DER certificate.
 */
export function pinsOfCertificates(input: string | Uint8Array): CertificatePin[] {
  return certificatesOf(input).map(pinOfCertificate);
}

/** The certificates in PEM text or DER bytes, in input order; throws when there are none. */
export function certificatesOf(input: string | Uint8Array): X509Certificate[] {
  if (typeof input !== 'string') {
    // A DER certificate is an ASN.1 SEQUENCE (0x30); anything else is read as PEM text.
    if (input[0] === 0x30) return [certificateFromDer(input, 'the DER input')];
    input = new TextDecoder().decode(input);
  }
  const blocks = [...input.matchAll(/-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) {
    throw new Error('expected PEM "-----BEGIN CERTIFICATE-----" blocks or one DER certificate, found none');
  }
  return blocks.map((block, i) =>
    certificateFromDer(Buffer.from(block[1].replace(/\s+/g, ''), 'base64'), `PEM certificate ${i + 1}`),
  );
}

function certificateFromDer(der: Uint8Array, where: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (err) {
    throw new Error(`${where} is not a valid X.509 certificate: ${(err as Error).message}`);
  }
}

/** Node prints a subject one attribute per line, most significant first (undefined when empty); a person reads `CN=…, O=…, C=…`. */
function oneLineSubject(multiline: string): string {
  // Node escapes ',', '+', '\n' and friends inside values (RFC 2253 escaping), so the split is safe.
  return multiline.split('\n').filter(Boolean).reverse().join(', ');
}

/** `sha256/<base64>` for a 32-byte pin. */
export function formatPin(pin: Uint8Array): string {
  if (pin.length !== PIN_BYTES) {
    throw new PinFormatError('PW_PIN_LENGTH', `expected a pin of ${PIN_BYTES} bytes, got ${pin.length}`);
  }
  return PIN_PREFIX + Buffer.from(pin.buffer, pin.byteOffset, pin.byteLength).toString('base64');
}

export type PinParse = { ok: true; pin: Uint8Array } | { ok: false; error: PinFormatError };

/** parsePin without the throw: for validators that collect every bad pin before reporting. */
export function tryParsePin(text: string): PinParse {
  if (typeof text !== 'string' || !text.startsWith(PIN_PREFIX)) {
    return fail('PW_PIN_PREFIX', `expected a pin of the form sha256/<base64>, got ${quote(text)}`);
  }
  const b64 = text.slice(PIN_PREFIX.length);
  if (!STRICT_BASE64.test(b64)) {
    return fail(
      'PW_PIN_BASE64',
      `expected standard padded base64 after "sha256/" (A-Z a-z 0-9 + /, no whitespace), got ${quote(text)}`,
    );
  }
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length !== PIN_BYTES) {
    return fail('PW_PIN_LENGTH', `expected ${PIN_BYTES} bytes after base64 decoding, got ${bytes.length}`);
  }
  // Unused low bits of the last character must be zero, or two texts would name one pin.
  if (bytes.toString('base64') !== b64) {
    return fail('PW_PIN_BASE64', `expected canonical base64 (unused bits zero), got ${quote(text)}`);
  }
  return { ok: true, pin: new Uint8Array(bytes) };
}

/** The 32 bytes of a `sha256/<base64>` pin; a PinFormatError naming what was wrong otherwise. */
export function parsePin(text: string): Uint8Array {
  const parsed = tryParsePin(text);
  if (!parsed.ok) throw parsed.error;
  return parsed.pin;
}

const fail = (code: PinErrorCode, message: string): PinParse => ({ ok: false, error: new PinFormatError(code, message) });
const quote = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v) : typeof v);
