// External broker mode end to end (docs/architecture.md §8): a gateway that is a client of a
// Mosquitto of the test's own (dynamic-security plugin, a free port, a temp dir), judged with
// Mosquitto's own clients. The gateway provisions, rotates and revokes devices in the broker; a
// device receives its bundle's exact bytes through the broker; a fleet of simulated devices with
// retained presence completes a rollout there. mosquitto_sub exits 0 even when every subscription is
// denied, so an ACL is judged by whether a message arrives.
import t from 'tap';
import { spawn } from 'node:child_process';
import { harness, newPins, until, type Harness } from '../fixtures/gateway.ts';
import { mosquitto, runClient, type TestMosquitto } from '../fixtures/mosquitto.ts';
import { Fleet } from '../../device-sim/fleet.ts';
import type { GatewayOptions } from '../../gateway/gateway.ts';

type Tap = Parameters<typeof harness>[0];

async function externalGateway(t: Tap, over: Partial<GatewayOptions> = {}): Promise<{ b: TestMosquitto; h: Harness }> {
  const b = await mosquitto(t);
  const h = await harness(t, { broker: { url: b.url, username: b.gateway.username, password: b.gateway.password, clientId: 'pinwave@test-gw', client: { reconnectMinMs: 50, reconnectMaxMs: 200 } }, ...over });
  return { b, h };
}

const topic = (id: string, kind: string) => `pinwave/v1/devices/${id}/${kind}`;
const auth = (b: TestMosquitto, id: string, token: string) => ['-h', '127.0.0.1', '-p', String(b.port), '-i', id, '-u', id, '-P', token];

/**
 * Device `id` as mosquitto_pub and mosquitto_sub make one: `online` (retained), then a persistent
 * session subscribed to its bundle topic (in that order: mosquitto_pub's clean session under the
 * same client id would end it), where the broker queues what the gateway sends. `receive()` reads
 * the next bundle from that session, as hex.
 */
async function queuedDevice(t: Tap & { equal: (a: unknown, b: unknown, m?: string) => void }, b: TestMosquitto, h: Harness, id: string, token: string) {
  const session = [...auth(b, id, token), '-c', '-q', '1', '-t', topic(id, 'bundle')];
  await runClient('mosquitto_pub', [...auth(b, id, token), '-q', '1', '-r', '-t', topic(id, 'presence'), '-m', 'online']);
  await until(() => h.gw.isConnected(id), 5000, 'presence online');
  const subscribed = await runClient('mosquitto_sub', [...session, '-E']);
  t.equal(subscribed.code, 0, `the session: ${subscribed.stderr}`);
  return { receive: () => runClient('mosquitto_sub', [...session, '-C', '1', '-W', '5', '-F', '%x', '-N']) };
}

const hexOf = async (h: Harness, bundleId: string) => Buffer.from((await h.gw.store.getBundle(bundleId))!.bytes, 'base64').toString('hex');

/** A long-running mosquitto_sub: what it printed, and when it exited. */
function subscriber(t: Tap, args: string[]) {
  const child = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  return { out: () => out, err: () => err, exited, kill: () => child.kill('SIGKILL') };
}

t.test('the gateway provisions devices in the broker: their own token opens it, a wrong one does not', async (t) => {
  const { b, h } = await externalGateway(t);
  t.equal(h.gw.brokerMode, 'external');
  t.equal(h.gw.mqttUrl, b.url, 'devices are given the broker');
  t.same(h.gw.ports, {}, 'no listener of the gateway own');
  const { devices } = await h.gw.provision([{ id: 'ext-a', group: 'thermostats' }]);
  const token = devices[0].token;
  const good = await runClient('mosquitto_pub', [...auth(b, 'ext-a', token), '-q', '1', '-t', topic('ext-a', 'telemetry'), '-m', 'x']);
  t.equal(good.code, 0, `its own token: ${good.stderr}`);
  const wrong = await runClient('mosquitto_pub', [...auth(b, 'ext-a', token.slice(0, -2) + 'xx'), '-q', '1', '-t', topic('ext-a', 'telemetry'), '-m', 'x']);
  t.not(wrong.code, 0, 'a wrong token is refused');
  t.match(wrong.stderr, /not authori[sz]ed|Connection Refused/i);
  const unknown = await runClient('mosquitto_pub', [...auth(b, 'ext-nobody', token), '-q', '1', '-t', topic('ext-nobody', 'telemetry'), '-m', 'x']);
  t.not(unknown.code, 0, 'an unknown device is refused');
});

t.test("a device cannot read another device's bundle nor speak for it", async (t) => {
  const { b, h } = await externalGateway(t);
  const { devices } = await h.gw.provision([
    { id: 'ext-a', group: 'thermostats', model: 'th-100', firmware: '1.0.0' },
    { id: 'ext-b', group: 'thermostats', model: 'th-100', firmware: '1.0.0' },
  ]);
  const [a, bDev] = devices;
  // ext-b online (retained, as a device on an external broker leaves it), subscribed under ext-a's credentials to ext-b's bundle
  const online = await runClient('mosquitto_pub', [...auth(b, bDev.id, bDev.token), '-q', '1', '-r', '-t', topic(bDev.id, 'presence'), '-m', 'online']);
  t.equal(online.code, 0, online.stderr);
  await until(() => h.gw.isConnected(bDev.id), 5000, "ext-b's presence");
  const spy = subscriber(t, [...auth(b, a.id, a.token), '-q', '1', '-t', topic(bDev.id, 'bundle'), '-t', topic(bDev.id, '#'), '-C', '1', '-W', '3']);
  // and ext-b's own subscription, to show the bundle did go out
  const own = subscriber(t, [...auth(b, bDev.id, bDev.token), '-q', '1', '-t', topic(bDev.id, 'bundle'), '-C', '1', '-W', '10', '-F', '%x']);
  await new Promise((r) => setTimeout(r, 500));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  await h.gw.createRollout({ bundle: bundle.id, target: { devices: [bDev.id] }, start: true }, 'alice');
  await own.exited;
  t.match(own.out(), /^[0-9a-f]+/, 'ext-b received its bundle');
  await spy.exited;
  t.equal(spy.out(), '', "ext-a's subscriptions to ext-b's topics received nothing");
  // ext-a publishing ext-b's ack: the broker drops it, the gateway never sees it
  const before = h.gw.counters().messagesIn.ack;
  await runClient('mosquitto_pub', [...auth(b, a.id, a.token), '-q', '1', '-t', topic(bDev.id, 'ack'), '-m', 'forged']);
  const mine = await runClient('mosquitto_pub', [...auth(b, a.id, a.token), '-q', '1', '-t', topic(a.id, 'ack'), '-m', 'not cbor']);
  t.equal(mine.code, 0);
  await until(() => h.gw.counters().messagesIn.ack === before + 1, 5000, "ext-a's own ack");
  t.equal(h.gw.counters().messagesIn.ack, before + 1, "only ext-a's own ack reached the gateway, not the forged one");
});

t.test("a device receives its bundle's exact bytes through the broker", async (t) => {
  const { b, h } = await externalGateway(t);
  const { devices } = await h.gw.provision([{ id: 'ext-bytes', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const d = devices[0];
  const device = await queuedDevice(t, b, h, d.id, d.token);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  await h.gw.createRollout({ bundle: bundle.id, target: { devices: [d.id] }, start: true }, 'alice');
  await until(() => h.gw.counters().bundlesSent === 1, 5000, 'the bundle handed to the broker');
  const got = await device.receive();
  t.equal(got.code, 0, got.stderr);
  t.equal(got.stdout.toString(), await hexOf(h, bundle.id), 'byte for byte');
  // not retained: a new subscriber gets nothing
  const late = await runClient('mosquitto_sub', [...auth(b, d.id, d.token), '-q', '1', '-t', topic(d.id, 'bundle'), '-C', '1', '-W', '1']);
  t.equal(late.stdout.length, 0, 'the bundle was not retained');
});

t.test("rotation kicks the old token's session and refuses it after; revocation refuses the device", async (t) => {
  const { b, h } = await externalGateway(t);
  const { devices } = await h.gw.provision([{ id: 'ext-r', group: 'thermostats' }]);
  const old = devices[0].token;
  const live = subscriber(t, [...auth(b, 'ext-r', old), '-q', '1', '-t', topic('ext-r', 'bundle')]);
  await new Promise((r) => setTimeout(r, 300));
  const rotated = await h.gw.rotateToken('ext-r');
  const code = await Promise.race([live.exited, new Promise((r) => setTimeout(() => r('still running'), 5000))]);
  t.not(code, 'still running', `the old session was kicked: ${live.err()}`);
  const stale = await runClient('mosquitto_pub', [...auth(b, 'ext-r', old), '-q', '1', '-t', topic('ext-r', 'telemetry'), '-m', 'x']);
  t.not(stale.code, 0, 'the old token is refused');
  const fresh = await runClient('mosquitto_pub', [...auth(b, 'ext-r', rotated.token), '-q', '1', '-t', topic('ext-r', 'telemetry'), '-m', 'x']);
  t.equal(fresh.code, 0, `the new token opens it: ${fresh.stderr}`);

  const live2 = subscriber(t, [...auth(b, 'ext-r', rotated.token), '-q', '1', '-t', topic('ext-r', 'bundle')]);
  await new Promise((r) => setTimeout(r, 300));
  await h.gw.revoke('ext-r');
  const code2 = await Promise.race([live2.exited, new Promise((r) => setTimeout(() => r('still running'), 5000))]);
  t.not(code2, 'still running', 'the revoked device was disconnected');
  const after = await runClient('mosquitto_pub', [...auth(b, 'ext-r', rotated.token), '-q', '1', '-t', topic('ext-r', 'telemetry'), '-m', 'x']);
  t.not(after.code, 0, 'a revoked device is refused');
  await t.rejects(h.gw.rotateToken('ext-r'), { code: 'PW_INVALID_STATE' }, 'and cannot be given a token again');
});

t.test('a fleet of simulated devices completes a rollout on the external broker, presence retained', async (t) => {
  const { b, h } = await externalGateway(t);
  const n = 60;
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `ext-f-${String(i).padStart(3, '0')}`, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  const fleet = new Fleet({ url: b.url, models: [{ manifest: h.manifest }], devices: devices.map((d) => ({ ...d, group: 'thermostats', model: 'th-100' })), now: h.clock.now, seed: 'ext', presence: 'retained' });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await until(() => h.gw.connectedCount() === n, 10_000, 'every device online by its presence');
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '10%' }, { size: '100%' }], start: true }, 'alice');
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 20_000, 'completion');
  t.same(fleet.summary().seqs, { '1': n }, 'every device runs the bundle');
  const ext = () => h.gw.counters().broker.external!;
  // presence comes at QoS 1 too, and is acknowledged like the rest
  await until(() => ext().acked === ext().messagesIn + ext().presenceIn, 5000, 'every device message the gateway took acknowledged to the broker');
  t.equal(h.gw.counters().messagesIn.ack, n, 'one ack from each device');

  // a gateway that restarts learns who is online from the retained presence
  await h.restart();
  await until(() => h.gw.connectedCount() === n, 10_000, 'presence read again after a restart');
  t.pass('retained presence tells a new gateway process who is online');
});

t.test('the link to the broker comes back: the gateway subscribes again and sends what devices should hold', async (t) => {
  const { b, h } = await externalGateway(t);
  const { devices } = await h.gw.provision([{ id: 'ext-l', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const d = devices[0];
  const device = await queuedDevice(t, b, h, d.id, d.token);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  await h.gw.createRollout({ bundle: bundle.id, target: { devices: [d.id] }, start: true }, 'alice');
  await until(() => h.gw.counters().bundlesSent === 1, 5000, 'the first send');
  t.equal((await device.receive()).code, 0, 'the first send arrived');
  // the broker restarts (its persistence keeps sessions and retained presence): the gateway's link drops and comes back
  const ups = h.gw.counters().broker.external!.linkUps;
  await b.restart();
  await until(() => h.gw.counters().broker.external!.linkUps > ups, 10_000, 'the link back');
  await until(() => h.gw.counters().bundlesSent >= 2, 5000, 'the bundle the device should hold, sent again');
  const again = await device.receive();
  t.equal(again.stdout.toString(), await hexOf(h, bundle.id), 'the same bytes again');
});

t.test('a device message that comes while the gateway stops is not acknowledged, and is handled after the restart', async (t) => {
  const { b, h } = await externalGateway(t);
  const { devices } = await h.gw.provision([{ id: 'ext-s', group: 'thermostats' }]);
  const d = devices[0];
  h.gw.stopAccepting();
  const sent = await runClient('mosquitto_pub', [...auth(b, d.id, d.token), '-q', '1', '-t', topic(d.id, 'ack'), '-m', 'not cbor']);
  t.equal(sent.code, 0, 'Mosquitto acknowledged the device');
  await until(() => h.gw.counters().broker.external!.messagesIn === 1, 5000, 'the message handed over');
  await h.gw.settled();
  t.equal(h.gw.counters().messagesIn.ack, 0, 'not handled while stopping');
  t.equal(h.gw.counters().broker.external!.acked, 0, 'nor acknowledged to the broker');
  await h.restart();
  await until(() => h.gw.counters().messagesIn.ack === 1, 5000, 'the message sent again to the same session');
  t.equal(h.gw.counters().broker.external!.redelivered, 1, 'as a redelivery');
});
