// Pre-flight's live-endpoint check (checkEndpoints): against real TLS endpoints on 127.0.0.1, does
// the new pin set hold the key each endpoint serves now?
import t from 'tap';
import { closedPort } from '../fixtures/stand-in.ts';
import { preflight, type PreflightInput } from '../../gateway/preflight.ts';
import { startTlsEndpoint, unservedPin, type TlsEndpoint } from '../../device-sim/endpoints.ts';
import { generateKeyPair, parsePin, signBundle, type Endpoint, type PinBundle } from '../../firmware-manifest/index.ts';
import type { BundleRecord, DeviceRecord } from '../../gateway/store/types.ts';

const NOW = 1767225600;
const key = generateKeyPair();

/** Pre-flight of a bundle with these endpoints, for no devices, checking the live endpoints unless told not to. */
function check(endpoints: Endpoint[], over: Partial<PreflightInput> = {}) {
  const decoded: PinBundle = { version: 1, seq: 2, iat: NOW - 60, exp: NOW + 86400, group: 'thermostats', endpoints };
  const signed = signBundle(decoded, key.seed);
  const record: BundleRecord = { id: signed.id, group: 'thermostats', seq: 2, size: signed.bytes.length, createdAt: NOW * 1000, bytes: Buffer.from(signed.bytes).toString('base64') };
  return preflight({ bundle: { record, bytes: signed.bytes, decoded }, devices: [], manifests: new Map(), fits: () => ({ ok: true }), checkEndpoints: true, now: NOW, probeTimeoutMs: 3000, ...over });
}

/** An endpoint entry that dials `api` where it really listens, pinning `pins`. */
const at = (api: TlsEndpoint, pins: string[], more: Partial<Endpoint> = {}): Endpoint => ({ host: api.address.host, port: api.address.port, pins: pins.map(parsePin), ...more });

/** A port on 127.0.0.1 that nothing listens on (taken, then released). */

t.test('live endpoints', async (t) => {
  const api = await startTlsEndpoint({ name: 'api.example.com', keys: 2 });
  t.teardown(() => api.close());
  const where = `127.0.0.1:${api.address.port}`;

  t.test('a new pin set that holds the served key passes, with nothing to report', async (t) => {
    const r = await check([at(api, [api.pins[0], api.backupPin])]);
    t.same([r.ok, r.problems, r.warnings], [true, [], []]);
  });

  t.test('a new pin set without the served key is refused, naming the endpoint and what it serves', async (t) => {
    const r = await check([at(api, [api.pins[1], api.backupPin])]);
    t.equal(r.ok, false);
    t.same(r.problems.map((p) => [p.code, p.endpoint]), [['endpoint_mismatch', where]]);
    const message = r.problems[0]?.message ?? '';
    t.match(message, `${where} presents ${api.pins[0]}`, 'the served pin, as sha256/…');
    t.match(message, /none is in the new pin set/);
  });

  t.test('a report-only endpoint that would mismatch is a warning, not a refusal', async (t) => {
    const r = await check([at(api, [unservedPin(), api.backupPin], { mode: 'report-only' })]);
    t.equal(r.ok, true);
    t.same(r.problems, []);
    t.same(r.warnings.map((w) => [w.code, w.endpoint]), [['endpoint_mismatch', where]]);
  });

  t.test('an endpoint that cannot be reached is a warning that says why, and does not refuse', async (t) => {
    const port = await closedPort();
    const r = await check([{ host: '127.0.0.1', port, pins: [api.pins[0], api.backupPin].map(parsePin) }]);
    t.equal(r.ok, true);
    t.same(r.warnings.map((w) => [w.code, w.endpoint]), [['endpoint_unreachable', `127.0.0.1:${port}`]]);
    t.match(r.warnings[0]?.message ?? '', /not checked: .*connection refused \(ECONNREFUSED\)/);
  });

  t.test('each endpoint of a bundle is judged on its own', async (t) => {
    const port = await closedPort();
    const other = await startTlsEndpoint({ name: 'mqtt.example.com' });
    t.teardown(() => other.close());
    const r = await check([at(api, [api.pins[0], api.backupPin]), at(other, [unservedPin(), other.backupPin]), { host: '127.0.0.1', port, pins: [api.pins[0], api.backupPin].map(parsePin) }]);
    t.equal(r.ok, false);
    t.same(r.problems.map((p) => [p.code, p.endpoint]), [['endpoint_mismatch', `127.0.0.1:${other.address.port}`]]);
    t.same(r.warnings.map((w) => [w.code, w.endpoint]), [['endpoint_unreachable', `127.0.0.1:${port}`]]);
  });

  t.test('after the endpoint changes keys, the check follows what it serves now', async (t) => {
    const rotating = await startTlsEndpoint({ name: 'rotating.example.com', keys: 2 });
    t.teardown(() => rotating.close());
    const oldSet = [at(rotating, [rotating.pins[0], rotating.backupPin])];
    t.equal((await check(oldSet)).ok, true, 'the old pin set matches the old key');
    rotating.rotate();
    t.equal((await check(oldSet)).ok, false, 'and not the new one');
    t.equal((await check([at(rotating, [rotating.pins[1], rotating.backupPin])])).ok, true, 'the new pin set does');
  });

  t.test('only exact hosts whose pin set is in force now are dialled', async (t) => {
    const port = await closedPort();
    const pins = [api.pins[0], api.backupPin].map(parsePin);
    const r = await check([
      { host: '*.example.com', port, pins },
      { host: '127.0.0.1', port, pins, notBefore: NOW + 3600 },
      { host: '127.0.0.1', port, pins, notAfter: NOW },
    ]);
    t.same([r.ok, r.problems, r.warnings], [true, [], []], 'a wildcard, a set not yet in force and one no longer in force are not dialled');
  });

  t.test('without checkEndpoints nothing is dialled', async (t) => {
    const r = await check([at(api, [unservedPin(), api.backupPin])], { checkEndpoints: false });
    t.same([r.ok, r.problems, r.warnings], [true, [], []]);
  });
});

t.test('the endpoints the config lists are dialled where it says, under their own name; no other is', async (t) => {
  const tel = await startTlsEndpoint({ name: 'telemetry.example.com', keys: 2 });
  t.teardown(() => tel.close());
  const dialled: string[] = [];
  const { fetchServedChain } = await import('../../gateway/tls-probe.ts');
  const probe: PreflightInput['probe'] = (dial, servername) => {
    dialled.push(`${dial.host}:${dial.port} sni=${servername}`);
    return fetchServedChain(dial.host, dial.port, { servername, timeoutMs: 3000 });
  };
  const endpoints = [
    { host: 'telemetry.example.com', port: 443, pins: [tel.pins[1], tel.backupPin].map(parsePin) },
    { host: 'api.example.com', port: 443, pins: [unservedPin(), unservedPin()].map(parsePin) },
  ];
  const probeTargets = new Map([['telemetry.example.com:443', { host: '127.0.0.1', port: tel.address.port }]]);
  const r = await check(endpoints, { checkEndpoints: false, probeTargets, probe });
  t.same(dialled, [`127.0.0.1:${tel.address.port} sni=telemetry.example.com`]);
  t.same(r.problems.map((p) => [p.code, p.endpoint]), [['endpoint_mismatch', 'telemetry.example.com:443']]);
  t.same(r.endpoints.map((e) => [e.endpoint, e.check]), [['telemetry.example.com:443', 'served'], ['api.example.com:443', 'overlap']]);
  tel.rotate();
  t.equal((await check(endpoints, { checkEndpoints: false, probeTargets, probe })).ok, true, 'after the switch the same set holds what it serves');
});

t.test("devices that report the bundle's seq or above refuse it: a problem naming the bundle's seq and theirs", async (t) => {
  const device = (id: string, seq: number | null, bundleId: string | null = null): DeviceRecord => ({ id, group: 'thermostats', model: null, firmware: null, tokenHash: '', createdAt: 0, revokedAt: null, lastSeen: 1, lastConnectAt: null, lastDisconnectAt: null, seq, bundleId, history: [], telemetry: [] });
  const endpoints: Endpoint[] = [{ host: 'api.example.com', port: 443, pins: [parsePin(unservedPin()), parsePin(unservedPin())] }];
  const r = await check(endpoints, { checkEndpoints: false, devices: [device('behind', 1), device('same', 2, 'ff'.repeat(32)), device('ahead', 5), device('new', null)] });
  t.equal(r.ok, false);
  t.same(r.problems.map((p) => [p.code, p.devices, p.message]), [['ahead', ['same', 'ahead'], 'bundle seq 2 is not above what 2 devices report (seq 2 to 5): they would reject it as replayed; push the pins as a new bundle (seq above 5), or roll back the rollout that took them there']]);
  t.notOk(r.warnings.some((w) => w.code === 'ahead'), 'no longer only a warning');
  const holding = await check(endpoints, { checkEndpoints: false, devices: [device('behind', 1)] });
  t.same([holding.ok, holding.problems], [true, []], 'a device behind the bundle takes it');
});
