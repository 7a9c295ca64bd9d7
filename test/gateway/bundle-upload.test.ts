// Offline-signed bundles (docs/architecture.md §3): taken only when a device of the group would take
// them, refused with the verifier's reason; a gateway without a signing key runs upload-only, and
// rolls back with an uploaded bundle. Real simulated devices over MQTT apply what was uploaded.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { generateKeyPair, parsePin, privateKeyFromPem, signBundle } from '../../firmware-manifest/index.ts';
import { fleet, harness, pin, until, type Harness } from '../fixtures/gateway.ts';

const DAY = 86400;

function signer(h: Harness, seed = privateKeyFromPem(readFileSync(h.keyPath, 'utf8'))) {
  return (seq: number, o: { group?: string; pins?: string[] } = {}) => {
    const iat = Math.floor(h.clock.now() / 1000);
    return signBundle({ seq, iat, exp: iat + 30 * DAY, group: o.group ?? 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: (o.pins ?? [pin('up'), pin('backup')]).map(parsePin) }] }, seed).bytes;
  };
}

const refusal = (p: Promise<unknown>) => p.then(() => null, (e: { code?: string; details?: { reason?: string; nextSeq?: number }; message: string }) => e);

t.test('an offline-signed bundle is taken only as a device of its group would take it', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 2);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const sign = signer(h);
  const upload = (bytes: Uint8Array, group = 'thermostats') => h.gw.uploadBundle({ group, bytes }, 'olga');

  const stranger = signer(h, generateKeyPair().seed);
  t.match(await refusal(upload(stranger(1))), { code: 'PW_UPLOAD_REFUSED', details: { reason: 'unknown_key' }, message: /does not trust .*the gateway's signing key.*manifest th-100 1\.0\.0/ });
  t.match(await refusal(upload(sign(1, { group: 'locks' }))), { details: { reason: 'wrong_group' } });
  const forged = sign(1);
  forged[forged.length - 1] ^= 1;
  t.match(await refusal(upload(forged)), { details: { reason: 'bad_signature' } });
  t.match(await refusal(upload(sign(5))), { details: { reason: 'seq_not_next', nextSeq: 1 }, message: /sign it again with --seq 1/ });
  t.match(await refusal(h.gw.uploadBundle({ group: '../x', bytes: sign(1) }, 'olga')), { code: 'PW_INVALID' });

  const good = await upload(sign(1));
  t.match(good, { group: 'thermostats', seq: 1, createdBy: 'olga', signedBy: "the gateway's signing key" });
  t.match(await refusal(upload(sign(1))), { details: { reason: 'replayed' } }, 'its seq is taken now: the same bundle again is stale');
  t.match(await refusal(upload(sign(1, { pins: [pin('other'), pin('backup')] }))), { details: { reason: 'replayed' } }, 'and so is another one with that seq');

  const r = await h.gw.createRollout({ bundle: good.id.slice(0, 10), target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'olga');
  await until(() => devices.every((d) => d.state.seq === 1), 5000, 'the uploaded bundle to apply');
  t.same(devices[0].state.endpoints[0].pins, [pin('up'), pin('backup')].map((p) => p.slice(7)));
  t.equal((await h.gw.getRollout(r.rollout.id)).bundle.id, good.id);
  const next = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('x'), pin('y')] }] }, 'olga');
  t.equal(next.seq, 2, 'the gateway signs on after the uploaded seq');
});

t.test('upload-only: a gateway without a signing key signs nothing, takes uploads, and rolls back with an uploaded bundle', async (t) => {
  const h = await harness(t, { keyPath: null });
  t.equal(h.gw.signing, null);
  const devices = await fleet(h, 2);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  t.match(await refusal(h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('a'), pin('b')] }] }, 'olga')), { code: 'PW_NO_SIGNING_KEY', message: /this gateway has no signing key; upload a signed bundle/ });

  // The key lives elsewhere: the devices' manifest trusts it, the gateway never reads it.
  const sign = signer(h);
  const first = await h.gw.uploadBundle({ group: 'thermostats', bytes: sign(1) }, 'olga');
  t.equal(first.signedBy, 'manifest th-100 1.0.0');
  const r1 = await h.gw.createRollout({ bundle: first.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'olga');
  await until(() => devices.every((d) => d.state.seq === 1), 5000, 'the uploaded bundle to apply');

  const cannot = await refusal(h.gw.rollback(r1.rollout.id, 'carol'));
  t.match(cannot, { code: 'PW_NO_SIGNING_KEY', message: /sign the bundle to restore elsewhere \(group thermostats, seq 2, .*pinwave rollout rollback .* --bundle BUNDLE/, details: { pins: [{ host: 'api.example.com', port: 443, pins: [pin('old'), pin('backup')] }] } });
  t.equal((await h.gw.getRollout(r1.rollout.id)).state, 'running', 'nothing changed');
  const restore = await h.gw.uploadBundle({ group: 'thermostats', bytes: sign(2, { pins: [pin('old'), pin('backup')] }) }, 'olga');
  await t.rejects(h.gw.rollback(r1.rollout.id, 'carol', { bundle: first.id }), { code: 'PW_INVALID_STATE', message: /would reject it as replayed/ });
  const { rollback } = await h.gw.rollback(r1.rollout.id, 'carol', { bundle: restore.id.slice(0, 12) });
  t.equal(rollback.bundle.id, restore.id);
  await until(() => devices.every((d) => d.state.seq === 2), 5000, 'the uploaded rollback bundle to apply');
  t.same(devices[1].state.endpoints[0].pins, [pin('old'), pin('backup')].map((p) => p.slice(7)));
});
