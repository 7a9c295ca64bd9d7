// A telemetry message the store could not commit has no effect, in the telemetry book either
// (docs/architecture.md §7): the book is read again from the store, as the rollouts are, and the
// device's message, sent again once the store writes, counts once. A message that was on its way
// while the book was read again changes the book read, not the one it replaces.
import t from 'tap';
import mqtt from 'mqtt';
import { harness, until } from '../fixtures/gateway.ts';
import { FaultyStore } from '../fixtures/faulty-store.ts';
import { gate, HeldReads } from '../fixtures/held-reads.ts';
import { encodeTelemetry, type PinFailureReport } from '../../firmware-manifest/messages.ts';
import { deviceTopic } from '../../gateway/topics.ts';

const pin = (n: number): string => Buffer.alloc(32, n).toString('base64');

t.test('a telemetry message whose commit fails leaves the book as the store holds it; sent again, it counts once', async (t) => {
  const store = new FaultyStore();
  const h = await harness(t, { store });
  const { devices } = await h.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const [d] = devices;
  const s = Math.floor(h.clock.now() / 1000);
  const report: PinFailureReport = { hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: [pin(66)], knownPins: [pin(1)], seq: 0, bundleId: null, count: 3, suppressed: 0, firstSeen: s - 60, lastSeen: s, counter: 1 };
  const payload = Buffer.from(encodeTelemetry({ deviceId: d.id, group: 'thermostats', firmware: '1.0.0', reports: [report] }));
  const connect = () => mqtt.connectAsync(h.gw.mqttUrl, { clientId: d.id, username: d.id, password: d.token, reconnectPeriod: 0, connectTimeout: 5000 });

  store.failWhen = (changes) => changes.some((c) => c.type === 'telemetry.put');
  const first = await connect();
  const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
  first.publish(deviceTopic(d.id, 'telemetry'), payload, { qos: 1 });
  await closed; // no PUBACK: the gateway closed the connection, the device will send it again
  store.failWhen = null;
  await until(() => h.gw.telemetryCounters().messages === 0, 5000, 'the book to be read again from the store');
  t.same(h.gw.pinFailures({}), [], 'no aggregate holds the failed report');
  t.same(h.gw.recentTelemetry(d.id), [], "nor the device's recent reports");
  t.equal(h.gw.telemetryCounters().reports, 0, 'nor the counters');

  const again = await connect();
  t.teardown(() => again.endAsync(true));
  await again.publishAsync(deviceTopic(d.id, 'telemetry'), payload, { qos: 1 });
  const failures = h.gw.pinFailures({});
  t.equal(failures.length, 1, 'sent again, the report is in the book');
  t.equal(h.gw.telemetryCounters().messages, 1, 'counted once');
  t.equal(h.gw.telemetryCounters().accepted, 1);
});

t.test('a telemetry message that waited while the book was read again is taken into the book read, not the one replaced', async (t) => {
  const store = new HeldReads();
  const h = await harness(t, { store });
  const { devices } = await h.gw.provision(['th-1', 'th-2'].map((id) => ({ id, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const s = Math.floor(h.clock.now() / 1000);
  const payload = (id: string, n: number) =>
    Buffer.from(encodeTelemetry({ deviceId: id, group: 'thermostats', firmware: '1.0.0', reports: [{ hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: [pin(n)], knownPins: [pin(1)], seq: 0, bundleId: null, count: 1, suppressed: 0, firstSeen: s, lastSeen: s, counter: 1 }] }));
  const clients = await Promise.all(devices.map((d) => mqtt.connectAsync(h.gw.mqttUrl, { clientId: d.id, username: d.id, password: d.token, reconnectPeriod: 0, connectTimeout: 5000 })));
  t.teardown(() => Promise.all(clients.map((c) => c.endAsync(true))));

  // th-1's report waits for its device record (read before the book is touched)
  const device = gate();
  store.holdDevice = { id: 'th-1', gate: device.p };
  const first = clients[0].publishAsync(deviceTopic('th-1', 'telemetry'), payload('th-1', 66), { qos: 1 });
  await until(() => store.held.includes('th-1'), 5000, 'th-1 to wait for its record');
  // th-2's report fails to commit: the book is read again from the store, and that read is held once it has read
  const read = gate();
  store.holdNext.set('telemetry', read.p);
  store.failWhen = (changes) => changes.some((c) => c.type === 'telemetry.put');
  const failed = new Promise<void>((resolve) => clients[1].once('close', () => resolve()));
  clients[1].publish(deviceTopic('th-2', 'telemetry'), payload('th-2', 77), { qos: 1 });
  await failed;
  store.failWhen = null;
  await until(() => store.heldReads.has('telemetry'), 5000, 'the book to be read again');
  // th-1 goes on now, while the book read (without its report) is still to replace the one in memory
  device.open();
  store.holdDevice = null;
  await until(() => store.released.includes('th-1'), 1000, "th-1's record to be read");
  await new Promise((resolve) => setImmediate(resolve)); // what th-1's message does next without waiting, it has done
  read.open();
  await first;
  const stored = (await store.listTelemetry()).items.length;
  t.equal(stored, 1, "th-1's report is in the store");
  t.equal(h.gw.recentTelemetry('th-1').length, 1, "and in the book: it was taken into the book read, after the read");
  t.equal(h.gw.pinFailures({}).length, 1, 'one aggregate, as the store holds');
});
