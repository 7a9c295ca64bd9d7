// A 1,000-device health-checked fleet against the real gateway (in-process, the injected clock) and a
// local TLS endpoint (docs/architecture.md §9, docs/pin-safety.md). A good pin set: every device
// verifies it by a real handshake and the rollout completes on `verified` acks. Then a pin set that
// misses the key the endpoint serves: every device reverts by itself, the wave is held in the
// handling of the ack that crossed the failure threshold, and none is left locked out: each is back on
// its previous seq (its own word and the gateway's records), its active pins pass a real handshake,
// and nothing is sent to it again (no resend loop), not on reconnect, not on resume.
//
// The gateway's clock never moves: every verdict comes from the devices' acks, not from a timeout.
// Handshakes are given a long timeout so a loaded machine slows the test rather than making a check
// unreachable (which would wait out a real retry).
import t from 'tap';
import { Fleet } from '../../device-sim/fleet.ts';
import { Handshakes } from '../../device-sim/handshakes.ts';
import { startTlsEndpoint, unservedPin } from '../../device-sim/endpoints.ts';
import type { FirmwareManifest } from '../../firmware-manifest/index.ts';
import { WAVE_DEFAULTS } from '../../gateway/rollout/plan.ts';
import { harness, until } from '../fixtures/gateway.ts';

const N = 1000;
const GROUP = 'thermostats';
const MODEL = 'hc-1';

t.test(`${N} health-checked devices: a good pin set is verified by all; a bad one is reverted by all, the wave held at the crossing ack, none locked out`, async (t) => {
  const started = Date.now();
  const h = await harness(t);
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  const manifest: FirmwareManifest = {
    ...h.manifest,
    model: MODEL,
    firmware: '2.0.0',
    pins: [{ host: api.name, pins: [api.pins[0], api.backupPin] }],
    healthCheck: { commitTimeoutSeconds: 600, retrySeconds: 60, onUnverifiable: 'commit' },
  };
  h.gw.addManifest(manifest);
  const { devices } = await h.gw.provision(Array.from({ length: N }, (_, i) => ({ id: `hc-${String(i).padStart(4, '0')}`, group: GROUP, model: MODEL })));
  const ids = devices.map((d) => d.id);
  const handshakes = new Handshakes({ timeoutMs: 60_000, now: h.clock.now });
  const fleet = new Fleet({
    url: () => h.gw.mqttUrl,
    models: [{ manifest }],
    devices: devices.map((d) => ({ ...d, group: GROUP, model: MODEL })),
    endpoints: [api.callHome],
    handshakes,
    callHomeSeconds: 0,
    callHomeOnApply: false,
    now: h.clock.now,
    seed: 'hc-fleet',
  });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await until(() => h.gw.connectedCount() === N, 30_000, 'every device connected');
  await until(async () => (await Promise.all(ids.map((id) => h.gw.store.getDevice(id)))).every((d) => d?.firmware === '2.0.0'), 30_000, 'every state');
  t.equal(fleet.summary().healthChecked, N);
  const settled = async () => {
    await fleet.idle();
    await until(() => h.gw.pendingTasks === 0, 30_000, 'the gateway to settle');
  };

  // ---- a good pin set: it holds the served key, so every device's check passes and it commits.
  const good = await h.gw.createBundle({ group: GROUP, endpoints: [{ host: api.name, pins: [api.pins[0], api.backupPin] }] }, 'alice');
  const first = (await h.gw.createRollout({ bundle: good.id, target: { group: GROUP }, waves: [{ size: '100%', timeoutSeconds: 3600 }], start: true }, 'alice')).rollout;
  await until(() => h.gw.counters().acks.verified === N, 45_000, `${N} verified acks`);
  await settled();
  // The engine's tick (no time passes) moves a wave past its ack threshold on to completion.
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(first.id)).state === 'completed'), 30_000, 'completion');
  const done = await h.gw.getRollout(first.id);
  t.equal(done.state, 'completed', 'the rollout completes on verified acks');
  t.match(done.waves[0], { verified: N, applied: 0, reverted: 0, verifying: 0 });
  t.equal(fleet.summary().verified, N, 'every device says it verified');
  t.same(fleet.summary().seqs, { [good.seq]: N });

  // ---- a bad pin set: it misses the key the endpoint serves; every device that applies it would lock itself out.
  const bad = await h.gw.createBundle({ group: GROUP, endpoints: [{ host: api.name, pins: [unservedPin(), unservedPin()] }] }, 'alice');
  const sentBefore = h.gw.counters().bundlesSent;
  const second = (await h.gw.createRollout({ bundle: bad.id, target: { group: GROUP }, waves: [{ size: '100%', timeoutSeconds: 3600 }], start: true }, 'alice')).rollout;
  await until(() => h.gw.counters().acks.reverted === N, 45_000, `${N} reverted acks`);
  await until(() => Object.values(fleet.summary().reverted).reduce((a, b) => a + b, 0) === N, 30_000, 'every device to say it reverted');
  await settled();

  const held = await h.gw.getRollout(second.id);
  t.equal(held.state, 'held', 'the wave is held');
  const hold = held.decisions.find((d) => d.action === 'hold');
  // Held in the handling of the ack that crossed the threshold: failure counts once minDevices (5)
  // have responded, every response is a revert, so the crossing ack is the 5th, and the decision's
  // figures are those of that ack, not of a later one (or of a timeout: the clock has not moved).
  t.match(hold, { reason: 'failure_threshold', endpoint: 'api.example.com:443' });
  t.equal(hold?.figures?.responded, WAVE_DEFAULTS.minDevices, 'decided on the crossing ack');
  t.equal(hold?.figures?.reverted, hold?.figures?.responded, 'every response so far a revert');
  t.equal(h.clock.now(), Date.UTC(2026, 0, 1), 'no timeout spoke: the clock never moved');
  t.match(held.waves[0], { reverted: N, verified: 0, verifying: 0 }, 'every device counted reverted');
  t.same(fleet.summary().reverted, { 'api.example.com:443': N }, 'each names the endpoint that would have locked it out');

  // None is left locked out: each on its previous seq, by its own word and in the gateway's records.
  t.same(fleet.summary().seqs, { [good.seq]: N }, 'every device is back on the previous bundle');
  const records = await Promise.all(ids.map((id) => h.gw.store.getDevice(id)));
  t.equal(records.filter((d) => d?.seq === good.seq && d.bundleId === good.id).length, N, 'the gateway knows each is back on the previous seq');
  // ... and its active pins reach the endpoint: a real handshake each, none shared from before.
  fleet.forgetHandshakes();
  const performed = handshakes.counters.performed;
  await fleet.callHome();
  t.ok(handshakes.counters.performed > performed, 'real handshakes');
  t.equal(fleet.summary().failing, 0, 'no device fails a pin check after its revert');

  // No resend loop: each device reverted once, the bundle went to each once, and reconnects and a
  // resume send it nothing more.
  t.equal(h.gw.counters().bundlesSent - sentBefore, N, 'the bad bundle went to each device once');
  const reconnecting = ids.slice(0, 50);
  const states = h.gw.counters().messagesIn.state;
  await Promise.all(
    reconnecting.map(async (id) => {
      const d = fleet.device(id)!;
      await d.disconnect();
      await d.connect();
    }),
  );
  await until(() => h.gw.counters().messagesIn.state >= states + reconnecting.length, 30_000, 'their states');
  await settled();
  await h.gw.resumeRollout(second.id, 'alice', { failureThreshold: 1 });
  await settled();
  t.equal(h.gw.counters().bundlesSent - sentBefore, N, 'nothing sent again after reconnects and a resume');
  t.equal(h.gw.counters().acks.reverted, N, 'no device reverted twice');
  t.same(fleet.summary().seqs, { [good.seq]: N }, 'still on the previous bundle');
  t.equal((await h.gw.getRollout(second.id)).waves[0].reverted, N);
  t.ok(Date.now() - started < 60_000, `bounded: ${Date.now() - started} ms`);
});
