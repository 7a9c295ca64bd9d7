// Every rollout decision is logged exactly once, with the wave numbered from 1; a restart does not
// log the decisions an earlier run took again.
import t from 'tap';
import { fleet, harness, newPins, until } from '../fixtures/gateway.ts';
import type { Logger } from '../../gateway/gateway.ts';

function recording() {
  const lines: Array<{ level: string; msg: string; obj: Record<string, unknown> }> = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, msg: msg ?? '', obj: obj as Record<string, unknown> });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, lines };
}

/** `n` simulated devices of the group, connected, disconnected at teardown. */
async function online(t: { teardown(fn: () => unknown): void }, h: Awaited<ReturnType<typeof harness>>, n: number) {
  const sims = await fleet(h, n);
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));
  return sims;
}

/** A bundle of new pins rolled out to the whole group in one wave, and completed. */
async function completedRollout(h: Awaited<ReturnType<typeof harness>>, actor: string): Promise<string> {
  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, actor);
  const { rollout } = await h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: '100%', minDevices: 1 }], start: true }, actor);
  await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 10_000, `${rollout.id} to complete`);
  return rollout.id;
}

t.test('the log of one rollout has one line per decision: started, soaking, passed, held, resumed, paused, aborted, completed', async (t) => {
  const { logger, lines } = recording();
  const h = await harness(t, { logger });
  const sims = await fleet(h, 6, 'th', (i) => ({ flashFails: i === 5 }));
  await Promise.all(sims.map((s) => s.connect()));
  t.teardown(() => Promise.all(sims.map((s) => s.disconnect())));

  const b = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'olga');
  const { rollout } = await h.gw.createRollout({ bundle: b.id, target: { group: 'thermostats' }, waves: [{ size: 2, minDevices: 1 }, { size: '100%', minDevices: 1 }], seed: 'log', start: true }, 'olga');
  await until(async () => (h.gw.tick(), ['held', 'completed'].includes((await h.gw.getRollout(rollout.id)).state)), 10_000, 'a hold or the end');
  const r = await h.gw.getRollout(rollout.id);
  if (r.state === 'held') {
    await h.gw.resumeRollout(r.id, 'olga', { failureThreshold: 1, ackThreshold: 0.5 }, 'remaining');
    await until(async () => (h.gw.tick(), (await h.gw.getRollout(rollout.id)).state === 'completed'), 10_000, 'completion');
  }
  const done = await h.gw.getRollout(rollout.id);
  t.equal(done.state, 'completed');
  const second = await h.gw.createRollout({ bundle: (await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'olga')).id, target: { devices: ['th-0000'] }, start: true }, 'olga');
  await h.gw.pauseRollout(second.rollout.id, 'olga');
  await h.gw.resumeRollout(second.rollout.id, 'olga');
  await h.gw.abortRollout(second.rollout.id, 'olga', 'changed my mind');

  for (const ro of [done, await h.gw.getRollout(second.rollout.id)]) {
    const logged = lines.filter((l) => l.obj.rollout === ro.id && typeof l.obj.decision === 'string');
    t.equal(logged.length, ro.decisions.length, `${ro.id}: one line per decision (${ro.decisions.map((d) => d.action).join(', ')})`);
    ro.decisions.forEach((d, i) => {
      t.match(logged[i].obj, { decision: d.action, reason: d.reason, actor: d.actor, ...(d.wave !== undefined && { wave: d.wave + 1 }) }, `decision ${i + 1}: ${d.action}, its wave from 1`);
      t.equal(logged[i].level, d.action === 'hold' || d.action === 'abort' ? 'warn' : 'info');
    });
  }
  t.ok(done.decisions.some((d) => d.action === 'soak') && done.decisions.some((d) => d.action === 'pass') && done.decisions.some((d) => d.action === 'complete'));
  t.match(lines.find((l) => l.msg === 'rollout aborted'), { obj: { reason: 'changed my mind', actor: 'olga', state: 'running→aborted' } });

  const before = lines.length;
  await h.restart({ logger });
  await h.gw.tick();
  t.same(lines.slice(before).filter((l) => typeof l.obj.decision === 'string'), [], 'a restart logs no decision again');
});

t.test('rolling back a completed rollout records a rollback decision on it, logged once and kept across a restart', async (t) => {
  const { logger, lines } = recording();
  const h = await harness(t, { logger });
  await online(t, h, 2);
  await completedRollout(h, 'olga');
  const id = await completedRollout(h, 'olga');
  const { aborted, rollback } = await h.gw.rollback(id, 'carol');
  t.equal(aborted.state, 'completed', 'a completed rollout stays completed');
  const r = await h.gw.getRollout(id);
  t.equal(r.rolledBackBy, rollback.id);
  t.match(r.decisions.at(-1), { actor: 'carol', action: 'rollback', reason: 'rollback', from: 'completed', to: 'completed' }, 'the rollback is a decision on the rolled-back rollout');
  t.equal(aborted.decisions.length, r.decisions.length, 'the answer carries it');
  const logged = lines.filter((l) => l.obj.rollout === id && l.obj.decision === 'rollback');
  t.equal(logged.length, 1, 'logged once');
  t.match(logged[0], { level: 'info', msg: 'rollout rolled back', obj: { actor: 'carol', state: 'completed→completed' } });
  await h.restart({ logger });
  t.match((await h.gw.getRollout(id)).decisions.at(-1), { action: 'rollback', actor: 'carol' }, 'on disk with the record');
});

t.test('rolling back a running rollout aborts it with the reason rollback: one decision, logged once as a warning', async (t) => {
  const { logger, lines } = recording();
  const h = await harness(t, { logger });
  await online(t, h, 3);
  await completedRollout(h, 'olga');
  const second = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'olga');
  // A wave that cannot pass on its own: the rollout stays running until the rollback.
  const r2 = await h.gw.createRollout({ bundle: second.id, target: { group: 'thermostats' }, waves: [{ size: '100%', ackThreshold: 1, soakSeconds: 3600 }], start: true }, 'olga');
  await until(async () => (await h.gw.getRollout(r2.rollout.id)).waves[0].applied === 3, 10_000, 'the acks');
  const before = (await h.gw.getRollout(r2.rollout.id)).decisions.length;
  const { aborted } = await h.gw.rollback(r2.rollout.id, 'carol');
  t.equal(aborted.state, 'aborted');
  t.equal(aborted.decisions.length, before + 1, 'one decision for the rollback');
  t.match(aborted.decisions.at(-1), { actor: 'carol', action: 'abort', reason: 'rollback', from: 'running', to: 'aborted' });
  const logged = lines.filter((l) => l.obj.rollout === r2.rollout.id && l.obj.decision === 'abort');
  t.equal(logged.length, 1);
  t.match(logged[0], { level: 'warn', msg: 'rollout aborted', obj: { reason: 'rollback', actor: 'carol' } });
});

t.test('a refused rollback appends no decision, signs no bundle and leaves the rollout as it was', async (t) => {
  const h = await harness(t);
  const sims = await fleet(h, 2);
  await Promise.all(sims.map((s) => s.connect()));
  await completedRollout(h, 'olga');
  await Promise.all(sims.map((s) => s.disconnect()));
  await until(() => h.gw.connectedCount() === 0, 5000, 'the fleet offline');
  const second = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'olga');
  const r2 = await h.gw.createRollout({ bundle: second.id, target: { group: 'thermostats' }, start: true }, 'olga');
  const before = await h.gw.getRollout(r2.rollout.id);
  await t.rejects(h.gw.rollback(r2.rollout.id, 'carol'), { code: 'PW_INVALID_STATE', message: /has not sent its bundle to any device/ });
  const after = await h.gw.getRollout(r2.rollout.id);
  t.same(after.decisions, before.decisions, 'no decision');
  t.equal(after.state, 'running');
  t.notOk(after.rolledBackBy);
  const next = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'olga');
  t.equal(next.seq, second.seq + 1, 'no rollback bundle took a seq');
});
