// Bundles (docs/architecture.md §1, §3): signing a group's next bundle with the gateway's key (its
// next key once a rotation to it is the group's baseline, key-rotation.ts), taking a bundle signed
// elsewhere (bundle-upload.ts), the stored bundles and their decoded content, ids by unique prefix,
// the pin diff against the group's baseline, and the cache of bundle bytes that deliveries and acks read.
//
//   const record = await bundles.create({ group: 'thermostats', endpoints: [...] }, 'alice');
//   const b = bundles.cached(record.id) ?? (await bundles.load(record.id));   // { bytes, seq, group }
import { GatewayError, invalid, notFound, unresolved } from './errors.ts';
import { GROUP_RE } from './devices.ts';
import { resolveIdPrefix, MAX_CANDIDATES, MIN_PREFIX } from './id-prefix.ts';
import type { Logger } from './logger.ts';
import { pinDiff, type PinDiff, type PinnedEndpoint } from './pin-diff.ts';
import type { SigningKey } from './signing-key.ts';
import { checkUpload, type TrustedKey } from './bundle-upload.ts';
import { bridgeFor, rollbackSigner, signerFor, type RotationBundle } from './key-rotation.ts';
import type { ManifestRegistry } from './manifest-registry.ts';
import type { BundleQuery, BundleRecord, DeviceRecord, Page } from './store/types.ts';
import type { ChangeStore } from './store/changes.ts';
import { allDevices, baselineOf, commit } from './fleet-reads.ts';
import {
  checkBundle,
  equalBytes,
  formatPin,
  hex,
  kidOf,
  inspectBundle,
  parsePin,
  publicKeyFromText,
  signBundle,
  FORMAT_VERSION,
  type Endpoint,
  type ExpiryPolicy,
  type PinBundle,
} from '../firmware-manifest/index.ts';

/** The longest a bundle may live: past it, its expiry no longer fits a date every reader can show. */
export const MAX_BUNDLE_LIFETIME_SECONDS = 100 * 365 * 86400;

export interface BundleInput {
  group: string;
  endpoints: Array<{ host: string; port?: number; pins: string[]; mode?: 'enforce' | 'report-only'; notBefore?: number; notAfter?: number }>;
  expiresInSeconds?: number;
  expiryPolicy?: ExpiryPolicy;
  /** a new trusted signing-key set for the group's devices (docs/bundle-format.md, key rotation): keys as SPKI PEM or raw base64; the epoch above every device's */
  rotateKeys?: { epoch: number; keys: string[] };
}

/** A device a rollback reaches, as Bundles.rollbackKey reads it. */
export interface RollbackReach {
  record: DeviceRecord;
  /** runs (or may run) the bundle rolled back */
  holds: boolean;
  /** a key epoch it may be at besides the one it reports: a key rotation's, its ack of it lost */
  alsoAt?: number;
}

/** A stored bundle as deliveries use it: its wire bytes, decoded from base64 once. */
export interface CachedBundle {
  bytes: Buffer;
  seq: number;
  group: string;
}

const DAY = 86400;

export interface BundlesOptions {
  store: ChangeStore;
  /** null: an upload-only gateway (no signing key) */
  key: SigningKey | null;
  /** the next signing key of a key rotation, or null */
  nextKey?: SigningKey | null;
  /** the manifests the gateway knows: their keys are keys a group trusts (uploads) */
  manifests: ManifestRegistry;
  log: Logger;
  now: () => number;
  /** default bundle lifetime, seconds; default 30 days */
  lifetimeSeconds?: number;
}

export class Bundles {
  readonly #store: ChangeStore;
  readonly #key: SigningKey | null;
  readonly #nextKey: SigningKey | null;
  readonly #manifests: ManifestRegistry;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #lifetime: number;
  /** bundle id → its bytes, decoded once */
  readonly #cache = new Map<string, CachedBundle>();
  /** bundle id → the key epoch it rotates to (null: none), decoded once */
  readonly #rotationEpochs = new Map<string, number | null>();
  /** group → its rotation bundles, read once, the read shared by concurrent callers (bundles reach the store only through this class) */
  readonly #rotationBundles = new Map<string, Promise<RotationBundle[]>>();

  constructor(o: BundlesOptions) {
    this.#store = o.store;
    this.#key = o.key;
    this.#nextKey = o.nextKey ?? null;
    this.#manifests = o.manifests;
    this.#log = o.log;
    this.#now = o.now;
    this.#lifetime = o.lifetimeSeconds ?? 30 * DAY;
  }

  /**
   * Signs a bundle for a group with the next seq (never reused) and stores it. The content is
   * checked before a seq is taken, so a refused bundle burns none, and it is signed once.
   */
  async create(input: BundleInput, actor: string, opts: { key?: SigningKey } = {}): Promise<BundleRecord> {
    const key = opts.key ?? (typeof input?.group === 'string' ? await this.#signerFor(input.group) : this.#key);
    if (!key) throw new GatewayError('PW_NO_SIGNING_KEY', 'this gateway has no signing key; upload a signed bundle (pinwave bundle create on the machine that holds the key, then pinwave bundle upload FILE; POST /v1/bundles with "cose")');
    if (typeof input?.group !== 'string' || !GROUP_RE.test(input.group)) throw invalid('group: must be 1 to 64 characters of A-Z a-z 0-9 . _ : -');
    if (!Array.isArray(input.endpoints) || input.endpoints.length === 0) throw invalid('pins: at least one endpoint is required');
    const endpoints: Endpoint[] = input.endpoints.map((e, i) => {
      const pins = (e.pins ?? []).map((p, j) => {
        try {
          return parsePin(p);
        } catch (err) {
          throw invalid(`pins[${i}].pins[${j}]: ${(err as Error).message}`);
        }
      });
      return {
        host: String(e.host ?? '').toLowerCase(),
        port: e.port ?? 443,
        pins,
        ...(e.mode === 'report-only' && { mode: 'report-only' as const }),
        ...(e.notBefore !== undefined && { notBefore: e.notBefore }),
        ...(e.notAfter !== undefined && { notAfter: e.notAfter }),
      };
    });
    const lifetime = input.expiresInSeconds ?? this.#lifetime;
    if (!Number.isSafeInteger(lifetime) || lifetime <= 0 || lifetime > MAX_BUNDLE_LIFETIME_SECONDS) throw invalid(`expiresIn: must be a positive number of seconds, at most 100 years, got ${lifetime}`);
    const iat = Math.floor(this.#now() / 1000);
    const keyRotation = input.rotateKeys === undefined ? undefined : await this.#rotation(input.group, input.rotateKeys);
    const content = { iat, exp: iat + lifetime, group: input.group, endpoints, ...(keyRotation && { keyRotation }), ...(input.expiryPolicy === 'ca-fallback' && { expiryPolicy: 'ca-fallback' as const }) };
    // The checks signBundle makes (docs/architecture.md §3), made before a seq is taken: any seq
    // passes them, so the bundle as it will be signed is checked with a stand-in.
    const problem = checkBundle({ version: FORMAT_VERSION, seq: 1, ...content });
    if (problem) throw invalid(problem.detail.replace(/^endpoints/, 'pins'));
    const [seq] = await commit(this.#store, [{ type: 'group.allocateSeq', group: input.group, above: await this.#highestReportedSeq(input.group) }]);
    const signed = signBundle({ seq, ...content }, key.seed);
    const record: BundleRecord = {
      id: signed.id,
      group: input.group,
      seq,
      size: signed.bytes.length,
      createdAt: this.#now(),
      bytes: Buffer.from(signed.bytes).toString('base64'),
      createdBy: actor,
    };
    const put = await this.#store.apply([{ type: 'bundle.put', bundle: record }]);
    if (!put.ok) throw new GatewayError('PW_CONFLICT', `bundle ${signed.id} exists already`);
    this.#cache.set(record.id, { bytes: Buffer.from(signed.bytes), seq, group: input.group });
    if (keyRotation) this.#rotationBundles.delete(input.group);
    this.#log.info({ bundle: record.id, group: record.group, seq, actor }, 'bundle created');
    return record;
  }

  /**
   * Takes a bundle signed elsewhere (docs/architecture.md §3): stored only when a device of its group
   * would accept it (gateway/bundle-upload.ts) under a key the group trusts, with the group's next
   * seq. A refusal is PW_UPLOAD_REFUSED with the verifier's reason in details.reason.
   */
  async upload(input: { group: string; bytes: Uint8Array }, actor: string): Promise<BundleRecord & { kid: string; signedBy: string }> {
    if (typeof input?.group !== 'string' || !GROUP_RE.test(input.group)) throw invalid('group: must be 1 to 64 characters of A-Z a-z 0-9 . _ : -');
    const group = input.group;
    const nextSeq = (await this.highestSeq(group)) + 1;
    const rotations = await this.rotations(group);
    const keyEpoch = Math.max(await this.#groupKeyEpoch(group), ...rotations.keys());
    const check = checkUpload(input.bytes, { group, nextSeq, trustedKeys: await this.#groupKeys(group, rotations), keyEpoch, now: Math.floor(this.#now() / 1000) });
    const refuse = (reason: string, detail: string) => new GatewayError('PW_UPLOAD_REFUSED', `the bundle is refused: ${reason}: ${detail}`, { reason, detail, nextSeq });
    if (!check.ok) throw refuse(check.reason, check.detail);
    // Taken only as the next seq: another bundle made in the meantime makes this one stale.
    const [seq] = await commit(this.#store, [{ type: 'group.allocateSeq', group, above: check.bundle.seq - 1 }]);
    if (seq !== check.bundle.seq) throw refuse('replayed', `seq ${check.bundle.seq} was handed out while this bundle was checked; the next seq of group "${group}" is ${seq + 1}`);
    const record: BundleRecord = { id: check.id, group, seq, size: input.bytes.length, createdAt: this.#now(), bytes: Buffer.from(input.bytes).toString('base64'), createdBy: actor, meta: { uploaded: true, kid: check.kid, signedBy: check.signedBy } };
    const put = await this.#store.apply([{ type: 'bundle.put', bundle: record }]);
    if (!put.ok) throw new GatewayError('PW_CONFLICT', `bundle ${check.id} exists already`);
    this.#cache.set(record.id, { bytes: Buffer.from(input.bytes), seq, group });
    if (check.bundle.keyRotation) this.#rotationBundles.delete(group);
    this.#log.info({ bundle: record.id, group, seq, kid: check.kid, actor }, 'bundle uploaded');
    return { ...record, kid: check.kid, signedBy: check.signedBy };
  }

  /**
   * The key a rollback of a group's bundle is signed with (gateway/key-rotation.ts rollbackSigner):
   * one every device holding the rolled-back bundle trusts at the key epoch it reports (and at
   * `alsoAt`, where it may be too), with the reached devices that do not hold it and would not trust
   * it (left out). `signedBy`: the kid of a bundle signed elsewhere, the only candidate then. Refused
   * (PW_INVALID_STATE) naming the devices that would reject the best candidate as unknown_key.
   */
  async rollbackKey(group: string, rollout: string, devices: ReadonlyArray<RollbackReach>, signedBy?: Uint8Array): Promise<{ key: SigningKey | null; leftOut: string[] }> {
    const rotations = await this.rotations(group);
    const ownKid = this.#key?.kid ?? null;
    // The kids a device trusts, worked out once per key epoch and per firmware, not per device;
    // null: not known to distrust any (rotated elsewhere, or before any rotation with no signer).
    const kids = new Map<string, Uint8Array[] | null>();
    const trustedKids = (d: DeviceRecord): Uint8Array[] | null => {
      const epoch = d.keyEpoch ?? 0;
      const m = epoch === 0 && d.model && d.firmware ? this.#manifests.find(d.model, d.firmware)?.manifest : undefined;
      const at = epoch > 0 ? `epoch ${epoch}` : m ? `firmware ${d.model}\0${d.firmware}` : 'own';
      if (!kids.has(at)) {
        if (epoch > 0) kids.set(at, rotations.get(epoch)?.map(kidOf) ?? null);
        else if (m) kids.set(at, m.trustedKeys.map((k) => kidOf(publicKeyFromText(k))));
        else kids.set(at, ownKid === null ? null : [ownKid]); // before any rotation the gateway signed with its own key
      }
      return kids.get(at)!;
    };
    const trusts = (d: RollbackReach) => {
      const sets = [trustedKids(d.record), ...(d.alsoAt === undefined ? [] : [trustedKids({ ...d.record, keyEpoch: d.alsoAt })])];
      return (kid: Uint8Array) => sets.every((mine) => mine === null || mine.some((k) => equalBytes(k, kid)));
    };
    const candidates: Array<{ kid: Uint8Array; key: SigningKey | null }> = [];
    if (signedBy) candidates.push({ kid: signedBy, key: null });
    else for (const k of [await this.#signerFor(group), this.#key, this.#nextKey]) if (k && !candidates.some((c) => equalBytes(c.kid, k.kid))) candidates.push({ kid: k.kid, key: k });
    const chosen = rollbackSigner(candidates, devices.map((d) => ({ id: d.record.id, holds: d.holds, trusts: trusts(d) })));
    if (!chosen.ok) {
      const n = chosen.rejecting.length;
      const kid = chosen.key ? hex(chosen.key.kid) : 'none';
      const rejecting = new Set(chosen.rejecting);
      const unsure = devices.filter((d) => d.alsoAt !== undefined && rejecting.has(d.record.id)).length;
      const either = unsure === 0 ? '' : ` (${unsure} of them may be at either epoch: their ack of the rotation was lost; each says which in its state when it connects again, or revoke it)`;
      throw new GatewayError(
        'PW_INVALID_STATE',
        `cannot roll back ${rollout}: ${n} device${n === 1 ? '' : 's'} holding its bundle would reject the rollback as unknown_key: at the key epoch they report they do not trust ${signedBy ? `key ${kid}, which signed the bundle given` : `any key this gateway signs with (best: ${kid})`}${either}; sign the rollback with a key their rotation lists, upload it, then: pinwave rollout rollback ${rollout} --bundle BUNDLE`,
        { devices: chosen.rejecting.sort().slice(0, 100), count: n, kid },
      );
    }
    return { key: chosen.key.key, leftOut: chosen.leftOut };
  }

  /** Whether the gateway can sign for a group (false on an upload-only gateway). */
  async canSign(group: string): Promise<boolean> {
    return (await this.#signerFor(group)) !== null;
  }

  /** The highest seq of the group: of the bundles stored for it, and of those its devices run. */
  async highestSeq(group: string): Promise<number> {
    let max = await this.#highestReportedSeq(group);
    for await (const b of this.#bundlesOf(group)) if (b.seq > max) max = b.seq;
    return max;
  }

  /** The key rotations of the group's stored bundles, by epoch. */
  async rotations(group: string): Promise<Map<number, Uint8Array[]>> {
    return new Map((await this.#rotationsOf(group)).map((r) => [r.epoch, [...r.keys]]));
  }

  /** The group's stored bundles that carry a key rotation, read once per group. */
  #rotationsOf(group: string): Promise<RotationBundle[]> {
    let list = this.#rotationBundles.get(group);
    if (!list) {
      list = (async () => {
        const out: RotationBundle[] = [];
        for await (const b of this.#bundlesOf(group)) {
          const i = inspectBundle(new Uint8Array(Buffer.from(b.bytes, 'base64')));
          if (i.ok && i.bundle.keyRotation) out.push({ id: b.id, seq: b.seq, exp: i.bundle.exp, kid: i.envelope.kid, ...i.bundle.keyRotation });
        }
        return out;
      })();
      // A read that failed is not kept: the next caller reads again.
      list.catch(() => this.#rotationBundles.delete(group));
      this.#rotationBundles.set(group, list);
    }
    return list;
  }

  /**
   * What a device behind its group's baseline is sent (gateway/key-rotation.ts bridgeFor): the
   * baseline, or first the rotation that makes it trust the baseline's signing key (never one a
   * rollout of which was rolled back: `rolledBack`).
   */
  async bridgeTo(d: { group: string; seq: number | null; keyEpoch?: number | null; model: string | null; firmware: string | null }, baselineId: string, rolledBack?: (bundleId: string) => boolean): Promise<string> {
    const rotations = await this.#rotationsOf(d.group);
    if (rotations.length === 0) return baselineId;
    const b = await this.load(baselineId);
    const i = b ? inspectBundle(new Uint8Array(b.bytes)) : null;
    if (!i?.ok) return baselineId;
    const manifest = d.model && d.firmware ? this.#manifests.find(d.model, d.firmware)?.manifest : undefined;
    const firmwareKeys = manifest?.trustedKeys.map((k) => publicKeyFromText(k));
    return bridgeFor(d, i.envelope.kid, rotations, Math.floor(this.#now() / 1000), firmwareKeys, rolledBack)?.id ?? baselineId;
  }

  /** The key epoch a bundle rotates to, or null; decoded once per bundle (the per-ack path). */
  rotationEpoch(id: string, bytes: Uint8Array): number | null {
    let epoch = this.#rotationEpochs.get(id);
    if (epoch === undefined) {
      const i = inspectBundle(bytes);
      epoch = i.ok && i.bundle.keyRotation ? i.bundle.keyRotation.epoch : null;
      this.#rotationEpochs.set(id, epoch);
    }
    return epoch;
  }

  /** The key the group's next bundle is signed with (gateway/key-rotation.ts): the next key once its rotation is the baseline. */
  async #signerFor(group: string): Promise<SigningKey | null> {
    if (!this.#nextKey) return this.#key;
    const baseline = await baselineOf(this.#store, group);
    const b = baseline ? await this.#store.getBundle(baseline) : null;
    const i = b ? inspectBundle(new Uint8Array(Buffer.from(b.bytes, 'base64'))) : null;
    return signerFor(i?.ok ? { kid: i.envelope.kid, keyRotation: i.bundle.keyRotation } : null, this.#key, this.#nextKey);
  }

  /** A requested key rotation, checked: 1 to 16 keys, an epoch above every one the group holds or was sent (epochs only go up). */
  async #rotation(group: string, r: { epoch: number; keys: string[] }): Promise<{ epoch: number; keys: Uint8Array[] }> {
    if (!Number.isSafeInteger(r?.epoch) || r.epoch < 1) throw invalid(`rotateKeys.epoch: must be an integer of 1 or more, got ${JSON.stringify(r?.epoch)}`);
    if (!Array.isArray(r.keys) || r.keys.length < 1 || r.keys.length > 16) throw invalid('rotateKeys.keys: must hold 1 to 16 public keys');
    const keys = r.keys.map((k, i) => {
      try {
        return publicKeyFromText(String(k));
      } catch (err) {
        throw invalid(`rotateKeys.keys[${i}]: ${(err as Error).message}`);
      }
    });
    const held = Math.max(await this.#groupKeyEpoch(group), ...(await this.rotations(group)).keys());
    if (r.epoch <= held) throw invalid(`rotateKeys.epoch: must be above ${held}, the highest key epoch group "${group}" holds or was sent (epochs only go up: undoing a rotation is a further rotation)`);
    return { epoch: r.epoch, keys };
  }

  /** Every stored bundle of the group, page by page (operator-rate paths only). */
  async *#bundlesOf(group: string): AsyncGenerator<BundleRecord> {
    let cursor: string | null = null;
    do {
      const page: Page<BundleRecord> = await this.#store.listBundles({ group, limit: 1000, cursor });
      yield* page.items;
      cursor = page.next;
    } while (cursor !== null);
  }

  /**
   * The keys a group trusts: the gateway's own, its key rotations', and those of the manifests of
   * its models (every manifest's, when none of its devices has a known model).
   */
  async #groupKeys(group: string, rotations: Map<number, Uint8Array[]>): Promise<TrustedKey[]> {
    const keys: TrustedKey[] = this.#key ? [{ key: this.#key.publicKey, source: "the gateway's signing key" }] : [];
    for (const [epoch, rotated] of rotations) for (const key of rotated) keys.push({ key, source: `key rotation to epoch ${epoch}` });
    const models = new Set<string>();
    for (const d of await allDevices(this.#store, { group })) if (d.model) models.add(d.model);
    const manifests = this.#manifests.list().filter((e) => models.size === 0 || models.has(e.manifest.model));
    for (const e of manifests) for (const k of e.manifest.trustedKeys) keys.push({ key: publicKeyFromText(k), source: `manifest ${e.manifest.model} ${e.manifest.firmware}` });
    return keys;
  }

  /** The key epoch the group's devices report (the highest), 0 when none has rotated. */
  async #groupKeyEpoch(group: string): Promise<number> {
    let epoch = 0;
    for (const d of await allDevices(this.#store, { group })) epoch = Math.max(epoch, d.keyEpoch ?? 0);
    return epoch;
  }

  async get(id: string): Promise<BundleRecord> {
    const b = await this.#store.getBundle(id);
    if (!b) throw notFound('bundle', id);
    return b;
  }

  /** A page of bundles in id order, optionally of one group. */
  async list(query: BundleQuery = {}): Promise<Page<BundleRecord>> {
    return this.#store.listBundles(query);
  }

  /** The decoded content of a stored bundle. */
  async decoded(id: string): Promise<{ record: BundleRecord; bundle: PinBundle }> {
    const record = await this.get(id);
    const r = inspectBundle(new Uint8Array(Buffer.from(record.bytes, 'base64')));
    if (!r.ok) throw new Error(`stored bundle ${id} does not decode: ${r.detail}`);
    return { record, bundle: r.bundle };
  }

  /** The bundle's bytes if they were decoded already. */
  cached(id: string): CachedBundle | undefined {
    return this.#cache.get(id);
  }

  /** The bundle's bytes, from the cache or the store; null when it is not stored. */
  async load(id: string): Promise<CachedBundle | null> {
    const hit = this.#cache.get(id);
    if (hit) return hit;
    const rec = await this.#store.getBundle(id);
    if (!rec) return null;
    return this.remember(rec.id, Buffer.from(rec.bytes, 'base64'), rec);
  }

  /** Keeps bytes read elsewhere (a rollout's bundle at creation) for deliveries. */
  remember(id: string, bytes: Buffer, ref: { seq: number; group: string }): CachedBundle {
    const b = { bytes, seq: ref.seq, group: ref.group };
    this.#cache.set(id, b);
    return b;
  }

  /** A bundle id from a whole id or a unique prefix of at least 8 hex digits: PW_INVALID (too short), PW_NOT_FOUND, or PW_AMBIGUOUS naming the candidates. */
  async resolveId(input: string): Promise<string> {
    if (typeof input === 'string' && (await this.#store.getBundle(input))) return input;
    const prefix = String(input);
    // Ids sort after any proper prefix of theirs: the page after `prefix` starts with its matches.
    const page = prefix.length < MIN_PREFIX ? { items: [], next: null } : await this.#store.listBundles({ cursor: prefix, limit: MAX_CANDIDATES + 1 });
    const matches = page.items.map((b) => b.id).filter((id) => id.startsWith(prefix));
    const r = resolveIdPrefix(prefix, matches, 'bundle', matches.length === page.items.length && page.next !== null);
    if (!r.ok) throw unresolved(r);
    return r.id;
  }

  /** The bundle's pins against what its group runs now: its baseline (gateway/pin-diff.ts), or nothing. */
  async diff(id: string): Promise<PinDiff> {
    const { record, bundle } = await this.decoded(id);
    const text = (eps: Endpoint[]): PinnedEndpoint[] => eps.map((e) => ({ host: e.host, port: e.port, pins: e.pins.map(formatPin) }));
    const baseline = await baselineOf(this.#store, record.group);
    if (!baseline) return pinDiff(text(bundle.endpoints), { kind: 'none' });
    const base = await this.decoded(baseline);
    return pinDiff(text(bundle.endpoints), { kind: 'baseline', bundleId: baseline, seq: base.record.seq, endpoints: text(base.bundle.endpoints) });
  }

  /**
   * The highest seq a device of the group runs, counting only bundles this gateway signed for the
   * group: a device's own claim of a seq is never trusted (it could exhaust the group's seqs).
   */
  async #highestReportedSeq(group: string): Promise<number> {
    let max = 0;
    for (const d of await allDevices(this.#store, { group })) {
      if (!d.bundleId) continue;
      const b = await this.load(d.bundleId);
      if (b && b.group === group && b.seq > max) max = b.seq;
    }
    return max;
  }
}
