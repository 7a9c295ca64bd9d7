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
// - CONNECT: client id = username = a device id, password = its token, no will. Anything else gets
//   a refusing CONNACK and the connection is closed [MQTT-3.2.2-5]. Authentication runs before
//   aedes registers the client, so a refused CONNECT with a live device's id never takes over
//   [MQTT-3.1.4-2] the live session; an accepted one does (the old connection is closed first).
// - SUBSCRIBE: only filters under `pinwave/v1/devices/<own id>/`; any other filter is granted
//   0x80 (failure, MQTT 3.1.1 §3.9.3) and the connection stays open.
// - PUBLISH: only to its own `state`, `ack`, `telemetry`, QoS 0 or 1, retain off, payload at most
//   `maxPayloadBytes`. A refused PUBLISH closes the connection without an ack: MQTT 3.1.1 has no
//   way to tell the client, so the server must ack it or close [MQTT-3.3.5-2]; closing is what a
//   misbehaving device should get.
// - Frames: a packet whose Remaining Length exceeds `maxPayloadBytes` + 1 KiB closes the
//   connection as soon as its header arrives, before the body is buffered (aedes has no packet
//   size limit and would otherwise hold up to 256 MiB per connection, even before CONNECT).
// - Delivery: a device receives only its own `bundle` topic, whatever its filter matches: MQTT
//   3.1.1 has no no-local flag, and echoing a device's own reports back to it would cost its link.
// Broker sessions are not relied on: clean and persistent sessions are served alike, nothing is
// retained, and `publishToDevices` skips devices that are not connected (the gateway re-sends when
// they come back and report `state`), so aedes' in-memory offline queues do not grow for them.
import type { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import { DEVICE_ID_MAX_LENGTH, isDeviceId } from './device-id.ts';
import {
  type DeviceMessageKind,
  deviceTopic,
  isDeviceMessageKind,
  isFilterWithinDevice,
  parseDeviceTopic,
} from './topics.ts';

/** A pino-compatible logger; the broker never passes it a token. */
export interface BrokerLogger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
}

export interface BrokerTlsOptions extends TlsOptions {
  /** TCP port of the MQTT-over-TLS listener; 0 picks a free one. Default 8883. */
  port?: number;
  /** PEM private key of the gateway's server certificate. Required. */
  key: NonNullable<TlsOptions['key']>;
  /** PEM server certificate (chain). Required. */
  cert: NonNullable<TlsOptions['cert']>;
}

export interface BrokerWebSocketOptions {
  /** TCP port of the MQTT-over-WebSocket listener; 0 picks a free one. Default 8083. */
  port?: number;
  /** HTTP path that accepts the upgrade. Default `/mqtt`. */
  path?: string;
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
  /** A device's session is up (CONNACK sent). Default: none. */
  onConnect?: (deviceId: string) => void;
  /** A device's session that `onConnect` announced has ended. Default: none. */
  onDisconnect?: (deviceId: string) => void;
  /** A device was granted a subscription (the gateway re-sends the bundle on its bundle topic). Default: none. */
  onSubscribe?: (deviceId: string, topicFilter: string) => void;
  /** An authorized message from a device; a returned promise is not awaited (its rejection is logged). Default: none. */
  onMessage?: (deviceId: string, kind: DeviceMessageKind, payload: Buffer) => void | Promise<void>;
  /** Default: no logging. */
  logger?: BrokerLogger;
}

/** Why a CONNECT was refused. */
export type ConnectRefusal =
  | 'bad_client_id' //      not a device id (CONNACK 2, identifier rejected)
  | 'missing_credentials' // no username or no password (4)
  | 'username_mismatch' //  username is not the client id (4)
  | 'bad_credentials' //    authenticate() said no: unknown device or wrong token (4)
  | 'will' //               a will is a publish made later on the device's behalf; devices have none (5)
  | 'disconnected' //       disconnect(id) was called while authenticate() was running (5)
  | 'auth_error' //         authenticate() threw (3, server unavailable)
  | 'shutting_down' //      stopAccepting() was called: the gateway is stopping (3, server unavailable)
  | 'protocol' //           not MQTT 3.1/3.1.1, refused by aedes (1)
  | 'other'; //             any other refusing CONNACK aedes sent

/** What a device tried that the ACL refused. */
export type AclDenial = 'subscribe' | 'publish_topic' | 'publish_qos' | 'publish_retain';

export interface BrokerCounters {
  connectionsAccepted: number;
  connectionsRefused: Record<ConnectRefusal, number>;
  aclDenied: Record<AclDenial, number>;
  /** Device publishes refused for a payload over `maxPayloadBytes`. */
  payloadTooLarge: number;
  /** Connections closed for a packet over the frame limit (or a malformed length), before buffering it. */
  oversizedFrames: number;
  /** Authorized device messages passed to `onMessage`. */
  messagesIn: number;
  /** Messages handed to aedes for devices. */
  messagesOut: number;
  /** Messages aedes reported an error for. */
  publishErrors: number;
}

export interface BrokerPorts {
  tcp: number;
  tls?: number;
  ws?: number;
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 1883,
  tlsPort: 8883,
  wsPort: 8083,
  wsPath: '/mqtt',
  maxPayloadBytes: 16 * 1024,
  publishBatchSize: 256,
  connectTimeoutMs: 10_000,
};

// Room for the fixed and variable headers around a payload: a device topic is under 100 bytes,
// a CONNECT with a 64-character id and a token about 200.
const FRAME_OVERHEAD_BYTES = 1024;
// mqtt-packet's own ceiling; a larger setting could never be reached.
const MQTT_MAX_REMAINING_LENGTH = 268_435_455;

const NO_LOG: BrokerLogger = { debug() {}, info() {}, warn() {} };

// CONNACK return codes a refusal may carry (MQTT 3.1.1 §3.2.2.3).
type ReturnCode = 2 | 3 | 4 | 5;
type AuthenticateDone = Parameters<Aedes['authenticate']>[3];

interface ConnectAttempt {
  clientId: string;
  hasWill: boolean;
  refusal?: ConnectRefusal;
}

export class DeviceBroker {
  readonly #aedes: Aedes;
  readonly #options: DeviceBrokerOptions;
  readonly #log: BrokerLogger;
  readonly #maxPayloadBytes: number;
  readonly #maxFrameBytes: number;
  readonly #batchSize: number;
  readonly #counters: BrokerCounters = {
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
    messagesIn: 0,
    messagesOut: 0,
    publishErrors: 0,
  };
  // Authenticated sessions by device id (from aedes' 'client' event, so a session that is still
  // being set up can be disconnected too).
  readonly #clients = new Map<string, Client>();
  // Sessions that onConnect announced, so onDisconnect pairs with it.
  readonly #announced = new WeakSet<Client>();
  readonly #attempts = new WeakMap<Client, ConnectAttempt>();
  // Bumped by disconnect(id): a CONNECT whose authenticate() straddles it is refused, so revoking
  // a device cannot lose the race against a connect that was checked with the old registry.
  readonly #disconnectEpoch = new Map<string, number>();
  readonly #servers: Array<NetServer | HttpServer> = [];
  readonly #sockets = new Set<Socket>();
  #closeWebSockets: (() => void) | null = null;
  #ports: BrokerPorts = { tcp: 0 };
  #closing: Promise<void> | null = null;
  // Shutdown (stopAccepting, settled): device publishes authorized, and so PUBACKed, whose
  // `published` hook has not run yet, and who waits for there to be none.
  #accepting = true;
  #taken = 0;
  #settledWaiters: Array<() => void> = [];
  #serversClosed: Promise<void>[] | null = null;

  /** Starts aedes and the listeners; resolves once every listener is bound. */
  static async start(options: DeviceBrokerOptions): Promise<DeviceBroker> {
    const broker = new DeviceBroker(options, validated(options));
    try {
      await broker.#aedes.listen();
      await broker.#listen();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  private constructor(options: DeviceBrokerOptions, limits: Limits) {
    this.#options = options;
    this.#log = options.logger ?? NO_LOG;
    this.#maxPayloadBytes = limits.maxPayloadBytes;
    this.#maxFrameBytes = Math.min(limits.maxPayloadBytes + FRAME_OVERHEAD_BYTES, MQTT_MAX_REMAINING_LENGTH);
    this.#batchSize = limits.publishBatchSize;
    const aedes = new Aedes({
      // aedes applies its 23-character limit to MQTT 3.1 client ids; device ids go to 64.
      maxClientsIdLength: DEVICE_ID_MAX_LENGTH,
      connectTimeout: limits.connectTimeoutMs,
      preConnect: (client, packet, done) => {
        this.#attempts.set(client, { clientId: packet.clientId, hasWill: packet.will != null });
        done(null, true);
      },
      authenticate: (client, username, password, done) => this.#authenticate(client, username, password, done),
      authorizeSubscribe: (client, sub, done) => this.#authorizeSubscribe(client, sub, done),
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeForward: (client, packet) => this.#authorizeForward(client, packet),
      published: (packet, client, done) => {
        if (client) {
          this.#deviceMessage(client, packet);
          this.#untake();
        }
        done(null);
      },
    });
    this.#aedes = aedes;
    aedes.on('connackSent', (packet, client) => this.#connackSent(packet.returnCode ?? 0, client));
    aedes.on('client', (client) => this.#clients.set(client.id, client));
    aedes.on('clientReady', (client) => {
      this.#announced.add(client);
      this.#log.debug({ deviceId: client.id, clean: client.clean }, 'device connected');
      this.#hook('onConnect', () => this.#options.onConnect?.(client.id));
    });
    aedes.on('clientDisconnect', (client) => {
      if (this.#clients.get(client.id) === client) this.#clients.delete(client.id);
      if (!this.#announced.has(client)) return;
      this.#announced.delete(client);
      this.#log.debug({ deviceId: client.id }, 'device disconnected');
      this.#hook('onDisconnect', () => this.#options.onDisconnect?.(client.id));
    });
    aedes.on('subscribe', (subs, client) => {
      for (const sub of subs) {
        // 128 marks a filter the ACL refused (SUBACK failure)
        if ((sub.qos as number) === 128) continue;
        this.#hook('onSubscribe', () => this.#options.onSubscribe?.(client.id, sub.topic));
      }
    });
    aedes.on('clientError', (client, err) => {
      this.#log.debug({ deviceId: client.id, err: err.message }, 'device connection closed on error');
    });
    aedes.on('connectionError', (_client, err) => {
      this.#log.debug({ err: err.message }, 'connection closed before CONNACK');
    });
    // aedes emits 'error' for persistence faults; unhandled, it would crash the gateway.
    (aedes as EventEmitter).on('error', (err: Error) => this.#log.warn({ err: err.message }, 'broker error'));
  }

  /** The bound port of each listener (the real one when 0 was asked for). */
  get ports(): BrokerPorts {
    return { ...this.#ports };
  }

  /** A snapshot of the counters. */
  counters(): BrokerCounters {
    const c = this.#counters;
    return { ...c, connectionsRefused: { ...c.connectionsRefused }, aclDenied: { ...c.aclDenied } };
  }

  /** True while device `id` has an authenticated session here. */
  isConnected(id: string): boolean {
    return this.#clients.has(id);
  }

  /** How many devices have an authenticated session here. */
  connectedCount(): number {
    return this.#clients.size;
  }

  /**
   * Publishes `payload` on the `bundle` topic of each connected device in `ids`, QoS 1, never
   * retained, `publishBatchSize` per turn of the event loop so a wave of 10,000 does not stall it.
   * Devices not connected are skipped. Resolves with how many were handed to aedes, once all are;
   * throws a TypeError before publishing anything if an id is not a device id.
   */
  async publishToDevices(ids: readonly string[], payload: Buffer): Promise<number> {
    const topics = ids.map((id) => deviceTopic(id, 'bundle'));
    let handed = 0;
    for (let start = 0; start < ids.length; start += this.#batchSize) {
      if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#closing) throw new Error('broker is closed');
      const end = Math.min(start + this.#batchSize, ids.length);
      for (let i = start; i < end; i++) {
        if (!this.#clients.has(ids[i])) continue;
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
    if (!this.#clients.has(id)) return false;
    this.#publish(topic, payload);
    return true;
  }

  /**
   * Closes device `id`'s connection at once (for revocation), and refuses any CONNECT for it whose
   * authentication is in flight. True when a session was closed.
   */
  disconnect(id: string): boolean {
    this.#disconnectEpoch.set(id, (this.#disconnectEpoch.get(id) ?? 0) + 1);
    const client = this.#clients.get(id);
    if (!client) return false;
    this.#log.info({ deviceId: id }, 'device disconnected by the gateway');
    // close() stops reading at once but destroys the socket only after its unsubscribes settle;
    // destroying it here too means a revoked device's link is cut in this turn.
    client.close();
    client.conn.destroy();
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
    this.#serversClosed ??= this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    this.#log.info({ taken: this.#taken }, 'broker stopped accepting device messages');
  }

  /** Resolves once every device publish authorized so far (PUBACKed, for QoS 1) has been passed to `onMessage`. */
  settled(): Promise<void> {
    if (this.#taken === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settledWaiters.push(resolve));
  }

  /** Closes the listeners, every connection (authenticated or not) and aedes. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const serversClosed = (this.#serversClosed ??= this.#servers.map(
      (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    ));
    this.#closeWebSockets?.();
    await new Promise<void>((resolve) => this.#aedes.close(() => resolve()));
    // Connections that never authenticated are not aedes clients; without this a silent one
    // would hold the listener (and the process) open until its CONNECT timeout.
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all(serversClosed);
  }

  async #listen(): Promise<void> {
    const host = this.#options.host ?? DEFAULTS.host;
    const tcp = createNetServer((socket) => this.#accept(socket));
    this.#ports.tcp = await this.#bind(tcp, this.#options.port ?? DEFAULTS.port, host);

    const tlsOptions = this.#options.tls;
    if (tlsOptions) {
      const { port, ...secureContext } = tlsOptions;
      const tls = createTlsServer(secureContext, (socket) => this.#accept(socket));
      tls.on('tlsClientError', (err) => this.#log.debug({ err: err.message }, 'TLS handshake failed'));
      this.#ports.tls = await this.#bind(tls, port ?? DEFAULTS.tlsPort, host);
    }

    const wsOptions = this.#options.websocket;
    if (wsOptions) {
      this.#ports.ws = await this.#listenWebSocket(wsOptions, host);
    }
  }

  async #listenWebSocket(options: BrokerWebSocketOptions, host: string): Promise<number> {
    // `ws` is loaded only when WebSocket is asked for: plain and TLS listeners need nothing beyond node.
    const { WebSocketServer, createWebSocketStream } = await import('ws');
    const http = createHttpServer((_req, res) => {
      res.writeHead(426, { connection: 'close' }).end();
    });
    const wss = new WebSocketServer({
      server: http,
      path: options.path ?? DEFAULTS.wsPath,
      // One WebSocket message may carry a few MQTT packets; the frame guard enforces the real
      // limit, this only keeps ws from buffering a 100 MiB message (its default) first.
      maxPayload: 4 * this.#maxFrameBytes,
      perMessageDeflate: false,
    });
    wss.on('connection', (ws, req) => this.#accept(createWebSocketStream(ws), req));
    wss.on('error', (err) => this.#log.warn({ err: err.message }, 'WebSocket server error'));
    this.#closeWebSockets = () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    };
    return this.#bind(http, options.port ?? DEFAULTS.wsPort, host);
  }

  #bind(server: NetServer | HttpServer, port: number, host: string): Promise<number> {
    this.#servers.push(server);
    server.on('connection', (socket: Socket) => {
      // MQTT packets are small and latency matters more than segment count: with Nagle on, a
      // bundle written while an earlier PUBACK is unacknowledged waits for the device's delayed ACK.
      socket.setNoDelay(true);
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#log.warn({ err: err.message }, 'listener error'));
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  #accept(stream: Duplex, req?: IncomingMessage): void {
    if (this.#closing || !this.#accepting) {
      stream.destroy();
      return;
    }
    this.#aedes.handle(stream, req);
    // aedes reads with 'readable'/read(); a 'data' listener added after it sees every chunk as it is
    // read without taking over the flow, so the frame limit costs no extra stream in the data path.
    const frames = new FrameLimit(this.#maxFrameBytes);
    stream.on('data', (chunk: Buffer) => {
      if (frames.admit(chunk)) return;
      this.#counters.oversizedFrames++;
      this.#log.info({ limit: this.#maxFrameBytes }, 'connection closed: MQTT packet over the frame limit');
      stream.destroy(new Error(`MQTT packet over ${this.#maxFrameBytes} bytes or malformed length`));
    });
  }

  #authenticate(client: Client, username: string | undefined, password: Buffer | undefined, done: AuthenticateDone): void {
    const attempt = this.#attempts.get(client) ?? { clientId: client.id, hasWill: false };
    const refuse = (refusal: ConnectRefusal, returnCode: ReturnCode) => {
      attempt.refusal = refusal;
      this.#attempts.set(client, attempt);
      const returnCodeOf = returnCode as number as AuthenticateError['returnCode'];
      done(Object.assign(new Error(`CONNECT refused: ${refusal}`), { returnCode: returnCodeOf }), false);
    };
    // aedes names a client that sent an empty id itself; only the id the device sent counts.
    const id = attempt.clientId;
    // [MQTT-3.1.3-9] a rejected client id is answered with 0x02, identifier rejected
    if (!isDeviceId(id) || client.id !== id) return refuse('bad_client_id', 2);
    if (attempt.hasWill) return refuse('will', 5);
    if (username === undefined || password === undefined) return refuse('missing_credentials', 4);
    if (username !== id) return refuse('username_mismatch', 4);
    if (!this.#accepting) return refuse('shutting_down', 3);
    const epoch = this.#disconnectEpoch.get(id) ?? 0;
    let verdict: Promise<boolean>;
    try {
      verdict = Promise.resolve(this.#options.authenticate(id, password.toString('utf8')));
    } catch (err) {
      verdict = Promise.reject(err);
    }
    verdict.then(
      (ok) => {
        if ((this.#disconnectEpoch.get(id) ?? 0) !== epoch) return refuse('disconnected', 5);
        if (!this.#accepting) return refuse('shutting_down', 3);
        if (ok !== true) return refuse('bad_credentials', 4);
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
    this.#log.info({ deviceId, refusal, returnCode }, 'connection refused');
  }

  #authorizeSubscribe(client: Client, sub: Subscription, done: Parameters<Aedes['authorizeSubscribe']>[2]): void {
    if (!this.#accepting) return done(null, null);
    if (isFilterWithinDevice(sub.topic, client.id)) return done(null, sub);
    this.#deny('subscribe', client.id, sub.topic);
    // a null subscription is granted 0x80 (failure) in the SUBACK; the connection stays open
    done(null, null);
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    // aedes passes no client only for wills of a dead broker; devices have no wills.
    if (!client) return done(new Error('publish without a device refused'));
    if (!this.#accepting) return done(new Error('gateway shutting down'));
    const topic = parseDeviceTopic(packet.topic);
    if (!topic || topic.id !== client.id || !isDeviceMessageKind(topic.kind)) {
      return this.#refusePublish('publish_topic', client.id, packet.topic, done);
    }
    if (packet.qos > 1) return this.#refusePublish('publish_qos', client.id, packet.topic, done);
    // Devices must not create retained messages: aedes scans every retained message on each
    // SUBSCRIBE, and a retained report would be replayed to the gateway as if new.
    if (packet.retain) return this.#refusePublish('publish_retain', client.id, packet.topic, done);
    const size = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
    if (size > this.#maxPayloadBytes) {
      this.#counters.payloadTooLarge++;
      this.#log.info({ deviceId: client.id, size, limit: this.#maxPayloadBytes }, 'publish refused: payload too large');
      return done(new Error(`payload of ${size} bytes over the ${this.#maxPayloadBytes}-byte limit`));
    }
    // Taken: aedes PUBACKs it now and runs `published` later; a shutdown waits for that (settled()).
    this.#taken++;
    done(null);
  }

  // [MQTT-3.3.5-2] an unauthorized PUBLISH is acked or the connection closed; aedes closes it on error.
  #refusePublish(denial: AclDenial, deviceId: string, topic: string, done: (err?: Error | null) => void): void {
    this.#deny(denial, deviceId, topic);
    done(new Error(`publish refused: ${denial}`));
  }

  #deny(denial: AclDenial, deviceId: string, topic: string): void {
    this.#counters.aclDenied[denial]++;
    this.#log.info({ deviceId, denial, topic: topic.slice(0, 200) }, 'ACL denied');
  }

  #untake(): void {
    if (this.#taken > 0) this.#taken--;
    if (this.#taken > 0 || this.#settledWaiters.length === 0) return;
    const waiters = this.#settledWaiters;
    this.#settledWaiters = [];
    for (const w of waiters) w();
  }

  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    return packet.topic === deviceTopic(client.id, 'bundle') ? packet : null;
  }

  #deviceMessage(client: Client, packet: AedesPublishPacket): void {
    const topic = parseDeviceTopic(packet.topic);
    // authorizePublish let only the device's own state/ack/telemetry through; checked again so
    // that nothing reaches onMessage under another device's id whatever aedes publishes.
    if (!topic || topic.id !== client.id || !isDeviceMessageKind(topic.kind)) return;
    this.#counters.messagesIn++;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    this.#hook('onMessage', () => this.#options.onMessage?.(topic.id, topic.kind as DeviceMessageKind, payload));
  }

  #publish(topic: string, payload: Buffer): void {
    this.#counters.messagesOut++;
    this.#aedes.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, (err) => {
      if (!err) return;
      this.#counters.publishErrors++;
      this.#log.warn({ topic, err: err.message }, 'publish to device failed');
    });
  }

  // A hook that throws or rejects is logged, never allowed to break the broker's packet flow.
  #hook(name: string, call: () => void | Promise<void>): void {
    try {
      const result = call();
      if (result instanceof Promise) {
        result.catch((err: unknown) => this.#log.warn({ hook: name, err: String(err) }, 'broker hook failed'));
      }
    } catch (err) {
      this.#log.warn({ hook: name, err: String(err) }, 'broker hook failed');
    }
  }
}

interface Limits {
  maxPayloadBytes: number;
  publishBatchSize: number;
  connectTimeoutMs: number;
}

function validated(options: DeviceBrokerOptions): Limits {
  if (typeof options.authenticate !== 'function') throw new TypeError('expected authenticate to be a function');
  const limits = {
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes,
    publishBatchSize: options.publishBatchSize ?? DEFAULTS.publishBatchSize,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new TypeError(`expected ${name} to be a positive integer, got ${value}`);
    }
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

/**
 * Passes a connection's bytes through unchanged while following MQTT framing (fixed header byte,
 * Remaining Length, body; MQTT 3.1.1 §2.2), and destroys the connection as soon as a packet
 * announces a Remaining Length over `limit` or a length field longer than 4 bytes (§2.2.3), so
 * the body is never buffered. Writes go straight to the wrapped stream.
 */
class FrameLimit {
  readonly #limit: number;
  #bodyLeft = 0;
  #inLength = false;
  #length = 0;
  #lengthBytes = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Follows the packet boundaries across chunks; false once a packet announces more than the limit. */
  admit(chunk: Buffer): boolean {
    let i = 0;
    while (i < chunk.length) {
      if (this.#bodyLeft > 0) {
        const take = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= take;
        i += take;
        continue;
      }
      const byte = chunk[i++];
      if (!this.#inLength) {
        // the packet type byte; the Remaining Length follows
        this.#inLength = true;
        this.#length = 0;
        this.#lengthBytes = 0;
        continue;
      }
      this.#length += (byte & 0x7f) * 128 ** this.#lengthBytes;
      this.#lengthBytes++;
      if (this.#length > this.#limit) return false;
      if (byte & 0x80) {
        if (this.#lengthBytes === 4) return false;
        continue;
      }
      this.#inLength = false;
      this.#bodyLeft = this.#length;
    }
    return true;
  }}

