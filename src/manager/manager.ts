import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { AgentApi } from '../core/ports/agent-api.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { FunctionRecord, FunctionVersion, InstanceRef, ProvisionRequest, SerializedError } from '../core/types.js';
import { poolKey } from '../core/types.js';

export interface ManagerOptions {
  queue: ProvisionQueue;
  pool: Pool;
  metadata: MetadataStore;
  /** The node's Agent; placement across several agents comes with cluster mode. */
  agent: AgentApi;
  logger?: Logger;
  /** Sandboxes created at once; the Manager provisions at its own pace (ADR-001 §3). */
  concurrency?: number;
  /** How often min-instances, idle reaping and lease reclaim run. */
  reconcileIntervalMs?: number;
  now?: () => number;
}

/**
 * Provisions sandboxes: pops requests from the queue with bounded concurrency, creates them through the
 * Agent and pushes ready instances to the warm pool. It never runs functions. A reconcile loop keeps
 * min instances warm, reaps idle instances, retires old versions and reclaims expired leases.
 */
export class Manager {
  readonly #options: Required<Omit<ManagerOptions, 'logger'>> & { logger: Logger };
  readonly #abort = new AbortController();
  readonly #inFlight = new Map<string, number>();
  #workers: Promise<void>[] = [];
  #reconcileTimer: NodeJS.Timeout | undefined;
  #reconciling: Promise<void> | undefined;
  #started = false;
  #stopped = false;

  constructor(options: ManagerOptions) {
    this.#options = {
      concurrency: 4,
      reconcileIntervalMs: 1000,
      now: Date.now,
      ...options,
      logger: (options.logger ?? silentLogger).child({ role: 'manager' }),
    };
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (let i = 0; i < this.#options.concurrency; i++) this.#workers.push(this.#work());
    this.#reconcileTimer = setInterval(() => void this.reconcile(), this.#options.reconcileIntervalMs);
    this.#reconcileTimer.unref();
  }

  /** Stop taking requests and wait for in-flight provisioning to finish. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#abort.abort();
    clearInterval(this.#reconcileTimer);
    await Promise.allSettled([...this.#workers, this.#reconciling]);
  }

  /** Provisioning requests currently being served for a pool key. */
  inFlight(key: string): number {
    return this.#inFlight.get(key) ?? 0;
  }

  async #work(): Promise<void> {
    const { queue, logger } = this.#options;
    while (!this.#abort.signal.aborted) {
      let request: ProvisionRequest | null;
      try {
        request = await queue.pop(1000, this.#abort.signal);
      } catch (err) {
        if (this.#abort.signal.aborted) return;
        logger.warn({ err }, 'provision queue pop failed; retrying');
        await delay(500);
        continue;
      }
      if (request === null) continue;
      await this.#provision(request).catch((err: unknown) => logger.error({ err }, 'provisioning failed'));
    }
  }

  async #provision(request: ProvisionRequest): Promise<void> {
    const { pool, metadata, agent, logger } = this.#options;
    const key = poolKey(request.functionName, request.version);
    const version = await metadata.getVersion(request.functionName, request.version);
    if (version === null) {
      await pool.pushFailure(key, notFound(request));
      return;
    }
    if (request.reason === 'demand') {
      // Someone may already have been served by a returned instance (competitive consumption):
      // create only while waiters outnumber the sandboxes already on their way.
      const { waiters } = await pool.stats(key);
      if (waiters <= this.inFlight(key)) return;
    }
    if ((await this.#countInstances(version)) + this.inFlight(key) >= version.config.maxInstances) return;

    this.#inFlight.set(key, this.inFlight(key) + 1);
    try {
      const instance = await agent.createSandbox({
        functionName: version.functionName,
        version: version.version,
        codeSha256: version.codeSha256,
        config: version.config,
      });
      await pool.push(instance);
      logger.debug({ key, instanceId: instance.instanceId, initMs: instance.initMs }, 'sandbox ready');
    } catch (err) {
      const error = PlatformError.from(err);
      logger.warn({ key, err: error }, 'sandbox creation failed');
      await pool.pushFailure(key, { name: error.name, code: error.code, message: error.rawMessage }).catch(() => {});
    } finally {
      this.#inFlight.set(key, this.inFlight(key) - 1);
    }
  }

  async #countInstances(version: FunctionVersion): Promise<number> {
    const sandboxes = await this.#options.agent.listSandboxes();
    return sandboxes.filter((s) => s.functionName === version.functionName && s.version === version.version).length;
  }

  /** One pass of housekeeping; runs on a timer and after deploys. Concurrent calls share one pass. */
  reconcile(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#reconciling ??= this.#reconcileOnce()
      .catch((err: unknown) => this.#options.logger.warn({ err }, 'reconcile failed'))
      .finally(() => {
        this.#reconciling = undefined;
      });
    return this.#reconciling;
  }

  async #reconcileOnce(): Promise<void> {
    const { pool, metadata, agent, now } = this.#options;
    const functions = new Map((await metadata.listFunctions()).map((f) => [f.name, f]));
    const toDestroy: InstanceRef[] = [...(await pool.reclaimExpired(now()))];
    // Each current version is read once per pass, however many steps below need it.
    const versions = new Map<string, Promise<FunctionVersion | null>>();
    const currentOf = (fn: FunctionRecord): Promise<FunctionVersion | null> => {
      let version = versions.get(fn.name);
      if (version === undefined) {
        version = metadata.getVersion(fn.name, fn.currentVersion);
        versions.set(fn.name, version);
      }
      return version;
    };

    for (const key of await pool.keys()) {
      const [name = '', versionText = ''] = splitKey(key);
      const fn = functions.get(name);
      if (fn === undefined || fn.currentVersion !== Number(versionText)) {
        // Deleted function or a version no longer current: retire its idle instances now.
        toDestroy.push(...(await pool.drain(key)));
        continue;
      }
      const version = await currentOf(fn);
      if (version === null) continue;
      const idleBefore = now() - version.config.idleSeconds * 1000;
      toDestroy.push(...(await pool.reapIdle(key, idleBefore, version.config.minInstances)));
    }
    await Promise.allSettled(toDestroy.map((instance) => agent.destroySandbox(instance.instanceId)));

    // Keep min instances of each current version warm.
    for (const fn of functions.values()) {
      const version = await currentOf(fn);
      if (version === null || version.config.minInstances === 0) continue;
      const missing =
        version.config.minInstances -
        (await this.#countInstances(version)) -
        this.inFlight(poolKey(fn.name, fn.currentVersion));
      for (let i = 0; i < missing && !this.#stopped; i++) {
        await this.#provision({
          functionName: fn.name,
          version: fn.currentVersion,
          reason: 'min-instances',
          requestedAt: now(),
        });
      }
    }
  }
}

function splitKey(key: string): [string, string] {
  const at = key.lastIndexOf('@');
  return [key.slice(0, at), key.slice(at + 1)];
}

function notFound(request: ProvisionRequest): SerializedError {
  return {
    name: 'PlatformError',
    code: 'NOT_FOUND',
    message: `function ${request.functionName} version ${request.version} no longer exists`,
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
