// Presence from the protocol, not from the broker's internals (docs/architecture.md §5, §8): a
// device publishes `online` (retained, QoS 1) on its own `presence` topic once connected, and
// leaves `offline` there as its will, which the broker publishes when the link drops without a
// DISCONNECT. A gateway that does not own the broker learns who is connected from these alone.
//
//   presenceTopic('meter-7');                     // 'pinwave/v1/devices/meter-7/presence'
//   parsePresenceTopic('pinwave/v1/devices/meter-7/presence');   // 'meter-7'
//   parsePresence(Buffer.from('offline'));        // 'offline'
//
// The payload is the ASCII word, nothing else: a fixed string is what firmware can hand its MQTT
// stack as a will before it has anything to encode.
//
// A will is not published when the broker itself closes the session (Mosquitto 2.0 kicks a client
// without its will when its credentials are changed or deleted), so whoever changes credentials
// sets the device's presence itself (the gateway's broker role may publish on presence topics).
import { isDeviceId } from '../device-id.ts';
import { DEVICE_TOPIC_ROOT, deviceTopic } from '../topics.ts';

export const PRESENCE_KIND = 'presence';
export type Presence = 'online' | 'offline';

const SUFFIX = `/${PRESENCE_KIND}`;

/** Device `id`'s presence topic; throws a TypeError for an id that is not a device id. */
export function presenceTopic(id: string): string {
  // deviceTopic checks the id; its `state` topic differs from this one only in the last level
  return deviceTopic(id, 'state').slice(0, -'state'.length) + PRESENCE_KIND;
}

/** The device id of an exact presence topic, else null. */
export function parsePresenceTopic(topic: string): string | null {
  if (!topic.startsWith(DEVICE_TOPIC_ROOT) || !topic.endsWith(SUFFIX)) return null;
  const id = topic.slice(DEVICE_TOPIC_ROOT.length, -SUFFIX.length);
  return isDeviceId(id) ? id : null;
}

/**
 * `online` or `offline`, or null for any other payload. An empty payload is `offline`: it is what
 * clearing a retained presence delivers (the gateway clears a revoked device's).
 */
export function parsePresence(payload: Uint8Array): Presence | null {
  if (payload.byteLength === 0) return 'offline';
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1');
  return text === 'online' || text === 'offline' ? text : null;
}
