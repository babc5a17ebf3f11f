import type { Logger } from '../core/logger.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';

/** The backends an invocation needs, by the names `/readyz` reports. */
export type BackendName = 'metadata' | 'pool' | 'blobs';

export interface ReadinessOptions {
  metadata: MetadataStore;
  pool: Pool;
  blobStore: BlobStore;
  /** How long one answer is reused (default 1 s): a load balancer polling `/readyz` costs the backends little. */
  cacheMs?: number;
  /** A check that has not answered by then counts as down (default 2 s). */
  timeoutMs?: number;
  logger?: Logger | undefined;
  /** Called with each backend a check finds down (counted in the metrics). */
  onDown?: ((backend: BackendName) => void) | undefined;
}

/**
 * Returns a function that names the backends that do not answer a cheap read right now (none: ready). Each check
 * is one read that touches the backend (a function lookup, the pool's counts of an unused key, a blob's existence);
 * answers are cached briefly and concurrent callers share one round of checks.
 */
export function createReadinessCheck(options: ReadinessOptions): () => Promise<BackendName[]> {
  const { metadata, pool, blobStore, logger } = options;
  const cacheMs = options.cacheMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 2000;
  const checks: [BackendName, () => Promise<unknown>][] = [
    ['metadata', () => metadata.getFunction('readyz-probe')],
    ['pool', () => pool.instances('readyz-probe@0')],
    ['blobs', () => blobStore.exists('readyz/probe')],
  ];
  let cached: { at: number; down: BackendName[] } | null = null;
  let inFlight: Promise<BackendName[]> | null = null;

  const probe = async ([name, check]: [BackendName, () => Promise<unknown>]): Promise<BackendName | null> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([check(), timeout]);
      return null;
    } catch (err) {
      logger?.warn({ err, backend: name }, 'readiness check failed');
      options.onDown?.(name);
      return name;
    } finally {
      clearTimeout(timer);
    }
  };

  return () => {
    if (cached !== null && performance.now() - cached.at < cacheMs) return Promise.resolve(cached.down);
    inFlight ??= Promise.all(checks.map(probe)).then((results) => {
      const down = results.filter((name): name is BackendName => name !== null);
      cached = { at: performance.now(), down };
      inFlight = null;
      return down;
    });
    return inFlight;
  };
}
