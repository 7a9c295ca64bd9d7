// The MQTT listener options of the config (gateway/config.ts): mqtt.plain and mqtt.maxKeepaliveSeconds.
import { writeFileSync } from 'node:fs';
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
