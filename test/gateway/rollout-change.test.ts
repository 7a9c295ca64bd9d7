// Gateway.onRolloutChange: the one hook the console's event streams hang on. Called with the
// rollout's id whenever its record is persisted (creation, every operator action, acks); removable;
// a listener that throws is logged and breaks nothing.
import t from 'tap';
import { fleet, harness, newPins, until } from '../fixtures/gateway.ts';

t.test('a listener hears every persist of a rollout, by id, until it is removed; one that throws breaks nothing', async (t) => {
  const errors: string[] = [];
  const h = await harness(t, { logger: { debug() {}, info() {}, warn() {}, error: (_o: object, msg?: string) => void errors.push(msg ?? '') } });
  const sims = await fleet(h, 3);
  const heard: string[] = [];
  const off = h.gw.onRolloutChange((id) => heard.push(id));
  h.gw.onRolloutChange(() => {
    throw new Error('a broken listener');
  });
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'olga');
  const { rollout } = await h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }] }, 'olga');
  t.same(heard, [rollout.id], 'creation');
  await h.gw.startRollout(rollout.id, 'olga');
  t.ok(heard.length >= 2, 'start');
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  await Promise.all(sims.map((s) => s.connect()));
  await until(async () => (await h.gw.getRollout(rollout.id)).waves[0].applied === 3, 5000, 'the acks');
  t.ok(heard.length >= 2 + 3, `each ack that changed the record (${heard.length} in all)`);
  t.ok(heard.every((id) => id === rollout.id));
  t.ok(errors.includes('rollout change listener failed'), 'the broken listener is logged');
  off();
  const before = heard.length;
  await h.gw.pauseRollout(rollout.id, 'olga').catch(() => {});
  await h.gw.abortRollout(rollout.id, 'olga');
  t.equal(heard.length, before, 'removed: it hears nothing more');
});
