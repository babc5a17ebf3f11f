import { maxEventBytes } from '../core/function-config.js';
import type { Logger } from '../core/logger.js';
import type { MessageQueues, ReceivedMessage } from '../core/ports/message-queue.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { QueueTrigger, TriggerStore } from '../core/ports/trigger-store.js';
import type { RunInvocation } from './run-invocation.js';
import { failedItems, queueEventRecord } from './sqs-event.js';

export interface TriggerRunnerOptions {
  triggers: TriggerStore;
  queues: MessageQueues;
  /** The invoke path (`gateway.run`). */
  run: RunInvocation;
  /** A function's timeout in seconds: a receive hides its messages for that, the batch window and a margin. */
  functionTimeoutSeconds: (functionName: string) => Promise<number>;
  logger: Logger;
  /** How often an empty queue is polled (ms). Default 200. */
  pollIntervalMs?: number;
  /** How often the trigger list is read again (ms): triggers added or removed are picked up this fast. Default 1000. */
  refreshIntervalMs?: number;
  /** Added to the function's timeout and the batch window for the visibility timeout (s). Default 30. */
  visibilityMarginSeconds?: number;
}

interface CompiledRunnerOptions extends TriggerRunnerOptions {
  pollIntervalMs: number;
  refreshIntervalMs: number;
  visibilityMarginSeconds: number;
}

/** How long a failed poll or refresh waits before the next try (ms). */
const retryDelayMs = 1000;
/** How long a function's timeout is trusted before it is read again (ms). */
const timeoutCacheMs = 5000;
/** The event's JSON may take this much of an invocation's event, the rest left to its envelope. */
const maxBatchEventBytes = maxEventBytes - 64 * 1024;

/**
 * Runs queue triggers: for each trigger, receives its queue's messages in batches of up to `batchSize`, gathered for
 * at most `windowSeconds` after the first one, and invokes the function through the invoke path with an SQS-shaped
 * event (`{"Records": [...]}`), at most `maxConcurrency` batches of a trigger at once.
 *
 * A batch that succeeds is acknowledged; when the handler answers `{"batchItemFailures": [{"itemIdentifier": ID}]}`
 * only the others are, and the failed ones are released to be received again at once. A function error, timeout or
 * a platform refusal (no capacity, function gone) releases the whole batch. A message received more than
 * `maxReceives` times is not run again: it is sent to the dead-letter queue and acknowledged, or dropped (logged)
 * when the trigger has none. Delivery is at least once: a gateway that dies mid-batch leaves its messages to come
 * back after their visibility timeout.
 *
 * Every gateway runs its triggers; the queue hands each message to one of them.
 *
 * @example
 * const runner = new TriggerRunner({ triggers, queues, run: gateway.run, functionTimeoutSeconds, logger });
 * runner.start();
 * // …
 * await runner.stop(); // waits for the batches in flight
 */
export class TriggerRunner {
  readonly #options: CompiledRunnerOptions;
  readonly #workers = new Map<string, TriggerWorker>();
  /** Workers of removed triggers, finishing their batches in flight. */
  readonly #retiring = new Set<Promise<void>>();
  readonly #sleeper = new Sleeper();
  readonly #timeouts = new Map<string, { seconds: number; readAt: number }>();
  #state: 'new' | 'running' | 'stopped' = 'new';
  #loop: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: TriggerRunnerOptions) {
    this.#options = {
      ...options,
      pollIntervalMs: options.pollIntervalMs ?? 200,
      refreshIntervalMs: options.refreshIntervalMs ?? 1000,
      visibilityMarginSeconds: options.visibilityMarginSeconds ?? 30,
    };
  }

  /** Starts reading the triggers and running them. Once only. */
  start(): void {
    if (this.#state !== 'new') return;
    this.#state = 'running';
    this.#loop = this.#refreshLoop();
  }

  /** Stops polling and waits for every batch in flight to be settled. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#state = 'stopped';
      this.#sleeper.wake();
      await this.#loop;
      await Promise.all([...this.#workers.values()].map((worker) => worker.stop()));
      this.#workers.clear();
      await Promise.all([...this.#retiring]);
    })();
    return this.#stopping;
  }

  /** The triggers running now, by id. */
  running(): string[] {
    return [...this.#workers.keys()];
  }

  async #refreshLoop(): Promise<void> {
    while (this.#state === 'running') {
      let delay = this.#options.refreshIntervalMs;
      try {
        this.#sync(await this.#options.triggers.list());
      } catch (err) {
        delay = Math.max(delay, retryDelayMs);
        this.#options.logger.warn({ err }, 'cannot read the queue triggers; trying again');
      }
      await this.#sleeper.sleep(delay);
    }
  }

  #sync(triggers: QueueTrigger[]): void {
    if (this.#state !== 'running') return;
    const wanted = new Map(triggers.map((trigger) => [trigger.id, trigger]));
    const removed = [...this.#workers.keys()].filter((id) => !wanted.has(id));
    for (const [id, trigger] of wanted) {
      if (this.#workers.has(id)) continue;
      const worker = new TriggerWorker(trigger, this.#options, (name) => this.#timeoutOf(name));
      this.#workers.set(id, worker);
      worker.start();
      this.#options.logger.info(
        { triggerId: id, function: trigger.functionName, queue: trigger.queue },
        'trigger started',
      );
    }
    for (const id of removed) {
      const worker = this.#workers.get(id);
      this.#workers.delete(id);
      if (worker === undefined) continue;
      // Not awaited here: its batches in flight may run for the function's timeout, and other triggers go on.
      const retiring: Promise<void> = worker.stop().finally(() => {
        this.#retiring.delete(retiring);
        this.#options.logger.info({ triggerId: id }, 'trigger stopped: removed');
      });
      this.#retiring.add(retiring);
    }
  }

  async #timeoutOf(functionName: string): Promise<number> {
    const cached = this.#timeouts.get(functionName);
    const now = Date.now();
    if (cached !== undefined && now - cached.readAt < timeoutCacheMs) return cached.seconds;
    const seconds = await this.#options.functionTimeoutSeconds(functionName);
    this.#timeouts.set(functionName, { seconds, readAt: now });
    return seconds;
  }
}

/** One trigger's poll loop and its batches in flight. */
class TriggerWorker {
  readonly #trigger: QueueTrigger;
  readonly #options: CompiledRunnerOptions;
  readonly #timeoutOf: (functionName: string) => Promise<number>;
  readonly #logger: Logger;
  readonly #sleeper = new Sleeper();
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    trigger: QueueTrigger,
    options: CompiledRunnerOptions,
    timeoutOf: (functionName: string) => Promise<number>,
  ) {
    this.#trigger = trigger;
    this.#options = options;
    this.#timeoutOf = timeoutOf;
    this.#logger = options.logger.child({
      triggerId: trigger.id,
      function: trigger.functionName,
      queue: trigger.queue,
    });
  }

  start(): void {
    this.#loop ??= this.#pollLoop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#sleeper.wake();
    await this.#loop;
    await Promise.all([...this.#inFlight]);
  }

  async #pollLoop(): Promise<void> {
    while (!this.#stopped) {
      try {
        while (this.#inFlight.size >= this.#trigger.maxConcurrency && !this.#stopped) {
          await Promise.race(this.#inFlight);
        }
        if (this.#stopped) break;
        const batch = await this.#gather();
        if (batch.length === 0) continue;
        const running: Promise<void> = this.#runBatch(batch).finally(() => this.#inFlight.delete(running));
        this.#inFlight.add(running);
      } catch (err) {
        this.#logger.warn({ err }, 'cannot receive from the queue; trying again');
        await this.#sleeper.sleep(retryDelayMs);
      }
    }
  }

  /**
   * Up to `batchSize` messages, gathered for at most `windowSeconds` after the first; empty after a poll interval
   * with none, or when stopping (what was gathered is released).
   */
  async #gather(): Promise<ReceivedMessage[]> {
    const { queue, batchSize, windowSeconds, functionName } = this.#trigger;
    const { queues, pollIntervalMs, visibilityMarginSeconds } = this.#options;
    const visibilityMs = ((await this.#timeoutOf(functionName)) + windowSeconds + visibilityMarginSeconds) * 1000;
    const batch: ReceivedMessage[] = [];
    let bytes = 0;
    let deadline: number | undefined;
    while (!this.#stopped) {
      const received = await queues.receive(queue, { max: batchSize - batch.length, visibilityMs });
      const runnable = await this.#retireOverReceived(received);
      const overflow: ReceivedMessage[] = [];
      for (const message of runnable) {
        const size = Buffer.byteLength(JSON.stringify(queueEventRecord(queue, message))) + 1;
        if (batch.length > 0 && bytes + size > maxBatchEventBytes) overflow.push(message);
        else {
          batch.push(message);
          bytes += size;
        }
      }
      if (overflow.length > 0) {
        // The event would be too large for one invocation: these go in a later batch.
        await queues.release(
          queue,
          overflow.map((message) => message.receipt),
        );
        break;
      }
      if (batch.length >= batchSize) break;
      if (batch.length > 0) {
        deadline ??= Date.now() + windowSeconds * 1000;
        const left = deadline - Date.now();
        if (left <= 0) break;
        if (received.length === 0) await this.#sleeper.sleep(Math.min(pollIntervalMs, left));
      } else if (received.length === 0) {
        await this.#sleeper.sleep(pollIntervalMs);
        return [];
      }
    }
    if (this.#stopped && batch.length > 0) {
      await queues.release(
        queue,
        batch.map((message) => message.receipt),
      );
      return [];
    }
    return batch;
  }

  /** The messages of `received` that may run; those received more than `maxReceives` times are retired. */
  async #retireOverReceived(received: ReceivedMessage[]): Promise<ReceivedMessage[]> {
    const { queue, maxReceives, deadLetterQueue } = this.#trigger;
    const runnable: ReceivedMessage[] = [];
    for (const message of received) {
      if (message.receiveCount <= maxReceives) {
        runnable.push(message);
        continue;
      }
      try {
        if (deadLetterQueue !== null) await this.#options.queues.send(deadLetterQueue, [message.body]);
        await this.#options.queues.ack(queue, [message.receipt]);
        if (deadLetterQueue === null) {
          this.#logger.warn(
            { messageId: message.messageId, receiveCount: message.receiveCount },
            `message dropped: received more than ${maxReceives} times and the trigger has no dead-letter queue`,
          );
        } else {
          this.#logger.info(
            { messageId: message.messageId, receiveCount: message.receiveCount, deadLetterQueue },
            'message moved to the dead-letter queue',
          );
        }
      } catch (err) {
        // Left hidden: it comes back after its visibility timeout and is retired then.
        this.#logger.error({ err, messageId: message.messageId }, 'cannot retire a message received too often');
      }
    }
    return runnable;
  }

  async #runBatch(batch: ReceivedMessage[]): Promise<void> {
    const { queue, functionName } = this.#trigger;
    const { queues, run } = this.#options;
    const event = { Records: batch.map((message) => queueEventRecord(queue, message)) };
    let failed: Set<string> | 'all';
    try {
      const ran = await run(functionName, new TextEncoder().encode(JSON.stringify(event)), undefined);
      if (ran.outcome.status === 'success') {
        failed = failedItems(ran.outcome.payloadJson, new Set(batch.map((message) => message.messageId)));
      } else {
        failed = 'all';
        this.#logger.info(
          { invocationId: ran.invocationId, status: ran.outcome.status, messages: batch.length },
          'batch failed: its messages are released',
        );
      }
    } catch (err) {
      failed = 'all';
      this.#logger.warn({ err, messages: batch.length }, 'batch not run: its messages are released');
    }
    const release = failed === 'all' ? batch : batch.filter((message) => failed.has(message.messageId));
    const ack = failed === 'all' ? [] : batch.filter((message) => !failed.has(message.messageId));
    try {
      if (ack.length > 0)
        await queues.ack(
          queue,
          ack.map((message) => message.receipt),
        );
      if (release.length > 0)
        await queues.release(
          queue,
          release.map((message) => message.receipt),
        );
    } catch (err) {
      // Unsettled messages come back after their visibility timeout.
      this.#logger.error({ err, messages: batch.length }, 'cannot settle a batch');
    }
  }
}

/** A sleep that `wake` cuts short (for stopping). */
class Sleeper {
  readonly #waiting = new Set<() => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.#waiting.add(done);
    });
  }

  wake(): void {
    for (const done of [...this.#waiting]) done();
  }
}

/**
 * A function's timeout as its current version sets it, for `TriggerRunnerOptions.functionTimeoutSeconds`; the
 * longest a function may have when the function or version is gone (its batches fail and come back anyway).
 */
export function timeoutFromMetadata(metadata: MetadataStore): (functionName: string) => Promise<number> {
  return async (functionName) => {
    const fn = await metadata.getFunction(functionName);
    const version = fn === null ? null : await metadata.getVersion(functionName, fn.currentVersion);
    return version?.config.timeoutSeconds ?? 900;
  };
}
