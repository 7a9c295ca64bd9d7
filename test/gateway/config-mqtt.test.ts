// The MQTT listener options of the config (gateway/config.ts): mqtt.plain, mqtt.maxKeepaliveSeconds and mqtt.deviceUrl.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, loadConfig } from '../../gateway/config.ts';

const flags = { dataDir: '/d', keyPath: '/k.pem' };

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('the config was accepted');
}

t.test('mqtt.plain: false turns the plaintext listener off when TLS is configured, and is refused without it', async (t) => {
  const dir = t.testdir({ 'server.key': 'key', 'server.crt': 'cert' });
  const file = (mqtt: object) => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify({ mqtt }));
    return path;
  };
  const tls = { key: 'server.key', cert: 'server.crt', port: 0 };
  t.notOk('plain' in loadConfig({ file: file({ tls }), flags }).mqtt, 'on by default');
  t.match(loadConfig({ file: file({ plain: false, tls }), flags }).mqtt, { plain: false, tls: { port: 0 } });
  t.same(problems(() => loadConfig({ file: file({ plain: false }), flags })), [
    'config.mqtt.plain: false turns the plaintext listener off and needs config.mqtt.tls: with neither, no device could connect',
  ]);
  t.same(problems(() => loadConfig({ file: file({ plain: 'no' }), flags })), ['config.mqtt.plain: must be true or false, got "no"']);
});

t.test('mqtt.maxKeepaliveSeconds is 1 to 65535 seconds, absent unless set', async (t) => {
  const dir = t.testdir({});
  const file = (v: unknown) => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify({ mqtt: { maxKeepaliveSeconds: v } }));
    return path;
  };
  t.equal(loadConfig({ file: file(300), flags }).mqtt.maxKeepaliveSeconds, 300);
  t.equal(loadConfig({ flags }).mqtt.maxKeepaliveSeconds, undefined, 'the broker default (1200) applies');
  for (const bad of [0, 65536, 1.5, '60']) {
    t.same(problems(() => loadConfig({ file: file(bad), flags })), [`config.mqtt.maxKeepaliveSeconds: must be an integer 1-65535, got ${typeof bad === 'string' ? JSON.stringify(bad) : bad}`], String(bad));
  }
});

t.test('mqtt.deviceUrl (PINWAVE_MQTT_DEVICE_URL, --mqtt-device-url) is a broker URL devices can connect to, for the embedded broker only', async (t) => {
  const dir = t.testdir({ 'gateway-broker.json': JSON.stringify({ username: 'gw', password: 'secret-password-0123' }) });
  chmodSync(join(dir, 'gateway-broker.json'), 0o600);
  const file = (v: object) => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify(v));
    return path;
  };
  t.notOk('deviceUrl' in loadConfig({ flags }).mqtt, 'absent unless set');
  const url = 'mqtts://gw.example.com:8883';
  t.equal(loadConfig({ file: file({ mqtt: { deviceUrl: url } }), flags }).mqtt.deviceUrl, url);
  t.equal(loadConfig({ file: file({ mqtt: { deviceUrl: url } }), env: { PINWAVE_MQTT_DEVICE_URL: 'mqtt://10.0.0.5:1883' }, flags }).mqtt.deviceUrl, 'mqtt://10.0.0.5:1883', 'the variable over the file');
  t.equal(loadConfig({ env: { PINWAVE_MQTT_DEVICE_URL: 'mqtt://10.0.0.5:1883' }, flags: { ...flags, mqttDeviceUrl: 'mqtt://[2001:db8::5]:1883' } }).mqtt.deviceUrl, 'mqtt://[2001:db8::5]:1883', 'the flag over the variable');
  t.same(problems(() => loadConfig({ file: file({ mqtt: { deviceUrl: 'ws://gw.example.com:8083' } }), flags })), ['config.mqtt.deviceUrl: must be mqtt://HOST:PORT or mqtts://HOST:PORT, got "ws://gw.example.com:8083"']);
  t.same(problems(() => loadConfig({ env: { PINWAVE_MQTT_DEVICE_URL: 'mqtt://gw.example.com' }, flags })), ['PINWAVE_MQTT_DEVICE_URL: must name the port (1883 is never assumed), got "mqtt://gw.example.com"']);
  t.same(problems(() => loadConfig({ flags: { ...flags, mqttDeviceUrl: 'mqtt://0.0.0.0:1883' } })), ['--mqtt-device-url: must name an address devices can connect to, not the wildcard 0.0.0.0, got "mqtt://0.0.0.0:1883"']);
  t.same(problems(() => loadConfig({ file: file({ mqtt: { deviceUrl: 'mqtt://[::]:1883' } }), flags })), ['config.mqtt.deviceUrl: must name an address devices can connect to, not the wildcard [::], got "mqtt://[::]:1883"']);
  t.same(problems(() => loadConfig({ file: file({ mqtt: { deviceUrl: 7 } }), flags })), ['config.mqtt.deviceUrl: must be a non-empty string, got 7']);
  t.same(
    problems(() => loadConfig({ file: file({ mqtt: { deviceUrl: url }, broker: { url: 'mqtt://127.0.0.1:18830', auth: 'gateway-broker.json' } }), flags })),
    ['config.mqtt.deviceUrl: is the embedded broker\'s; in external broker mode devices are given broker.deviceUrl (default broker.url)'],
  );
});
