// A revocation that lands while a rotation of the same device is in flight leaves the device out of
// the broker (docs/architecture.md §8, §11): the rotation finds the broker's client gone (deleted
// by the revocation) and must not create it again with the new token. On a Mosquitto of the test's
// own, judged with mosquitto_pub.
import t from 'tap';
import { harness } from '../fixtures/gateway.ts';
import { mosquitto, runClient } from '../fixtures/mosquitto.ts';
import { ExternalTransport } from '../../gateway/broker/external-transport.ts';

t.test('a device revoked while its token is rotated stays refused by the broker', async (t) => {
  const b = await mosquitto(t);
  const h = await harness(t, { broker: { url: b.url, username: b.gateway.username, password: b.gateway.password, clientId: 'pinwave@test-gw', client: { reconnectMinMs: 50, reconnectMaxMs: 200 } } });
  await h.gw.provision([{ id: 'ext-x', group: 'thermostats' }]);
  // the rotation's broker step is slow (the broker busy rewriting its plugin's file): the
  // revocation, asked meanwhile, reaches the broker first
  const proto = ExternalTransport.prototype as unknown as { rotate: (id: string, token: string) => Promise<void> };
  const real = proto.rotate;
  let given: string | null = null;
  proto.rotate = async function (this: unknown, id: string, token: string) {
    given = token;
    await new Promise((r) => setTimeout(r, 400));
    return real.call(this, id, token);
  };
  t.teardown(() => void (proto.rotate = real));
  const rotating = h.gw.rotateToken('ext-x').then(
    (r) => r.token,
    () => null,
  );
  await new Promise((r) => setTimeout(r, 100));
  await h.gw.revoke('ext-x');
  const token = await rotating;
  t.ok((await h.gw.store.getDevice('ext-x'))?.revokedAt, 'revoked in the store');
  t.equal(token, null, 'the rotation answers that the device was revoked');
  t.ok(given, 'the rotation reached the broker with its new token');
  const pub = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), '-i', 'ext-x', '-u', 'ext-x', '-P', given!, '-q', '1', '-t', 'pinwave/v1/devices/ext-x/telemetry', '-m', 'x']);
  t.not(pub.code, 0, `the rotated token of a revoked device is refused by the broker: ${pub.stderr}`);
});
