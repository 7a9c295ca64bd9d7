// The HTTP API: a fastify app over a running Gateway. One route file per resource; this
// file wires them and the concerns they share: validation, errors, auth, the OpenAPI document.
//
//   const app = await buildServer({ gateway: gw, tokens: config.tokens, logger });
//   await app.listen({ host: '127.0.0.1', port: 8080 });
//   ...
//   await app.close(); await gw.stop();
//
// Access. Every route declares the least role it needs or that it is public (auth.ts); one that
// declares neither makes buildServer throw, naming it. `app.routeAccess` lists them all.
//
// Validation. Request bodies, queries and params are checked against each route's JSON schema by
// two Ajv instances of our own rather than fastify's default one: fastify's coerces and strips,
// which would turn `"port": "443"` into 443 and silently drop a misspelt field. Bodies here are
// never coerced and unknown fields are refused (`additionalProperties: false` everywhere);
// queries and params arrive as strings, so they are coerced to the schema's types. A route that
// declares no query takes none (schemas.ts noQuery): every unknown parameter is a 400 naming it.
// The HTML pages (`/ui`, `/docs`), the console's assets and the probes (`/healthz`, `/readyz`) take any
// query and ignore it (schemas.ts ignoredQuery): a bookmark's, a cache-buster's, a load balancer's.
//
// Methods. A path served, asked with a method it does not take, is 405 with `Allow`, after the
// access check (wrong-method.ts), PROPFIND and the other methods fastify does not route by default
// included; a path not served is 404.
//
// Logs. Request lines carry the method, the path and the query's parameter names, never their
// values (request-log.ts), nor any header.
//
// Shutdown. `app.connections` (connections.ts) closes idle and half-sent connections at once and
// tells when the requests in their handlers are answered; `pinwave gateway` drives it.
//
// The console (docs/architecture.md §10): its page and assets under /ui (console.ts), its sign-in
// (session-routes.ts, sessions.ts), rollout event streams (rollout-events.ts), all over the same
// auth. `app.apiTokens.replace(tokens)` puts a new token set in force at once (`pinwave gateway`
// on SIGHUP): a revoked token's sessions end and its event streams close.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifySchemaValidationError } from 'fastify';
import swagger from '@fastify/swagger';
import { Ajv } from 'ajv';
import type { Gateway } from '../gateway.ts';
import type { WavePlanInput } from '../rollout/types.ts';
import { registerAuth, type ApiToken, type AuthLimits, type Refusal } from './auth.ts';
import { bundleRoutes } from './bundles.ts';
import { trackConnections } from './connections.ts';
import { consoleRoutes } from './console.ts';
import { deviceRoutes } from './devices.ts';
import { docsRoutes } from './docs.ts';
import { registerErrors } from './errors.ts';
import { groupRoutes, GroupSchema } from './groups.ts';
import { infoRoutes, packageVersion } from './info.ts';
import { metricsRoutes } from './metrics.ts';
import { manifestRoutes } from './manifests.ts';
import { requestSerializer } from './request-log.ts';
import type { EventIdSource } from './rollout-feed.ts';
import { rolloutEventRoutes } from './rollout-events.ts';
import { rolloutRoutes } from './rollouts.ts';
import { forecastRoutes } from './forecast.ts';
import { addSharedSchemas, noQuery } from './schemas.ts';
import { sessionRoutes } from './session-routes.ts';
import { Sessions, type SessionStore } from './sessions.ts';
import { telemetryRoutes } from './telemetry.ts';
import { ApiTokens } from './tokens.ts';
import { answerWrongMethods } from './wrong-method.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** the API tokens in force; `replace()` them to add and revoke without a restart (tokens.ts) */
    apiTokens: ApiTokens;
  }
}

/** The console's options (docs/architecture.md §10); every one has a default. */
export interface ConsoleOptions {
  /** where console sessions live; default this process's memory */
  sessions?: SessionStore;
  /** a session with no request for this long ends, ms; default 1 h (config console.sessionIdle) */
  sessionIdleMs?: number;
  /** a session ends this long after sign-in, ms; default 12 h (config console.sessionLifetime) */
  sessionLifetimeMs?: number;
  /** a comment on each rollout event stream this often, ms; default 15 s */
  heartbeatMs?: number;
  /** at most one change event per rollout this often, ms; default 100 */
  eventIntervalMs?: number;
  /** where rollout event ids come from; default the gateway's database sequence with PostgreSQL, else per process from the clock (rollout-feed.ts) */
  eventIds?: EventIdSource;
  /** the package folder the console's assets are read from; default this package's */
  root?: string;
}

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
  /** serve HTTPS with this PEM key and certificate (chain) instead of plain HTTP (config `http.tls`); default off */
  https?: { key: Buffer | string; cert: Buffer | string };
  /** route plugins registered after the API's own (a deployment's own routes); each route must declare its access like the others */
  plugins?: FastifyPluginAsync[];
  /** the console's sessions, event streams and assets */
  console?: ConsoleOptions;
}

const TAGS = [
  { name: 'devices', description: 'provisioning, lookup, token rotation and revocation' },
  { name: 'bundles', description: 'signed pin bundles (docs/architecture.md §3): signed by the gateway, or offline and uploaded' },
  { name: 'manifests', description: 'the firmware manifests of the fleet\'s models (docs/architecture.md §4)' },
  { name: 'rollouts', description: 'staged rollouts in waves (docs/architecture.md §6)' },
  { name: 'telemetry', description: 'pin-failure reports and stuck devices' },
  { name: 'meta', description: 'health, info, metrics and this document' },
  { name: 'console', description: 'the operator console: its page, and sign-in for a session cookie (docs/architecture.md §10)' },
];

type Validate = ((data: unknown) => boolean) & { errors?: FastifySchemaValidationError[] | null };

/** Where a coerced query or path value is a number that is not finite ("1e999" reads as Infinity), or null. */
function nonFinite(v: unknown, at: string): string | null {
  if (typeof v === 'number') return Number.isFinite(v) ? null : at;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const bad = nonFinite(v[i], `${at}/${i}`);
      if (bad !== null) return bad;
    }
    return null;
  }
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const bad = nonFinite(x, `${at}/${k}`);
      if (bad !== null) return bad;
    }
  }
  return null;
}

/**
 * A query, params or headers validator that also refuses numbers that are not finite. Ajv coerces
 * text such as "1e999" to Infinity and then skips `minimum`/`maximum` for it, so without this a
 * `limit=1e999` reached the store (500) and `limit=-1e999` an empty page.
 */
function finiteOnly(validate: Validate): Validate {
  const checked: Validate = (data) => {
    if (!validate(data)) {
      checked.errors = validate.errors;
      return false;
    }
    const at = nonFinite(data, '');
    checked.errors = at === null ? null : [{ instancePath: at, schemaPath: '#/type', keyword: 'type', message: 'must be a finite number', params: {} }];
    return at === null;
  };
  return checked;
}

export async function buildServer(o: ServerOptions): Promise<FastifyInstance> {
  const now = o.now ?? Date.now;
  const version = o.version ?? packageVersion();
  /** the query parameter names the routes declare: the ones a request log may name */
  const queryNames = new Set<string>();
  const app = Fastify({
    // This child's serializer takes precedence over fastify's own (logger-pino.js merges the instance's last).
    ...(o.logger ? { loggerInstance: o.logger.child({}, { serializers: { req: requestSerializer(queryNames) } }) } : { logger: false }),
    ...(o.https && { https: { key: o.https.key, cert: o.https.cert } }),
    bodyLimit: o.bodyLimit ?? 1024 * 1024,
    trustProxy: o.trustProxy ?? false,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Longer than any valid id, so a long one reaches the schema (400 naming it) instead of 404.
    routerOptions: { maxParamLength: 500 },
  });

  const bodies = new Ajv({ allErrors: true, coerceTypes: false, useDefaults: false, removeAdditional: false, allowUnionTypes: true, strict: true });
  const strings = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: false, removeAdditional: false, allowUnionTypes: true, strict: true });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodies.compile(schema) : finiteOnly(strings.compile(schema))));

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
  app.addSchema(GroupSchema);
  trackConnections(app);
  app.addHook('onRoute', (route) => {
    // A route that declares no query takes none: `?x=1` is a 400 naming x, as on the list routes,
    // not a parameter silently ignored. Set on the schema itself, which its HEAD twin shares.
    const schema = (route.schema ??= {}) as { querystring?: { properties?: object } };
    schema.querystring ??= noQuery;
    for (const name of Object.keys(schema.querystring.properties ?? {})) queryNames.add(name);
  });
  const authRefused: Record<Refusal, number> = { missing: 0, wrong: 0, forbidden: 0, throttled: 0, session: 0, csrf: 0 };
  const tokens = new ApiTokens(o.tokens ?? []);
  const c = o.console ?? {};
  // With the PostgreSQL store the sessions are in the database, so any replica answers a browser (docs/architecture.md §8).
  const sessions = new Sessions({ store: c.sessions ?? o.gateway.consoleSessions ?? undefined, now, idleMs: c.sessionIdleMs, lifetimeMs: c.sessionLifetimeMs });
  // A revoked token's console sessions end with it (and their event streams close, rollout-events.ts).
  tokens.onRevoked((gone) => {
    sessions.endForTokens(gone.map((t) => t.hash)).catch((err: Error) => app.log.error({ err: err.message }, 'sessions of revoked tokens could not be ended'));
  });
  app.decorate('apiTokens', tokens);
  // Before any route: it checks each route's access declaration as the route is added.
  const auth = registerAuth(app, { tokens, sessions, now, limits: o.authLimits, onRefused: (reason) => authRefused[reason]++ });
  await app.register(swagger, {
    // 3.1: its Schema Objects are JSON Schema 2020-12, what the routes validate with (numeric
    // exclusiveMinimum, `type: [T, 'null']`); 3.0's dialect can say neither.
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'pinwave',
        version,
        description: 'Over-the-air certificate-pin updates for IoT fleets: devices, signed pin bundles, staged rollouts, support queries. Send `Authorization: Bearer <token>`; roles viewer < operator < admin. A query parameter an operation does not list is a 400 naming it (the pages /ui and /docs ignore any); a method a path does not take is 405 with `Allow`, after the access check.',
      },
      tags: TAGS,
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    // Components are named after the shared schemas' $id (Device, Rollout, ...), not def-0, def-1.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    // Each operation says who may call it: `x-pinwave-access` (a role, or public) for tools and the
    // page, the bearer scheme where a token is needed, and a line of its description for people.
    transform: ({ schema, url, route }) => {
      if (!schema) return { schema, url };
      const role = route.config?.role;
      const access = role ?? 'public';
      const description = role ? [schema.description, `Role: ${role} or above.`].filter(Boolean).join('\n\n') : schema.description;
      return { schema: { ...schema, ...(description && { description }), 'x-pinwave-access': access, ...(role && { security: [{ bearer: [] }] }) } as typeof schema, url };
    },
  });

  const gateway = o.gateway;
  await app.register(infoRoutes, { gateway, version });
  await app.register(metricsRoutes, { gateway, authRefused, streams: () => app.rolloutStreams.open });
  await app.register(deviceRoutes, { gateway });
  await app.register(bundleRoutes, { gateway });
  await app.register(manifestRoutes, { gateway });
  await app.register(rolloutRoutes, { gateway, waveDefaults: o.waveDefaults });
  await app.register(rolloutEventRoutes, { gateway, auth, now, heartbeatMs: c.heartbeatMs, minIntervalMs: c.eventIntervalMs, eventIds: c.eventIds ?? o.gateway.eventIds ?? undefined });
  await app.register(groupRoutes, { gateway });
  await app.register(telemetryRoutes, { gateway });
  await app.register(forecastRoutes, { gateway });
  await app.register(docsRoutes);
  await app.register(sessionRoutes, { auth });
  await app.register(consoleRoutes, { root: c.root });
  for (const plugin of o.plugins ?? []) await app.register(plugin);
  answerWrongMethods(app);
  return app;
}
