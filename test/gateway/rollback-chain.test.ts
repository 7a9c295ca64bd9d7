// Rolling back a rollback (docs/architecture.md §6): the group's baseline follows the last bundle
// restored, so a device that joins later gets the pins the fleet was brought back to.
import t from 'tap';
import { completedRollout, fleet, harness, newPins, pin, until } from '../fixtures/gateway.ts';
import { MemoryChangeStore } from '../../gateway/store/memory-store.ts';

t.test('rolling back the rollback of a completed rollout moves the baseline to the bundle restored last', async (t) => {
  const { h, devices, rollout } = await completedRollout(t);
  const r1 = { rollout };

  const { rollback: rb } = await h.gw.rollback(r1.rollout.id, 'carol');
  t.equal(await h.gw.baseline('thermostats'), rb.bundle.id, 'the first rollback is the baseline');
  await until(() => devices.every((d) => d.state.seq === rb.bundle.seq), 5000, 'the rollback to apply');

  const { rollback: again } = await h.gw.rollback(rb.id, 'dave');
  t.equal(await h.gw.baseline('thermostats'), again.bundle.id, 'undoing the rollback makes its bundle the baseline');
  await until(() => devices.every((d) => d.state.seq === again.bundle.seq), 5000, 'the second rollback to apply');
});

/** A memory store that holds the rollback's own read of the group baseline (its last read before it commits) until released. */
class GatedStore extends MemoryChangeStore {
  held: (() => void) | null = null;
  reached: Promise<void>;
  #reached!: () => void;
  armed = false;
  constructor() {
    super();
    this.reached = new Promise((resolve) => (this.#reached = resolve));
  }
  override async getGroup(name: string): ReturnType<MemoryChangeStore['getGroup']> {
    const frames = (new Error().stack ?? '').split('\n');
    const at = frames.findIndex((f) => f.includes('baselineOf'));
    if (this.armed && at >= 0 && /Rollouts\.rollback/.test(frames[at + 1] ?? '')) {
      this.armed = false;
      await new Promise<void>((resolve) => {
        this.held = resolve;
        this.#reached();
      });
    }
    return super.getGroup(name);
  }
}

t.test('a rollback that loses its devices to a rollout created meanwhile leaves the rolled-back rollout as it was', async (t) => {
  const store = new GatedStore();
  const { h, devices, rollout } = await completedRollout(t, { store });
  const r1 = { rollout };
  const next = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [...newPins[0].pins, pin('third')] }] }, 'alice');
  const decisions = (await h.gw.getRollout(r1.rollout.id)).decisions.length;

  // The rollback has checked its devices are free and reads the baseline; meanwhile a rollout takes them.
  store.armed = true;
  const rolled = h.gw.rollback(r1.rollout.id, 'carol').then(
    () => null,
    (err: unknown) => err,
  );
  await store.reached;
  await h.gw.createRollout({ bundle: next.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }] }, 'bob');
  store.held!();
  t.match(await rolled, { code: 'PW_CONFLICT' }, 'the rollback is refused');
  const shown = await h.gw.getRollout(r1.rollout.id);
  t.equal(shown.state, 'completed');
  t.equal(shown.rolledBackBy, undefined, 'in memory it is linked to no rollback');
  t.equal(shown.decisions.length, decisions, 'and records no rollback decision the store does not hold');
  t.equal((await store.getRollout(r1.rollout.id))!.decisions.length, decisions);
});

t.test('after a restart, a member a rolled-back rollout never reached is not sent the bundle rolled back', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 3);
  const [late] = devices.slice(2);
  await Promise.all(devices.slice(0, 2).map((d) => d.connect()));
  t.teardown(() => Promise.all(devices.map((d) => d.disconnect())));
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const r1 = await h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }], start: true }, 'alice');
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).waves[0].applied === 2, 5000, 'the rollout to apply');
  // The third device is offline for the whole wave: unreachable, which the wave allows.
  h.clock.advance(3601_000);
  await h.gw.tick();
  h.clock.advance(1000);
  await h.gw.tick();
  await until(async () => (await h.gw.getRollout(r1.rollout.id)).state === 'completed', 5000, 'the rollout to complete');
  const { rollback: rb } = await h.gw.rollback(r1.rollout.id, 'carol');
  t.equal(rb.devices, 2, 'the rollback goes to the devices the bundle reached');
  await until(() => devices.slice(0, 2).every((d) => d.state.seq === rb.bundle.seq), 5000, 'the rollback to apply');

  await Promise.all(devices.slice(0, 2).map((d) => d.disconnect()));
  await h.restart();
  await late.connect();
  await until(() => late.state.seq === rb.bundle.seq, 5000, `the late device to get the baseline, the restored pins (seq ${rb.bundle.seq}, not ${b.seq})`).catch(() => undefined);
  t.equal(late.state.seq, rb.bundle.seq, 'the late device runs the restored pins');
  t.notOk(h.outcomes.some((o) => (o as { deviceId?: string; seq?: number }).deviceId === late.id && (o as { seq?: number }).seq === b.seq), 'it never took the bundle rolled back');
});
