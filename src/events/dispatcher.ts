import { PlatformError } from '../core/errors.js';
import type { AsyncSettings } from '../core/function-config.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type {
  AttemptStatus,
  InvocationAttempt,
  InvocationDelivery,
  InvocationQueue,
} from '../core/ports/invocation-queue.js';
import { decodeAsyncEvent } from './async-event.js';
import type { DestinationCondition, DestinationRecord, Destinations } from './destinations.js';
import { functionArn } from '../core/lambda-arn.js';
import type { LambdaArnScope } from '../core/lambda-arn.js';
import type { RanInvocation, RunInvocation } from './run-invocation.js';
import {
  nodeOutcomeOf,
  refusalOutcome,
  refusedForGood,
  type WorkflowNodeRef,
  type WorkflowNodeSink,
} from './workflow-node-sink.js';

/** What the dispatcher needs of a function: its asynchronous settings, its timeout, what its webhooks may reach. */
export interface DispatchSettings extends AsyncSettings {
  timeoutSeconds: number;
  allowNet: readonly string[];
}

export interface DispatcherOptions {
  queue: InvocationQueue;
  /** The normal invoke path. */
  run: RunInvocation;
  /** The functions whose events to look for. */
  functions: () => Promise<string[]>;
  /** The settings of a function's current version; null when the function is gone. */
  settings: (functionName: string) => Promise<DispatchSettings | null>;
  destinations: Destinations;
  /** The region and account id of the function ARNs in destination records (default `us-east-1`, `000000000000`). */
  lambdaArnScope?: LambdaArnScope | undefined;
  /** How often a function with nothing due is looked at again, at most (ms, default 1000). */
  idlePollMs?: number | undefined;
  /** A delivery stays hidden for the function's timeout plus this (ms, default 30 s) before it is delivered again. */
  visibilityGraceMs?: number | undefined;
  /** First delay of a retry after a throttle or a platform error (ms, default 1 s; doubled up to 5 minutes). */
  backoffMs?: number | undefined;
  now?: (() => number) | undefined;
  /** Jitter in [0, 1) (default Math.random). */
  random?: (() => number) | undefined;
  logger?: Logger | undefined;
  /**
   * Where events of workflow node attempts (the envelope's `workflow` field) are claimed before they run and
   * reported after. Absent: such events are completed without running.
   */
  workflowSink?: WorkflowNodeSink | undefined;
}

/** Attempt statuses that are the function's failures (retried `retries` times), not the platform's. */
const functionFailures: ReadonlySet<AttemptStatus> = new Set(['error', 'timeout', 'crash', 'oom', 'init-error']);
const maxBackoffMs = 5 * 60 * 1000;
/** How often the list of functions is read again (ms). */
const functionsRefreshMs = 2000;

/** One function's state in this dispatcher. */
interface FunctionSlot {
  running: number;
  /** Not looked at again before this time (epoch ms), unless woken. */
  idleUntil: number;
  /** The current wait between looks while nothing is due (ms). */
  idleWaitMs: number;
}

/**
 * Runs queued asynchronous invocations through the normal invoke path, at most the function's `asyncConcurrency` at
 * once. Each event is received for its function's timeout plus a grace, so an event whose dispatcher died is
 * delivered again (at least once). The outcome of each attempt decides what follows:
 * - success: the event is complete; its record goes to `onSuccess`, if set;
 * - a function error (error, timeout, crash, out of memory): retried after `retryDelaySeconds`, then twice that,
 *   with ±20% jitter, `retries` times;
 * - a throttle or a platform error: retried with exponential backoff (1 s doubling up to 5 minutes), as often as the
 *   event's age allows;
 * - the function or version gone: dead-lettered at once;
 * - retries spent, or the event older than `maxEventAgeSeconds`: its record goes to `onFailure`, else (or when that
 *   delivery fails) the event is dead-lettered.
 */
export class Dispatcher {
  readonly #options: DispatcherOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #slots = new Map<string, FunctionSlot>();
  readonly #inFlight = new Set<Promise<void>>();
  #functions: string[] = [];
  #functionsReadAt = 0;
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  #polling = false;
  #pollAgain = false;
  #stopped = true;

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger).child({ role: 'dispatcher' });
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Events for this function may be due now: look at once. */
  wake(functionName: string): void {
    const slot = this.#slots.get(functionName);
    if (slot !== undefined) {
      slot.idleUntil = 0;
      slot.idleWaitMs = 0;
    } else {
      this.#functionsReadAt = 0;
    }
    this.#schedule(0);
  }

  /** Stops taking events and waits for those running. Those not settled are delivered again after their visibility. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#immediate !== null) clearImmediate(this.#immediate);
    this.#immediate = null;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#polling) {
      if (delayMs === 0) this.#pollAgain = true;
      return;
    }
    if (this.#immediate !== null) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (delayMs <= 0) {
      // At once, without a timer's minimum delay of 1 ms (a workflow's next node waits on this).
      this.#immediate = setImmediate(() => {
        this.#immediate = null;
        void this.#poll();
      });
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#poll();
    }, delayMs);
    this.#timer.unref?.();
  }

  async #poll(): Promise<void> {
    this.#polling = true;
    this.#pollAgain = false;
    let next = this.#options.idlePollMs ?? 1000;
    try {
      const now = this.#now();
      if (now - this.#functionsReadAt >= functionsRefreshMs) {
        this.#functions = await this.#options.functions();
        this.#functionsReadAt = now;
      }
      for (const name of this.#functions) {
        if (this.#stopped) return;
        const slot = this.#slot(name);
        if (slot.idleUntil > this.#now()) {
          next = Math.min(next, slot.idleUntil - this.#now());
          continue;
        }
        next = Math.min(next, await this.#take(name, slot));
      }
    } catch (err) {
      this.#logger.error({ err }, 'looking for queued invocations failed');
    } finally {
      this.#polling = false;
    }
    this.#schedule(this.#pollAgain ? 0 : Math.max(next, 0));
  }

  #slot(name: string): FunctionSlot {
    let slot = this.#slots.get(name);
    if (slot === undefined) {
      slot = { running: 0, idleUntil: 0, idleWaitMs: 0 };
      this.#slots.set(name, slot);
    }
    return slot;
  }

  /** Receives what the function has room for and starts it; returns when to look again (ms). */
  async #take(name: string, slot: FunctionSlot): Promise<number> {
    const settings = await this.#options.settings(name);
    if (settings === null) return functionsRefreshMs;
    const free = settings.asyncConcurrency - slot.running;
    if (free <= 0) return this.#options.idlePollMs ?? 1000;
    const deliveries = await this.#options.queue.receive({
      functionName: name,
      max: free,
      visibilityMs: settings.timeoutSeconds * 1000 + (this.#options.visibilityGraceMs ?? 30_000),
    });
    if (deliveries.length === 0) {
      // Nothing due: look less often, up to the idle poll.
      const idle = this.#options.idlePollMs ?? 1000;
      slot.idleWaitMs = Math.min(idle, Math.max(50, slot.idleWaitMs * 2));
      slot.idleUntil = this.#now() + slot.idleWaitMs;
      return slot.idleWaitMs;
    }
    slot.idleWaitMs = 0;
    slot.idleUntil = 0;
    for (const delivery of deliveries) {
      slot.running += 1;
      const done = this.#handle(delivery, settings)
        .catch((err: unknown) => this.#logger.error({ err, invocationId: delivery.id }, 'dispatching failed'))
        .finally(() => {
          slot.running -= 1;
          this.#inFlight.delete(done);
          // A slot came free: there may be more waiting.
          this.#schedule(0);
        });
      this.#inFlight.add(done);
    }
    return 0;
  }

  async #handle(delivery: InvocationDelivery, functionSettings: DispatchSettings): Promise<void> {
    const event = decodeAsyncEvent(delivery.payload);
    if (event.workflow !== undefined) {
      await this.#handleWorkflowNode(delivery, functionSettings, event.workflow, event.eventJson, event.qualifier);
      return;
    }
    const settings: DispatchSettings = {
      ...functionSettings,
      ...(event.retries === undefined ? {} : { retries: event.retries }),
      ...(event.maxEventAgeSeconds === undefined ? {} : { maxEventAgeSeconds: event.maxEventAgeSeconds }),
    };
    const context = { delivery, eventJson: event.eventJson, settings, depth: event.depth ?? 0 };
    const startedAt = this.#now();
    const maxAgeMs = settings.maxEventAgeSeconds * 1000;
    if (startedAt - bornAt(delivery) > maxAgeMs) {
      await this.#failed(context, null, 'EventAgeExceeded', null);
      return;
    }
    let ran: RanInvocation;
    try {
      ran = await this.#options.run(delivery.functionName, Buffer.from(event.eventJson), event.qualifier);
    } catch (err) {
      await this.#refused(context, startedAt, PlatformError.from(err));
      return;
    }
    const { outcome } = ran;
    const attempt: InvocationAttempt = {
      startedAt: new Date(startedAt),
      status: outcome.status,
      durationMs: outcome.durationMs,
      error: outcome.error === undefined ? null : `${outcome.error.name}: ${outcome.error.message}`,
      invocationId: ran.invocationId,
    };
    if (outcome.status === 'success') {
      const settled = await this.#options.queue.complete(delivery.receipt, attempt);
      if (!settled) this.#stale(delivery);
      else if (settings.onSuccess !== null) {
        await this.#send(settings.onSuccess, context, ran, 'Success', delivery.attempts.length + 1).catch(
          (err: unknown) =>
            this.#logger.warn({ err, invocationId: delivery.id }, 'the on-success destination was not reached'),
        );
      }
      return;
    }
    const functionErrors = sinceRedrive(delivery).filter((a) => functionFailures.has(a.status)).length + 1;
    if (functionErrors > settings.retries) {
      await this.#failed(context, attempt, 'RetriesExhausted', ran);
      return;
    }
    const base = settings.retryDelaySeconds * 1000 * 2 ** (functionErrors - 1);
    await this.#retry(context, attempt, base * (0.8 + 0.4 * this.#random()), ran);
  }

  /**
   * A workflow node attempt: runs only once claimed, and only once (another delivery of the same event finds it
   * claimed); its outcome goes to the sink, which decides what follows. No destinations, no retries of function
   * errors (the engine retries with a new attempt); a throttle or a platform error gives the claim back and the event
   * is retried with the queue's backoff.
   */
  async #handleWorkflowNode(
    delivery: InvocationDelivery,
    settings: DispatchSettings,
    ref: WorkflowNodeRef,
    eventJson: string,
    qualifier: string | undefined,
  ): Promise<void> {
    const sink = this.#options.workflowSink;
    const startedAt = this.#now();
    const skipped = (why: string): InvocationAttempt => ({
      startedAt: new Date(startedAt),
      status: 'platform_error',
      durationMs: 0,
      error: why,
      invocationId: null,
    });
    if (sink === undefined || !(await sink.claim(ref, settings.timeoutSeconds))) {
      const settled = await this.#options.queue.complete(
        delivery.receipt,
        skipped('not run: the workflow node attempt ended, or runs elsewhere'),
      );
      if (!settled) this.#stale(delivery);
      return;
    }
    if (startedAt - bornAt(delivery) > settings.maxEventAgeSeconds * 1000) {
      const why = `the event is older than the maximum event age (${settings.maxEventAgeSeconds} s)`;
      await sink.report(ref, {
        status: 'failed',
        invocationId: null,
        code: 'UNAVAILABLE',
        message: why,
        kind: 'SYSTEM',
      });
      const settled = await this.#options.queue.deadLetter(delivery.receipt, null, why);
      if (!settled) this.#stale(delivery);
      return;
    }
    let ran: RanInvocation;
    try {
      ran = await this.#options.run(delivery.functionName, Buffer.from(eventJson), qualifier);
    } catch (err) {
      const error = PlatformError.from(err);
      if (refusedForGood(error.code)) {
        await sink.report(ref, refusalOutcome(error));
      } else {
        await sink.release(ref);
      }
      await this.#refused({ delivery, eventJson, settings, depth: 0 }, startedAt, error);
      return;
    }
    const { outcome } = ran;
    const attempt: InvocationAttempt = {
      startedAt: new Date(startedAt),
      status: outcome.status,
      durationMs: outcome.durationMs,
      error: outcome.error === undefined ? null : `${outcome.error.name}: ${outcome.error.message}`,
      invocationId: ran.invocationId,
    };
    await sink.report(ref, nodeOutcomeOf(ran));
    const settled =
      outcome.status === 'success'
        ? await this.#options.queue.complete(delivery.receipt, attempt)
        : await this.#options.queue.fail(delivery.receipt, attempt);
    if (!settled) this.#stale(delivery);
  }

  /** The invoke path refused the event (it did not run). */
  async #refused(context: Context, startedAt: number, error: PlatformError): Promise<void> {
    const throttled = error.code === 'TOO_MANY_REQUESTS';
    const attempt: InvocationAttempt = {
      startedAt: new Date(startedAt),
      status: throttled ? 'throttled' : 'platform_error',
      durationMs: this.#now() - startedAt,
      error: `${error.code}: ${error.rawMessage}`,
      invocationId: null,
    };
    if (error.code === 'NOT_FOUND' || error.code === 'BAD_REQUEST' || error.code === 'INVALID_CONFIG') {
      // The function, its version or alias is gone (or its settings cannot run): retrying will not help.
      const settled = await this.#options.queue.deadLetter(context.delivery.receipt, attempt, attempt.error!);
      if (!settled) this.#stale(context.delivery);
      return;
    }
    const refusals = sinceRedrive(context.delivery).filter((a) => !functionFailures.has(a.status)).length;
    const backoff = Math.min(maxBackoffMs, (this.#options.backoffMs ?? 1000) * 2 ** refusals);
    await this.#retry(context, attempt, backoff * (0.8 + 0.4 * this.#random()), null);
  }

  /** Queue the event again after `delayMs`, unless it would be too old by then. */
  async #retry(
    context: Context,
    attempt: InvocationAttempt,
    delayMs: number,
    ran: RanInvocation | null,
  ): Promise<void> {
    const { delivery, settings } = context;
    const dueAt = this.#now() + delayMs;
    if (dueAt - bornAt(delivery) > settings.maxEventAgeSeconds * 1000) {
      await this.#failed(context, attempt, 'EventAgeExceeded', ran);
      return;
    }
    const settled = await this.#options.queue.retry(delivery.receipt, attempt, new Date(dueAt));
    if (!settled) this.#stale(delivery);
    // Due again later: look for it then, even if nothing else wakes this function.
    setTimeout(() => this.wake(delivery.functionName), Math.max(0, delayMs)).unref?.();
  }

  /** The event failed for good: its record goes to `onFailure`, or it is dead-lettered. */
  async #failed(
    context: Context,
    attempt: InvocationAttempt | null,
    condition: Exclude<DestinationCondition, 'Success'>,
    ran: RanInvocation | null,
  ): Promise<void> {
    const { delivery, settings } = context;
    const reason =
      condition === 'RetriesExhausted'
        ? `retries exhausted after ${delivery.attempts.length + (attempt === null ? 0 : 1)} attempts`
        : `the event is older than the maximum event age (${settings.maxEventAgeSeconds} s)`;
    const invokeCount = delivery.attempts.length + (attempt === null ? 0 : 1);
    if (settings.onFailure !== null) {
      try {
        await this.#send(settings.onFailure, context, ran, condition, invokeCount);
        const settled =
          attempt === null
            ? await this.#options.queue.deadLetter(delivery.receipt, null, `${reason}; sent to ${settings.onFailure}`)
            : await this.#options.queue.fail(delivery.receipt, attempt);
        if (!settled) this.#stale(delivery);
        return;
      } catch (err) {
        const why = PlatformError.from(err).rawMessage;
        this.#logger.warn({ err, invocationId: delivery.id }, 'the on-failure destination was not reached');
        const settled = await this.#options.queue.deadLetter(
          delivery.receipt,
          attempt,
          `${reason}; the on-failure destination ${settings.onFailure} was not reached: ${why}`,
        );
        if (!settled) this.#stale(delivery);
        return;
      }
    }
    const settled = await this.#options.queue.deadLetter(delivery.receipt, attempt, reason);
    if (!settled) this.#stale(delivery);
  }

  #send(
    destination: string,
    context: Context,
    ran: RanInvocation | null,
    condition: DestinationCondition,
    invokeCount: number,
  ): Promise<void> {
    const { delivery, eventJson, settings } = context;
    const outcome = ran?.outcome;
    const record: DestinationRecord = {
      version: '1.0',
      timestamp: new Date(this.#now()).toISOString(),
      requestContext: {
        requestId: delivery.id,
        functionArn: functionArn(delivery.functionName, ran?.version, this.#options.lambdaArnScope),
        condition,
        approximateInvokeCount: invokeCount,
      },
      requestPayload: JSON.parse(eventJson) as unknown,
      responseContext: {
        statusCode: 200,
        executedVersion: ran === null ? '$LATEST' : String(ran.version),
        ...(outcome === undefined || outcome.status === 'success' ? {} : { functionError: 'Unhandled' }),
      },
      responsePayload:
        outcome === undefined
          ? null
          : outcome.status === 'success'
            ? (JSON.parse(Buffer.from(outcome.payloadJson ?? Buffer.from('null')).toString('utf8')) as unknown)
            : {
                errorType: outcome.error?.name ?? outcome.status,
                errorMessage: outcome.error?.message ?? outcome.status,
              },
    };
    return this.#options.destinations.deliver(destination, record, {
      functionName: delivery.functionName,
      eventId: delivery.id,
      allowNet: settings.allowNet,
      depth: context.depth,
    });
  }

  #stale(delivery: InvocationDelivery): void {
    // Its visibility ran out (or another dispatcher settled it): it is, or will be, delivered again.
    this.#logger.warn(
      { invocationId: delivery.id, functionName: delivery.functionName },
      'an asynchronous invocation outlived its visibility timeout; it runs again',
    );
  }
}

/** When the event's age counts from: its enqueue, or its last redrive. */
function bornAt(delivery: InvocationDelivery): number {
  return (delivery.redrivenAt ?? delivery.enqueuedAt).getTime();
}

/** The attempts that count against its retries: those since its last redrive. */
function sinceRedrive(delivery: InvocationDelivery): InvocationAttempt[] {
  const from = delivery.redrivenAt?.getTime();
  return from === undefined ? delivery.attempts : delivery.attempts.filter((a) => a.startedAt.getTime() >= from);
}

interface Context {
  delivery: InvocationDelivery;
  eventJson: string;
  settings: DispatchSettings;
  /** Destination hops that led to this event. */
  depth: number;
}
