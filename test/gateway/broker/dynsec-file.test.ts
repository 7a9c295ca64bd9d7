// The dynamic-security file and the ACL it encodes, as values (gateway/broker/dynsec-file.ts,
// presence.ts, mosquitto-conf.ts). What a real Mosquitto makes of them is in mosquitto.test.ts.
import t from 'tap';
import { hashDeviceToken, newToken, parseDeviceTokenHash } from '../../../gateway/credentials.ts';
import {
  buildDynsecFile,
  deviceRole,
  deviceRoleName,
  gatewayFilter,
  gatewayRole,
  GATEWAY_ROLE,
  GATEWAY_USERNAME,
  serializeDynsecFile,
} from '../../../gateway/broker/dynsec-file.ts';
import { parsePresence, parsePresenceTopic, presenceTopic } from '../../../gateway/broker/presence-topic.ts';
import { mosquittoConf } from '../../../gateway/broker/mosquitto-conf.ts';

const gatewayHash = hashDeviceToken(newToken());

t.test('a device role grants exactly its own topics of the device contract', async (t) => {
  const role = deviceRole('meter-7');
  t.equal(role.rolename, 'pinwave-device:meter-7');
  const by = (type: string) => role.acls.filter((a) => a.acltype === type).map((a) => a.topic).sort();
  t.same(by('subscribeLiteral'), ['pinwave/v1/devices/meter-7/#', 'pinwave/v1/devices/meter-7/bundle']);
  t.same(by('publishClientReceive'), ['pinwave/v1/devices/meter-7/bundle']);
  t.same(by('publishClientSend'), ['ack', 'presence', 'state', 'telemetry'].map((k) => `pinwave/v1/devices/meter-7/${k}`));
  t.equal(role.acls.length, 7, 'nothing else');
  t.ok(role.acls.every((a) => a.allow === true && !/[+#%]/.test(a.topic.replace(/\/#$/, ''))), 'only allows, no wildcard or pattern but the trailing #');
  t.throws(() => deviceRole('a/b'), TypeError);
  t.throws(() => deviceRoleName('+'), TypeError);
});

t.test('the gateway role reads device messages through the share group and writes bundles and control', async (t) => {
  const role = gatewayRole();
  t.equal(role.rolename, GATEWAY_ROLE);
  const by = (type: string) => role.acls.filter((a) => a.acltype === type).map((a) => a.topic).sort();
  t.same(by('subscribeLiteral'), [
    '$CONTROL/dynamic-security/v1/response',
    '$share/pinwave/pinwave/v1/devices/+/ack',
    '$share/pinwave/pinwave/v1/devices/+/presence',
    '$share/pinwave/pinwave/v1/devices/+/state',
    '$share/pinwave/pinwave/v1/devices/+/telemetry',
    'pinwave/v1/devices/+/presence',
  ]);
  t.same(by('publishClientSend'), ['$CONTROL/dynamic-security/v1', 'pinwave/v1/devices/+/bundle', 'pinwave/v1/devices/+/presence'], 'bundles, control, and presence (a kicked device leaves no will)');
  t.notOk(by('publishClientSend').some((topic) => /\/(state|ack|telemetry)$/.test(topic)), 'it cannot forge a device\'s reports');
  t.notOk(by('publishClientReceive').some((topic) => topic.endsWith('/bundle')), 'it cannot read bundles');
  t.equal(gatewayFilter('ack', true, 'blue'), '$share/blue/pinwave/v1/devices/+/ack');
  t.throws(() => gatewayFilter('ack', true, 'a/b'), /share group/);
});

t.test('moving a fleet writes every device with the hash the store holds, and says who was left out', async (t) => {
  const tokenHash = hashDeviceToken(newToken());
  const built = buildDynsecFile({
    gateway: { tokenHash: gatewayHash },
    devices: [
      { id: 'dev-a', tokenHash },
      { id: 'dev-b', tokenHash: 'sha256:' + 'A'.repeat(43) },
      { id: 'dev-c', tokenHash, revokedAt: 5 },
      { id: 'dev-d', tokenHash: 'garbage' },
      { id: 'dev-a', tokenHash },
      { id: 'bad/id', tokenHash },
    ],
  });
  t.equal(built.devices, 1);
  t.same(built.skipped, [
    { id: 'dev-b', reason: 'legacy_hash' },
    { id: 'dev-c', reason: 'revoked' },
    { id: 'dev-d', reason: 'malformed_hash' },
    { id: 'dev-a', reason: 'duplicate' },
    { id: 'bad/id', reason: 'bad_id' },
  ]);
  const h = parseDeviceTokenHash(tokenHash)!;
  const client = built.file.clients.find((c) => c.username === 'dev-a')!;
  t.same(client, { username: 'dev-a', clientid: 'dev-a', password: h.hash.toString('base64'), salt: h.salt.toString('base64'), iterations: h.iterations, roles: [{ rolename: 'pinwave-device:dev-a' }] });
  t.equal(built.file.clients[0].username, GATEWAY_USERNAME);
  t.notOk('clientid' in built.file.clients[0], 'the gateway client is not tied to one client id (replicas, takeover)');
  t.same(built.file.defaultACLAccess, { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true });
  const text = serializeDynsecFile(built.file);
  t.same(JSON.parse(text), built.file, 'the text is the file');
  t.notMatch(text, /sha256:/, 'no legacy hash leaks into the broker');
  t.throws(() => buildDynsecFile({ gateway: { tokenHash: 'sha256:x' } }), /\$7\$/);
});

t.test('presence topics and payloads', async (t) => {
  t.equal(presenceTopic('m-1'), 'pinwave/v1/devices/m-1/presence');
  t.equal(parsePresenceTopic('pinwave/v1/devices/m-1/presence'), 'm-1');
  for (const topic of ['pinwave/v1/devices/+/presence', 'pinwave/v1/devices/m-1/state', 'pinwave/v1/devices/a/b/presence', 'x/presence']) t.equal(parsePresenceTopic(topic), null, topic);
  t.equal(parsePresence(Buffer.from('online')), 'online');
  t.equal(parsePresence(Buffer.from('offline')), 'offline');
  t.equal(parsePresence(Buffer.alloc(0)), 'offline', 'a cleared retained presence');
  for (const p of ['Online', 'online\n', ' ', 'offline!']) t.equal(parsePresence(Buffer.from(p)), null, JSON.stringify(p));
  t.throws(() => presenceTopic('a#'), TypeError);
});

t.test('mosquitto.conf: one listener, no anonymous clients, the plugin, persistence in the dir', async (t) => {
  const conf = mosquittoConf({ dir: '/srv/broker/', port: 18830, user: 'mosquitto' });
  for (const line of [
    'per_listener_settings false',
    'allow_anonymous false',
    'listener 18830 127.0.0.1',
    'plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
    'plugin_opt_config_file /srv/broker/dynamic-security.json',
    'persistence true',
    'persistence_location /srv/broker',
    'persistent_client_expiration 7d',
    'max_queued_messages 1000000',
    'user mosquitto',
  ]) t.match(conf, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), line);
  t.equal(conf.match(/^listener /gm)?.length, 1, 'one listener');
  t.notMatch(conf, /\b1883\b/, 'never the shared broker\'s port');
  t.throws(() => mosquittoConf({ dir: '/a b', port: 1 }), /without spaces/);
  t.throws(() => mosquittoConf({ dir: 'relative', port: 1 }), /absolute/);
  t.throws(() => mosquittoConf({ dir: '/a', port: 0 }), /port/);
  t.throws(() => mosquittoConf({ dir: '/a', port: 1, sessionExpiry: '7 days' }), /sessionExpiry/);
});
