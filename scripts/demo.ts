// `npm run demo`: the one-command story. Until the gateway and the device simulator exist, it runs
// the bundle round trip a device and an operator go through, and says so.
import { createHash } from 'node:crypto';
import { apply, checkChain, formatPin, generateKeyPair, initialState, signBundle, validateManifest, type FirmwareManifest } from '../firmware-manifest/index.ts';

const say = (s = '') => console.log(s);
const pin = (label: string) => new Uint8Array(createHash('sha256').update(label).digest());
const now = Math.floor(Date.now() / 1000);

say('pinwave demo: the signed pin bundle round trip (the gateway and fleet demo comes with the simulator)');
say();
const key = generateKeyPair();
const [oldKey, backup, newKey] = [pin('server key 2025'), pin('offline backup key'), pin('server key 2026')];
const manifest: FirmwareManifest = {
  model: 'th-100',
  firmware: '1.4.2',
  trustedKeys: [key.publicPem],
  pins: [{ host: 'api.example.com', pins: [formatPin(oldKey), formatPin(backup)] }],
};
const checked = validateManifest(manifest);
if (!checked.ok) throw new Error('demo manifest invalid');
let device = initialState(checked.manifest, 'thermostats');
say(`1. a th-100 thermostat is born pinning api.example.com to ${formatPin(oldKey).slice(0, 20)}… and a backup pin`);
say(`   its server rotates to a new key: handshake check says "${checkChain(device, 'api.example.com', 443, [newKey], now)}"`);
const signed = signBundle({ seq: 1, iat: now, exp: now + 30 * 86400, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [newKey, backup] }] }, key.seed);
say(`2. the operator signs bundle seq 1 with the new pin and the backup: ${signed.bytes.length} bytes, id ${signed.id.slice(0, 16)}…`);
const applied = apply(device, signed.bytes, now);
if (!applied.ok) throw new Error(`demo bundle rejected: ${applied.reason}`);
device = applied.state;
say(`3. the device verifies and applies it atomically: seq ${device.seq}; handshake check now says "${checkChain(device, 'api.example.com', 443, [newKey], now)}"`);
const replay = apply(device, signBundle({ seq: 1, iat: now, exp: now + 86400, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [oldKey, backup] }] }, key.seed).bytes, now);
say(`4. an attacker replays an old-style bundle with seq 1: ${replay.ok ? 'applied (!)' : `rejected: ${replay.reason}`}`);
const forged = apply(device, signBundle({ seq: 2, iat: now, exp: now + 86400, group: 'thermostats', endpoints: [{ host: 'api.example.com', port: 443, pins: [oldKey, backup] }] }, generateKeyPair().seed).bytes, now);
say(`5. and one signed by a key the device does not trust: ${forged.ok ? 'applied (!)' : `rejected: ${forged.reason}`}`);
