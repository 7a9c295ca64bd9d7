// A bundle as people read it (CLI `bundle inspect`, HTTP `GET /v1/bundles/:id`): pins in sha256/
// form, times in seconds as the bundle carries them, with ISO 8601 beside iat and exp.
import type { PinBundle } from './codec.ts';
import { formatPin } from './pins.ts';

/** Seconds since 1970 as ISO 8601; past what a Date holds (year 275760), the number itself: a bundle's exp may be any uint. */
export function isoSeconds(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toISOString();
}

export function bundleView(b: PinBundle) {
  const iso = isoSeconds;
  return {
    version: b.version,
    seq: b.seq,
    group: b.group,
    iat: b.iat,
    issuedAt: iso(b.iat),
    exp: b.exp,
    expires: iso(b.exp),
    expiryPolicy: b.expiryPolicy ?? 'enforce',
    endpoints: b.endpoints.map((e) => ({
      host: e.host,
      port: e.port,
      pins: e.pins.map(formatPin),
      mode: e.mode ?? 'enforce',
      ...(e.notBefore !== undefined && { notBefore: e.notBefore }),
      ...(e.notAfter !== undefined && { notAfter: e.notAfter }),
    })),
    ...(b.keyRotation && { keyRotation: { epoch: b.keyRotation.epoch, keys: b.keyRotation.keys.map((k) => Buffer.from(k).toString('base64')) } }),
  };
}
