// Behaviours follow their configured rates within tolerance for a fixed seed, and the same seed gives
// the same fleet.
import t from 'tap';
import { checkBehaviours, mulberry32, planDevice, sample, seedOf, type Behaviours } from '../../device-sim/behaviours.ts';
import { FORMAT_VERSION } from '../../firmware-manifest/index.ts';

const ids = Array.from({ length: 10_000 }, (_, i) => `th-${String(i).padStart(5, '0')}`);
const behaviours: Behaviours = {
  silentRate: 0.1,
  rejectRate: 0.05,
  crashRate: 0.02,
  offlineRate: 0.2,
  offlineAtSeconds: { min: 10, max: 20 },
  offlineForSeconds: { min: 30, max: 60 },
  clockSkewRate: 0.3,
  clockSkewSeconds: { min: -600, max: 600 },
  oldFormatRate: 0.01,
  reconnectStorm: { atSeconds: 5, rate: 0.5, spreadMs: 1000 },
  ackDelayMs: { min: 10, max: 200 },
  rebootMs: { min: 100, max: 300 },
};

t.test('behaviours follow their configured rates within tolerance for a fixed seed', async (t) => {
  const plans = ids.map((id) => planDevice(id, behaviours, 'fixed'));
  const share = (f: (p: (typeof plans)[number]) => boolean) => plans.filter(f).length / plans.length;
  // 10,000 draws: three standard deviations of a 0.5 rate are 0.015, of 0.01 about 0.003
  const within = (got: number, want: number, name: string) => t.ok(Math.abs(got - want) <= 3 * Math.sqrt((want * (1 - want)) / plans.length) + 1e-9, `${name}: ${got} ≈ ${want}`);
  within(share((p) => p.silent), 0.1, 'silent');
  within(share((p) => p.flashFails), 0.05, 'flash write failure');
  within(share((p) => p.crashBeforeAck), 0.02, 'crash before ack');
  within(share((p) => p.offline !== null), 0.2, 'offline');
  within(share((p) => p.clockSkewSeconds !== 0), 0.3, 'clock skew');
  within(share((p) => p.acceptedVersions[0] === FORMAT_VERSION - 1), 0.01, 'one format version behind');
  within(share((p) => p.storm !== null), 0.5, 'reconnect storm');
  t.ok(plans.every((p) => !p.offline || (p.offline.atMs >= 10_000 && p.offline.atMs <= 20_000 && p.offline.forMs >= 30_000 && p.offline.forMs <= 60_000)), 'offline periods within their ranges');
  t.ok(plans.every((p) => !p.storm || (p.storm.atMs === 5000 && p.storm.delayMs >= 0 && p.storm.delayMs <= 1000)), 'storm reconnects within the spread');
  t.ok(plans.every((p) => Math.abs(p.clockSkewSeconds) <= 600 && p.rebootMs >= 100 && p.rebootMs <= 300), 'skews and reboots within their ranges');
  const delays = plans.slice(0, 1000).map((p) => p.ackDelayMs());
  t.ok(delays.every((d) => d >= 10 && d <= 200), 'ack delays within their range');
  const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
  t.ok(Math.abs(mean - 105) < 6, `uniform ack delay mean ${mean.toFixed(1)} ≈ 105`);
  t.ok(new Set(plans.map((p) => p.callHomePhase.toFixed(3))).size > 900, 'call-home phases spread over the period');
});

t.test('the same seed gives the same plans; another seed, others; enabling one behaviour leaves the others alone', async (t) => {
  // compared as text: tap's deep diff of thousands of entries is slow
  const key = (b: Behaviours, seed: string) => JSON.stringify(ids.slice(0, 2000).map((id) => { const p = planDevice(id, b, seed); return [p.silent, p.flashFails, p.offline?.atMs, p.clockSkewSeconds, p.ackDelayMs(), p.ackDelayMs()]; }));
  t.equal(key(behaviours, 'a'), key(behaviours, 'a'));
  t.not(key(behaviours, 'a'), key(behaviours, 'b'));
  const silentOnly = ids.slice(0, 2000).map((id) => planDevice(id, { silentRate: 0.1 }, 'a').silent).join();
  t.equal(silentOnly, ids.slice(0, 2000).map((id) => planDevice(id, behaviours, 'a').silent).join(), 'silent picks do not move when other behaviours are on');
  const none = planDevice('x', {}, 1);
  t.match(none, { silent: false, flashFails: false, crashBeforeAck: false, offline: null, storm: null, clockSkewSeconds: 0, acceptedVersions: [FORMAT_VERSION], rebootMs: 1000 });
  t.equal(none.ackDelayMs(), 0);
  t.equal(planDevice('x', { ackDelayMs: 40 }, 1).ackDelayMs(), 40, 'a fixed delay');
});

t.test('an exponential distribution has its mean and respects its cap', async (t) => {
  const u = mulberry32(seedOf('exp'));
  const xs = Array.from({ length: 20_000 }, () => sample({ mean: 100, max: 500 }, u));
  t.ok(xs.every((x) => x >= 0 && x <= 500));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  t.ok(Math.abs(mean - 99.3) < 4, `mean ${mean.toFixed(1)} (100, less the capped tail)`);
  t.ok(Math.max(...Array.from({ length: 20_000 }, () => sample({ mean: 10 }, u))) <= 100, 'default cap: 10 × the mean');
  t.not(seedOf('a'), seedOf('b'));
  const v = mulberry32(1);
  t.ok(Array.from({ length: 1000 }, v).every((x) => x >= 0 && x < 1));
});

t.test('checkBehaviours names each bad value by its JSON path', async (t) => {
  t.same(checkBehaviours(behaviours), []);
  t.same(
    checkBehaviours({ silentRate: 1.5, ackDelayMs: { min: 200, max: 10 }, rebootMs: -1, offlineForSeconds: { mean: 0 }, clockSkewSeconds: { min: -10, max: 10 }, offlineAtSeconds: { mean: 10, max: 5 }, reconnectStorm: { atSeconds: 1, rate: 2 }, offlineRate: NaN }, '/models/0/behaviours'),
    [
      { path: '/models/0/behaviours/silentRate', message: 'must be a rate from 0 to 1, got 1.5' },
      { path: '/models/0/behaviours/offlineRate', message: 'must be a rate from 0 to 1, got NaN' },
      { path: '/models/0/behaviours/rebootMs', message: 'must be a non-negative number, got -1' },
      { path: '/models/0/behaviours/ackDelayMs', message: 'max (10) must not be below min (200)' },
      { path: '/models/0/behaviours/offlineAtSeconds', message: 'max must be at least the mean (10), got 5' },
      { path: '/models/0/behaviours/offlineForSeconds', message: 'mean must be a positive number, got 0' },
      { path: '/models/0/behaviours/reconnectStorm/rate', message: 'must be a rate from 0 to 1, got 2' },
    ],
  );
  t.same(checkBehaviours({ ackDelayMs: { min: -1, max: 3 } }), [{ path: '/ackDelayMs', message: 'min and max must be non-negative numbers' }]);
});
