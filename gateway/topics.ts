// MQTT topics of the device contract (docs/architecture.md §5): `pinwave/v1/devices/<id>/<kind>`.
// `bundle` flows gateway → device; `state`, `ack` and `telemetry` flow device → gateway.
//
//   deviceTopic('meter-7', 'bundle');                      // 'pinwave/v1/devices/meter-7/bundle'
//   parseDeviceTopic('pinwave/v1/devices/meter-7/ack');    // { id: 'meter-7', kind: 'ack' }
//   isFilterWithinDevice('pinwave/v1/devices/+/bundle', 'meter-7');   // false
import { checkDeviceId, isDeviceId } from './device-id.ts';

export const DEVICE_TOPIC_ROOT = 'pinwave/v1/devices/';

export type DeviceTopicKind = 'bundle' | 'state' | 'ack' | 'telemetry';
/** The kinds a device publishes. */
export type DeviceMessageKind = 'state' | 'ack' | 'telemetry';

export const DEVICE_TOPIC_KINDS: readonly DeviceTopicKind[] = ['bundle', 'state', 'ack', 'telemetry'];
export const DEVICE_MESSAGE_KINDS: readonly DeviceMessageKind[] = ['state', 'ack', 'telemetry'];

export interface DeviceTopic {
  id: string;
  kind: DeviceTopicKind;
}

/** The topic of `kind` for device `id`; throws on an id that is not a device id (it would break the topic). */
export function deviceTopic(id: string, kind: DeviceTopicKind): string {
  return `${devicePrefix(id)}${kind}`;
}

/** The filter a device subscribes with: everything under its own id. */
export function deviceSubscription(id: string): string {
  return `${devicePrefix(id)}#`;
}

/** `{ id, kind }` for an exact device topic (no wildcards, a valid id, a known kind), else null. */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  if (!topic.startsWith(DEVICE_TOPIC_ROOT)) return null;
  const slash = topic.indexOf('/', DEVICE_TOPIC_ROOT.length);
  if (slash < 0) return null;
  const id = topic.slice(DEVICE_TOPIC_ROOT.length, slash);
  const kind = topic.slice(slash + 1);
  if (!isDeviceId(id) || !isTopicKind(kind)) return null;
  return { id, kind };
}

/** True for `state`, `ack`, `telemetry`: what a device may publish. */
export function isDeviceMessageKind(kind: string): kind is DeviceMessageKind {
  return kind === 'state' || kind === 'ack' || kind === 'telemetry';
}

/**
 * True when the filter is one a device may hold: `pinwave/v1/devices/<id>/#` or `…/<id>/bundle`,
 * so every topic it can match lies under device `id`'s own root.
 * Wildcards match only at and below their own level (MQTT 3.1.1 §4.7.1), and `#` also matches
 * its parent [MQTT-4.7.1-2], so a filter whose first four levels are the literal
 * `pinwave/v1/devices/<id>` can reach nothing but that device's topics; any wildcard in those
 * levels (`pinwave/v1/devices/+/bundle`, `pinwave/#`, `#`) or another id cannot.
 */
export function isFilterWithinDevice(filter: string, id: string): boolean {
  if (!isDeviceId(id) || !filter.startsWith(`${DEVICE_TOPIC_ROOT}${id}/`)) return false;
  // docs/architecture.md §5: `…/<id>/#`, or the bundle topic itself. Nothing else: every distinct filter a
  // device may hold is broker memory it could grow without bound (and keep in its session).
  const rest = filter.slice(DEVICE_TOPIC_ROOT.length + id.length + 1);
  return rest === '#' || rest === 'bundle';
}

function isTopicKind(kind: string): kind is DeviceTopicKind {
  return kind === 'bundle' || isDeviceMessageKind(kind);
}

function devicePrefix(id: string): string {
  // one match for the id that passes (every bundle published builds its topic here); the check that names the fault only for one that does not
  if (isDeviceId(id)) return `${DEVICE_TOPIC_ROOT}${id}/`;
  const check = checkDeviceId(id);
  throw new TypeError(check.ok ? `expected a device id, got ${JSON.stringify(id)}` : check.message);
}
