// What a device may say (docs/architecture.md §5), as pure checks over the packet's fields: the
// broker asks, and performs the answer (a refusing CONNACK, a SUBACK failure, a closed connection).
//
//   connectRefusal({ clientId: 'meter-1', assignedId: 'meter-1', will: null }, 'meter-1', token); // null
//   subscribeAllowed('meter-1', 'pinwave/v1/devices/meter-2/#');                                 // false
//   publishDenial('meter-1', { topic: 'pinwave/v1/devices/meter-1/ack', qos: 1, retain: false, size: 40 }, 16384); // null
//   publishDenial('meter-1', { topic: 'pinwave/v1/devices/meter-1/presence', qos: 1, retain: true, size: 6 }, 16384); // null
//
// Presence (docs/architecture.md §5, §8): a device may leave a will, only `offline` on its own
// `presence` topic at QoS 0 or 1, and may publish `online`/`offline` there. A retained presence is
// let through (firmware written for an external broker retains it) but the broker stores nothing
// retained: it clears the flag before the message goes on.
import { isDeviceId } from '../device-id.ts';
import { DEVICE_TOPIC_ROOT, isDeviceMessageKind, isFilterWithinDevice, type DeviceMessageKind } from '../topics.ts';
import { parsePresence, parsePresenceTopic, PRESENCE_KIND } from './presence-topic.ts';

/** Why a CONNECT was refused. */
export type ConnectRefusal =
  | 'bad_client_id' //      not a device id (CONNACK 2, identifier rejected)
  | 'missing_credentials' // no username or no password (4)
  | 'username_mismatch' //  username is not the client id (4)
  | 'bad_credentials' //    authenticate() said no: unknown device or wrong token (4)
  | 'will' //               a will other than `offline` on the device's own presence topic at QoS 0 or 1 (5)
  | 'disconnected' //       disconnect(id) was called while authenticate() was running (5)
  | 'auth_error' //         authenticate() threw (3, server unavailable)
  | 'shutting_down' //      stopAccepting() was called: the gateway is stopping (3, server unavailable)
  | 'protocol' //           not MQTT 3.1/3.1.1, refused by aedes (1)
  | 'other'; //             any other refusing CONNACK aedes sent

/** What a device tried that the ACL refused. */
export type AclDenial = 'subscribe' | 'publish_topic' | 'publish_qos' | 'publish_retain';

/** A PUBLISH refused: by the ACL, or for its size. */
export type PublishDenial = Exclude<AclDenial, 'subscribe'> | 'payload_too_large';

// CONNACK return codes a refusal may carry (MQTT 3.1.1 §3.2.2.3).
export type ReturnCode = 2 | 3 | 4 | 5;

export interface ConnectFields {
  /** The client id the CONNECT carried (aedes names a client that sent none itself). */
  clientId: string;
  /** The id aedes gave the client. */
  assignedId: string;
  /** the CONNECT's will, or null */
  will: WillFields | null;
}

/** A will as CONNECT carries it. */
export interface WillFields {
  topic: string;
  qos: number;
  retain: boolean;
  payload: Uint8Array;
}

/** True for the one will a device may leave: `offline` on its own presence topic, QoS 0 or 1. */
export function willAllowed(deviceId: string, will: WillFields): boolean {
  return parsePresenceTopic(will.topic) === deviceId && will.qos <= 1 && parsePresence(will.payload) === 'offline' && will.payload.byteLength > 0;
}

/** The refusal and its return code for a CONNECT that fails before its token is checked, or null. */
export function connectRefusal(
  c: ConnectFields,
  username: string | undefined,
  password: Buffer | undefined,
): { refusal: ConnectRefusal; returnCode: ReturnCode } | null {
  // [MQTT-3.1.3-9] a rejected client id is answered with 0x02, identifier rejected
  if (!isDeviceId(c.clientId) || c.assignedId !== c.clientId) return { refusal: 'bad_client_id', returnCode: 2 };
  if (c.will && !willAllowed(c.clientId, c.will)) return { refusal: 'will', returnCode: 5 };
  if (username === undefined || password === undefined) return { refusal: 'missing_credentials', returnCode: 4 };
  if (username !== c.clientId) return { refusal: 'username_mismatch', returnCode: 4 };
  return null;
}

/** A device may hold only filters under its own id (topics.ts says which). */
export function subscribeAllowed(deviceId: string, filter: string): boolean {
  return isFilterWithinDevice(filter, deviceId);
}

export interface PublishFields {
  topic: string;
  qos: number;
  retain: boolean;
  /** payload bytes */
  size: number;
}

/** What a device publishes on one of its own topics: its presence, or one of its messages. */
export type OwnPublishKind = DeviceMessageKind | typeof PRESENCE_KIND;

/**
 * The kind of `topic` when it is one of device `deviceId`'s own topics it may publish on
 * (`pinwave/v1/devices/<deviceId>/state`, `ack`, `telemetry` or `presence`), else null: the same
 * answer as parsing it (parseDeviceTopic, parsePresenceTopic) and comparing the id, without making
 * the parts (the broker asks it for every device PUBLISH).
 */
export function ownPublishKind(deviceId: string, topic: string): OwnPublishKind | null {
  const at = DEVICE_TOPIC_ROOT.length + deviceId.length;
  // a device id holds no `/`, so the level after the root is `deviceId` exactly when a `/` follows it here
  if (topic.charCodeAt(at) !== SLASH || !topic.startsWith(DEVICE_TOPIC_ROOT) || !topic.startsWith(deviceId, DEVICE_TOPIC_ROOT.length) || !isDeviceId(deviceId)) return null;
  const kind = topic.slice(at + 1);
  return kind === PRESENCE_KIND || isDeviceMessageKind(kind) ? kind : null;
}

/** Why device `deviceId` may not publish this, or null when it may. */
export function publishDenial(deviceId: string, p: PublishFields, maxPayloadBytes: number): PublishDenial | null {
  return publishDenialOf(ownPublishKind(deviceId, p.topic), p, maxPayloadBytes);
}

/** publishDenial for a PUBLISH whose topic ownPublishKind has classified as `kind`. */
export function publishDenialOf(kind: OwnPublishKind | null, p: Omit<PublishFields, 'topic'>, maxPayloadBytes: number): PublishDenial | null {
  if (kind === null) return 'publish_topic';
  if (p.qos > 1) return 'publish_qos';
  // Presence, retained or not: the broker clears the flag, so nothing is stored. Any other
  // message: devices must not create retained messages (aedes scans every retained message on
  // each SUBSCRIBE, and a retained report would be replayed to the gateway as if new).
  if (p.retain && kind !== PRESENCE_KIND) return 'publish_retain';
  if (p.size > maxPayloadBytes) return 'payload_too_large';
  return null;
}

const SLASH = 0x2f;
