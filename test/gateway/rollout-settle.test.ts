// An aborted rollout stored before its waves ended with it (an older gateway wrote it with the
// wave in progress still active): the gateway settles it when it loads it (docs/architecture.md §6),
// in what it shows and in the store.
import t from 'tap';
import { fleet, harness, newPins } from '../fixtures/gateway.ts';
import { createRollout, start } from '../../gateway/rollout/engine.ts';
import { memberChanges, rolloutCreate } from '../../gateway/store/rollout-records.ts';

t.test('an aborted rollout stored with its waves still active shows them aborted and cancelled after a restart', async (t) => {
  const h = await harness(t);
  const devices = await fleet(h, 10);
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const now = h.clock.now();
  const c = createRollout({ id: 'r-old', bundle: { id: bundle.id, seq: bundle.seq, group: 'thermostats' }, target: { group: 'thermostats' }, deviceIds: devices.map((d) => d.id), plan: { waves: [{ size: 2 }, { size: '100%' }] }, now });
  if (!c.ok) throw new Error(c.errors.join('; '));
  const old = c.rollout;
  start(old, now, 'alice', () => true);
  // As an older writer left an abort: the rollout aborted, its waves as they were.
  old.state = 'aborted';
  old.endedAt = now + 1000;
  old.decisions.push({ at: now + 1000, actor: 'alice', action: 'abort', reason: 'operator', from: 'running', to: 'aborted', wave: 0 });
  t.same(old.waves.map((w) => w.state), ['active', 'pending']);
  const applied = await h.gw.store.apply([rolloutCreate({ ...old, createdBy: 'alice', previousBundle: null }), ...memberChanges(old)]);
  t.ok(applied.ok, 'stored');

  await h.restart();
  const shown = await h.gw.getRollout('r-old');
  t.same(shown.waves.map((w) => [w.state, w.endedAt]), [['aborted', now + 1000], ['cancelled', null]], 'the wave in progress ended with the rollout');
  t.same((await h.gw.store.getRollout('r-old'))!.waves.map((w) => w.state), ['aborted', 'cancelled'], 'and the store says so too');
});
