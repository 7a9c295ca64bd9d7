import t from 'tap';
import { MIN_PREFIX, resolveIdPrefix } from '../../gateway/id-prefix.ts';

const A = '8531aab59be3b9748a622dda58e9af339be8e0410384e7f113bf2e74356b0ead';
const B = '8531aab5ffe3b9748a622dda58e9af339be8e0410384e7f113bf2e74356b0ead';
const C = 'f0'.repeat(32);

t.test('a unique prefix of at least 8 characters resolves to its id', async (t) => {
  t.equal(MIN_PREFIX, 8);
  t.same(resolveIdPrefix('8531aab59', [A, B, C], 'bundle'), { ok: true, id: A });
  t.same(resolveIdPrefix('f0f0f0f0', [A, B, C], 'bundle'), { ok: true, id: C });
  t.same(resolveIdPrefix(A, [A], 'bundle'), { ok: true, id: A }, 'a whole id');
});

t.test('an ambiguous prefix names the candidates', async (t) => {
  const r = resolveIdPrefix('8531aab5', [C, B, A], 'bundle');
  t.same(r, { ok: false, code: 'ambiguous', message: `bundle id prefix "8531aab5" is ambiguous: it starts ${A}, ${B}; give more characters`, candidates: [A, B] });
  const many = Array.from({ length: 12 }, (_, i) => `r-thermostats-1${i}-x`);
  const m = resolveIdPrefix('r-thermostats-1', many, 'rollout');
  t.equal(m.ok, false);
  if (!m.ok && m.code === 'ambiguous') {
    t.equal(m.candidates.length, 10, 'at most 10 named');
    t.match(m.message, /, and 2 more; give more characters$/);
  }
  const more = resolveIdPrefix('8531aab5', [A], 'bundle', true);
  t.match(more, { ok: false, code: 'ambiguous', message: /and more/ }, 'one shown, more left out by the caller: still ambiguous');
});

t.test('none matching is not found; under 8 characters is refused before any lookup, unless it is a whole id', async (t) => {
  t.same(resolveIdPrefix('deadbeef', [A, B], 'bundle'), { ok: false, code: 'not_found', message: 'no bundle "deadbeef"' });
  t.same(resolveIdPrefix('8531aab', [A], 'bundle'), { ok: false, code: 'too_short', message: 'bundle id "8531aab" is neither a bundle id nor a prefix of at least 8 characters' });
  t.same(resolveIdPrefix('r-g-1-a', ['r-g-1-a', 'r-g-1-ab'], 'rollout'), { ok: true, id: 'r-g-1-a' }, 'an exact id wins, however short, whatever else it prefixes');
  t.same(resolveIdPrefix('r-g-1-ab', ['r-g-1-ab', 'r-g-1-abc'], 'rollout'), { ok: true, id: 'r-g-1-ab' });
});
