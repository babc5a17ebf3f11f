import type { Logger } from '../core/logger.js';
import type { InvocationQueue } from '../core/ports/invocation-queue.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { AsyncInvocations } from './async-invocations.js';
import { Destinations } from './destinations.js';
import { type DispatchSettings, Dispatcher, type DispatcherOptions } from './dispatcher.js';
import type { RunInvocation } from './run-invocation.js';

/** How long a function's settings are kept between reads (ms). */
const settingsCacheMs = 1000;

export interface AsyncDispatchOptions {
  queue: InvocationQueue;
  metadata: MetadataStore;
  run: RunInvocation;
  /** Queues destination functions' invocations. */
  asyncInvocations: AsyncInvocations;
  /** Sends destination records to named queues, where queues exist. */
  sendToQueue?: ((queue: string, body: string) => Promise<unknown>) | undefined;
  logger: Logger;
  /** Webhooks may reach the host's loopback where a function's allowNet lists it (see `DestinationsOptions`). */
  allowLoopbackWebhooks?: boolean | undefined;
  /** Tuning for tests: see `DispatcherOptions`. */
  tuning?: Pick<DispatcherOptions, 'idlePollMs' | 'visibilityGraceMs' | 'backoffMs'> | undefined;
}

/**
 * The dispatcher of asynchronous invocations as every composition root runs it: over the metadata store's functions
 * and their current versions' settings (read at most once a second each), its destinations queued through
 * `asyncInvocations`.
 */
export function createAsyncDispatcher(options: AsyncDispatchOptions): Dispatcher {
  const { metadata } = options;
  const cache = new Map<string, { at: number; settings: Promise<DispatchSettings | null> }>();
  const read = async (name: string): Promise<DispatchSettings | null> => {
    const fn = await metadata.getFunction(name);
    if (fn === null) return null;
    const version = await metadata.getVersion(name, fn.currentVersion);
    return version === null ? null : version.config;
  };
  return new Dispatcher({
    queue: options.queue,
    run: options.run,
    functions: async () => (await metadata.listFunctions()).map((fn) => fn.name),
    settings: (name) => {
      const now = Date.now();
      const cached = cache.get(name);
      if (cached !== undefined && now - cached.at < settingsCacheMs) return cached.settings;
      const settings = read(name);
      cache.set(name, { at: now, settings });
      settings.catch(() => cache.delete(name));
      return settings;
    },
    destinations: new Destinations({
      submit: (name, eventJson, submitOptions) => options.asyncInvocations.submit(name, eventJson, submitOptions),
      sendToQueue: options.sendToQueue,
      allowHostLoopback: options.allowLoopbackWebhooks,
    }),
    logger: options.logger,
    ...options.tuning,
  });
}
