// /v1/devices: provision (admin; tokens shown this once), list, show, rotate a token
// (admin), revoke (admin; the device is disconnected at once). A device as the API shows it never
// carries its token hash: the response schemas list what goes out.
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway.ts';
import type { DeviceRecord } from '../store/types.ts';
import { cursor, deviceId, group, idParams, label, limit, listOf, noBody, responses } from './schemas.ts';

export interface DeviceRoutesOptions {
  gateway: Gateway;
}

/** Provisioning calls take up to 10,000 devices; at most ~310 bytes of JSON each (every field at 64 characters). */
export const PROVISION_BODY_LIMIT = 4 * 1024 * 1024;

export type DeviceState = 'connected' | 'offline' | 'never_connected' | 'revoked';

/**
 * The API's device: the record's public fields, and whether it is connected now. `broker` is the
 * broker it was provisioned onto (docs/architecture.md §8); one with none recorded is on
 * `firstBroker` (external broker mode), or on the embedded broker (null).
 */
export function deviceView(d: DeviceRecord, connected: boolean, firstBroker?: string) {
  const state: DeviceState = d.revokedAt !== null ? 'revoked' : connected ? 'connected' : d.lastSeen === null ? 'never_connected' : 'offline';
  return {
    id: d.id,
    group: d.group,
    model: d.model,
    firmware: d.firmware,
    seq: d.seq,
    bundle: d.bundleId,
    keyEpoch: d.keyEpoch ?? null,
    broker: d.broker ?? firstBroker ?? null,
    connected,
    state,
    lastSeen: d.lastSeen,
    lastConnectAt: d.lastConnectAt,
    lastDisconnectAt: d.lastDisconnectAt,
    createdAt: d.createdAt,
    revokedAt: d.revokedAt,
  };
}

const provisionBody = {
  type: 'object',
  additionalProperties: false,
  required: ['devices'],
  properties: {
    devices: {
      type: 'array',
      minItems: 1,
      maxItems: 10_000,
      items: { type: 'object', additionalProperties: false, required: ['id', 'group'], properties: { id: deviceId, group, model: label, firmware: label } },
    },
  },
} as const;

const tokenShape = {
  type: 'object',
  required: ['id', 'token'],
  properties: {
    id: { type: 'string' },
    token: { type: 'string', description: 'the MQTT password; shown this once' },
    broker: { type: 'string', description: 'external broker mode: the broker the device was provisioned onto, which it connects to (docs/architecture.md §8)' },
  },
} as const;

export async function deviceRoutes(app: FastifyInstance, o: DeviceRoutesOptions): Promise<void> {
  const gw = o.gateway;
  const params = idParams(deviceId);

  app.post<{ Body: { devices: Array<{ id: string; group: string; model?: string; firmware?: string }> } }>(
    '/v1/devices',
    {
      bodyLimit: PROVISION_BODY_LIMIT,
      config: { role: 'admin' },
      schema: {
        tags: ['devices'],
        summary: 'Provision devices, all or nothing; returns each device token this once',
        description: 'Up to 10,000 devices per call. An id that exists already is refused with 409 naming it, and nothing of the call is stored.',
        body: provisionBody,
        response: responses({ 201: { type: 'object', required: ['devices'], properties: { devices: { type: 'array', items: tokenShape } } } }),
      },
    },
    // Device tokens, shown this once: no cache on the way may keep them (RFC 9111 §5.2.2.5).
    async (request, reply) => reply.code(201).header('cache-control', 'no-store').send(await gw.provision(request.body.devices)),
  );

  app.get<{ Querystring: { group?: string; model?: string; seq?: string; limit?: number; cursor?: string } }>(
    '/v1/devices',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['devices'],
        summary: 'List devices in id order',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            group,
            model: label,
            seq: { type: 'string', pattern: '^([0-9]{1,15}|none)$', description: 'the seq devices last reported; `none` for devices that never reported' },
            limit,
            cursor,
          },
        },
        response: responses({ 200: listOf('Device') }),
      },
    },
    async (request) => {
      const q = request.query;
      const seq = q.seq === undefined ? undefined : q.seq === 'none' ? null : Number(q.seq);
      const page = await gw.listDevices({ group: q.group, model: q.model, seq, limit: q.limit, cursor: q.cursor });
      return { items: page.items.map((d) => deviceView(d, gw.isConnected(d.id), gw.brokers[0])), next: page.next };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/devices/:id',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['devices'],
        summary: 'A device: its state, seq, last seen, rollout history and recent pin-failure reports',
        params,
        response: responses({ 200: { $ref: 'DeviceDetail#' } }),
      },
    },
    async (request) => {
      const d = await gw.getDevice(request.params.id);
      return { ...deviceView(d, gw.isConnected(d.id), gw.brokers[0]), rollout: gw.deviceRollout(d.id), history: d.history, telemetry: gw.recentTelemetry(d.id) };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/devices/:id/token',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['devices'],
        summary: "Rotate a device's token; the old one stops working for new connections at once",
        params,
        body: noBody,
        response: responses({ 200: tokenShape }),
      },
    },
    async (request, reply) => reply.header('cache-control', 'no-store').send(await gw.rotateToken(request.params.id)),
  );

  app.delete<{ Params: { id: string } }>(
    '/v1/devices/:id',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['devices'],
        summary: 'Revoke a device: it is disconnected at once and refused after; a device revoked already is answered the same, its first revocation time standing',
        params,
        body: noBody,
        response: responses({ 200: { $ref: 'Device#' } }),
      },
    },
    async (request) => {
      const d = await gw.revoke(request.params.id);
      return deviceView(d, false, gw.brokers[0]);
    },
  );
}
