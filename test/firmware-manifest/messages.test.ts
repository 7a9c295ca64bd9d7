import t from 'tap';
import { encodeCanonical } from '../../firmware-manifest/cbor.ts';
import { decodeAck, decodeState, decodeTelemetry, encodeAck, encodeState, encodeTelemetry, type TelemetryMessage } from '../../firmware-manifest/messages.ts';

const id = 'ab'.repeat(32);
const pin = Buffer.alloc(32, 7).toString('base64');

t.test('state, ack and telemetry round-trip', async (t) => {
  const state = { seq: 3, bundleId: id, firmware: '1.0.0', model: 'th-100', keyEpoch: 1, time: 1767225600 };
  t.same(decodeState(encodeState(state)), { ok: true, message: state });
  const fresh = { seq: 0, bundleId: null, firmware: '1.0.0', model: 'th-100', keyEpoch: 0 };
  t.same(decodeState(encodeState(fresh)), { ok: true, message: fresh });
  const ack = { seq: 3, bundleId: id, status: 'rejected' as const, reason: 'apply_failed' as const, detail: 'flash write failed' };
  t.same(decodeAck(encodeAck(ack)), { ok: true, message: ack });
  const tel: TelemetryMessage = {
    deviceId: 'd1', group: 'g', firmware: '1.0.0',
    reports: [{ hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: [pin], knownPins: [pin, pin], seq: 3, bundleId: id, count: 2, suppressed: 1, firstSeen: 1, lastSeen: 2, counter: 9 }],
  };
  t.same(decodeTelemetry(encodeTelemetry(tel)), { ok: true, message: tel });
});

t.test('hostile or wrong messages are refused with a reason naming the field', async (t) => {
  const bad = (r: { ok: boolean; detail?: string }) => (r.ok ? 'accepted' : r.detail);
  t.match(bad(decodeAck(new Uint8Array([0xff]))), /not CBOR|outside the data model/);
  t.match(bad(decodeAck(encodeCanonical([1, 2]))), /must be a CBOR map/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, null], [3, 1]])))), /reason \(key 4\)/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, null], [3, 1], [4, 'because']])))), /reason \(key 4\) must be one of/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, null], [3, 0], [4, 'expired']])))), /only for a rejection/);
  t.match(bad(decodeAck(encodeCanonical(new Map([[1, 1], [2, new Uint8Array(5)], [3, 0]])))), /32-byte bundle id/);
  t.match(bad(decodeState(encodeCanonical(new Map([[1, -1], [2, null], [3, 'f'], [4, 'm'], [5, 0]])))), /seq \(key 1\)/);
  t.match(bad(decodeState(encodeCanonical(new Map([[1, 1], [2, null], [3, 'f'], [4, 'm'], [5, 0], [9, 1]])))), /unknown key 9/);
  t.match(bad(decodeState(encodeCanonical(new Map([[1, 1], [2, null], [3, 'x'.repeat(300)], [4, 'm'], [5, 0]])))), /firmware \(key 3\)/);
  t.match(bad(decodeTelemetry(encodeCanonical(new Map([[1, 'd'], [2, 'g'], [3, 'f'], [4, []]])))), /reports \(key 4\)/);
});
