// The lockout forecast (gateway/forecast.ts): the pure verdict per device (firmware pins, bundles,
// overlap windows, expiry policy, rollouts in flight); then through the gateway and GET /v1/forecast
// against simulated devices and a local TLS endpoint, checked device by device against what real
// handshakes show after the endpoint switches keys.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forecast, type ForecastInput } from '../../gateway/forecast.ts';
import { Gateway } from '../../gateway/gateway.ts';
import { buildServer } from '../../gateway/http/index.ts';
import { hashToken, newToken } from '../../gateway/credentials.ts';
import { newDeviceRecord, type DeviceRecord } from '../../gateway/store/types.ts';
import { generateKeyPair, parsePin, type Endpoint, type FirmwareManifest, type PinBundle } from '../../firmware-manifest/index.ts';
import { Fleet, Handshakes, startTlsEndpoint } from '../../device-sim/index.ts';
import { pin, until } from '../fixtures/gateway.ts';

const NOW = 1767225600;
const OLD = pin('old');
const NEW = pin('new');
const BACKUP = pin('backup');
const manifest = (model: string, pins = [OLD, BACKUP]): FirmwareManifest => ({ model, firmware: '1.0.0', trustedKeys: [generateKeyPair().publicPem], pins: [{ host: 'api.example.com', pins }] });
const ep = (pins: string[], more: Partial<Endpoint> = {}): Endpoint => ({ host: 'api.example.com', port: 443, pins: pins.map(parsePin), ...more });
const bundle = (seq: number, endpoints: Endpoint[], more: Partial<PinBundle> = {}): PinBundle => ({ version: 1, seq, iat: NOW - 60, exp: NOW + 86400, group: 'g', endpoints, ...more });

function device(id: string, model: string | null, bundleId: string | null, seq: number | null, group = 'g'): DeviceRecord {
  return { ...newDeviceRecord({ id, group, model, tokenHash: 'x', createdAt: 0 }), bundleId, seq };
}

t.test('each device judged under what it holds at the date asked', async (t) => {
  const bundles = new Map<string, PinBundle>([
    ['b-new', bundle(1, [ep([OLD, NEW, BACKUP])])],
    ['b-later', bundle(2, [ep([OLD, BACKUP], { notAfter: NOW + 3600 }), ep([NEW, BACKUP], { notBefore: NOW + 3600 })])],
    ['b-fallback', bundle(3, [ep([OLD, BACKUP])], { exp: NOW + 60, expiryPolicy: 'ca-fallback' })],
    ['b-enforce', bundle(4, [ep([OLD, BACKUP])], { exp: NOW + 60 })],
    ['b-elsewhere', bundle(5, [ep([OLD, BACKUP], { host: 'other.example.com' })])],
  ]);
  const input = (at: number, o: Partial<ForecastInput> = {}): ForecastInput => ({
    devices: [
      device('a-firmware', 'm-1', null, 0),
      device('b-new', 'm-1', 'b-new', 1),
      device('c-later', 'm-1', 'b-later', 2),
      device('d-fallback', 'm-2', 'b-fallback', 3, 'h'),
      device('e-enforce', 'm-2', 'b-enforce', 4, 'h'),
      device('f-unknown-bundle', 'm-1', 'b-gone', 6),
      device('g-no-manifest', 'm-9', null, null),
      device('h-unpinned', 'm-1', 'b-elsewhere', 5),
      { ...device('i-revoked', 'm-1', null, 0), revokedAt: 1 },
    ],
    bundles,
    manifests: new Map([['m-1', manifest('m-1')], ['m-2', manifest('m-2')]]),
    inFlight: () => null,
    query: { host: 'api.example.com', port: 443, pins: [NEW], at },
    ...o,
  });

  const now = forecast(input(NOW));
  t.same(now.items.map((d) => [d.id, d.check]), [['a-firmware', 'pin_mismatch'], ['c-later', 'pin_mismatch'], ['d-fallback', 'pin_mismatch'], ['e-enforce', 'pin_mismatch']]);
  t.same([now.devices, now.unknown, now.lockedOut, now.lockedOutAfterRollouts], [8, 2, 4, 4]);
  t.same([now.byGroup, now.byModel, now.bySeq], [{ g: 2, h: 2 }, { 'm-1': 2, 'm-2': 2 }, { 0: 1, 2: 1, 3: 1, 4: 1 }]);

  const later = forecast(input(NOW + 7200));
  t.same(later.items.map((d) => [d.id, d.check]), [['a-firmware', 'pin_mismatch'], ['e-enforce', 'pin_mismatch']], 'the later overlap window holds the key; an expired ca-fallback bundle falls back to CA validation');

  t.test('a rollout in flight: shown with what the device will hold after it', async (t) => {
    const f = forecast(input(NOW, { inFlight: (id) => (id === 'a-firmware' || id === 'b-new' ? { rollout: 'r-1', bundleId: id === 'a-firmware' ? 'b-new' : 'b-enforce' } : null) }));
    t.same(
      f.items.filter((d) => d.after).map((d) => [d.id, d.lockedOut, d.after!.rollout, d.after!.seq, d.after!.lockedOut]),
      [['a-firmware', true, 'r-1', 1, false], ['b-new', false, 'r-1', 4, true]],
    );
    t.same([f.lockedOut, f.lockedOutAfterRollouts], [4, 4], 'one leaves the list after its rollout, one joins it');
  });

  t.test('any pin of the served chain held lets a device in', async (t) => {
    t.equal(forecast(input(NOW, { query: { host: 'api.example.com', port: 443, pins: [NEW, OLD], at: NOW } })).lockedOut, 0);
    t.equal(forecast(input(NOW, { query: { host: 'api.example.com', port: 8443, pins: [NEW], at: NOW } })).lockedOut, 0, 'another port is not pinned');
  });
});

t.test('the forecast agrees device by device with real handshakes after the endpoint switches keys', async (t) => {
  const tel = await startTlsEndpoint({ name: 'telemetry.example.com', keys: 2 });
  t.teardown(() => tel.close());
  const dir = mkdtempSync(join(tmpdir(), 'pinwave-forecast-'));
  const key = generateKeyPair();
  const keyPath = join(dir, 'signing.key');
  writeFileSync(keyPath, key.privatePem, { mode: 0o600 });
  const models: FirmwareManifest[] = ['fc-1', 'fc-2'].map((model) => ({ model, firmware: '1.0.0', trustedKeys: [key.publicPem], pins: [{ host: tel.name, pins: [tel.pins[0], tel.backupPin] }] }));
  const gw = await Gateway.start({ dataDir: join(dir, 'data'), keyPath, mqttPort: 0, tickIntervalMs: 50, writeWindowMs: 5, manifests: models });
  const token = newToken();
  const app = await buildServer({ gateway: gw, tokens: [{ name: 'support', role: 'viewer', hash: hashToken(token) }] });
  t.teardown(async () => {
    await app.close();
    await gw.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const list = Array.from({ length: 12 }, (_, i) => ({ id: `fc-${String(i).padStart(2, '0')}`, group: 'g', model: i % 3 === 2 ? 'fc-2' : 'fc-1' }));
  const { devices } = await gw.provision(list);
  const fleet = new Fleet({ url: () => gw.mqttUrl, models: models.map((manifest) => ({ manifest })), devices: devices.map((d, i) => ({ ...d, group: 'g', model: list[i].model })), callHomeSeconds: 0, seed: 'forecast' });
  t.teardown(() => fleet.stop());
  await fleet.start();

  // Six devices take the new key now; two take it in a later overlap window; one waits in a rollout not started; three keep the firmware pins.
  const now = Math.floor(Date.now() / 1000);
  const staged = await gw.createBundle({ group: 'g', endpoints: [{ host: tel.name, pins: [tel.pins[0], tel.pins[1], tel.backupPin] }] }, 'alice');
  const later = await gw.createBundle({ group: 'g', endpoints: [{ host: tel.name, pins: [tel.pins[0], tel.backupPin], notAfter: now + 3600 }, { host: tel.name, pins: [tel.pins[1], tel.backupPin], notBefore: now + 3600 }] }, 'alice');
  const ids = list.map((d) => d.id);
  const landed = async (bundle: string, target: string[]) => {
    const { rollout } = await gw.createRollout({ bundle, target: { devices: target }, waves: [{ size: '100%' }], start: true }, 'alice');
    await until(async () => (await gw.getRollout(rollout.id)).state === 'completed', 10_000, `rollout of ${target.length} devices`);
  };
  await landed(staged.id, ids.slice(0, 6));
  await landed(later.id, ids.slice(6, 8));
  const pending = await gw.createRollout({ bundle: staged.id, target: { devices: [ids[8]] } }, 'alice');
  await fleet.idle();

  const get = (q: string) => app.inject({ method: 'GET', url: `/v1/forecast?${q}`, headers: { authorization: `Bearer ${token}` } });
  const res = await get(`host=${tel.name}&pin=${encodeURIComponent(tel.pins[1])}&limit=4`);
  t.equal(res.statusCode, 200, res.body);
  const first = res.json();
  t.same([first.endpoint, first.devices, first.unknown, first.lockedOut, first.lockedOutAfterRollouts], [`${tel.name}:443`, 12, 0, 6, 5]);
  t.same(first.byModel, { 'fc-1': 4, 'fc-2': 2 });
  t.same(first.bySeq, { 0: 4, 2: 2 });
  t.same(first.byGroup, { g: 6 });
  t.equal(first.items.length, 4);
  const rest = (await get(`host=${tel.name}&pin=${encodeURIComponent(tel.pins[1])}&cursor=${first.next}`)).json();
  t.equal(rest.next, null);
  const items = [...first.items, ...rest.items];
  const withAfter = items.find((d: { id: string }) => d.id === ids[8]);
  t.same(withAfter.after, { rollout: pending.rollout.id, seq: 1, bundle: staged.id, check: 'ok', lockedOut: false }, 'the device waiting in a rollout is shown with what it will hold');
  const forecastSet = items.filter((d: { lockedOut: boolean }) => d.lockedOut).map((d: { id: string }) => d.id).sort();
  t.same(forecastSet, [...ids.slice(6, 12)].sort());
  const inTwoHours = (await get(`host=${tel.name}&pin=${encodeURIComponent(tel.pins[1])}&at=${new Date((now + 7200) * 1000).toISOString()}`)).json();
  t.same(inTwoHours.items.filter((d: { lockedOut: boolean }) => d.lockedOut).map((d: { id: string }) => d.id).sort(), ids.slice(8, 12), 'in two hours the later window holds the new key');

  // The endpoint switches keys: every device calls home, each over its own real handshake.
  tel.rotate();
  const handshakes = new Handshakes({ share: false });
  const real: string[] = [];
  for (const id of ids) {
    const checks = await fleet.device(id)!.callHome([tel.callHome], handshakes);
    t.equal(checks.length, 1);
    if (checks[0].result === 'pin_mismatch') real.push(id);
  }
  t.equal(handshakes.counters.performed, 12);
  t.same(real.sort(), forecastSet, 'the same devices, one by one');

  t.test('bad queries are 400s naming the field', async (t) => {
    t.match((await get('host=a.example.com&pin=sha256/nope')).json(), { code: 'PW_INVALID', message: /^querystring\/pin: / });
    t.match((await get(`host=a.example.com&pin=${encodeURIComponent(tel.pins[1])}&at=soon`)).json(), { code: 'PW_INVALID', message: /^querystring\/at: / });
    // Date.parse reads these as 2001-01-01, 2001-03-07, March 2 and the gateway's local time
    for (const at of ['1', 'March 7', '2027-02-30', '2027-01-01T12:00']) {
      const r = await get(`host=a.example.com&pin=${encodeURIComponent(tel.pins[1])}&at=${encodeURIComponent(at)}`);
      t.match([r.statusCode, r.json()], [400, { code: 'PW_INVALID', message: /^querystring\/at: / }], at);
    }
    t.equal((await get('pin=x')).statusCode, 400);
    t.equal((await app.inject({ method: 'GET', url: `/v1/forecast?host=a&pin=${encodeURIComponent(tel.pins[1])}` })).statusCode, 401);
  });
});
