/**
 * Built-in tasks: workflow nodes whose `function` is a reserved dotted name (`savassan.plan`) run in the process of
 * the engine that starts them instead of as a deployed function. They go through the engine's own two options:
 * `pinFunction` pins a task as version 1 with the task's timeout, and `submit` runs it here through the same node
 * sink the function dispatcher reports to (claim, run, report), so node rows, retries, timeouts and the API read
 * exactly as for functions. Everything else passes to the options they wrap.
 */
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { isBuiltinTaskName } from '../core/workflow-compile.js';
import type { SubmitOptions } from '../events/async-invocations.js';
import type { WorkflowNodeRef, WorkflowNodeSink } from '../events/workflow-node-sink.js';
import type { PinnedFunction } from '../workflows/engine.js';

/** What a task run gets besides its input. */
export interface BuiltinTaskContext {
  /** The node attempt it runs. */
  ref: WorkflowNodeRef;
  /** Aborted when the attempt's time is up or the process stops: a task waiting on something gives up then. */
  signal: AbortSignal;
  logger: Logger;
}

/** A task that runs in this process: its output is the node's output. Throw a `PlatformError` to fail the attempt. */
export interface InProcessTask {
  kind: 'run';
  name: string;
  /** How long one attempt may run when the node sets no timeout of its own (seconds). */
  timeoutSeconds: number;
  run(input: unknown, context: BuiltinTaskContext): Promise<unknown>;
}

/**
 * A task that hands the attempt to a deployed function the input names (the trainer): the function runs as any
 * node's function does (a sandbox, its logs, its invocation on the node), with the event `forward` makes.
 */
export interface ForwardTask {
  kind: 'forward';
  name: string;
  timeoutSeconds: number;
  /** The function to run and its event; BAD_REQUEST for an input that names none. */
  forward(input: unknown): { functionName: string; qualifier: string; event: unknown };
}

export type BuiltinTask = InProcessTask | ForwardTask;

/** The engine options a runner wraps. */
export interface TaskEngineOptions {
  submit: (functionName: string, eventJson: string, options: SubmitOptions) => Promise<unknown>;
  pinFunction: (functionName: string, qualifier: string) => Promise<PinnedFunction | null>;
}

export interface BuiltinTaskRunnerOptions {
  /** The tasks' names, known from the start (deploys check them); their implementations may come later (`provide`). */
  names: ReadonlySet<string>;
  /** Where attempts are claimed and reported: the sink the function dispatcher of this process uses. */
  sink: () => WorkflowNodeSink;
  logger?: Logger | undefined;
}

/** The version a task pins as (tasks have one). */
export const builtinTaskVersion = 1;
/** Timeout a task pins with until its implementation is provided (seconds). */
const defaultTaskTimeoutSeconds = 3600;

/**
 * Runs built-in tasks for a workflow engine: `wrap` gives the engine's `submit` and `pinFunction` that send task
 * nodes here. An attempt claimed here runs at most once in this process; one lost with the process (it stopped
 * mid-run) is given up by the engine at the next start and run again as a new attempt, so a task must be safe to run
 * again (the plan task replays its request id; the waiting tasks wait on the same job again).
 */
export class BuiltinTaskRunner {
  readonly #options: BuiltinTaskRunnerOptions;
  readonly #logger: Logger;
  readonly #tasks = new Map<string, BuiltinTask>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #controllers = new Set<AbortController>();
  #stopped = false;

  constructor(options: BuiltinTaskRunnerOptions) {
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'builtin-tasks' });
  }

  /** The tasks' implementations (once their services exist). A name not in `names` is an error. */
  provide(tasks: readonly BuiltinTask[]): void {
    for (const task of tasks) {
      if (!this.#options.names.has(task.name)) {
        throw new PlatformError('INTERNAL', `${task.name} is not one of the built-in task names`);
      }
      this.#tasks.set(task.name, task);
    }
  }

  /** Whether `name` is a task this runner takes (provided or not). */
  handles(name: string): boolean {
    return this.#options.names.has(name);
  }

  /** The engine's options with task nodes sent here. */
  wrap(inner: TaskEngineOptions): TaskEngineOptions {
    return {
      pinFunction: (name, qualifier) => {
        if (this.handles(name)) {
          const timeoutSeconds = this.#tasks.get(name)?.timeoutSeconds ?? defaultTaskTimeoutSeconds;
          return Promise.resolve({ version: builtinTaskVersion, timeoutSeconds });
        }
        // An unknown dotted name is no function either: the node fails NOT_FOUND.
        if (isBuiltinTaskName(name)) return Promise.resolve(null);
        return inner.pinFunction(name, qualifier);
      },
      submit: (name, eventJson, options) => {
        if (!this.handles(name)) return inner.submit(name, eventJson, options);
        return this.#submit(name, eventJson, options, inner);
      },
    };
  }

  /** Starts no more tasks, aborts those running (their attempts are lost: run again at the next start) and waits. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const controller of this.#controllers) controller.abort(new PlatformError('UNAVAILABLE', 'stopping'));
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #submit(name: string, eventJson: string, options: SubmitOptions, inner: TaskEngineOptions): Promise<unknown> {
    const ref = options.workflow;
    if (ref === undefined) {
      return Promise.reject(new PlatformError('BAD_REQUEST', `${name} runs only as a workflow node`));
    }
    if (this.#stopped) return Promise.reject(new PlatformError('UNAVAILABLE', 'the platform is stopping'));
    const task = this.#tasks.get(name);
    // Not provided yet (the services are starting): the engine queues the attempt again a moment later.
    if (task === undefined) return Promise.reject(new PlatformError('UNAVAILABLE', `${name} is not ready yet`));
    if (task.kind === 'forward') {
      let target;
      try {
        target = task.forward(JSON.parse(eventJson) as unknown);
      } catch (err) {
        return Promise.reject(PlatformError.from(err, 'BAD_REQUEST'));
      }
      return inner.submit(target.functionName, JSON.stringify(target.event), {
        ...options,
        qualifier: target.qualifier,
      });
    }
    const work = this.#run(task, eventJson, ref).catch((err: unknown) => {
      this.#logger.error({ err, task: name, node: ref.node }, 'a built-in task failed to run');
    });
    const tracked = work.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
    return Promise.resolve();
  }

  async #run(task: InProcessTask, eventJson: string, ref: WorkflowNodeRef): Promise<void> {
    const sink = this.#options.sink();
    if (!(await sink.claim(ref, task.timeoutSeconds))) return;
    // Stopped during the claim: not run now (the attempt is given up as lost at the next start and run again then).
    if (this.#stopped) return;
    const timeoutSeconds = ref.timeoutSeconds ?? task.timeoutSeconds;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(
        new PlatformError('REQUEST_TIMEOUT', `${task.name} ran longer than its timeout (${timeoutSeconds} s)`),
      );
    }, timeoutSeconds * 1000);
    timer.unref();
    this.#controllers.add(controller);
    const logger = this.#logger.child({ task: task.name, execution: ref.name, node: ref.node });
    try {
      const output = await task.run(JSON.parse(eventJson) as unknown, { ref, signal: controller.signal, logger });
      await sink.report(ref, {
        status: 'succeeded',
        invocationId: `task-${ref.node}-${ref.attempt}`,
        functionVersion: builtinTaskVersion,
        outputJson: Buffer.from(JSON.stringify(output ?? null)),
      });
    } catch (err) {
      // Stopping: the attempt is lost with the process and runs again at the next start.
      if (this.#stopped && !timedOut) return;
      const error = PlatformError.from(err);
      logger.info({ code: error.code, message: error.rawMessage }, 'a built-in task failed');
      await sink.report(ref, {
        status: 'failed',
        invocationId: null,
        code: timedOut ? 'TIMED_OUT' : error.code,
        message: error.rawMessage,
        kind: error.status < 500 || timedOut ? 'USER' : 'SYSTEM',
      });
    } finally {
      clearTimeout(timer);
      this.#controllers.delete(controller);
    }
  }
}
