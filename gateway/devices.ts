// The device registry (docs/architecture.md §1, §11): provisioning, token rotation, revocation, and
// the check of a device's token at MQTT CONNECT. Tokens are handed out once and kept only as hashes.
//
//   const { devices } = await registry.provision([{ id: 'th-1', group: 'thermostats' }]);
//   await registry.authenticate('th-1', devices[0].token);   // → true
import { checkDeviceId } from './device-id.ts';
import { hashDeviceToken, isLegacyTokenHash, newToken, tokenMatches } from './credentials.ts';
import { GatewayError, invalid, notFound } from './errors.ts';
import type { Logger } from './logger.ts';
import { newDeviceRecord, type DeviceQuery, type DeviceRecord, type Page } from './store/types.ts';
import type { ChangeStore } from './store/changes.ts';
import { commit } from './fleet-reads.ts';
import type { DeviceLink } from './delivery.ts';
import type { DeviceCredentials } from './device-transport.ts';
import { placeDevices } from './broker/placement.ts';

export interface ProvisionInput {
  id: string;
  group: string;
  model?: string;
  firmware?: string;
}

/** A group name, as provisioning and bundles take it. */
export const GROUP_RE = /^[A-Za-z0-9._:-]{1,64}$/;
/** A model or firmware label: printable ASCII, so no terminal escapes reach an operator. */
export const LABEL_RE = /^[\x20-\x7e]{1,64}$/;
const MAX_PROVISION = 10_000;

export interface DevicesOptions {
  store: ChangeStore;
  /** closes a device's sessions (after a rotation or a revocation) */
  link: Pick<DeviceLink, 'disconnect'>;
  /** the broker's own copy of the credentials (external broker mode, docs/architecture.md §8); default none */
  credentials?: () => DeviceCredentials | null;
  log: Logger;
  now: () => number;
}

export class Devices {
  readonly #store: ChangeStore;
  readonly #link: Pick<DeviceLink, 'disconnect'>;
  readonly #credentials: () => DeviceCredentials | null;
  readonly #log: Logger;
  readonly #now: () => number;
  // Devices on each of the credentials' brokers (not revoked), counted from the store at the first
  // provisioning of this process and kept since; null until then, or after a provisioning failed.
  #load: { key: string; brokers: readonly string[]; counts: number[] } | null = null;
  // Writes of a device's token hash (a rotation, a legacy hash's upgrade), one at a time per device:
  // each reads the hash and writes it back only once the one before is committed. Without this an
  // upgrade that read the old hash while a rotation was on its way to disk (reads see committed
  // state only, docs/storage.md) wrote the leaked token back over the rotation.
  readonly #tokenWrites = new Map<string, Promise<unknown>>();

  constructor(o: DevicesOptions) {
    this.#store = o.store;
    this.#link = o.link;
    this.#credentials = o.credentials ?? (() => null);
    this.#log = o.log;
    this.#now = o.now;
  }

  /**
   * Provisions devices, all or nothing: an invalid entry is PW_INVALID naming it, an id that exists
   * already is PW_CONFLICT naming it, and then nothing is stored. Tokens are returned this once.
   */
  async provision(list: ProvisionInput[]): Promise<{ devices: Array<{ id: string; token: string; broker?: string }> }> {
    if (!Array.isArray(list) || list.length === 0) throw invalid('devices must hold at least one device');
    if (list.length > MAX_PROVISION) throw invalid(`at most ${MAX_PROVISION} devices per call, got ${list.length}`);
    const errors: string[] = [];
    const seen = new Set<string>();
    list.forEach((d, i) => {
      const id = checkDeviceId(d?.id);
      if (!id.ok) errors.push(`devices[${i}].id: ${id.message}`);
      else if (seen.has(d.id)) errors.push(`devices[${i}].id: "${d.id}" appears twice`);
      seen.add(d?.id);
      if (typeof d?.group !== 'string' || !GROUP_RE.test(d.group)) errors.push(`devices[${i}].group: must be 1 to 64 characters of A-Z a-z 0-9 . _ : -`);
      for (const f of ['model', 'firmware'] as const) {
        if (d?.[f] !== undefined && (typeof d[f] !== 'string' || !LABEL_RE.test(d[f]!))) errors.push(`devices[${i}].${f}: must be 1 to 64 printable characters`);
      }
    });
    if (errors.length > 0) throw invalid(errors.slice(0, 20).join('; '), { errors });
    const now = this.#now();
    const brokers = await this.#place(list.length);
    const out: Array<{ id: string; token: string; broker?: string }> = [];
    const records: DeviceRecord[] = list.map((d, i) => {
      const token = newToken();
      const broker = brokers?.[i];
      out.push({ id: d.id, token, ...(broker !== undefined && { broker }) });
      return newDeviceRecord({ id: d.id, group: d.group, model: d.model, firmware: d.firmware, tokenHash: hashDeviceToken(token), createdAt: now, broker });
    });
    // One batch: every device or none (docs/storage.md). The tokens leave only once it is durable.
    const put = await this.#store.apply(records.map((device) => ({ type: 'device.provision', device })));
    // Not stored: the counts are taken again from the store next time.
    if (!put.ok) this.#load = null;
    if (!put.ok && put.code !== 'PW_STORE_DUPLICATE_ID') throw new Error(`${this.#store.status().name} refused provisioning: ${put.message}`);
    if (!put.ok) throw new GatewayError('PW_CONFLICT', `device id${put.ids.length === 1 ? '' : 's'} already provisioned: ${put.ids.slice(0, 20).join(', ')}`, { ids: put.ids });
    await this.#inBroker('provision', records.map((r) => r.id), (c) => c.provision(out));
    this.#log.info({ count: records.length }, 'devices provisioned');
    return { devices: out };
  }

  /**
   * The broker of each of `n` new devices (docs/architecture.md §8: the one holding the fewest, the
   * first on a tie), or null when the gateway has no broker of its own to place them on.
   */
  async #place(n: number): Promise<string[] | null> {
    const c = this.#credentials();
    if (!c) return null;
    const brokers = c.brokers;
    const key = brokers.join(' ');
    if (this.#load?.key !== key) {
      const counts = await this.#count(brokers);
      // a provisioning that counted meanwhile has placed devices since: keep its counts
      if (this.#load?.key !== key) this.#load = { key, brokers, counts };
    }
    const { picks, counts } = placeDevices(this.#load!.counts, n);
    this.#load!.counts = counts;
    return picks.map((i) => brokers[i]);
  }

  /** Devices not revoked on each broker; those with none recorded are on the first. */
  async #count(brokers: readonly string[]): Promise<number[]> {
    const index = new Map(brokers.map((b, i) => [b, i]));
    const counts = brokers.map(() => 0);
    let cursor: string | null = null;
    do {
      const page: Page<DeviceRecord> = await this.#store.listDevices({ limit: 1000, cursor });
      for (const d of page.items) {
        const i = d.broker === undefined ? 0 : index.get(d.broker);
        if (i !== undefined && d.revokedAt === null) counts[i]++;
      }
      cursor = page.next;
    } while (cursor !== null);
    return counts;
  }

  async get(id: string): Promise<DeviceRecord> {
    const d = await this.#store.getDevice(id);
    if (!d) throw notFound('device', id);
    return d;
  }

  async list(query: DeviceQuery): Promise<Page<DeviceRecord>> {
    return this.#store.listDevices(query);
  }

  /**
   * A new token for a device. The old one is refused from now on, and every session opened with it
   * is closed at once: rotation is what an operator does when a token leaks.
   */
  rotateToken(id: string): Promise<{ id: string; token: string }> {
    return this.#tokenWrite(id, () => this.#rotate(id));
  }

  async #rotate(id: string): Promise<{ id: string; token: string }> {
    const d = await this.get(id);
    if (d.revokedAt !== null) throw new GatewayError('PW_INVALID_STATE', `device "${id}" is revoked`);
    const token = newToken();
    // Durable before it is answered; a failed commit leaves the old hash, and the old token working.
    await commit(this.#store, [{ type: 'device.patch', id, set: { tokenHash: hashDeviceToken(token) } }]);
    // After the commit: a reconnect checked from here on sees the new hash.
    this.#link.disconnect(id);
    await this.#inBroker('rotate', [id], (c) => c.rotate(id, token, d.broker));
    // A revocation committed meanwhile (here or on another replica) may have deleted the broker's
    // client before the rotation reached it, and the rotation then created it again with the new
    // token. Revocation commits before it touches the broker, so a look now sees it: undo.
    if ((await this.get(id)).revokedAt !== null) {
      await this.#inBroker('revoke', [id], (c) => c.revoke(id, d.broker));
      throw new GatewayError('PW_INVALID_STATE', `device "${id}" was revoked while its token was rotated`);
    }
    this.#log.info({ deviceId: id }, 'device token rotated');
    return { id, token };
  }

  /** Revokes a device: disconnected at once and refused after. */
  async revoke(id: string): Promise<DeviceRecord> {
    const before = await this.get(id);
    // An earlier revocation's time stands.
    if (before.revokedAt === null) await commit(this.#store, [{ type: 'device.patch', id, set: { revokedAt: this.#now() } }]);
    const d = await this.get(id);
    this.#link.disconnect(id);
    if (before.revokedAt === null && this.#load) {
      const i = d.broker === undefined ? 0 : this.#load.brokers.indexOf(d.broker);
      if (i >= 0) this.#load.counts[i]--;
    }
    await this.#inBroker('revoke', [id], (c) => c.revoke(id, d.broker));
    this.#log.info({ deviceId: id }, 'device revoked');
    return d;
  }

  /**
   * The same change in the broker, after the store has it (so a conflict changes nothing there).
   * When the broker cannot take it, the caller hears so: a rotated or revoked token would otherwise
   * still open the broker. Repeating the call makes it again (rotate for a provisioning that failed).
   */
  async #inBroker(what: 'provision' | 'rotate' | 'revoke', ids: string[], change: (c: DeviceCredentials) => Promise<void>): Promise<void> {
    const c = this.#credentials();
    if (!c) return;
    try {
      await change(c);
    } catch (err) {
      const message = (err as Error).message;
      this.#log.error({ what, devices: ids.length, err: message }, 'the broker did not take a credential change');
      const retry = what === 'provision' ? 'rotate their tokens to provision them there' : `call ${what} again`;
      throw new GatewayError('PW_BROKER_UNAVAILABLE', `stored, but the broker did not take the ${what} of ${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', …' : ''}: ${message}; ${retry}`, { ids });
    }
  }

  /** The check at MQTT CONNECT (docs/architecture.md §11): the token against the stored hash, never for a revoked device. */
  async authenticate(id: string, token: string): Promise<boolean> {
    const d = await this.#store.getDevice(id);
    // Compare even for an unknown or revoked device, so timing does not tell which ids exist.
    const ok = tokenMatches(token, d?.tokenHash ?? null) && d !== null && d.revokedAt === null;
    // docs/architecture.md §11: a hash of an earlier release is replaced by the Mosquitto form on
    // the device's first good CONNECT, so a later move to an external broker keeps every token.
    if (ok && isLegacyTokenHash(d.tokenHash)) await this.#tokenWrite(id, () => this.#rehash(id, d.tokenHash, token));
    return ok;
  }

  /** Runs `write` once every token-hash write of device `id` before it has settled. */
  #tokenWrite<T>(id: string, write: () => Promise<T>): Promise<T> {
    const run = (this.#tokenWrites.get(id) ?? Promise.resolve()).then(write);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#tokenWrites.set(id, settled);
    void settled.then(() => {
      if (this.#tokenWrites.get(id) === settled) this.#tokenWrites.delete(id);
    });
    return run;
  }

  async #rehash(id: string, legacy: string, token: string): Promise<void> {
    try {
      const now = await this.#store.getDevice(id);
      if (now?.tokenHash !== legacy) return;
      await commit(this.#store, [{ type: 'device.patch', id, set: { tokenHash: hashDeviceToken(token) } }]);
      this.#log.info({ deviceId: id }, 'device token hash upgraded');
    } catch (err) {
      // The device is let in on the hash it has; the upgrade is tried again at its next CONNECT.
      this.#log.warn({ deviceId: id, err: (err as Error).message }, 'device token hash upgrade failed');
    }
  }
}
