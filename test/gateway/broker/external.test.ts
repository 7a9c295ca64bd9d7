// The external-broker client (gateway/broker/external.ts) against a real Mosquitto of its own:
// PUBACK only once the handler resolved, in order; a handler that never resolves or rejects has its
// message sent again; reconnects subscribe again and get what was not acknowledged; a dead
// replica's share waits in its session for whoever connects under its id; presence from the
// devices' own topic.
import t from 'tap';
import type { MqttClient } from 'mqtt';
import { ExternalBroker, type ExternalBrokerOptions } from '../../../gateway/broker/external.ts';
import { mosquitto, newDevices, type TestMosquitto } from '../../fixtures/mosquitto.ts';
import { until } from '../../fixtures/gateway.ts';

type Tap = { teardown(fn: () => unknown): void };

async function replica(t: Tap, b: TestMosquitto, over: Partial<ExternalBrokerOptions> = {}): Promise<ExternalBroker> {
  const gw = await ExternalBroker.start({ url: b.url, password: b.gateway.password, clientId: 'pinwave@r1', reconnectMinMs: 50, reconnectMaxMs: 200, ...over });
  t.teardown(() => gw.close());
  return gw;
}

/** A handler whose promises the test settles: `hold` keeps them pending. */
function gate() {
  const got: string[] = [];
  const pending = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();
  let hold = false;
  return {
    got,
    pending,
    set hold(v: boolean) {
      hold = v;
    },
    onMessage: (_id: string, _kind: string, payload: Buffer) => {
      const text = payload.toString();
      got.push(text);
      if (!hold) return Promise.resolve();
      return new Promise<void>((resolve, reject) => pending.set(text, { resolve, reject }));
    },
  };
}

const report = (device: MqttClient, id: string, text: string) => device.publishAsync(`pinwave/v1/devices/${id}/ack`, text, { qos: 1 });

t.test('a message is not acknowledged until its handler resolves: one never resolved is sent again to the next session', async (t) => {
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const device = await b.deviceClient(d);

  const first = gate();
  first.hold = true;
  const r1 = await replica(t, b, { onMessage: first.onMessage, handlerTimeoutMs: 60_000 });
  await report(device, d.id, 'm1');
  await until(() => first.got.length === 1, 5000, 'm1 handed to the handler');
  t.equal(r1.inHand(), 1, 'held, not acknowledged');
  t.equal(r1.counters().acked, 0);
  await r1.close(); // the handler never resolved: the process went away

  const second = gate();
  const r2 = await replica(t, b, { onMessage: second.onMessage });
  await until(() => second.got.length === 1, 5000, 'm1 sent again to the next session');
  t.same(second.got, ['m1']);
  t.equal(r2.counters().redelivered, 1, 'as a redelivery (DUP)');
  await until(() => r2.counters().acked === 1, 5000, 'acknowledged once committed');
  await r2.close();

  // and once acknowledged it is not sent again: the check above could tell
  const third = gate();
  const r3 = await replica(t, b, { onMessage: third.onMessage });
  await report(device, d.id, 'm2');
  await until(() => third.got.length >= 1, 5000, 'm2');
  await new Promise((r) => setTimeout(r, 200));
  t.same(third.got, ['m2'], 'm1 was not sent a third time');
  t.equal(r3.counters().redelivered, 0);
});

t.test('PUBACKs go out in arrival order: a later message done first waits for the earlier one', async (t) => {
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const device = await b.deviceClient(d);
  const g = gate();
  g.hold = true;
  const r1 = await replica(t, b, { onMessage: g.onMessage, handlerTimeoutMs: 60_000 });
  for (const m of ['a', 'b', 'c']) await report(device, d.id, m);
  await until(() => g.got.length === 3, 5000, 'all three in hand at once');
  g.pending.get('b')!.resolve();
  g.pending.get('c')!.resolve();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(r1.counters().acked, 0, 'b and c wait behind a');
  t.equal(r1.inHand(), 3);
  g.pending.get('a')!.resolve();
  await until(() => r1.counters().acked === 3, 5000, 'all three acknowledged once a is done');
  t.equal(r1.inHand(), 0);
});

t.test('a handler that rejects or times out has its message (and those behind it) sent again after a reconnect', async (t) => {
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const device = await b.deviceClient(d);
  let failures = 1;
  const got: string[] = [];
  const r = await replica(t, b, {
    onMessage: async (_id, _kind, payload) => {
      got.push(payload.toString());
      if (payload.toString() === 'x' && failures-- > 0) throw new Error('store unavailable');
    },
  });
  await report(device, d.id, 'x');
  await until(() => r.counters().acked === 1, 10_000, 'x committed on the second try');
  t.same(got, ['x', 'x'], 'handed twice');
  t.equal(r.counters().handlerFailures, 1);
  // The redelivery can arrive before the new link's SUBSCRIBE is answered (the session kept it),
  // so the link counts as up a moment after the message was handled.
  await until(() => r.counters().linkUps >= 2, 10_000, 'through a new connection');

  let slow = true;
  const r2got: string[] = [];
  await r.close();
  const r2 = await replica(t, b, {
    handlerTimeoutMs: 100,
    onMessage: (_id, _kind, payload) => {
      r2got.push(payload.toString());
      if (slow) {
        slow = false;
        return new Promise<void>(() => {}); // never settles
      }
    },
  });
  await report(device, d.id, 'y');
  await until(() => r2.counters().acked === 1, 10_000, 'y acknowledged after the timeout');
  t.same(r2got, ['y', 'y']);
  t.equal(r2.counters().handlerTimeouts, 1);
});

t.test('a broker restart: the link comes back, subscribes again and gets what was not acknowledged', async (t) => {
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const g = gate();
  const ups: boolean[] = [];
  let downs = 0;
  const r = await replica(t, b, { onMessage: g.onMessage, handlerTimeoutMs: 60_000, onLinkUp: (i) => ups.push(i.sessionPresent), onLinkDown: () => downs++ });
  t.same(ups, [false], 'a first connection has no session');
  g.hold = true;
  const device = await b.deviceClient(d, { reconnectPeriod: 50 });
  await report(device, d.id, 'in flight');
  await until(() => g.got.length === 1, 5000, 'the message in hand');

  await b.restart(); // SIGTERM: Mosquitto writes its persistence, sessions included
  await until(() => ups.length === 2, 10_000, 'the link back up');
  t.equal(downs, 1);
  t.equal(ups[1], true, 'the session survived the restart');
  await until(() => g.got.length === 2, 5000, 'the unacknowledged message sent again');
  t.same(g.got, ['in flight', 'in flight']);
  g.pending.get('in flight')!.resolve(); // the first handling, on the old connection: its ack is void
  g.hold = false;
  await until(() => device.connected, 5000, 'the device back');
  await report(device, d.id, 'after');
  await until(() => g.got.includes('after'), 5000, 'new messages flow');

  await b.crash(); // SIGKILL: what Mosquitto had not saved is gone, sessions included
  await until(() => ups.length === 3, 10_000, 'the link back after a crash');
  await until(() => device.connected, 5000, 'the device back');
  await report(device, d.id, 'after crash');
  await until(() => g.got.includes('after crash'), 5000, 'subscribed again: messages flow after a crash too');
  t.same((await r.credentials.execute([{ command: 'getDefaultACLAccess' }]))[0].command, 'getDefaultACLAccess', 'and the control client hears the plugin again');
});

t.test('a dead replica\'s share waits in its session; connecting under its id receives it', async (t) => {
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const device = await b.deviceClient(d);
  const one = gate();
  const two = gate();
  const r1 = await replica(t, b, { clientId: 'pinwave@one', onMessage: one.onMessage });
  await replica(t, b, { clientId: 'pinwave@two', onMessage: two.onMessage });
  for (let i = 0; i < 10; i++) await report(device, d.id, `live-${i}`);
  await until(() => one.got.length + two.got.length === 10, 5000, 'ten messages');
  t.ok(one.got.length > 0 && two.got.length > 0, `both replicas ingest (${one.got.length} and ${two.got.length})`);

  await r1.close(); // replica one is gone; its session stays
  two.got.length = 0;
  for (let i = 0; i < 10; i++) await report(device, d.id, `dead-${i}`);
  await until(() => two.got.length === 5, 5000, 'the live replica\'s half');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(two.got.length, 5, 'the live replica gets only its share: the rest wait for the dead one');

  const drain = gate();
  const taker = await replica(t, b, { clientId: 'pinwave@one', onMessage: drain.onMessage });
  await until(() => drain.got.length === 5, 5000, 'the dead replica\'s share');
  t.same([...two.got, ...drain.got].sort(), Array.from({ length: 10 }, (_, i) => `dead-${i}`).sort(), 'nothing lost, nothing twice');
  t.equal(taker.counters().acked, 5);
});

t.test('a retired replica ends its session after handling what it held: the others get every share', async (t) => {
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const device = await b.deviceClient(d);
  const leaving = gate();
  const staying = gate();
  const r1 = await replica(t, b, { clientId: 'pinwave@leaving', onMessage: leaving.onMessage });
  await replica(t, b, { clientId: 'pinwave@staying', onMessage: staying.onMessage });
  leaving.hold = true;
  for (let i = 0; i < 4; i++) await report(device, d.id, `before-${i}`);
  await until(() => leaving.got.length + staying.got.length === 4, 5000, 'four messages');
  const retired = r1.retire();
  await new Promise((r) => setTimeout(r, 100));
  for (const p of leaving.pending.values()) p.resolve(); // what it held is committed before it goes
  await retired;
  t.equal(r1.counters().acked, leaving.got.length, 'everything it held was acknowledged');
  staying.got.length = 0;
  for (let i = 0; i < 6; i++) await report(device, d.id, `after-${i}`);
  await until(() => staying.got.length === 6, 5000, 'all six to the replica that stayed');
  const back = gate();
  await replica(t, b, { clientId: 'pinwave@leaving', onMessage: back.onMessage });
  await new Promise((r) => setTimeout(r, 200));
  t.same(back.got, [], 'nothing waited in the retired session');
});

t.test('presence from the devices\' own topic: online on connect, the will when the link drops', async (t) => {
  const [a, z] = newDevices(2);
  const b = await mosquitto(t, { devices: [a, z] });
  const events: string[] = [];
  const r = await replica(t, b, { onConnect: (id) => events.push(`+${id}`), onDisconnect: (id) => events.push(`-${id}`) });
  const will = { topic: `pinwave/v1/devices/${a.id}/presence`, payload: Buffer.from('offline'), qos: 1 as const, retain: true };
  const device = await b.deviceClient(a, { will });
  await device.publishAsync(`pinwave/v1/devices/${a.id}/presence`, 'online', { qos: 1, retain: true });
  await until(() => r.isConnected(a.id), 5000, 'online');
  t.equal(r.connectedCount(), 1);
  device.stream.destroy(); // no DISCONNECT: the broker publishes the will
  await until(() => !r.isConnected(a.id), 5000, 'offline by the will');
  t.same(events, [`+${a.id}`, `-${a.id}`]);

  // a will on another device's presence is never published (checked when it is sent)
  const liar = await b.deviceClient(z, { will: { ...will, topic: `pinwave/v1/devices/${a.id}/presence`, payload: Buffer.from('online') } });
  liar.stream.destroy();
  await device.reconnect(); // a comes back, goes online, then leaves cleanly
  await until(() => device.connected, 5000, 'a back');
  await device.publishAsync(`pinwave/v1/devices/${a.id}/presence`, 'online', { qos: 1, retain: true });
  await until(() => r.isConnected(a.id), 5000, 'online again');
  await device.publishAsync(`pinwave/v1/devices/${a.id}/presence`, 'gibberish', { qos: 1 });
  await until(() => r.counters().presenceMalformed === 1, 5000, 'a malformed presence counted');
  t.ok(r.isConnected(a.id), 'and ignored');

  // a replica started later learns presence from the retained messages
  const late = await replica(t, b, { clientId: 'pinwave@late', presence: 'every-replica' });
  await until(() => late.isConnected(a.id), 5000, 'retained presence');
  t.notOk(late.isConnected(z.id));
  // and so does one restarted under its id, though its session (and subscription) survived
  await r.close();
  const restarted = await replica(t, b, { onLinkUp: (i) => t.ok(i.sessionPresent, 'its session survived') });
  await until(() => restarted.isConnected(a.id), 5000, 'retained presence after a restart');
});

t.test('bundles go QoS 1, not retained, to online devices only; none while the link is down', async (t) => {
  const [a, z] = newDevices(2);
  const b = await mosquitto(t, { devices: [a, z] });
  const r = await replica(t, b);
  const device = await b.deviceClient(a);
  const got: Array<{ qos: number; retain: boolean }> = [];
  device.on('message', (_topic, _payload, packet) => got.push({ qos: packet.qos, retain: packet.retain }));
  await device.subscribeAsync(`pinwave/v1/devices/${a.id}/bundle`, { qos: 1 });
  await device.publishAsync(`pinwave/v1/devices/${a.id}/presence`, 'online', { qos: 1, retain: true });
  await until(() => r.isConnected(a.id), 5000, 'online');
  t.equal(await r.publishToDevices([a.id, z.id], Buffer.from('bundle')), 1, 'z is offline: skipped');
  t.equal(r.publishToDevice(z.id, Buffer.from('bundle')), false);
  t.equal(r.publishToDevice(a.id, Buffer.from('bundle')), true);
  await until(() => got.length === 2, 5000, 'two bundles');
  t.same(got, [{ qos: 1, retain: false }, { qos: 1, retain: false }]);
  await t.rejects(r.publishToDevices(['bad/id'], Buffer.from('x')), TypeError);

  await b.process.kill();
  await until(() => !r.linkUp, 5000, 'link down');
  t.equal(await r.publishToDevices([a.id], Buffer.from('bundle')), 0, 'nothing handed while the link is down');
});

t.test('start refuses wrong credentials, a device-like client id, a url without a port', async (t) => {
  const b = await mosquitto(t);
  await t.rejects(ExternalBroker.start({ url: b.url, password: 'wrong', clientId: 'pinwave@x' }), /refused the gateway's credentials/);
  await t.rejects(ExternalBroker.start({ url: b.url, password: 'x', clientId: 'gw-1' }), { name: 'TypeError', message: /could be a device's/ });
  await t.rejects(ExternalBroker.start({ url: 'mqtt://127.0.0.1', password: 'x', clientId: 'pinwave@x' }), /port/);
  await t.rejects(ExternalBroker.start({ url: 'http://127.0.0.1:1', password: 'x', clientId: 'pinwave@x' }), /mqtt:\/\//);
  const admin = await ExternalBroker.start({ url: b.url, password: b.gateway.password, clientId: 'pinwave@admin' });
  t.teardown(() => admin.close());
  t.same(await admin.credentials.execute([{ command: 'createClient', username: 'weak@gateway', password: 'weak-password' }]), [{ command: 'createClient' }]);
  await t.rejects(ExternalBroker.start({ url: b.url, username: 'weak@gateway', password: 'weak-password', clientId: 'pinwave@weak' }), /the broker refused .*lacks its role/, 'a client without the gateway role fails at once');
  const dead = await mosquitto(t);
  await dead.process.kill();
  await t.rejects(ExternalBroker.start({ url: dead.url, password: dead.gateway.password, clientId: 'pinwave@x', startTimeoutMs: 300, reconnectMinMs: 20 }), /no connection to the broker .* within 300 ms/);
});

t.test('retiring drains what the session still queues even when the broker stalls between deliveries', async (t) => {
  // docs/architecture.md §8: the leader drains a dead replica's session, then ends it (Session
  // Expiry 0). Mosquitto's single thread can stall for seconds (a dynamic-security rewrite), so a
  // quiet spell is no proof that the session's queue is empty: what is left would go with it.
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const device = await b.deviceClient(d);
  // the dead replica: subscribed, then gone with its session kept
  const dead = await replica(t, b, { clientId: 'pinwave@dead', receiveMaximum: 1 });
  await dead.close();
  for (let i = 0; i < 4; i++) await report(device, d.id, `q-${i}`);
  const got: string[] = [];
  let stalled = false;
  const taker = await replica(t, b, {
    clientId: 'pinwave@dead',
    receiveMaximum: 1,
    presence: 'shared',
    onMessage: async (_id, _kind, payload) => {
      got.push(payload.toString());
      await new Promise((r) => setTimeout(r, 20));
      if (!stalled && got.length === 2) {
        stalled = true;
        // the broker busy for 800 ms while the session still queues two
        process.kill(b.process.pid, 'SIGSTOP');
        setTimeout(() => process.kill(b.process.pid, 'SIGCONT'), 800).unref();
      }
    },
  });
  await taker.retire();
  t.same(got, ['q-0', 'q-1', 'q-2', 'q-3'], 'every queued message was handled before the session ended');
  // and nothing is left waiting under that client id
  const back = gate();
  await replica(t, b, { clientId: 'pinwave@dead', onMessage: back.onMessage });
  await new Promise((r) => setTimeout(r, 300));
  t.same(back.got, [], 'the session was ended, empty');
});

t.test('retiring keeps the session when a message it held could not be committed', async (t) => {
  // docs/architecture.md §8: a message the leader could not commit while draining a dead replica's
  // session is not acknowledged; ending the session then would drop it for good.
  const [d] = newDevices(1);
  const b = await mosquitto(t, { devices: [d] });
  const device = await b.deviceClient(d);
  const dead = await replica(t, b, { clientId: 'pinwave@dead' });
  await dead.close();
  await report(device, d.id, 'held');
  const taker = await replica(t, b, { clientId: 'pinwave@dead', presence: 'shared', onMessage: () => Promise.reject(new Error('the store is away')) });
  const retired = await taker.retire().then(
    () => 'ended',
    (err: Error) => err.message,
  );
  t.not(retired, 'ended', 'retire says the session was not drained');
  const back = gate();
  await replica(t, b, { clientId: 'pinwave@dead', onMessage: back.onMessage });
  await until(() => back.got.length === 1, 5000, 'the message that was not committed, kept in the session').catch(() => undefined);
  t.same(back.got, ['held'], 'sent again to whoever connects under that id next');
});
