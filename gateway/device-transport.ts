// What the gateway needs of the MQTT side (docs/architecture.md §5, §8), whichever it runs on: the
// embedded aedes broker (`broker.ts`, devices connect to the gateway) or an external broker it is a
// client of (`broker/external-transport.ts`, devices connect to the broker). The gateway facade holds
// one `DeviceTransport`; the device registry calls its `DeviceCredentials`, when it has them, so
// that the broker's idea of who may connect follows the store's.
//
//   const transport: DeviceTransport = external ? await ExternalTransport.start(…) : await DeviceBroker.start(…);
//   await transport.publishToDevices(['th-1'], bundleBytes);   // QoS 1, not retained, to those connected
import type { BrokerCounters, BrokerPorts } from './broker.ts';
import type { ExternalBrokerCounters } from './broker/external.ts';
import type { DeviceLink } from './delivery.ts';

export interface DeviceTransport extends DeviceLink {
  /** Devices connected now (the embedded broker's sessions, or presence in external mode). */
  connectedCount(): number;
  /** The embedded broker's counters; in external mode those that apply, and the client's own under `external` (summed; each broker's under `brokers` when there are several). */
  counters(): BrokerCounters & { external?: ExternalBrokerCounters; brokers?: ExternalBrokerCounters[] };
  /** The embedded broker's listeners; none in external mode. */
  readonly ports: BrokerPorts;
  /** Shutdown, first step: no new device message is taken (one not taken is sent again later). */
  stopAccepting(): void;
  /** Resolves once every device message taken has been handled. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Device credentials held outside the gateway's store (docs/architecture.md §8: Mosquitto's
 * dynamic-security plugin). Each resolves once the broker has the change, and rejects when it
 * could not be made: the caller reports it, since a token the store replaced would otherwise still
 * open the broker.
 */
export interface DeviceCredentials {
  /**
   * The brokers a new device may be provisioned onto, by the URL devices are given (several:
   * docs/architecture.md §8, the fleet sharded across them); a device with none recorded belongs
   * to the first.
   */
  readonly brokers: readonly string[];
  /** New devices and their tokens (in clear: the plugin hashes them itself), each to its broker. */
  provision(devices: ReadonlyArray<{ id: string; token: string; broker?: string }>): Promise<void>;
  /** A device's new token, on its broker, which ends the sessions opened with the old one. */
  rotate(id: string, token: string, broker?: string): Promise<void>;
  /** The device may not connect to its broker any more; the broker ends its sessions. */
  revoke(id: string, broker?: string): Promise<void>;
}
