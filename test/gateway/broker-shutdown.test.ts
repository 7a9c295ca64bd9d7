// The broker's part of a shutdown (DeviceBroker.stopAccepting, settled): once told to stop taking
// work it refuses new connections, CONNECTs, SUBSCRIBEs and PUBLISHes (a refused PUBLISH closes
// the connection unacked, so the device sends it again later), keeps the sessions it has, and
// says when everything it took has reached onMessage.
import t from 'tap';
import { connect as connectTcp } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { DeviceBroker } from '../../gateway/broker.ts';
import { hashToken, newToken, tokenMatches } from '../../gateway/credentials.ts';
import { until } from '../fixtures/gateway.ts';

/** An MQTT 3.1.1 CONNECT (§3.1) with username and password, clean session off, keepalive 0. */
function connectPacket(id: string, password: string): Buffer {
  const field = (v: string) => {
    const b = Buffer.from(v);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([field('MQTT'), Buffer.from([4, 0xc0, 0, 0]), field(id), field(id), field(password)]);
  if (body.length > 127) throw new Error('a one-byte remaining length only');
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const hashes = new Map<string, string>();
  const tokens = new Map<string, string>();
  for (const id of ['d-1', 'd-2']) {
    const token = newToken();
    tokens.set(id, token);
    hashes.set(id, hashToken(token));
  }
  const messages: string[] = [];
  const broker = await DeviceBroker.start({
    port: 0,
    authenticate: (id, token) => tokenMatches(token, hashes.get(id)),
    onMessage: (id, kind, payload) => void messages.push(`${id} ${kind} ${payload.toString()}`),
  });
  t.teardown(() => broker.close());
  const url = `mqtt://127.0.0.1:${broker.ports.tcp}`;
  const connect = async (id: string): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(url, { clientId: id, username: id, password: tokens.get(id), clean: false, reconnectPeriod: 0, connectTimeout: 3000 });
    t.teardown(() => c.end(true));
    return c;
  };
  return { broker, tokens, messages, connect };
}

t.test('after stopAccepting, what was PUBACKed is delivered; nothing new is taken; the sessions stay until close', async (t) => {
  const { broker, tokens, messages, connect } = await setup(t);
  const d1 = await connect('d-1');
  await d1.publishAsync('pinwave/v1/devices/d-1/state', 'before', { qos: 1 });
  // A connection open before the stop whose CONNECT comes after it.
  const early = connectTcp(broker.ports.tcp, '127.0.0.1');
  early.on('error', () => {});
  await new Promise<void>((resolve) => early.once('connect', () => resolve()));

  broker.stopAccepting();
  await broker.settled();
  t.same(messages, ['d-1 state before'], 'the message taken before the stop reached onMessage');
  t.equal(broker.connectedCount(), 1, 'the session stays');

  // CONNACK: 0x20, remaining length 2, flags, return code (MQTT 3.1.1 §3.2).
  const connack = new Promise<number>((resolve) => early.once('data', (d: Buffer) => resolve(d[0] === 0x20 ? d[3] : -1)));
  early.write(connectPacket('d-2', tokens.get('d-2')!));
  t.equal(await connack, 3, 'a CONNECT after the stop: server unavailable');
  await until(() => broker.counters().connectionsRefused.shutting_down === 1, 3000, 'the refusal to be counted');

  await t.rejects(mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.tcp}`, { clientId: 'd-2', username: 'd-2', password: tokens.get('d-2'), reconnectPeriod: 0, connectTimeout: 2000 }), { code: 'ECONNREFUSED' }, 'the listener is closed');

  const granted = await new Promise<number[] | undefined>((resolve) => d1.subscribe('pinwave/v1/devices/d-1/bundle', { qos: 1 }, (_err, _subs, packet) => resolve((packet as { granted?: number[] } | undefined)?.granted)));
  t.same(granted, [128], 'a SUBSCRIBE after the stop is refused');
  const gone = new Promise<void>((resolve) => d1.once('close', () => resolve()));
  let acked = false;
  d1.publish('pinwave/v1/devices/d-1/state', 'after', { qos: 1 }, (err) => (acked = !err));
  await gone;
  t.notOk(acked, 'a PUBLISH after the stop is not acked: the connection is closed, the device will send it again');
  await broker.settled();
  t.same(messages, ['d-1 state before'], 'and it never reached onMessage');
  t.equal(broker.counters().aclDenied.publish_topic, 0, 'not counted as an ACL denial');
  early.destroy();
});

t.test('settled() resolves at once when nothing was taken, and stopAccepting twice is harmless', async (t) => {
  const { broker } = await setup(t);
  broker.stopAccepting();
  broker.stopAccepting();
  await broker.settled();
  await broker.close();
  t.pass('closed after stopping');
});
