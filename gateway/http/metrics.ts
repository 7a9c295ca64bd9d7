// `GET /metrics`: the gateway's counters in the Prometheus text exposition format 0.0.4,
// each metric with its HELP and TYPE lines. Open, like /healthz: it carries counts, no ids.
// After the gateway's own metrics come the process and runtime ones (CPU, memory, heap, event
// loop lag, GC, open file descriptors: `process_*` and `nodejs_*`), as prom-client's default
// collectors measure them, one registry for the process.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Gateway } from '../gateway.ts';

let runtime: Registry | null = null;

/** The process's runtime metrics, collected when scraped (prom-client's defaults; started once per process). */
export function runtimeMetrics(): Promise<string> {
  if (!runtime) {
    runtime = new Registry();
    collectDefaultMetrics({ register: runtime });
  }
  // prom-client writes NaN as "Nan" (an event-loop figure before its first sample); the format spells it NaN.
  return runtime.metrics().then((text) => text.replace(/ Nan$/gm, ' NaN'));
}

export interface MetricsRoutesOptions {
  gateway: Gateway;
  /** API requests refused by the token check, by reason (auth.ts) */
  authRefused: Record<string, number>;
  /** rollout event streams open now (rollout-events.ts); default none */
  streams?: () => number;
}

type Labels = Record<string, string> | null;

/** Prometheus label values escape backslash, double quote and line feed. */
const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** Builds one exposition: `add` writes a metric's HELP and TYPE once, then its samples. */
export class Exposition {
  readonly #lines: string[] = [];

  add(name: string, type: 'counter' | 'gauge', help: string, samples: Array<[Labels, number]> | number): this {
    this.#lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of typeof samples === 'number' ? [[null, samples] as [Labels, number]] : samples) {
      const l = labels === null ? '' : `{${Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      this.#lines.push(`${name}${l} ${Number.isFinite(value) ? value : 0}`);
    }
    return this;
  }

  toString(): string {
    return this.#lines.join('\n') + '\n';
  }
}

const by = (label: string, counts: Record<string, number>): Array<[Labels, number]> => Object.entries(counts).map(([k, v]) => [{ [label]: k }, v]);

/** The whole exposition, from the gateway's counters: O(rollouts), no device walk. */
export function metricsText(gw: Gateway, authRefused: Record<string, number>, streams: () => number = () => 0): string {
  const c = gw.counters();
  const store = gw.storeStatus();
  const storeFailures = store.failures;
  const t = gw.telemetryCounters();
  const r = gw.rolloutCounts();
  const w = gw.webhookCounters() ?? { deliveries: { delivered: 0, failed: 0, dropped: 0 }, attempts: { ok: 0, http_error: 0, network_error: 0, timeout: 0 }, queued: [] };
  const replica = gw.replica;
  const e = new Exposition();
  // docs/architecture.md §8: which replica runs the engine (one series per replica, 1 on the leader)
  if (replica) {
    e.add('pinwave_replica_leader', 'gauge', 'Replicas: 1 while this replica (its broker client id) leads and runs the rollout engine, 0 while it follows.', [[{ replica: replica.id }, replica.leader ? 1 : 0]]);
    e.add('pinwave_replica_leaderships_total', 'counter', 'Replicas: times this process took the leadership.', [[{ replica: replica.id }, replica.terms]]);
    e.add('pinwave_replica_inbox_committed_total', 'counter', 'Replicas: device messages this follower committed for the leader (PUBACKed to the broker once committed).', [[{ replica: replica.id }, replica.inboxIn]]);
    e.add('pinwave_replica_inbox_handled_total', 'counter', "Replicas: followers' device messages this leader handled.", [[{ replica: replica.id }, replica.inboxHandled]]);
    e.add('pinwave_replica_actions_forwarded_total', 'counter', 'Replicas: operator actions this follower forwarded to the leader.', [[{ replica: replica.id }, replica.forwarded]]);
    e.add('pinwave_replica_sessions_drained_total', 'counter', 'Replicas: broker sessions of replicas that were gone this leader drained, and the device messages they held.', [[{ replica: replica.id, what: 'sessions' }, replica.sessionsDrained], [{ replica: replica.id, what: 'messages' }, replica.drainedMessages]]);
  }
  return e
    .add('pinwave_connected_devices', 'gauge', 'Devices connected to the MQTT broker now.', gw.connectedCount())
    .add('pinwave_device_messages_received_total', 'counter', 'Authorized device messages received, by kind (state, ack, telemetry).', by('kind', c.messagesIn))
    .add('pinwave_mqtt_messages_sent_total', 'counter', 'Messages handed to the broker for devices.', c.broker.messagesOut)
    .add('pinwave_bundles_sent_total', 'counter', 'Bundles published to devices.', c.bundlesSent)
    .add('pinwave_acks_total', 'counter', 'Device acks, by status.', by('status', c.acks))
    .add('pinwave_rollouts', 'gauge', 'Rollouts, by state.', by('state', r.byState))
    .add('pinwave_held_waves', 'gauge', 'Waves standing held (one per held rollout).', r.heldWaves)
    .add('pinwave_rollout_members', 'gauge', 'Members of running and held rollouts, by status (verified and reverted: devices with a health check).', by('status', r.members))
    .add('pinwave_rollouts_at_risk', 'gauge', 'Running and held rollouts projected to miss their deadline.', r.atRisk)
    .add('pinwave_rollout_at_risk_total', 'counter', 'Times a rollout turned at risk of missing its deadline.', c.atRisk ?? 0)
    .add('pinwave_pin_failure_reports_total', 'counter', 'Pin-failure reports accepted from devices.', t.accepted)
    .add('pinwave_telemetry_reports_dropped_total', 'counter', 'Pin-failure reports dropped, by reason.', by('reason', t.dropped))
    .add('pinwave_device_messages_dropped_total', 'counter', 'Device messages the gateway dropped, by reason.', by('reason', c.dropped))
    .add('pinwave_mqtt_connections_accepted_total', 'counter', 'MQTT connections accepted.', c.broker.connectionsAccepted)
    .add('pinwave_mqtt_connections_refused_total', 'counter', 'MQTT connections refused, by reason.', by('reason', c.broker.connectionsRefused))
    .add('pinwave_mqtt_acl_denied_total', 'counter', 'Device subscribes and publishes the ACL refused, by kind.', by('kind', c.broker.aclDenied))
    .add('pinwave_mqtt_payload_too_large_total', 'counter', 'Device publishes refused for their size.', c.broker.payloadTooLarge)
    .add('pinwave_mqtt_oversized_frames_total', 'counter', 'Connections closed for a packet over the frame limit.', c.broker.oversizedFrames)
    .add('pinwave_mqtt_protocol_errors_total', 'counter', 'Connections closed for a malformed MQTT packet.', c.broker.protocolErrors)
    .add('pinwave_mqtt_denial_disconnects_total', 'counter', 'Connections closed for too many refusals (ACL, size, frames).', c.broker.denialDisconnects)
    .add('pinwave_mqtt_idle_timeouts_total', 'counter', 'Connections closed for silence past their keepalive.', c.broker.idleTimeouts)
    .add('pinwave_mqtt_publish_errors_total', 'counter', 'Messages to devices the broker reported an error for.', c.broker.publishErrors)
    .add('pinwave_store_writes_total', 'counter', 'Writes of the fleet store (embedded: journal writes; PostgreSQL: transactions).', c.storeWrites)
    .add('pinwave_store_batches_total', 'counter', 'Change batches the store committed.', store.batches)
    .add('pinwave_store_fsyncs_total', 'counter', 'fsyncs of the journal, snapshots and directory (PostgreSQL: commits).', store.fsyncs)
    .add('pinwave_store_bytes_written_total', 'counter', 'Bytes the embedded store wrote to disk, snapshots included.', store.bytesWritten)
    .add('pinwave_store_snapshots_total', 'counter', 'Snapshots the embedded store wrote.', store.snapshots)
    .add('pinwave_store_snapshot_failures_total', 'counter', 'Snapshot attempts of the embedded store that failed (the snapshot write, a new journal for it, or a snapshot worker that died with it under way).', store.snapshotFailures)
    .add('pinwave_store_snapshot_worker_restarts_total', 'counter', 'New snapshot workers the embedded store attached, each after one died or could not load the files (a second later, doubling to a minute while they keep dying; the journal keeps everything meanwhile).', store.snapshotWorkerRestarts)
    .add('pinwave_store_snapshot_failing', 'gauge', '1 while the last snapshot attempt failed, until one is written (the journal keeps everything meanwhile; a restart replays more).', store.lastSnapshotError === null ? 0 : 1)
    .add('pinwave_store_journal_files_replayed', 'gauge', 'Journal files a restart of the embedded store replays: those since its newest snapshot.', store.journalsSinceSnapshot)
    .add('pinwave_store_writable', 'gauge', '1 while the store can write; 0 after a write failed, until one succeeds (GET /readyz answers 503 meanwhile).', store.writable ? 1 : 0)
    .add('pinwave_store_write_failures_total', 'counter', 'Store writes that failed (full disk, read-only file system, I/O error, database gone).', storeFailures)
    .add('pinwave_store_last_durable_write_age_seconds', 'gauge', 'Seconds since the store last made a batch durable (-1: none since the start).', store.lastDurableAt === null ? -1 : Math.max(0, (Date.now() - store.lastDurableAt) / 1000))
    .add('pinwave_store_queued_batches', 'gauge', 'Change batches waiting for their write now.', store.queued)
    .add('pinwave_device_messages_uncommitted_total', 'counter', 'Device messages the store could not commit: their connections were closed without a PUBACK.', c.broker.uncommitted)
    .add('pinwave_http_auth_refused_total', 'counter', 'API requests refused by the token check, by reason.', by('reason', authRefused))
    .add('pinwave_rollout_event_streams', 'gauge', 'Rollout event streams (server-sent events) open now.', streams())
    .add('pinwave_webhook_deliveries_total', 'counter', 'Rollout alerts to webhooks, by how they ended: delivered (2xx), failed (attempts spent, or a 4xx), dropped (queue full, or the gateway stopped).', by('outcome', w.deliveries))
    .add('pinwave_webhook_attempts_total', 'counter', 'Webhook delivery attempts, by result (ok, http_error, network_error, timeout).', by('result', w.attempts))
    .add('pinwave_webhook_queued', 'gauge', 'Alerts waiting for delivery, by webhook (its index in the config).', w.queued.map((n, i): [Labels, number] => [{ webhook: String(i) }, n]))
    .toString();
}

export async function metricsRoutes(app: FastifyInstance, o: MetricsRoutesOptions): Promise<void> {
  app.get(
    '/metrics',
    {
      config: { public: true },
      schema: {
        tags: ['meta'],
        summary: 'Prometheus metrics (text format 0.0.4); no token needed',
        response: { 200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    async (_request, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metricsText(o.gateway, o.authRefused, o.streams) + (await runtimeMetrics())),
  );
}
