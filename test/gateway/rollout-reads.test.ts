// What the API shows of a rollout is in the store (docs/architecture.md §7). The engine changes a
// rollout's record in memory as it takes an ack, and the ack's batch (the device's seq with its
// status) commits after: a read made while batches are in flight is given once they commit, and
// shows no change made after it was asked for, whose batch may not be stored yet.
import t, { type Test } from 'tap';
import mqtt from 'mqtt';
import { harness, newPins, until } from '../fixtures/gateway.ts';
import { MemoryChangeStore } from '../../gateway/store/memory-store.ts';
import type { Applied, ApplyOptions, Change } from '../../gateway/store/changes.ts';
import { encodeAck } from '../../firmware-manifest/messages.ts';
import { deviceTopic } from '../../gateway/topics.ts';
import { StoreError } from '../../gateway/store/types.ts';

/** A store whose durable batches wait, in order, while it is held, until the test lets them through one by one. */
class HeldStore extends MemoryChangeStore {
  held = false;
  /** a batch to fail when it is let through (as a full disk would); null: none */
  failWhen: ((changes: readonly Change[]) => boolean) | null = null;
  /** per waiting batch: what lets it commit, and its commit */
  readonly waiting: Array<{ go: () => void; done: Promise<unknown> }> = [];
  #queue: Promise<unknown> = Promise.resolve();

  override apply(changes: readonly Change[], options?: ApplyOptions): Promise<Applied> {
    if (!this.held || options?.durable === false) return super.apply(changes, options);
    let go!: () => void;
    const gate = new Promise<void>((resolve) => (go = resolve));
    const run = this.#queue
      .then(() => gate)
      .then(() => {
        if (this.failWhen?.(changes)) throw new StoreError('PW_STORE_IO', 'store memory: writing failed (EIO: injected); nothing of the batch was stored');
        return super.apply(changes, options);
      });
    this.#queue = run.catch(() => undefined);
    this.waiting.push({ go, done: this.#queue });
    return run;
  }

  /** Lets the oldest waiting batch commit, and waits for it. */
  async release(): Promise<void> {
    const next = this.waiting.shift();
    if (!next) throw new Error('no batch is waiting');
    next.go();
    await next.done;
  }
}

/** Three devices connected to a gateway on a HeldStore, in one started rollout of one wave; `ack` is its bundle's `applied`. */
async function threeInARollout(t: Test) {
  const store = new HeldStore();
  const h = await harness(t, { store });
  const { devices } = await h.gw.provision(['th-1', 'th-2', 'th-3'].map((id) => ({ id, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 10 }], start: true }, 'alice');
  const clients = await Promise.all(devices.map((d) => mqtt.connectAsync(h.gw.mqttUrl, { clientId: d.id, username: d.id, password: d.token, reconnectPeriod: 0, connectTimeout: 5000 })));
  t.teardown(() => Promise.all(clients.map((c) => c.endAsync(true))));
  const ack = Buffer.from(encodeAck({ seq: bundle.seq, bundleId: bundle.id, status: 'applied' }));
  return { store, h, devices, bundle, rollout, clients, ack };
}

t.test('a rollout read while acks commit shows what was committed when it was asked for, and the stuck list agrees with it', async (t) => {
  const { store, h, devices, rollout, clients, ack } = await threeInARollout(t);
  const applied = async () => (await h.gw.getRollout(rollout.id)).waves[0].applied;
  /** Device i acks; the gateway takes it, and its batch waits in the store. */
  const pubacks: Array<Promise<unknown>> = [];
  const acks = async (i: number) => {
    const before = store.waiting.length;
    pubacks.push(clients[i].publishAsync(deviceTopic(devices[i].id, 'ack'), ack, { qos: 1 }));
    await until(() => store.waiting.length === before + 1, 5000, `th-${i + 1}'s ack to reach the store`);
  };
  await until(async () => (await h.gw.stuck({ rollout: rollout.id })).every((s) => s.reason === 'no_ack'), 5000, 'the devices to be seen online');

  store.held = true;
  await acks(0);
  const read = h.gw.getRollout(rollout.id);
  const listed = h.gw.listRollouts();
  const stuck = h.gw.stuck({ rollout: rollout.id });
  let answered = 0;
  for (const p of [read, listed, stuck]) void Promise.resolve(p).then(() => answered++);
  await acks(1); // taken after the reads were asked for
  t.equal(answered, 0, "no read is answered while th-1's batch waits");
  await store.release(); // th-1's batch commits; th-2's still waits
  const shown = await read;
  t.equal(shown.waves[0].applied, 1, "the rollout shows th-1's committed ack, not th-2's uncommitted one");
  t.equal((await listed)[0].waves[0].applied, 1, 'so does the list of rollouts');
  t.same((await stuck).map((s) => s.id), ['th-2', 'th-3'], 'th-1 is not stuck: its status and its seq are read as committed together');
  t.equal((await store.getDevice('th-2'))!.seq, null, "th-2's seq is indeed not in the store yet");

  // A stuck list asked for while th-2's batch waits judges th-2 by its committed seq and status.
  const stuckNow = h.gw.stuck({ rollout: rollout.id });
  await acks(2);
  await store.release();
  t.same((await stuckNow).map((s) => s.id), ['th-3'], "th-2 is on the bundle once its ack is committed; th-3's ack came after the question");
  store.held = false;
  await store.release();
  await Promise.all(pubacks);
  t.equal(await applied(), 3, 'every ack counted once committed, and answered');
  t.same(await h.gw.stuck({ rollout: rollout.id }), [], 'and nobody is stuck');
});

t.test("a read asked while an ack's batch fails and a later one commits does not show the failed ack", async (t) => {
  const { store, h, devices, bundle, rollout, clients, ack } = await threeInARollout(t);
  const acks = async (i: number) => {
    const before = store.waiting.length;
    clients[i].publishAsync(deviceTopic(devices[i].id, 'ack'), ack, { qos: 1 }).catch(() => undefined);
    await until(() => store.waiting.length === before + 1, 5000, `th-${i + 1}'s ack to reach the store`);
  };
  await until(async () => (await h.gw.stuck({ rollout: rollout.id })).every((s) => s.reason === 'no_ack'), 5000, 'the devices to be seen online');

  store.held = true;
  await acks(0); // th-1's batch: it will fail
  await acks(1); // th-2's batch, after it: it will commit
  const read = h.gw.getRollout(rollout.id);
  const listed = h.gw.listRollouts();
  store.failWhen = (changes) => changes.some((c) => c.type === 'device.patch' && c.id === 'th-1');
  await store.release(); // th-1's batch fails; th-2's still waits
  store.failWhen = null;
  store.held = false;
  await store.release(); // th-2's batch commits
  t.equal((await store.getDevice('th-1'))!.seq, null, "th-1's ack is not in the store");
  t.equal((await store.getDevice('th-2'))!.seq, bundle.seq, "th-2's is");
  t.equal((await read).waves[0].applied, 1, "the rollout read shows th-2's committed ack, not th-1's failed one");
  t.equal((await listed)[0].waves[0].applied, 1, 'so does the list of rollouts');
  t.equal((await h.gw.getRollout(rollout.id)).waves[0].applied, 1, 'as the store holds, once read again');
});

t.test('a rollout whose creation is still committing is not listed, and one whose creation failed never is', async (t) => {
  const store = new HeldStore();
  const h = await harness(t, { store });
  await h.gw.provision(['th-1'].map((id) => ({ id, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  store.held = true;
  const creating = h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%' }] }, 'alice');
  await until(() => store.waiting.length === 1, 5000, "the creation's batch to reach the store");
  const listed = h.gw.listRollouts();
  store.failWhen = (changes) => changes.some((c) => c.type === 'rollout.create');
  store.held = false;
  await store.release();
  await t.rejects(creating, 'the creation failed');
  t.same(await listed, [], 'the list asked while it committed does not show it');
  t.same(await store.listRollouts().then((p) => p.items), [], 'nor does the store hold it');
});
