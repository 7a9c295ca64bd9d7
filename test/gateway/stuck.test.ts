// The stuck list of health-checked devices (docs/architecture.md §9): a reverted device is named with the
// endpoint that would have locked it out; one still verifying is not on its target yet.
import t from 'tap';
import { createRollout, deviceAcked, deviceState, start } from '../../gateway/rollout/engine.ts';
import { findStuck } from '../../gateway/stuck.ts';
import { newDeviceRecord, type DeviceRecord } from '../../gateway/store/types.ts';
import type { Rollout } from '../../gateway/rollout/types.ts';

const T0 = 1_700_000_000_000;
const BUNDLE = { id: 'ab'.repeat(32), seq: 7, group: 'meters' };
const PREVIOUS = 'cd'.repeat(32);

function setUp(requireVerified = true): { r: Rollout; devices: DeviceRecord[] } {
  const ids = ['a', 'b', 'c', 'd'];
  const c = createRollout({ id: 'r1', bundle: BUNDLE, target: { group: 'meters' }, deviceIds: ids, plan: { waves: [{ size: '100%', requireVerified, minDevices: 10 }], seed: 's' }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  start(c.rollout, T0, 'alice', () => true);
  const devices = ids.map((id) => ({ ...newDeviceRecord({ id, group: 'meters', model: 'th-100', firmware: '2.0.0', tokenHash: 'sha256:x', createdAt: T0 }), lastSeen: T0, seq: 3, bundleId: PREVIOUS }));
  return { r: c.rollout, devices };
}

const hold = (d: DeviceRecord) => Object.assign(d, { seq: 7, bundleId: BUNDLE.id });

t.test('reverted:<host:port> for a device that reverted; verifying for one whose health check has not said yes', async (t) => {
  const { r, devices } = setUp();
  const [a, b, c, d] = devices;
  deviceAcked(r, 'a', { status: 'reverted', bundleId: BUNDLE.id, seq: 7, healthChecked: true, endpoint: 'telemetry.example:8443' }, T0 + 1000);
  hold(b);
  deviceState(r, 'b', { seq: 7, bundleId: BUNDLE.id, healthChecked: true, provisional: { previousSeq: 3, previousBundleId: PREVIOUS } }, T0 + 2000);
  hold(c);
  deviceAcked(r, 'c', { status: 'verified', bundleId: BUNDLE.id, seq: 7, healthChecked: true }, T0 + 3000);
  const stuck = findStuck({ devices: [a, b, c, d], targetSeq: 7, targetBundle: BUNDLE.id, rollout: r, isOnline: () => true, now: T0 + 4000 });
  t.same(
    stuck.map((s) => [s.id, s.reason, s.since]),
    [
      ['d', 'no_ack', T0],
      ['a', 'reverted:telemetry.example:8443', T0 + 1000],
      ['b', 'verifying', T0 + 2000],
    ],
  );
});

t.test('with requireVerified off a device holding the bundle is on target, verifying or not', async (t) => {
  const { r, devices } = setUp(false);
  hold(devices[1]);
  deviceState(r, 'b', { seq: 7, bundleId: BUNDLE.id, healthChecked: true, provisional: { previousSeq: 3, previousBundleId: PREVIOUS } }, T0 + 2000);
  const stuck = findStuck({ devices: [devices[1]], targetSeq: 7, targetBundle: BUNDLE.id, rollout: r, isOnline: () => true, now: T0 + 4000 });
  t.same(stuck, []);
});

t.test('a device no rollout names any more: its history says it reverted', async (t) => {
  const { devices } = setUp();
  const a = devices[0];
  a.history.push({ at: T0 + 500, bundleId: BUNDLE.id, seq: 7, event: 'reverted', reason: 'telemetry.example:8443' });
  const stuck = findStuck({ devices: [a], targetSeq: 7, targetBundle: BUNDLE.id, rollout: null, isOnline: () => false, now: T0 + 4000 });
  t.match(stuck, [{ id: 'a', reason: 'reverted:telemetry.example:8443', since: T0 + 500 }]);
});
