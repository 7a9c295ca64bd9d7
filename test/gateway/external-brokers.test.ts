// The gateway on two Mosquittos of the test's own (docs/architecture.md §8): devices are provisioned
// across both, the least loaded first, each recorded and told its broker; a device's credentials
// exist on its own broker only (Mosquitto's own clients judge that); a rollout reaches devices on
// both; rotation and revocation go to the device's broker.
import t from 'tap';
import { apiHarness } from '../fixtures/http.ts';
import { harness, newPins, until } from '../fixtures/gateway.ts';
import { hashDeviceToken, newToken } from '../../gateway/credentials.ts';
import { newDeviceRecord } from '../../gateway/store/types.ts';
import { mosquitto, runClient, type TestMosquitto } from '../fixtures/mosquitto.ts';
import { Fleet } from '../../device-sim/fleet.ts';

type Tap = Parameters<typeof apiHarness>[0];

async function twoBrokers(t: Tap) {
  const [a, b] = await Promise.all([mosquitto(t), mosquitto(t)]);
  const link = (m: TestMosquitto) => ({ url: m.url, username: m.gateway.username, password: m.gateway.password, clientId: 'pinwave@test-gw', client: { reconnectMinMs: 50, reconnectMaxMs: 200 } });
  const h = await apiHarness(t, {}, { broker: [link(a), link(b)] });
  return { a, b, h };
}

const topic = (id: string, kind: string) => `pinwave/v1/devices/${id}/${kind}`;
const pub = (m: TestMosquitto, id: string, token: string) => runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(m.port), '-i', id, '-u', id, '-P', token, '-q', '1', '-t', topic(id, 'telemetry'), '-m', 'x']);

t.test('devices are spread over both brokers, each recorded and told its own; its token opens that broker only', async (t) => {
  const { a, b, h } = await twoBrokers(t);
  t.same(h.gw.brokers, [a.url, b.url]);
  const info = (await h.call('GET', '/v1/info')).json();
  t.match(info, { mqttUrl: a.url, broker: 'external', brokers: [a.url, b.url] }, '/v1/info lists every broker');
  const res = await h.call('POST', '/v1/devices', { body: { devices: Array.from({ length: 6 }, (_, i) => ({ id: `mb-${i}`, group: 'thermostats' })) } });
  t.equal(res.statusCode, 201, res.body);
  const given = res.json().devices as Array<{ id: string; token: string; broker: string }>;
  t.same(given.map((d) => d.broker), [a.url, b.url, a.url, b.url, a.url, b.url], 'the least loaded broker first, the first on a tie');
  for (const d of given) t.equal((await h.gw.store.getDevice(d.id))!.broker, d.broker, `${d.id}: recorded`);
  t.equal((await h.call('GET', '/v1/devices/mb-1', { as: 'viewer' })).json().broker, b.url, 'GET /v1/devices/:id says it');

  const onA = given[0];
  const onB = given[1];
  t.equal((await pub(a, onA.id, onA.token)).code, 0, 'a device of A opens A');
  t.equal((await pub(b, onB.id, onB.token)).code, 0, 'a device of B opens B');
  const bOnA = await pub(a, onB.id, onB.token);
  t.not(bOnA.code, 0, 'a device of B is refused by A: its credentials were never given to A');
  t.match(bOnA.stderr, /not authori[sz]ed|Connection Refused/i);
  t.not((await pub(b, onA.id, onA.token)).code, 0, 'and one of A by B');

  // rotation goes to B alone: the new token opens B, and A still knows nothing of the device
  const rotated = (await h.call('POST', `/v1/devices/${onB.id}/token`)).json() as { token: string };
  t.not((await pub(b, onB.id, onB.token)).code, 0, 'the old token is refused by B');
  t.equal((await pub(b, onB.id, rotated.token)).code, 0, 'the new one opens B');
  t.not((await pub(a, onB.id, rotated.token)).code, 0, 'and not A');
  t.equal((await h.call('DELETE', `/v1/devices/${onB.id}`)).statusCode, 200);
  t.not((await pub(b, onB.id, rotated.token)).code, 0, 'revoked on B');

  // B holds 2 devices now, A 3: the next goes to B, then they alternate from A
  const more = (await h.call('POST', '/v1/devices', { body: { devices: [{ id: 'mb-6', group: 'thermostats' }, { id: 'mb-7', group: 'thermostats' }] } })).json().devices;
  t.same(more.map((d: { broker: string }) => d.broker), [b.url, a.url], 'a revoked device no longer counts');
});

t.test('a rollout reaches every device on both brokers, each bundle through its own', async (t) => {
  const { a, b, h } = await twoBrokers(t);
  const n = 40;
  const { devices } = await h.gw.provision(Array.from({ length: n }, (_, i) => ({ id: `mb-f-${String(i).padStart(3, '0')}`, group: 'thermostats', model: 'th-100', firmware: '1.0.0' })));
  t.equal(devices.filter((d) => d.broker === a.url).length, n / 2, 'half on A');
  t.equal(devices.filter((d) => d.broker === b.url).length, n / 2, 'half on B');
  // each simulated device connects where it was provisioned, as the tokens file tells it
  const fleet = new Fleet({ url: 'mqtt://127.0.0.1:1', models: [{ manifest: h.manifest }], devices: devices.map((d) => ({ id: d.id, token: d.token, url: d.broker, group: 'thermostats', model: 'th-100' })), now: h.clock.now, seed: 'mb', presence: 'retained' });
  t.teardown(() => fleet.stop());
  await fleet.start();
  await until(() => h.gw.connectedCount() === n, 15_000, 'every device online by its presence');
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '10%' }, { size: '100%' }], start: true }, 'alice');
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 30_000, 'completion');
  t.same(fleet.summary().seqs, { '1': n }, 'every device on either broker runs the bundle');
  t.equal(h.gw.counters().messagesIn.ack, n, 'one ack from each device');
  const each = (h.gw.counters().broker as { brokers?: Array<{ messagesOut: number; messagesIn: number }> }).brokers!;
  t.ok(each.every((c) => c.messagesOut >= n / 2), `each broker carried its own devices' bundles (${each.map((c) => c.messagesOut).join(' + ')})`);
  t.equal(each[0].messagesOut + each[1].messagesOut, h.gw.counters().bundlesSent, 'each bundle through one broker');
  t.ok(each.every((c) => c.messagesIn >= n / 2), 'and their messages');
});

t.test('a device with no broker recorded belongs to the first: counted there, rotated there', async (t) => {
  const { a, b, h } = await twoBrokers(t);
  // as the embedded gateway provisioned it, before the fleet moved to brokers
  const now = h.clock.now();
  const put = await h.gw.store.apply([{ type: 'device.provision', device: newDeviceRecord({ id: 'mb-old', group: 'thermostats', tokenHash: hashDeviceToken(newToken()), createdAt: now }) }]);
  t.ok(put.ok);
  const { devices } = await h.gw.provision([{ id: 'mb-new', group: 'thermostats' }]);
  t.equal(devices[0].broker, b.url, 'the first broker holds the unrecorded device: the new one goes to the second');
  t.equal((await h.call('GET', '/v1/devices/mb-old', { as: 'viewer' })).json().broker, a.url, 'the API shows it on the first');
  const rotated = await h.gw.rotateToken('mb-old');
  t.equal((await pub(a, 'mb-old', rotated.token)).code, 0, 'its rotation created it on the first broker');
  t.not((await pub(b, 'mb-old', rotated.token)).code, 0, 'and nowhere else');
});

t.test('a gateway one of whose brokers refuses it does not start, naming that broker', async (t) => {
  const [a, b] = await Promise.all([mosquitto(t), mosquitto(t)]);
  const err = await harness(t, {
    broker: [
      { url: a.url, username: a.gateway.username, password: a.gateway.password, clientId: 'pinwave@test-gw' },
      { url: b.url, username: b.gateway.username, password: 'not-the-password', clientId: 'pinwave@test-gw' },
    ],
  }).then(() => null, (e: Error) => e);
  t.match(err?.message, `broker 2 of 2 (${b.url}): the broker at ${b.url} refused the gateway's credentials`);
});
