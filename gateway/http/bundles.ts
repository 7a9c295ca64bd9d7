// /v1/bundles: create a bundle signed by the gateway key (operator), or take one signed elsewhere
// (`cose`: offline signing, docs/architecture.md §3), list, show decoded,
// and the raw COSE_Sign1 bytes (`application/cose`, RFC 9052 §2) for a firmware engineer's bench.
import type { FastifyInstance } from 'fastify';
import { bundleView, hex, inspectBundle } from '../../firmware-manifest/index.ts';
import { MAX_BUNDLE_LIFETIME_SECONDS } from '../bundles.ts';
import { GatewayError } from '../errors.ts';
import type { BundleInput, Gateway } from '../gateway.ts';
import type { BundleRecord } from '../store/types.ts';
import { bundleIdOrPrefix, cursor, group, idParams, limit, listOf, responses } from './schemas.ts';

export interface BundleRoutesOptions {
  gateway: Gateway;
}

interface CreateBody {
  group: string;
  pins?: BundleInput['endpoints'];
  cose?: string;
  rotateKeys?: { epoch: number; keys: string[] };
  expiresIn?: number | string;
  expiryPolicy?: 'enforce' | 'ca-fallback';
}

const DURATION = /^([0-9]{1,9})(s|m|h|d)$/;
const UNIT = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** `expiresIn` as seconds: a number of seconds, or a duration such as "90s", "12h", "30d". */
export function durationSeconds(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = DURATION.exec(v)!;
  return Number(m[1]) * UNIT[m[2] as keyof typeof UNIT];
}

const endpoint = {
  type: 'object',
  additionalProperties: false,
  required: ['host', 'pins'],
  properties: {
    host: { type: 'string', minLength: 1, maxLength: 253, description: 'lowercase host name, exact or "*.example.com", or an IP address' },
    port: { type: 'integer', minimum: 1, maximum: 65535, description: 'default 443' },
    pins: {
      type: 'array',
      minItems: 2,
      maxItems: 64,
      description: 'the complete pin set, at least two distinct pins (RFC 7469 §2.5 backup pin)',
      items: { type: 'string', maxLength: 100, pattern: '^sha256/[A-Za-z0-9+/=]+$', description: 'sha256/<base64 of 32 bytes>' },
    },
    mode: { type: 'string', enum: ['enforce', 'report-only'], description: 'default enforce' },
    notBefore: { type: 'integer', minimum: 0, description: 'epoch seconds: this pin set applies from then' },
    notAfter: { type: 'integer', minimum: 0, description: 'epoch seconds: this pin set applies until then' },
  },
} as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['group'],
  properties: {
    group,
    pins: { type: 'array', minItems: 1, maxItems: 64, items: endpoint, description: 'the pin set for the gateway to sign; give this or cose' },
    cose: {
      type: 'string',
      minLength: 4,
      maxLength: 90000,
      pattern: '^[A-Za-z0-9+/]+={0,2}$',
      description:
        "a bundle signed elsewhere (pinwave bundle create): the COSE_Sign1 bytes, standard base64; give this or pins. Taken only when a device of the group would accept it: it verifies under a key the group trusts (the gateway's, or its models' manifests'), is for this group, and carries the group's next seq; otherwise a 422 PW_UPLOAD_REFUSED with the verifier's reason in details.reason (unknown_key, bad_signature, wrong_group, replayed, seq_not_next, expired, ...) and details.nextSeq. expiresIn and expiryPolicy do not go with it",
    },
    expiresIn: {
      description: 'bundle lifetime: seconds, or a duration such as "12h" or "30d"; default the gateway default (30 days)',
      anyOf: [
        { type: 'integer', minimum: 1, maximum: 100 * 365 * 86400 },
        { type: 'string', pattern: DURATION.source },
      ],
    },
    expiryPolicy: { type: 'string', enum: ['enforce', 'ca-fallback'], description: 'what a device does once the bundle expires; default enforce' },
    rotateKeys: {
      type: 'object',
      additionalProperties: false,
      required: ['epoch', 'keys'],
      description:
        "a key rotation (docs/bundle-format.md): the devices' trusted signing keys are replaced by these at this epoch, which must be above every epoch the group holds or was sent (epochs only go up: undoing a rotation is a further rotation). Signed with the key the group trusts now; the gateway signs with its next key (config nextKeyPath) once this bundle is the group's baseline. Keep the current key in the list until every device runs the new one",
      properties: {
        epoch: { type: 'integer', minimum: 1, maximum: 4294967295 },
        keys: { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', minLength: 1, maxLength: 1000, description: 'an Ed25519 public key: SPKI PEM, or the standard base64 of the raw 32 bytes' } },
      },
    },
  },
} as const;

/** A stored bundle as people read it: its record, its envelope's kid, and the decoded content. */
export function storedBundleView(record: BundleRecord) {
  const r = inspectBundle(new Uint8Array(Buffer.from(record.bytes, 'base64')));
  if (!r.ok) throw new Error(`stored bundle ${record.id} does not decode: ${r.detail}`);
  return { ...summaryView(record), kid: hex(r.envelope.kid), alg: 'EdDSA', ...bundleView(r.bundle) };
}

const summaryView = (b: BundleRecord) => ({ id: b.id, group: b.group, seq: b.seq, size: b.size, createdAt: b.createdAt, createdBy: b.createdBy ?? null });

export async function bundleRoutes(app: FastifyInstance, o: BundleRoutesOptions): Promise<void> {
  const gw = o.gateway;
  const params = idParams(bundleIdOrPrefix);

  app.post<{ Body: CreateBody }>(
    '/v1/bundles',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['bundles'],
        summary: "Sign a bundle for a group with the group's next seq, or take one signed elsewhere",
        description:
          'With pins: the gateway signs them. Fewer than two distinct pins for an endpoint, or a pin that is not 32 bytes of base64, is a 400 naming it; a gateway without a signing key answers 409 PW_NO_SIGNING_KEY (upload a signed bundle). With cose: a bundle signed offline, checked as a device of the group would check it (422 PW_UPLOAD_REFUSED with the reason).',
        body: createBody,
        response: responses({ 201: { $ref: 'BundleDetail#' } }),
      },
    },
    async (request, reply) => {
      const b = request.body;
      if ((b.pins === undefined) === (b.cose === undefined)) throw new GatewayError('PW_INVALID', 'body: give exactly one of pins (the gateway signs them) or cose (a bundle signed elsewhere, base64)');
      if (b.cose !== undefined) {
        if (b.expiresIn !== undefined || b.expiryPolicy !== undefined || b.rotateKeys !== undefined) throw new GatewayError('PW_INVALID', 'body/expiresIn, body/expiryPolicy and body/rotateKeys are signed into a bundle: they do not go with cose');
        const record = await gw.uploadBundle({ group: b.group, bytes: new Uint8Array(Buffer.from(b.cose, 'base64')) }, request.caller!.name);
        return reply.code(201).send(storedBundleView(record));
      }
      if (b.expiresIn !== undefined && durationSeconds(b.expiresIn) > MAX_BUNDLE_LIFETIME_SECONDS) {
        throw new GatewayError('PW_INVALID', `body/expiresIn must be at most 100 years, got ${JSON.stringify(b.expiresIn)}`);
      }
      const input: BundleInput = {
        group: b.group,
        endpoints: b.pins!,
        ...(b.expiresIn !== undefined && { expiresInSeconds: durationSeconds(b.expiresIn) }),
        ...(b.expiryPolicy !== undefined && { expiryPolicy: b.expiryPolicy }),
        ...(b.rotateKeys !== undefined && { rotateKeys: b.rotateKeys }),
      };
      const record = await gw.createBundle(input, request.caller!.name);
      return reply.code(201).send(storedBundleView(record));
    },
  );

  app.get<{ Querystring: { group?: string; limit?: number; cursor?: string } }>(
    '/v1/bundles',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['bundles'],
        summary: 'List bundles in id order',
        querystring: { type: 'object', additionalProperties: false, properties: { group, limit, cursor } },
        response: responses({ 200: listOf('Bundle') }),
      },
    },
    async (request) => {
      const page = await gw.listBundles(request.query);
      return { items: page.items.map(summaryView), next: page.next };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/bundles/:id',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['bundles'],
        summary: "A bundle, decoded, with its pins against what its group runs now",
        description: 'The id may be a unique prefix of at least 8 hex digits: 404 when none matches, 409 (PW_AMBIGUOUS, details.candidates) when several do, 400 under 8.',
        params,
        response: responses({ 200: { $ref: 'BundleDetail#' } }),
      },
    },
    async (request) => {
      const id = await gw.resolveBundleId(request.params.id);
      return { ...storedBundleView(await gw.getBundle(id)), diff: await gw.bundleDiff(id) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/bundles/:id/raw',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['bundles'],
        summary: 'The COSE_Sign1 bytes of a bundle, as devices receive them',
        params,
        response: responses({ 200: { description: 'COSE_Sign1 (RFC 9052), CBOR tag 18', content: { 'application/cose': { schema: { type: 'string', format: 'binary' } } } } }),
      },
    },
    async (request, reply) => {
      const b = await gw.getBundle(await gw.resolveBundleId(request.params.id));
      return reply.type('application/cose').header('content-disposition', `attachment; filename="${b.group}-${b.seq}.cose"`).send(Buffer.from(b.bytes, 'base64'));
    },
  );
}
