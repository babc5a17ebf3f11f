import { setTimeout as sleep } from 'node:timers/promises';
import { PlatformError, isPlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { OutageLog } from '../core/outage-log.js';
import type { SandboxSpec } from '../core/ports/agent-api.js';
import { countInstances, type AgentDirectory } from '../core/ports/agent-directory.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { Tracer } from '../core/ports/tracer.js';
import { noopTracer } from '../core/ports/tracer.js';
import type { FunctionVersion, InstanceRef, ProvisionRequest, SerializedError } from '../core/types.js';
import { secretEnvOf } from '../core/secrets.js';
import { poolKey } from '../core/types.js';

export interface ManagerOptions {
  queue: ProvisionQueue;
  pool: Pool;
  metadata: MetadataStore;
  /** The Agents to place sandboxes on: the local one in embedded mode, the cluster's live nodes otherwise. */
  agents: AgentDirectory;
  logger?: Logger;
  /** Sandboxes created at once; the Manager provisions at its own pace (ADR-001 §3). */
  concurrency?: number;
  now?: () => number;
  /** Spans of provisionings whose requests carry a `traceparent` (default: off). */
  tracer?: Tracer;
}

/** Pauses of a worker whose queue pop failed (a backend outage): doubling from the first to the last. */
const popRetryMs = { first: 250, max: 2000 } as const;

/**
 * Provisions sandboxes: pops requests from the queue with bounded concurrency, creates them on the Agent that
 * placement picks (free capacity, then code locality) and pushes ready instances to the warm pool. It never runs
 * functions. Every Manager consumes the queue; the control plane's `Reconciler` (leader only) asks it for min
 * instances and replacements through `provision` and `replaceFor`.
 *
 * A backend outage never stops it: a failing queue pop is retried with a growing pause, a failing provisioning is
 * retried by the next request, and each is logged once per outage.
 */
export class Manager {
  readonly #options: Required<Omit<ManagerOptions, 'logger'>> & { logger: Logger };
  readonly #abort = new AbortController();
  readonly #inFlight = new Map<string, number>();
  readonly #popLog: OutageLog;
  readonly #provisionLog: OutageLog;
  #workers: Promise<void>[] = [];
  /**
   * Demand waiting for a creation slot, one entry per pool key in arrival order: requests are coalesced here so the
   * queue keeps draining (and stale requests keep being dropped) while every slot is busy creating.
   */
  readonly #wanted = new Map<string, ProvisionRequest>();
  /** Creations under way from the queue, at most `concurrency`. */
  readonly #creating = new Set<Promise<void>>();
  #started = false;
  #stopped = false;

  constructor(options: ManagerOptions) {
    this.#options = {
      concurrency: 4,
      now: Date.now,
      tracer: noopTracer,
      ...options,
      logger: (options.logger ?? silentLogger).child({ role: 'manager' }),
    };
    const { logger } = this.#options;
    this.#popLog = new OutageLog(logger, 'taking provisioning requests from the queue');
    this.#provisionLog = new OutageLog(logger, 'provisioning');
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (let i = 0; i < this.#options.concurrency; i++) this.#workers.push(this.#work());
  }

  /** Stop taking requests and wait for in-flight provisioning to finish. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#abort.abort();
    // Demand taken off the queue but not served yet goes back to it, for another Manager (best effort).
    const parked = [...this.#wanted.values()];
    this.#wanted.clear();
    await Promise.allSettled(parked.map((request) => this.#options.queue.push(request)));
    await Promise.allSettled(this.#workers);
    while (this.#creating.size > 0) await Promise.allSettled([...this.#creating]);
  }

  /**
   * Instances that left the pool without being returned (expired leases, a node that left) free room under max
   * instances: ask for replacements of their versions where requests are waiting. Requests that found the function
   * at its max wait without asking, so nobody else would.
   */
  replaceFor(instances: readonly InstanceRef[]): void {
    if (this.#stopped) return;
    const versions = new Map(instances.map((i) => [poolKey(i), i] as const));
    for (const instance of versions.values()) {
      const request: ProvisionRequest = {
        functionName: instance.functionName,
        incarnation: instance.incarnation,
        version: instance.version,
        reason: 'demand',
        requestedAt: this.#options.now(),
      };
      void this.#accept(request).catch((err: unknown) => this.#provisionLog.failed(err));
    }
  }

  /** Provisioning requests currently being served for a pool key. */
  inFlight(key: string): number {
    return this.#inFlight.get(key) ?? 0;
  }

  async #work(): Promise<void> {
    const { queue } = this.#options;
    const { signal } = this.#abort;
    let pauseMs = 0;
    while (!signal.aborted) {
      let request: ProvisionRequest | null;
      try {
        request = await queue.pop(1000, signal);
        this.#popLog.succeeded();
        pauseMs = 0;
      } catch (err) {
        if (signal.aborted) return;
        this.#popLog.failed(err);
        pauseMs = Math.min(Math.max(pauseMs * 2, popRetryMs.first), popRetryMs.max);
        await sleep(pauseMs, undefined, { signal }).catch(() => {});
        continue;
      }
      if (request === null) continue;
      await this.#accept(request).catch((err: unknown) => this.#provisionLog.failed(err));
    }
  }

  /**
   * Triage of a popped request, without waiting for a creation: a stale demand request is dropped, anything else
   * is noted as wanted for its key and served when a creation slot is free. Workers thus keep the queue drained
   * while slots are busy; without this, a function scaling up under sustained load filled the queue with requests
   * that were stale by the time a worker got to them, and callers got 429.
   */
  async #accept(request: ProvisionRequest): Promise<void> {
    const key = poolKey(request);
    if (request.reason === 'demand' && !(await this.#stillWanted(key))) return;
    if (!this.#wanted.has(key)) this.#wanted.set(key, request);
    this.#startCreations();
  }

  /**
   * Someone may already have been served by a returned instance (competitive consumption): a demand is wanted only
   * while waiters outnumber the sandboxes already on their way. Checked before any read of the store: under load
   * most demand requests are stale by the time they are popped, and must be dropped as fast as they come.
   * `reserved`: how many of the sandboxes counted as on their way are the caller's own.
   */
  async #stillWanted(key: string, reserved = 0): Promise<boolean> {
    const { waiters } = await this.#options.pool.stats(key);
    return waiters > this.inFlight(key) - reserved;
  }

  /** Serves wanted keys, oldest first, while creation slots are free. */
  #startCreations(): void {
    while (!this.#stopped && this.#creating.size < this.#options.concurrency) {
      const next = this.#wanted.entries().next();
      if (next.done === true) return;
      const [key, request] = next.value;
      this.#wanted.delete(key);
      // A burst keeps a key wanted after one creation, and a failure told only one waiter: serve the key again
      // (behind other keys) while its waiters outnumber the sandboxes on their way. Each round creates or tells a
      // waiter, so this ends.
      const again = async (): Promise<void> => {
        if (request.reason !== 'demand' || this.#stopped || !(await this.#stillWanted(key))) return;
        if (!this.#wanted.has(key)) this.#wanted.set(key, request);
      };
      const creation = this.provision(request).then(
        async (outcome) => {
          this.#provisionLog.succeeded();
          if (outcome !== 'skipped') await again();
        },
        async (err: unknown) => {
          this.#provisionLog.failed(err);
          await again();
        },
      );
      const settled = creation
        .catch((err: unknown) => this.#provisionLog.failed(err))
        .finally(() => {
          this.#creating.delete(settled);
          this.#startCreations();
        });
      this.#creating.add(settled);
    }
  }

  /**
   * Creates one sandbox for the request if it is still needed and allowed. 'created' or 'failed' (a waiter was told,
   * or the sandbox was lost): the other waiters of a coalesced demand still need serving. 'skipped': nothing to do
   * (no longer wanted, or at max instances), and asking again now would only spin. Rejects when the metadata store
   * or the pool is down. The queue's requests come here; so do the control plane's min instances.
   */
  async provision(request: ProvisionRequest): Promise<'created' | 'failed' | 'skipped'> {
    const key = poolKey(request);
    // Counted as on its way from the start, so that creations deciding at the same time see each other (the checks
    // below await the pool, the store and the Agents) and cannot together pass max instances.
    this.#inFlight.set(key, this.inFlight(key) + 1);
    const { tracer } = this.#options;
    const span =
      request.traceparent === undefined || !tracer.enabled
        ? null
        : tracer.startSpan('provision', {
            kind: 'server',
            parent: request.traceparent,
            attributes: { 'faas.name': request.functionName, 'faas.version': String(request.version) },
          });
    try {
      const outcome = await this.#provisionReserved(request, key, span?.traceparent);
      span?.setAttribute('savassan.provision.outcome', outcome);
      if (outcome === 'failed') span?.fail('provisioning failed');
      return outcome;
    } catch (err) {
      span?.fail(PlatformError.from(err).code);
      throw err;
    } finally {
      span?.end();
      this.#inFlight.set(key, this.inFlight(key) - 1);
    }
  }

  async #provisionReserved(
    request: ProvisionRequest,
    key: string,
    traceparent: string | undefined,
  ): Promise<'created' | 'failed' | 'skipped'> {
    const { pool, metadata, agents, logger } = this.#options;
    /** Sandboxes on their way other than this one. */
    const others = (): number => this.inFlight(key) - 1;
    if (request.reason === 'demand' && !(await this.#stillWanted(key, 1))) return 'skipped';
    let version: FunctionVersion | null;
    try {
      version = await metadata.getVersion(request.functionName, request.version);
    } catch (err) {
      // The metadata store is down: fail the waiting request now (503) rather than let it wait out its time.
      const error = PlatformError.from(err, 'UNAVAILABLE');
      await pool.pushFailure(key, failureOf(error)).catch(() => {});
      throw error;
    }
    // Same name and number but another incarnation: the requested version was deleted with its function.
    if (version === null || version.incarnation !== request.incarnation) {
      await pool.pushFailure(key, notFound(request));
      return 'failed';
    }
    if ((await countInstances(agents, version)) + others() >= version.config.maxInstances) return 'skipped';

    // Secret values are read for each sandbox, so one created after a secret changed gets its new value.
    let secretEnv: Record<string, string> | undefined;
    try {
      secretEnv = await secretEnvOf(metadata, version.functionName, version.config.secrets);
    } catch (err) {
      const error = PlatformError.from(err, 'UNAVAILABLE');
      await pool.pushFailure(key, failureOf(error)).catch(() => {});
      if (error.code === 'INVALID_CONFIG') return 'failed';
      throw error;
    }
    let instance: InstanceRef;
    const spec: SandboxSpec = {
      functionName: version.functionName,
      incarnation: version.incarnation,
      version: version.version,
      codeSha256: version.codeSha256,
      config: version.config,
      secretEnv,
      ...(traceparent === undefined ? {} : { traceparent }),
    };
    try {
      instance = await this.#createSomewhere(spec);
    } catch (err) {
      const error = PlatformError.from(err);
      logger.warn({ key, err: error }, 'sandbox creation failed');
      await pool.pushFailure(key, failureOf(error)).catch(() => {});
      return 'failed';
    }
    if (agents.get(instance.nodeId) === null) {
      // Its node left while the sandbox was being created: the pool must not get an instance nobody can reach.
      logger.warn({ key, nodeId: instance.nodeId }, 'node left during sandbox creation; dropping the instance');
      return 'failed';
    }
    // If the pool is down this throws; the new sandbox stays idle on the Agent and a reconcile pass adopts it.
    if (!(await pool.push(instance))) {
      // The function was deleted while its sandbox was being created (the pool retired its key).
      await agents.get(instance.nodeId)?.destroySandbox(instance.instanceId);
      return 'failed';
    }
    logger.debug({ key, instanceId: instance.instanceId, initMs: instance.initMs }, 'sandbox ready');
    return 'created';
  }

  /**
   * Create the sandbox on the node placement picks; a node that refuses for lack of room (another Manager filled it
   * first) or cannot be reached before the call is delivered is left out and the next one tried.
   */
  async #createSomewhere(spec: SandboxSpec): Promise<InstanceRef> {
    const tried = new Set<string>();
    /** Why nodes refused for lack of room (their budgets), for the caller's 429. */
    const full: string[] = [];
    for (;;) {
      const agent = this.#options.agents.place(spec, tried);
      if (agent === null) {
        const why = full.length === 0 ? '' : `: ${full.join('; ')}`;
        throw new PlatformError('TOO_MANY_REQUESTS', `no node has room for another sandbox right now${why}`, {
          details: { retryAfterSeconds: 1 },
        });
      }
      try {
        return await agent.createSandbox(spec);
      } catch (err) {
        const refused = isPlatformError(err, 'TOO_MANY_REQUESTS');
        const elsewhere = refused || (isPlatformError(err, 'UNAVAILABLE') && err.details['notDelivered'] === true);
        if (!elsewhere) throw err;
        if (refused && full.length < 3) full.push(err.rawMessage);
        tried.add(agent.nodeId);
      }
    }
  }
}

function failureOf(error: PlatformError): SerializedError {
  return { name: error.name, code: error.code, message: error.rawMessage };
}

function notFound(request: ProvisionRequest): SerializedError {
  return {
    name: 'PlatformError',
    code: 'NOT_FOUND',
    message: `function ${request.functionName} version ${request.version} no longer exists`,
  };
}
