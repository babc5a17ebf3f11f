import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import type { PinnedFunction } from './engine.js';

/** How long an alias's weights and a version's timeout are reused between node starts (ms). */
const pinCacheMs = 1000;
/** Entries kept at most in each cache; the oldest go first. */
const pinCacheEntries = 1000;

/** A small read-through cache whose entries live `pinCacheMs`. */
class ShortCache<T> {
  readonly #entries = new Map<string, { value: T; until: number }>();

  constructor(private readonly now: () => number) {}

  async get(key: string, load: () => Promise<T>): Promise<T> {
    const now = this.now();
    const hit = this.#entries.get(key);
    if (hit !== undefined && hit.until > now) return hit.value;
    const value = await load();
    this.#entries.delete(key);
    this.#entries.set(key, { value, until: now + pinCacheMs });
    if (this.#entries.size > pinCacheEntries) this.#entries.delete(this.#entries.keys().next().value!);
    return value;
  }
}

/**
 * The engine's `pinFunction` over the metadata and traffic stores: a version number as it is, an alias by its
 * weights (as an invocation through the alias would pick); null when the function, version or alias does not exist.
 * What it reads is reused for a second (`pinCacheMs`), like the gateway's own resolution: a chain of nodes on one
 * function reads the stores once, and a change of an alias reaches the nodes that start a second later at most.
 */
export function pinFunctionVersion(
  metadata: Pick<MetadataStore, 'getVersion'>,
  traffic: Pick<TrafficStore, 'getAlias'>,
  random: () => number = Math.random,
  now: () => number = Date.now,
): (functionName: string, qualifier: string) => Promise<PinnedFunction | null> {
  const aliases = new ShortCache<Awaited<ReturnType<TrafficStore['getAlias']>>>(now);
  const versions = new ShortCache<PinnedFunction | null>(now);
  return async (functionName, qualifier) => {
    let version: number;
    if (/^[1-9][0-9]{0,9}$/.test(qualifier)) {
      version = Number(qualifier);
    } else {
      const alias = await aliases.get(JSON.stringify([functionName, qualifier]), () =>
        traffic.getAlias(functionName, qualifier),
      );
      if (alias === null || alias.weights.length === 0) return null;
      let point = random();
      const picked = alias.weights.find((w) => (point -= w.weight) < 0) ?? alias.weights.at(-1)!;
      version = picked.version;
    }
    return versions.get(JSON.stringify([functionName, version]), async () => {
      const record = await metadata.getVersion(functionName, version);
      return record === null ? null : { version, timeoutSeconds: record.config.timeoutSeconds };
    });
  };
}
