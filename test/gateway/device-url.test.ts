// The MQTT URL devices are given by a gateway on its embedded broker (gateway/device-url.ts): never a
// wildcard listen address, which no device can connect to.
import t from 'tap';
import { embeddedMqttUrl, isWildcardHost } from '../../gateway/device-url.ts';

t.test('0.0.0.0 and :: in every spelling are wildcards; an address of the machine is not', async (t) => {
  for (const h of ['0.0.0.0', '::', '[::]', '::0', '0:0:0:0:0:0:0:0']) t.ok(isWildcardHost(h), h);
  for (const h of ['127.0.0.1', '::1', '10.0.0.5', 'gw.example.com', '0.0.0.1', '::ffff:0.0.0.0']) t.notOk(isWildcardHost(h), h);
});

t.test('a wildcard listen gives the address a request came in on, where the wildcard covers it; otherwise the listener as bound', async (t) => {
  const ports = { tcp: 1883 };
  t.equal(embeddedMqttUrl({ host: '0.0.0.0', ports, via: '10.0.0.5' }), 'mqtt://10.0.0.5:1883');
  t.equal(embeddedMqttUrl({ host: '0.0.0.0', ports, via: '::ffff:10.0.0.5' }), 'mqtt://10.0.0.5:1883', 'an IPv4-mapped address as IPv4');
  t.equal(embeddedMqttUrl({ host: '::', ports, via: '2001:db8::5' }), 'mqtt://[2001:db8::5]:1883');
  t.equal(embeddedMqttUrl({ host: '0.0.0.0', ports, via: '2001:db8::5' }), 'mqtt://0.0.0.0:1883', '0.0.0.0 does not listen on an IPv6 address');
  t.equal(embeddedMqttUrl({ host: '::', ports, via: 'fe80::1%eth0' }), 'mqtt://[::]:1883', 'a link-local address with its zone reaches no other link');
  t.equal(embeddedMqttUrl({ host: '0.0.0.0', ports }), 'mqtt://0.0.0.0:1883', 'no request: the listener as bound');
  t.equal(embeddedMqttUrl({ host: '10.0.0.7', ports, via: '10.0.0.5' }), 'mqtt://10.0.0.7:1883', 'an address of its own is kept');
  t.equal(embeddedMqttUrl({ host: '::', ports: { tls: 8883 }, via: '127.0.0.1' }), 'mqtts://127.0.0.1:8883', 'the TLS listener when plain is off');
  t.equal(embeddedMqttUrl({ deviceUrl: 'mqtts://gw.example.com:8883', host: '0.0.0.0', ports, via: '10.0.0.5' }), 'mqtts://gw.example.com:8883', 'the configured one wins');
});
