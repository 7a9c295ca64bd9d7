// Presence follows the sockets (docs/architecture.md §5): a device is connected exactly while one of
// its sessions is open, through reconnect storms of one device id.
import type { Socket } from 'node:net';
import t from 'tap';
import { DeviceBroker } from '../../../gateway/broker.ts';
import { Presence } from '../../../gateway/broker/presence.ts';
import { deviceTopic } from '../../../gateway/topics.ts';
import { harness, newPins, until } from '../../fixtures/gateway.ts';
import { connectPacket, rawConnect, socketClosed, subscribePacket } from '../../fixtures/raw-mqtt.ts';

/** A seeded generator (mulberry32), so a storm replays the same. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `cycles` connect/subscribe/hang-up cycles of device `id`, `parallel` at a time: each connection
 * sends CONNECT and SUBSCRIBE at once and is cut 0–`maxMs` ms later, before, during or after its
 * CONNACK. Resolves once every one of its sockets has closed.
 */
async function storm(port: number, id: string, token: string, o: { cycles: number; parallel: number; maxMs: number; seed: number }): Promise<void> {
  const next = random(o.seed);
  const hello = Buffer.concat([connectPacket({ id, password: token, clean: false, keepalive: 60 }), subscribePacket(1, [deviceTopic(id, 'bundle')])]);
  let started = 0;
  const lane = async () => {
    while (started < o.cycles) {
      started++;
      const socket: Socket = await rawConnect(port);
      socket.write(hello);
      setTimeout(() => socket.destroy(), next() * o.maxMs);
      await socketClosed(socket);
    }
  };
  await Promise.all(Array.from({ length: o.parallel }, lane));
}

t.test('presence counts sessions by identity: open, take over, close', async (t) => {
  const p = new Presence<object>();
  const [a, b] = [{}, {}];
  t.same(p.open('m-1', a), { first: true, others: [] });
  t.same(p.open('m-1', a), { first: false, others: [] }, 'opening the same session again changes nothing');
  t.ok(p.has('m-1'));
  const takeover = p.open('m-1', b);
  t.equal(takeover.first, false);
  t.equal(takeover.others.length, 1);
  t.equal(takeover.others[0], a, 'the session taken over is the older one');
  t.same(p.sessions('m-1'), [a, b]);
  t.equal(p.size, 1, 'one device, two sessions');
  t.notOk(p.close('m-1', a), 'closing the older session leaves the device connected');
  t.ok(p.has('m-1'));
  t.notOk(p.close('m-1', a), 'closing it twice is a no-op');
  t.notOk(p.close('m-2', a), 'so is closing a session of another device');
  t.ok(p.close('m-1', b), 'the last session closed: the device is gone');
  t.notOk(p.has('m-1'));
  t.equal(p.size, 0);
  t.same(p.sessions('m-1'), []);
});

t.test('a reconnect storm of one device ends with the device not connected once its sockets are closed', async (t) => {
  const events: string[] = [];
  // Authentication answers on a later turn, as a store lookup does: connections can close between
  // their authentication and aedes' registration of them, which is where aedes' table goes wrong.
  const broker = await DeviceBroker.start({
    port: 0,
    authenticate: () => new Promise((resolve) => setImmediate(() => resolve(true))),
    onConnect: () => events.push('connect'),
    onDisconnect: () => events.push('disconnect'),
  });
  t.teardown(() => broker.close());
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) {
    events.length = 0;
    // On a loaded machine a short-lived connection may close before its CONNECT is answered: storm
    // again (bounded), each round's connections living up to twice as long, until enough sessions
    // came up for the storm to have tested something.
    for (let round = 0; round < 6 && events.filter((e) => e === 'connect').length <= 20; round++) {
      await storm(broker.ports.tcp!, 'storm-1', 'token', { cycles: 300, parallel: 20, maxMs: 40 * 2 ** round, seed: seed + 100 * round });
    }
    // The broker sees each close a moment after the client does; a ghost would never go.
    await until(() => !broker.isConnected('storm-1'), 2000, `storm ${seed}: the device to be seen gone`);
    t.equal(broker.connectedCount(), 0, `storm ${seed}: no device connected`);
    t.ok(events.filter((e) => e === 'connect').length > 20, `storm ${seed}: sessions came up (${events.length} events)`);
    t.equal(events.at(-1), 'disconnect', `storm ${seed}: the last word is that the device has gone`);
  }
  // and a device still comes and goes cleanly after the storms
  const socket = await rawConnect(broker.ports.tcp!);
  socket.write(connectPacket({ id: 'storm-1', password: 'token' }));
  await until(() => broker.isConnected('storm-1'), 3000, 'a session after the storms');
  socket.destroy();
  await until(() => !broker.isConnected('storm-1'), 2000, 'that session to end');
});

t.test('after a reconnect storm a rollout counts the device unreachable, not silent', async (t) => {
  const h = await harness(t);
  const { devices } = await h.gw.provision([{ id: 'storm-2', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  for (const seed of [7, 8, 9, 10]) {
    await storm(h.gw.ports.tcp!, 'storm-2', devices[0].token, { cycles: 300, parallel: 20, maxMs: 40, seed });
    await until(() => !h.gw.isConnected('storm-2'), 2000, `storm ${seed}: the device to be seen gone`);
  }
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 60 }], start: true }, 'alice');
  t.equal((await h.gw.getRollout(rollout.id)).waves[0].sent, 0, 'nothing was sent to a device that is not there');
  h.clock.advance(61_000);
  await h.gw.tick();
  const w = (await h.gw.getRollout(rollout.id)).waves[0];
  t.equal(w.unreachable, 1, 'unreachable: it was offline for its whole wave');
  t.equal(w.timedOut, 0, 'not timed out, as a device that took the bundle and never acked would be');
  const stuck = await h.gw.stuck({ rollout: rollout.id });
  t.notSame(stuck.map((s) => s.reason), ['no_ack']);
});
