// A telemetry message the store could not commit has no effect, in the telemetry book either
// (docs/architecture.md §7): the book is read again from the store, as the rollouts are, and the
// device's message, sent again once the store writes, counts once.
import t from 'tap';
import mqtt from 'mqtt';
import { harness, until } from '../fixtures/gateway.ts';
import { FaultyStore } from '../fixtures/faulty-store.ts';
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
