import t from 'tap';
import { decodeTelemetry, encodeTelemetry, type PinFailureReport, type TelemetryMessage } from '../../firmware-manifest/messages.ts';
import { TelemetryBook, type TelemetryContext, type TelemetryLookup, type TelemetryState } from '../../gateway/telemetry.ts';

const T0 = 1_700_000_000_000; // gateway clock, ms
const S0 = T0 / 1000; // device clocks, s
const DAY = 24 * 3600 * 1000;
const BUNDLE = 'ab'.repeat(32);
const OLD_BUNDLE = 'cd'.repeat(32);
const pin = (n: number): string => Buffer.alloc(32, n).toString('base64');
const MITM = pin(66);
const LEAF = pin(1);
const INTERMEDIATE = pin(2);

const inRollout: TelemetryLookup = (bundleId) => (bundleId === BUNDLE ? { rolloutId: 'r1', wave: 0 } : { rolloutId: null, wave: null });
const waveOf =
  (waves: Record<string, number>): ((id: string) => TelemetryLookup) =>
  (id) =>
  (bundleId): TelemetryContext =>
    bundleId === BUNDLE ? { rolloutId: 'r1', wave: waves[id] ?? 0 } : { rolloutId: null, wave: null };

function rep(counter: number, over: Partial<PinFailureReport> = {}): PinFailureReport {
  return {
    hostname: 'api.example.com',
    port: 443,
    result: 'pin_mismatch',
    servedPins: [MITM, INTERMEDIATE],
    knownPins: [LEAF, pin(3)],
    seq: 7,
    bundleId: BUNDLE,
    count: 3,
    suppressed: 2,
    firstSeen: S0 - 60,
    lastSeen: S0,
    counter,
    ...over,
  };
}

/** Through the wire and back, as the gateway gets it. */
function msg(deviceId: string, reports: PinFailureReport[], group = 'meters'): TelemetryMessage {
  const d = decodeTelemetry(encodeTelemetry({ deviceId, group, firmware: '1.4.2', reports }));
  if (!d.ok) throw new Error(d.detail);
  return d.message;
}

const roundTrip = (book: TelemetryBook): TelemetryState => JSON.parse(JSON.stringify(book)) as TelemetryState;

t.test('reports aggregate by endpoint and observed pin across devices', async (t) => {
  const book = new TelemetryBook();
  book.ingest('m-1', 'meters', msg('m-1', [rep(1), rep(2, { hostname: 'API.Example.com', count: 1, suppressed: 0, firstSeen: S0 - 600 })]), inRollout, T0);
  book.ingest('m-2', 'meters', msg('m-2', [rep(1, { lastSeen: S0 + 30 })]), inRollout, T0 + 1000);
  book.ingest('m-2', 'meters', msg('m-2', [rep(2, { servedPins: [LEAF], count: 1 })]), inRollout, T0 + 2000);
  book.ingest('m-3', 'meters', msg('m-3', [rep(1, { port: 8443 })]), inRollout, T0 + 3000);

  const rows = book.query({});
  t.equal(rows.length, 3, 'one row per endpoint and observed pin');
  t.same(rows[0], {
    host: 'api.example.com',
    port: 443,
    result: 'pin_mismatch',
    observedPin: `sha256/${MITM}`,
    bundleId: BUNDLE,
    rollouts: ['r1'],
    waves: [{ rolloutId: 'r1', wave: 0 }],
    groups: ['meters'],
    devices: 2,
    devicesCapped: false,
    failures: 7,
    suppressed: 4,
    firstSeen: new Date((S0 - 600) * 1000).toISOString(),
    lastSeen: new Date((S0 + 30) * 1000).toISOString(),
    firstReceived: new Date(T0).toISOString(),
    lastReceived: new Date(T0 + 1000).toISOString(),
  });
  t.same(
    rows.slice(1).map((r) => [r.port, r.observedPin, r.failures, r.devices]),
    [
      [8443, `sha256/${MITM}`, 3, 1],
      [443, `sha256/${LEAF}`, 1, 1],
    ],
    'most failures first, then the most recently received',
  );
});

t.test('a report with no served pins is aggregated under no observed pin', async (t) => {
  const book = new TelemetryBook();
  book.ingest('m-1', 'meters', msg('m-1', [rep(1, { servedPins: [] })]), inRollout, T0);
  t.equal(book.query()[0].observedPin, null);
  t.same(book.recent('m-1')[0].servedPins, []);
});

t.test('a redelivered report (same counter) is not double counted', async (t) => {
  const book = new TelemetryBook();
  const m = msg('m-1', [rep(5), rep(6)]);
  t.same(book.ingest('m-1', 'meters', m, inRollout, T0), { accepted: 2, dropped: [], failingOn: [{ bundleId: BUNDLE, rolloutId: 'r1', wave: 0 }] });
  t.same(book.ingest('m-1', 'meters', m, inRollout, T0 + 1000), { accepted: 0, dropped: [{ reason: 'duplicate', count: 2 }], failingOn: [] });
  const older = book.ingest('m-1', 'meters', msg('m-1', [rep(4), rep(7)]), inRollout, T0 + 2000);
  t.same(older.dropped, [{ reason: 'duplicate', count: 1 }], 'a counter below the last one is a duplicate too');
  t.equal(older.accepted, 1);
  t.equal(book.query()[0].failures, 9);
  t.equal(book.recent('m-1').length, 3);
  t.same(book.counters, {
    messages: 3,
    reports: 6,
    accepted: 3,
    dropped: { device_mismatch: 0, group_mismatch: 0, bad_times: 0, duplicate: 3, aggregate_full: 0, device_quota: 0 },
  });
  t.equal(book.waves('r1')[0].failures, 9);
});

t.test('a device cannot report as another device or another group', async (t) => {
  const book = new TelemetryBook();
  t.same(book.ingest('m-1', 'meters', msg('m-2', [rep(1), rep(2)]), inRollout, T0), {
    accepted: 0,
    dropped: [{ reason: 'device_mismatch', count: 2 }],
    failingOn: [],
  });
  t.same(book.ingest('m-1', 'meters', msg('m-1', [rep(1)], 'boilers'), inRollout, T0), {
    accepted: 0,
    dropped: [{ reason: 'group_mismatch', count: 1 }],
    failingOn: [],
  });
  t.same(book.query(), []);
  t.same(book.recent('m-1'), []);
  t.same(book.recent('m-2'), []);
  t.same(book.waves(), []);
  t.equal(book.ingest('m-1', 'meters', msg('m-1', [rep(1)]), inRollout, T0).accepted, 1, 'its counter was not advanced by the refused messages');
});

t.test('reports whose times make no sense are dropped as bad_times', async (t) => {
  const book = new TelemetryBook();
  const r = book.ingest(
    'm-1',
    'meters',
    msg('m-1', [rep(1, { firstSeen: S0, lastSeen: S0 - 1 }), rep(2, { firstSeen: 0, lastSeen: Number.MAX_SAFE_INTEGER }), rep(3)]),
    inRollout,
    T0,
  );
  t.same(r.dropped, [{ reason: 'bad_times', count: 2 }]);
  t.equal(r.accepted, 1);
  t.equal(book.query().length, 1, 'and query() can still render every time it holds');
});

t.test('report-only mismatches are aggregated but do not mark the device failing', async (t) => {
  const book = new TelemetryBook();
  const r = book.ingest('m-1', 'meters', msg('m-1', [rep(1, { result: 'report_only_mismatch' }), rep(2, { result: 'report_only_mismatch', count: 1 })]), inRollout, T0);
  t.same(r.failingOn, []);
  t.equal(r.accepted, 2);
  const [row] = book.query();
  t.equal(row.result, 'report_only_mismatch');
  t.equal(row.failures, 4);
  t.same(book.waves('r1'), [{ rolloutId: 'r1', wave: 0, failingDevices: 0, reportOnlyDevices: 1, failures: 0, reportOnlyFailures: 4 }]);
});

t.test('enforced mismatches on a bundle give failingOn with that bundle', async (t) => {
  const book = new TelemetryBook();
  const lookups: Array<string | null> = [];
  const ctx: TelemetryLookup = (b) => (lookups.push(b), inRollout(b));
  const r = book.ingest(
    'm-1',
    'meters',
    msg('m-1', [rep(1), rep(2, { port: 8443 }), rep(3, { bundleId: OLD_BUNDLE }), rep(4, { bundleId: null, seq: 0 }), rep(5, { result: 'report_only_mismatch' })]),
    ctx,
    T0,
  );
  t.same(r.failingOn, [
    { bundleId: BUNDLE, rolloutId: 'r1', wave: 0 },
    { bundleId: OLD_BUNDLE, rolloutId: null, wave: null },
  ], 'each bundle once; the firmware initial pins (no bundle) fail no rollout');
  t.same(lookups, [BUNDLE, OLD_BUNDLE, null, BUNDLE], 'the lookup runs once per run of one bundle');
  t.same(book.waves(), [{ rolloutId: 'r1', wave: 0, failingDevices: 1, reportOnlyDevices: 1, failures: 6, reportOnlyFailures: 3 }]);
  t.same(book.query({ bundle: OLD_BUNDLE })[0].rollouts, [], 'a bundle in no running rollout has no rollout');
  t.equal(book.ingest('m-1', 'meters', msg('m-1', [rep(6)]), ctx, T0 + 1).failingOn.length, 1, 'said again on every report, for a rollout that missed it');
});

t.test('failing devices are counted once per rollout wave', async (t) => {
  const book = new TelemetryBook();
  const where = waveOf({ 'm-1': 0, 'm-2': 1, 'm-3': 1 });
  for (const id of ['m-1', 'm-2', 'm-3']) {
    book.ingest(id, 'meters', msg(id, [rep(1), rep(2)]), where(id), T0);
    book.ingest(id, 'meters', msg(id, [rep(3)]), where(id), T0 + 1);
  }
  book.ingest('r-9', 'meters', msg('r-9', [rep(1, { bundleId: OLD_BUNDLE })]), () => ({ rolloutId: 'r0', wave: 2 }), T0);
  book.ingest('r-8', 'meters', msg('r-8', [rep(1, { bundleId: OLD_BUNDLE })]), () => ({ rolloutId: 'r2', wave: 0 }), T0);
  t.same(
    book.waves().map((w) => [w.rolloutId, w.wave, w.failingDevices, w.failures]),
    [
      ['r0', 2, 1, 3],
      ['r1', 0, 1, 9],
      ['r1', 1, 2, 18],
      ['r2', 0, 1, 3],
    ],
  );
  t.same(book.waves('r1').length, 2);
  t.same(book.query({ rollout: 'r1' })[0].waves, [
    { rolloutId: 'r1', wave: 0 },
    { rolloutId: 'r1', wave: 1 },
  ]);
});

t.test("a device's record stays bounded however many rollouts it reports in", async (t) => {
  const book = new TelemetryBook();
  for (let i = 0; i < 40; i++) {
    book.ingest('m-1', 'meters', msg('m-1', [rep(2 * i + 1), rep(2 * i + 2, { result: 'report_only_mismatch' })]), () => ({ rolloutId: `r${i}`, wave: 0 }), T0 + i);
  }
  const device = book.toJSON().devices['m-1'];
  t.equal(device.marks.length, 32);
  t.equal(device.recent.length, 20);
  t.equal(book.waves().length, 40);
  t.ok(book.waves().every((w) => w.failingDevices === 1 && w.reportOnlyDevices === 1));
});

t.test('a flood of distinct fake pins from one device stays bounded and is counted as dropped', async (t) => {
  const book = new TelemetryBook(null, { maxKeysPerDevice: 50 });
  let counter = 0;
  let dropped = 0;
  let failing = 0;
  for (let i = 0; i < 40; i++) {
    const reports = Array.from({ length: 64 }, () => rep(++counter, { servedPins: [Buffer.alloc(32, 0).fill(counter % 256, 0, 1).fill(counter >> 8, 1, 2).toString('base64')] }));
    const r = book.ingest('evil', 'meters', msg('evil', reports), inRollout, T0 + i);
    dropped += r.dropped.find((d) => d.reason === 'device_quota')?.count ?? 0;
    failing += r.failingOn.length;
  }
  t.equal(Object.keys(book.toJSON().buckets).length, 50, "no more buckets than the device's quota");
  t.equal(dropped, 40 * 64 - 50);
  t.equal(book.counters.dropped.device_quota, 40 * 64 - 50);
  t.equal(failing, 40, 'the device is still failing: the quota costs the aggregate, not the safety signal');
  t.equal(book.recent('evil').length, 20, 'its history stays at the default 20');

  // Others still have room, and a genuine failure on a new pin is aggregated.
  const r = book.ingest('m-1', 'meters', msg('m-1', [rep(1, { servedPins: [LEAF] })]), inRollout, T0 + 100);
  t.same(r.dropped, []);
  t.equal(book.query({ host: 'api.example.com' }).length, 51);
});

t.test('a full book refuses new buckets as aggregate_full, then reclaims quiet ones after the retention', async (t) => {
  const book = new TelemetryBook(null, { maxKeys: 10, maxKeysPerDevice: 4, retentionMs: DAY });
  const fill = (id: string, first: number, at: number) =>
    book.ingest(id, 'meters', msg(id, [0, 1, 2, 3].map((k) => rep(at - T0 + k + 1, { servedPins: [pin(first + k)] }))), inRollout, at);
  fill('a', 10, T0);
  fill('b', 20, T0 + 1);
  const c = fill('c', 30, T0 + 2);
  t.same(c.dropped, [{ reason: 'aggregate_full', count: 2 }]);
  t.equal(c.accepted, 4, 'accepted all the same');
  t.equal(c.failingOn.length, 1);
  t.equal(Object.keys(book.toJSON().buckets).length, 10);
  t.equal(book.waves('r1')[0].failingDevices, 3, 'the wave counts every failing device');

  // Within the retention, an update keeps a bucket busy; after it, the quietest goes first.
  book.ingest('a', 'meters', msg('a', [rep(100, { servedPins: [pin(10)] })]), inRollout, T0 + DAY / 2);
  const d = book.ingest('d', 'meters', msg('d', [rep(1, { servedPins: [pin(40)] }), rep(2, { servedPins: [pin(41)] })]), inRollout, T0 + DAY + 10);
  t.same(d.dropped, []);
  const pins = book.query().map((r) => r.observedPin);
  t.ok(pins.includes(`sha256/${pin(10)}`), 'the bucket updated within the retention stays');
  t.notOk(pins.includes(`sha256/${pin(11)}`), 'the quietest bucket was reclaimed');
  t.notOk(pins.includes(`sha256/${pin(12)}`));
  t.ok(pins.includes(`sha256/${pin(41)}`));
  t.equal(book.toJSON().devices.a.owned, 2, "a reclaimed bucket no longer counts against its opener's quota");
  t.same(fill('a', 50, T0 + 2 * DAY).dropped, [{ reason: 'device_quota', count: 1 }], 'so it may open new ones, up to its quota');
  t.same(
    [50, 51, 52, 53].map((n) => book.query().some((r) => r.observedPin === `sha256/${pin(n)}`)),
    [true, true, true, false],
    'two of its quota were free, and reclaiming its own last old bucket freed a third',
  );

  t.ok(book.forgetDevice('a'));
  t.notOk(book.forgetDevice('a'));
  t.same(book.recent('a'), []);
  const e = book.ingest('e', 'meters', msg('e', [rep(1, { servedPins: [pin(60)] })]), inRollout, T0 + 4 * DAY);
  t.same(e.dropped, [], "reclaiming a forgotten device's bucket is fine");
});

t.test('distinct devices per bucket are exact up to the cap and marked capped beyond it', async (t) => {
  const book = new TelemetryBook(null, { devicesPerBucket: 3 });
  for (const id of ['m-1', 'm-2', 'm-3', 'm-1', 'm-4', 'm-5']) {
    const counter = book.recent(id).length + 1;
    book.ingest(id, 'meters', msg(id, [rep(counter)]), inRollout, T0);
  }
  const [row] = book.query();
  t.equal(row.devices, 3);
  t.equal(row.devicesCapped, true);
  t.equal(row.failures, 18);
  t.equal(book.waves('r1')[0].failingDevices, 5, 'the wave count stays exact');
});

t.test('per-device history is bounded and newest last', async (t) => {
  const book = new TelemetryBook(null, { perDeviceHistory: 3 });
  for (let c = 1; c <= 5; c++) book.ingest('m-1', 'meters', msg('m-1', [rep(c)]), inRollout, T0 + c);
  const recent = book.recent('m-1');
  t.same(recent.map((r) => r.counter), [3, 4, 5]);
  t.same(recent[2], {
    at: T0 + 5,
    firmware: '1.4.2',
    hostname: 'api.example.com',
    port: 443,
    result: 'pin_mismatch',
    servedPins: [`sha256/${MITM}`, `sha256/${INTERMEDIATE}`],
    knownPins: [`sha256/${LEAF}`, `sha256/${pin(3)}`],
    seq: 7,
    bundleId: BUNDLE,
    count: 3,
    suppressed: 2,
    firstSeen: S0 - 60,
    lastSeen: S0,
    counter: 5,
    rolloutId: 'r1',
    wave: 0,
  });
  recent.pop();
  t.equal(book.recent('m-1').length, 3, 'recent() hands out a copy of the list');
});

t.test('state round-trips through JSON with the same query results', async (t) => {
  const limits = { maxKeys: 4, retentionMs: DAY };
  const book = new TelemetryBook(null, limits);
  const where = waveOf({ 'm-2': 1 });
  book.ingest('m-1', 'meters', msg('m-1', [rep(1), rep(2, { servedPins: [LEAF] })]), where('m-1'), T0);
  book.ingest('m-2', 'meters', msg('m-2', [rep(1), rep(2, { hostname: 'mqtt.example.com', result: 'report_only_mismatch' })]), where('m-2'), T0 + 5);
  book.ingest('__proto__', 'meters', msg('__proto__', [rep(1, { bundleId: null })]), where('__proto__'), T0 + 7);
  const state = roundTrip(book);
  const again = new TelemetryBook(state, limits);
  t.same(again.query(), book.query());
  t.same(again.query({ host: 'mqtt.example.com' }), book.query({ host: 'mqtt.example.com' }));
  t.same(again.waves(), book.waves());
  t.same(again.counters, book.counters);
  t.same(again.recent('m-2'), book.recent('m-2'));
  t.same(again.recent('__proto__'), book.recent('__proto__'), 'a device named __proto__ is a device like any other');
  t.equal(Object.getPrototypeOf(again.toJSON().devices), null);

  // What a restart remembers: counters (duplicates) and the reclaim order (oldest update first).
  t.same(again.ingest('m-1', 'meters', msg('m-1', [rep(2)]), where('m-1'), T0 + 10).dropped, [{ reason: 'duplicate', count: 1 }]);
  again.ingest('m-1', 'meters', msg('m-1', [rep(3, { servedPins: [pin(9)] })]), where('m-1'), T0 + DAY);
  t.notOk(
    again.query().some((r) => r.observedPin === `sha256/${LEAF}`),
    'the least recently updated bucket was the one reclaimed, not the first one opened',
  );
  t.ok(again.query().some((r) => r.observedPin === `sha256/${MITM}` && r.bundleId === BUNDLE && r.host === 'api.example.com'));
  t.equal(JSON.stringify(again), JSON.stringify(again.toJSON()));
});

t.test('query filters by rollout, group, host and bundle', async (t) => {
  const book = new TelemetryBook();
  const ctx =
    (rolloutId: string): TelemetryLookup =>
    () => ({ rolloutId, wave: 0 });
  book.ingest('m-1', 'meters', msg('m-1', [rep(1)]), ctx('r1'), T0);
  book.ingest('m-2', 'meters', msg('m-2', [rep(1, { hostname: 'ota.example.com' })]), ctx('r1'), T0);
  book.ingest('b-1', 'boilers', msg('b-1', [rep(1, { bundleId: OLD_BUNDLE })], 'boilers'), ctx('r2'), T0);
  book.ingest('b-2', 'boilers', msg('b-2', [rep(1, { bundleId: null })], 'boilers'), () => ({ rolloutId: null, wave: null }), T0);
  const hosts = (f: Parameters<TelemetryBook['query']>[0]) => book.query(f).map((r) => `${r.host} ${r.bundleId?.slice(0, 2) ?? '-'}`).sort();
  t.same(hosts({ rollout: 'r1' }), ['api.example.com ab', 'ota.example.com ab']);
  t.same(hosts({ rollout: 'r2' }), ['api.example.com cd']);
  t.same(hosts({ group: 'boilers' }), ['api.example.com -', 'api.example.com cd']);
  t.same(hosts({ host: 'OTA.example.com' }), ['ota.example.com ab']);
  t.same(hosts({ host: 'api.example.com', group: 'meters' }), ['api.example.com ab']);
  t.same(hosts({ bundle: OLD_BUNDLE }), ['api.example.com cd']);
  t.same(hosts({ rollout: 'r3' }), []);
  t.equal(book.query().length, 4);
});

t.test('a state this build did not write, or a limit out of range, is refused', async (t) => {
  const ok = roundTrip(new TelemetryBook());
  t.throws(() => new TelemetryBook({ ...ok, version: 2 }), { name: 'TypeError', message: 'expected telemetry state version 1, got version 2' });
  t.throws(() => new TelemetryBook([] as never), { message: 'expected telemetry state version 1, got object' });
  t.throws(() => new TelemetryBook({ ...ok, waves: null }), { message: 'expected telemetry state "waves" to be an object' });
  t.throws(() => new TelemetryBook({ ...ok, buckets: { k: { updatedAt: 'x' } } }), { message: 'expected telemetry state buckets["k"] to be a bucket' });
  t.throws(() => new TelemetryBook({ ...ok, devices: { d: { counter: 1 } } }), { message: 'expected telemetry state devices["d"] to be a device' });
  t.throws(() => new TelemetryBook(null, { maxKeys: 0 }), { name: 'RangeError', message: 'expected limits.maxKeys to be a positive integer, got 0' });
  t.throws(() => new TelemetryBook(null, { retentionMs: -1 }), { message: 'expected limits.retentionMs to be a non-negative integer, got -1' });
  const older = { ...ok, counters: { messages: 1, reports: 1, accepted: 1, dropped: { duplicate: 1 } } };
  t.same(new TelemetryBook(older).counters.dropped, { device_mismatch: 0, group_mismatch: 0, bad_times: 0, duplicate: 1, aggregate_full: 0, device_quota: 0 }, 'counters of reasons added since are started at 0');
});
