// /v1/rollouts with the wave option requireVerified and a deadline (docs/architecture.md §9): accepted and
// shown, bad values refused as 400 naming the field, the plan's fit against the deadline in the answer.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { apiHarness, type ApiHarness } from '../../fixtures/http.ts';
import { pin } from '../../fixtures/gateway.ts';
import { makeCertificate } from '../../../device-sim/endpoints.ts';

async function setUp(t: Tap.Test): Promise<{ a: ApiHarness; bundle: string }> {
  const a = await apiHarness(t);
  await a.call('POST', '/v1/devices', { body: { devices: Array.from({ length: 4 }, (_, i) => ({ id: `th-${i}`, group: 'thermostats', model: 'th-100' })) } });
  const b = (await a.call('POST', '/v1/bundles', { as: 'operator', body: { group: 'thermostats', pins: [{ host: 'api.example.com', pins: [pin('new'), pin('backup')] }] } })).json();
  return { a, bundle: b.id };
}

t.test('requireVerified per wave, and a deadline from a certificate with a margin', async (t) => {
  const { a, bundle } = await setUp(t);
  const pem = makeCertificate('api.example.com', 30).cert;
  const notAfter = Date.parse(new X509Certificate(pem).validTo);
  const r = await a.call('POST', '/v1/rollouts', {
    as: 'operator',
    body: { bundle, target: { group: 'thermostats' }, waves: [{ size: 2, requireVerified: false }, { size: '100%' }], deadline: 'certificate', certificate: pem, marginDays: 10, targetRatio: 0.9 },
  });
  t.equal(r.statusCode, 201, r.body);
  const ro = r.json();
  t.match(ro.waves, [{ thresholds: { requireVerified: false }, verified: 0, reverted: 0, verifying: 0 }, { thresholds: { requireVerified: true } }]);
  t.match(ro.deadlineFit, { fits: true, warnings: [] });
  t.match(ro.deadline, { status: 'on_track', at: notAfter - 10 * 86_400_000, targetRatio: 0.9, target: 4, source: { kind: 'certificate', notAfter, marginDays: 10 } });
  const again = (await a.call('GET', `/v1/rollouts/${ro.id}`, { as: 'viewer' })).json();
  t.match(again.deadline, { status: 'on_track' }, 'the status shows it');
});

t.test('bad values are 400 naming the field, and nothing is created', async (t) => {
  const { a, bundle } = await setUp(t);
  const bad = async (body: Record<string, unknown>, message: RegExp) => {
    const r = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle, target: { group: 'thermostats' }, ...body } });
    t.equal(r.statusCode, 400, JSON.stringify(body));
    t.match(r.json().message, message);
  };
  await bad({ waves: [{ size: '100%', requireVerified: 'yes' }] }, /requireVerified/);
  await bad({ deadline: 'certificate' }, /certificate must be a PEM certificate/);
  await bad({ deadline: 'certificate', certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' }, /certificate does not parse/);
  await bad({ deadline: '2027-01-01T00:00:00' }, /deadline must be an ISO 8601 date with a time zone/);
  await bad({ deadline: '2027-01-01Z', targetRatio: 0 }, /targetRatio/);
  t.same((await a.call('GET', '/v1/rollouts', { as: 'viewer' })).json().items, []);
});

t.test('a plan that cannot reach the target by the deadline is created with a warning', async (t) => {
  const { a, bundle } = await setUp(t);
  const r = await a.call('POST', '/v1/rollouts', { as: 'operator', body: { bundle, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 7200 }], deadline: '2026-01-01T01:00:00Z' } });
  t.equal(r.statusCode, 201);
  t.match(r.json().deadlineFit, { fits: false, warnings: [/after the deadline/] });
});
