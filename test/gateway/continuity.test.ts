// Pin continuity (gateway/continuity.ts): the verdict over what endpoints served and what the target
// runs now, as values; then through the gateway, against a local TLS endpoint the config lists with
// the address to dial: 422 naming the endpoint, a key named as coming, a forced start recorded.
import t from 'tap';
import { continuity, type PinSetNow, type Served } from '../../gateway/continuity.ts';
import { parsePin, type Endpoint } from '../../firmware-manifest/index.ts';
import { startTlsEndpoint, unservedPin } from '../../device-sim/endpoints.ts';
import { GatewayError } from '../../gateway/errors.ts';
import { harness, pin, until } from '../fixtures/gateway.ts';
import { describeRemoved } from '../../gateway/rollout/approval.ts';

const NOW = 1767225600;
const A = pin('a');
const B = pin('b');
const C = pin('c');
const D = pin('d');
const bare = (p: string) => p.replace(/^sha256\//, '');
const ep = (pins: string[], more: Partial<Endpoint> = {}): Endpoint => ({ host: 'api.example.com', port: 443, pins: pins.map(parsePin), ...more });
const running = (pins: string[], devices = ['d-1', 'd-2'], more: object = {}): PinSetNow => ({ label: 'seq 1 (bundle 00000000)', devices, endpoints: [{ host: 'api.example.com', port: 443, pins: pins.map(bare), mode: 'enforce', ...more }] });
const served = (pins: string[]): ReadonlyMap<string, Served> => new Map([['api.example.com:443', { ok: true, pins }]]);
const judge = (o: Partial<Parameters<typeof continuity>[0]>) => continuity({ endpoints: [ep([A, B])], served: new Map(), current: [], requireOverlap: false, now: NOW, ...o });
const codes = (fs: Array<{ code: string; endpoint?: string }>) => fs.map((f) => [f.code, f.endpoint]);

t.test('an endpoint read live', async (t) => {
  t.test('the new set holds the served key: nothing to say', async (t) => {
    const c = judge({ served: served([A]), current: [running([C, D])] });
    t.same([c.problems, c.warnings], [[], []], 'the overlap is not asked when the served key is seen');
    t.same(c.endpoints, [{ endpoint: 'api.example.com:443', check: 'served', served: [A], held: A, ok: true }]);
  });
  t.test('it does not: refused, naming the endpoint and the key missing', async (t) => {
    const c = judge({ served: served([C]) });
    t.same(codes(c.problems), [['endpoint_mismatch', 'api.example.com:443']]);
    t.match(c.problems[0].message, `api.example.com:443 presents ${C}; none is in the new pin set`);
    t.match(c.problems[0].message, `missing ${C}`);
    t.match(c.problems[0].message, '--next-key api.example.com:443=sha256/');
  });
  t.test('a key named as coming that the set holds passes, with a warning', async (t) => {
    const c = judge({ served: served([C]), nextKeys: { 'api.example.com:443': [B] } });
    t.same(c.problems, []);
    t.same(codes(c.warnings), [['next_key_only', 'api.example.com:443']]);
    t.equal(c.endpoints[0].held, B);
  });
  t.test('a key named as coming that the set lacks does not save it', async (t) => {
    const c = judge({ served: served([C]), nextKeys: { 'api.example.com:443': [D] } });
    t.same(codes(c.problems), [['endpoint_mismatch', 'api.example.com:443']]);
    t.match(c.problems[0].message, 'nor the key named as coming');
  });
  t.test('the served key held but the key named as coming left out: a warning', async (t) => {
    const c = judge({ served: served([A]), nextKeys: { 'api.example.com:443': [D] } });
    t.same([c.problems, codes(c.warnings)], [[], [['next_key_missing', 'api.example.com:443']]]);
  });
  t.test('a key staged in a later overlap window counts as named, not as served', async (t) => {
    const endpoints = [ep([A, B], { notAfter: NOW + 60 }), ep([C, D], { notBefore: NOW + 60 })];
    t.same(codes(judge({ endpoints, served: served([C]) }).problems), [['endpoint_mismatch', 'api.example.com:443']], 'C is not in force now');
    t.same(judge({ endpoints, served: served([C]), nextKeys: { 'api.example.com:443': [C] } }).problems, []);
  });
  t.test('report-only: a mismatch is a warning', async (t) => {
    const c = judge({ endpoints: [ep([A, B], { mode: 'report-only' })], served: served([C]) });
    t.same([c.problems, codes(c.warnings)], [[], [['endpoint_mismatch', 'api.example.com:443']]]);
  });
});

t.test('an endpoint not read: overlap with what the target runs now', async (t) => {
  t.test('a shared pin: nothing to say', async (t) => {
    const c = judge({ current: [running([B, C])] });
    t.same([c.problems, c.warnings, c.endpoints], [[], [], [{ endpoint: 'api.example.com:443', check: 'overlap', ok: true }]]);
  });
  t.test('no shared pin: a warning naming the endpoint and the devices', async (t) => {
    const c = judge({ current: [running([C, D]), running([A, D], ['d-3'])] });
    t.same(c.problems, []);
    t.same(codes(c.warnings), [['no_overlap', 'api.example.com:443']], 'only the part that shares nothing');
    t.same([c.warnings[0].devices, c.warnings[0].count], [['d-1', 'd-2'], 2]);
    t.match(c.warnings[0].message, 'keeps no pin of seq 1 (bundle 00000000), which 2 devices run now');
    t.equal(c.endpoints[0].ok, false);
  });
  t.test('requireOverlap: a refusal', async (t) => {
    const c = judge({ current: [running([C, D])], requireOverlap: true });
    t.same([codes(c.problems), c.warnings], [[['no_overlap', 'api.example.com:443']], []]);
  });
  t.test('a probe that failed falls back to the overlap, and says why', async (t) => {
    const c = judge({ served: new Map([['api.example.com:443', { ok: false, error: 'connection refused' }]]), current: [running([C, D])], requireOverlap: true });
    t.same(codes(c.problems), [['no_overlap', 'api.example.com:443']]);
    t.same(codes(c.warnings), [['endpoint_unreachable', 'api.example.com:443']]);
  });
  t.test('only the pin sets in force now on the devices count', async (t) => {
    const expired = running([A, D], ['d-1'], { notAfter: NOW - 1 });
    expired.endpoints.push({ host: 'api.example.com', port: 443, pins: [C, D].map(bare), mode: 'enforce', notBefore: NOW - 1 });
    t.same(codes(judge({ current: [expired] }).warnings), [['no_overlap', 'api.example.com:443']], 'A is in a window that has ended');
  });
  t.test('report-only and unpinned-before endpoints are not asked', async (t) => {
    t.same(judge({ endpoints: [ep([A, B], { mode: 'report-only' })], current: [running([C, D])] }).warnings, []);
    t.same(judge({ endpoints: [ep([A, B], { host: 'new.example.com' })], current: [running([C, D])] }).warnings, []);
  });
});

t.test('through the gateway: the config lists the endpoint with where to dial it', async (t) => {
  const tel = await startTlsEndpoint({ name: 'telemetry.example.com', keys: 2 });
  t.teardown(() => tel.close());
  const h = await harness(t, { preflight: { endpoints: { 'telemetry.example.com:443': { host: '127.0.0.1', port: tel.address.port } } } });
  await h.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100' }, { id: 'th-2', group: 'thermostats', model: 'th-100' }]);
  const bundle = (telPins: string[]) =>
    h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [pin('old'), pin('backup')] }, { host: 'telemetry.example.com', pins: telPins }] }, 'alice');
  const refusal = async (p: Promise<unknown>) => {
    const err = await p.then(() => null, (e: unknown) => e);
    if (!(err instanceof GatewayError)) throw new Error(`expected a GatewayError, got ${String(err)}`);
    return err;
  };

  const bad = await bundle([tel.pins[1], tel.backupPin]);
  const err = await refusal(h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' } }, 'alice'));
  t.equal(err.code, 'PW_PREFLIGHT');
  t.match(err.message, `telemetry.example.com:443 presents ${tel.pins[0]}`, 'dialled at 127.0.0.1, named as pinned');
  t.match(err.message, `missing ${tel.pins[0]}`);
  t.same(await h.gw.listRollouts(), [], 'nothing created');

  t.test('a malformed nextKeys, force or reason is a 400 naming it', async (t) => {
    t.match((await refusal(h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, nextKeys: { 'other.example.com:443': [tel.pins[1]] } }, 'alice'))).message, /^nextKeys\.other\.example\.com:443: not an endpoint of the bundle/);
    t.match((await refusal(h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, nextKeys: { 'telemetry.example.com:443': ['sha256/nope'] } }, 'alice'))).message, /^nextKeys\.telemetry\.example\.com:443\[0\]: /);
    t.match((await refusal(h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, force: true }, 'alice'))).message, /^reason: a forced start needs a reason/);
    t.match((await refusal(h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' }, reason: 'why' }, 'alice'))).message, /^reason: only with force/);
  });

  t.test('the key it will serve, named as coming, lets it through', async (t) => {
    const r = await h.gw.createRollout({ bundle: bad.id, target: { devices: ['th-1'] }, nextKeys: { 'telemetry.example.com:443': [tel.pins[1]] } }, 'alice');
    t.equal(r.preflight.ok, true);
    t.same(r.preflight.warnings.map((w) => w.code).filter((c) => c === 'next_key_only'), ['next_key_only']);
    await h.gw.abortRollout(r.rollout.id, 'alice');
  });

  t.test('forced with a reason: created, and the decision recorded with who, why and what was refused', async (t) => {
    const r = await h.gw.createRollout({ bundle: bad.id, target: { devices: ['th-2'] }, force: true, reason: 'the endpoint switches keys tonight' }, 'bob');
    t.equal(r.preflight.ok, false);
    t.same({ ...r.preflight.forced, at: 0 }, { by: 'bob', at: 0, reason: 'the endpoint switches keys tonight' });
    const d = (await h.gw.getRollout(r.rollout.id)).decisions.find((x) => x.action === 'force');
    t.same([d?.actor, d?.reason], ['bob', 'the endpoint switches keys tonight']);
    t.match(d?.findings?.[0], 'telemetry.example.com:443 presents');
  });

  t.test('force does not override what devices would reject', async (t) => {
    const other = await h.gw.createBundle({ group: 'other', endpoints: [{ host: 'telemetry.example.com', pins: [tel.pins[1], tel.backupPin] }] }, 'alice');
    const e = await refusal(h.gw.createRollout({ bundle: other.id, target: { devices: ['th-1'] }, force: true, reason: 'try' }, 'alice'));
    t.match(e.message, /wrong_group.*\(force overrides only pin continuity and devices ahead of the bundle's seq\)/);
  });

  t.test('the set that holds the served key passes; an unlisted endpoint is judged by overlap', async (t) => {
    const good = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins: [unservedPin(), unservedPin()] }, { host: 'telemetry.example.com', pins: [tel.pins[0], tel.pins[1]] }] }, 'alice');
    const r = await h.gw.createRollout({ bundle: good.id, target: { devices: ['th-1'] } }, 'alice');
    t.equal(r.preflight.ok, true);
    t.same(r.preflight.endpoints.map((e) => [e.endpoint, e.check, e.ok]), [['api.example.com:443', 'overlap', false], ['telemetry.example.com:443', 'served', true]]);
    t.match(r.preflight.warnings.find((w) => w.code === 'no_overlap')?.message, 'api.example.com:443: the new pin set keeps no pin of the firmware pins of model th-100');
  });
});

t.test('an IPv6 endpoint is named [::1]:443 in every finding and message, and is the key of served keys and next keys', async (t) => {
  const v6 = (pins: string[]) => ep(pins, { host: '::1' });
  const at = '[::1]:443';
  const mismatch = continuity({ endpoints: [v6([A, B])], served: new Map([[at, { ok: true, pins: [C] }]]), current: [], requireOverlap: false, now: NOW });
  t.same(codes(mismatch.problems), [['endpoint_mismatch', at]]);
  t.match(mismatch.problems[0].message, `${at} presents ${C}; none is in the new pin set`);
  t.match(mismatch.problems[0].message, `--next-key ${at}=sha256/`);
  t.same(mismatch.endpoints.map((e) => e.endpoint), [at]);
  const coming = continuity({ endpoints: [v6([A, B])], served: new Map([[at, { ok: true, pins: [C] }]]), nextKeys: { [at]: [B] }, current: [], requireOverlap: false, now: NOW });
  t.same(codes(coming.warnings), [['next_key_only', at]], 'a key named as coming for [::1]:443 is found');
  const unread = continuity({ endpoints: [v6([A, B])], served: new Map([[at, { ok: false, error: 'ECONNREFUSED' }]]), current: [{ ...running([C, D]), endpoints: [{ host: '::1', port: 443, pins: [C, D].map(bare), mode: 'enforce' }] }], requireOverlap: true, now: NOW });
  t.same(codes([...unread.problems, ...unread.warnings]), [['no_overlap', at], ['endpoint_unreachable', at]]);
  t.match(unread.problems[0].message, /^\[::1\]:443: the new pin set keeps no pin of/);
  t.match(unread.warnings[0].message, /^\[::1\]:443 not checked: ECONNREFUSED/);
  t.equal(describeRemoved([{ host: '::1', port: 443, pins: [A], endpoint: false }, { host: '2001:db8::7', port: 8443, pins: [A, B], endpoint: true }]), 'removes 1 pin of [::1]:443; removes endpoint [2001:db8::7]:8443 (2 pins)');
});

t.test('through the gateway: an IPv6 endpoint the config lists as "[::1]:443" is read, and nextKeys names it either way', async (t) => {
  const tel = await startTlsEndpoint({ name: 'telemetry.example.com', keys: 2 });
  t.teardown(() => tel.close());
  const h = await harness(t, { preflight: { endpoints: { '[::1]:443': { host: '127.0.0.1', port: tel.address.port } } } });
  await h.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100' }]);
  const bad = await h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: '::1', pins: [tel.pins[1], tel.backupPin] }] }, 'alice');
  const err = await h.gw.createRollout({ bundle: bad.id, target: { group: 'thermostats' } }, 'alice').then(() => null, (e: unknown) => e as GatewayError);
  t.equal(err?.code, 'PW_PREFLIGHT', 'the listed endpoint was dialled and found serving a key the set lacks');
  t.match(err?.message, `[::1]:443 presents ${tel.pins[0]}`);
  for (const given of ['[::1]:443', '::1:443']) {
    const r = await h.gw.createRollout({ bundle: bad.id, target: { devices: ['th-1'] }, nextKeys: { [given]: [tel.pins[1]] } }, 'alice');
    t.equal(r.preflight.ok, true, `nextKeys "${given}"`);
    t.same(r.preflight.warnings.filter((w) => w.code === 'next_key_only').map((w) => w.endpoint), ['[::1]:443']);
    await h.gw.abortRollout(r.rollout.id, 'alice');
  }
});

t.test('a rollback is never refused by pin continuity: it restores pins the devices ran', async (t) => {
  const h = await harness(t, { preflight: { requireOverlap: true } });
  const { devices } = await h.gw.provision([{ id: 'th-1', group: 'thermostats', model: 'th-100' }]);
  const d = h.device('th-1', devices[0].token);
  await d.connect();
  t.teardown(() => d.disconnect());
  const push = (pins: string[]) => h.gw.createBundle({ group: 'thermostats', endpoints: [{ host: 'api.example.com', pins }] }, 'alice');
  const first = await push([pin('old'), pin('new')]);
  const r1 = await h.gw.createRollout({ bundle: first.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }], start: true }, 'alice');
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(r1.rollout.id)).state === 'completed'), 5000, 'the first rollout');
  const second = await push([pin('x'), pin('y')]);
  const refused = await h.gw.createRollout({ bundle: second.id, target: { group: 'thermostats' } }, 'alice').then(() => null, (e: GatewayError) => e);
  t.match(refused?.message, /keeps no pin of seq 1/);
  const r2 = await h.gw.createRollout({ bundle: second.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }], start: true, force: true, reason: 'test' }, 'alice');
  await until(() => d.state.seq === 2, 5000, 'the device on seq 2');
  await until(async () => (await h.gw.getDevice('th-1')).seq === 2, 5000, 'the gateway to know it');
  // The rollback's pins (old, new) share nothing with what the device runs now (x, y): judged, it would be refused.
  const { rollback } = await h.gw.rollback(r2.rollout.id, 'alice');
  t.equal(rollback.state, 'running');
  await until(() => d.state.seq === 3, 5000, 'the device back on the first pins');
});
