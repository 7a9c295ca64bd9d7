// The bundle as people read it (firmware-manifest/view.ts): every bundle a device would take can be
// shown, its exp being any uint (docs/bundle-format.md), even past the last date a Date holds.
import t from 'tap';
import { createHash } from 'node:crypto';
import { bundleView, isoSeconds } from '../../firmware-manifest/view.ts';
import { FORMAT_VERSION, type PinBundle } from '../../firmware-manifest/codec.ts';

const digest = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
const bundle = (exp: number): PinBundle => ({ version: FORMAT_VERSION, seq: 2, iat: 1_796_652_460, exp, group: 'g1', endpoints: [{ host: 'api.example.com', port: 443, pins: [digest('a'), digest('b')] }] });

t.test('a bundle whose exp is past year 275760 is shown with the number, not an exception (GET /v1/bundles/:id answered 500 on one)', async (t) => {
  const v = bundleView(bundle(2 ** 52));
  t.equal(v.expires, String(2 ** 52));
  t.equal(v.exp, 2 ** 52);
  t.equal(v.issuedAt, '2026-12-07T14:07:40.000Z', 'a date a Date holds is ISO 8601 as before');
  t.equal(isoSeconds(8_640_000_000_000), '+275760-09-13T00:00:00.000Z', 'the last one');
  t.equal(isoSeconds(8_640_000_000_001), '8640000000001', 'one second past it');
});
