// The URL of a broker as a device is given it (docs/architecture.md §8): `mqtt://`, `mqtts://`,
// `ws://` or `wss://`, a host and a port, printable ASCII with no credentials. Pure.
//
//   isBrokerUrl('mqtt://10.0.0.11:18830');   // → true
//   isBrokerUrl('mqtt://user:pw@host:1883'); // → false (credentials never travel in a URL)
const BROKER_URL_RE = /^(mqtts?|wss?):\/\/[A-Za-z0-9._\-[\]:]+:[0-9]{1,5}(\/[\x21-\x7e]*)?$/;

/** At most this long: a device record carries it. */
export const MAX_BROKER_URL = 300;

export function isBrokerUrl(v: unknown): v is string {
  return typeof v === 'string' && v.length <= MAX_BROKER_URL && BROKER_URL_RE.test(v);
}
