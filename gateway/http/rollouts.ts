// /v1/rollouts (docs/architecture.md §6): create after pre-flight (422 with the offending devices when
// it refuses), list, show (per wave: state, counts, ratios against thresholds; the decisions with
// their reasons), and the operator's actions. An action the rollout's state forbids is 409 naming
// that state (the engine's PW_INVALID_STATE). The actor of every decision is the caller's token name.
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.ts';
import type { Gateway } from '../gateway.ts';
import type { RolloutState, Target, WavePlanInput, WaveThresholds } from '../rollout/types.ts';
import type { ResumeScope } from '../rollout/engine.ts';
import { bundleIdOrPrefix, cursor, deadlineProperties, deviceId, group, idParams, limit, listOf, noBody, responses, rolloutId, thresholdProperties } from './schemas.ts';

export interface RolloutRoutesOptions {
  gateway: Gateway;
  /** the wave plan of a rollout created without `waves` (config `waves`); default the engine's 1%, 10%, 50%, 100% */
  waveDefaults?: WavePlanInput[];
}

interface CreateBody {
  bundle: string;
  target: Target;
  waves?: WavePlanInput[];
  onMiss?: 'hold' | 'abort';
  start?: boolean;
  seed?: string;
  checkEndpoints?: boolean;
  nextKeys?: Record<string, string[]>;
  force?: boolean;
  reason?: string;
  deadline?: string;
  certificate?: string;
  marginDays?: number;
  targetRatio?: number;
}

const wave = {
  type: 'object',
  additionalProperties: false,
  required: ['size'],
  properties: {
    size: {
      description: 'cumulative: a device count, or a percentage of the target ("10%"); the last wave takes the remainder',
      anyOf: [
        { type: 'integer', minimum: 1 },
        { type: 'string', pattern: '^[0-9]{1,3}(\\.[0-9]{1,6})?%$' },
      ],
    },
    ...thresholdProperties,
  },
} as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['bundle', 'target'],
  properties: {
    bundle: bundleIdOrPrefix,
    target: {
      type: 'object',
      description: 'exactly one of { "group": G } or { "devices": [ids] }',
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      properties: { group, devices: { type: 'array', minItems: 1, maxItems: 10_000, items: deviceId } },
    },
    waves: { type: 'array', minItems: 1, maxItems: 100, items: wave },
    onMiss: { type: 'string', enum: ['hold', 'abort'], description: 'what a missed wave does; default hold' },
    start: { type: 'boolean', description: 'start at once; default false' },
    seed: { type: 'string', minLength: 1, maxLength: 128, description: 'orders the target into waves; default the rollout id' },
    checkEndpoints: { type: 'boolean', description: 'also check the pins against what every endpoint serves now, dialled by name; default: config preflight.probeAll' },
    nextKeys: {
      type: 'object',
      description: 'by "host:port" of an endpoint of the bundle: keys it will serve (sha256/…), which pin continuity accepts in place of the key served now',
      maxProperties: 100,
      additionalProperties: { type: 'array', minItems: 1, maxItems: 16, items: { type: 'string', maxLength: 100 } },
    },
    force: { type: 'boolean', description: "create even though pin continuity refuses, or devices report a seq not below the bundle's (finding ahead) (needs reason); recorded as a force decision with the findings" },
    reason: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[\\x20-\\x7e]+$', description: 'why the start is forced' },
    ...deadlineProperties,
  },
} as const;

const resumeBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    ...thresholdProperties,
    for: { type: 'string', enum: ['held', 'remaining'], description: 'which waves the new thresholds are for: the held wave only (default), or it and every wave after it' },
  },
  description: 'new thresholds or timeout, for the held wave or for it and the waves after it',
} as const;
const rollbackBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { bundle: { ...bundleIdOrPrefix, description: "the bundle to restore, uploaded already (a gateway without a signing key); default: the previous bundle's pins, or the manifests' initial pins, signed by the gateway with the group's next seq" } },
} as const;
const abortBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { reason: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[\\x20-\\x7e]+$', description: "recorded with the decision; default 'operator'" } },
} as const;

export async function rolloutRoutes(app: FastifyInstance, o: RolloutRoutesOptions): Promise<void> {
  const gw = o.gateway;
  const params = idParams(rolloutId);
  // Ids in paths may be unique prefixes (gateway/id-prefix.ts): resolved once, then used whole.
  const view = (id: string) => gw.getRollout(gw.resolveRolloutId(id));

  app.post<{ Body: CreateBody }>(
    '/v1/rollouts',
    {
      bodyLimit: 1024 * 1024,
      config: { role: 'operator' },
      schema: {
        tags: ['rollouts'],
        summary: 'Create a rollout of a bundle in waves, after a pre-flight check',
        description:
          'Returns the rollout with the pre-flight result. When pre-flight refuses, 422 with the result in details (problems name the offending devices). With config approval, a rollout that needs operators other than its creator is created pending, even with start: true, its `approval` saying how many (POST /v1/rollouts/:id/approve). With a `deadline`, `deadlineFit` says whether the plan can reach `targetRatio` in time: a warning, never a refusal.',
        body: createBody,
        response: responses({ 201: { $ref: 'RolloutCreated#' } }),
      },
    },
    async (request, reply) => {
      const b = request.body;
      const waves = b.waves ?? o.waveDefaults;
      const { rollout, preflight, deadlineFit } = await gw.createRollout({ ...b, ...(waves && { waves }) }, request.caller!.name);
      return reply.code(201).send({ ...(await view(rollout.id)), preflight, ...(deadlineFit && { deadlineFit }) });
    },
  );

  app.get<{ Querystring: { state?: RolloutState; group?: string; limit?: number; cursor?: string } }>(
    '/v1/rollouts',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['rollouts'],
        summary: 'List rollouts, oldest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { state: { type: 'string', enum: ['pending', 'running', 'held', 'completed', 'aborted'] }, group, limit, cursor },
        },
        response: responses({ 200: listOf('Rollout') }),
      },
    },
    async (request) => {
      const q = request.query;
      const all = (await gw.listRollouts(q.state)).filter((r) => q.group === undefined || r.bundle.group === q.group);
      let from = 0;
      if (q.cursor !== undefined) {
        from = all.findIndex((r) => r.id === q.cursor) + 1;
        if (from === 0) throw new GatewayError('PW_INVALID', `querystring/cursor names no rollout in this list: ${JSON.stringify(q.cursor)}`);
      }
      const n = q.limit ?? 100;
      const page = all.slice(from, from + n);
      return { items: await Promise.all(page.map((r) => view(r.id))), next: from + n < all.length ? page[page.length - 1].id : null };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/rollouts/:id',
    {
      config: { role: 'viewer' },
      schema: { tags: ['rollouts'], summary: 'A rollout: its state, each wave against its thresholds, and the decisions', params, response: responses({ 200: { $ref: 'Rollout#' } }) },
    },
    async (request) => view(request.params.id),
  );

  const action = (verb: 'start' | 'pause' | 'resume' | 'abort' | 'approve', summary: string, body: object, run: (id: string, actor: string, body: Record<string, unknown> | null) => Promise<unknown>) =>
    app.post<{ Params: { id: string }; Body: Record<string, unknown> | null }>(
      `/v1/rollouts/:id/${verb}`,
      { config: { role: 'operator' }, schema: { tags: ['rollouts'], summary, params, body, response: responses({ 200: { $ref: 'Rollout#' } }) } },
      async (request) => {
        const id = gw.resolveRolloutId(request.params.id);
        await run(id, request.caller!.name, request.body ?? null);
        return view(id);
      },
    );

  action('start', 'Start a pending rollout: its first wave is sent. 409 PW_APPROVAL_REQUIRED while it waits for approval (details.approval)', noBody, (id, actor) => gw.startRollout(id, actor));
  action('pause', 'Hold a running rollout: nothing more is sent until it is resumed', noBody, (id, actor) => gw.pauseRollout(id, actor));
  action('resume', 'Resume a held rollout, optionally with new thresholds or timeout for the held wave (`for: held`, the default) or for it and every later wave (`for: remaining`)', resumeBody, (id, actor, body) => {
    const { for: scope, ...changes } = (body ?? {}) as Partial<WaveThresholds> & { for?: ResumeScope };
    return gw.resumeRollout(id, actor, changes, scope ?? 'held');
  });
  action('abort', 'Abort a rollout: nothing more is sent', abortBody, (id, actor, body) => gw.abortRollout(id, actor, typeof body?.reason === 'string' ? body.reason : undefined));
  // docs/architecture.md §10: the caller's token name is the identity that approves; the creator's own is 403 PW_SELF_APPROVAL.
  action('approve', "Approve a pending rollout that waits for approval (config approval): recorded as a decision with the caller's name; its creator cannot approve it (403 PW_SELF_APPROVAL), and one identity counts once", noBody, (id, actor) => gw.approveRollout(id, actor));

  app.post<{ Params: { id: string } }>(
    '/v1/rollouts/:id/rollback',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['rollouts'],
        summary: 'Roll back: a new bundle of the previous pins (higher seq) to every device this rollout reached; one in progress is aborted',
        description:
          "The pins restored are the previous bundle's; on a group's first rollout, the initial pins of the firmware manifests of the group's models (per endpoint their union); a 409 names the model and firmware whose manifest is missing (push it: POST /v1/manifests). Pre-flight problems do not refuse a rollback: they are recorded in its gatesBypassed; only devices that hold the bundle and would reject the rollback's signing key as unknown_key at their key epoch refuse it, a 409 naming them in details.devices (it is signed with a key they trust when the gateway holds one). A gateway without a signing key takes `bundle`, uploaded already, which must carry exactly the pins restored and no key rotation (409 otherwise).",
        params,
        body: rollbackBody,
        response: responses({ 201: { type: 'object', required: ['aborted', 'rollback'], properties: { aborted: { $ref: 'Rollout#' }, rollback: { $ref: 'Rollout#' } } } }),
      },
    },
    async (request, reply) => {
      const body = (request.body ?? {}) as { bundle?: string };
      const { aborted, rollback } = await gw.rollback(gw.resolveRolloutId(request.params.id), request.caller!.name, body.bundle !== undefined ? { bundle: body.bundle } : {});
      return reply.code(201).send({ aborted: await view(aborted.id), rollback: await view(rollback.id) });
    },
  );
}
