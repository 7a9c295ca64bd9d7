// The gateway's hand on Mosquitto's dynamic-security plugin (docs/architecture.md §8): device
// clients provisioned, rotated and revoked at run time over `$CONTROL/dynamic-security/v1`.
//
//   const control = new DynsecControl(mqttClient);          // any connected mqtt.js client with the gateway's rights
//   await control.ready();
//   await control.provision([{ id: 'meter-1', token }]);    // [{ id: 'meter-1', ok: true }]
//   await control.rotate('meter-1', newToken);              // old session kicked, old token refused
//   await control.revoke('meter-1');                        // client deleted, session kicked
//
// What the plugin of Mosquitto 2.0 (2.0.11) does, which this module is shaped around:
// - A control message is `{"commands":[…]}`; the plugin answers every command, in order, in one
//   message on `$CONTROL/dynamic-security/v1/response`, published at QoS 0 to every client allowed
//   to read it. Each command here carries a `correlationData` of this instance's own, so answers to
//   other replicas' commands are ignored, and an answer lost with the link shows as a timeout.
// - An error is a text (`"Client already exists"`, `"Role not found"`); it comes back in
//   DynsecError.detail as the plugin wrote it.
// - Every command that changes anything rewrites the plugin's whole JSON file, synchronously, on the
//   broker's only thread: the broker serves nobody while it writes (at 100,000 devices a rotation
//   took 2.3–3.6 s, and another device's PUBACK waited 2.9 s behind it). Batching commands in one
//   message saves round trips, not rewrites. Bulk provisioning and moving a fleet therefore write
//   the file in one go while the broker is stopped (dynsec-file.ts); this path is for devices one
//   by one. Mosquitto 2.0.11 rewrites the file in place (its temp-file path is cut short), so a
//   crash mid-write leaves it torn, and the broker then starts with no clients at all: keep the
//   store able to write the file again (`pinwave broker mosquitto-config --from-data`).
// - createClient and setClientPassword take the password in clear and hash it themselves (PBKDF2-
//   SHA512, 101 iterations, a salt of their own); there is no command that takes a hash. The link to
//   the broker must therefore be loopback or TLS.
// - setClientPassword, modifyClient and deleteClient kick the client's live connections (MQTT 5
//   clients get DISCONNECT 0x98, administrative action), without publishing their will.
import type { MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { CONTROL_RESPONSE_TOPIC, CONTROL_TOPIC, deviceRole, deviceRoleName } from './dynsec-file.ts';
import { checkDeviceId } from '../device-id.ts';

export type DynsecCommand = { command: string; [field: string]: unknown };

export interface DynsecResult {
  command: string;
  /** the plugin's error text; absent when the command succeeded */
  error?: string;
  data?: unknown;
}

export type DynsecErrorCode =
  | 'PW_DYNSEC_TIMEOUT' //     no answer in time (the broker was busy rewriting its file, or the answer was lost with the link)
  | 'PW_DYNSEC_REFUSED' //     the plugin answered with an error
  | 'PW_DYNSEC_CLOSED' //      close() was called
  | 'PW_DYNSEC_OFFLINE' //     not connected to the broker: nothing was sent
  | 'PW_DYNSEC_TOO_LARGE'; //  one command alone is over the batch byte limit

export class DynsecError extends Error {
  constructor(
    readonly code: DynsecErrorCode,
    message: string,
    /** the plugin's error text, for PW_DYNSEC_REFUSED */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'DynsecError';
  }
}

export interface DynsecControlOptions {
  /** how long one control message may wait for its answer, in ms, plus `perCommandMs` per command in it. Default 10000 */
  timeoutMs?: number;
  /** added to the timeout per command: each one rewrites the plugin's file (0.16 s at 10,000 devices, 2.3–3.6 s at 100,000, measured by scripts/bench-dynsec). Default 5000 */
  perCommandMs?: number;
  /** the most commands in one control message. Default 100 */
  maxBatchCommands?: number;
  /** the most bytes of one control message, under the broker's max_packet_size. Default 60000 */
  maxBatchBytes?: number;
}

export interface ProvisionResult {
  id: string;
  ok: boolean;
  /** the plugin's error text when ok is false */
  error?: string;
}

const DEFAULTS = { timeoutMs: 10_000, perCommandMs: 5_000, maxBatchCommands: 100, maxBatchBytes: 60_000 };

interface Pending {
  resolve: (result: DynsecResult) => void;
}

export class DynsecControl {
  readonly #client: MqttClient;
  readonly #o: Required<DynsecControlOptions>;
  readonly #nonce = randomBytes(6).toString('base64url');
  #next = 0;
  readonly #pending = new Map<string, Pending>();
  readonly #timers = new Set<{ timer: NodeJS.Timeout; fail: (err: DynsecError) => void }>();
  #ready: Promise<void> | null = null;
  #closed = false;
  readonly #onMessage = (topic: string, payload: Buffer) => {
    if (topic === CONTROL_RESPONSE_TOPIC) this.#answer(payload);
  };
  // a new session (the broker restarted, or lost it) holds no subscription: subscribe again on next use
  readonly #onConnack = (connack: { sessionPresent?: boolean }) => {
    if (!connack.sessionPresent) this.#ready = null;
  };

  constructor(client: MqttClient, options: DynsecControlOptions = {}) {
    this.#client = client;
    this.#o = { ...DEFAULTS, ...options };
    for (const [name, value] of Object.entries(this.#o)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`expected ${name} to be a positive integer, got ${value}`);
    }
    client.on('message', this.#onMessage);
    client.on('connect', this.#onConnack);
  }

  /** Subscribes to the plugin's answers; resolves once the broker granted it (it is refused without the gateway's role). */
  ready(): Promise<void> {
    const refused = (code: number) =>
      new DynsecError('PW_DYNSEC_REFUSED', `the broker refused the subscription to ${CONTROL_RESPONSE_TOPIC} (reason 0x${code.toString(16)}): the client lacks the gateway's role`);
    this.#ready ??= this.#client.subscribeAsync(CONTROL_RESPONSE_TOPIC, { qos: 0 }).then(
      (granted) => {
        const code = (granted[0]?.qos as number | undefined) ?? 0x80;
        if (code >= 0x80) throw refused(code);
      },
      // mqtt.js rejects an MQTT 5 SUBACK holding a failure code, with the SUBACK beside the error
      (err: Error & { packet?: { granted?: number[] } }) => {
        const code = err?.packet?.granted?.find((c) => c >= 0x80);
        throw code === undefined ? err : refused(code);
      },
    );
    return this.#ready;
  }

  /**
   * Runs `commands` in order, in as few control messages as the batch limits allow, one message at
   * a time; resolves with one result per command (an error in a result is the plugin's answer, not
   * a throw). Throws DynsecError PW_DYNSEC_TIMEOUT when a message gets no answer in time: the
   * commands in it may or may not have run, so callers send only commands that are safe to repeat.
   */
  async execute(commands: readonly DynsecCommand[]): Promise<DynsecResult[]> {
    await this.ready();
    const results: DynsecResult[] = [];
    for (const batch of this.#batches(commands)) results.push(...(await this.#send(batch)));
    return results;
  }

  /**
   * Creates each device's role and client (username = client id = device id, password its token).
   * Safe to repeat: a role already there is kept (its ACLs are the same), a client already there is
   * reset to this token and role (modifyClient, which also kicks a connection under the old token).
   */
  async provision(devices: ReadonlyArray<{ id: string; token: string }>): Promise<ProvisionResult[]> {
    const commands: DynsecCommand[] = [];
    for (const d of devices) {
      checked(d.id);
      if (typeof d.token !== 'string' || d.token === '') throw new TypeError(`expected a token for ${d.id}`);
      const role = deviceRole(d.id);
      commands.push({ command: 'createRole', rolename: role.rolename, acls: role.acls });
      commands.push({ command: 'createClient', ...clientFields(d.id, d.token) });
    }
    const results = await this.execute(commands);
    const out: ProvisionResult[] = [];
    const retry: Array<{ index: number; command: DynsecCommand }> = [];
    devices.forEach((d, i) => {
      const role = results[2 * i];
      const client = results[2 * i + 1];
      const roleError = role.error && role.error !== 'Role already exists' ? role.error : undefined;
      if (roleError) return void out.push({ id: d.id, ok: false, error: roleError });
      if (client.error === 'Client already exists') {
        retry.push({ index: out.length, command: { command: 'modifyClient', ...clientFields(d.id, d.token) } });
        return void out.push({ id: d.id, ok: true });
      }
      out.push(client.error ? { id: d.id, ok: false, error: client.error } : { id: d.id, ok: true });
    });
    if (retry.length > 0) {
      const again = await this.execute(retry.map((r) => r.command));
      retry.forEach((r, i) => {
        if (again[i].error) out[r.index] = { id: out[r.index].id, ok: false, error: again[i].error };
      });
    }
    return out;
  }

  /** Replaces device `id`'s token; the plugin kicks its live session, and the old token is refused from then on. */
  async rotate(id: string, token: string): Promise<void> {
    checked(id);
    if (typeof token !== 'string' || token === '') throw new TypeError('expected a token');
    const [result] = await this.execute([{ command: 'setClientPassword', username: id, password: token }]);
    if (result.error) throw new DynsecError('PW_DYNSEC_REFUSED', `setClientPassword ${id}: ${result.error}`, result.error);
  }

  /** Deletes device `id`'s client (kicking its session) and role. A device already gone is not an error. */
  async revoke(id: string): Promise<void> {
    checked(id);
    const [client, role] = await this.execute([
      { command: 'deleteClient', username: id },
      { command: 'deleteRole', rolename: deviceRoleName(id) },
    ]);
    for (const r of [client, role]) {
      if (r.error && r.error !== 'Client not found' && r.error !== 'Role not found') {
        throw new DynsecError('PW_DYNSEC_REFUSED', `${r.command} ${id}: ${r.error}`, r.error);
      }
    }
  }

  /** Stops listening; control messages still waiting fail with PW_DYNSEC_CLOSED. The mqtt.js client is the caller's. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.off('message', this.#onMessage);
    this.#client.off('connect', this.#onConnack);
    for (const t of this.#timers) {
      clearTimeout(t.timer);
      t.fail(new DynsecError('PW_DYNSEC_CLOSED', 'the dynamic-security control was closed'));
    }
    this.#timers.clear();
    this.#pending.clear();
  }

  *#batches(commands: readonly DynsecCommand[]): Generator<DynsecCommand[]> {
    let batch: DynsecCommand[] = [];
    let bytes = 16;
    for (const c of commands) {
      const size = Buffer.byteLength(JSON.stringify(c)) + 64;
      if (size + 16 > this.#o.maxBatchBytes) throw new DynsecError('PW_DYNSEC_TOO_LARGE', `a ${c.command} command of ${size} bytes is over the ${this.#o.maxBatchBytes}-byte batch limit`);
      if (batch.length > 0 && (batch.length >= this.#o.maxBatchCommands || bytes + size > this.#o.maxBatchBytes)) {
        yield batch;
        batch = [];
        bytes = 16;
      }
      batch.push(c);
      bytes += size;
    }
    if (batch.length > 0) yield batch;
  }

  #send(batch: DynsecCommand[]): Promise<DynsecResult[]> {
    if (this.#closed) return Promise.reject(new DynsecError('PW_DYNSEC_CLOSED', 'the dynamic-security control was closed'));
    // Sent only over a live link, at QoS 0: a command queued while offline and sent after its
    // caller gave up could undo a newer one (an old token set after a rotation). What the link
    // loses shows as a timeout, and the caller repeats a command that is safe to repeat.
    if (!this.#client.connected) return Promise.reject(new DynsecError('PW_DYNSEC_OFFLINE', 'not connected to the broker: no dynamic-security command was sent'));
    const ids = batch.map(() => `${this.#nonce}.${++this.#next}`);
    const payload = JSON.stringify({ commands: batch.map((c, i) => ({ ...c, correlationData: ids[i] })) });
    const timeoutMs = this.#o.timeoutMs + this.#o.perCommandMs * batch.length;
    return new Promise<DynsecResult[]>((resolve, reject) => {
      const results: DynsecResult[] = new Array(batch.length);
      let left = batch.length;
      const settle = () => {
        clearTimeout(entry.timer);
        this.#timers.delete(entry);
        for (const id of ids) this.#pending.delete(id);
      };
      const entry = {
        timer: setTimeout(() => entry.fail(new DynsecError('PW_DYNSEC_TIMEOUT', `no answer from the dynamic-security plugin to ${batch.length} command(s) (${batch[0].command}, …) within ${timeoutMs} ms`)), timeoutMs),
        fail: (err: DynsecError) => {
          settle();
          reject(err);
        },
      };
      this.#timers.add(entry);
      ids.forEach((id, i) =>
        this.#pending.set(id, {
          resolve: (r) => {
            results[i] = r;
            if (--left > 0) return;
            settle();
            resolve(results);
          },
        }),
      );
      this.#client.publishAsync(CONTROL_TOPIC, payload, { qos: 0, retain: false }).catch((err: Error) => {
        entry.fail(new DynsecError('PW_DYNSEC_OFFLINE', `the control message was not sent: ${err.message}`));
      });
    });
  }

  #answer(payload: Buffer): void {
    let responses: unknown;
    try {
      responses = (JSON.parse(payload.toString('utf8')) as { responses?: unknown }).responses;
    } catch {
      return; // not the plugin's: nothing of ours can be in it
    }
    if (!Array.isArray(responses)) return;
    for (const r of responses as Array<Record<string, unknown>>) {
      if (typeof r?.correlationData !== 'string') continue;
      const pending = this.#pending.get(r.correlationData);
      if (!pending) continue;
      this.#pending.delete(r.correlationData);
      const result: DynsecResult = { command: String(r.command) };
      if (typeof r.error === 'string') result.error = r.error;
      if (r.data !== undefined) result.data = r.data;
      pending.resolve(result);
    }
  }
}

function clientFields(id: string, token: string) {
  return { username: id, clientid: id, password: token, roles: [{ rolename: deviceRoleName(id) }] };
}

function checked(id: string): void {
  const check = checkDeviceId(id);
  if (!check.ok) throw new TypeError(check.message);
}
