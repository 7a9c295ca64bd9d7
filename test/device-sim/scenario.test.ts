// Scenario files: the shipped examples are valid, and every error names the JSON path it is about.
import t from 'tap';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allocate, formatScenarioErrors, loadScenario, validateScenario, withHealthCheck } from '../../device-sim/scenario.ts';
import { formatPin, generateKeyPair } from '../../firmware-manifest/index.ts';

const examples = new URL('../../device-sim/scenarios/', import.meta.url).pathname;
const key = generateKeyPair();
const pin = (n: number) => formatPin(new Uint8Array(32).fill(n));
const manifest = { model: 'th-100', firmware: '1.4.2', trustedKeys: [key.publicPem], pins: [{ host: 'api.example.com', pins: [pin(1), pin(2)] }] };

t.test('the example scenarios are valid', async (t) => {
  const files = readdirSync(examples).filter((f) => f.endsWith('.json'));
  t.ok(files.length >= 3, files.join(', '));
  for (const f of files) {
    const r = await loadScenario(join(examples, f));
    t.ok(r.ok, r.ok ? f : `${f}: ${formatScenarioErrors(r.errors)}`);
  }
  const mixed = await loadScenario(join(examples, 'mixed-fleet.json'));
  if (!mixed.ok) return;
  t.same(mixed.scenario.models.map((m) => [m.model, m.weight]), [['th-100', 3], ['th-200', 1]]);
  t.match(mixed.scenario.models[1].behaviours, { silentRate: 0.005, rejectRate: 0.01, oldFormatRate: 0.02 }, "a model's behaviours are merged over the scenario's");
  const checks = await loadScenario(join(examples, 'pin-checks.json'));
  t.match(checks.ok && checks.scenario.endpoints, [{ host: 'api.example.com', port: 443, connect: { host: '127.0.0.1', port: 8443 } }]);
});

t.test('a manifest is given inline or as a path relative to the scenario, and checked', async (t) => {
  const dir = t.testdir({ 'th-100.json': JSON.stringify(manifest), 'bad.json': JSON.stringify({ ...manifest, pins: [{ host: 'api.example.com', pins: [pin(1), 'sha256/short'] }] }), 'broken.json': '{' });
  writeFileSync(join(dir, 'ok.json'), JSON.stringify({ models: [{ model: 'th-100', manifest: 'th-100.json' }, { model: 'th-200', manifest: { ...manifest, model: 'th-200' } }] }));
  const ok = await loadScenario(join(dir, 'ok.json'));
  t.ok(ok.ok);
  t.equal(ok.ok && ok.scenario.models[0].manifest?.firmware, '1.4.2');
  const r = await validateScenario(
    { models: [{ model: 'th-100', manifest: 'bad.json' }, { model: 'th-200', manifest: 'th-100.json' }, { model: 'x', manifest: 'missing.json' }, { model: 'y', manifest: 'broken.json' }, { model: 'th-100', manifest: { ...manifest, trustedKeys: ['nope'] } }] },
    dir,
  );
  t.notOk(r.ok);
  const errors = r.ok ? [] : r.errors;
  t.match(errors, [
    { path: '/models/0/manifest', message: /^bad\.json \/pins\/0\/pins\/1: .*base64/ },
    { path: '/models/0/manifest', message: /^bad\.json \/pins\/0\/pins: must hold at least 2 distinct pins/ },
    { path: '/models/1/model', message: 'is "th-200" but its manifest is for model "th-100"' },
    { path: '/models/2/manifest', message: /cannot read .*missing\.json: ENOENT/ },
    { path: '/models/3/manifest', message: /broken\.json is not JSON/ },
    { path: '/models/4/model', message: 'model "th-100" is listed twice' },
    { path: '/models/4/manifest/trustedKeys/0', message: /./ },
  ]);
  t.equal(errors.length, 7);
});

t.test('errors name the JSON path of what is wrong', async (t) => {
  const bad = async (value: unknown) => {
    const r = await validateScenario(value);
    return r.ok ? [] : r.errors;
  };
  t.same(await bad({ devices: 0, models: [{ model: 'th-100', behaviours: { silentRate: 2 } }] }), [
    { path: '/devices', message: 'must be >= 1' },
    { path: '/models/0/behaviours/silentRate', message: 'must be <= 1' },
  ]);
  t.same(await bad({ behaviours: { ackDelayMs: 'fast' }, colour: 'red' }), [
    { path: '', message: 'unknown field "colour"' },
    { path: '/behaviours/ackDelayMs', message: 'must be a number, { "min", "max" } or { "mean", "max"? }' },
  ]);
  t.same(await bad({ behaviours: { ackDelayMs: { min: 100, max: 10 } }, models: [{ model: 'a' }, { model: 'a' }, {}] }), [{ path: '/models/2', message: 'missing required field "model"' }]);
  t.same(await bad({ behaviours: { ackDelayMs: { min: 100, max: 10 } }, models: [{ model: 'a' }, { model: 'a' }] }), [
    { path: '/behaviours/ackDelayMs', message: 'max (10) must not be below min (200)'.replace('200', '100') },
    { path: '/models/1/model', message: 'model "a" is listed twice' },
  ]);
  t.same(await bad({ endpoints: [{ host: 'api.example.com', connect: '127.0.0.1:99999' }, { host: 'API' }] }), [{ path: '/endpoints/1/host', message: 'must match pattern "^[a-z0-9.:-]+$"' }]);
  t.same(await bad({ endpoints: [{ host: 'api.example.com', connect: '127.0.0.1:99999' }] }), [{ path: '/endpoints/0/connect', message: 'must be HOST:PORT with a port from 1 to 65535, got "127.0.0.1:99999"' }]);
  t.same(await bad({ seed: 1.5 }), [{ path: '/seed', message: 'must be string,integer' }]);
  const r = await validateScenario({ seed: 's', group: 'g', devices: 3, ramp: { perTick: 10 }, endpoints: [{ host: '::1', connect: '[::1]:8443', servername: 'api.example.com' }] });
  t.match(r, { ok: true, scenario: { seed: 's', group: 'g', devices: 3, models: [], endpoints: [{ host: '::1', port: 443, connect: { host: '::1', port: 8443 }, servername: 'api.example.com' }], ramp: { perTick: 10 } } });
  t.equal(formatScenarioErrors([{ path: '', message: 'x' }, { path: '/a', message: 'y' }]), '/: x\n/a: y');
});

t.test('a timing field longer than a timer can wait (2^31 - 1 ms) is refused at load, naming the field, its value and the bound', async (t) => {
  const dir = t.testdir({
    'far.json': JSON.stringify({
      callHomeSeconds: 2_147_484,
      reportIntervalSeconds: 3e6,
      ramp: { tickMs: 2 ** 31 },
      behaviours: { ackDelayMs: 3_000_000_000, offlineForSeconds: { min: 30, max: 1e7 }, rebootMs: { mean: 3e8 }, clockSkewSeconds: { min: -3e6, max: 3e6 } },
      models: [{ model: 'th-100', behaviours: { offlineAtSeconds: { mean: 10, max: 2_147_484 }, reconnectStorm: { atSeconds: 2_147_483, rate: 0.5, spreadMs: 2 ** 31 } } }],
    }),
  });
  const r = await loadScenario(join(dir, 'far.json'));
  t.notOk(r.ok);
  const bound = (max: string, got: number | string) => `must be at most ${max} (2^31 - 1 ms, the longest a timer can wait: about 24.8 days), got ${got}`;
  t.same(r.ok ? [] : r.errors, [
    { path: '/callHomeSeconds', message: bound('2147483 s', 2147484) },
    { path: '/reportIntervalSeconds', message: bound('2147483 s', 3000000) },
    { path: '/ramp/tickMs', message: bound('2147483647 ms', 2147483648) },
    { path: '/behaviours/rebootMs/mean', message: `${bound('2147483647 ms', 3000000000)} (10 × the mean 300000000: its draws go up to that without a max)` },
    { path: '/behaviours/ackDelayMs', message: bound('2147483647 ms', 3000000000) },
    { path: '/behaviours/offlineForSeconds/max', message: bound('2147483 s', 10000000) },
    { path: '/models/0/behaviours/offlineAtSeconds/max', message: bound('2147483 s', 2147484) },
    { path: '/models/0/behaviours/reconnectStorm/spreadMs', message: bound('2147483647 ms', 2147483648) },
  ], 'a clock skew is an offset, not a wait: a month either way is within its bound; a storm at 2147483 s is within the bound');
  t.match(formatScenarioErrors(r.ok ? [] : r.errors), '/behaviours/ackDelayMs: must be at most 2147483647 ms');
  const edge = await validateScenario({ callHomeSeconds: 2_147_483, reportIntervalSeconds: 2_147_483, ramp: { tickMs: 2 ** 31 - 1 }, behaviours: { ackDelayMs: { min: 0, max: 2 ** 31 - 1 } } });
  t.ok(edge.ok, 'the bound itself is allowed');
});

t.test('a clock skew beyond ten years either way, an absurd wait (1e300) and a report interval longer than any run are refused, naming the field', async (t) => {
  const r = await validateScenario({
    reportIntervalSeconds: 1e300,
    behaviours: { clockSkewRate: 1, clockSkewSeconds: 1e20, ackDelayMs: { mean: 1e300, max: 1e300 }, rebootMs: { mean: 1e300 } },
    models: [{ model: 'a', behaviours: { clockSkewSeconds: { min: -1e20, max: 0 } } }, { model: 'b', behaviours: { clockSkewSeconds: { mean: 1e20, max: 1e20 } } }],
  });
  t.same(r.ok ? [] : r.errors, [
    { path: '/reportIntervalSeconds', message: 'must be at most 2147483 s (2^31 - 1 ms, the longest a timer can wait: about 24.8 days), got 1e+300' },
    { path: '/behaviours/rebootMs/mean', message: 'must be at most 2147483647 ms (2^31 - 1 ms, the longest a timer can wait: about 24.8 days), got 1e+301 (10 × the mean 1e+300: its draws go up to that without a max)' },
    { path: '/behaviours/ackDelayMs/max', message: 'must be at most 2147483647 ms (2^31 - 1 ms, the longest a timer can wait: about 24.8 days), got 1e+300' },
    { path: '/behaviours/clockSkewSeconds', message: 'must be from -315360000 to 315360000 s (10 years either way), got 100000000000000000000' },
    { path: '/models/0/behaviours/clockSkewSeconds/min', message: 'must be from -315360000 to 315360000 s (10 years either way), got -100000000000000000000' },
    { path: '/models/1/behaviours/clockSkewSeconds/max', message: 'must be from -315360000 to 315360000 s (10 years either way), got 100000000000000000000' },
  ]);
  const edge = await validateScenario({ reportIntervalSeconds: 2_147_483, behaviours: { clockSkewRate: 1, clockSkewSeconds: { min: -315_360_000, max: 315_360_000 } } });
  t.ok(edge.ok, 'the bounds themselves are allowed');
});

t.test('a scenario file that cannot be read or parsed says so', async (t) => {
  const dir = t.testdir({ 'not.json': 'nope' });
  t.match(await loadScenario(join(dir, 'missing.json')), { ok: false, errors: [{ path: '', message: /ENOENT/ }] });
  t.match(await loadScenario(join(dir, 'not.json')), { ok: false, errors: [{ path: '', message: /^not JSON/ }] });
});

t.test('devices are split between models by weight, exactly', async (t) => {
  t.same(allocate(1000, [3, 1]), [750, 250]);
  t.same(allocate(10, [1, 1, 1]), [4, 3, 3]);
  t.same(allocate(1, [1, 5]), [0, 1]);
  t.same(allocate(7, [0.5]), [7]);
});

t.test('a scenario declares health checks, for all its models or one, turns one off with false, and gives a share older firmware', async (t) => {
  const hc = { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'revert' };
  const r = await validateScenario({
    healthCheck: hc,
    models: [
      { model: 'a' },
      { model: 'b', healthCheck: false },
      { model: 'c', healthCheck: { ...hc, onUnverifiable: 'commit', endpoints: [{ host: 'api.example.com' }] }, withoutHealthCheck: { share: 0.3, firmware: '1.0.0' } },
    ],
  });
  if (!r.ok) return t.fail(formatScenarioErrors(r.errors));
  t.same(r.scenario.healthCheck, hc);
  t.same(r.scenario.models.map((m) => m.healthCheck), [hc, false, { ...hc, onUnverifiable: 'commit', endpoints: [{ host: 'api.example.com' }] }], "a model's own over the scenario's");
  t.same(r.scenario.models[2].withoutHealthCheck, { share: 0.3, firmware: '1.0.0' });
  const example = await loadScenario(join(examples, 'health-check.json'));
  t.match(example.ok && example.scenario.models[0], { healthCheck: { commitTimeoutSeconds: 120, retrySeconds: 10, onUnverifiable: 'commit' }, withoutHealthCheck: { share: 0.2 } });
});

t.test('withHealthCheck: a model setting over the manifest, false takes it away, a fallback only where neither says', async (t) => {
  const own = { commitTimeoutSeconds: 30, retrySeconds: 3, onUnverifiable: 'commit' as const };
  const set = { commitTimeoutSeconds: 90, retrySeconds: 9, onUnverifiable: 'revert' as const };
  const fallback = { commitTimeoutSeconds: 60, retrySeconds: 5, onUnverifiable: 'commit' as const };
  const withOwn = { ...manifest, healthCheck: own };
  t.same(withHealthCheck(withOwn, set).healthCheck, set);
  t.notOk('healthCheck' in withHealthCheck(withOwn, false), 'false: none, whatever the manifest says');
  t.same(withHealthCheck(withOwn, undefined, fallback).healthCheck, own, "the manifest's own over the fallback");
  t.same(withHealthCheck(manifest, undefined, fallback).healthCheck, fallback);
  t.notOk('healthCheck' in withHealthCheck(manifest, undefined), 'nothing said anywhere: none');
});

t.test('health-check errors in a scenario name their JSON path', async (t) => {
  const bad = async (value: unknown) => {
    const r = await validateScenario(value);
    return r.ok ? [] : r.errors;
  };
  t.same(await bad({ healthCheck: true }), [{ path: '/healthCheck', message: 'must be a health check ({ "commitTimeoutSeconds", "retrySeconds", "onUnverifiable", "endpoints"? }) or false' }]);
  t.same(await bad({ healthCheck: 'yes' }), [{ path: '/healthCheck', message: 'must be object,boolean' }]);
  t.same(await bad({ models: [{ model: 'a', healthCheck: { commitTimeoutSeconds: 10, retrySeconds: 20, onUnverifiable: 'never' } }] }), [
    { path: '/models/0/healthCheck/onUnverifiable', message: 'must be one of "commit", "revert"' },
    { path: '/models/0/healthCheck/retrySeconds', message: 'must be at most commitTimeoutSeconds (10), got 20: a retry must fall inside the window' },
  ]);
  t.same(await bad({ models: [{ model: 'a', healthCheck: { retrySeconds: 5, onUnverifiable: 'commit', endpoints: [{ host: '*.example.com' }] } }] }), [
    { path: '/models/0/healthCheck', message: 'missing required field "commitTimeoutSeconds"' },
    { path: '/models/0/healthCheck/endpoints/0/host', message: 'cannot be a wildcard: a health check dials a host, got "*.example.com"' },
  ]);
  t.same(await bad({ models: [{ model: 'a', withoutHealthCheck: { share: 2 } }, { model: 'b', withoutHealthCheck: { firmware: '1' } }] }), [
    { path: '/models/0/withoutHealthCheck/share', message: 'must be <= 1' },
    { path: '/models/1/withoutHealthCheck', message: 'missing required field "share"' },
  ]);
});
