// GET /v1/forecast (docs/architecture.md §9): the lockout forecast for support teams — which devices
// would lock themselves out of host:port if it served the key `pin` from date `at` (gateway/forecast.ts).
import type { FastifyInstance } from 'fastify';
import { tryParsePin } from '../../firmware-manifest/index.ts';
import { GatewayError } from '../errors.ts';
import { parseInstant } from '../rollout/instant.ts';
import type { Gateway } from '../gateway.ts';
import { cursor, deviceId, limit, responses } from './schemas.ts';

export interface ForecastRoutesOptions {
  gateway: Gateway;
}

interface Query {
  host: string;
  port?: number;
  pin: string;
  at?: string;
  limit?: number;
  cursor?: string;
}

const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const counts = { type: 'object', additionalProperties: int } as const;
const check = { type: 'string', enum: ['ok', 'pin_mismatch', 'report_only_mismatch', 'expired_fallback', 'not_pinned'], description: 'how the device judges a handshake serving the key (pin_mismatch: it drops the connection)' } as const;

export const ForecastSchema = {
  type: 'object',
  required: ['endpoint', 'pins', 'at', 'devices', 'unknown', 'lockedOut', 'lockedOutAfterRollouts', 'byGroup', 'byModel', 'bySeq', 'items', 'next'],
  properties: {
    endpoint: { type: 'string', description: 'host:port' },
    pins: { type: 'array', items: str },
    at: { type: 'string', format: 'date-time' },
    devices: { ...int, description: 'devices judged (revoked ones are not)' },
    unknown: { ...int, description: 'devices whose pins the gateway does not know (a bundle it did not sign, a model with no manifest)' },
    lockedOut: { ...int, description: 'devices whose active pin set at `at` does not hold the key' },
    lockedOutAfterRollouts: { ...int, description: 'the same, once every rollout in flight has landed' },
    byGroup: counts,
    byModel: counts,
    bySeq: counts,
    items: {
      type: 'array',
      description: 'the devices locked out now or after their rollout in flight, in id order',
      items: {
        type: 'object',
        properties: {
          id: str,
          group: str,
          model: { type: ['string', 'null'] },
          seq: { type: ['integer', 'null'] },
          bundle: { type: ['string', 'null'] },
          check,
          lockedOut: { type: 'boolean' },
          after: { type: 'object', description: 'under the bundle of its rollout in flight', properties: { rollout: str, seq: int, bundle: str, check, lockedOut: { type: 'boolean' } } },
        },
      },
    },
    next: { type: ['string', 'null'] },
  },
} as const;

export async function forecastRoutes(app: FastifyInstance, o: ForecastRoutesOptions): Promise<void> {
  const gw = o.gateway;
  app.get<{ Querystring: Query }>(
    '/v1/forecast',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['telemetry'],
        summary: 'Lockout forecast: the devices that would lock themselves out if an endpoint served a key from a date',
        description:
          "Each device is judged under the pin set it holds (its bundle, or its model's firmware pins) at `at`: overlap windows and the bundle's expiry policy included. " +
          'Devices with a rollout in flight are listed with what they will hold after it. `pin`: one or more pins of the served chain, comma-separated (any one held lets a device in).',
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['host', 'pin'],
          properties: {
            host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.*:_-]+$' },
            port: { type: 'integer', minimum: 1, maximum: 65535, description: 'default 443' },
            pin: { type: 'string', minLength: 1, maxLength: 1000, description: 'sha256/<base64>, or several comma-separated' },
            at: { type: 'string', maxLength: 40, description: 'an ISO 8601 date, or date-time with a zone; default now' },
            limit,
            cursor: { ...cursor, ...deviceId, description: 'the `next` of the previous page' },
          },
        },
        response: responses({ 200: ForecastSchema }),
      },
    },
    async (request) => {
      const q = request.query;
      const pins = q.pin.split(',').map((p) => p.trim());
      pins.forEach((p, i) => {
        const r = tryParsePin(p);
        if (!r.ok) throw new GatewayError('PW_INVALID', `querystring/pin${pins.length > 1 ? `[${i}]` : ''}: ${r.error.message}`);
      });
      const at = q.at === undefined ? undefined : parseInstant(q.at);
      if (at !== undefined && !Number.isFinite(at)) throw new GatewayError('PW_INVALID', `querystring/at: expected an ISO 8601 date like 2026-03-01, or a date-time with a zone like 2026-03-01T12:00:00Z, got ${JSON.stringify(q.at)}`);
      const f = await gw.forecast({ host: q.host.toLowerCase(), port: q.port ?? 443, pins, ...(at !== undefined && { at: Math.floor(at / 1000) }) }, { limit: q.limit, cursor: q.cursor });
      return {
        ...f,
        at: new Date(f.at * 1000).toISOString(),
        items: f.items.map(({ bundleId, after, ...d }) => ({ ...d, bundle: bundleId, ...(after && { after: { rollout: after.rollout, seq: after.seq, bundle: after.bundleId, check: after.check, lockedOut: after.lockedOut } }) })),
      };
    },
  );
}
