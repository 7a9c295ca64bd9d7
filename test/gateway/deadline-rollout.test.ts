// Deadline-aware rollouts against the real gateway (docs/architecture.md §9), injected clock: the
// creation answer says whether the plan fits, a bad deadline is refused by field, and a rollout that
// stops making progress turns at_risk on a tick: a decision, the metric and the rollout.at_risk webhook.
import t from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { harness, newPins, until } from '../fixtures/gateway.ts';
import { metricsText } from '../../gateway/http/metrics.ts';

async function receiver(t: { teardown(fn: () => unknown): void }) {
  const bodies: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      bodies.push(body);
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hooks/at-risk`, bodies };
}

t.test('a rollout with a deadline: its fit at creation, and at_risk once it stops making progress', async (t) => {
  const r = await receiver(t);
  const h = await harness(t, { webhooks: [{ url: r.url, events: ['rollout.at_risk'], secret: 'webhook-secret-for-the-test-0123' }] });
  await h.gw.provision(Array.from({ length: 20 }, (_, i) => ({ id: `th-${i}`, group: 'thermostats', model: 'th-100' })));
  const bundle = await h.gw.createBundle({ group: 'thermostats', endpoints: newPins }, 'alice');
  const waves = [{ size: 10, timeoutSeconds: 1800 }, { size: '100%', timeoutSeconds: 1800 }];

  await t.rejects(h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves, deadline: 'next tuesday' }, 'alice'), { code: 'PW_INVALID_PLAN', message: /deadline must be an ISO 8601 date/ });

  // Nobody connected: nothing is sent, nothing is counted.
  const { rollout, deadlineFit } = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves, deadline: '2026-01-01T01:00:00Z', start: true }, 'alice');
  t.same(deadlineFit, { fits: true, plannedEnd: Date.UTC(2026, 0, 1, 1), warnings: [] }, 'two half-hour waves end exactly at the deadline');
  t.match(rollout.deadline, { status: 'on_track', target: 19, done: 0, projected: null });

  h.clock.advance(1800_000 + 1000);
  await h.gw.tick();
  const view = await h.gw.getRollout(rollout.id);
  t.equal(view.state, 'held', 'a dark wave');
  t.match(view.deadline, { status: 'at_risk', projected: null });
  t.match(view.decisions.find((d) => d.action === 'at_risk'), { actor: 'system', reason: 'plan_after_deadline', deadline: Date.UTC(2026, 0, 1, 1) });
  t.equal(h.gw.counters().atRisk, 1);
  await h.gw.tick();
  t.equal(h.gw.counters().atRisk, 1, 'turned at risk once');
  const metrics = metricsText(h.gw, {});
  t.match(metrics, /^pinwave_rollout_at_risk_total 1$/m);
  t.match(metrics, /^pinwave_rollouts_at_risk 1$/m);
  t.match(metrics, /^pinwave_rollout_members\{status="unreachable"\} 10$/m);
  await h.gw.webhooksIdle();
  await until(() => r.bodies.length === 1, 5000, 'the webhook');
  t.match(JSON.parse(r.bodies[0]), { event: 'rollout.at_risk', rollout: { id: rollout.id }, reason: 'plan_after_deadline', deadline: '2026-01-01T01:00:00.000Z', projected: null });

  // The deadline and its verdict are kept by the store: a restart judges against the same one.
  await h.restart();
  t.match((await h.gw.getRollout(rollout.id)).deadline, { status: 'at_risk', target: 19 }, 'the deadline survives a restart');

  // A plan that cannot fit is still created: the answer warns.
  await h.gw.abortRollout(rollout.id, 'alice');
  const tight = await h.gw.createRollout({ bundle: bundle.id, target: { group: 'thermostats' }, waves: [{ size: '100%', timeoutSeconds: 7200 }], deadline: '2026-01-01T01:00:00Z' }, 'alice');
  t.equal(tight.rollout.state, 'pending');
  t.match(tight.deadlineFit, { fits: false, warnings: [/after the deadline 2026-01-01T01:00:00\.000Z/] });
});
