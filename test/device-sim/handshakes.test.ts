// Real TLS handshakes to local endpoints: the pins devices see are the pins openssl computes, shared
// within a window unless each check must handshake, and a device reports a key it has not pinned.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:tls';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { formatPin, generateKeyPair, initialState, type FirmwareManifest } from '../../firmware-manifest/index.ts';
import { makeCertificate, startTlsEndpoint, unservedPin } from '../../device-sim/endpoints.ts';
import { Handshakes, tlsHandshake } from '../../device-sim/handshakes.ts';
import { SimDevice } from '../../device-sim/device.ts';
import { MemoryStateStore } from '../../device-sim/state-store.ts';
import { fetchServedChain } from '../../gateway/tls-probe.ts';
import { chain, recipePin } from '../fixtures/openssl.ts';
import { until } from '../fixtures/gateway.ts';
import { bareBroker } from './fixtures/sim.ts';

t.test('a certificate made for an endpoint has the pin the openssl recipe prints', async (t) => {
  const c = makeCertificate('api.example.com');
  const file = join(t.testdir(), 'cert.pem');
  writeFileSync(file, c.cert);
  t.equal(c.pin, `sha256/${recipePin(file)}`);
  t.match(execFileSync('/usr/bin/openssl', ['x509', '-in', file, '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }), /DNS:api\.example\.com, IP Address:127\.0\.0\.1/);
  t.not(unservedPin(), unservedPin(), 'each unserved pin is a fresh key');
});

t.test('a handshake reads the whole served chain, leaf first, with the pins openssl computes, every time', async (t) => {
  const c = chain(t.testdir());
  const server = createServer({ key: readFileSync(c.leaf.key), cert: readFileSync(c.file) }, (s) => s.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise((r) => server.close(r)));
  const want = [c.leaf, c.intermediate, c.root].map((x) => recipePin(x.pem));
  const port = (server.address() as AddressInfo).port;
  t.same(await tlsHandshake('127.0.0.1', port, { servername: 'localhost' }), want);
  t.same(await tlsHandshake('127.0.0.1', port, { servername: 'localhost' }), want, 'the same again (pins of certificates seen before)');
});

t.test('a rotating endpoint serves its old key, then its new one, to real handshakes', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com', keys: 2 });
  t.teardown(() => api.close());
  t.equal(api.pins.length, 2);
  t.not(api.pins[0], api.pins[1]);
  t.notOk(api.pins.includes(api.backupPin), 'the backup key is never served');
  t.same(api.callHome, { host: 'api.example.com', port: 443, connect: { host: '127.0.0.1', port: api.address.port } });
  const seen = async () => (await tlsHandshake('127.0.0.1', api.address.port, { servername: 'api.example.com' })).map((p) => `sha256/${p}`);
  t.same(await seen(), [api.pins[0]]);
  const probed = await fetchServedChain('127.0.0.1', api.address.port, { servername: 'api.example.com' });
  t.same(probed.pins.map((p) => p.text), [api.pins[0]], 'what the gateway pre-flight probe reads');
  api.rotate();
  t.equal(api.serving, 1);
  t.same(await seen(), [api.pins[1]]);
  t.same(await tlsHandshake('127.0.0.1', api.address.port).then((p) => p.map((x) => `sha256/${x}`)), [api.pins[1]], 'without SNI too');
  t.throws(() => api.rotate(), /no key after key 2 of 2/);
  await api.close();
  await api.close();
});

t.test('a fresh check never joins a shared or in-flight handshake, and later shared checks may use its result', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com', keys: 2 });
  t.teardown(() => api.close());
  const shared = new Handshakes({ windowMs: 60_000 });
  await shared.get(api.callHome);
  api.rotate();
  const cached = await shared.get(api.callHome);
  t.same(cached.ok && cached.pins.map((p) => `sha256/${p}`), [api.pins[0]], 'a shared check still sees the old key');
  const inFlight = shared.get(api.callHome, { fresh: true });
  const fresh = await Promise.all([inFlight, shared.get(api.callHome, { fresh: true })]);
  t.ok(fresh.every((r) => r.ok && `sha256/${r.pins[0]}` === api.pins[1]), 'fresh checks see the key served now');
  t.same(shared.counters, { performed: 3, shared: 1, failed: 0 }, 'each fresh check its own handshake, even two at once');
  const after = await shared.get(api.callHome);
  t.same(after.ok && after.pins.map((p) => `sha256/${p}`), [api.pins[1]], 'and the shared result is the fresh one now');
  t.equal(shared.counters.performed, 3);
});

t.test('checks of one endpoint share a handshake within the window; --handshake-each does not', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com' });
  t.teardown(() => api.close());
  let now = 0;
  const shared = new Handshakes({ now: () => now, windowMs: 1000 });
  const results = await Promise.all(Array.from({ length: 50 }, () => shared.get(api.callHome)));
  t.ok(results.every((r) => r.ok && `sha256/${r.pins[0]}` === api.pins[0]));
  t.same(shared.counters, { performed: 1, shared: 49, failed: 0 }, 'in flight, the one handshake is shared');
  now = 999;
  await shared.get(api.callHome);
  t.equal(shared.counters.performed, 1, 'inside the window');
  now = 2000;
  await shared.get(api.callHome);
  t.equal(shared.counters.performed, 2, 'past it, a fresh handshake');
  shared.forget();
  await shared.get(api.callHome);
  t.equal(shared.counters.performed, 3, 'forget() starts over');
  const each = new Handshakes({ share: false, concurrency: 4 });
  await Promise.all(Array.from({ length: 20 }, () => each.get(api.callHome)));
  t.same(each.counters, { performed: 20, shared: 0, failed: 0 });
});

t.test('an endpoint that does not answer TLS is unreachable, not a pin failure', async (t) => {
  const h = new Handshakes({ timeoutMs: 2000 });
  const r = await h.get({ host: 'api.example.com', port: 443, connect: { host: '127.0.0.1', port: 1 } });
  t.match(r, { ok: false, error: /127\.0\.0\.1:1: ECONNREFUSED/ });
  t.equal(h.counters.failed, 1);
  const broker = await bareBroker(t); // not TLS: an MQTT listener
  const port = Number(new URL(broker.url).port);
  t.match(await new Handshakes().get({ host: '127.0.0.1', port }), { ok: false });
  t.match(await new Handshakes({ timeoutMs: 50 }).get({ host: '127.0.0.1', port }), { ok: false });
});

t.test('a device reports real pin failures from an endpoint whose key it has not pinned, and none when it has', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com', keys: 2 });
  t.teardown(() => api.close());
  const broker = await bareBroker(t);
  const key = generateKeyPair();
  const manifest: FirmwareManifest = { model: 'th-100', firmware: '1.0.0', trustedKeys: [key.publicPem], pins: [{ host: 'api.example.com', pins: [api.pins[0], api.backupPin] }] };
  const device = new SimDevice({ id: 'th-1', token: 'x', url: broker.url, model: 'th-100', firmware: '1.0.0', store: new MemoryStateStore() }, initialState(manifest, 'thermostats'));
  await device.connect();
  t.teardown(() => device.disconnect());
  const handshakes = new Handshakes({ share: false });
  const healthy = await device.callHome([api.callHome], handshakes);
  t.same(healthy.map((c) => c.result), ['ok']);
  t.equal(device.reportsSent, 0, 'no report for a pinned key');
  api.rotate(); // the server moves to a key the device was never given
  const broken = await device.callHome([api.callHome], handshakes);
  t.same(broken.map((c) => c.result), ['pin_mismatch']);
  await until(() => broker.heard.telemetry.length === 1, 2000, 'the report');
  t.match(broker.heard.telemetry[0].message.reports, [
    { hostname: 'api.example.com', port: 443, result: 'pin_mismatch', servedPins: [api.pins[1].slice(7)], knownPins: [api.pins[0].slice(7), api.backupPin.slice(7)], count: 1, suppressed: 0 },
  ]);
  const unreachable = await device.callHome([{ host: 'api.example.com', port: 443, connect: { host: '127.0.0.1', port: 1 } }], handshakes);
  t.match(unreachable, [{ result: 'unreachable', error: /ECONNREFUSED/ }]);
  t.equal(formatPin(new Uint8Array(Buffer.from(api.pins[1].slice(7), 'base64'))), api.pins[1]);
});
