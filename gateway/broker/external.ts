// External broker mode (docs/architecture.md §8): the gateway as an MQTT 5 client of a broker it does
// not own (Mosquitto here), offering the gateway the same hooks as the embedded broker
// (`gateway/broker.ts`), so the gateway can take either.
//
//   const broker = await ExternalBroker.start({
//     url: 'mqtt://127.0.0.1:18830', username: 'pinwave@gateway', password, clientId: 'pinwave@gw-1',
//     onMessage: (id, kind, payload) => gateway.deviceMessage(id, kind, payload),  // PUBACK once it resolves
//     onConnect: (id) => …, onDisconnect: (id) => …,                              // from presence
//   });
//   await broker.publishToDevices(['meter-1'], bundleBytes);   // QoS 1, never retained
//   await broker.credentials.provision([{ id: 'meter-2', token }]);
//   await broker.close();
//
// The contract, and what it rests on (Mosquitto 2.0.11, mqtt.js 5.16):
// - One stable client id per replica, clean start off, a session expiry: while the gateway is
//   away, the broker keeps its subscriptions and queues its share of device messages.
// - Device messages come through the shared group (`$share/pinwave/pinwave/v1/devices/+/<kind>`,
//   QoS 1), so replicas split them. Mosquitto deals a share to a member whether or not it is
//   connected, and keeps a dead member's share in its session: whoever takes over connects once
//   under the dead replica's client id to receive it (the session, not the process, is the unit).
// - A device message is acknowledged (PUBACK) to the broker only once `onMessage` resolved, so a
//   message the gateway did not commit is sent again, to this session, on its next connection.
//   PUBACKs go out in the order the messages came [MQTT-4.6.0-2]. mqtt.js hands a QoS 1 message to
//   `customHandleAcks` and reads the next packet only once its callback is called; waiting there for
//   a commit would take one message per commit (469/s against a 2 ms group commit, measured), so
//   the callback is released at once without an ack and the PUBACK is written when the head of the
//   line has committed (about 30,000/s with the same commit). Up to `receiveMaximum` messages
//   are in hand at once.
// - `onMessage` rejecting, or not settling within `handlerTimeoutMs`, means "not committed": the
//   link is closed and opened again after a back-off, and the broker sends again every message not
//   yet acknowledged (those after it too: they may arrive twice, so handlers are idempotent).
//   A message that can never commit (it is malformed) must resolve, not reject.
// - Presence is the devices' own (`presence-topic.ts`): `online` on connect, `offline` as the will,
//   both retained. A process's first CONNACK asks for every retained presence, so a restarted
//   replica knows who is online; rotation and revocation set the kicked device's presence (the
//   broker kicks without the will).
// - close() keeps the session (a restart: its share waits); retire() ends it (a replica removed
//   for good), once what it held is acknowledged.
// - Bundles are published QoS 1, not retained, to devices presence says are online; none while
//   the link is down (`onLinkUp` tells the gateway to deliver again once it is back).
// - Reconnects back off exponentially (jittered), and subscribe again after each CONNACK.
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { isDeviceId } from '../device-id.ts';
import { deviceTopic, parseDeviceTopic, type DeviceMessageKind } from '../topics.ts';
import type { BrokerLogger } from '../broker.ts';
import { DynsecControl } from './dynsec-control.ts';
import { CONTROL_RESPONSE_TOPIC, EXTERNAL_MESSAGE_KINDS, GATEWAY_USERNAME, gatewayFilter, SHARE_GROUP } from './dynsec-file.ts';
import { parsePresence, parsePresenceTopic, presenceTopic, PRESENCE_KIND } from './presence-topic.ts';

export interface ExternalBrokerOptions {
  /** `mqtt://host:port` or `mqtts://host:port`. Required. */
  url: string;
  /** The gateway's broker username. Default `pinwave@gateway`. */
  username?: string;
  /** The gateway's broker password. Required. */
  password: string;
  /**
   * This replica's client id, stable across restarts (its session is where its share of device
   * messages waits). Must not be a device id, so no device can ever take it over. Required.
   */
  clientId: string;
  /** PEM CA bundle the broker's certificate is checked against, for `mqtts://`. Default: the system's. */
  ca?: string | Buffer;
  /** Session Expiry Interval, seconds: how long the broker keeps this replica's queue while it is away. Default 86400 (1 day). */
  sessionExpirySeconds?: number;
  /** Receive Maximum: device messages in hand (handled, not yet acknowledged) at once. Default 1000. */
  receiveMaximum?: number;
  /** The shared-subscription group. Default `pinwave`. */
  shareGroup?: string;
  /**
   * `shared`: presence comes through the shared group like every device message, so each replica
   * sees its share. `every-replica`: each replica subscribes to presence on its own and sees all
   * of it, including every device's retained presence when it first subscribes. Default `shared`.
   */
  presence?: 'shared' | 'every-replica';
  /** How long `onMessage` may take before its message counts as not committed, ms. Default 30000. */
  handlerTimeoutMs?: number;
  /** First reconnect delay, ms; doubles per failed attempt up to `reconnectMaxMs`. Default 250. */
  reconnectMinMs?: number;
  /** Longest reconnect delay, ms. Default 30000. */
  reconnectMaxMs?: number;
  /** How long `start()` keeps trying to connect before it gives up, ms. Default 30000. */
  startTimeoutMs?: number;
  /** Publishes handed to mqtt.js per turn of the event loop by `publishToDevices`. Default 256. */
  publishBatchSize?: number;
  /** A device's presence went online (a new `online`, or the first one). Default: none. */
  onConnect?: (deviceId: string) => void;
  /** A device's presence went offline (its will, an `offline`, or a revocation). Default: none. */
  onDisconnect?: (deviceId: string) => void;
  /** A device message; the broker gets its PUBACK once the returned promise resolves. Default: acknowledged at once. */
  onMessage?: (deviceId: string, kind: DeviceMessageKind, payload: Buffer) => void | Promise<void>;
  /** The link to the broker is up (after every CONNACK); `sessionPresent` false means its queue was lost. Default: none. */
  onLinkUp?: (info: { sessionPresent: boolean }) => void;
  /** The link to the broker went down. Default: none. */
  onLinkDown?: (reason: string) => void;
  /** Default: no logging. */
  logger?: BrokerLogger;
}

export interface ExternalBrokerCounters {
  /** CONNACKs received */
  linkUps: number;
  /** connections to the broker lost or closed */
  linkDowns: number;
  /** device messages passed to `onMessage` */
  messagesIn: number;
  /** of which the broker sent again (DUP set) */
  redelivered: number;
  /** PUBACKs written to the broker */
  acked: number;
  /** `onMessage` rejections */
  handlerFailures: number;
  /** `onMessage` calls that did not settle in time */
  handlerTimeouts: number;
  /** presence messages, and those that were neither `online` nor `offline` */
  presenceIn: number;
  presenceMalformed: number;
  /** messages on a topic the gateway does not read (acknowledged and dropped) */
  foreign: number;
  /** bundles handed to mqtt.js, and publishes the broker refused or that failed */
  messagesOut: number;
  publishErrors: number;
  /** subscriptions the broker refused (the gateway's role lacks a right) */
  subscribeRefused: number;
}

const DEFAULTS = {
  username: GATEWAY_USERNAME,
  sessionExpirySeconds: 86_400,
  receiveMaximum: 1000,
  handlerTimeoutMs: 30_000,
  reconnectMinMs: 250,
  reconnectMaxMs: 30_000,
  startTimeoutMs: 30_000,
  publishBatchSize: 256,
};

const NO_LOG: BrokerLogger = { debug() {}, info() {}, warn() {} };
// Released to mqtt.js in place of an ack: it reads the next packet and sends no PUBACK.
const DEFERRED = Object.assign(new Error('PUBACK deferred until the message is committed'), { code: 'PW_ACK_DEFERRED' });

interface InHand {
  messageId: number;
  done: boolean;
  timer?: NodeJS.Timeout;
}

type SendPacket = (packet: { cmd: 'puback'; messageId: number; reasonCode: number }) => void;

export class ExternalBroker {
  readonly #o: ExternalBrokerOptions & typeof DEFAULTS;
  readonly #log: BrokerLogger;
  readonly #client: MqttClient;
  readonly #sendPacket: SendPacket;
  readonly #control: DynsecControl;
  readonly #online = new Set<string>();
  readonly #counters: ExternalBrokerCounters = {
    linkUps: 0,
    linkDowns: 0,
    messagesIn: 0,
    redelivered: 0,
    acked: 0,
    handlerFailures: 0,
    handlerTimeouts: 0,
    presenceIn: 0,
    presenceMalformed: 0,
    foreign: 0,
    messagesOut: 0,
    publishErrors: 0,
    subscribeRefused: 0,
  };
  // Messages of the current connection in arrival order; acked from the head once done.
  #line: InHand[] = [];
  // Bumped on every connection: a handler of an earlier connection never acks on a later one.
  #generation = 0;
  #linkUp = false;
  #delayMs: number;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #recycling = false;
  #closing: Promise<void> | null = null;
  #lastError = '';
  // start()'s waiters for the first link, and for a refusal that retrying cannot mend
  readonly #up = new Set<() => void>();
  readonly #refused = new Set<(err: Error) => void>();
  // presence learnt by this process; false until the first CONNACK asked for every retained one
  #presenceLoaded = false;

  /** Connects and subscribes; resolves once both are done, rejects when the broker refuses the credentials or does not answer within `startTimeoutMs`. */
  static async start(options: ExternalBrokerOptions): Promise<ExternalBroker> {
    const broker = new ExternalBroker(options);
    try {
      await broker.#firstLink();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  private constructor(options: ExternalBrokerOptions) {
    this.#o = validated(options);
    this.#log = options.logger ?? NO_LOG;
    this.#delayMs = this.#o.reconnectMinMs;
    const o = this.#o;
    const clientOptions: IClientOptions = {
      protocolVersion: 5,
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      clean: false,
      properties: { sessionExpiryInterval: o.sessionExpirySeconds, receiveMaximum: o.receiveMaximum },
      // reconnects are ours (back-off); subscriptions are renewed on every CONNACK
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: 10_000,
      keepalive: 30,
      customHandleAcks: (topic, payload, packet, done) => this.#receive(topic, payload, packet, done),
    };
    if (o.ca !== undefined) clientOptions.ca = o.ca;
    // The ordered, deferred PUBACK needs mqtt.js's packet writer; checked before connecting so an
    // mqtt.js that changed it fails at start, not at the first message.
    const send = (mqtt.MqttClient.prototype as unknown as { _sendPacket?: unknown })._sendPacket;
    if (typeof send !== 'function') throw new Error('this mqtt.js has no _sendPacket: external broker mode needs mqtt 5.x (deferred PUBACKs)');
    this.#client = mqtt.connect(o.url, clientOptions);
    this.#sendPacket = (send as SendPacket).bind(this.#client);
    this.#control = new DynsecControl(this.#client);
    this.#client.on('connect', (connack) => this.#onConnack(connack));
    this.#client.on('close', () => this.#onClose());
    // QoS 1 and 2 come through customHandleAcks; a device publishing at QoS 0 is read here (no ack to gate)
    this.#client.on('message', (topic, payload, packet) => {
      if (packet.qos === 0 && topic !== CONTROL_RESPONSE_TOPIC) this.#receiveUnacked(topic, payload, packet);
    });
    this.#client.on('error', (err: Error & { code?: unknown }) => {
      if (err === DEFERRED) return;
      this.#lastError = err.message;
      this.#log.warn({ err: err.message, code: err.code }, 'broker link error');
    });
  }

  /** The dynamic-security control on this link: provision, rotate, revoke device credentials in the broker. */
  get credentials(): DynsecControl {
    return this.#control;
  }

  /** The broker URL this replica uses (devices are given theirs by the gateway's config). */
  get url(): string {
    return this.#o.url;
  }

  /** True while the link to the broker is up. */
  get linkUp(): boolean {
    return this.#linkUp;
  }

  counters(): ExternalBrokerCounters {
    return { ...this.#counters };
  }

  /** Device messages in hand: passed to `onMessage`, not yet acknowledged. */
  inHand(): number {
    return this.#line.length;
  }

  /** True while device `id`'s presence is `online`. */
  isConnected(id: string): boolean {
    return this.#online.has(id);
  }

  connectedCount(): number {
    return this.#online.size;
  }

  /** The devices whose presence is `online` now. */
  onlineDevices(): string[] {
    return [...this.#online];
  }

  /**
   * Publishes `payload` on the `bundle` topic of each device in `ids` that presence says is online,
   * QoS 1, not retained, `publishBatchSize` per turn of the event loop. Resolves with how many were
   * handed to mqtt.js; 0 while the link is down. Throws a TypeError before publishing anything if an
   * id is not a device id.
   */
  async publishToDevices(ids: readonly string[], payload: Buffer): Promise<number> {
    const topics = ids.map((id) => deviceTopic(id, 'bundle'));
    let handed = 0;
    for (let start = 0; start < ids.length; start += this.#o.publishBatchSize) {
      if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#closing) throw new Error('broker link is closed');
      if (!this.#linkUp) return handed;
      const end = Math.min(start + this.#o.publishBatchSize, ids.length);
      for (let i = start; i < end; i++) {
        if (!this.#online.has(ids[i])) continue;
        this.#publish(topics[i], payload);
        handed++;
      }
    }
    return handed;
  }

  /** Publishes `payload` on device `id`'s `bundle` topic (QoS 1, not retained); false when it is offline or the link is down. */
  publishToDevice(id: string, payload: Buffer): boolean {
    const topic = deviceTopic(id, 'bundle');
    if (this.#closing) throw new Error('broker link is closed');
    if (!this.#linkUp || !this.#online.has(id)) return false;
    this.#publish(topic, payload);
    return true;
  }

  /**
   * For revocation, as the embedded broker's: the broker holds the device's connection, and only a
   * change of its credentials ends it, so this deletes the device's broker client (which kicks its
   * session) in the background and marks it offline. True when presence had it online.
   * `revokeDevice` is the same, awaited: use it where an answer must wait for the broker.
   */
  disconnect(id: string): boolean {
    const was = this.#online.has(id);
    this.revokeDevice(id).catch((err: Error) => this.#log.warn({ deviceId: id, err: err.message }, 'revoking the device in the broker failed'));
    return was;
  }

  /**
   * Deletes device `id`'s broker client and role (its session is kicked) and clears its retained
   * presence: the broker publishes no will when it kicks, and a retained `online` would otherwise
   * tell every replica that starts later that a revoked device is connected.
   */
  async revokeDevice(id: string): Promise<void> {
    await this.#control.revoke(id);
    this.#setPresence(id, 'offline');
    await this.#client.publishAsync(presenceTopic(id), Buffer.alloc(0), { qos: 1, retain: true });
  }

  /** Replaces device `id`'s token in the broker; its session is kicked (no will published), so its presence is set `offline` here. */
  async rotateDevice(id: string, token: string): Promise<void> {
    await this.#control.rotate(id, token);
    this.#setPresence(id, 'offline');
    await this.#client.publishAsync(presenceTopic(id), 'offline', { qos: 1, retain: true });
  }

  /**
   * Takes this replica out for good: unsubscribes (the broker deals it no more shares), waits until
   * every message it was sent has been handled and acknowledged (up to `handlerTimeoutMs`), then
   * ends the link and its session (Session Expiry 0), so nothing waits there for a replica that will
   * not come back. A replica that only restarts uses close(), which keeps the session. Rejects,
   * the session kept (as close()), when a message could not be committed or the link was lost first.
   */
  async retire(): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#linkUp) {
      await this.#client.unsubscribeAsync(this.#filters()).catch(() => {});
      const deadline = Date.now() + this.#o.handlerTimeoutMs;
      const received = () => this.#counters.messagesIn + this.#counters.presenceIn + this.#counters.foreign;
      // Drained: nothing in hand, and a round trip to the broker brought nothing new. A quiet spell
      // proves nothing (the broker's one thread may be busy for seconds, rewriting its plugin's
      // file); a round trip does: the broker handles this client's packets in order, and on each
      // PUBACK writes what the session queued next (Mosquitto 2.0), before it reads the UNSUBSCRIBE
      // behind it and answers on the same stream.
      let drained = false;
      const failuresBefore = this.#counters.handlerFailures + this.#counters.handlerTimeouts;
      while (Date.now() < deadline && this.#linkUp && this.#counters.handlerFailures + this.#counters.handlerTimeouts === failuresBefore) {
        if (this.#line.length > 0) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const before = received();
        const answered = await this.#client.unsubscribeAsync(this.#filters()).then(
          () => true,
          () => false,
        );
        if (answered && this.#line.length === 0 && received() === before) {
          drained = true;
          break;
        }
      }
      if (!drained) {
        // A message not committed (or the link lost) is still the session's: ending the session
        // would drop it for good. It is kept for the next try under this client id.
        await this.close();
        throw new Error(`the session of ${this.#o.clientId} was not drained (${this.#lastError || 'no answer in time'}): kept, with what it holds`);
      }
    }
    this.#closing = (async () => {
      if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
      this.#control.close();
      await this.#client.endAsync(false, { properties: { sessionExpiryInterval: 0 } }).catch(() => {});
      this.#dropLine();
    })();
    return this.#closing;
  }

  /** Ends the link (DISCONNECT, the session kept for the next start) and fails control commands still waiting. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
      this.#control.close();
      await this.#client.endAsync(!this.#client.connected).catch(() => {});
      this.#dropLine();
    })();
    return this.#closing;
  }

  #firstLink(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no connection to the broker at ${this.#o.url} within ${this.#o.startTimeoutMs} ms${this.#lastError ? `: ${this.#lastError}` : ''}`));
      }, this.#o.startTimeoutMs);
      const onUp = () => {
        cleanup();
        resolve();
      };
      const onError = (err: Error & { code?: number }) => {
        // 0x86 bad user name or password, 0x87 not authorized, 0x85 client id not valid: retrying cannot help
        if (err.code === 0x86 || err.code === 0x87 || err.code === 0x85) {
          cleanup();
          reject(new Error(`the broker at ${this.#o.url} refused the gateway's credentials (${this.#o.username}): ${err.message}`));
        }
      };
      const onRefused = (err: Error) => {
        cleanup();
        reject(err);
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.#up.delete(onUp);
        this.#refused.delete(onRefused);
        this.#client.off('error', onError);
      };
      this.#up.add(onUp);
      this.#refused.add(onRefused);
      this.#client.on('error', onError);
    });
  }

  async #onConnack(connack: IConnackPacket): Promise<void> {
    this.#generation++;
    this.#dropLine();
    this.#delayMs = this.#o.reconnectMinMs;
    const generation = this.#generation;
    const sessionPresent = connack.sessionPresent === true;
    if (!sessionPresent && this.#presenceLoaded) {
      // The broker lost this session (a crash, an expiry): what presence it had is no longer
      // known; the retained presence that comes with the new subscription tells it again.
      for (const id of [...this.#online]) this.#setPresence(id, 'offline');
    }
    try {
      // The first CONNACK of this process asks for every retained presence even when the session
      // (and its subscription) survived: presence lives in this process's memory only.
      await this.#subscribe(this.#presenceLoaded ? 1 : 0);
      this.#presenceLoaded = true;
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'subscribing to device messages failed');
      if ((err as { refused?: boolean }).refused) for (const f of [...this.#refused]) f(err as Error);
      if (generation === this.#generation) this.#recycle('subscribe failed');
      return;
    }
    if (generation !== this.#generation || this.#closing) return;
    this.#linkUp = true;
    this.#counters.linkUps++;
    this.#log.info({ url: this.#o.url, clientId: this.#o.clientId, sessionPresent }, 'broker link up');
    for (const up of [...this.#up]) up();
    this.#hook('onLinkUp', () => this.#o.onLinkUp?.({ sessionPresent }));
  }

  // rh (Retain Handling, MQTT 5 §3.8.3.1): 0 every retained message now, 1 only for a new subscription
  async #subscribe(rh: 0 | 1): Promise<void> {
    const filters = this.#filters();
    const request = Object.fromEntries(filters.map((f) => [f, { qos: 1 as const, rh: f.endsWith(`/${PRESENCE_KIND}`) ? rh : 1 }]));
    // the plugin's answers, for the control client on this link (QoS 0: it publishes them so)
    request[CONTROL_RESPONSE_TOPIC] = { qos: 0 as never, rh: 1 };
    const topics = Object.keys(request);
    let codes: number[];
    try {
      codes = (await this.#client.subscribeAsync(request)).map((g) => g.qos as number);
    } catch (err) {
      // mqtt.js rejects an MQTT 5 SUBACK holding a failure code, with the SUBACK beside the error
      const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
      if (!Array.isArray(granted)) throw err;
      codes = granted;
    }
    const refused = topics.filter((_, i) => (codes[i] ?? 0x80) >= 0x80);
    if (refused.length > 0) {
      this.#counters.subscribeRefused += refused.length;
      throw Object.assign(new Error(`the broker refused ${refused.join(', ')}: the gateway's broker client lacks its role`), { refused: true });
    }
  }

  #filters(): string[] {
    const shared = this.#o.presence === 'shared';
    return EXTERNAL_MESSAGE_KINDS.map((kind) => gatewayFilter(kind, kind !== PRESENCE_KIND || shared, this.#o.shareGroup));
  }

  #onClose(): void {
    const wasUp = this.#linkUp;
    this.#linkUp = false;
    this.#dropLine();
    this.#generation++;
    if (wasUp) {
      this.#counters.linkDowns++;
      this.#log.warn({ url: this.#o.url, err: this.#lastError || undefined }, 'broker link down');
      this.#hook('onLinkDown', () => this.#o.onLinkDown?.(this.#lastError || 'connection closed'));
    }
    if (this.#closing || this.#reconnectTimer) return;
    // full jitter: replicas that lost the broker together do not come back together
    const delay = Math.round(this.#delayMs / 2 + Math.random() * (this.#delayMs / 2));
    this.#delayMs = Math.min(this.#delayMs * 2, this.#o.reconnectMaxMs);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      this.#recycling = false;
      if (this.#closing) return;
      // the stores are passed back: QoS 1 publishes not yet acknowledged are sent again
      this.#client.reconnect({ incomingStore: this.#client.incomingStore, outgoingStore: this.#client.outgoingStore });
    }, delay);
    this.#reconnectTimer.unref?.();
  }

  // What the line held belongs to a connection that is gone: the broker sends it again on the next,
  // so its handlers' outcomes and timeouts no longer matter.
  #dropLine(): void {
    for (const entry of this.#line) clearTimeout(entry.timer);
    this.#line = [];
  }

  // Ends the connection so that the broker sends every unacknowledged message again on the next one.
  #recycle(reason: string): void {
    if (this.#recycling || this.#closing) return;
    this.#recycling = true;
    this.#lastError = reason;
    this.#log.warn({ reason }, 'closing the broker link to have unacknowledged messages sent again');
    this.#client.stream?.destroy();
  }

  #receive(topic: string, payload: Buffer, packet: IPublishPacket, release: (error: Error | number, code?: number) => void): void {
    const entry: InHand = { messageId: packet.messageId!, done: false };
    const generation = this.#generation;
    this.#line.push(entry);
    release(DEFERRED);
    let work: void | Promise<void>;
    try {
      work = this.#dispatch(topic, payload, packet);
    } catch (err) {
      work = Promise.reject(err);
    }
    if (!(work instanceof Promise)) return this.#settled(entry, generation);
    const timeout = new Promise<never>((_, reject) => {
      entry.timer = setTimeout(() => reject(Object.assign(new Error(`onMessage did not settle within ${this.#o.handlerTimeoutMs} ms`), { timeout: true })), this.#o.handlerTimeoutMs);
      entry.timer.unref?.();
    });
    Promise.race([work, timeout]).then(
      () => {
        clearTimeout(entry.timer);
        this.#settled(entry, generation);
      },
      (err: Error & { timeout?: boolean }) => {
        clearTimeout(entry.timer);
        if (err?.timeout) this.#counters.handlerTimeouts++;
        else this.#counters.handlerFailures++;
        this.#log.warn({ topic, err: err?.message ?? String(err) }, 'device message not committed; it will be sent again');
        if (generation === this.#generation) this.#recycle('a device message was not committed');
      },
    );
  }

  #receiveUnacked(topic: string, payload: Buffer, packet: IPublishPacket): void {
    let work: void | Promise<void>;
    try {
      work = this.#dispatch(topic, payload, packet);
    } catch (err) {
      work = Promise.reject(err);
    }
    if (work instanceof Promise) {
      work.catch((err: unknown) => {
        this.#counters.handlerFailures++;
        this.#log.warn({ topic, err: String(err) }, 'a QoS 0 device message was not committed (the device sent it without asking for delivery)');
      });
    }
  }

  #dispatch(topic: string, payload: Buffer, packet: IPublishPacket): void | Promise<void> {
    const presenceOf = parsePresenceTopic(topic);
    if (presenceOf !== null) {
      this.#counters.presenceIn++;
      const presence = parsePresence(payload);
      if (presence === null) {
        this.#counters.presenceMalformed++;
        return;
      }
      this.#setPresence(presenceOf, presence, true);
      return;
    }
    const parsed = parseDeviceTopic(topic);
    if (!parsed || parsed.kind === 'bundle') {
      this.#counters.foreign++;
      this.#log.debug({ topic: topic.slice(0, 200) }, 'message on a topic the gateway does not read');
      return;
    }
    this.#counters.messagesIn++;
    if (packet.dup) this.#counters.redelivered++;
    return this.#o.onMessage?.(parsed.id, parsed.kind as DeviceMessageKind, payload);
  }

  #settled(entry: InHand, generation: number): void {
    // that connection is gone (or going: mqtt.js would keep a PUBACK for the next one); the broker sends it again
    if (generation !== this.#generation || !this.#client.connected) return;
    entry.done = true;
    // [MQTT-4.6.0-2] PUBACKs in the order the PUBLISHes came
    while (this.#line.length > 0 && this.#line[0].done) {
      const head = this.#line.shift()!;
      this.#sendPacket({ cmd: 'puback', messageId: head.messageId, reasonCode: 0 });
      this.#counters.acked++;
    }
  }

  #setPresence(id: string, presence: 'online' | 'offline', fromDevice = false): void {
    const was = this.#online.has(id);
    if (presence === 'online') {
      // a second `online` is a new session that replaced the one announced before
      if (was && fromDevice) this.#hook('onDisconnect', () => this.#o.onDisconnect?.(id));
      this.#online.add(id);
      this.#hook('onConnect', () => this.#o.onConnect?.(id));
      return;
    }
    if (!was) return;
    this.#online.delete(id);
    this.#hook('onDisconnect', () => this.#o.onDisconnect?.(id));
  }

  #publish(topic: string, payload: Buffer): void {
    this.#counters.messagesOut++;
    this.#client.publish(topic, payload, { qos: 1, retain: false }, (err) => {
      if (!err) return;
      this.#counters.publishErrors++;
      this.#log.warn({ topic, err: err.message }, 'publish to device failed');
    });
  }

  // A hook that throws or rejects is logged, never allowed to break the link.
  #hook(name: string, call: () => void | Promise<void>): void {
    try {
      const result = call();
      if (result instanceof Promise) result.catch((err: unknown) => this.#log.warn({ hook: name, err: String(err) }, 'broker hook failed'));
    } catch (err) {
      this.#log.warn({ hook: name, err: String(err) }, 'broker hook failed');
    }
  }
}

function validated(o: ExternalBrokerOptions): ExternalBrokerOptions & typeof DEFAULTS {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new TypeError(`expected url like mqtt://host:port or mqtts://host:port, got ${JSON.stringify(o.url)}`);
  }
  if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') throw new TypeError(`expected an mqtt:// or mqtts:// url, got ${JSON.stringify(o.url)}`);
  if (!url.port) throw new TypeError(`expected the url to name its port (1883 is never assumed), got ${JSON.stringify(o.url)}`);
  if (typeof o.password !== 'string' || o.password === '') throw new TypeError('expected password to be a non-empty string');
  if (typeof o.clientId !== 'string' || o.clientId === '' || o.clientId.length > 128) throw new TypeError(`expected clientId of 1 to 128 characters, got ${JSON.stringify(o.clientId)}`);
  if (isDeviceId(o.clientId)) throw new TypeError(`clientId ${JSON.stringify(o.clientId)} could be a device's: use one with "@", such as "pinwave@${o.clientId}"`);
  if (o.presence !== undefined && o.presence !== 'shared' && o.presence !== 'every-replica') throw new TypeError(`expected presence "shared" or "every-replica", got ${JSON.stringify(o.presence)}`);
  const merged = { ...DEFAULTS, shareGroup: SHARE_GROUP, presence: 'shared' as const, ...definedOnly(o), url: o.url, password: o.password, clientId: o.clientId };
  for (const name of ['sessionExpirySeconds', 'receiveMaximum', 'handlerTimeoutMs', 'reconnectMinMs', 'reconnectMaxMs', 'startTimeoutMs', 'publishBatchSize'] as const) {
    const value = merged[name];
    if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`expected ${name} to be a positive integer, got ${value}`);
  }
  if (merged.receiveMaximum > 65_535) throw new TypeError(`expected receiveMaximum at most 65535, got ${merged.receiveMaximum}`);
  if (merged.sessionExpirySeconds > 0xffff_fffe) throw new TypeError(`expected sessionExpirySeconds under 2^32-1, got ${merged.sessionExpirySeconds}`);
  return merged;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
