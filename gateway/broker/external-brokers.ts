// The gateway on several external brokers (docs/architecture.md §8): one `ExternalTransport` (its own
// client, session and shared subscription) per broker, behind the one `DeviceTransport` and
// `DeviceCredentials` the gateway holds. Open-source Mosquitto does not cluster, and one process may
// hold only so many connections, so a large fleet is sharded: each device is provisioned onto one
// broker (`placement.ts`), which holds its credentials and its connection.
//
//   const brokers = await ExternalBrokers.start([{ url: 'mqtt://10.0.0.11:18830', password: a }, { url: 'mqtt://10.0.0.12:18830', password: b }], hooks);
//   brokers.brokers;                                   // the URLs devices are given, in order
//   await brokers.provision([{ id: 'm-1', token, broker: 'mqtt://10.0.0.12:18830' }]);   // only that broker learns m-1
//   await brokers.publishToDevices(['m-1', 'm-2'], bundleBytes);   // each through the broker it is connected to
//
// - A device's credentials go to the broker named on its record; a device with none recorded (the
//   embedded gateway's, or one provisioned on a single broker before) belongs to the first.
// - A bundle goes through the broker where the device's presence is online: that is its own, the
//   only broker that lets it in.
// - Connected, offline and device messages come from every broker to the same hooks; each link
//   sends what devices should hold again when it comes back (`external-transport.ts`), for its own.
import type { BrokerCounters, BrokerPorts } from '../broker.ts';
import type { DeviceCredentials, DeviceTransport } from '../device-transport.ts';
import type { ExternalBrokerCounters } from './external.ts';
import { ExternalTransport, type ExternalTransportHooks, type ExternalTransportOptions } from './external-transport.ts';

export class ExternalBrokers implements DeviceTransport, DeviceCredentials {
  readonly #links: ExternalTransport[];
  readonly #byUrl = new Map<string, ExternalTransport>();

  /** Connects to every broker at once; when one refuses or does not answer, the others are closed and the error names it. */
  static async start(links: readonly ExternalTransportOptions[], hooks: ExternalTransportHooks = {}): Promise<ExternalBrokers> {
    if (links.length === 0) throw new TypeError('expected at least one broker');
    const seen = new Set<string>();
    for (const l of links) {
      const url = l.deviceUrl ?? l.url;
      if (seen.has(url)) throw new TypeError(`broker ${url} is listed twice`);
      seen.add(url);
    }
    const started = await Promise.allSettled(links.map((l) => ExternalTransport.start(l, hooks)));
    const failed = started.findIndex((s) => s.status === 'rejected');
    if (failed >= 0) {
      await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
      const err = (started[failed] as PromiseRejectedResult).reason as Error;
      throw links.length === 1 ? err : new Error(`broker ${failed + 1} of ${links.length} (${links[failed].url}): ${err.message}`, { cause: err });
    }
    return new ExternalBrokers(started.map((s) => (s as PromiseFulfilledResult<ExternalTransport>).value));
  }

  private constructor(links: ExternalTransport[]) {
    this.#links = links;
    for (const l of links) this.#byUrl.set(l.deviceUrl, l);
  }

  /** The URLs devices are given, one per broker, in the configured order; the first holds devices with none recorded. */
  get brokers(): string[] {
    return this.#links.map((l) => l.deviceUrl);
  }

  /** The first broker's device URL (`GET /v1/info`'s `mqttUrl`). */
  get deviceUrl(): string {
    return this.#links[0].deviceUrl;
  }

  /** Each broker's link, in order (tests, benchmarks). */
  get links(): readonly ExternalTransport[] {
    return this.#links;
  }

  get ports(): BrokerPorts {
    return {};
  }

  isConnected(id: string): boolean {
    return this.#links.some((l) => l.isConnected(id));
  }

  connectedCount(): number {
    let n = 0;
    for (const l of this.#links) n += l.connectedCount();
    return n;
  }

  async publishToDevices(ids: readonly string[], payload: Buffer): Promise<number> {
    if (this.#links.length === 1) return this.#links[0].publishToDevices(ids, payload);
    const parts: string[][] = this.#links.map(() => []);
    for (const id of ids) {
      const i = this.#links.findIndex((l) => l.isConnected(id));
      if (i >= 0) parts[i].push(id);
    }
    const handed = await Promise.all(this.#links.map((l, i) => (parts[i].length > 0 ? l.publishToDevices(parts[i], payload) : 0)));
    return handed.reduce((a, b) => a + b, 0);
  }

  /** The broker holds the device's connection: only a credential change (rotate, revoke) ends it. */
  disconnect(_id: string): boolean {
    return false;
  }

  /** Summed over the brokers; with several, `brokers` holds each one's client counters, in order. */
  counters(): BrokerCounters & { external: ExternalBrokerCounters; brokers?: ExternalBrokerCounters[] } {
    const all = this.#links.map((l) => l.counters());
    if (all.length === 1) return all[0];
    const sum = <T extends object>(parts: T[]): T => {
      const out = { ...parts[0] } as Record<string, unknown>;
      for (const p of parts.slice(1)) for (const [k, v] of Object.entries(p)) if (typeof v === 'number') out[k] = (out[k] as number) + v;
      return out as T;
    };
    return { ...sum(all), external: sum(all.map((c) => c.external)), brokers: all.map((c) => c.external) };
  }

  // ---------------------------------------------------------------- credentials: each device's own broker

  async provision(devices: ReadonlyArray<{ id: string; token: string; broker?: string }>): Promise<void> {
    const groups = new Map<ExternalTransport, Array<{ id: string; token: string }>>();
    for (const d of devices) {
      const link = this.#linkOf(d.id, d.broker);
      groups.get(link)?.push({ id: d.id, token: d.token }) ?? groups.set(link, [{ id: d.id, token: d.token }]);
    }
    const results = await Promise.allSettled([...groups].map(([link, list]) => link.provision(list)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${[...groups.keys()][i].deviceUrl}: ${(r.reason as Error).message}`] : []));
    if (failed.length > 0) throw new Error(failed.join('; '));
  }

  rotate(id: string, token: string, broker?: string): Promise<void> {
    return this.#linkOf(id, broker).rotate(id, token);
  }

  revoke(id: string, broker?: string): Promise<void> {
    return this.#linkOf(id, broker).revoke(id);
  }

  #linkOf(id: string, broker: string | undefined): ExternalTransport {
    if (broker === undefined) return this.#links[0];
    const link = this.#byUrl.get(broker);
    if (!link) throw new Error(`device ${id} was provisioned onto the broker ${broker}, which is not one of this gateway's (${this.brokers.join(', ')})`);
    return link;
  }

  // ---------------------------------------------------------------- shutdown

  stopAccepting(): void {
    for (const l of this.#links) l.stopAccepting();
  }

  async settled(): Promise<void> {
    await Promise.all(this.#links.map((l) => l.settled()));
  }

  async close(): Promise<void> {
    await Promise.all(this.#links.map((l) => l.close()));
  }
}
