// `GET /v1/rollouts/:id/events`: a rollout's progress as server-sent events (WHATWG HTML §9.2), for
// the console's rollout page and for scripts (`curl -N -H 'Authorization: Bearer …'`). What is sent
// and when is rollout-feed.ts: a `snapshot` on connect (or, with `Last-Event-ID`, the events
// missed since), then a `change` whenever the rollout's record changes, at most ~10 a second; the
// data of each is the rollout as `GET /v1/rollouts/:id` shows it. A comment line every
// `heartbeatMs` keeps proxies from closing a quiet stream. The stream closes when the token it
// came with is revoked, when its console session ends (sign-out, expiry, its token revoked), when
// the server closes, or when the client reads too slowly to keep up (it reconnects and replays).
import type { FastifyInstance } from 'fastify';
import type { Gateway } from '../gateway.ts';
import type { Auth } from './auth.ts';
import { ClockEventIds, formatEvent, parseLastEventId, RolloutFeeds, type EventIdSource, type Subscriber } from './rollout-feed.ts';
import { idParams, responses, rolloutId } from './schemas.ts';

export interface RolloutEventsOptions {
  gateway: Gateway;
  auth: Auth;
  now: () => number;
  /** a comment line this often keeps the stream open through proxies, ms; default 15 s */
  heartbeatMs?: number;
  /** at most one change event per rollout this often, ms; default 100 */
  minIntervalMs?: number;
  /** default ClockEventIds */
  eventIds?: EventIdSource;
}

/** A client this far behind (bytes queued on its socket) is closed; it reconnects and is replayed or sent a snapshot. */
const MAX_QUEUED_BYTES = 1024 * 1024;

declare module 'fastify' {
  interface FastifyInstance {
    /** the rollout event streams open now (rollout-events.ts) */
    rolloutStreams: { readonly open: number };
  }
}

export async function rolloutEventRoutes(app: FastifyInstance, o: RolloutEventsOptions): Promise<void> {
  const gw = o.gateway;
  const heartbeatMs = o.heartbeatMs ?? 15_000;
  let serialize: ((v: unknown) => string) | null = null;
  const feeds = new RolloutFeeds({
    now: o.now,
    ids: o.eventIds ?? new ClockEventIds(o.now),
    minIntervalMs: o.minIntervalMs,
    load: async (id) => {
      const r = await gw.getRollout(id).catch(() => null);
      return r === null ? null : serialize!(r);
    },
    onError: (err, id) => app.log.error({ rollout: id, err: err.message }, 'rollout event could not be built'),
  });
  const unhook = gw.onRolloutChange((id) => feeds.changed(id));
  const unRevoked = o.auth.tokens.onRevoked((gone) => {
    const hashes = new Set(gone.map((t) => t.hash));
    feeds.closeWhere((s) => hashes.has(s.tokenHash));
  });
  const unEnded = o.auth.sessions.onEnded((ended) => {
    const keys = new Set(ended.map((s) => s.idHash));
    feeds.closeWhere((s) => s.session !== null && keys.has(s.session));
  });
  app.decorate('rolloutStreams', {
    get open() {
      return feeds.streams;
    },
  });
  app.addHook('preClose', async () => feeds.closeAll());
  app.addHook('onClose', async () => {
    unhook();
    unRevoked();
    unEnded();
  });

  app.get<{ Params: { id: string } }>(
    '/v1/rollouts/:id/events',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['rollouts'],
        summary: "A rollout's progress as server-sent events: a snapshot, then a change whenever it changes",
        description:
          'text/event-stream. Each event has an `id` (increasing per rollout), a type (`snapshot` on connect, `change` after) and, as `data`, the rollout as `GET /v1/rollouts/:id` shows it. ' +
          'Changes are coalesced: at most ~10 a second. Reconnect with `Last-Event-ID` to get the events missed since (or a new snapshot when they are too old). ' +
          'A `:` comment line comes every 15 s. The stream closes when the token or console session it came with ends. Try: `curl -N -H "Authorization: Bearer $TOKEN" …/events`.',
        params: idParams(rolloutId),
        headers: { type: 'object', properties: { 'last-event-id': { type: 'string', maxLength: 64, description: 'the id of the last event received' } } },
        response: responses({ 200: { description: 'an event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } } }),
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      await gw.getRollout(id); // 404 naming it, before the stream starts
      const headers = {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      };
      if (request.method === 'HEAD') return reply.headers(headers).send();
      serialize ??= reply.compileSerializationSchema({ $ref: 'Rollout#' }) as (v: unknown) => string;
      const caller = request.caller!;
      reply.hijack();
      const raw = reply.raw;
      app.connections.streaming(request);
      raw.writeHead(200, headers);
      raw.write('retry: 3000\n\n');
      let closed = false;
      let heartbeat: NodeJS.Timeout | null = null;
      let unsubscribe = () => {};
      const end = () => {
        if (closed) return;
        closed = true;
        if (heartbeat) clearInterval(heartbeat);
        unsubscribe();
        raw.end();
      };
      const write = (chunk: string) => {
        if (closed) return;
        raw.write(chunk);
        if (raw.writableLength > MAX_QUEUED_BYTES) end();
      };
      const sub: Subscriber = { tokenHash: caller.tokenHash, session: caller.session, send: (e) => write(formatEvent(e)), close: end };
      raw.on('close', end);
      const subscribed = await feeds.subscribe(id, parseLastEventId(request.headers['last-event-id']), sub);
      if (subscribed === null) return end();
      unsubscribe = subscribed.unsubscribe;
      if (closed) return unsubscribe();
      for (const e of subscribed.backlog) sub.send(e);
      // Revocations close streams as they happen (above); each heartbeat also checks, so a session
      // that expired, or a token revoked while this stream was being opened, ends within one.
      heartbeat = setInterval(async () => {
        if (!o.auth.tokens.has({ name: caller.name, role: caller.role, hash: caller.tokenHash })) return end();
        if (caller.session !== null && !(await o.auth.sessions.alive(caller.session))) return end();
        write(': heartbeat\n\n');
      }, heartbeatMs);
      heartbeat.unref();
    },
  );
}

// Not encapsulated (what fastify-plugin does): `app.rolloutStreams` is the root app's, for metrics and tests.
(rolloutEventRoutes as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
