// A revocation that lands while a rotation of the same device is in flight leaves the device out of
// the broker (docs/architecture.md §8, §11): the rotation finds the broker's client gone (deleted
// by the revocation) and must not create it again with the new token. On a Mosquitto of the test's
// own, judged with mosquitto_pub (its timing is real: a delayed broker step); and the same race made
// deterministic against a fake of the broker's credentials, with no broker and no sleeps.
import t from 'tap';
import { harness } from '../fixtures/gateway.ts';
import { mosquitto, runClient } from '../fixtures/mosquitto.ts';
import { ExternalTransport } from '../../gateway/broker/external-transport.ts';
import { Devices } from '../../gateway/devices.ts';
import type { DeviceCredentials } from '../../gateway/device-transport.ts';
import { MemoryChangeStore } from '../../gateway/store/memory-store.ts';
import { NO_LOG } from '../../gateway/logger.ts';

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

// The same race, deterministic and without a broker: the registry against a fake of the broker's
// credentials that keeps the plugin's clients as a map and, like ExternalTransport.rotate, creates a
// client the rotation does not find. The rotation's broker step waits until the test lets it go.
class FakeDynsec implements DeviceCredentials {
  readonly brokers = ['mqtt://fake:1883'];
  readonly clients = new Map<string, string>();
  hold: Promise<void> | null = null;
  entered: (() => void) | null = null;
  async provision(devices: ReadonlyArray<{ id: string; token: string }>): Promise<void> {
    for (const d of devices) this.clients.set(d.id, d.token);
  }
  async rotate(id: string, token: string): Promise<void> {
    this.entered?.();
    if (this.hold) await this.hold;
    // "Client not found" → provision it now (gateway/broker/external-transport.ts rotate)
    this.clients.set(id, token);
  }
  async revoke(id: string): Promise<void> {
    this.clients.delete(id);
  }
}

t.test('a revocation that reaches the broker while a rotation of the device waits there: the rotation deletes the client it made again, and says so', async (t) => {
  const store = new MemoryChangeStore();
  await store.open();
  const fake = new FakeDynsec();
  const devices = new Devices({ store, link: { disconnect: () => undefined }, credentials: () => fake, log: NO_LOG, now: () => 1 });
  const [{ token: first }] = (await devices.provision([{ id: 'ext-x', group: 'thermostats' }])).devices;
  t.equal(fake.clients.get('ext-x'), first, 'provisioned in the broker');

  let release!: () => void;
  fake.hold = new Promise<void>((resolve) => (release = resolve));
  const entered = new Promise<void>((resolve) => (fake.entered = resolve));
  const rotation = devices.rotateToken('ext-x').then(
    (r) => r,
    (err: { code: string; message: string }) => err,
  );
  await entered; // the rotation committed its hash and is at the broker
  fake.entered = null;
  await devices.revoke('ext-x');
  t.notOk(fake.clients.has('ext-x'), 'the revocation deleted the client');
  release();
  const answer = await rotation;
  t.match(answer, { code: 'PW_INVALID_STATE', message: 'device "ext-x" was revoked while its token was rotated' });
  t.notOk(fake.clients.has('ext-x'), 'no client of a revoked device is left in the broker: its rotated token opens nothing');
  t.ok((await store.getDevice('ext-x'))?.revokedAt, 'revoked in the store');
  t.equal(await devices.authenticate('ext-x', first), false);
});
