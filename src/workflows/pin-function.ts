import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import type { PinnedFunction } from './engine.js';

/**
 * The engine's `pinFunction` over the metadata and traffic stores: a version number as it is, an alias by its
 * weights (as an invocation through the alias would pick); null when the function, version or alias does not exist.
 */
export function pinFunctionVersion(
  metadata: Pick<MetadataStore, 'getVersion'>,
  traffic: Pick<TrafficStore, 'getAlias'>,
  random: () => number = Math.random,
): (functionName: string, qualifier: string) => Promise<PinnedFunction | null> {
  return async (functionName, qualifier) => {
    let version: number;
    if (/^[1-9][0-9]{0,9}$/.test(qualifier)) {
      version = Number(qualifier);
    } else {
      const alias = await traffic.getAlias(functionName, qualifier);
      if (alias === null || alias.weights.length === 0) return null;
      let point = random();
      const picked = alias.weights.find((w) => (point -= w.weight) < 0) ?? alias.weights.at(-1)!;
      version = picked.version;
    }
    const record = await metadata.getVersion(functionName, version);
    return record === null ? null : { version, timeoutSeconds: record.config.timeoutSeconds };
  };
}
