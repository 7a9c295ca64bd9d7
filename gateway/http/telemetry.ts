// Support queries: pin-failure reports aggregated by endpoint and observed pin, and the
// devices stuck on old pins with the reason for each, oldest first, as JSON pages or as CSV
// (`Accept: text/csv`) for a spreadsheet.
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.ts';
import type { Gateway } from '../gateway.ts';
import type { StuckDevice } from '../stuck.ts';
import { cursor, group, limit, listOf, responses, rolloutId } from './schemas.ts';

export interface TelemetryRoutesOptions {
  gateway: Gateway;
}

/** A page of an in-memory list; the cursor is the offset of the next item. */
function page<T>(all: T[], q: { limit?: number; cursor?: string }, what: string): { items: T[]; next: string | null } {
  const from = q.cursor === undefined ? 0 : Number(q.cursor);
  if (!Number.isSafeInteger(from) || from < 0) throw new GatewayError('PW_INVALID', `querystring/cursor is not a cursor of ${what}: ${JSON.stringify(q.cursor)}`);
  const n = q.limit ?? 100;
  return { items: all.slice(from, from + n), next: from + n < all.length ? String(from + n) : null };
}

const offsetCursor = { ...cursor, pattern: '^[0-9]{1,9}$' };

export const STUCK_CSV_COLUMNS = ['id', 'group', 'model', 'seq', 'bundle', 'targetSeq', 'reason', 'since', 'connected'] as const;

/** RFC 4180 field: quoted when it holds a comma, quote or line break; a leading = + - @ is defused (CSV injection into spreadsheets). */
export function csvField(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The stuck devices as CSV: a header line, then one line per device; `since` in ISO 8601. */
export function stuckCsv(rows: StuckDevice[]): string {
  const lines = [STUCK_CSV_COLUMNS.join(',')];
  for (const r of rows) {
    const since = r.since === null ? null : new Date(r.since).toISOString();
    lines.push(STUCK_CSV_COLUMNS.map((c) => csvField(c === 'since' ? since : r[c])).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/** Whether the client asked for CSV: `text/csv` listed in Accept and not refused with q=0 (RFC 9110 §12.5.1). */
export function wantsCsv(accept: string | undefined): boolean {
  if (typeof accept !== 'string') return false;
  return accept.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return type === 'text/csv' && (q === undefined || Number(q.slice(2)) > 0);
  });
}

export async function telemetryRoutes(app: FastifyInstance, o: TelemetryRoutesOptions): Promise<void> {
  const gw = o.gateway;

  app.get<{ Querystring: { rollout?: string; group?: string; host?: string; limit?: number; cursor?: string } }>(
    '/v1/telemetry/pin-failures',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['telemetry'],
        summary: 'Pin-failure reports aggregated by endpoint and observed pin, most failures first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { rollout: rolloutId, group, host: { type: 'string', minLength: 1, maxLength: 253 }, limit, cursor: offsetCursor },
        },
        response: responses({ 200: listOf('PinFailure') }),
      },
    },
    async (request) => {
      const { rollout, group, host } = request.query;
      return page(gw.pinFailures({ rollout: rollout === undefined ? undefined : gw.resolveRolloutId(rollout), group, host }), request.query, 'pin failures');
    },
  );

  app.get<{ Querystring: { group?: string; rollout?: string; limit?: number; cursor?: string } }>(
    '/v1/stuck',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['telemetry'],
        summary: 'Devices not on the target seq, each with its reason, oldest first',
        description:
          'Give exactly one of group or rollout. Reasons: never_connected, offline, no_ack, rejected:<reason>, failing. ' +
          'With `Accept: text/csv` the answer is CSV (header line; `since` in ISO 8601) of every stuck device, or of one page when limit is given (the next cursor then in the `x-next-cursor` header).',
        querystring: { type: 'object', additionalProperties: false, properties: { group, rollout: rolloutId, limit, cursor: offsetCursor } },
        response: responses({
          200: {
            description: 'a page of stuck devices; text/csv when asked for',
            content: {
              'application/json': { schema: listOf('StuckDevice') },
              'text/csv': { schema: { type: 'string' } },
            },
          },
        }),
      },
    },
    async (request, reply) => {
      const q = request.query;
      if ((q.group === undefined) === (q.rollout === undefined)) throw new GatewayError('PW_INVALID', 'querystring must have exactly one of "group" or "rollout"');
      const all = await gw.stuck({ group: q.group, rollout: q.rollout === undefined ? undefined : gw.resolveRolloutId(q.rollout) });
      if (wantsCsv(request.headers.accept)) {
        const p = q.limit === undefined && q.cursor === undefined ? { items: all, next: null } : page(all, q, 'stuck devices');
        if (p.next !== null) reply.header('x-next-cursor', p.next);
        return reply.type('text/csv; charset=utf-8').send(stuckCsv(p.items));
      }
      return reply.type('application/json; charset=utf-8').send(page(all, q, 'stuck devices'));
    },
  );
}
