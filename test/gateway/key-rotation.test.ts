// Signing-key rotation through the gateway (docs/architecture.md §3, §6): a rotation rolls out signed
// with the key devices trust now; only once it is the group's baseline does the gateway sign with its
// next key, and the devices accept that; pre-flight refuses a bundle rotated devices would reject.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, hex, inspectBundle, kidOf } from '../../firmware-manifest/index.ts';
import { bridgeFor, rollbackSigner, signerFor, keyEpochFindings } from '../../gateway/key-rotation.ts';
import { fleet, harness, newPins, pin, until } from '../fixtures/gateway.ts';

const kidOfRecord = (b: { bytes: string }) => {
  const i = inspectBundle(new Uint8Array(Buffer.from(b.bytes, 'base64')));
  if (!i.ok) throw new Error(i.detail);
  return hex(i.envelope.kid);
};

t.test('a rotation rolls out under the current key; once it is the baseline the gateway signs with the next key, and devices accept it', async (t) => {
  const next = generateKeyPair();
  const nextKeyPath = join(t.testdir(), 'next.key');
  writeFileSync(nextKeyPath, next.privatePem, { mode: 0o600 });
  const h = await harness(t, { nextKeyPath });
  const current = h.gw.signing!.kid;
  const nextKid = hex(kidOf(next.publicKey));
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));

  // The rotation drops the current key: a device that applied it trusts only the next one.
  const rotation = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins, rotateKeys: { epoch: 1, keys: [next.publicPem] } }, 'alice');
  t.equal(kidOfRecord(rotation), current, 'a rotation is signed with the key the devices trust now');
  const r1 = await h.gw.createRollout({ bundle: rotation.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(() => devices.every((d) => d.state.keyEpoch === 1), 5000, 'the rotation to apply');
  await until(async () => (await Promise.all(devices.map((d) => h.gw.getDevice(d.id)))).every((d) => d.keyEpoch === 1), 5000, 'the acks to record the epoch');
  const early = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('e1'), pin('e2')] }] }, 'alice');
  t.equal(kidOfRecord(early), current, 'before the rotation is the baseline, bundles are still signed with the current key');

  await h.gw.tick();
  await until(async () => (await h.gw.baseline('thermostats')) === rotation.id, 5000, 'the rotation to be the baseline');
  t.equal((await h.gw.getRollout(r1.rollout.id)).state, 'completed');
  const refused = await h.gw.createRollout({ bundle: early.id, target: { group: 'thermostats' } }, 'alice').then(() => null, (e: { code: string; details: { problems: Array<{ code: string; count: number }> } }) => e);
  t.match(refused, { code: 'PW_PREFLIGHT', details: { problems: [{ code: 'unknown_key', count: 3 }] } }, 'pre-flight: the rotated devices would reject the current key');

  const after = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('n1'), pin('n2')] }] }, 'alice');
  t.equal(kidOfRecord(after), nextKid, 'the gateway signs with the next key now');
  await h.gw.createRollout({ bundle: after.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(() => devices.every((d) => d.state.seq === after.seq), 5000, 'the devices to accept a bundle signed with the next key');
  t.same(devices[0].state.endpoints[0].pins, [pin('n1'), pin('n2')].map((p) => p.slice(7)));

  // A late joiner, born with the firmware's keys after the group moved to the next key: it gets
  // the rotation first, then the baseline signed with the next key, and never an unknown_key.
  await until(async () => (h.gw.tick(), (await h.gw.baseline('thermostats')) === after.id), 5000, 'the next-key bundle to be the baseline');
  const [late] = await fleet(h, 1, 'late');
  await late.connect();
  t.teardown(() => late.disconnect());
  await until(() => late.state.seq === after.seq, 5000, 'the late joiner to reach the baseline');
  t.equal(late.state.keyEpoch, 1, 'through the rotation');
  t.notOk(h.outcomes.some((o) => o.deviceId === late.id && o.status === 'rejected'), 'it rejected nothing');

  // The choice is derived from the baseline, so a restart keeps it.
  await h.restart();
  t.equal(kidOfRecord(await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('r1'), pin('r2')] }] }, 'alice')), nextKid, 'after a restart too');
  t.equal(kidOfRecord(await h.gw.createBundle({ group: 'locks', endpoints: [{ host: 'api.example.com', pins: [pin('r1'), pin('r2')] }] }, 'alice')), current, 'a group the rotation never reached is still signed with the current key');
  await t.rejects(h.gw.createBundle({ group: 'thermostats', endpoints: newPins, rotateKeys: { epoch: 1, keys: [next.publicPem] } }, 'alice'), { code: 'PW_INVALID', message: /rotateKeys\.epoch: must be above 1, .*epochs only go up: undoing a rotation is a further rotation/ });
  await t.rejects(h.gw.createBundle({ group: 'thermostats', endpoints: newPins, rotateKeys: { epoch: 2, keys: ['nope'] } }, 'alice'), { code: 'PW_INVALID', message: /rotateKeys\.keys\[0\]/ });
});

t.test('signerFor and keyEpochFindings', async (t) => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const ka = { publicKey: a.publicKey, kid: kidOf(a.publicKey) };
  const kb = { publicKey: b.publicKey, kid: kidOf(b.publicKey) };
  t.equal(signerFor(null, ka, kb), ka, 'no baseline: the current key');
  t.equal(signerFor({ kid: ka.kid }, ka, kb), ka, 'a baseline without a rotation to the next key');
  t.equal(signerFor({ kid: ka.kid, keyRotation: { epoch: 1, keys: [a.publicKey, b.publicKey] } }, ka, kb), kb, 'the baseline makes the group trust the next key');
  t.equal(signerFor({ kid: kb.kid }, ka, kb), kb, 'a baseline signed with the next key');
  t.equal(signerFor({ kid: ka.kid, keyRotation: { epoch: 1, keys: [b.publicKey] } }, ka, null), ka, 'no next key configured');

  const rotations = new Map([[1, [b.publicKey]]]);
  const f = keyEpochFindings({ kid: ka.kid, rotation: { epoch: 1, keys: [a.publicKey] }, devices: [{ id: 'd0', keyEpoch: 0 }, { id: 'd1', keyEpoch: 1 }, { id: 'd7', keyEpoch: 7 }], rotations });
  t.match(f.problems, [{ code: 'unknown_key', devices: ['d1'] }, { code: 'stale_key_epoch', devices: ['d1', 'd7'] }]);
  t.match(f.warnings, [{ code: 'unknown_key_epoch', devices: ['d7'] }]);
  t.same(keyEpochFindings({ kid: kb.kid, devices: [{ id: 'd1', keyEpoch: 1 }], rotations }), { problems: [], warnings: [] });

  const r1 = { id: 'r1', seq: 3, exp: 1000, kid: ka.kid, epoch: 1, keys: [a.publicKey, b.publicKey] };
  const r2 = { id: 'r2', seq: 5, exp: 1000, kid: ka.kid, epoch: 2, keys: [b.publicKey] };
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, ka.kid, [r1, r2], 10), null, 'a baseline signed with the firmware key needs no bridge');
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, kb.kid, [r2, r1], 10)?.id, 'r1', 'a late joiner takes the first rotation above its epoch');
  t.equal(bridgeFor({ seq: 3, keyEpoch: 1 }, kb.kid, [r1, r2], 10), null, 'at epoch 1 it trusts the baseline key already');
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, kb.kid, [r1, r2], 2000), null, 'an expired rotation bridges nothing');
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, kb.kid, [r1, r2], 10, [b.publicKey]), null, 'new firmware that ships with the next key needs no bridge');
});

t.test('rolling back a rotation that devices applied: the rollback is signed with a key they trust now, and they take it', async (t) => {
  const next = generateKeyPair();
  const nextKeyPath = join(t.testdir(), 'next.key');
  writeFileSync(nextKeyPath, next.privatePem, { mode: 0o600 });
  const h = await harness(t, { nextKeyPath });
  const nextKid = hex(kidOf(next.publicKey));
  const devices = await fleet(h, 3);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  // The rotation drops the current key; the operator aborts it once the devices applied it (it is
  // never the baseline, so the gateway's default signer is still the current key).
  const rotation = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins, rotateKeys: { epoch: 1, keys: [next.publicPem] } }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: rotation.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await Promise.all(devices.map((d) => h.gw.getDevice(d.id)))).every((d) => d.keyEpoch === 1), 5000, 'the rotation to apply');
  await h.gw.abortRollout(rollout.id, 'alice');
  const { rollback } = await h.gw.rollback(rollout.id, 'alice');
  const sent = await h.gw.getBundle(rollback.bundle.id);
  t.equal(kidOfRecord(sent), nextKid, 'signed with the key the rotated devices trust, not the current one');
  await until(() => devices.every((d) => d.state.seq === sent.seq), 5000, 'the devices to take the rollback');
  t.same(devices[0].state.endpoints[0].pins, h.manifest.pins[0].pins.map((p) => p.slice(7)), 'the pins they ran before');
  t.equal(devices[0].state.keyEpoch, 1, 'the keys stay rotated: epochs only go up');
  t.notOk(h.outcomes.some((o) => o.status === 'rejected'), 'no device rejected it');
});

t.test('a rollback that reached devices would reject as unknown_key is refused, naming them, and nothing is sent', async (t) => {
  const next = generateKeyPair();
  const other = generateKeyPair();
  const nextKeyPath = join(t.testdir(), 'next.key');
  writeFileSync(nextKeyPath, next.privatePem, { mode: 0o600 });
  const h = await harness(t, { nextKeyPath });
  const devices = await fleet(h, 2);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  // A rotation to a key this gateway does not hold (kept offline): after it, the gateway can sign
  // nothing the rotated devices accept.
  const rotation = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins, rotateKeys: { epoch: 1, keys: [other.publicPem] } }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: rotation.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await Promise.all(devices.map((d) => h.gw.getDevice(d.id)))).every((d) => d.keyEpoch === 1), 5000, 'the rotation to apply');
  const before = (await h.gw.listBundles({ group: 'thermostats' })).items.length;
  const refused = await h.gw.rollback(rollout.id, 'alice').then(() => null, (e: { code: string; message: string; details?: { devices?: string[] } }) => e);
  t.match(refused, { code: 'PW_INVALID_STATE', message: /2 devices .*unknown_key/, details: { devices: devices.map((d) => d.id).sort() } });
  t.equal((await h.gw.listBundles({ group: 'thermostats' })).items.length, before, 'no bundle was signed for it');
  const r = await h.gw.getRollout(rollout.id);
  t.equal(r.rolledBackBy, undefined, 'the rollout is as it was');
  t.equal(devices[0].state.seq, rotation.seq);
});

t.test('a rollback of a rotation leaves out a reached device that never took it and would reject the key the others trust', async (t) => {
  const next = generateKeyPair();
  const nextKeyPath = join(t.testdir(), 'next.key');
  writeFileSync(nextKeyPath, next.privatePem, { mode: 0o600 });
  const h = await harness(t, { nextKeyPath });
  const devices = await fleet(h, 3, 'th', (i) => (i === 2 ? { flashFails: true } : {}));
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const rotation = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins, rotateKeys: { epoch: 1, keys: [next.publicPem] } }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: rotation.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).state === 'held', 5000, 'the rejection to hold the rollout');
  await until(async () => (await Promise.all(devices.slice(0, 2).map((d) => h.gw.getDevice(d.id)))).every((d) => d.keyEpoch === 1), 5000, 'the others to apply');
  const { rollback } = await h.gw.rollback(rollout.id, 'alice');
  t.equal(kidOfRecord(await h.gw.getBundle(rollback.bundle.id)), hex(kidOf(next.publicKey)));
  t.equal(rollback.devices, 2, 'sent to the two that hold the rotation');
  await until(() => devices.slice(0, 2).every((d) => d.state.seq === rollback.bundle.seq), 5000, 'the two to take it');
  t.equal(devices[2].state.seq, 0, 'the one that rejected the rotation runs what it ran, and was not sent a bundle it would reject');
  t.equal(h.outcomes.filter((o) => o.deviceId === devices[2].id).length, 1, 'its one outcome is its rejection of the rotation');
});

t.test('rollbackSigner: the first key every holder trusts; non-holders that would reject it are left out', async (t) => {
  const ka = { kid: kidOf(generateKeyPair().publicKey) };
  const kb = { kid: kidOf(generateKeyPair().publicKey) };
  const trusting = (...ks: Array<{ kid: Uint8Array }>) => (kid: Uint8Array) => ks.some((k) => hex(k.kid) === hex(kid));
  const holderB = { id: 'h1', holds: true, trusts: trusting(kb) };
  const otherA = { id: 'o1', holds: false, trusts: trusting(ka) };
  const both = { id: 'h2', holds: true, trusts: trusting(ka, kb) };
  t.same(rollbackSigner([ka, kb], [both, otherA]), { ok: true, key: ka, leftOut: [] }, 'the usual signer when everyone trusts it');
  t.same(rollbackSigner([ka, kb], [holderB, both, otherA]), { ok: true, key: kb, leftOut: ['o1'] });
  t.same(rollbackSigner([ka], [holderB, both, otherA]), { ok: false, key: ka, rejecting: ['h1'] });
  t.same(rollbackSigner([], [holderB]), { ok: false, key: null, rejecting: [] });
});
