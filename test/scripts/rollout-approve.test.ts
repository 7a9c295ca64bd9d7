// `pinwave rollout approve ID` (docs/architecture.md §10): the creator is refused with the API's
// message, another operator's approval is printed with what the rollout removes, then it starts.
import t from 'tap';
import { TOKENS } from '../fixtures/http.ts';
import { liveCli } from '../fixtures/cli.ts';
import { fleet, pin } from '../fixtures/gateway.ts';

t.test('rollout approve: refused for the creator, counted for an admin, after which start starts it', async (t) => {
  const { h, pinwave } = await liveCli(t, {}, { approval: { removePin: 2, addPin: 1 } });
  await fleet(h, 2);
  const pushed = await pinwave(['bundle', 'push', '--group', 'thermostats', '--pin', `api.example.com=${pin('new')}`, '--pin', `api.example.com=${pin('backup')}`, '--json'], TOKENS.operator);
  t.equal(pushed.code, 0, pushed.stderr);
  const created = await pinwave(['rollout', 'create', '--bundle', JSON.parse(pushed.stdout).id, '--group', 'thermostats', '--waves', '100%', '--start'], TOKENS.operator);
  t.equal(created.code, 0, created.stderr);
  const id = /^rollout (\S+)\s+pending/.exec(created.stdout)?.[1] ?? '';
  t.match(created.stdout, `needs approval: removes 1 pin of api.example.com:443; 1 more by an operator other than olga (no approval yet): pinwave rollout approve ${id}`);

  const start = await pinwave(['rollout', 'start', id], TOKENS.operator);
  t.equal(start.code, 1);
  t.match(start.stderr, 'pinwave rollout: 409 Conflict: rollout ' + id + ' removes 1 pin of api.example.com:443 and needs 1 more approval by an operator other than its creator olga');
  const self = await pinwave(['rollout', 'approve', id], TOKENS.operator);
  t.equal(self.code, 1);
  t.match(self.stderr, `olga created rollout ${id} and cannot approve it: an operator other than its creator must`);
  const viewer = await pinwave(['rollout', 'approve', id], TOKENS.viewer);
  t.equal(viewer.code, 1);
  t.match(viewer.stderr, 'needs the operator role');

  const ok = await pinwave(['rollout', 'approve', id.slice(0, 12)], TOKENS.admin);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, 'approval: removes 1 pin of api.example.com:443; approved by adam');
  t.match(ok.stdout, /last decision: \S+ approve: operator \(adam\)/);
  const started = await pinwave(['rollout', 'start', id], TOKENS.operator);
  t.equal(started.code, 0, started.stderr);
  t.match(started.stdout, new RegExp(`rollout ${id}\\s+running`));
});
