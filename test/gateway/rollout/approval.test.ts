// The approval gate, pure (docs/architecture.md §10): what a bundle removes from what its target
// holds now, how many operators the policy asks for (the creator being one), and where a rollout
// stands, read from its decisions alone.
import t from 'tap';
import { createRollout, start } from '../../../gateway/rollout/engine.ts';
import { approvalState, approve, assess, describeRemoved, hasRequest, passForRollback, removedPins, requestApproval, startGate, APPROVAL_DEFAULTS } from '../../../gateway/rollout/approval.ts';
import { pinDiff, type DiffBase, type PinnedEndpoint } from '../../../gateway/pin-diff.ts';
import type { Rollout } from '../../../gateway/rollout/types.ts';

const T0 = Date.UTC(2026, 0, 1);
const ep = (host: string, pins: string[], port = 443) => ({ host, port, pins });
const baseline = (endpoints: ReturnType<typeof ep>[]): DiffBase => ({ kind: 'baseline', bundleId: 'b'.repeat(64), seq: 1, endpoints });
const manifest = (model: string, endpoints: ReturnType<typeof ep>[]): DiffBase => ({ kind: 'manifest', model, firmware: '1.0.0', endpoints });
/** The diffs the gate reads: the bundle against each base, as gateway/approval-gate.ts makes them. */
const against = (bundle: PinnedEndpoint[], bases: DiffBase[]) => bases.map((b) => pinDiff(bundle, b));

function pending(): Rollout {
  const c = createRollout({ id: 'r-1', bundle: { id: 'a'.repeat(64), seq: 2, group: 'g' }, target: { group: 'g' }, deviceIds: ['d1', 'd2'], plan: { waves: [{ size: '100%' }] }, now: T0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return c.rollout;
}

t.test('removed pins: per endpoint, a whole endpoint marked, merged over every base the target holds', async (t) => {
  const bundle = [ep('api.example.com', ['new', 'backup']), ep('new.example.com', ['x', 'y'])];
  t.same(removedPins(against(bundle, [baseline([ep('api.example.com', ['old', 'backup']), ep('gone.example.com', ['g1', 'g2'])])])), [
    { host: 'api.example.com', port: 443, pins: ['old'], endpoint: false },
    { host: 'gone.example.com', port: 443, pins: ['g1', 'g2'], endpoint: true },
  ]);
  t.same(removedPins(against(bundle, [baseline([ep('api.example.com', ['backup'])])])), [], 'adding only removes nothing');
  t.same(removedPins(against(bundle, [])), [], 'nothing held: nothing removed');
  t.same(
    removedPins(against([ep('api.example.com', ['backup'])], [manifest('th-100', [ep('api.example.com', ['old', 'backup'])]), manifest('th-200', [ep('API.example.com', ['older', 'backup', 'old'])])])),
    [{ host: 'api.example.com', port: 443, pins: ['old', 'older'], endpoint: false }],
    "two models' manifests: each pin once, hosts compared without case",
  );
  t.same(removedPins(against([ep('api.example.com', ['a'], 8443)], [baseline([ep('api.example.com', ['a'])])])), [{ host: 'api.example.com', port: 443, pins: ['a'], endpoint: true }], 'another port is another endpoint');
});

t.test('the policy is asymmetric: removing takes removePin, anything else addPin', async (t) => {
  const held = [baseline([ep('api.example.com', ['old', 'backup'])])];
  t.same(assess(APPROVAL_DEFAULTS, against([ep('api.example.com', ['new', 'backup'])], held)), { required: 2, removed: [{ host: 'api.example.com', port: 443, pins: ['old'], endpoint: false }] });
  t.same(assess(APPROVAL_DEFAULTS, against([ep('api.example.com', ['old', 'backup', 'new'])], held)), { required: 1, removed: [] });
  t.same(assess({ removePin: 3, addPin: 2 }, against([ep('api.example.com', ['old', 'backup', 'new'])], held)).required, 2);
  t.equal(describeRemoved([{ host: 'a', port: 443, pins: ['p'], endpoint: false }, { host: 'b', port: 8443, pins: ['p', 'q'], endpoint: true }]), 'removes 1 pin of a:443; removes endpoint b:8443 (2 pins)');
  t.equal(describeRemoved([]), 'changes pins');
});

t.test('no request, no gate: a rollout that never asked may start', async (t) => {
  const r = pending();
  t.notOk(hasRequest(r));
  t.equal(approvalState(r, 'olga'), null);
  t.equal(startGate(r, 'olga'), null);
  t.match(approve(r, 'olga', 'otto', T0), { ok: false, code: 'PW_INVALID_STATE', message: 'rollout r-1 needs no approval: it removes no pin its target holds, or approval is not configured' });
  t.same(r.decisions, [], 'a refused approval records nothing');
});

t.test('removePin 2: the creator and one other; the creator never counts, one identity counts once', async (t) => {
  const r = pending();
  requestApproval(r, { required: 2, removed: [{ host: 'api.example.com', port: 443, pins: ['old'], endpoint: false }] }, 'olga', T0);
  t.match(r.decisions, [{ at: T0, actor: 'olga', action: 'request_approval', reason: 'removes_pins', from: 'pending', to: 'pending', approval: { required: 2 } }]);
  t.match(approvalState(r, 'olga'), { needed: true, required: 2, remaining: 1, approvals: [], requestedBy: 'olga', requestedAt: T0, reason: 'removes 1 pin of api.example.com:443' });
  t.equal(startGate(r, 'olga'), 'rollout r-1 removes 1 pin of api.example.com:443 and needs 1 more approval by an operator other than its creator olga before it starts (POST /v1/rollouts/r-1/approve)');

  t.same(approve(r, 'olga', 'olga', T0 + 1), { ok: false, code: 'PW_SELF_APPROVAL', message: 'olga created rollout r-1 and cannot approve it: an operator other than its creator must' });
  t.equal(r.decisions.length, 1);
  t.same(approve(r, 'olga', 'otto', T0 + 2), { ok: true, counted: true });
  t.same(approve(r, 'olga', 'otto', T0 + 3), { ok: true, counted: false }, 'a second time changes nothing');
  t.equal(r.decisions.length, 2);
  t.match(approvalState(r, 'olga'), { needed: false, remaining: 0, approvals: [{ actor: 'otto', at: T0 + 2 }] });
  t.equal(startGate(r, 'olga'), null);

  // A decision by the creator written some other way (an older record) still never counts.
  const forged = pending();
  requestApproval(forged, { required: 2, removed: [] }, 'olga', T0);
  forged.decisions.push({ at: T0, actor: 'olga', action: 'approve', reason: 'operator', from: 'pending', to: 'pending' });
  t.match(approvalState(forged, 'olga'), { needed: true, approvals: [] });
  t.match(startGate(forged, 'olga'), /changes pins and needs 1 more approval/);
});

t.test('removePin 3 wants two others; approval is for a pending rollout only', async (t) => {
  const r = pending();
  requestApproval(r, { required: 3, removed: [] }, 'olga', T0);
  approve(r, 'olga', 'otto', T0);
  t.match(approvalState(r, 'olga'), { needed: true, remaining: 1 });
  t.match(startGate(r, 'olga'), /needs 1 more approval by/);
  approve(r, 'olga', 'adam', T0);
  t.match(approvalState(r, 'olga'), { needed: false, remaining: 0, approvals: [{ actor: 'otto' }, { actor: 'adam' }] });
  start(r, T0, 'olga', () => true);
  t.same(approve(r, 'olga', 'ana', T0), { ok: false, code: 'PW_INVALID_STATE', message: 'cannot approve a rollout that is running: approval is for a pending rollout' });
});

t.test('a rollback passes at once, as a decision of its own', async (t) => {
  const r = pending();
  requestApproval(r, { required: 2, removed: [] }, 'olga', T0);
  passForRollback(r, 'olga', T0);
  t.match(r.decisions.at(-1), { actor: 'olga', action: 'approve', reason: 'rollback' });
  t.match(approvalState(r, 'olga'), { needed: false, remaining: 0, approvals: [], passedBy: 'rollback' });
  t.equal(startGate(r, 'olga'), null);
});

t.test('the state survives a JSON round trip: it is read from the decisions alone', async (t) => {
  const r = pending();
  requestApproval(r, { required: 2, removed: [{ host: 'a', port: 443, pins: ['p'], endpoint: false }] }, 'olga', T0);
  approve(r, 'olga', 'otto', T0 + 5);
  const back = JSON.parse(JSON.stringify(r)) as Rollout;
  t.same(approvalState(back, 'olga'), approvalState(r, 'olga'));
});
