// A simulated device's presence (docs/architecture.md §5, §8): a will of `offline` on its own
// presence topic and `online` on connect, QoS 1, not retained. The embedded gateway accepts both
// (and stores nothing retained); a Mosquitto of the test's own publishes the will when the device
// drops without a DISCONNECT, and not when it disconnects cleanly.
import t from 'tap';
import { initialState } from '../../firmware-manifest/index.ts';
import { SimDevice } from '../../device-sim/device.ts';
import { MemoryStateStore } from '../../device-sim/state-store.ts';
import { harness, until } from '../fixtures/gateway.ts';
import { mosquitto, newDevices } from '../fixtures/mosquitto.ts';

const presence = (id: string) => `pinwave/v1/devices/${id}/presence`;

t.test('the embedded gateway accepts a sim device with its will and its online; the will fires on an abrupt close', async (t) => {
  const h = await harness(t);
  const { devices } = await h.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const d = h.device('th-1', devices[0].token);
  await d.connect();
  t.teardown(() => d.disconnect());
  const broker = () => h.gw.counters().broker;
  await until(() => broker().presenceIn === 1, 5000, 'online');
  t.equal(broker().connectionsRefused.will, 0, 'the will is not refused');
  t.equal(h.gw.connectedCount(), 1);
  await until(() => h.gw.counters().messagesIn.state === 1, 5000, 'the state message');
  d.crash();
  await until(() => broker().presenceIn === 2, 5000, 'the will, published by the broker');
  await until(() => h.gw.connectedCount() === 0, 5000, 'the gateway to see the device gone');
  // back, then a clean DISCONNECT: online, and no will
  await d.connect();
  await until(() => broker().presenceIn === 3, 5000, 'online again');
  await d.disconnect();
  await until(() => h.gw.connectedCount() === 0, 5000, 'the disconnect');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(broker().presenceIn, 3, 'no will after a clean DISCONNECT');
  t.equal(broker().aclDenied.publish_topic + broker().aclDenied.publish_retain, 0, 'nothing the device said was refused');
});

t.test('presence: false leaves no will and publishes nothing on the presence topic', async (t) => {
  const h = await harness(t);
  const { devices } = await h.gw.provision([{ id: 'th-2', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const d = new SimDevice({ id: 'th-2', token: devices[0].token, url: h.gw.mqttUrl, model: 'th-100', firmware: '1.0.0', store: new MemoryStateStore(), presence: false }, initialState(h.manifest, 'thermostats'));
  await d.connect();
  await until(() => h.gw.counters().messagesIn.state === 1, 5000, 'the state message');
  d.crash();
  await until(() => h.gw.connectedCount() === 0, 5000, 'the close');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(h.gw.counters().broker.presenceIn, 0);
});

t.test("on a Mosquitto of the test's own, the gateway's client sees online, then the will when the device drops", async (t) => {
  const [dev] = newDevices(1, 'sim');
  const b = await mosquitto(t, { devices: [dev] });
  const gw = await b.gatewayClient('pinwave@presence-test', { clean: true });
  const seen: Array<{ topic: string; payload: string; retain: boolean; qos: number }> = [];
  gw.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos }));
  await gw.subscribeAsync('pinwave/v1/devices/+/presence', { qos: 1 });
  const d = new SimDevice({ id: dev.id, token: dev.token, url: b.url, model: 'th-100', firmware: '1.0.0', store: new MemoryStateStore() }, initialState({ model: 'th-100', firmware: '1.0.0', trustedKeys: [], pins: [] }, 'g'));
  await d.connect();
  t.teardown(() => d.disconnect());
  await until(() => seen.length === 1, 5000, 'online');
  t.same(seen[0], { topic: presence(dev.id), payload: 'online', retain: false, qos: 1 });
  d.crash();
  await until(() => seen.length === 2, 5000, 'the will');
  t.same(seen[1], { topic: presence(dev.id), payload: 'offline', retain: false, qos: 1 }, 'the will: offline, not retained');
  await d.connect();
  await until(() => seen.length === 3, 5000, 'online again');
  await d.disconnect();
  // A message after the disconnect, from another client, marks the point by which a will would have come.
  await gw.publishAsync(presence(dev.id), 'marker', { qos: 1 });
  await until(() => seen.length === 4, 5000, 'the marker');
  t.same(seen.map((s) => s.payload), ['online', 'offline', 'online', 'marker'], 'no will after a clean DISCONNECT');
});
