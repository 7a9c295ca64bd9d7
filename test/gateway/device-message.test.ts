// Gateway.deviceMessage: a device's message handed to the gateway as its broker hands it over
// (scripts/bench-ingest times the ack path through it, without sockets).
import t from 'tap';
import { encodeAck } from '../../firmware-manifest/index.ts';
import { harness, newPins } from '../fixtures/gateway.ts';

t.test('an ack handed over as the broker does is committed before it resolves, and counted in its rollout', async (t) => {
  const h = await harness(t);
  await h.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: b.id, target: { devices: ['th-1'] }, waves: [{ size: '100%' }], start: true }, 'alice');
  await h.gw.deviceMessage('th-1', 'ack', Buffer.from(encodeAck({ seq: b.seq, bundleId: b.id, status: 'applied' })));
  t.match(await h.gw.store.getDevice('th-1'), { seq: b.seq, bundleId: b.id }, 'in the store when it resolved');
  t.equal((await h.gw.getRollout(rollout.id)).waves[0].applied, 1, 'counted');
  await h.gw.deviceMessage('th-1', 'ack', Buffer.from([0xff]));
  t.equal(h.gw.counters().dropped.malformed_ack, 1, 'a malformed one is dropped and counted, and resolves');
});
