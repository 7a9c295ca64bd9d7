// The approval gate at the gateway's edge (docs/architecture.md §6, §10): finds what a rollout's
// target holds now (its group's baseline, else the initial pins of its devices' models' firmware
// manifests) and the bundle's pins, diffs them (gateway/pin-diff.ts) and hands the diffs to the pure
// policy (gateway/rollout/approval.ts), which records the request on the rollout's decisions. The
// caller persists, logs and alerts.
//
//   const s = await gateRollout(deps, r, r.createdBy, actor, { rollback: false, now });
//   if (s?.needed) alert('approval.requested', …);
import type { FirmwareManifest } from '../firmware-manifest/index.ts';
import { pinDiff, type DiffBase, type PinnedEndpoint } from './pin-diff.ts';
import { approvalState, assess, hasRequest, passForRollback, requestApproval, type ApprovalPolicy, type ApprovalState } from './rollout/approval.ts';
import type { Rollout } from './rollout/types.ts';
import type { DeviceRecord } from './store/types.ts';

export interface ApprovalGateDeps {
  /** config `approval`; undefined: off */
  policy: ApprovalPolicy | undefined;
  getDevice(id: string): Promise<DeviceRecord | null>;
  /** the bundle of the group's last completed rollout, or null */
  baseline(group: string): Promise<string | null>;
  manifests: ReadonlyMap<string, FirmwareManifest>;
  /** a stored bundle's seq, and its endpoints with their pins in text form */
  pins(bundleId: string): Promise<{ seq: number; endpoints: PinnedEndpoint[] }>;
}

/** What the rollout's target holds now: its group's baseline, else the initial pins of its devices' models' manifests. */
export async function heldPins(d: ApprovalGateDeps, r: Rollout): Promise<DiffBase[]> {
  const baseline = await d.baseline(r.bundle.group);
  if (baseline) return [{ kind: 'baseline', bundleId: baseline, ...(await d.pins(baseline)) }];
  const models = new Set<string>();
  for (const id of Object.keys(r.devices)) {
    const dev = await d.getDevice(id);
    if (dev?.model) models.add(dev.model);
  }
  const bases: DiffBase[] = [];
  for (const model of models) {
    const m = d.manifests.get(model);
    if (m) bases.push({ kind: 'manifest', model: m.model, firmware: m.firmware, endpoints: m.pins.map((e) => ({ host: e.host, port: e.port ?? 443, pins: e.pins })) });
  }
  return bases;
}

/**
 * With approval configured, a pending rollout whose change needs more operators than its creator
 * records the request (once; `actor` is the creator, or whoever first starts a rollout that
 * predates the policy); a rollback records its own pass at once. The state when a request was
 * recorded now, else null (nothing changed).
 */
export async function gateRollout(d: ApprovalGateDeps, r: Rollout, creator: string, actor: string, o: { rollback: boolean; now: number }): Promise<ApprovalState | null> {
  if (!d.policy || hasRequest(r) || r.state !== 'pending') return null;
  const bundle = (await d.pins(r.bundle.id)).endpoints;
  const a = assess(d.policy, (await heldPins(d, r)).map((base) => pinDiff(bundle, base)));
  if (a.required <= 1) return null;
  requestApproval(r, a, actor, o.now);
  if (o.rollback) passForRollback(r, actor, o.now);
  return approvalState(r, creator);
}
