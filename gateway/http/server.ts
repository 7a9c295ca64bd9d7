// The HTTP API: a fastify app over a running Gateway. One route file per resource; this
// file wires them and the concerns they share: validation, errors, auth, the OpenAPI document.
//
//   const app = await buildServer({ gateway: gw, tokens: config.tokens, logger });
//   await app.listen({ host: '127.0.0.1', port: 8080 });
//   ...
//   await app.close(); await gw.stop();
//
// Validation. Request bodies, queries and params are checked against each route's JSON schema by
// two Ajv instances of our own rather than fastify's default one: fastify's coerces and strips,
// which would turn `"port": "443"` into 443 and silently drop a misspelt field. Bodies here are
// never coerced and unknown fields are refused (`additionalProperties: false` everywhere);
// queries and params arrive as strings, so they are coerced to the schema's types.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { Ajv } from 'ajv';
import type { Gateway } from '../gateway.ts';
import type { WavePlanInput } from '../rollout/types.ts';
import { registerAuth, type ApiToken, type AuthLimits } from './auth.ts';
import { bundleRoutes } from './bundles.ts';
import { deviceRoutes } from './devices.ts';
import { registerErrors } from './errors.ts';
import { infoRoutes, packageVersion } from './info.ts';
import { metricsRoutes } from './metrics.ts';
import { rolloutRoutes } from './rollouts.ts';
import { addSharedSchemas } from './schemas.ts';
import { telemetryRoutes } from './telemetry.ts';

export interface ServerOptions {
  /** the gateway the API drives; started by the caller, stopped by the caller after `app.close()` */
  gateway: Gateway;
  /** API tokens (config `tokens`, PINWAVE_ADMIN_TOKEN); default none: every /v1 route answers 401 */
  tokens?: readonly ApiToken[];
  /** a pino logger; default none. Tokens, hashes and keys are never logged */
  logger?: FastifyBaseLogger;
  /** the clock for the bad-token limiter, epoch ms; default Date.now */
  now?: () => number;
  /** reported by /v1/info and /docs; default package.json's */
  version?: string;
  /** the wave plan of rollouts created without `waves` (config `waves`); default the engine's */
  waveDefaults?: WavePlanInput[];
  /** largest request body, bytes; default 1 MiB (provisioning takes up to 4 MiB: 10,000 devices) */
  bodyLimit?: number;
  /** how repeated bad tokens are slowed down; defaults in auth.ts */
  authLimits?: AuthLimits;
  /** trust X-Forwarded-For from a reverse proxy for the caller's address (fastify `trustProxy`); default false */
  trustProxy?: boolean | string | string[];
}

const TAGS = [
  { name: 'devices', description: 'provisioning, lookup, token rotation and revocation' },
  { name: 'bundles', description: 'signed pin bundles (docs/architecture.md §3)' },
  { name: 'rollouts', description: 'staged rollouts in waves (docs/architecture.md §6)' },
  { name: 'telemetry', description: 'pin-failure reports and stuck devices' },
  { name: 'meta', description: 'health, info, metrics and this document' },
];

export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const now = o.now ?? Date.now;
  const version = o.version ?? packageVersion();
  const app = Fastify({
    ...(o.logger ? { loggerInstance: o.logger } : { logger: false }),
    bodyLimit: o.bodyLimit ?? 1024 * 1024,
    trustProxy: o.trustProxy ?? false,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Longer than any valid id, so a long one reaches the schema (400 naming it) instead of 404.
    routerOptions: { maxParamLength: 500 },
  });

  const bodies = new Ajv({ allErrors: true, coerceTypes: false, useDefaults: false, removeAdditional: false, allowUnionTypes: true, strict: true });
  const strings = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: false, removeAdditional: false, allowUnionTypes: true, strict: true });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodies : strings).compile(schema));

  // An empty body with a JSON content type is no body (clients send the header on bodiless POSTs);
  // anything else goes to fastify's parser (secure-json-parse: __proto__ and constructor refused).
  // Only JSON is taken: any other body is 415, not a string for the schema to puzzle over.
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    json(request, body as string, done);
  });

  registerErrors(app);
  addSharedSchemas(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'pinwave',
        version,
        description: 'Over-the-air certificate-pin updates for IoT fleets: devices, signed pin bundles, staged rollouts, support queries. Send `Authorization: Bearer <token>`; roles viewer < operator < admin.',
      },
      tags: TAGS,
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    // Components are named after the shared schemas' $id (Device, Rollout, ...), not def-0, def-1.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    transform: ({ schema, url, route }) => {
      const role = route.config?.role;
      if (!role || !schema) return { schema, url };
      const description = [schema.description, `Role: ${role} or above.`].filter(Boolean).join('\n\n');
      return { schema: { ...schema, description, security: [{ bearer: [] }] } as typeof schema, url };
    },
  });

  const authRefused: Record<string, number> = { missing: 0, wrong: 0, forbidden: 0, throttled: 0 };
  registerAuth(app, { tokens: o.tokens ?? [], now, limits: o.authLimits, onRefused: (reason) => authRefused[reason]++ });

  const gateway = o.gateway;
  await app.register(infoRoutes, { gateway, version });
  await app.register(metricsRoutes, { gateway, authRefused });
  await app.register(deviceRoutes, { gateway });
  await app.register(bundleRoutes, { gateway });
  await app.register(rolloutRoutes, { gateway, waveDefaults: o.waveDefaults });
  await app.register(telemetryRoutes, { gateway });
  return app;
}
