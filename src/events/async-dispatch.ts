import type { Logger } from '../core/logger.js';
import type { LambdaArnScope } from '../core/lambda-arn.js';
import type { InvocationQueue } from '../core/ports/invocation-queue.js';
import type { MessageQueues } from '../core/ports/message-queue.js';
import type { TriggerStore } from '../core/ports/trigger-store.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { AsyncInvocations } from './async-invocations.js';
import { Destinations } from './destinations.js';
import { type DispatchSettings, Dispatcher, type DispatcherOptions } from './dispatcher.js';
import type { RunInvocation } from './run-invocation.js';
import { TriggerRunner, timeoutFromMetadata } from './trigger-runner.js';
import type { WorkflowNodeSink } from './workflow-node-sink.js';

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
  /** The region and account id of the function ARNs in destination records. */
  lambdaArnScope?: LambdaArnScope | undefined;
  /** Where workflow node attempts are claimed and reported (see `WorkflowNodeSink`). */
  workflowSink?: WorkflowNodeSink | undefined;
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
    lambdaArnScope: options.lambdaArnScope,
    workflowSink: options.workflowSink,
    ...options.tuning,
  });
}

export interface EventRunnersOptions extends Omit<AsyncDispatchOptions, 'queue' | 'sendToQueue' | 'tuning'> {
  invocations: InvocationQueue;
  messageQueues: MessageQueues;
  triggers: TriggerStore;
  /** How long an invocation waits for an instance: part of how long a delivery stays hidden. */
  queueWaitMs: number;
}

/** What runs events in a process that serves invocations: the dispatcher and the queue triggers' runner. */
export interface EventRunners {
  /** Events for this function may be due now (queued or redriven here). */
  wake(functionName: string): void;
  start(): void;
  /** Stops taking work and waits for what runs: the triggers' batches, then the asynchronous invocations. */
  stop(): Promise<void>;
}

/**
 * The dispatcher of asynchronous invocations (destination records can go to the message queues) and the queue
 * triggers' runner, as every composition root runs them: the embedded process and each cluster gateway.
 */
export function createEventRunners(options: EventRunnersOptions): EventRunners {
  const { invocations, messageQueues, triggers, queueWaitMs, ...dispatch } = options;
  const dispatcher = createAsyncDispatcher({
    ...dispatch,
    queue: invocations,
    sendToQueue: (name, body) => messageQueues.send(name, [body]),
    // A delivery may wait for an instance before it runs.
    tuning: { visibilityGraceMs: queueWaitMs + 5000 },
  });
  const runner = new TriggerRunner({
    triggers,
    queues: messageQueues,
    run: options.run,
    functionTimeoutSeconds: timeoutFromMetadata(options.metadata),
    logger: options.logger,
  });
  return {
    wake: (name) => dispatcher.wake(name),
    start() {
      dispatcher.start();
      runner.start();
    },
    async stop() {
      await runner.stop();
      await dispatcher.stop();
    },
  };
}
