import { timeOrderedUuid } from '../core/ids.js';
import { PlatformError, isPlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { AgentApi, InvokeOutcome } from '../core/ports/agent-api.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { TraceSpan, Tracer } from '../core/ports/tracer.js';
import { noopTracer } from '../core/ports/tracer.js';
import type { FunctionVersion, InstanceRef, InvocationRecord, InvocationStatus, StartKind } from '../core/types.js';
import { copyInstance, poolKey } from '../core/types.js';
import type { FunctionResolver, HeaderValue } from './function-resolver.js';

export interface InvokerOptions {
  pool: Pool;
  queue: ProvisionQueue;
  metadata: MetadataStore;
  resolver: FunctionResolver;
  /** The Agents named in pool entries: the local one in embedded mode, the cluster's nodes otherwise. */
  agents: AgentDirectory;
  gatewayId: string;
  /** How long a request waits for an instance before 429. */
  queueWaitMs: number;
  logger?: Logger;
  /** Spans of the invoke path, for invocations whose route carries a parent span (`InvokeRoute.trace`). */
  tracer?: Tracer;
}

/**
 * The caller going away, as far as the invoker needs it: looked at only when a request has to wait for an instance.
 * An `AbortSignal` is one; the HTTP server passes a cheaper view of its response (`callerGone`).
 */
export interface CallerGone {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** Which version an invocation runs: a qualifier, and the request's headers (an alias may be sticky on one). */
export interface InvokeRoute {
  /** A version number or an alias name; default `live`. */
  readonly qualifier?: string | undefined;
  /** The request's header values, read only when the alias is sticky on a header. */
  readonly header?: HeaderValue | undefined;
  /** The caller's client context, JSON text (the Lambda API's `X-Amz-Client-Context`, decoded). */
  readonly clientContext?: string | undefined;
  /** The span the invocation's spans are children of; set only when tracing is on. */
  readonly trace?: TraceSpan | undefined;
}

export interface InvocationResult {
  invocationId: string;
  functionName: string;
  version: number;
  /** The alias that chose the version; null when the request named a version. */
  alias: string | null;
  start: StartKind;
  initMs: number | null;
  /** The version's memory limit (MB), for the caller's report next to the peak the outcome holds. */
  memoryMB: number;
  outcome: InvokeOutcome;
}

/** Pool entries of nodes that left the cluster skipped at most this many times in one invocation. */
const maxGhostInstances = 32;
/** Sandbox gone between checkout and dispatch: retry with another instance this many times. */
const maxDispatchAttempts = 3;

/**
 * The invoke path, end to end (architecture §2): pool checkout, or on a miss a provisioning request plus a
 * FIFO wait on the pool (whichever instance comes first wins); dispatch to the instance's Agent; return or
 * discard the instance; record the invocation before the caller gets an answer.
 */
export class Invoker {
  readonly #logger: Logger;
  readonly #tracer: Tracer;
  /** Instance returns still under way after their answers went out; `settle()` waits for them. */
  readonly #returning = new Set<Promise<void>>();

  constructor(private readonly options: InvokerOptions) {
    this.#logger = (options.logger ?? silentLogger).child({ role: 'gateway' });
    this.#tracer = options.tracer ?? noopTracer;
  }

  async invoke(
    functionName: string,
    eventJson: Uint8Array,
    signal?: CallerGone,
    route?: InvokeRoute,
  ): Promise<InvocationResult> {
    const { version, alias } = await this.options.resolver.resolve(functionName, route?.qualifier, route?.header);
    const invocationId = timeOrderedUuid();
    let ghosts = 0;
    for (let attempt = 1; ; attempt++) {
      // A span the sampler left out gets no children here: its context goes on to the Agent as it is.
      const trace = route?.trace?.recording === true ? route.trace : undefined;
      const { instance, start } =
        trace === undefined ? await this.#acquire(version, signal) : await this.#tracedAcquire(version, signal, trace);
      const agent = this.options.agents.get(instance.nodeId);
      if (agent === null) {
        // The instance's node left the cluster and the purge has not reached it yet: forget it and take another.
        // Such leftovers do not count as dispatch attempts (nothing was sent), within a bound.
        await this.options.pool.release(instance.instanceId).catch(() => {});
        attempt -= 1;
        if ((ghosts += 1) < maxGhostInstances) continue;
        throw new PlatformError('UNAVAILABLE', `node ${instance.nodeId} left the cluster`);
      }
      let outcome: InvokeOutcome;
      const span =
        trace === undefined
          ? undefined
          : this.#tracer.startSpan(`invoke ${functionName}`, {
              kind: 'client',
              parent: trace,
              attributes: {
                'faas.invoked_name': functionName,
                'faas.invocation_id': invocationId,
                'faas.coldstart': start === 'cold',
                'savassan.function.version': version.version,
                'savassan.node.id': instance.nodeId,
                'savassan.instance.id': instance.instanceId,
              },
            });
      try {
        outcome = await agent.invoke(instance.instanceId, {
          invocationId,
          eventJson,
          timeoutMs: version.config.timeoutSeconds * 1000,
          clientContext: route?.clientContext,
          traceparent: span === undefined ? route?.trace?.traceparent : span.traceparent,
        });
        if (span !== undefined && outcome.status !== 'success') span.fail(`the invocation ended: ${outcome.status}`);
      } catch (err) {
        span?.fail(PlatformError.from(err).code);
        span?.end();
        // In use by another invocation (the pool handed it out twice: a leader crashed before its followers had its
        // last checkout): left alone, for its holder returns it; this invocation takes another.
        if (isPlatformError(err, 'UNAVAILABLE') && err.details['busy'] === true && attempt < maxDispatchAttempts) {
          this.#logger.warn({ instanceId: instance.instanceId }, 'the pool handed out a busy sandbox; taking another');
          continue;
        }
        await this.#discard(agent, instance);
        // Retried only when the invocation never reached the sandbox: a node lost mid-invocation may have run it.
        if (
          isPlatformError(err, 'UNAVAILABLE') &&
          err.details['notDelivered'] === true &&
          attempt < maxDispatchAttempts
        ) {
          this.#logger.warn({ instanceId: instance.instanceId }, 'sandbox gone before dispatch; retrying');
          continue;
        }
        if (isPlatformError(err, 'UNAVAILABLE')) {
          throw new PlatformError(
            'UNAVAILABLE',
            `invocation ${invocationId} failed: the node ${instance.nodeId} running it was lost: ${err.rawMessage}`,
            { cause: err },
          );
        }
        throw err;
      }
      span?.end();
      const initMs = start === 'cold' ? instance.initMs : null;
      // The answer does not wait for the instance's return: it never fails (see #giveBack), and this gateway's next
      // checkout goes to the pool after it (a Redis pool runs a connection's commands in order), so a client that
      // calls again at once still finds the instance idle. Until the return lands, the instance is leased, as while
      // it ran: it serves nobody else, and counts against max instances.
      this.#background(this.#giveBack(agent, instance, outcome));
      const recorded = record(invocationId, version, instance, start, initMs, outcome);
      // A sampled trace's id (`00-<trace id>-<span id>-<flags>`), so the record leads to its trace.
      if (trace !== undefined) recorded.traceId = trace.traceparent.slice(3, 35);
      await this.options.metadata.recordInvocation(recorded);
      return {
        invocationId,
        functionName,
        version: version.version,
        alias,
        start,
        initMs,
        memoryMB: version.config.memoryMB,
        outcome,
      };
    }
  }

  /** Resolves once every instance return under way has landed (or failed): call before closing the pool. */
  async settle(): Promise<void> {
    while (this.#returning.size > 0) await Promise.all([...this.#returning]);
  }

  #background(giveBack: Promise<void>): void {
    const returning = giveBack.catch((err: unknown) => {
      this.#logger.warn({ err }, 'returning an instance failed');
    });
    this.#returning.add(returning);
    void returning.then(() => this.#returning.delete(returning));
  }

  /** `#acquire` within a span; a cold start's wait gets a child span, whose context goes with the provisioning request. */
  async #tracedAcquire(
    version: FunctionVersion,
    signal: CallerGone | undefined,
    trace: TraceSpan,
  ): Promise<{ instance: InstanceRef; start: StartKind }> {
    const span = this.#tracer.startSpan('pool checkout', {
      kind: 'internal',
      parent: trace,
      attributes: { 'faas.invoked_name': version.functionName, 'savassan.function.version': version.version },
    });
    try {
      const acquired = await this.#acquire(version, signal, span);
      span.setAttribute('faas.coldstart', acquired.start === 'cold');
      return acquired;
    } catch (err) {
      span.fail(PlatformError.from(err).code);
      throw err;
    } finally {
      span.end();
    }
  }

  async #acquire(
    version: FunctionVersion,
    signal?: CallerGone,
    trace?: TraceSpan,
  ): Promise<{ instance: InstanceRef; start: StartKind }> {
    const { gatewayId } = this.options;
    const key = poolKey(version);
    const lease = { holder: gatewayId, leaseMs: version.config.timeoutSeconds * 1000 + 60_000 };
    const warm = await this.options.pool.checkout(key, lease);
    // An idle instance means no init in this request's path, even if it never served before (min instances).
    if (warm !== null) return { instance: warm, start: 'warm' };
    if (trace === undefined) return this.#wait(version, key, lease, signal, undefined);
    const span = this.#tracer.startSpan('cold start wait', { kind: 'internal', parent: trace });
    try {
      return await this.#wait(version, key, lease, signal, span.traceparent);
    } catch (err) {
      span.fail(PlatformError.from(err).code);
      throw err;
    } finally {
      span.end();
    }
  }

  /**
   * No idle instance: wait on the pool for one, and ask the Manager for a sandbox. `traceparent`: the waiting span's,
   * for the Manager's provisioning span.
   */
  async #wait(
    version: FunctionVersion,
    key: string,
    lease: { holder: string; leaseMs: number },
    signal: CallerGone | undefined,
    traceparent: string | undefined,
  ): Promise<{ instance: InstanceRef; start: StartKind }> {
    const { pool, queue, queueWaitMs } = this.options;

    // The client may have gone while the checkout ran (its 'close' would not fire again).
    if (signal?.aborted === true)
      throw new PlatformError('UNAVAILABLE', 'request aborted while waiting for an instance');
    // Wait first, then ask for a sandbox: the Manager provisions only while someone waits, so the waiter must
    // be registered before the request can reach it.
    const cancel = new AbortController();
    const abortWait = () => cancel.abort();
    signal?.addEventListener('abort', abortWait, { once: true });
    const waiting = pool.wait(key, {
      holder: lease.holder,
      leaseMs: lease.leaseMs,
      timeoutMs: queueWaitMs,
      signal: cancel.signal,
    });
    // A registration that fails (the pool's backend went down) must not go unhandled while the push is in flight.
    waiting.catch(() => {});
    /** Stop waiting; an instance that reached us meanwhile is kept rather than lost. */
    const late = async () => {
      cancel.abort();
      const got = await waiting.catch(() => null);
      return got?.kind === 'instance' ? { instance: got.instance, start: startOf(got.instance) } : null;
    };
    let item;
    try {
      let accepted: boolean;
      try {
        // At max instances a new sandbox cannot be made: wait for one of the busy ones instead of filling the
        // provisioning queue with requests the Manager would only drop (under sustained load they filled it, and
        // requests a returned instance was about to serve got 429).
        accepted =
          (await this.#atMaxInstances(key, version)) ||
          (await queue.push({
            functionName: version.functionName,
            incarnation: version.incarnation,
            version: version.version,
            reason: 'demand',
            requestedAt: Date.now(),
            ...(traceparent === undefined ? {} : { traceparent }),
          }));
      } catch (err) {
        const kept = await late();
        if (kept !== null) return kept;
        throw err;
      }
      if (!accepted) {
        const kept = await late();
        if (kept !== null) return kept;
        throw new PlatformError('TOO_MANY_REQUESTS', `provisioning queue is full (${queue.capacity} requests)`, {
          details: { retryAfterSeconds: 1 },
        });
      }
      item = await waiting;
    } finally {
      signal?.removeEventListener('abort', abortWait);
    }
    if (item === null) {
      if (signal?.aborted) throw new PlatformError('UNAVAILABLE', 'request aborted while waiting for an instance');
      throw new PlatformError(
        'TOO_MANY_REQUESTS',
        `no instance of ${version.functionName} became free within ${queueWaitMs} ms (max instances: ${version.config.maxInstances})`,
        { details: { retryAfterSeconds: Math.max(1, Math.ceil(queueWaitMs / 1000)) } },
      );
    }
    if (item.kind === 'failure') {
      // The Manager could not provision because a backend is down: that is the platform's failure, not the code's.
      if (item.error.code === 'UNAVAILABLE') throw new PlatformError('UNAVAILABLE', item.error.message);
      // No room on any node (or a node at capacity): a limit, answered 429 like max instances.
      if (item.error.code === 'TOO_MANY_REQUESTS') {
        throw new PlatformError('TOO_MANY_REQUESTS', item.error.message, { details: { retryAfterSeconds: 1 } });
      }
      // The version names a secret deleted since (only a version no alias serves can): it starts no sandbox.
      if (item.error.code === 'INVALID_CONFIG') throw new PlatformError('INVALID_CONFIG', item.error.message);
      throw new PlatformError('FUNCTION_INIT_ERROR', item.error.message, {
        details: { errorType: item.error.name, stack: item.error.stack },
      });
    }
    return { instance: item.instance, start: startOf(item.instance) };
  }

  /** Whether the pool already holds `maxInstances` instances of the version (idle or checked out). */
  async #atMaxInstances(key: string, version: FunctionVersion): Promise<boolean> {
    const { idle, checkedOut } = await this.options.pool.instances(key);
    return idle + checkedOut >= version.config.maxInstances;
  }

  /**
   * Returns a reusable instance to the pool, or destroys it. Never throws: the invocation ran and its answer stands.
   * An instance the pool could not take back (its backend is down) stays idle on its Agent; the Manager's reconcile
   * gets it back (lease expiry, or the pool rebuild after Redis lost its data).
   */
  async #giveBack(agent: AgentApi, instance: InstanceRef, outcome: InvokeOutcome): Promise<void> {
    if (!outcome.reusable) {
      // Timed out, crashed or OOM-killed instances are destroyed, never returned.
      await this.#discard(agent, instance);
      return;
    }
    if (this.options.agents.get(instance.nodeId) === null) {
      // Its node left the cluster meanwhile (and was purged from the pool): returning it would hand out a ghost.
      await this.options.pool.release(instance.instanceId).catch(() => {});
      return;
    }
    try {
      if (await this.options.pool.push(copyInstance(instance, { invocations: instance.invocations + 1 }))) return;
    } catch (err) {
      this.#logger.warn({ err, instanceId: instance.instanceId }, 'could not return an instance to the pool');
      return;
    }
    // Refused: its function was deleted while it ran. It must never serve again (a function re-created under the
    // same name has other code and secrets), so it is destroyed.
    await agent.destroySandbox(instance.instanceId).catch((err: unknown) => {
      this.#logger.warn({ err, instanceId: instance.instanceId }, 'destroying a sandbox of a deleted function failed');
    });
  }

  /** Forgets a checked-out instance and destroys its sandbox; the destroy happens even if the pool is down. */
  async #discard(agent: AgentApi, instance: InstanceRef): Promise<void> {
    const { instanceId } = instance;
    await Promise.all([
      this.options.pool.release(instanceId).catch((err: unknown) => {
        // Its lease runs out and reclaimExpired reports it; destroying it again then is harmless.
        this.#logger.warn({ err, instanceId }, 'could not release an instance from the pool');
      }),
      agent.destroySandbox(instanceId).catch((err: unknown) => {
        this.#logger.warn({ err, instanceId }, 'destroying a failed sandbox failed');
      }),
    ]);
    // Not awaited: the failed invocation's answer need not wait for a pool read and a queue push.
    void this.#replaceForWaiters(instance);
  }

  /**
   * A discarded instance frees a slot under max instances. Requests that found the function at its max wait without
   * asking for a sandbox (see `#acquire`), so ask for one now if any are waiting; the Manager drops the request if
   * they are served first. Never throws: the waiters still have their timeout.
   */
  async #replaceForWaiters(instance: InstanceRef): Promise<void> {
    const { pool, queue } = this.options;
    try {
      const { waiters } = await pool.stats(poolKey(instance));
      if (waiters === 0) return;
      await queue.push({
        functionName: instance.functionName,
        incarnation: instance.incarnation,
        version: instance.version,
        reason: 'demand',
        requestedAt: Date.now(),
      });
    } catch (err) {
      this.#logger.warn({ err, instanceId: instance.instanceId }, 'could not ask for a replacement sandbox');
    }
  }
}

/** A fresh instance that arrived while a request waited is a cold start; one another request returned is warm. */
function startOf(instance: InstanceRef): StartKind {
  return instance.invocations === 0 ? 'cold' : 'warm';
}

const statusOf: Record<InvokeOutcome['status'], InvocationStatus> = {
  success: 'success',
  error: 'error',
  timeout: 'timeout',
  crash: 'crash',
  oom: 'oom',
};

function record(
  id: string,
  version: FunctionVersion,
  instance: InstanceRef,
  start: StartKind,
  initMs: number | null,
  outcome: InvokeOutcome,
): InvocationRecord {
  return {
    id,
    functionName: version.functionName,
    version: version.version,
    start,
    status: statusOf[outcome.status],
    initMs,
    durationMs: outcome.durationMs,
    peakMemoryBytes: outcome.peakMemoryBytes,
    error: outcome.error ?? null,
    logKey: outcome.logKey,
    nodeId: instance.nodeId,
    instanceId: instance.instanceId,
    createdAt: new Date(),
  };
}
