// Device credentials and the docs/architecture.md §5 ACL in a real Mosquitto 2.0 managed through its
// dynamic-security plugin, judged by Debian's mosquitto clients (mosquitto_pub, mosquitto_sub:
// .ci/run installs mosquitto and mosquitto-clients). A denied subscription makes mosquitto_sub
// exit 0, and Mosquitto drops a refused MQTT 3.1.1 publish after acknowledging it, so the
// verdicts are whether a message arrives.
import t from 'tap';
import { ExternalBroker } from '../../../gateway/broker/external.ts';
import { DynsecControl, DynsecError } from '../../../gateway/broker/dynsec-control.ts';
import { newToken } from '../../../gateway/credentials.ts';
import { mosquitto, newDevices, runClient, type TestDevice, type TestMosquitto } from '../../fixtures/mosquitto.ts';
import { until } from '../../fixtures/gateway.ts';

type Seen = Array<{ id: string; kind: string; payload: string }>;

async function gateway(t: { teardown(fn: () => unknown): void }, b: TestMosquitto, clientId = 'pinwave@test'): Promise<{ gw: ExternalBroker; seen: Seen }> {
  const seen: Seen = [];
  const gw = await ExternalBroker.start({ url: b.url, password: b.gateway.password, clientId, onMessage: (id, kind, payload) => void seen.push({ id, kind, payload: payload.toString() }) });
  t.teardown(() => gw.close());
  return { gw, seen };
}

const cli = (b: TestMosquitto, d: TestDevice, password = d.token) => ['-h', '127.0.0.1', '-p', String(b.port), '-i', d.id, '-u', d.id, '-P', password];

t.test('a device connects with its token against a file written from the store\'s $7$ hash; a wrong one is refused', async (t) => {
  const [a, b] = newDevices(2);
  const broker = await mosquitto(t, { devices: [a, b] });
  const { seen } = await gateway(t, broker);

  const good = await runClient('mosquitto_pub', [...cli(broker, a), '-t', `pinwave/v1/devices/${a.id}/state`, '-m', 'hello', '-q', '1']);
  t.equal(good.code, 0, good.stderr);
  await until(() => seen.length === 1, 5000, 'the state message');
  t.same(seen, [{ id: a.id, kind: 'state', payload: 'hello' }]);

  const wrong = await runClient('mosquitto_pub', [...cli(broker, a, 'not-the-token'), '-t', `pinwave/v1/devices/${a.id}/state`, '-m', 'x']);
  t.not(wrong.code, 0, 'a wrong token is refused');
  t.match(wrong.stderr, /not authori[sz]ed/i);
  const otherId = await runClient('mosquitto_pub', [...cli(broker, a), '-i', b.id, '-t', `pinwave/v1/devices/${a.id}/state`, '-m', 'x']);
  t.not(otherId.code, 0, 'a device\'s token is refused under another client id');
  const unknown = await runClient('mosquitto_pub', [...cli(broker, { id: 'nobody', token: a.token }), '-t', 'pinwave/v1/devices/nobody/state', '-m', 'x']);
  t.not(unknown.code, 0, 'an unknown device is refused');
  const anonymous = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-t', 'x', '-m', 'x']);
  t.not(anonymous.code, 0, 'so is a client without credentials');
  t.equal(seen.length, 1, 'and nothing else reached the gateway');
});

t.test('another device\'s topics are refused: a denied subscription receives nothing, a forged message never arrives', async (t) => {
  const [a, b] = newDevices(2);
  const broker = await mosquitto(t, { devices: [a, b] });
  const { gw, seen } = await gateway(t, broker);
  // b is a live device: subscribed to its bundle, online by its presence
  const bDevice = await broker.deviceClient(b);
  const bGot: string[] = [];
  bDevice.on('message', (_topic, payload) => bGot.push(payload.toString()));
  await bDevice.subscribeAsync(`pinwave/v1/devices/${b.id}/bundle`, { qos: 1 });
  await bDevice.publishAsync(`pinwave/v1/devices/${b.id}/presence`, 'online', { qos: 1, retain: true });
  await until(() => gw.isConnected(b.id), 5000, 'b online');

  const eavesdrop = (filter: string) => runClient('mosquitto_sub', [...cli(broker, a), '-t', filter, '-q', '1', '-C', '1', '-W', '3', '-v']);
  const listeners = [eavesdrop(`pinwave/v1/devices/${b.id}/bundle`), eavesdrop('pinwave/v1/devices/+/bundle'), eavesdrop('pinwave/#'), eavesdrop(`pinwave/v1/devices/${b.id}/state`)];
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await gw.publishToDevices([b.id], Buffer.from('for b only')), 1);
  await bDevice.publishAsync(`pinwave/v1/devices/${b.id}/state`, 'b state', { qos: 1 });
  for (const run of await Promise.all(listeners)) {
    t.equal(run.stdout.length, 0, 'a received nothing');
    t.match(run.stderr, /denied/i, 'its subscription was refused');
  }

  for (const kind of ['ack', 'state', 'telemetry', 'presence', 'bundle']) {
    await runClient('mosquitto_pub', [...cli(broker, a), '-t', `pinwave/v1/devices/${b.id}/${kind}`, '-m', 'forged', '-q', '1']);
  }
  await runClient('mosquitto_pub', [...cli(broker, a), '-t', `pinwave/v1/devices/${a.id}/bundle`, '-m', 'forged', '-q', '1']);
  await runClient('mosquitto_pub', [...cli(broker, a), '-t', '$CONTROL/dynamic-security/v1', '-m', JSON.stringify({ commands: [{ command: 'deleteClient', username: b.id }] }), '-q', '1']);
  // a's own report, sent last: once it is in, anything forged before it would have been too
  await runClient('mosquitto_pub', [...cli(broker, a), '-t', `pinwave/v1/devices/${a.id}/ack`, '-m', 'mine', '-q', '1']);
  await until(() => seen.some((s) => s.payload === 'mine'), 5000, 'a\'s own ack');
  t.same(seen.map((s) => `${s.id}/${s.kind}=${s.payload}`), [`${b.id}/state=b state`, `${a.id}/ack=mine`], 'nothing forged reached the gateway');
  t.same(bGot, ['for b only'], 'b received its bundle and nothing forged');
  t.ok(gw.isConnected(b.id), 'b\'s presence was not forged offline');
  t.ok(bDevice.connected, 'and a device cannot drive the plugin: b was not deleted');
  await bDevice.publishAsync(`pinwave/v1/devices/${b.id}/state`, 'still here', { qos: 1 });
  await until(() => seen.some((s) => s.payload === 'still here'), 5000, 'b still reporting');
});

t.test('a device receives its exact bundle bytes, queued in its session while it was away', async (t) => {
  const [a] = newDevices(1);
  const broker = await mosquitto(t, { devices: [a] });
  const { gw } = await gateway(t, broker);
  const sub = [...cli(broker, a), '-c', '-q', '1', '-t', `pinwave/v1/devices/${a.id}/bundle`];
  // the device's persistent session, with its subscription, then offline
  await runClient('mosquitto_sub', [...sub, '-W', '1']);
  await runClient('mosquitto_pub', [...cli(broker, a), '-t', `pinwave/v1/devices/${a.id}/presence`, '-m', 'online', '-q', '1', '-r']);
  await until(() => gw.isConnected(a.id), 5000, 'presence online');
  const bundle = Buffer.from([0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0x00, 0xff, 0x0a, 0x0d, 0x80]);
  t.equal(await gw.publishToDevices([a.id, 'not-online'], bundle), 1, 'published to the online device only');
  await until(() => gw.counters().messagesOut === 1, 5000, 'the publish');
  const got = await runClient('mosquitto_sub', [...sub, '-C', '1', '-W', '5', '-N']);
  t.equal(got.code, 0, got.stderr);
  t.equal(got.stdout.toString('hex'), bundle.toString('hex'), 'the exact bytes arrived');
});

t.test('provisioning at run time: the new device connects, with a token the plugin hashed itself', async (t) => {
  const broker = await mosquitto(t);
  const { seen } = await gateway(t, broker);
  const control = new DynsecControl(await broker.gatewayClient('pinwave@admin'));
  const [c, d] = newDevices(2, 'new');
  t.same(await control.provision([c, d]), [{ id: c.id, ok: true }, { id: d.id, ok: true }]);
  t.equal((await runClient('mosquitto_pub', [...cli(broker, c), '-t', `pinwave/v1/devices/${c.id}/state`, '-m', 'hi', '-q', '1'])).code, 0);
  await until(() => seen.length === 1, 5000, 'c\'s state');
  // provisioning again (a retry after a timeout) resets the token, it does not fail
  const again = { id: c.id, token: newToken() };
  t.same(await control.provision([again]), [{ id: c.id, ok: true }]);
  t.not((await runClient('mosquitto_pub', [...cli(broker, c), '-t', 'x', '-m', 'x'])).code, 0, 'the earlier token is refused');
  t.equal((await runClient('mosquitto_pub', [...cli(broker, again), '-t', `pinwave/v1/devices/${c.id}/state`, '-m', 'x'])).code, 0, 'the new one works');
  await t.rejects(control.provision([{ id: 'bad/id', token: 'x' }]), TypeError);
});

t.test('rotation kicks the old session and refuses the old token; revocation deletes and disconnects', async (t) => {
  const [a, b] = newDevices(2);
  const broker = await mosquitto(t, { devices: [a, b] });
  const offline: string[] = [];
  const gw = await ExternalBroker.start({ url: broker.url, password: broker.gateway.password, clientId: 'pinwave@test', onDisconnect: (id) => offline.push(id) });
  t.teardown(() => gw.close());

  for (const d of [a, b]) {
    await runClient('mosquitto_pub', [...cli(broker, d), '-t', `pinwave/v1/devices/${d.id}/presence`, '-m', 'online', '-q', '1', '-r']);
  }
  await until(() => gw.isConnected(a.id) && gw.isConnected(b.id), 5000, 'both online');

  // a live session of a, as MQTT 5 so it is told why it was closed
  const live = await broker.deviceClient(a, { protocolVersion: 5 });
  const kicked = new Promise<number | undefined>((resolve) => live.once('disconnect', (p) => resolve(p.reasonCode)));
  const fresh = newToken();
  await gw.rotateDevice(a.id, fresh);
  t.equal(await kicked, 0x98, 'the old session was closed by the broker (administrative action)');
  t.notOk(gw.isConnected(a.id), 'and marked offline (the broker publishes no will when it kicks)');
  t.match(offline, [a.id]);
  const old = await runClient('mosquitto_pub', [...cli(broker, a), '-t', `pinwave/v1/devices/${a.id}/state`, '-m', 'x']);
  t.not(old.code, 0, 'the old token is refused');
  t.match(old.stderr, /not authori[sz]ed/i);
  t.equal((await runClient('mosquitto_pub', [...cli(broker, a, fresh), '-t', `pinwave/v1/devices/${a.id}/state`, '-m', 'x'])).code, 0, 'the new token works');

  const victim = await broker.deviceClient(b, { protocolVersion: 5 });
  const cut = new Promise<number | undefined>((resolve) => victim.once('disconnect', (p) => resolve(p.reasonCode)));
  await gw.revokeDevice(b.id);
  t.equal(await cut, 0x98, 'the revoked device was disconnected');
  t.notOk(gw.isConnected(b.id));
  const refused = await runClient('mosquitto_pub', [...cli(broker, b), '-t', `pinwave/v1/devices/${b.id}/state`, '-m', 'x']);
  t.not(refused.code, 0, 'and is refused from then on');
  await gw.revokeDevice(b.id);
  t.pass('revoking a device already gone is not an error');
  // what a replica starting now learns from the retained presence: neither kicked device is online
  const late = await ExternalBroker.start({ url: broker.url, password: broker.gateway.password, clientId: 'pinwave@late', presence: 'every-replica' });
  t.teardown(() => late.close());
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(late.isConnected(a.id), 'the rotated device\'s presence was set offline');
  t.notOk(late.isConnected(b.id), 'the revoked device\'s presence was cleared');
  t.equal(late.counters().presenceIn, 1, 'one retained presence left (a\'s offline); b\'s is gone');
  await t.rejects(gw.rotateDevice(b.id, newToken()), { code: 'PW_DYNSEC_REFUSED', detail: 'Client not found' }, 'the plugin\'s own words come back');
});

t.test('the control client: the plugin\'s errors, a client without the gateway role, a broker that never answers', async (t) => {
  const [a] = newDevices(1);
  const broker = await mosquitto(t, { devices: [a] });
  const control = new DynsecControl(await broker.gatewayClient('pinwave@admin'));
  t.same(await control.execute([{ command: 'deleteRole', rolename: 'no-such-role' }, { command: 'getDefaultACLAccess' }]), [
    { command: 'deleteRole', error: 'Role not found' },
    { command: 'getDefaultACLAccess', data: { acls: [
      { acltype: 'publishClientSend', allow: false },
      { acltype: 'publishClientReceive', allow: false },
      { acltype: 'subscribe', allow: false },
      { acltype: 'unsubscribe', allow: true },
    ] } },
  ], 'one result per command, in order, errors as the plugin words them');
  const many = Array.from({ length: 250 }, () => ({ command: 'getDefaultACLAccess' }));
  t.equal((await control.execute(many)).length, 250, 'commands past one batch are split over several messages');

  const asDevice = new DynsecControl(await broker.deviceClient(a, { protocolVersion: 5 }));
  await t.rejects(asDevice.ready(), { code: 'PW_DYNSEC_REFUSED', message: /lacks the gateway's role/ }, 'a device cannot even listen to the plugin');

  const offline = await broker.gatewayClient('pinwave@offline');
  const gone = new DynsecControl(offline);
  await gone.ready();
  await offline.endAsync();
  await t.rejects(gone.execute([{ command: 'getDefaultACLAccess' }]), { code: 'PW_DYNSEC_OFFLINE' }, 'nothing is queued to be sent later');

  // a broker without the plugin takes the control message and never answers
  const plain = await mosquitto(t);
  await plain.process.stop();
  const { writeFileSync } = await import('node:fs');
  writeFileSync(plain.dir.confPath, `listener ${plain.port} 127.0.0.1\nallow_anonymous true\nuser ${process.getuid?.() === 0 ? 'root' : 'mosquitto'}\n`);
  await plain.restart();
  const mute = new DynsecControl(await plain.gatewayClient('pinwave@mute'), { timeoutMs: 200, perCommandMs: 1 });
  await t.rejects(mute.execute([{ command: 'getDefaultACLAccess' }]), { code: 'PW_DYNSEC_TIMEOUT', message: /no answer/ });
  const waiting = mute.execute([{ command: 'getDefaultACLAccess' }]);
  mute.close();
  await t.rejects(waiting, DynsecError);
});
