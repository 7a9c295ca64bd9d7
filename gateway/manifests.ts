// The manifests part (docs/architecture.md §1, §4): pushes validated as `pinwave manifest validate`
// does, weighed against the config's by the registry (manifest-registry.ts), and committed to the
// store (the `manifests` collection, so every gateway on one database sees them) before they count.
// A data dir of an earlier release keeps them in manifests.json (manifest-file.ts): read at start
// while the store has none, and carried into the store by the next push.
//
//   const r = await manifests.push(json, 'adam');   // { status: 'created' | 'replaced' | 'unchanged', entry }
//   await manifests.push(json, 'sim', { replace: false });   // PW_CONFLICT rather than replace a different pushed one
import { duplicateTrustedKey, formatManifestErrors, keysOnce, manifestWarnings, validateManifest, type FirmwareManifest, type ManifestError } from '../firmware-manifest/index.ts';
import { GatewayError, invalid } from './errors.ts';
import type { Logger } from './logger.ts';
import { readManifestFile } from './manifest-file.ts';
import type { ChangeStore, JsonObject } from './store/changes.ts';
import { commit } from './fleet-reads.ts';
import type { KnownManifest, ManifestRegistry } from './manifest-registry.ts';

const MANIFESTS = 'manifests';
const PUSHED = 'pushed';

/** The pushed manifests the store holds; while it holds none, those of an earlier release's `DIR/manifests.json`. */
export async function loadPushedManifests(store: ChangeStore, dataDir: string | null): Promise<KnownManifest[]> {
  const item = await store.getItem(MANIFESTS, PUSHED);
  if (item) return item.entries as unknown as KnownManifest[];
  return dataDir === null ? [] : readManifestFile(dataDir);
}

/** A push's outcome; `warnings`: what is valid but will not work as meant (manifestWarnings), also logged. */
export interface ManifestPush {
  status: 'created' | 'replaced' | 'unchanged';
  entry: KnownManifest;
  warnings: ManifestError[];
}

export interface ManifestsOptions {
  registry: ManifestRegistry;
  store: ChangeStore;
  log: Logger;
  now: () => number;
}

/** A manifest's warnings (manifestWarnings), logged with its model and firmware when there are any. */
function warned(log: Logger, m: FirmwareManifest, msg: string): ManifestError[] {
  const warnings = manifestWarnings(m);
  if (warnings.length > 0) log.warn({ model: m.model, firmware: m.firmware, warnings: warnings.map((w) => `${w.path}: ${w.message}`) }, msg);
  return warnings;
}

export class Manifests {
  readonly #o: ManifestsOptions;
  /** the push being committed: pushes commit one after another (each writes the whole pushed set) */
  #last: Promise<unknown> = Promise.resolve();

  constructor(o: ManifestsOptions) {
    this.#o = o;
  }

  /**
   * Takes a pushed manifest: PW_INVALID listing every problem, PW_CONFLICT naming the configured
   * manifest of its model and firmware when that one differs, a no-op when identical to what is
   * known; durable before it returns (a push that cannot be written changes nothing). Pushes run
   * one at a time: one that fails puts back the set it started from, which must not drop a push
   * made meanwhile (that one's batch, holding the whole set, may still commit). With `replace: false`
   * a different pushed manifest of its model and firmware is a PW_CONFLICT too, and is kept.
   */
  push(value: unknown, actor: string, o: { replace?: boolean } = {}): Promise<ManifestPush> {
    const run = this.#last.then(() => this.#push(value, actor, o));
    this.#last = run.catch(() => undefined);
    return run;
  }

  async #push(value: unknown, actor: string, o: { replace?: boolean }): Promise<ManifestPush> {
    const { registry, store, log, now } = this.#o;
    const r = keysOnce(validateManifest(value));
    if (!r.ok) throw invalid(`not a valid firmware manifest:\n${formatManifestErrors(r.errors)}`, { errors: r.errors });
    const before = registry.pushed();
    const out = registry.push(r.manifest, { by: actor, at: now() }, o);
    if (!out.ok) {
      const c = out.conflict;
      throw new GatewayError('PW_CONFLICT', out.message, { conflict: { model: c.manifest.model, firmware: c.manifest.firmware, source: c.source, differs: out.differs, ...(c.pushedBy !== undefined && { pushedBy: c.pushedBy }), ...(c.pushedAt !== undefined && { pushedAt: c.pushedAt }) } });
    }
    if (out.status !== 'unchanged') {
      try {
        await commit(store, [{ type: 'item.put', collection: MANIFESTS, key: PUSHED, value: { entries: registry.pushed() } as unknown as JsonObject }]);
      } catch (err) {
        registry.reset(before);
        throw err;
      }
      log.info({ model: r.manifest.model, firmware: r.manifest.firmware, status: out.status, actor }, 'manifest pushed');
    }
    return { status: out.status, entry: out.entry, warnings: warned(log, r.manifest, 'manifest pushed with warnings') };
  }

  /** Logs what is valid but will not work as meant in each manifest of the config (manifestWarnings), as a push's are: at start, once. */
  warnConfigured(manifests: readonly FirmwareManifest[]): void {
    for (const m of manifests) warned(this.#o.log, m, 'configured manifest has warnings');
  }

  /**
   * Logs each pushed manifest read at start that lists a trusted key twice (duplicateTrustedKey): an
   * earlier release took such pushes, and a push refused now must not stop the gateway that holds one.
   */
  warnStored(entries: readonly KnownManifest[]): void {
    for (const { manifest: m } of entries) {
      const twice = duplicateTrustedKey(m);
      if (twice) this.#o.log.warn({ model: m.model, firmware: m.firmware, warnings: [`${twice.path}: ${twice.message}`] }, 'stored manifest lists a trusted key twice: push it again with each key once');
    }
  }

  list(): KnownManifest[] {
    return this.#o.registry.list();
  }
}
