// /v1/manifests: the firmware manifests the gateway knows (docs/architecture.md §4): pushed by an
// admin, read by anyone with a token. Pre-flight checks bundles against them, and a rollback of a
// group's first rollout restores their initial pins. The config's manifests win over pushed ones.
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway.ts';
import type { KnownManifest } from '../manifest-registry.ts';
import { responses } from './schemas.ts';

/** The largest manifest body POST /v1/manifests reads, bytes: `pinwave manifest push` checks a file against it before sending. */
export const MANIFEST_BODY_LIMIT = 256 * 1024;

export interface ManifestRoutesOptions {
  gateway: Gateway;
}

const entry = {
  type: 'object',
  required: ['model', 'firmware', 'source', 'manifest'],
  properties: {
    model: { type: 'string' },
    firmware: { type: 'string' },
    source: { type: 'string', enum: ['config', 'pushed'], description: "config: from the gateway's config (wins over a push); pushed: through this API" },
    pushedBy: { type: 'string' },
    pushedAt: { type: 'number', description: 'epoch milliseconds' },
    manifest: { type: 'object', additionalProperties: true, description: 'the firmware manifest JSON (docs/firmware-manifest.md)' },
  },
} as const;

const warnings = {
  type: 'array',
  description: 'present when the manifest is valid but will not work as meant, e.g. initial pins too large for one bundle the firmware takes (a rollback to them could never be signed)',
  items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } },
} as const;

const view = (e: KnownManifest) => ({
  model: e.manifest.model,
  firmware: e.manifest.firmware,
  source: e.source,
  ...(e.pushedBy !== undefined && { pushedBy: e.pushedBy }),
  ...(e.pushedAt !== undefined && { pushedAt: e.pushedAt }),
  manifest: e.manifest,
});

export async function manifestRoutes(app: FastifyInstance, o: ManifestRoutesOptions): Promise<void> {
  const gw = o.gateway;

  app.post<{ Body: unknown; Querystring: { replace?: boolean } }>(
    '/v1/manifests',
    {
      bodyLimit: MANIFEST_BODY_LIMIT,
      config: { role: 'admin' },
      schema: {
        tags: ['manifests'],
        summary: 'Push a firmware manifest (JSON, as `pinwave manifest validate` takes it)',
        description:
          'Validated as `pinwave manifest validate` does: a 400 lists every problem, each with its JSON path, in details.errors. 201 when new, 200 when it replaces a pushed manifest of the same model and firmware or is identical to the one known (nothing changes). A manifest of the same model and firmware in the config wins: a different push is a 409 naming it. With replace=false a different pushed manifest of the same model and firmware is kept: a 409 naming it (details.conflict: model, firmware, source, pushedBy, and differs, the top-level fields that differ).',
        querystring: { type: 'object', additionalProperties: false, properties: { replace: { type: 'boolean', default: true, description: 'false: refuse (409) rather than replace a different pushed manifest of the same model and firmware' } } },
        body: { type: 'object' },
        response: responses({ 200: { type: 'object', properties: { status: { type: 'string', enum: ['replaced', 'unchanged'] }, ...entry.properties, warnings } }, 201: { type: 'object', properties: { status: { type: 'string', enum: ['created'] }, ...entry.properties, warnings } } }),
      },
    },
    async (request, reply) => {
      const r = await gw.pushManifest(request.body, request.caller!.name, { replace: request.query.replace !== false });
      return reply.code(r.status === 'created' ? 201 : 200).send({ status: r.status, ...view(r.entry), ...(r.warnings.length > 0 && { warnings: r.warnings }) });
    },
  );

  app.get(
    '/v1/manifests',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['manifests'],
        summary: "The firmware manifests the gateway knows: the config's first, then the pushed ones, by model and firmware",
        response: responses({ 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: entry } } } }),
      },
    },
    async () => ({ items: gw.listManifests().map(view) }),
  );
}
