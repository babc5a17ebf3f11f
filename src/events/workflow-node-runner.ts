import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { SubmitOptions } from './async-invocations.js';
import type { RunInvocation } from './run-invocation.js';
import {
  nodeOutcomeOf,
  refusalOutcome,
  refusedForGood,
  type WorkflowNodeRef,
  type WorkflowNodeSink,
} from './workflow-node-sink.js';

export interface WorkflowNodeRunnerOptions {
  /** The normal invoke path. */
  run: RunInvocation;
  /**
   * Where attempts are claimed and reported. The engine must write attempts without a node timeout already claimed
   * for this process (its `preclaim`): their claim here writes nothing, and no deadline is set from a function
   * timeout this runner does not know.
   */
  sink: WorkflowNodeSink;
  /** First wait before running an attempt again after the invoke path refused it for now (ms, default 200). */
  backoffMs?: number | undefined;
  logger?: Logger | undefined;
}

/** The longest wait between tries of an attempt the invoke path keeps refusing for now (ms). */
const maxBackoffMs = 30_000;

/**
 * Runs workflow node attempts in this process, through the invoke path, without the asynchronous queue: for embedded
 * mode, where the engine, the invoke path and the store share the process. It takes the engine's `submit` (the
 * event and its `workflow` reference) and returns at once; the attempt runs beside, and its outcome goes to the sink
 * as the dispatcher's would.
 *
 * The node row is the attempt's durable record: the engine writes it RUNNING (claimed for this process) before
 * submitting, so an attempt this process did not finish is given up at the next start and run again as a new
 * attempt, never twice as the same one. A throttle or an unavailable backend keeps the claim and tries again with
 * backoff (200 ms doubling up to 30 s) until the process stops.
 */
export class WorkflowNodeRunner {
  readonly #options: WorkflowNodeRunnerOptions;
  readonly #logger: Logger;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  constructor(options: WorkflowNodeRunnerOptions) {
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'workflow-node-runner' });
  }

  /** The engine's `submit`: starts the attempt `options.workflow` names and resolves at once. */
  submit(functionName: string, eventJson: string, options: SubmitOptions): Promise<void> {
    const ref = options.workflow;
    if (ref === undefined) {
      return Promise.reject(new PlatformError('INTERNAL', 'a workflow node attempt was submitted without its node'));
    }
    if (this.#stopped) return Promise.reject(new PlatformError('UNAVAILABLE', 'the platform is stopping'));
    this.#track(this.#start(functionName, Buffer.from(eventJson), options.qualifier, ref));
    return Promise.resolve();
  }

  /** Starts no more attempts and waits for those running; those waiting to be tried again are left (lost). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #track(work: Promise<void>): void {
    const done = work.catch((err: unknown) => {
      this.#logger.error({ err }, 'a workflow node attempt failed to run');
    });
    const tracked = done.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  async #start(functionName: string, event: Buffer, qualifier: string | undefined, ref: WorkflowNodeRef) {
    // Without a node timeout the engine wrote the attempt claimed already; with one the claim sets the deadline.
    if (!(await this.#options.sink.claim(ref, ref.timeoutSeconds ?? 0))) return;
    await this.#try(functionName, event, qualifier, ref, 0);
  }

  async #try(functionName: string, event: Buffer, qualifier: string | undefined, ref: WorkflowNodeRef, tries: number) {
    const { sink } = this.#options;
    try {
      const ran = await this.#options.run(functionName, event, qualifier);
      await sink.report(ref, nodeOutcomeOf(ran));
    } catch (err) {
      const error = PlatformError.from(err);
      if (refusedForGood(error.code)) {
        await sink.report(ref, refusalOutcome(error));
        return;
      }
      if (this.#stopped) return;
      const delayMs = Math.min(maxBackoffMs, (this.#options.backoffMs ?? 200) * 2 ** tries);
      this.#logger.warn(
        { err, functionName, node: ref.node, attempt: ref.attempt, delayMs },
        'a workflow node attempt was refused for now; trying again',
      );
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#track(this.#try(functionName, event, qualifier, ref, tries + 1));
      }, delayMs);
      this.#timers.add(timer);
    }
  }
}
