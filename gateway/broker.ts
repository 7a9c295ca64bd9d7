// The embedded MQTT broker edge (docs/architecture.md §5): aedes 1.2 behind device authentication and the
// per-device ACL, listening on TCP and, optionally, TLS and WebSocket. It moves bytes and enforces
// who may say what; which bundle a device should hold is the gateway's business, fed by the hooks.
//
//   const broker = await DeviceBroker.start({
//     port: 0,
//     authenticate: (id, token) => tokenMatches(token, registry.get(id)?.tokenHash),
//     onMessage: (id, kind, payload) => gateway.deviceMessage(id, kind, payload),
//   });
//   await broker.publishToDevices(['meter-1', 'meter-2'], bundleBytes);   // QoS 1, never retained
//   await broker.close();
//
// What a device may do, and what happens when it does something else (observed with aedes 1.2):
// - CONNECT: client id = username = a device id, password = its token, and no will but `offline` on
//   its own `presence` topic (broker/acl.ts, docs/architecture.md §5). Anything else gets
//   a refusing CONNACK and the connection is closed [MQTT-3.2.2-5]. Authentication runs before
//   aedes registers the client, so a refused CONNECT with a live device's id never takes over
//   [MQTT-3.1.4-2] the live session; an accepted one does (the old connection is closed).
// - Keepalive: a device is held to at most `maxKeepaliveSeconds`; one asking for 0 (none) or more
//   gets that, and a connection silent for 1.5 times its keepalive is closed [MQTT-3.1.2-24].
// - SUBSCRIBE: only filters under `pinwave/v1/devices/<own id>/`; any other filter is granted
//   0x80 (failure, MQTT 3.1.1 §3.9.3) and the connection stays open, up to `maxDenials`.
// - PUBLISH: only to its own `state`, `ack`, `telemetry`, QoS 0 or 1, retain off, payload at most
//   `maxPayloadBytes`; and to its own `presence`, QoS 0 or 1, retained or not: the retain flag is
//   cleared, so nothing is stored, and the gateway does not read presence (it knows the sessions). A refused PUBLISH closes the connection without an ack: MQTT 3.1.1 has no
//   way to tell the client, so the server must ack it or close [MQTT-3.3.5-2]; closing is what a
//   misbehaving device should get.
// - Frames: a packet whose Remaining Length exceeds `maxPayloadBytes` + 1 KiB closes the
//   connection as soon as its header arrives, before the body is buffered (broker/frame-limit.ts).
// - Refusals of every kind are counted, and logged at a bounded rate (broker/denials.ts); a
//   connection that earns `maxDenials` of them is closed.
// - Delivery: a device receives only its own `bundle` topic, whatever its filter matches: MQTT
//   3.1.1 has no no-local flag, and echoing a device's own reports back to it would cost its link.
// - Presence: a device is connected exactly while one of its accepted connections is open
//   (broker/presence.ts says why aedes' own client table cannot tell).
// Broker sessions are not relied on: clean and persistent sessions are served alike, nothing is
// retained, and `publishToDevices` skips devices that are not connected (the gateway re-sends when
// they come back and report `state`), so aedes' in-memory offline queues do not grow for them.
//
// Load (measured with scripts/bench-sim and scripts/bench-gateway): aedes runs with `concurrency: 0`,
// so its emitter never queues a message. With its default (100 messages in flight), a wave's acks
// queue behind the bundles still being written, and the queue is drained by recursion, one level
// of stack per queued message: 12,000 devices acking one wave overflowed the stack and killed the
// process. Memory under a flood is bounded per connection instead: aedes reads a connection's next
// packets only once those before have been handled, and a device message is handled when
// `onMessage`'s promise settles, so a device publishing faster than the gateway can take its
// messages waits in its own TCP window.
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import { DEVICE_ID_MAX_LENGTH, isDeviceId } from './device-id.ts';
import { DEVICE_TOPIC_ROOT, type DeviceMessageKind, deviceTopic, parseDeviceTopic } from './topics.ts';
import { connectRefusal, ownPublishKind, publishDenialOf, subscribeAllowed, type AclDenial, type ConnectRefusal, type OwnPublishKind, type ReturnCode, type WillFields } from './broker/acl.ts';
import { DenialLog, type DenialKind } from './broker/denials.ts';
import { PRESENCE_KIND } from './broker/presence-topic.ts';
import { FrameLimit } from './broker/frame-limit.ts';
import { startListeners, type BrokerPorts, type BrokerTlsOptions, type BrokerWebSocketOptions, type Listeners } from './broker/listeners.ts';
import { Presence } from './broker/presence.ts';

export type { AclDenial, ConnectRefusal } from './broker/acl.ts';
export type { BrokerPorts, BrokerTlsOptions, BrokerWebSocketOptions } from './broker/listeners.ts';

/** A pino-compatible logger; the broker never passes it a token. */
export interface BrokerLogger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
}

export interface DeviceBrokerOptions {
  /**
   * Whether `token` is the device's current token. Called once per CONNECT after the client id,
   * username and will have been checked; the gateway looks the device up in its registry (and
   * should compare against a dummy hash for unknown ids, see `tokenMatches`). A throw or rejection
   * refuses the CONNECT with "server unavailable". Required.
   */
  authenticate: (deviceId: string, token: string) => boolean | Promise<boolean>;
  /** Address of every listener. Default `127.0.0.1`. */
  host?: string;
  /** TCP port of the plain MQTT listener; 0 picks a free one (see `ports`). Default 1883. */
  port?: number;
  /**
   * Whether the plain (unencrypted) MQTT listener runs. `false` needs `tls`: with neither, no
   * device could connect over MQTT/TCP, so start() refuses it. Default true.
   */
  plain?: boolean;
  /** MQTT over TLS. Default: off. */
  tls?: BrokerTlsOptions;
  /** MQTT over WebSocket (needs the `ws` package). Default: off. */
  websocket?: BrokerWebSocketOptions;
  /** Largest payload a device may publish, in bytes. Default 16384 (16 KiB). */
  maxPayloadBytes?: number;
  /** Publishes handed to aedes per turn of the event loop by `publishToDevices`. Default 256. */
  publishBatchSize?: number;
  /** How long a connection may stay open before its CONNECT arrives, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /**
   * The largest keepalive a device is held to, in seconds (1 to 65535). A CONNECT asking for 0
   * (no keepalive) or for more gets this one, and a connection that sends nothing for 1.5 times its
   * keepalive is closed [MQTT-3.1.2-24]: no connection stays open silent for longer than 1.5 times
   * this. Default 1200 (20 minutes: a silent device is closed after 30).
   */
  maxKeepaliveSeconds?: number;
  /** Refusals (forbidden filters or topics, oversized payloads) one connection may earn before it is closed. Default 100. */
  maxDenials?: number;
  /** How often the denial log writes its per-device summaries (broker/denials.ts), in ms. Default 10000. */
  denialLogWindowMs?: number;
  /** A new session of a device is up (CONNACK sent): once per session, a takeover's included. Default: none. */
  onConnect?: (deviceId: string) => void;
  /** The device's last open session has ended: it is not connected any more. Default: none. */
  onDisconnect?: (deviceId: string) => void;
  /** A device was granted a subscription (the gateway re-sends the bundle on its bundle topic). Default: none. */
  onSubscribe?: (deviceId: string, topicFilter: string) => void;
  /**
   * An authorized message from a device, called before its PUBACK. A returned promise holds the
   * PUBACK and the device's next packets back until it settles: resolved, the message is
   * acknowledged; rejected (the gateway could not commit it), the connection is closed without an
   * ack and the device sends it again. That also bounds the work a flooding device can queue.
   * Default: none.
   */
  onMessage?: (deviceId: string, kind: DeviceMessageKind, payload: Buffer) => void | Promise<void>;
  /** Default: no logging. */
  logger?: BrokerLogger;
}

export interface BrokerCounters {
  connectionsAccepted: number;
  connectionsRefused: Record<ConnectRefusal, number>;
  aclDenied: Record<AclDenial, number>;
  /** Device publishes refused for a payload over `maxPayloadBytes`. */
  payloadTooLarge: number;
  /** Connections closed for a packet over the frame limit (or a malformed length), before buffering it. */
  oversizedFrames: number;
  /** Connections closed for a malformed packet, or a packet the protocol does not allow where it came. */
  protocolErrors: number;
  /** Connections closed for earning `maxDenials` refusals. */
  denialDisconnects: number;
  /** Connections closed for silence past their keepalive (at most `maxKeepaliveSeconds`). */
  idleTimeouts: number;
  /** Authorized device messages passed to `onMessage`. */
  messagesIn: number;
  /** Presence messages devices published, wills included; not passed on (the broker knows the sessions). */
  presenceIn: number;
  /** Messages handed to aedes for devices. */
  messagesOut: number;
  /** Messages aedes reported an error for. */
  publishErrors: number;
  /** Device messages `onMessage` could not commit: their connections were closed without a PUBACK. */
  uncommitted: number;
}

/** Every counter at zero. */
export function emptyBrokerCounters(): BrokerCounters {
  return {
    connectionsAccepted: 0,
    connectionsRefused: {
      bad_client_id: 0,
      missing_credentials: 0,
      username_mismatch: 0,
      bad_credentials: 0,
      will: 0,
      disconnected: 0,
      auth_error: 0,
      shutting_down: 0,
      protocol: 0,
      other: 0,
    },
    aclDenied: { subscribe: 0, publish_topic: 0, publish_qos: 0, publish_retain: 0 },
    payloadTooLarge: 0,
    oversizedFrames: 0,
    protocolErrors: 0,
    denialDisconnects: 0,
    idleTimeouts: 0,
    messagesIn: 0,
    presenceIn: 0,
    messagesOut: 0,
    publishErrors: 0,
    uncommitted: 0,
  };
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 1883,
  maxPayloadBytes: 16 * 1024,
  publishBatchSize: 256,
  connectTimeoutMs: 10_000,
  maxKeepaliveSeconds: 1200,
  maxDenials: 100,
  denialLogWindowMs: 10_000,
};

// Room for the fixed and variable headers around a payload: a device topic is under 100 bytes,
// a CONNECT with a 64-character id and a token about 200.
const FRAME_OVERHEAD_BYTES = 1024;
// mqtt-packet's own ceiling; a larger setting could never be reached.
const MQTT_MAX_REMAINING_LENGTH = 268_435_455;
// MQTT 3.1.1 §3.1.2.10: the keepalive is a 16-bit number of seconds.
const MQTT_MAX_KEEPALIVE = 65_535;

const NO_LOG: BrokerLogger = { debug() {}, info() {}, warn() {} };

type AuthenticateDone = Parameters<Aedes['authenticate']>[3];

/** An error the broker itself closed a connection with: counted where it was decided, not again as a protocol error. */
class Refusal extends Error {}

// Errors aedes ends a connection with that are no fault of the client's protocol: counted
// elsewhere (idle timeouts, refusals) or not the client's doing at all.
const NOT_PROTOCOL_ERRORS = new Set(['keep alive timeout', 'connect did not arrive in time', 'drain timeout', 'connection closed']);

/** A malformed packet, or one out of protocol order: not a socket error, not one of ours, not a refused CONNECT (aedes marks those with errorCode). */
function isProtocolError(err: Error): boolean {
  return !(err instanceof Refusal) && !('code' in err) && !('errorCode' in err) && !NOT_PROTOCOL_ERRORS.has(err.message);
}

interface ConnectAttempt {
  clientId: string;
  will: WillFields | null;
  refusal?: ConnectRefusal;
  /** authenticate() said yes */
  authenticated: boolean;
  /** the device's disconnect epoch when its token was checked */
  epoch: number;
  /** refusals this connection has earned */
  denials: number;
}

export class DeviceBroker {
  readonly #aedes: Aedes;
  /** aedes' own publish: what the publish hook (see the constructor) routes */
  readonly #route: (packet: PublishPacket, client: Client | null, done: (err?: Error) => void) => void;
  readonly #options: DeviceBrokerOptions;
  readonly #log: BrokerLogger;
  readonly #limits: Limits;
  readonly #maxFrameBytes: number;
  readonly #counters: BrokerCounters = emptyBrokerCounters();
  // Each device's open sessions, by the identity of aedes' client object.
  readonly #presence = new Presence<Client>();
  readonly #attempts = new WeakMap<Client, ConnectAttempt>();
  // Bumped by disconnect(id): a CONNECT whose authenticate() straddles it is refused, and one
  // authenticated before it but not yet up is closed as it comes up, so revoking a device (or
  // rotating its token) cannot lose the race against a connect checked with the old registry.
  readonly #disconnectEpoch = new Map<string, number>();
  readonly #denials: DenialLog;
  readonly #denialTimer: NodeJS.Timeout;
  #listeners: Listeners | null = null;
  #closing: Promise<void> | null = null;
  // Shutdown (stopAccepting, settled): device publishes authorized, and so PUBACKed, that have not
  // been handed to onMessage and settled yet, and who waits for there to be none.
  #accepting = true;
  #taken = 0;
  #settledWaiters: Array<() => void> = [];

  /** Starts aedes and the listeners; resolves once every listener is bound. */
  static async start(options: DeviceBrokerOptions): Promise<DeviceBroker> {
    const broker = new DeviceBroker(options, validated(options));
    try {
      await broker.#aedes.listen();
      broker.#listeners = await broker.#listen();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  private constructor(options: DeviceBrokerOptions, limits: Limits) {
    this.#options = options;
    this.#log = options.logger ?? NO_LOG;
    this.#limits = limits;
    this.#maxFrameBytes = Math.min(limits.maxPayloadBytes + FRAME_OVERHEAD_BYTES, MQTT_MAX_REMAINING_LENGTH);
    this.#denials = new DenialLog({ logger: this.#log });
    this.#denialTimer = setInterval(() => this.#denials.flush(), limits.denialLogWindowMs);
    this.#denialTimer.unref();
    const aedes = new Aedes({
      // aedes applies its 23-character limit to MQTT 3.1 client ids; device ids go to 64.
      maxClientsIdLength: DEVICE_ID_MAX_LENGTH,
      // Never queue in the emitter (see the header): nothing is drained by recursion.
      concurrency: 0,
      connectTimeout: limits.connectTimeoutMs,
      preConnect: (client, packet, done) => {
        const will = packet.will ? { topic: packet.will.topic, qos: packet.will.qos ?? 0, retain: packet.will.retain ?? false, payload: Buffer.from(packet.will.payload ?? '') } : null;
        this.#attempts.set(client, { clientId: packet.clientId, will, authenticated: false, epoch: 0, denials: 0 });
        // [MQTT-3.1.2-24] aedes closes a connection silent for 1.5 × the keepalive it reads from
        // this packet; MQTT 3.1.1 cannot tell a device the server's limit, so it is applied here.
        const keepalive = packet.keepalive ?? 0;
        if (keepalive === 0 || keepalive > limits.maxKeepaliveSeconds) packet.keepalive = limits.maxKeepaliveSeconds;
        done(null, true);
      },
      authenticate: (client, username, password, done) => this.#authenticate(client, username, password, done),
      authorizeSubscribe: (client, sub, done) => this.#authorizeSubscribe(client, sub, done),
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeForward: (client, packet) => this.#authorizeForward(client, packet),
      // Device messages were handled in authorizePublish, before their PUBACK; nothing is left to do here.
      published: (_packet, _client, done) => done(null),
    });
    this.#aedes = aedes;
    // Only bundles reach anyone: authorizeForward hands a device its own bundle topic alone, and
    // nothing else subscribes. So a device's own messages (handled in authorizePublish, before their
    // PUBACK), wills, and aedes' `$SYS` announcements of each connect and subscription are finished
    // here instead of being matched against every subscription and persistent session on the way to
    // nobody; a bundle goes the whole way (measured with scripts/bench-gateway, docs/architecture.md §5).
    // So does aedes' heartbeat (once a minute): it is how aedes knows this broker is alive, and a
    // broker it does not know to be alive has its stored wills published by aedes' periodic sweep,
    // those of devices still connected included.
    // aedes' own calls pass the sending client (a device's message, its will); its typed form does not
    type Publish = (packet: PublishPacket, client: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => void;
    const route = aedes.publish.bind(aedes) as unknown as Publish;
    this.#route = route;
    const heartbeat = `$SYS/${aedes.id}/heartbeat`;
    const publish: Publish = (packet, client, done) => {
      const cb = typeof client === 'function' ? client : done;
      const topic = packet.topic;
      // endsWith first: a device's own message (every PUBLISH it makes ends here) is told apart without parsing its topic
      if (topic === heartbeat || (topic.endsWith(BUNDLE_SUFFIX) && parseDeviceTopic(topic)?.kind === 'bundle')) return route(packet, typeof client === 'function' ? null : client, cb ?? noop);
      // asynchronous, as aedes' own path is: a packet's end never recurses into the next read
      if (cb) queueMicrotask(cb);
    };
    aedes.publish = publish as unknown as typeof aedes.publish;
    aedes.on('connackSent', (packet, client) => this.#connackSent(packet.returnCode ?? 0, client));
    aedes.on('clientReady', (client) => this.#sessionUp(client));
    aedes.on('subscribe', (subs, client) => {
      for (const sub of subs) {
        // 128 marks a filter the ACL refused (SUBACK failure)
        if ((sub.qos as number) === 128) continue;
        this.#hook('onSubscribe', () => this.#options.onSubscribe?.(client.id, sub.topic));
      }
    });
    aedes.on('keepaliveTimeout', (client) => {
      this.#counters.idleTimeouts++;
      this.#log.debug({ deviceId: client.id }, 'device connection closed: silent past its keepalive');
    });
    aedes.on('clientError', (client, err) => this.#connectionError(client, err));
    aedes.on('connectionError', (client, err) => this.#connectionError(client, err));
    // aedes emits 'error' for persistence faults; unhandled, it would crash the gateway.
    (aedes as EventEmitter).on('error', (err: Error) => this.#log.warn({ err: err.message }, 'broker error'));
  }

  /** The bound port of each listener (the real one when 0 was asked for). */
  get ports(): BrokerPorts {
    return { ...this.#listeners?.ports };
  }

  /** A snapshot of the counters. */
  counters(): BrokerCounters {
    const c = this.#counters;
    return { ...c, connectionsRefused: { ...c.connectionsRefused }, aclDenied: { ...c.aclDenied } };
  }

  /** True while device `id` has an open session here. */
  isConnected(id: string): boolean {
    return this.#presence.has(id);
  }

  /** How many devices have an open session here. */
  connectedCount(): number {
    return this.#presence.size;
  }

  /**
   * Publishes `payload` on the `bundle` topic of each connected device in `ids`, QoS 1, never
   * retained, `publishBatchSize` per turn of the event loop so a wave of 10,000 does not stall it.
   * Devices not connected are skipped. Resolves with how many were handed to aedes, once all are;
   * throws a TypeError before publishing anything if an id is not a device id.
   */
  async publishToDevices(ids: readonly string[], payload: Buffer): Promise<number> {
    const topics = ids.map((id) => deviceTopic(id, 'bundle'));
    const batch = this.#limits.publishBatchSize;
    let handed = 0;
    for (let start = 0; start < ids.length; start += batch) {
      if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#closing) throw new Error('broker is closed');
      const end = Math.min(start + batch, ids.length);
      for (let i = start; i < end; i++) {
        if (!this.#presence.has(ids[i])) continue;
        this.#publish(topics[i], payload);
        handed++;
      }
    }
    return handed;
  }

  /** Publishes `payload` on device `id`'s `bundle` topic (QoS 1, not retained); false when it is not connected. */
  publishToDevice(id: string, payload: Buffer): boolean {
    const topic = deviceTopic(id, 'bundle');
    if (this.#closing) throw new Error('broker is closed');
    if (!this.#presence.has(id)) return false;
    this.#publish(topic, payload);
    return true;
  }

  /**
   * Closes every session of device `id` at once (for revocation and token rotation), and refuses
   * any CONNECT for it whose authentication is in flight. True when a session was closed.
   */
  disconnect(id: string): boolean {
    this.#disconnectEpoch.set(id, (this.#disconnectEpoch.get(id) ?? 0) + 1);
    const sessions = this.#presence.sessions(id);
    if (sessions.length === 0) return false;
    this.#log.info({ deviceId: id, sessions: sessions.length }, 'device disconnected by the gateway');
    for (const client of sessions) {
      this.#end(client);
      this.#sessionDown(client);
    }
    return true;
  }

  /**
   * The first step of a shutdown: closes the listeners and refuses, from now on, every CONNECT
   * (CONNACK 3, server unavailable), SUBSCRIBE and PUBLISH (the connection is closed unacked, so
   * the device sends it again to the next gateway). Sessions stay open, and what was taken before
   * still reaches `onMessage`: `settled()` says when it all has.
   */
  stopAccepting(): void {
    if (!this.#accepting) return;
    this.#accepting = false;
    void this.#listeners?.stopListening();
    this.#log.info({ taken: this.#taken }, 'broker stopped accepting device messages');
  }

  /** Resolves once every device publish authorized so far (PUBACKed, for QoS 1) has been handed to `onMessage` and settled. */
  settled(): Promise<void> {
    if (this.#taken === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settledWaiters.push(resolve));
  }

  #untake(): void {
    if (this.#taken > 0) this.#taken--;
    if (this.#taken > 0 || this.#settledWaiters.length === 0) return;
    const waiters = this.#settledWaiters;
    this.#settledWaiters = [];
    for (const w of waiters) w();
  }

  /** How many retained messages aedes holds: none, whatever devices send (docs/architecture.md §5). */
  async retainedCount(): Promise<number> {
    let n = 0;
    // aedes' types leave its persistence out; it is there (aedes-persistence's memory store)
    const persistence = (this.#aedes as unknown as { persistence: { createRetainedStream(pattern: string): AsyncIterable<unknown> } }).persistence;
    for await (const _ of persistence.createRetainedStream('#')) n++;
    return n;
  }

  /** Closes the listeners, every connection (authenticated or not) and aedes. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearInterval(this.#denialTimer);
    await new Promise<void>((resolve) => this.#aedes.close(() => resolve()));
    await this.#listeners?.close();
    this.#denials.flush();
  }

  #listen(): Promise<Listeners> {
    const o = this.#options;
    return startListeners({
      host: o.host ?? DEFAULTS.host,
      ...(o.plain !== false && { tcp: { port: o.port ?? DEFAULTS.port } }),
      tls: o.tls,
      websocket: o.websocket,
      maxFrameBytes: this.#maxFrameBytes,
      accept: (stream, req) => this.#accept(stream, req),
      log: this.#log,
    });
  }

  #accept(stream: Duplex, req?: IncomingMessage): void {
    if (this.#closing || !this.#accepting) {
      stream.destroy();
      return;
    }
    const client = this.#aedes.handle(stream, req);
    // The socket's end is the session's end, whatever aedes' client table says (broker/presence.ts).
    stream.once('close', () => this.#sessionDown(client));
    // aedes reads with 'readable'/read(); a 'data' listener added after it sees every chunk as it is
    // read without taking over the flow, so the frame limit costs no extra stream in the data path.
    const frames = new FrameLimit(this.#maxFrameBytes);
    stream.on('data', (chunk: Buffer) => {
      if (frames.admit(chunk)) return;
      this.#counters.oversizedFrames++;
      this.#denials.record(this.#deviceOf(client), 'oversized_frame', { limit: this.#maxFrameBytes }, 'connection closed: MQTT packet over the frame limit');
      stream.destroy(new Refusal(`MQTT packet over ${this.#maxFrameBytes} bytes or malformed length`));
    });
  }

  /** The device a connection authenticated as, or undefined (its client id is attacker-chosen text until then). */
  #deviceOf(client: Client): string | undefined {
    return this.#attempts.get(client)?.authenticated ? client.id : undefined;
  }

  #authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: AuthenticateDone): void {
    const attempt = this.#attempts.get(client) ?? { clientId: client.id, will: null, authenticated: false, epoch: 0, denials: 0 };
    this.#attempts.set(client, attempt);
    const refuse = (refusal: ConnectRefusal, returnCode: ReturnCode) => {
      attempt.refusal = refusal;
      const returnCodeOf = returnCode as number as AuthenticateError['returnCode'];
      done(Object.assign(new Refusal(`CONNECT refused: ${refusal}`), { returnCode: returnCodeOf }), false);
    };
    // aedes names a client that sent an empty id itself; only the id the device sent counts.
    const early = connectRefusal({ clientId: attempt.clientId, assignedId: client.id, will: attempt.will }, username, password);
    if (early) return refuse(early.refusal, early.returnCode);
    if (!this.#accepting) return refuse('shutting_down', 3);
    const id = attempt.clientId;
    const epoch = this.#disconnectEpoch.get(id) ?? 0;
    attempt.epoch = epoch;
    let verdict: Promise<boolean>;
    try {
      verdict = Promise.resolve(this.#options.authenticate(id, password!.toString('utf8')));
    } catch (err) {
      verdict = Promise.reject(err);
    }
    verdict.then(
      (ok) => {
        if ((this.#disconnectEpoch.get(id) ?? 0) !== epoch) return refuse('disconnected', 5);
        if (!this.#accepting) return refuse('shutting_down', 3);
        if (ok !== true) return refuse('bad_credentials', 4);
        attempt.authenticated = true;
        done(null, true);
      },
      (err: unknown) => {
        this.#log.warn({ deviceId: id, err: err instanceof Error ? err.message : String(err) }, 'authenticate failed');
        refuse('auth_error', 3);
      },
    )
      // a throw from aedes' continuation must not become an unhandled rejection (fatal in Node 20)
      .catch((err: unknown) => this.#log.warn({ deviceId: id, err: String(err) }, 'CONNECT handling failed'));
  }

  #connackSent(returnCode: number, client: Client): void {
    if (returnCode === 0) {
      this.#counters.connectionsAccepted++;
      return;
    }
    const attempt = this.#attempts.get(client);
    const refusal = attempt?.refusal ?? (returnCode === 1 ? 'protocol' : 'other');
    this.#counters.connectionsRefused[refusal]++;
    // The client id is logged only when it is a device id: it is attacker-chosen text.
    const deviceId = isDeviceId(attempt?.clientId) ? attempt.clientId : undefined;
    this.#denials.record(deviceId, 'connect_refused', { refusal, returnCode }, 'connection refused');
  }

  /** CONNACK 0 is out: the session is up, unless its connection has gone meanwhile. */
  #sessionUp(client: Client): void {
    const attempt = this.#attempts.get(client);
    // aedes goes on with a CONNECT whose connection closed after its token was checked, registers
    // it and announces it: a connection that is closed is no session.
    if (!attempt?.authenticated || client.closed || client.conn.destroyed) return;
    const id = client.id;
    // disconnect(id) came after this connection's token was checked: it does not start.
    if ((this.#disconnectEpoch.get(id) ?? 0) !== attempt.epoch) {
      this.#log.info({ deviceId: id }, 'device disconnected by the gateway');
      this.#end(client);
      return;
    }
    const { others } = this.#presence.open(id, client);
    // [MQTT-3.1.4-2] a device's new session ends the one before. aedes closes it when its own
    // client table is right; this closes it when that table had lost it.
    for (const old of others) {
      this.#end(old);
      this.#presence.close(id, old);
    }
    this.#log.debug({ deviceId: id, clean: client.clean }, 'device connected');
    this.#hook('onConnect', () => this.#options.onConnect?.(id));
  }

  /** A connection has closed (or the gateway closed it): the device is gone when it was its last. */
  #sessionDown(client: Client): void {
    if (!this.#presence.close(client.id, client)) return;
    this.#log.debug({ deviceId: client.id }, 'device disconnected');
    this.#hook('onDisconnect', () => this.#options.onDisconnect?.(client.id));
  }

  /** Cuts a connection in this turn: close() alone stops reading at once but destroys the socket only after its unsubscribes settle. */
  #end(client: Client): void {
    client.close();
    client.conn.destroy();
  }

  #connectionError(client: Client, err: Error): void {
    if (!isProtocolError(err)) {
      this.#log.debug({ deviceId: this.#deviceOf(client), err: err.message }, 'device connection closed');
      return;
    }
    this.#counters.protocolErrors++;
    this.#denials.record(this.#deviceOf(client), 'protocol_error', { err: err.message.slice(0, 200) }, 'connection closed: protocol error');
  }

  #authorizeSubscribe(client: Client, sub: Subscription, done: Parameters<Aedes['authorizeSubscribe']>[2]): void {
    // A connection closed for its refusals: the rest of its SUBSCRIBE is not looked at.
    if (client.closed) return done(new Refusal('connection closed for its refusals'), null);
    // Stopping: nothing new is subscribed (granted 0x80), and no bundle is sent any more anyway.
    if (!this.#accepting) return done(null, null);
    if (subscribeAllowed(client.id, sub.topic)) return done(null, sub);
    this.#counters.aclDenied.subscribe++;
    this.#deny(client, 'subscribe', { topic: sub.topic }, 'ACL denied');
    // a null subscription is granted 0x80 (failure) in the SUBACK; the connection stays open
    done(null, null);
  }

  /**
   * The one place where a device's PUBLISH is decided. aedes calls it first, before anything else
   * happens to the packet: before the PUBACK of a QoS 1 message is written, before it is published
   * and reaches `onMessage`. So whatever must hold before a device is told "accepted" — the ACL
   * and size checks here, or a store making the message durable first — goes here, and done(null)
   * is called only once it holds. An error closes the connection without an ack [MQTT-3.3.5-2].
   */
  #authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    // aedes passes no client only for wills of a dead broker (a cluster); devices' wills come with theirs.
    if (!client) return done(new Refusal('publish without a device refused'));
    if (!this.#accepting) return done(new Refusal('gateway shutting down'));
    const size = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
    // The topic is classified once, here: what reaches onMessage is this kind under this client's id.
    const kind = ownPublishKind(client.id, packet.topic);
    const denial = publishDenialOf(kind, { qos: packet.qos, retain: packet.retain, size }, this.#limits.maxPayloadBytes);
    if (denial === null) {
      // Only presence gets here retained; it is passed on, never stored (docs/architecture.md §5).
      packet.retain = false;
      return this.#deviceMessage(client.id, kind!, packet, done);
    }
    if (denial === 'payload_too_large') {
      this.#counters.payloadTooLarge++;
      this.#deny(client, denial, { size, limit: this.#limits.maxPayloadBytes }, 'publish refused: payload too large');
    } else {
      this.#counters.aclDenied[denial]++;
      this.#deny(client, denial, { topic: packet.topic }, 'ACL denied');
    }
    done(new Refusal(`publish refused: ${denial}`));
  }

  /** Counts and logs (bounded) one refusal; the connection that earns `maxDenials` of them is closed. */
  #deny(client: Client, kind: DenialKind, fields: Record<string, unknown>, msg: string): void {
    this.#denials.record(client.id, kind, fields, msg);
    const attempt = this.#attempts.get(client);
    if (!attempt || ++attempt.denials !== this.#limits.maxDenials) return;
    this.#counters.denialDisconnects++;
    this.#denials.record(client.id, 'disconnected', { denials: attempt.denials }, 'device disconnected: too many refusals');
    this.#end(client);
  }

  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    return isBundleTopicOf(client.id, packet.topic) ? packet : null;
  }

  /**
   * A device's own message, before its PUBACK (docs/architecture.md §7), `kind` as authorizePublish
   * classified its topic: `done()` once `onMessage` resolved (what it changed is committed),
   * `done(err)` when it rejected, which closes the connection without an ack, so the device sends
   * the message again [MQTT-4.3.2]. Taken until then: a shutdown waits for it (settled()).
   */
  #deviceMessage(id: string, kind: OwnPublishKind, packet: PublishPacket, done: (err?: Error | null) => void): void {
    if (kind === PRESENCE_KIND) {
      this.#counters.presenceIn++;
      return done(null);
    }
    this.#counters.messagesIn++;
    this.#taken++;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    let result: void | Promise<void>;
    try {
      result = this.#options.onMessage?.(id, kind, payload);
    } catch (err) {
      result = Promise.reject(err);
    }
    if (!(result instanceof Promise)) {
      this.#untake();
      return done(null);
    }
    result.then(
      () => {
        this.#untake();
        done(null);
      },
      (err: unknown) => {
        this.#untake();
        this.#counters.uncommitted++;
        this.#log.warn({ deviceId: id, kind, err: err instanceof Error ? err.message : String(err) }, 'device message not committed: connection closed without PUBACK');
        done(new Refusal('device message not committed'));
      },
    );
  }

  #publish(topic: string, payload: Buffer): void {
    this.#counters.messagesOut++;
    // aedes' own publish, not the hook in front of it: a bundle of the gateway's own is routed without its topic being looked at again
    this.#route({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, null, (err) => {
      if (!err) return;
      this.#counters.publishErrors++;
      this.#log.warn({ topic, err: err.message }, 'publish to device failed');
    });
  }

  // A hook that throws or rejects is logged, never allowed to break the broker's packet flow; a
  // returned promise comes back as one that always fulfils.
  #hook(name: string, call: () => void | Promise<void>): Promise<void> | undefined {
    try {
      const result = call();
      if (result instanceof Promise) {
        return result.then(
          () => undefined,
          (err: unknown) => this.#log.warn({ hook: name, err: String(err) }, 'broker hook failed'),
        );
      }
    } catch (err) {
      this.#log.warn({ hook: name, err: String(err) }, 'broker hook failed');
    }
    return undefined;
  }
}

interface Limits {
  maxPayloadBytes: number;
  publishBatchSize: number;
  connectTimeoutMs: number;
  maxKeepaliveSeconds: number;
  maxDenials: number;
  denialLogWindowMs: number;
}

function validated(options: DeviceBrokerOptions): Limits {
  if (typeof options.authenticate !== 'function') throw new TypeError('expected authenticate to be a function');
  const limits: Limits = {
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes,
    publishBatchSize: options.publishBatchSize ?? DEFAULTS.publishBatchSize,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    maxKeepaliveSeconds: options.maxKeepaliveSeconds ?? DEFAULTS.maxKeepaliveSeconds,
    maxDenials: options.maxDenials ?? DEFAULTS.maxDenials,
    denialLogWindowMs: options.denialLogWindowMs ?? DEFAULTS.denialLogWindowMs,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new TypeError(`expected ${name} to be a positive integer, got ${value}`);
    }
  }
  if (limits.maxKeepaliveSeconds > MQTT_MAX_KEEPALIVE) {
    throw new TypeError(`expected maxKeepaliveSeconds to be at most ${MQTT_MAX_KEEPALIVE} (MQTT's keepalive is 16 bits), got ${limits.maxKeepaliveSeconds}`);
  }
  if (options.plain === false && !options.tls) {
    throw new TypeError('expected tls when plain is false: with neither listener no device could connect over MQTT/TCP');
  }
  for (const [name, port] of [
    ['port', options.port],
    ['tls.port', options.tls?.port],
    ['websocket.port', options.websocket?.port],
  ] as const) {
    if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
      throw new TypeError(`expected ${name} to be an integer from 0 to 65535, got ${port}`);
    }
  }
  return limits;
}

const noop = (): void => undefined;

const BUNDLE_SUFFIX = '/bundle';

/** Whether `topic` is device `id`'s bundle topic (deviceTopic(id, 'bundle')), compared in place: it is asked once per bundle delivered. */
function isBundleTopicOf(id: string, topic: string): boolean {
  return topic.length === DEVICE_TOPIC_ROOT.length + id.length + BUNDLE_SUFFIX.length && topic.endsWith(BUNDLE_SUFFIX) && topic.startsWith(DEVICE_TOPIC_ROOT) && topic.startsWith(id, DEVICE_TOPIC_ROOT.length) && isDeviceId(id);
}
