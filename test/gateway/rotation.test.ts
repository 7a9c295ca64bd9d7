// Token rotation (docs/architecture.md §5): what an operator does when a device's token leaks, so a
// session opened with the old token must not outlive it.
import mqtt, { type MqttClient } from 'mqtt';
import t from 'tap';
import { deviceTopic } from '../../gateway/topics.ts';
import { harness, until } from '../fixtures/gateway.ts';

const connect = (url: string, id: string, token: string) =>
  mqtt.connectAsync(url, { clientId: id, username: id, password: token, clean: false, reconnectPeriod: 0, connectTimeout: 3000, keepalive: 0 }, false);

t.test('rotating a token closes the live session opened with the old one at once, and the old token is refused after', async (t) => {
  const h = await harness(t);
  const { devices } = await h.gw.provision([{ id: 'rot-1', group: 'thermostats' }]);
  const old = devices[0].token;
  // keepalive 0: a session that would never time out by itself
  const live: MqttClient = await connect(h.gw.mqttUrl, 'rot-1', old);
  t.teardown(() => live.endAsync(true));
  await live.publishAsync(deviceTopic('rot-1', 'telemetry'), Buffer.from([0xa0]), { qos: 1 });
  await until(() => h.gw.isConnected('rot-1'), 3000, 'the session');

  const closed = new Promise<number>((resolve) => live.once('close', () => resolve(Date.now())));
  const rotatedAt = Date.now();
  const { token } = await h.gw.rotateToken('rot-1');
  const closedAt = await Promise.race([closed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the old session was still open a second after rotation')), 1000))]);
  t.ok(closedAt - rotatedAt < 1000, `closed ${closedAt - rotatedAt} ms after rotation`);
  t.notOk(h.gw.isConnected('rot-1'));

  const again = await connect(h.gw.mqttUrl, 'rot-1', old).then(
    (c) => (c.end(true), 'accepted'),
    (err: { code?: number }) => err.code,
  );
  t.equal(again, 4, 'the old token is refused: bad username or password');
  const fresh = await connect(h.gw.mqttUrl, 'rot-1', token);
  t.teardown(() => fresh.endAsync(true));
  t.ok(fresh.connected, 'the new token connects');
  await until(() => h.gw.isConnected('rot-1'), 3000, 'the new session');
});
