// The manifests part (docs/architecture.md §1, §4): pushes validated as `pinwave manifest validate`
// does, weighed against the config's by the registry (manifest-registry.ts), and kept durably in the
// data dir (manifest-file.ts) before they count.
//
//   const r = await manifests.push(json, 'adam');   // { status: 'created' | 'replaced' | 'unchanged', entry }
import { formatManifestErrors, validateManifest } from '../firmware-manifest/index.ts';
import { GatewayError, invalid } from './errors.ts';
import type { Logger } from './logger.ts';
import { writeManifestFile } from './manifest-file.ts';
import type { KnownManifest, ManifestRegistry } from './manifest-registry.ts';

export interface ManifestsOptions {
  registry: ManifestRegistry;
  /** the data dir, where pushed manifests are kept */
  dir: string;
  log: Logger;
  now: () => number;
}

export class Manifests {
  readonly #o: ManifestsOptions;

  constructor(o: ManifestsOptions) {
    this.#o = o;
  }

  /**
   * Takes a pushed manifest: PW_INVALID listing every problem, PW_CONFLICT naming the configured
   * manifest of its model and firmware when that one differs, a no-op when identical to what is
   * known; durable before it returns (a push that cannot be written changes nothing).
   */
  async push(value: unknown, actor: string): Promise<{ status: 'created' | 'replaced' | 'unchanged'; entry: KnownManifest }> {
    const { registry, dir, log, now } = this.#o;
    const r = validateManifest(value);
    if (!r.ok) throw invalid(`not a valid firmware manifest:\n${formatManifestErrors(r.errors)}`, { errors: r.errors });
    const before = registry.pushed();
    const out = registry.push(r.manifest, { by: actor, at: now() });
    if (!out.ok) throw new GatewayError('PW_CONFLICT', out.message, { conflict: { model: out.conflict.manifest.model, firmware: out.conflict.manifest.firmware, source: out.conflict.source } });
    if (out.status !== 'unchanged') {
      try {
        writeManifestFile(dir, registry.pushed());
      } catch (err) {
        registry.reset(before);
        throw err;
      }
      log.info({ model: r.manifest.model, firmware: r.manifest.firmware, status: out.status, actor }, 'manifest pushed');
    }
    return { status: out.status, entry: out.entry };
  }

  list(): KnownManifest[] {
    return this.#o.registry.list();
  }
}
