import t from 'tap';
import { cutWaves, DEFAULT_SIZES, seedOrder, validatePlan, WAVE_DEFAULTS, wantedBy } from '../../../gateway/rollout/plan.ts';
import type { Plan } from '../../../gateway/rollout/types.ts';

function errorsOf(input: unknown, seed?: string): string[] {
  const v = validatePlan(input, seed);
  return v.ok ? [] : v.errors;
}

function planOf(input: unknown): Plan {
  const v = validatePlan(input, 'seed');
  if (!v.ok) throw new Error(v.errors.join('; '));
  return v.plan;
}

t.test('an absent plan gets the default waves 1%, 10%, 50%, 100% with default thresholds', async (t) => {
  const plan = planOf(undefined);
  t.same(
    plan.waves.map((w) => w.size),
    DEFAULT_SIZES,
  );
  t.same(plan.waves[0], { size: '1%', ...WAVE_DEFAULTS });
  t.equal(plan.onMiss, 'hold');
  t.equal(plan.seed, 'seed');
  t.same(WAVE_DEFAULTS, {
    ackThreshold: 0.95,
    failureThreshold: 0.02,
    minDevices: 5,
    maxUnreachable: 0.5,
    timeoutSeconds: 3600,
    soakSeconds: 0,
    requireVerified: true,
  });
  t.ok(validatePlan(null, 's').ok, 'null reads as no plan');
});

t.test('a wave keeps the thresholds it sets and takes defaults for the rest', async (t) => {
  const plan = planOf({ waves: [{ size: 10, ackThreshold: 0.8, soakSeconds: 60 }, { size: '100%' }], onMiss: 'abort', seed: 'x' });
  t.same(plan.waves[0], { ...WAVE_DEFAULTS, size: 10, ackThreshold: 0.8, soakSeconds: 60 });
  t.equal(plan.onMiss, 'abort');
  t.equal(plan.seed, 'x', 'the plan seed wins over the fallback');
});

t.test('plan validation errors name the field and the value that came', async (t) => {
  t.same(errorsOf({ waves: [{ size: 5 }, { size: 10, ackThreshold: 1.5 }] }, 's'), [
    'waves[1].ackThreshold must be between 0 and 1, got 1.5',
  ]);
  t.same(
    errorsOf(
      {
        waves: [
          { size: '10%', failureThreshold: -0.1, maxUnreachable: '0.5', minDevices: 2.5, timeoutSeconds: 0, soakSeconds: -1 },
        ],
      },
      's',
    ),
    [
      'waves[0].failureThreshold must be between 0 and 1, got -0.1',
      'waves[0].maxUnreachable must be between 0 and 1, got "0.5"',
      'waves[0].minDevices must be an integer of 0 or more, got 2.5',
      'waves[0].timeoutSeconds must be a number of seconds above 0 and at most a year (31536000), got 0',
      'waves[0].soakSeconds must be a number of seconds from 0 to a year (31536000), got -1',
    ],
  );
  t.same(errorsOf({ waves: [{ size: '25' }] }, 's'), [
    'waves[0].size must be a device count (an integer of 1 or more) or a percentage like "10%", got "25"',
  ]);
  t.same(errorsOf({ waves: [{ size: 0 }, { size: 2.5 }] }, 's'), [
    'waves[0].size must be a device count (an integer of 1 or more) or a percentage like "10%", got 0',
    'waves[1].size must be a device count (an integer of 1 or more) or a percentage like "10%", got 2.5',
  ]);
  t.same(errorsOf({ waves: [{ size: '0%' }, { size: '150%' }] }, 's'), [
    'waves[0].size must be above 0% and at most 100%, got "0%"',
    'waves[1].size must be above 0% and at most 100%, got "150%"',
  ]);
  t.same(errorsOf({ waves: [{ ackThreshold: 0.9 }] }, 's'), [
    'waves[0].size is required (a device count or a percentage like "10%")',
  ]);
  t.same(errorsOf({ waves: [{ size: 5, ackTreshold: 0.5 }], color: 'red' }, 's'), [
    'color is not a known field',
    'waves[0].ackTreshold is not a known field',
  ]);
  t.same(errorsOf({ onMiss: 'retry' }, 's'), ['onMiss must be "hold" or "abort", got "retry"']);
  t.same(errorsOf({}), ['seed must be a non-empty string, got undefined']);
  t.same(errorsOf({ seed: '' }), ['seed must be a non-empty string, got ""']);
  t.same(errorsOf({ waves: [] }, 's'), ['waves must be a non-empty array, got an empty array']);
  t.same(errorsOf({ waves: { size: 1 } }, 's'), ['waves must be a non-empty array, got an object']);
  t.same(errorsOf({ waves: [null, [1], 'x'] }, 's'), [
    'waves[0] must be an object, got null',
    'waves[1] must be an object, got an array',
    'waves[2] must be an object, got "x"',
  ]);
  t.same(errorsOf(42), ['plan must be an object, got 42']);
});

t.test('wave sizes of the same kind must not decrease', async (t) => {
  t.same(errorsOf({ waves: [{ size: '10%' }, { size: 50 }, { size: '5%' }, { size: 40 }] }, 's'), [
    'waves[2].size must not be below waves[0].size (sizes are cumulative), got "5%"',
    'waves[3].size must not be below waves[1].size (sizes are cumulative), got 40',
  ]);
  t.same(errorsOf({ waves: [{ size: 10 }, { size: 10 }, { size: '10%' }, { size: '10%' }] }, 's'), [], 'equal sizes are allowed');
});

t.test('a count below an earlier percentage is an error once the target is known', async (t) => {
  const plan = planOf({ waves: [{ size: '50%' }, { size: 10 }, { size: '100%' }] });
  const cut = cutWaves(plan, 100);
  t.notOk(cut.ok);
  t.same(!cut.ok && cut.errors, [
    'waves[1].size 10 (10 of 100 devices) must not be below waves[0].size "50%" (50 devices): sizes are cumulative',
  ]);
  t.ok(cutWaves(plan, 20).ok, 'of 20 devices, 50% is 10: no decrease');
});

t.test('sizes are cumulative, round up, and the last wave takes the remainder', async (t) => {
  const plan = planOf(undefined);
  const ends = (total: number, p = plan) => {
    const c = cutWaves(p, total);
    return c.ok ? c.cuts : c.errors;
  };
  t.same(ends(200), [
    { planIndex: 0, end: 2 },
    { planIndex: 1, end: 20 },
    { planIndex: 2, end: 100 },
    { planIndex: 3, end: 200 },
  ]);
  t.same(ends(50), [
    { planIndex: 0, end: 1 },
    { planIndex: 1, end: 5 },
    { planIndex: 2, end: 25 },
    { planIndex: 3, end: 50 },
  ]);
  t.same(
    ends(3),
    [
      { planIndex: 0, end: 1 },
      { planIndex: 2, end: 2 },
      { planIndex: 3, end: 3 },
    ],
    'a 3-device target gets fewer waves: 10% of 3 adds nobody after 1%',
  );
  t.same(ends(1), [{ planIndex: 0, end: 1 }], 'one device, one wave');
  const counts = planOf({ waves: [{ size: 25 }, { size: 40 }] });
  t.same(ends(100, counts), [
    { planIndex: 0, end: 25 },
    { planIndex: 1, end: 100 },
  ], 'the last wave takes the remainder whatever its size says');
  t.same(ends(20, counts), [{ planIndex: 0, end: 20 }], 'a count past the target is capped, and the empty last wave dropped');
  t.equal(wantedBy('33.3%', 1000), 333, 'no float rounding up past the exact share');
  t.equal(wantedBy('1%', 50), 1, 'rounds up: at least one device');
});

t.test('the same seed gives the same order, whatever order the ids come in', async (t) => {
  const ids = Array.from({ length: 50 }, (_, i) => `dev-${i}`);
  const a = seedOrder('s1', ids);
  const b = seedOrder('s1', [...ids].reverse());
  t.same(a, b);
  t.same([...a].sort(), [...ids].sort(), 'a permutation of the target');
  t.notSame(seedOrder('s2', ids), a, 'another seed, another order');
  t.notSame(a, ids, 'not the input order');
});
