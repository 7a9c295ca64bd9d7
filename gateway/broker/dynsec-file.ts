// The device ACL of docs/architecture.md §5 in the terms of Mosquitto's dynamic-security plugin
// (Mosquitto 2.0), and the plugin's JSON file built from a fleet's device records (§8, external
// broker mode). Pure: values in, values out; the CLI and the control client do the I/O.
//
//   const file = buildDynsecFile({ gateway: { tokenHash }, devices: [{ id: 'meter-1', tokenHash }] });
//   writeFileSync('dynamic-security.json', serializeDynsecFile(file.file), { mode: 0o600 });
//   file.skipped;   // [{ id, reason: 'legacy_hash' | 'revoked' | 'malformed_hash' }]
//
// Why one role per device: the plugin of Mosquitto 2.0 (2.0.11 checked) matches ACL topics
// literally. It has no `%c`/`%u` substitution (that arrived after the 2.0 series), so an ACL of
// `pinwave/v1/devices/%c/state` grants the literal topic `pinwave/v1/devices/%c/state` to everyone
// holding it and nothing else. A device's own topics can only be granted by a role that names
// them, so each device gets `pinwave-device:<id>` with exactly its seven ACLs. (Mosquitto's
// acl_file does substitute `%c`, but in 2.0 it grants every SUBSCRIBE unconditionally and only
// filters delivery, so a foreign subscription could no longer be refused as §5 requires.)
//
// What each ACL type means to the plugin: `publishClientSend` is what a client may publish (and a
// will it leaves behind: the broker checks a will against it when it is sent, not at CONNECT),
// `publishClientReceive` what the broker may deliver to it, `subscribeLiteral` a filter compared
// as an exact string. Default access is deny for all but unsubscribe, so nothing is granted that
// no role names; `$CONTROL` topics are never granted by default in any case.
import { parseDeviceTokenHash, type DeviceTokenHash } from '../credentials.ts';
import { checkDeviceId } from '../device-id.ts';
import { deviceSubscription, deviceTopic, DEVICE_MESSAGE_KINDS, DEVICE_TOPIC_ROOT } from '../topics.ts';
import { PRESENCE_KIND, presenceTopic } from './presence-topic.ts';

/**
 * The gateway's own broker username. `@` is outside the device id alphabet (docs/architecture.md
 * §5), so no device can ever be provisioned under it, nor take a replica's client id.
 */
export const GATEWAY_USERNAME = 'pinwave@gateway';
/** The role holding the gateway's rights. */
export const GATEWAY_ROLE = 'pinwave-gateway';
/** The shared-subscription group every gateway replica joins (`$share/<group>/…`). */
export const SHARE_GROUP = 'pinwave';
/** The plugin's control topic and the topic it answers on. */
export const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
export const CONTROL_RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;

const DEVICE_ROLE_PREFIX = 'pinwave-device:';

/** The kinds a device publishes in external mode: its reports and its presence. */
export const EXTERNAL_MESSAGE_KINDS = [...DEVICE_MESSAGE_KINDS, PRESENCE_KIND] as const;
export type ExternalMessageKind = (typeof EXTERNAL_MESSAGE_KINDS)[number];

export type AclType = 'publishClientSend' | 'publishClientReceive' | 'subscribeLiteral' | 'subscribePattern' | 'unsubscribeLiteral' | 'unsubscribePattern';

export interface DynsecAcl {
  acltype: AclType;
  topic: string;
  allow: boolean;
  priority?: number;
}

export interface DynsecRole {
  rolename: string;
  textname?: string;
  acls: DynsecAcl[];
}

/** A client as the plugin's file holds it: the password as PBKDF2-SHA512 parts (base64), never in clear. */
export interface DynsecClient {
  username: string;
  clientid?: string;
  textname?: string;
  disabled?: boolean;
  password?: string;
  salt?: string;
  iterations?: number;
  roles: Array<{ rolename: string; priority?: number }>;
  groups?: Array<{ groupname: string; priority?: number }>;
}

export interface DynsecFile {
  defaultACLAccess: { publishClientSend: boolean; publishClientReceive: boolean; subscribe: boolean; unsubscribe: boolean };
  clients: DynsecClient[];
  groups: Array<{ groupname: string; roles?: Array<{ rolename: string }> }>;
  roles: DynsecRole[];
}

/** Deny unless a role grants; unsubscribing is always harmless. */
export const DEFAULT_ACL_ACCESS: DynsecFile['defaultACLAccess'] = {
  publishClientSend: false,
  publishClientReceive: false,
  subscribe: false,
  unsubscribe: true,
};

/** The role that holds device `id`'s rights. */
export function deviceRoleName(id: string): string {
  return DEVICE_ROLE_PREFIX + checkedId(id);
}

/**
 * Device `id`'s rights, exactly docs/architecture.md §5: subscribe to `…/<id>/#` or `…/<id>/bundle`,
 * receive only its `bundle`, publish (and leave a will) only on its `state`, `ack`, `telemetry`,
 * `presence`.
 */
export function deviceRole(id: string): DynsecRole {
  const acls: DynsecAcl[] = [
    { acltype: 'subscribeLiteral', topic: deviceSubscription(id), allow: true },
    { acltype: 'subscribeLiteral', topic: deviceTopic(id, 'bundle'), allow: true },
    { acltype: 'publishClientReceive', topic: deviceTopic(id, 'bundle'), allow: true },
  ];
  for (const kind of DEVICE_MESSAGE_KINDS) acls.push({ acltype: 'publishClientSend', topic: deviceTopic(id, kind), allow: true });
  acls.push({ acltype: 'publishClientSend', topic: presenceTopic(id), allow: true });
  return { rolename: deviceRoleName(id), acls };
}

/** The filter a replica subscribes with for `kind`: through the shared group, or (presence only) on its own. */
export function gatewayFilter(kind: ExternalMessageKind, shared: boolean, group = SHARE_GROUP): string {
  const filter = `${DEVICE_TOPIC_ROOT}+/${kind}`;
  return shared ? `$share/${checkedGroup(group)}/${filter}` : filter;
}

/**
 * The gateway's rights: subscribe to device messages through the shared group (and to presence
 * directly, so a replica may learn every device's retained presence), receive them, publish on any
 * device's `bundle` topic and `presence` topic (a device the plugin kicks leaves no will), and drive
 * the plugin over its control topic. Nothing else: it cannot publish a device's reports, nor read bundles.
 */
export function gatewayRole(group = SHARE_GROUP): DynsecRole {
  const acls: DynsecAcl[] = [];
  for (const kind of EXTERNAL_MESSAGE_KINDS) {
    acls.push({ acltype: 'subscribeLiteral', topic: gatewayFilter(kind, true, group), allow: true });
    acls.push({ acltype: 'publishClientReceive', topic: `${DEVICE_TOPIC_ROOT}+/${kind}`, allow: true });
  }
  acls.push({ acltype: 'subscribeLiteral', topic: gatewayFilter(PRESENCE_KIND, false), allow: true });
  acls.push({ acltype: 'publishClientSend', topic: `${DEVICE_TOPIC_ROOT}+/bundle`, allow: true });
  // a device kicked by a credential change leaves no will: the gateway sets (or clears) its presence
  acls.push({ acltype: 'publishClientSend', topic: `${DEVICE_TOPIC_ROOT}+/${PRESENCE_KIND}`, allow: true });
  acls.push({ acltype: 'publishClientSend', topic: CONTROL_TOPIC, allow: true });
  acls.push({ acltype: 'subscribeLiteral', topic: CONTROL_RESPONSE_TOPIC, allow: true });
  acls.push({ acltype: 'publishClientReceive', topic: CONTROL_RESPONSE_TOPIC, allow: true });
  return { rolename: GATEWAY_ROLE, textname: 'pinwave gateway replicas', acls };
}

/** The plugin's password fields from a `$7$` hash (the form `gateway/credentials.ts` stores). */
export function passwordFields(h: DeviceTokenHash): Pick<DynsecClient, 'password' | 'salt' | 'iterations'> {
  return { password: h.hash.toString('base64'), salt: h.salt.toString('base64'), iterations: h.iterations };
}

/**
 * Device `id` as a plugin client: username and client id both `id` (the plugin then refuses the
 * device's credentials under any other client id), its own role, its stored token hash.
 */
export function deviceClient(id: string, hash: DeviceTokenHash): DynsecClient {
  return { username: checkedId(id), clientid: id, ...passwordFields(hash), roles: [{ rolename: deviceRoleName(id) }] };
}

/** The gateway's client. No client id: each replica connects under an id of its own, and one may take over a dead one's. */
export function gatewayClient(hash: DeviceTokenHash, username = GATEWAY_USERNAME): DynsecClient {
  return { username, textname: 'pinwave gateway', ...passwordFields(hash), roles: [{ rolename: GATEWAY_ROLE }] };
}

/** What a fleet's store says of a device, as much as the broker needs. */
export interface FleetDevice {
  id: string;
  tokenHash: string;
  revokedAt?: number | null;
}

/** Why a device was left out of the file. */
export type SkipReason =
  | 'revoked' //        revoked devices get no broker client
  | 'legacy_hash' //    an earlier release's `sha256:` hash: Mosquitto cannot check it; the device needs one CONNECT to the embedded gateway (which re-hashes it) or a new token
  | 'malformed_hash' // neither form: the record is damaged
  | 'bad_id' //         not a device id
  | 'duplicate'; //     the id came twice

export interface BuiltDynsecFile {
  file: DynsecFile;
  /** devices written */
  devices: number;
  skipped: Array<{ id: string; reason: SkipReason }>;
}

export interface DynsecFileInput {
  /** the gateway client's token hash (`$7$`) */
  gateway: { tokenHash: string; username?: string };
  devices?: Iterable<FleetDevice>;
  /** the shared-subscription group; default `pinwave` */
  shareGroup?: string;
}

/**
 * The whole file in one go: the gateway's client and role, then one client and one role per
 * device the broker can check. Moving a fleet this way writes every device with the hash the store
 * holds, so no device needs a new token. Throws a TypeError when the gateway's hash is not `$7$`.
 */
export function buildDynsecFile(input: DynsecFileInput): BuiltDynsecFile {
  const gatewayHash = parseDeviceTokenHash(input.gateway.tokenHash);
  if (!gatewayHash) throw new TypeError('expected the gateway token hash in $7$ form');
  const file: DynsecFile = {
    defaultACLAccess: { ...DEFAULT_ACL_ACCESS },
    clients: [gatewayClient(gatewayHash, input.gateway.username)],
    groups: [],
    roles: [gatewayRole(input.shareGroup)],
  };
  const skipped: BuiltDynsecFile['skipped'] = [];
  const seen = new Set<string>();
  let devices = 0;
  for (const d of input.devices ?? []) {
    const reason = skipReason(d, seen);
    if (reason) {
      skipped.push({ id: String(d.id), reason });
      continue;
    }
    seen.add(d.id);
    file.clients.push(deviceClient(d.id, parseDeviceTokenHash(d.tokenHash)!));
    file.roles.push(deviceRole(d.id));
    devices++;
  }
  return { file, devices, skipped };
}

function skipReason(d: FleetDevice, seen: Set<string>): SkipReason | null {
  if (!checkDeviceId(d.id).ok) return 'bad_id';
  if (seen.has(d.id)) return 'duplicate';
  if (d.revokedAt != null) return 'revoked';
  if (parseDeviceTokenHash(d.tokenHash)) return null;
  return typeof d.tokenHash === 'string' && d.tokenHash.startsWith('sha256:') ? 'legacy_hash' : 'malformed_hash';
}

/**
 * The file's text, one client or role a line: 100,000 devices make 94 MB (938 bytes each), and a line each
 * keeps a diff or a `grep` of one device readable. The plugin reads any JSON.
 */
export function serializeDynsecFile(file: DynsecFile): string {
  const parts: string[] = [`{"defaultACLAccess":${JSON.stringify(file.defaultACLAccess)},\n"groups":${JSON.stringify(file.groups)},\n"clients":[\n`];
  file.clients.forEach((c, i) => parts.push((i ? ',\n' : '') + JSON.stringify(c)));
  parts.push('\n],\n"roles":[\n');
  file.roles.forEach((r, i) => parts.push((i ? ',\n' : '') + JSON.stringify(r)));
  parts.push('\n]}\n');
  return parts.join('');
}

function checkedId(id: string): string {
  const check = checkDeviceId(id);
  if (!check.ok) throw new TypeError(check.message);
  return id;
}

// A share group name is one topic level with no wildcard [MQTT-4.8.2-2].
function checkedGroup(group: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(group)) throw new TypeError(`expected a share group of 1 to 64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(group)}`);
  return group;
}
