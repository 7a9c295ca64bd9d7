// The embedded broker routes only bundles (docs/architecture.md §5), but aedes needs one of its own
// announcements to reach it: its heartbeat, which marks this broker alive. Every 4 heartbeats aedes
// publishes the stored wills of brokers it does not know to be alive; without its own heartbeat it
// takes itself for dead and "publishes" the will of every connected device. aedes' interval timers
// are node:test's mock timers here, so the test moves time on without waiting for it.
import { mock } from 'node:test';
import mqtt from 'mqtt';
import t from 'tap';
import { DeviceBroker } from '../../../gateway/broker.ts';
import { hashToken, newToken, tokenMatches } from '../../../gateway/credentials.ts';

// aedes' default heartbeat; its will sweep runs every 4 of them
const HEARTBEAT_MS = 60_000;

t.test('a connected device\'s will is not published by aedes\' sweep of dead brokers\' wills', async (t) => {
  mock.timers.enable({ apis: ['setInterval'] });
  t.teardown(() => mock.timers.reset());
  const token = newToken();
  const hash = hashToken(token);
  const broker = await DeviceBroker.start({ port: 0, authenticate: (id, tok) => id === 'meter-1' && tokenMatches(tok, hash) });
  t.teardown(() => broker.close());
  const presence = 'pinwave/v1/devices/meter-1/presence';
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.tcp}`, {
    clientId: 'meter-1',
    username: 'meter-1',
    password: token,
    reconnectPeriod: 0,
    will: { topic: presence, payload: Buffer.from('offline'), qos: 1, retain: false },
  });
  t.teardown(() => device.endAsync(true));

  // four heartbeats, the last with the will sweep; what each starts runs before the next
  for (let i = 0; i < 4; i++) {
    mock.timers.tick(HEARTBEAT_MS);
    for (let j = 0; j < 10; j++) await new Promise((r) => setImmediate(r));
  }
  // a round trip to the broker: anything the sweep started (no I/O) has happened by its PUBACK
  await device.publishAsync(presence, 'online', { qos: 1 });
  t.equal(broker.counters().presenceIn, 1, 'the device\'s own presence message, and no will');
  t.ok(device.connected);
});
