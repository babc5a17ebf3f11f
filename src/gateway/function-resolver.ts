import { PlatformError } from '../core/errors.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { FunctionVersion } from '../core/types.js';

/**
 * Resolves a function name to its current version on the invoke path, with a short-lived cache so a warm
 * invoke does not read the metadata store twice. Deploys, rollbacks and deletes through this gateway
 * invalidate at once; other gateways (cluster mode) see a change within `ttlMs`.
 */
export class FunctionResolver {
  readonly #cache = new Map<string, { version: FunctionVersion; expiresAt: number }>();

  constructor(
    private readonly metadata: MetadataStore,
    private readonly ttlMs = 1000,
  ) {}

  async current(name: string): Promise<FunctionVersion> {
    const now = Date.now();
    const hit = this.#cache.get(name);
    if (hit !== undefined && hit.expiresAt > now) return hit.version;
    const fn = await this.metadata.getFunction(name);
    if (fn === null) throw new PlatformError('NOT_FOUND', `function ${name} not found`);
    const version = await this.metadata.getVersion(name, fn.currentVersion);
    if (version === null) throw new PlatformError('NOT_FOUND', `function ${name} has no version ${fn.currentVersion}`);
    this.#cache.set(name, { version, expiresAt: now + this.ttlMs });
    return version;
  }

  invalidate(name: string): void {
    this.#cache.delete(name);
  }
}
