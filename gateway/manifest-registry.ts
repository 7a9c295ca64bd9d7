// The firmware manifests the gateway knows (docs/architecture.md §4): those of its config, and those
// pushed through the API (`POST /v1/manifests`), one per model and firmware version. The config's
// win: a push that differs from a configured manifest of the same model and firmware is refused,
// naming it; an identical push changes nothing. Pure: what is pushed is persisted by the caller.
//
//   const reg = new ManifestRegistry(configured);
//   const r = reg.push(manifest, { by: 'alice', at: now });   // { status: 'created' | 'replaced' | 'unchanged' } or a conflict
//   reg.push(manifest, by, { replace: false });                 // a different pushed one is a conflict too, kept
//   reg.find('th-100', '1.4.2');                               // the manifest a device of that firmware was born with
import { isDeepStrictEqual } from 'node:util';
import type { FirmwareManifest } from '../firmware-manifest/index.ts';

export type ManifestSource = 'config' | 'pushed';

export interface KnownManifest {
  manifest: FirmwareManifest;
  source: ManifestSource;
  /** who pushed it and when (epoch ms); absent for the config's */
  pushedBy?: string;
  pushedAt?: number;
}

export type PushOutcome =
  | { ok: true; status: 'created' | 'replaced' | 'unchanged'; entry: KnownManifest }
  | { ok: false; conflict: KnownManifest; differs: string[]; message: string };

/** The top-level fields in which two manifests differ (a field one lacks counts), in the order of `a` then `b`. */
export function manifestDifferences(a: FirmwareManifest, b: FirmwareManifest): string[] {
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  return [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => !isDeepStrictEqual(x[k], y[k]));
}

const keyOf = (model: string, firmware: string) => `${model}\u0000${firmware}`;

export class ManifestRegistry {
  readonly #configured = new Map<string, KnownManifest>();
  readonly #pushed = new Map<string, KnownManifest>();

  constructor(configured: readonly FirmwareManifest[] = [], pushed: readonly KnownManifest[] = []) {
    for (const m of configured) this.configure(m);
    for (const e of pushed) this.#pushed.set(keyOf(e.manifest.model, e.manifest.firmware), { ...e, source: 'pushed' });
  }

  /** A manifest of the config (or of a test): it replaces a configured one of the same model and firmware. */
  configure(m: FirmwareManifest): void {
    this.#configured.set(keyOf(m.model, m.firmware), { manifest: m, source: 'config' });
  }

  /**
   * A pushed manifest (already validated): refused when a configured one of its model and firmware
   * differs, and, with `replace: false`, when a pushed one differs (it is kept).
   */
  push(m: FirmwareManifest, by: { by: string; at: number }, o: { replace?: boolean } = {}): PushOutcome {
    const key = keyOf(m.model, m.firmware);
    const configured = this.#configured.get(key);
    if (configured) {
      if (isDeepStrictEqual(configured.manifest, m)) return { ok: true, status: 'unchanged', entry: configured };
      const differs = manifestDifferences(configured.manifest, m);
      return { ok: false, conflict: configured, differs, message: `the gateway's config has a different manifest for model "${m.model}" firmware "${m.firmware}" (it differs in ${differs.join(', ')}), and the config's wins: change it there (and restart), or push this firmware under a new version` };
    }
    const before = this.#pushed.get(key);
    if (before && isDeepStrictEqual(before.manifest, m)) return { ok: true, status: 'unchanged', entry: before };
    if (before && o.replace === false) {
      const differs = manifestDifferences(before.manifest, m);
      return { ok: false, conflict: before, differs, message: `the gateway has a different manifest for model "${m.model}" firmware "${m.firmware}", pushed by ${before.pushedBy ?? 'someone'} (it differs in ${differs.join(', ')}), and replace is false: it is kept. Push this firmware under a new version, or push again allowing the replacement` };
    }
    const entry: KnownManifest = { manifest: m, source: 'pushed', pushedBy: by.by, pushedAt: by.at };
    this.#pushed.set(key, entry);
    return { ok: true, status: before ? 'replaced' : 'created', entry };
  }

  /** The manifest of one model and firmware, the config's first. */
  find(model: string, firmware: string): KnownManifest | null {
    const key = keyOf(model, firmware);
    return this.#configured.get(key) ?? this.#pushed.get(key) ?? null;
  }

  /** Every manifest of a model, the config's first. */
  ofModel(model: string): KnownManifest[] {
    return this.list().filter((e) => e.manifest.model === model);
  }

  /** Every manifest known: the config's, then the pushed ones not shadowed by it, each by model then firmware. */
  list(): KnownManifest[] {
    const order = (a: KnownManifest, b: KnownManifest) => (a.manifest.model < b.manifest.model ? -1 : a.manifest.model > b.manifest.model ? 1 : a.manifest.firmware < b.manifest.firmware ? -1 : a.manifest.firmware > b.manifest.firmware ? 1 : 0);
    const pushed = [...this.#pushed].filter(([k]) => !this.#configured.has(k)).map(([, e]) => e);
    return [...[...this.#configured.values()].sort(order), ...pushed.sort(order)];
  }

  /** Puts the pushed manifests back as they were (a push that could not be persisted). */
  reset(pushed: readonly KnownManifest[]): void {
    this.#pushed.clear();
    for (const e of pushed) this.#pushed.set(keyOf(e.manifest.model, e.manifest.firmware), e);
  }

  /** The pushed manifests, for persisting them. */
  pushed(): KnownManifest[] {
    return [...this.#pushed.values()];
  }

  /**
   * One manifest per model, for pre-flight (gateway/preflight.ts looks devices up by model): the
   * config's last configured, else the last pushed.
   */
  byModel(): Map<string, FirmwareManifest> {
    return this.#byModel();
  }

  /** The manifest `byModel()` gives for one model (what a health check is judged by, gateway/rollout/verification.ts). */
  get(model: string): FirmwareManifest | undefined {
    let found: FirmwareManifest | undefined;
    for (const e of this.#configured.values()) if (e.manifest.model === model) found = e.manifest;
    if (found) return found;
    for (const e of this.#pushed.values()) if (e.manifest.model === model) found = e.manifest;
    return found;
  }

  #byModel(): Map<string, FirmwareManifest> {
    const out = new Map<string, FirmwareManifest>();
    for (const e of this.#pushed.values()) out.set(e.manifest.model, e.manifest);
    for (const e of this.#configured.values()) out.set(e.manifest.model, e.manifest);
    return out;
  }
}
