// The MQTT URL devices are given (`GET /v1/info`, what `pinwave sim --api` connects to) by a gateway
// on its embedded broker (docs/configuration.md, `mqtt.deviceUrl`). A listener bound to a wildcard
// address (0.0.0.0, ::) is reachable at every address of the machine, but the wildcard itself is no
// address to connect to: without `mqtt.deviceUrl` a caller is given the address its request came in
// on, and the start warns, naming the key.
//
//   embeddedMqttUrl({ host: '0.0.0.0', ports: { tcp: 1883 }, via: '10.0.0.5' });   // 'mqtt://10.0.0.5:1883'
//   embeddedMqttUrl({ deviceUrl: 'mqtts://gw.example.com:8883', host: '0.0.0.0', ports: { tcp: 1883 } });   // the configured one
import { isIP } from 'node:net';
import { endpointText } from '../firmware-manifest/index.ts';

/** Whether `host` is a wildcard listen address: 0.0.0.0, or :: in any spelling (::0, [::], 0:0:0:0:0:0:0:0). */
export function isWildcardHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  return h === '0.0.0.0' || (isIP(h) === 6 && /^[0:]+$/.test(h));
}

/**
 * The URL devices are given: `deviceUrl` when configured; else the plain listener's (the TLS one's when
 * plain is off) on `host`, or for a wildcard `host` on `via`, the local address a caller's request came
 * in on, when the wildcard covers it (:: covers IPv4 too: Node binds it dual-stack, scripts/start-checks.ts).
 */
export function embeddedMqttUrl(o: { deviceUrl?: string; host: string; ports: { tcp?: number; tls?: number }; via?: string }): string {
  if (o.deviceUrl !== undefined) return o.deviceUrl;
  const via = o.via?.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
  // A link-local address with its zone (fe80::1%eth0) reaches nobody on another link.
  const usable = via !== undefined && !via.includes('%') && (isIP(via) === 4 || (isIP(via) === 6 && isIP(o.host.replace(/^\[(.*)\]$/, '$1')) === 6));
  const at = isWildcardHost(o.host) && usable ? via : o.host;
  const { tcp, tls } = o.ports;
  return tcp !== undefined ? `mqtt://${endpointText(at, tcp)}` : `mqtts://${endpointText(at, tls!)}`;
}

/** What a start (and `pinwave config check`) warns of: MQTT on a wildcard address with no `mqtt.deviceUrl` to tell devices; null otherwise. */
export function deviceUrlWarning(c: { host: string; mqtt: { deviceUrl?: string }; broker?: unknown }): string | null {
  if (c.broker !== undefined || c.mqtt.deviceUrl !== undefined || !isWildcardHost(c.host)) return null;
  return `MQTT listens on ${c.host}, which no device can connect to: GET /v1/info (pinwave sim --api) gives each caller the address its request came in on, which devices elsewhere may not reach (behind NAT or a proxy, or by a name a TLS certificate names); set mqtt.deviceUrl (--mqtt-device-url, PINWAVE_MQTT_DEVICE_URL) to the URL devices connect to`;
}
