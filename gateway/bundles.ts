// Bundles (docs/architecture.md §1, §3): signing a group's next bundle with the gateway's key, the
// stored bundles and their decoded content, ids by unique prefix, the pin diff against the group's
// baseline, and the cache of bundle bytes that deliveries and acks read.
//
//   const record = await bundles.create({ group: 'thermostats', endpoints: [...] }, 'alice');
//   const b = bundles.cached(record.id) ?? (await bundles.load(record.id));   // { bytes, seq, group }
import { GatewayError, invalid, notFound, unresolved } from './errors.ts';
import { GROUP_RE } from './devices.ts';
import { resolveIdPrefix, MAX_CANDIDATES, MIN_PREFIX } from './id-prefix.ts';
import type { Logger } from './logger.ts';
import { pinDiff, type PinDiff, type PinnedEndpoint } from './pin-diff.ts';
import type { SigningKey } from './signing-key.ts';
import type { BundleQuery, BundleRecord, Page, Store } from './store/types.ts';
import {
  checkBundle,
  formatPin,
  inspectBundle,
  parsePin,
  signBundle,
  FORMAT_VERSION,
  type Endpoint,
  type ExpiryPolicy,
  type PinBundle,
} from '../firmware-manifest/index.ts';

export interface BundleInput {
  group: string;
  endpoints: Array<{ host: string; port?: number; pins: string[]; mode?: 'enforce' | 'report-only'; notBefore?: number; notAfter?: number }>;
  expiresInSeconds?: number;
  expiryPolicy?: ExpiryPolicy;
}

/** A stored bundle as deliveries use it: its wire bytes, decoded from base64 once. */
export interface CachedBundle {
  bytes: Buffer;
  seq: number;
  group: string;
}

const DAY = 86400;

export interface BundlesOptions {
  store: Store;
  key: SigningKey;
  log: Logger;
  now: () => number;
  /** default bundle lifetime, seconds; default 30 days */
  lifetimeSeconds?: number;
}

export class Bundles {
  readonly #store: Store;
  readonly #key: SigningKey;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #lifetime: number;
  /** bundle id → its bytes, decoded once */
  readonly #cache = new Map<string, CachedBundle>();

  constructor(o: BundlesOptions) {
    this.#store = o.store;
    this.#key = o.key;
    this.#log = o.log;
    this.#now = o.now;
    this.#lifetime = o.lifetimeSeconds ?? 30 * DAY;
  }

  /**
   * Signs a bundle for a group with the next seq (never reused) and stores it. The content is
   * checked before a seq is taken, so a refused bundle burns none, and it is signed once.
   */
  async create(input: BundleInput, actor: string): Promise<BundleRecord> {
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
    if (!Number.isSafeInteger(lifetime) || lifetime <= 0) throw invalid(`expiresIn: must be a positive number of seconds, got ${lifetime}`);
    const iat = Math.floor(this.#now() / 1000);
    const content = { iat, exp: iat + lifetime, group: input.group, endpoints, ...(input.expiryPolicy === 'ca-fallback' && { expiryPolicy: 'ca-fallback' as const }) };
    // The checks signBundle makes (docs/architecture.md §3), made before a seq is taken: any seq
    // passes them, so the bundle as it will be signed is checked with a stand-in.
    const problem = checkBundle({ version: FORMAT_VERSION, seq: 1, ...content });
    if (problem) throw invalid(problem.detail.replace(/^endpoints/, 'pins'));
    const seq = await this.#store.allocateSeq(input.group, await this.#highestReportedSeq(input.group));
    const signed = signBundle({ seq, ...content }, this.#key.seed);
    const record: BundleRecord = {
      id: signed.id,
      group: input.group,
      seq,
      size: signed.bytes.length,
      createdAt: this.#now(),
      bytes: Buffer.from(signed.bytes).toString('base64'),
      createdBy: actor,
    };
    const put = await this.#store.putBundle(record);
    if (!put.ok) throw new GatewayError('PW_CONFLICT', `bundle ${signed.id} exists already`);
    this.#cache.set(record.id, { bytes: Buffer.from(signed.bytes), seq, group: input.group });
    this.#log.info({ bundle: record.id, group: record.group, seq, actor }, 'bundle created');
    return record;
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
    const baseline = await this.#store.getBaseline(record.group);
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
    for (const id of await this.#store.devicesInGroup(group)) {
      const d = await this.#store.getDevice(id);
      if (!d?.bundleId) continue;
      const b = await this.load(d.bundleId);
      if (b && b.group === group && b.seq > max) max = b.seq;
    }
    return max;
  }
}
