// The approval gate's edge (docs/architecture.md §10): what the target holds now is its group's
// baseline, else its devices' models' manifests; the pure policy records the request.
import t from 'tap';
import { gateRollout, heldPins, type ApprovalGateDeps } from '../../gateway/approval-gate.ts';
import { createRollout } from '../../gateway/rollout/engine.ts';
import type { FirmwareManifest } from '../../firmware-manifest/index.ts';

const ep = (pins: string[]) => [{ host: 'api.example.com', port: 443, pins }];
const manifest = (model: string, pins: string[]) => ({ model, firmware: '1.0.0', trustedKeys: [], pins: [{ host: 'api.example.com', pins }] }) as FirmwareManifest;

function deps(o: { baseline?: string; models?: Record<string, string>; policy?: ApprovalGateDeps['policy'] } = {}): ApprovalGateDeps {
  const bundles: Record<string, string[]> = { ['a'.repeat(64)]: ['new', 'backup'], base: ['base', 'backup'] };
  return {
    policy: 'policy' in o ? o.policy : { removePin: 2, addPin: 1 },
    baseline: async () => o.baseline ?? null,
    getDevice: async (id: string) => ({ id, model: o.models?.[id] ?? null }) as never,
    manifests: new Map([['th-100', manifest('th-100', ['old', 'backup'])], ['th-200', manifest('th-200', ['older', 'backup'])]]),
    pins: async (id) => ({ seq: id === 'base' ? 1 : 2, endpoints: ep(bundles[id]) }),
  };
}

function pending() {
  const c = createRollout({ id: 'r-1', bundle: { id: 'a'.repeat(64), seq: 2, group: 'g' }, target: { group: 'g' }, deviceIds: ['d1', 'd2', 'd3'], plan: { waves: [{ size: '100%' }] }, now: 0 });
  if (!c.ok) throw new Error(c.errors.join('; '));
  return c.rollout;
}

t.test("before any rollout, the held pins are each targeted model's manifest; a model with none adds nothing", async (t) => {
  const d = deps({ models: { d1: 'th-100', d2: 'th-200', d3: 'unknown-9' } });
  t.same((await heldPins(d, pending())).map((b) => (b.kind === 'manifest' ? b.model : b.kind)), ['th-100', 'th-200']);
  const s = await gateRollout(d, pending(), 'olga', 'olga', { rollback: false, now: 5 });
  t.match(s, { needed: true, removed: [{ pins: ['old', 'older'] }], requestedBy: 'olga', requestedAt: 5 });
});

t.test('once a rollout completed, the baseline alone is what the target holds', async (t) => {
  const d = deps({ baseline: 'base', models: { d1: 'th-100' } });
  t.match(await heldPins(d, pending()), [{ kind: 'baseline', bundleId: 'base', seq: 1, endpoints: ep(['base', 'backup']) }]);
  t.match(await gateRollout(d, pending(), 'olga', 'olga', { rollback: false, now: 0 }), { removed: [{ pins: ['base'] }] });
});

t.test('nothing is recorded with the policy off, for a change the creator alone may make, twice, or once started', async (t) => {
  const r = pending();
  t.equal(await gateRollout(deps({ policy: undefined, models: { d1: 'th-100' } }), r, 'olga', 'olga', { rollback: false, now: 0 }), null);
  t.equal(await gateRollout(deps({ policy: { removePin: 1, addPin: 1 }, models: { d1: 'th-100' } }), r, 'olga', 'olga', { rollback: false, now: 0 }), null);
  t.same(r.decisions, []);
  await gateRollout(deps({ models: { d1: 'th-100' } }), r, 'olga', 'olga', { rollback: false, now: 0 });
  t.equal(await gateRollout(deps({ models: { d1: 'th-100' } }), r, 'olga', 'olga', { rollback: false, now: 0 }), null, 'asked once');
  t.equal(r.decisions.length, 1);
  const running = pending();
  running.state = 'running';
  t.equal(await gateRollout(deps({ models: { d1: 'th-100' } }), running, 'olga', 'olga', { rollback: false, now: 0 }), null);
});

t.test('a rollback records the request and its pass at once', async (t) => {
  const r = pending();
  t.match(await gateRollout(deps({ models: { d1: 'th-100' } }), r, 'olga', 'olga', { rollback: true, now: 0 }), { needed: false, passedBy: 'rollback' });
  t.same(r.decisions.map((d) => `${d.action} ${d.reason}`), ['request_approval removes_pins', 'approve rollback']);
});
