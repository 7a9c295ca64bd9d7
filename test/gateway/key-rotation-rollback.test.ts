// Rolling back a key rotation (docs/architecture.md §3 KeyRotation, §6): what the devices trust
// afterwards and what the gateway records of it, late joiners after such a rollback, and members
// whose ack of the rotation was lost.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { apply, generateKeyPair, hex, inspectBundle, kidOf, parsePin, signBundle } from '../../firmware-manifest/index.ts';
import { bridgeFor } from '../../gateway/key-rotation.ts';
import type { DeviceQuirks } from '../../device-sim/device.ts';
import { fleet, harness, newPins, pin, until, type Harness } from '../fixtures/gateway.ts';

const kidOfRecord = (b: { bytes: string }) => {
  const i = inspectBundle(new Uint8Array(Buffer.from(b.bytes, 'base64')));
  if (!i.ok) throw new Error(i.detail);
  return hex(i.envelope.kid);
};
const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');

/**
 * A gateway holding a next key, three connected devices (quirks by index), and a rotation to epoch 1
 * listing `keys` ('both': the current and the next key; 'next': the next key only) rolled out to the
 * group in one wave, started; resolves once the devices without quirks recorded epoch 1.
 */
async function rotationRollout(t: Tap.Test, keys: 'both' | 'next', quirks: (i: number) => DeviceQuirks = () => ({})) {
  const next = generateKeyPair();
  const nextKeyPath = join(t.testdir(), 'next.key');
  writeFileSync(nextKeyPath, next.privatePem, { mode: 0o600 });
  const h = await harness(t, { nextKeyPath });
  const devices = await fleet(h, 3, 'th', quirks);
  await Promise.all(devices.map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const listed = keys === 'both' ? [h.manifest.trustedKeys[0], next.publicPem] : [next.publicPem];
  const rotation = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins, rotateKeys: { epoch: 1, keys: listed } }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: rotation.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  const plain = devices.filter((_, i) => Object.keys(quirks(i)).length === 0);
  await until(async () => (await Promise.all(plain.map((d) => h.gw.getDevice(d.id)))).every((d) => d.keyEpoch === 1), 5000, 'the rotation to apply');
  return { h, devices, next, rotation, rollout, current: h.gw.signing! };
}

/** Rolls back `rollout` and waits for the rollback to complete on its `n` devices; the rollback bundle's record. */
async function rolledBack(h: Harness, rollout: string, n: number) {
  const { rollback } = await h.gw.rollback(rollout, 'alice');
  await until(async () => (await h.gw.getRollout(rollback.id)).waves[0].applied === n, 5000, 'the rollback to apply');
  await h.gw.tick();
  await until(async () => (await h.gw.getRollout(rollback.id)).state === 'completed', 5000, 'the rollback to complete');
  return h.gw.getBundle(rollback.bundle.id);
}

/** A one-wave rollout of `bundle` to the group, applied by its `n` devices and completed (the group's baseline). */
async function completed(h: Harness, bundle: string, n: number) {
  const { rollout } = await h.gw.createRollout({ bundle, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === n, 5000, 'the rollout to apply');
  await h.gw.tick();
  await until(async () => (await h.gw.baseline('thermostats')) === bundle, 5000, 'the rollout to be the baseline');
}

const later = (h: Harness, label: string) => h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin(label), pin('backup')] }] }, 'alice');
const refusal = (p: Promise<unknown>) => p.then(() => null, (e: { code: string; message: string; details: Record<string, unknown> }) => e);

t.test('a rolled-back rotation that kept the current key: devices trust both, as the gateway records; a later rollout reaches them', async (t) => {
  const { h, devices, next, rollout, current } = await rotationRollout(t, 'both');
  await h.gw.abortRollout(rollout.id, 'alice');
  const sent = await rolledBack(h, rollout.id, 3);
  t.equal(kidOfRecord(sent), current.kid, 'the rollback is signed with the current key, which every rotated device trusts');
  for (const d of devices) {
    t.equal((await h.gw.getDevice(d.id)).keyEpoch, 1, `the gateway records ${d.id} at the rotation's epoch`);
    t.equal(d.state.keyEpoch, 1, `${d.id} is at the rotation's epoch`);
    t.same(d.state.trustedKeys, [b64(current.publicKey), b64(next.publicKey)], `${d.id} trusts the keys the rotation listed: the current one and the next`);
  }
  const l = await later(h, 'l1');
  t.equal(kidOfRecord(l), current.kid, 'the group is still signed with the current key (the rotation never was its baseline)');
  const { preflight } = await h.gw.createRollout({ bundle: l.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  t.notOk(preflight.problems.some((p) => p.code === 'unknown_key'), 'pre-flight: they trust the current key at epoch 1');
  await until(() => devices.every((d) => d.state.seq === l.seq), 5000, 'the devices to apply it');
  t.notOk(h.outcomes.some((o) => o.status === 'rejected'), 'no device rejected anything');
});

t.test('a rolled-back rotation that dropped the current key: devices trust only the next, as the gateway records and pre-flight says', async (t) => {
  const { h, devices, next, rollout, current } = await rotationRollout(t, 'next');
  await h.gw.abortRollout(rollout.id, 'alice');
  const sent = await rolledBack(h, rollout.id, 3);
  t.equal(kidOfRecord(sent), hex(kidOf(next.publicKey)), 'the rollback is signed with the next key, the only one they trust');
  for (const d of devices) {
    t.equal((await h.gw.getDevice(d.id)).keyEpoch, 1, `the gateway records ${d.id} at the rotation's epoch`);
    t.same([d.state.keyEpoch, d.state.trustedKeys], [1, [b64(next.publicKey)]], `${d.id} trusts only the next key: the rotation replaced its keys whole, and the rollback restored pins, not keys`);
  }
  const l = await later(h, 'l1');
  t.equal(kidOfRecord(l), current.kid, 'the group is still signed with the current key (the rotation never was its baseline)');
  const now = Math.floor(h.clock.now() / 1000);
  for (const d of devices) t.match(apply(d.state, new Uint8Array(Buffer.from(l.bytes, 'base64')), now), { ok: false, reason: 'unknown_key' }, `${d.id} itself would reject a bundle signed with the current key`);
  t.match(await refusal(h.gw.createRollout({ bundle: l.id, target: { group: 'thermostats' } }, 'alice')), { code: 'PW_PREFLIGHT', details: { problems: [{ code: 'unknown_key', devices: devices.map((d) => d.id), count: 3 }] } }, 'and so pre-flight refuses it for each of them');

  // What they trust reaches them: a bundle signed elsewhere with the next key, uploaded.
  const iat = now;
  const seq = l.seq + 1;
  const bytes = signBundle({ seq, iat, exp: iat + 86400, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [pin('u1'), pin('backup')].map(parsePin) }] }, next.seed).bytes;
  const up = await h.gw.uploadBundle({ group: 'thermostats', bytes }, 'olga');
  const { preflight } = await h.gw.createRollout({ bundle: up.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }], start: true }, 'alice');
  t.same(preflight.problems, [], 'pre-flight passes a bundle signed with the key they trust');
  await until(() => devices.every((d) => d.state.seq === seq), 5000, 'the devices to apply it');
});

t.test('a late joiner after a rotation was rolled back is bridged by a later rotation, never by the one rolled back', async (t) => {
  const { h, rollout, rotation, next } = await rotationRollout(t, 'both');
  await h.gw.abortRollout(rollout.id, 'alice');
  await rolledBack(h, rollout.id, 3);
  // A second rotation, to epoch 2 and the next key only, completes: the group moves to the next key.
  const second = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('r2'), pin('backup')] }], rotateKeys: { epoch: 2, keys: [next.publicPem] } }, 'alice');
  await completed(h, second.id, 3);
  const l = await later(h, 'l1');
  t.equal(kidOfRecord(l), hex(kidOf(next.publicKey)), 'signed with the next key');
  await completed(h, l.id, 3);

  // Born with the firmware's keys (epoch 0), it trusts neither the baseline's key nor, before a
  // rotation, anything signed with it: the rolled-back rotation (epoch 1) would bring it there too,
  // with the pins it undid.
  await h.restart(); // what was rolled back is read from the store
  const [late] = await fleet(h, 1, 'late');
  await late.connect();
  t.teardown(() => late.disconnect());
  const mine = () => h.outcomes.filter((o) => o.deviceId === late.id);
  await until(() => mine().length === 2, 5000, 'the late joiner to apply a bridge and the baseline');
  t.same(mine().map((o) => [o.bundleId, o.status]), [[second.id, 'applied'], [l.id, 'applied']], 'bridged by the second rotation');
  t.notOk(mine().some((o) => o.bundleId === rotation.id), 'never sent the rolled-back rotation');
  t.same([late.state.seq, late.state.keyEpoch], [l.seq, 2], 'it runs the baseline at epoch 2');
});

t.test('bridgeFor offers no rotation that was rolled back', async (t) => {
  const a = generateKeyPair();
  const b = generateKeyPair();
  const r1 = { id: 'r1', seq: 3, exp: 1000, kid: kidOf(a.publicKey), epoch: 1, keys: [a.publicKey, b.publicKey] };
  const r2 = { id: 'r2', seq: 6, exp: 1000, kid: kidOf(a.publicKey), epoch: 2, keys: [b.publicKey] };
  const undone = (id: string) => id === 'r1';
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, kidOf(b.publicKey), [r1, r2], 10, [a.publicKey])?.id, 'r1', 'the first rotation above its epoch');
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, kidOf(b.publicKey), [r1, r2], 10, [a.publicKey], undone)?.id, 'r2', 'the next one, the first rolled back');
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, kidOf(b.publicKey), [r1], 10, [a.publicKey], undone), null, 'none when the only one was rolled back: the baseline is all there is');
  t.equal(bridgeFor({ seq: 3, keyEpoch: 1 }, kidOf(b.publicKey), [r1, r2], 10, undefined, undone), null, 'a device that applied the rolled-back rotation still trusts its keys');
  t.equal(bridgeFor({ seq: 0, keyEpoch: 0 }, kidOf(a.publicKey), [r1, r2], 10, undefined, () => t.fail('asked about a rotation while none is needed')), null, 'asked only when a bridge is needed');
});

t.test('a member whose ack of a rotation was lost is in its rollback: refused, naming it, while no key is trusted at both epochs', async (t) => {
  // th-0002 applies the rotation (to the next key only) and never acks: the gateway has it at epoch 0.
  const { h, devices, rollout, rotation, next } = await rotationRollout(t, 'next', (i) => (i === 2 ? { silent: true } : {}));
  const silent = devices[2];
  await until(() => silent.state.seq === rotation.seq, 5000, 'the silent device to apply the rotation');
  t.same([silent.state.keyEpoch, (await h.gw.getDevice(silent.id)).keyEpoch], [1, 0], 'it is at epoch 1; the gateway has it at 0');
  const bundles = (await h.gw.listBundles({ group: 'thermostats' })).items.length;
  const refusedWhile = async (status: string) => {
    t.equal(h.gw.deviceRollout(silent.id)?.status, status, `its ack lost, it is ${status} in the rotation`);
    const refused = await refusal(h.gw.rollback(rollout.id, 'alice'));
    t.match(refused, { code: 'PW_INVALID_STATE', message: /1 device holding its bundle would reject the rollback as unknown_key.*1 of them may be at either epoch: their ack of the rotation was lost/, details: { devices: [silent.id], count: 1 } }, `${status}: refused, naming it`);
    t.equal((await h.gw.getRollout(rollout.id)).rolledBackBy, undefined, `${status}: the rollout is as it was`);
    t.equal((await h.gw.listBundles({ group: 'thermostats' })).items.length, bundles, `${status}: no bundle was signed for it`);
  };
  await refusedWhile('sent');
  h.clock.advance(3601_000);
  await h.gw.tick();
  await refusedWhile('timed_out');

  // Once it says where it is (its state, on connecting again), the rollback goes to it too.
  await silent.disconnect();
  await silent.connect();
  await until(async () => (await h.gw.getDevice(silent.id)).keyEpoch === 1, 5000, 'its state to be recorded');
  const { rollback } = await h.gw.rollback(rollout.id, 'alice');
  t.equal(kidOfRecord(await h.gw.getBundle(rollback.bundle.id)), hex(kidOf(next.publicKey)), 'signed with the next key, which all three trust at epoch 1');
  t.equal(rollback.devices, 3, 'sent to all three');
  await until(() => devices.every((d) => d.state.seq === rollback.bundle.seq), 5000, 'all three to take it');
  t.same(silent.state.endpoints[0].pins, h.manifest.pins[0].pins.map((p) => p.slice(7)), 'the silent one runs the pins it ran before');
});

t.test('a member whose ack of a rotation was lost takes its rollback, signed with a key it trusts at either epoch', async (t) => {
  const { h, devices, rollout, rotation, current } = await rotationRollout(t, 'both', (i) => (i === 2 ? { silent: true } : {}));
  const silent = devices[2];
  await until(() => silent.state.seq === rotation.seq, 5000, 'the silent device to apply the rotation');
  h.clock.advance(3601_000);
  await h.gw.tick();
  t.equal(h.gw.deviceRollout(silent.id)?.status, 'timed_out', 'its ack lost, it timed out in the rotation');
  const { rollback } = await h.gw.rollback(rollout.id, 'alice');
  t.equal(kidOfRecord(await h.gw.getBundle(rollback.bundle.id)), current.kid, 'signed with the current key, trusted at epoch 0 and at the rotation');
  t.equal(rollback.devices, 3, 'sent to all three');
  await until(() => devices.every((d) => d.state.seq === rollback.bundle.seq), 5000, 'all three to take it');
  t.notOk(h.outcomes.some((o) => o.status === 'rejected'), 'none rejected it');
});
