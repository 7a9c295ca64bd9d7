// External broker mode as the gateway sees it (docs/architecture.md §8): the gateway's MQTT 5 client
// of a broker it does not own (`external.ts`) behind the `DeviceTransport` the embedded broker also
// offers, and the devices' credentials in the broker's dynamic-security plugin (`dynsec-control.ts`)
// behind `DeviceCredentials`. Device messages reach the same hooks the embedded broker calls.
//
//   const transport = await ExternalTransport.start({ url, username, password, clientId: 'pinwave@gw-1' }, {
//     onConnect, onDisconnect, onSubscribe, onMessage, onReport,
//   });
//   await transport.provision([{ id: 'th-1', token }]);   // the broker lets th-1 in from now on
//
// How the embedded broker's events are made from what an external broker shows (§5, §8):
// - connected / offline: the devices' own presence, `online` on connect and `offline` as the will,
//   retained, read by every replica on its own (`presence: 'every-replica'`), so a gateway that
//   starts while devices are connected learns them from their retained presence.
// - subscribed to its bundle topic: a device announcing `online` holds its subscription (its
//   session is persistent, and a new one subscribes right after `online`), so `online` is also
//   `onSubscribe`: the gateway sends what the device should hold. So is every device online when
//   the link to the broker comes back: what was being published when it dropped goes again.
// - a `state` message comes after the device's SUBACK: whatever was handed to it before may have
//   reached the broker ahead of its subscription, so `onReport` lets it be handed again.
// The broker acknowledges the device itself; the gateway acknowledges the broker only once
// `onMessage` resolved (`external.ts`).
import { hostname } from 'node:os';
import { emptyBrokerCounters, type BrokerCounters, type BrokerLogger, type BrokerPorts } from '../broker.ts';
import type { DeviceCredentials, DeviceTransport } from '../device-transport.ts';
import { deviceTopic, type DeviceMessageKind } from '../topics.ts';
import { DynsecError } from './dynsec-control.ts';
import { ExternalBroker, type ExternalBrokerCounters, type ExternalBrokerOptions } from './external.ts';

/** The gateway's link to an external broker: `pinwave gateway --broker URL --broker-auth FILE [--broker-ca FILE]`. */
export interface ExternalTransportOptions {
  /** `mqtt://host:port` or `mqtts://host:port` of the broker, as the gateway reaches it. Required. */
  url: string;
  /** The gateway's broker username (gateway-broker.json). Default `pinwave@gateway`. */
  username?: string;
  /** The gateway's broker password (gateway-broker.json). Required. */
  password: string;
  /** PEM CA the broker's certificate is checked against (`mqtts://`). Default: the system's. */
  ca?: string | Buffer;
  /** This replica's client id, stable across restarts. Default `pinwave@<host name>`. */
  clientId?: string;
  /** The URL devices are given (`GET /v1/info`); default `url`. */
  deviceUrl?: string;
  /** Tuning of the client (tests: short reconnect delays). Default: external.ts's defaults. */
  client?: Partial<Omit<ExternalBrokerOptions, 'url' | 'username' | 'password' | 'ca' | 'clientId' | 'presence' | 'onConnect' | 'onDisconnect' | 'onMessage' | 'onLinkUp' | 'onLinkDown' | 'logger'>>;
  logger?: BrokerLogger;
}

/** The embedded broker's hooks (`DeviceBrokerOptions`), and one of this mode's own. */
export interface ExternalTransportHooks {
  onConnect?: (deviceId: string) => void;
  onDisconnect?: (deviceId: string) => void;
  /** The device can receive its bundle now: send it what it should hold. */
  onSubscribe?: (deviceId: string, topicFilter: string) => void;
  /** A device message; the broker is acknowledged once the returned promise resolves. */
  onMessage?: (deviceId: string, kind: DeviceMessageKind, payload: Buffer) => void | Promise<void>;
  /** A device reported its state: what was handed to it before may be handed again. */
  onReport?: (deviceId: string) => void;
}

const NO_LOG: BrokerLogger = { debug() {}, info() {}, warn() {} };

/** The gateway's default replica client id: stable across restarts, never a device id (`@`). */
export function defaultReplicaId(): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100) || 'gateway';
  return `pinwave@${host}`;
}

export class ExternalTransport implements DeviceTransport, DeviceCredentials {
  #broker!: ExternalBroker;
  readonly #hooks: ExternalTransportHooks;
  readonly #log: BrokerLogger;
  readonly #deviceUrl: string;
  #accepting = true;
  #inFlight = 0;
  #idle: Array<() => void> = [];
  #linkUps = 0;

  /** Connects to the broker and subscribes; rejects when the broker refuses the gateway's credentials or does not answer. */
  static async start(o: ExternalTransportOptions, hooks: ExternalTransportHooks = {}): Promise<ExternalTransport> {
    const t = new ExternalTransport(o, hooks);
    t.#broker = await ExternalBroker.start({
      ...o.client,
      url: o.url,
      ...(o.username !== undefined && { username: o.username }),
      password: o.password,
      ...(o.ca !== undefined && { ca: o.ca }),
      clientId: o.clientId ?? defaultReplicaId(),
      presence: 'every-replica',
      logger: t.#log,
      onConnect: (id) => t.#online(id),
      onDisconnect: (id) => hooks.onDisconnect?.(id),
      onMessage: (id, kind, payload) => t.#message(id, kind, payload),
      onLinkUp: () => t.#linkUp(),
    });
    return t;
  }

  private constructor(o: ExternalTransportOptions, hooks: ExternalTransportHooks) {
    this.#hooks = hooks;
    this.#log = o.logger ?? NO_LOG;
    this.#deviceUrl = o.deviceUrl ?? o.url;
  }

  /** The broker URL devices are given. */
  get deviceUrl(): string {
    return this.#deviceUrl;
  }

  /** One broker: every device is on it. */
  get brokers(): string[] {
    return [this.#deviceUrl];
  }

  /** The client of the broker (tests, benchmarks). */
  get broker(): ExternalBroker {
    return this.#broker;
  }

  /** No listener of the gateway's own: devices connect to the broker. */
  get ports(): BrokerPorts {
    return {};
  }

  isConnected(id: string): boolean {
    return this.#broker.isConnected(id);
  }

  connectedCount(): number {
    return this.#broker.connectedCount();
  }

  publishToDevices(ids: readonly string[], payload: Buffer): Promise<number> {
    return this.#broker.publishToDevices(ids, payload);
  }

  /** The broker holds the device's connection: only a credential change (rotate, revoke) ends it. */
  disconnect(_id: string): boolean {
    return false;
  }

  counters(): BrokerCounters & { external: ExternalBrokerCounters } {
    const e = this.#broker.counters();
    return {
      ...emptyBrokerCounters(),
      messagesIn: e.messagesIn,
      presenceIn: e.presenceIn,
      messagesOut: e.messagesOut,
      publishErrors: e.publishErrors,
      external: e,
    };
  }

  // ---------------------------------------------------------------- credentials (dynsec-control.ts)

  async provision(devices: ReadonlyArray<{ id: string; token: string }>): Promise<void> {
    if (devices.length === 0) return;
    const results = await this.#broker.credentials.provision(devices);
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0) {
      throw new DynsecError('PW_DYNSEC_REFUSED', `the broker refused ${failed.length} device${failed.length === 1 ? '' : 's'}: ${failed.slice(0, 5).map((f) => `${f.id} (${f.error})`).join(', ')}`, failed[0].error);
    }
  }

  async rotate(id: string, token: string): Promise<void> {
    try {
      await this.#broker.rotateDevice(id, token);
    } catch (err) {
      // provisioned while the broker was unreachable, or before the fleet moved: create it now
      if (!(err instanceof DynsecError && err.detail === 'Client not found')) throw err;
      await this.provision([{ id, token }]);
    }
  }

  revoke(id: string): Promise<void> {
    return this.#broker.revokeDevice(id);
  }

  // ---------------------------------------------------------------- shutdown

  stopAccepting(): void {
    this.#accepting = false;
  }

  settled(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Ends the link; the replica's session stays, with what it was not acknowledged for. */
  close(): Promise<void> {
    this.#accepting = false;
    return this.#broker?.close() ?? Promise.resolve();
  }

  // ---------------------------------------------------------------- events

  #online(id: string): void {
    this.#hooks.onConnect?.(id);
    this.#hooks.onSubscribe?.(id, deviceTopic(id, 'bundle'));
  }

  #linkUp(): void {
    // The first link's devices come with their retained presence; a later one's were online all along.
    if (++this.#linkUps === 1) return;
    const online = this.#broker.onlineDevices();
    this.#log.info({ devices: online.length }, 'broker link back: sending devices what they should hold');
    for (const id of online) this.#hooks.onSubscribe?.(id, deviceTopic(id, 'bundle'));
  }

  #message(id: string, kind: DeviceMessageKind, payload: Buffer): void | Promise<void> {
    // Stopping: not taken, so not acknowledged; the broker sends it again to this session's next link.
    if (!this.#accepting) return new Promise<void>(() => {});
    if (kind === 'state') this.#hooks.onReport?.(id);
    const work = this.#hooks.onMessage?.(id, kind, payload);
    if (!(work instanceof Promise)) return work;
    this.#inFlight++;
    return work.finally(() => {
      if (--this.#inFlight > 0) return;
      for (const resolve of this.#idle.splice(0)) resolve();
    });
  }
}
