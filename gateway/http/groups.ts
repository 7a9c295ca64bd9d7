// `GET /v1/groups`: the fleet by group, for the console's fleet page and for scripts: per group its
// devices by reported seq, by model and connected now, its baseline (docs/architecture.md §6: the
// bundle of its last completed rollout) and the rollout under way, if any. Read-only; built from a
// walk over the devices in pages (O(devices) per call: a page an operator opens, not a hot path).
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway.ts';
import type { DeviceRecord } from '../store/types.ts';
import { cursor, limit, listOf, responses } from './schemas.ts';

export interface GroupRoutesOptions {
  gateway: Gateway;
}

interface Tally {
  devices: number;
  connected: number;
}

export interface GroupSummary extends Tally {
  group: string;
  /** revoked devices: counted here only, left out of every other figure */
  revoked: number;
  neverConnected: number;
  /** by the seq devices last reported (null: never reported), lowest first */
  bySeq: Array<{ seq: number | null } & Tally>;
  /** by model (null: not known yet), in name order */
  byModel: Array<{ model: string | null } & Tally>;
  baseline: { bundle: string; seq: number | null } | null;
  /** the group's rollout that is pending, running or held, the latest if several */
  rollout: { id: string; state: string; bundleSeq: number } | null;
}

/** Adds one device to the per-group tallies. Pure. */
export function tallyDevice(groups: Map<string, GroupSummary>, d: DeviceRecord, connected: boolean): void {
  let g = groups.get(d.group);
  if (!g) {
    g = { group: d.group, devices: 0, connected: 0, revoked: 0, neverConnected: 0, bySeq: [], byModel: [], baseline: null, rollout: null };
    groups.set(d.group, g);
  }
  if (d.revokedAt !== null) {
    g.revoked++;
    return;
  }
  const on = connected ? 1 : 0;
  g.devices++;
  g.connected += on;
  if (d.lastSeen === null && !connected) g.neverConnected++;
  const s = g.bySeq.find((x) => x.seq === d.seq) ?? (g.bySeq.push({ seq: d.seq, devices: 0, connected: 0 }), g.bySeq.at(-1)!);
  s.devices++;
  s.connected += on;
  const m = g.byModel.find((x) => x.model === d.model) ?? (g.byModel.push({ model: d.model, devices: 0, connected: 0 }), g.byModel.at(-1)!);
  m.devices++;
  m.connected += on;
}

/** The tallies in display order: groups by name, seqs lowest first (never reported last), models by name. */
export function ordered(groups: Map<string, GroupSummary>): GroupSummary[] {
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...groups.values()]
    .sort((a, b) => byName(a.group, b.group))
    .map((g) => ({
      ...g,
      bySeq: [...g.bySeq].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity)),
      byModel: [...g.byModel].sort((a, b) => byName(a.model ?? '\uffff', b.model ?? '\uffff')),
    }));
}

const tally = { devices: { type: 'integer' }, connected: { type: 'integer' } } as const;

export const GroupSchema = {
  $id: 'Group',
  type: 'object',
  required: ['group', 'devices', 'connected', 'revoked', 'neverConnected', 'bySeq', 'byModel', 'baseline', 'rollout'],
  properties: {
    group: { type: 'string' },
    devices: { type: 'integer', description: 'devices not revoked' },
    connected: { type: 'integer', description: 'connected now' },
    revoked: { type: 'integer' },
    neverConnected: { type: 'integer' },
    bySeq: { type: 'array', items: { type: 'object', properties: { seq: { type: ['integer', 'null'], description: 'null: never reported' }, ...tally } } },
    byModel: { type: 'array', items: { type: 'object', properties: { model: { type: ['string', 'null'] }, ...tally } } },
    baseline: { type: ['object', 'null'], description: 'the bundle of the last completed rollout', properties: { bundle: { type: 'string' }, seq: { type: ['integer', 'null'] } } },
    rollout: { type: ['object', 'null'], description: 'the rollout pending, running or held', properties: { id: { type: 'string' }, state: { type: 'string' }, bundleSeq: { type: 'integer' } } },
  },
} as const;

export async function groupRoutes(app: FastifyInstance, o: GroupRoutesOptions): Promise<void> {
  const gw = o.gateway;

  app.get<{ Querystring: { limit?: number; cursor?: string } }>(
    '/v1/groups',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['devices'],
        summary: 'The fleet by group: devices by seq, model and connected, the baseline, the rollout under way',
        querystring: { type: 'object', additionalProperties: false, properties: { limit, cursor: { ...cursor, description: 'the `next` of the previous page (a group name)' } } },
        response: responses({ 200: listOf('Group') }),
      },
    },
    async (request) => {
      const groups = new Map<string, GroupSummary>();
      for (let next: string | null | undefined = undefined; next !== null; ) {
        const page = await gw.listDevices({ limit: 1000, ...(next !== undefined && { cursor: next }) });
        for (const d of page.items) tallyDevice(groups, d, gw.isConnected(d.id));
        next = page.next;
      }
      const all = ordered(groups);
      const q = request.query;
      const from = q.cursor === undefined ? 0 : all.findIndex((g) => g.group > q.cursor!);
      const n = q.limit ?? 100;
      const items = from < 0 ? [] : all.slice(from, from + n);
      const active = (await gw.listRollouts()).filter((r) => r.state === 'pending' || r.state === 'running' || r.state === 'held');
      for (const g of items) {
        const baseline = await gw.baseline(g.group);
        if (baseline !== null) g.baseline = { bundle: baseline, seq: (await gw.getBundle(baseline).catch(() => null))?.seq ?? null };
        const r = active.filter((x) => x.bundle.group === g.group).at(-1);
        if (r) g.rollout = { id: r.id, state: r.state, bundleSeq: r.bundle.seq };
      }
      return { items, next: from >= 0 && from + n < all.length ? items.at(-1)!.group : null };
    },
  );
}
