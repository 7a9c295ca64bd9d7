// Descriptive routes: `GET /healthz` and `GET /readyz` for load balancers and supervisors (public:
// they say ok or not and nothing more), and `GET /v1/info` (what a device or simulator needs: the
// MQTT URL, whether it is an external broker, the signing kid and public key; and the store: whether
// it can write and its last error's code for every token, and for an operator or admin, who debug
// it, which store it is (a data dir's path, a database's host and user) and the error's message,
// which names them too. A viewer reads the fleet, not where the gateway keeps it: docs/storage.md).
// The API's own description is docs.ts.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway.ts';
import { ignoredQuery, responses } from './schemas.ts';
import { allows } from './auth.ts';

/** The one reason GET /readyz gives for 503. */
export const STORE_CANNOT_WRITE = 'store cannot write';

export interface InfoRoutesOptions {
  gateway: Gateway;
  version: string;
}

/** The folder of pinwave's package.json and its version, found by walking up from this file (source or dist/); null if none. */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): { dir: string; version: string } | null {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pinwave' && typeof pkg.version === 'string') return { dir, version: pkg.version };
    } catch {
      // no package.json here: keep walking up
    }
    if (dirname(dir) === dir) return null;
  }
}

/** The version in pinwave's package.json; '0.0.0' if none is found. */
export function packageVersion(from = dirname(fileURLToPath(import.meta.url))): string {
  return packageRoot(from)?.version ?? '0.0.0';
}

export async function infoRoutes(app: FastifyInstance, o: InfoRoutesOptions): Promise<void> {
  const gw = o.gateway;

  app.get(
    '/healthz',
    { config: { public: true }, schema: { tags: ['meta'], summary: 'Liveness: 200 while the gateway serves; no token needed', querystring: ignoredQuery, response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } } } } },
    async () => ({ status: 'ok' }),
  );

  // Readiness, beside liveness: a gateway whose store cannot write answers nothing it could keep
  // (docs/storage.md), so a load balancer should send operators elsewhere until it can again. The
  // route is public, so it says only that: which store and why (a path, a database host, an errno)
  // are for operators, in GET /v1/info and the log (docs/operations.md).
  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        tags: ['meta'],
        summary: 'Readiness: 200 while the store can write, 503 while it cannot; no token needed',
        description: 'Names neither the store nor its error: `GET /v1/info` (a token) gives them as `store`.',
        querystring: ignoredQuery,
        response: {
          200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ready'] } } },
          503: { type: 'object', required: ['status', 'reason'], properties: { status: { type: 'string', enum: ['unavailable'] }, reason: { type: 'string', enum: [STORE_CANNOT_WRITE] } } },
        },
      },
    },
    async (_req, reply) => (gw.storeStatus().writable ? { status: 'ready' } : reply.code(503).send({ status: 'unavailable', reason: STORE_CANNOT_WRITE })),
  );

  app.get(
    '/v1/info',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['meta'],
        summary: "The gateway's MQTT URL, version, and the signing key devices must trust",
        response: responses({
          200: {
            type: 'object',
            required: ['version', 'mqttUrl', 'kid', 'publicKey'],
            properties: {
              name: { type: 'string' },
              version: { type: 'string' },
              mqttUrl: { type: 'string', description: 'where devices connect: the embedded broker (`mqtt.deviceUrl` when configured; on a wildcard listen address without it, the address this request came in on), or in external broker mode the broker devices are given (`broker.deviceUrl`, default `broker.url`)' },
              broker: { type: 'string', enum: ['embedded', 'external'], description: 'external: devices connect to a broker the gateway does not own, and leave their presence retained there (docs/architecture.md §5, §8)' },
              brokers: { type: 'array', items: { type: 'string' }, description: 'external broker mode: every broker devices are provisioned onto, in order (a device learns its own from its provisioning); mqttUrl is the first' },
              mqttPorts: { type: 'object', properties: { tcp: { type: 'integer' }, tls: { type: 'integer' }, ws: { type: 'integer' } } },
              kid: { type: ['string', 'null'], description: 'hex: the first 8 bytes of SHA-256 over the raw public key (docs/architecture.md §3); null on a gateway without a signing key (upload-only)' },
              publicKey: { type: ['string', 'null'], description: 'the signing key, SPKI PEM; null on a gateway without a signing key (upload-only: it takes bundles signed elsewhere)' },
              store: {
                type: 'object',
                required: ['writable', 'lastError'],
                description: 'the store (docs/storage.md): whether it can write (GET /readyz answers 503 while not) and its last write error until a write succeeds again; to an operator or admin also which store (its path, or its URL without password) and the error\'s message',
                properties: {
                  name: { type: 'string', description: 'operator and admin only: the data dir, or the PostgreSQL URL without its password' },
                  writable: { type: 'boolean' },
                  lastError: {
                    type: ['object', 'null'],
                    required: ['code', 'at'],
                    properties: { code: { type: 'string' }, message: { type: 'string', description: 'operator and admin only: it names the store' }, at: { type: 'number', description: 'epoch milliseconds' } },
                  },
                },
              },
              replica: {
                type: 'object',
                required: ['id', 'leader'],
                description: 'replicas (docs/architecture.md §8): this replica (its broker client id) and whether it runs the rollout engine now; absent on a gateway without replicas',
                properties: { id: { type: 'string' }, leader: { type: 'boolean' } },
              },
            },
          },
        }),
      },
    },
    async (request) => {
      const s = gw.signing;
      const r = gw.replica;
      const store = gw.storeStatus();
      const debugs = allows(request.caller!.role, 'operator');
      const lastError = store.lastError && (debugs ? store.lastError : { code: store.lastError.code, at: store.lastError.at });
      return {
        name: 'pinwave',
        version: o.version,
        // On a wildcard listen, the address this request came in on: the wildcard is no address to connect to.
        mqttUrl: gw.mqttUrlVia(request.socket.localAddress),
        broker: gw.brokerMode,
        ...(gw.brokers.length > 0 && { brokers: gw.brokers }),
        mqttPorts: gw.ports,
        kid: s?.kid ?? null,
        publicKey: s?.publicPem ?? null,
        store: { ...(debugs && { name: store.name }), writable: store.writable, lastError },
        ...(r && { replica: { id: r.id, leader: r.leader } }),
      };
    },
  );
}
