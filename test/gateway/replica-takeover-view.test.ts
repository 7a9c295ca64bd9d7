// A follower that takes over runs the engine on what the database holds (docs/architecture.md §8),
// not on a read of its follower's view still in flight when it took the lead: that read was taken
// before the last leader's latest changes, and swapped in after the new leader's own read it would
// put the engine back on rollouts as they were. Two replicas in this process, on one Mosquitto of
// the test's own and one database.
import t from 'tap';
import { join } from 'node:path';
import { harness, newPins, until } from '../fixtures/gateway.ts';
import { mosquitto } from '../fixtures/mosquitto.ts';
import { testDatabase } from './store/fixtures/pg-database.ts';
import { Gateway, type GatewayOptions } from '../../gateway/gateway.ts';
import { PostgresStore } from '../../gateway/store/postgres.ts';

t.test("a follower's view read in flight at takeover does not replace the new leader's read", async (t) => {
  const url = await testDatabase(t);
  const b = await mosquitto(t);
  const broker = (id: string): GatewayOptions['broker'] => ({ url: b.url, username: b.gateway.username, password: b.gateway.password, clientId: `pinwave@${id}`, client: { reconnectMinMs: 50, reconnectMaxMs: 200 } });
  const h = await harness(t, { storeUrl: url, broker: broker('a') });
  // b's view read, once armed, is slow: it reads what the database holds, then takes 1.5 s to return it
  const proto = PostgresStore.prototype as unknown as { listRollouts: (...a: unknown[]) => Promise<unknown> };
  const real = proto.listRollouts;
  let slowFor: unknown = null;
  proto.listRollouts = async function (this: unknown, ...a: unknown[]) {
    const page = await real.apply(this, a);
    if (slowFor !== null && this === slowFor) {
      slowFor = null;
      await new Promise((r) => setTimeout(r, 1500));
    }
    return page;
  };
  t.teardown(() => void (proto.listRollouts = real));
  const gb = await Gateway.start({ dataDir: join(h.dir, 'b'), keyPath: h.keyPath, mqttPort: 0, now: h.clock.now, tickIntervalMs: 0, manifests: [h.manifest], storeUrl: url, broker: broker('b'), replica: { retryMs: 100 } });
  t.teardown(() => gb.stop());
  await until(() => h.gw.replica?.leader === true, 5000, 'a to lead');
  await h.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100', firmware: '1.0.0' }]);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const { rollout } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 10 }], start: true }, 'alice');
  const state = async (gw: Gateway) => (await gw.getRollout(rollout.id)).state;
  await until(async () => (await state(gb).catch(() => null)) === 'running', 5000, "b's view to show it running");

  slowFor = gb.store;
  // a change on a (a manifest pushed) starts that read on b while the rollout runs
  await h.gw.pushManifest({ model: 'door-7', firmware: '2.1.0', trustedKeys: h.manifest.trustedKeys, pins: [{ host: 'locks.example.com', pins: h.manifest.pins[0].pins }] }, 'fiona');
  await until(() => slowFor === null, 3000, "b's slow view read to start");
  // then a pauses it and stops: b takes over while its old read is still out
  await h.gw.pauseRollout(rollout.id, 'alice');
  const paused = await state(h.gw);
  t.not(paused, 'running', 'paused on a');
  await h.gw.stop();
  await until(() => gb.replica?.leader === true, 5000, 'b to take over');
  await new Promise((r) => setTimeout(r, 1800)); // the slow read has returned
  t.equal(await state(gb), paused, 'the new leader runs the rollout as the database holds it: paused');
});
