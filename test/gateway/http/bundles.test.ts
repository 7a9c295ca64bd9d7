// /v1/bundles: signed by the gateway key with the group's next seq; weak or malformed pin sets are
// a 400 naming the pin; decoded and raw (application/cose) views.
import t from 'tap';
import { apiHarness } from '../../fixtures/http.ts';
import { pin } from '../../fixtures/gateway.ts';
import { verifyBundle } from '../../../firmware-manifest/index.ts';

const pins = [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }];

t.test('an operator signs a bundle: 201 with id, seq, size, kid, decoded pins; the actor is the token name', async (t) => {
  const a = await apiHarness(t);
  const r = await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins, expiresIn: '12h' } });
  t.equal(r.statusCode, 201);
  const b = r.json();
  t.match(b, { id: /^[0-9a-f]{64}$/, group: 'thermostats', seq: 1, kid: a.gw.signing!.kid, alg: 'EdDSA', version: 1, createdBy: 'olga', expiryPolicy: 'enforce' });
  t.equal(b.exp - b.iat, 12 * 3600);
  t.equal(b.iat, a.clock.t / 1000);
  t.same(b.endpoints, [{ host: 'api.example.com', port: 443, pins: [pin('new'), pin('backup')], mode: 'enforce' }]);
  t.ok(b.size > 150 && b.size < 300, `about 200 bytes, got ${b.size}`);
  const again = (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins, expiresIn: 600 } })).json();
  t.equal(again.seq, 2, 'the next seq of the group');
  t.equal(again.exp - again.iat, 600);
});

t.test('endpoint options reach the bundle: port, report-only, pin-set window, expiry policy', async (t) => {
  const a = await apiHarness(t);
  const r = await a.call('POST', '/v1/bundles', {
    as: 'operator',
    body: { group: 'locks', pins: [{ host: 'mqtt.example.com', port: 8883, pins: [pin('a'), pin('b')], mode: 'report-only', notBefore: 1767225600, notAfter: 1798761600 }], expiryPolicy: 'ca-fallback' },
  });
  t.equal(r.statusCode, 201);
  t.match(r.json(), { expiryPolicy: 'ca-fallback', endpoints: [{ host: 'mqtt.example.com', port: 8883, mode: 'report-only', notBefore: 1767225600, notAfter: 1798761600 }] });
});

t.test('a weak or malformed pin set is a 400 naming the pin; nothing is signed and no seq is burnt', async (t) => {
  const a = await apiHarness(t);
  const cases: Array<[unknown, RegExp]> = [
    [[{ host: 'api.example.com', pins: [pin('a')] }], /^body\/pins\/0\/pins must NOT have fewer than 2 items$/],
    [[{ host: 'api.example.com', pins: [pin('a'), pin('a')] }], /pins\[0\].*1 distinct pin; at least 2 are required \(RFC 7469 §2\.5 backup pin\)/],
    [[{ host: 'api.example.com', pins: [pin('a'), 'sha256/AAAA'] }], /^pins\[0\]\.pins\[1\]: expected 32 bytes after base64 decoding, got 3$/],
    [[{ host: 'api.example.com', pins: [pin('a'), 'md5/AAAA'] }], /^body\/pins\/0\/pins\/1 must match pattern/],
    [[{ host: 'API.example.com!', pins: [pin('a'), pin('b')] }], /pins\[0\]\.host must be a lowercase host name/],
    [[], /^body\/pins must NOT have fewer than 1 items$/],
  ];
  for (const [p, message] of cases) {
    const r = await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: p } });
    t.equal(r.statusCode, 400, JSON.stringify(p));
    t.match(r.json(), { statusCode: 400, error: 'Bad Request', code: 'PW_INVALID', message });
  }
  const odd = await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins, expiresIn: '3w' } });
  t.equal(odd.statusCode, 400);
  t.match(odd.json().message, /body\/expiresIn/);
  const long = await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins, expiresIn: '999999999d' } });
  t.equal(long.statusCode, 400);
  t.match(long.json().message, /body\/expiresIn must be at most 100 years/);
  t.same((await a.call('GET', '/v1/bundles')).json().items, [], 'nothing stored');
  t.equal((await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins } })).json().seq, 1, 'no seq burnt');
});

t.test('bundles list in pages, by group; a bundle reads decoded; a viewer cannot create one', async (t) => {
  const a = await apiHarness(t);
  const made = [];
  for (const group of ['thermostats', 'thermostats', 'locks']) made.push((await a.call('POST', '/v1/bundles', { body: { group, pins } })).json());
  t.equal((await a.call('POST', '/v1/bundles', { as: 'viewer', body: { group: 'thermostats', pins } })).statusCode, 403);
  const all = (await a.call('GET', '/v1/bundles', { as: 'viewer' })).json();
  t.same(all.items.map((b: { id: string }) => b.id), made.map((b) => b.id).sort());
  t.same(Object.keys(all.items[0]).sort(), ['createdAt', 'createdBy', 'group', 'id', 'seq', 'size'], 'no bytes in the list');
  const first = (await a.call('GET', '/v1/bundles?limit=2')).json();
  t.equal(first.items.length, 2);
  const rest = (await a.call('GET', `/v1/bundles?limit=2&cursor=${first.next}`)).json();
  t.equal(rest.items.length, 1);
  t.equal(rest.next, null);
  t.same((await a.call('GET', '/v1/bundles?group=locks')).json().items.map((b: { seq: number }) => b.seq), [1]);
  const one = await a.call('GET', `/v1/bundles/${made[1].id}`, { as: 'viewer' });
  t.equal(one.statusCode, 200);
  const { diff, ...decoded } = one.json();
  t.same(decoded, made[1], 'the bundle as POST returned it');
  t.same(diff.against, { kind: 'none' }, 'the group has no baseline yet');
  t.equal((await a.call('GET', `/v1/bundles/${'0'.repeat(64)}`)).statusCode, 404);
  t.equal((await a.call('GET', '/v1/bundles/not-a-bundle-id')).statusCode, 400);
});

t.test('the raw bundle is the COSE_Sign1 bytes as application/cose, and verifies with the key /v1/info gives', async (t) => {
  const a = await apiHarness(t);
  const b = (await a.call('POST', '/v1/bundles', { body: { group: 'thermostats', pins } })).json();
  const r = await a.call('GET', `/v1/bundles/${b.id}/raw`, { as: 'viewer' });
  t.equal(r.statusCode, 200);
  t.equal(r.headers['content-type'], 'application/cose');
  t.equal(r.rawPayload.length, b.size);
  t.equal(r.rawPayload[0], 0xd2, 'CBOR tag 18 (COSE_Sign1)');
  const v = verifyBundle(new Uint8Array(r.rawPayload), [a.gw.signing!.publicKey]);
  t.ok(v.ok);
  t.equal(v.ok && v.id, b.id);
  t.equal((await a.call('GET', `/v1/bundles/${'f'.repeat(64)}/raw`)).statusCode, 404);
});
