import type { InvocationStatus } from '../types.js';

/** Where a queued invocation stands. */
export type QueuedInvocationState = 'queued' | 'running' | 'succeeded' | 'failed' | 'dead_lettered';

/**
 * How an attempt ended: as the invocation ended when it ran, `throttled` when the platform refused it for capacity
 * (429), `platform_error` when the platform failed to run it (a node or backend down, a version gone).
 */
export type AttemptStatus = InvocationStatus | 'platform_error';

/** One delivery of an event to its function, as the dispatcher saw it end. */
export interface InvocationAttempt {
  /** When the attempt started. */
  startedAt: Date;
  status: AttemptStatus;
  durationMs: number;
  /** What went wrong, or null. */
  error: string | null;
  /** The invocation record the attempt made (its logs), or null when it did not run. */
  invocationId: string | null;
}

/** An event to queue. */
export interface InvocationEnqueue {
  functionName: string;
  /** The event, as the caller encodes it (JSON, or base64 for bytes). */
  payload: string;
  /** Deduplicates enqueues of the same function within `idempotencyWindowMs`: the first one's id comes back. */
  idempotencyKey?: string | undefined;
  /** Not delivered before this time. Default: now. */
  notBefore?: Date | undefined;
  /** Not delivered for this many ms (zero or more); instead of `notBefore`. */
  delayMs?: number | undefined;
}

/** What `enqueue` did. */
export interface EnqueueResult {
  /** The event's id: time-ordered (`timeOrderedUuid`), or the earlier event's for a duplicate. */
  id: string;
  /** True when `idempotencyKey` matched an event queued within the window; nothing new was queued. */
  duplicate: boolean;
}

/** One event handed to a consumer by `receive`. */
export interface InvocationDelivery {
  id: string;
  functionName: string;
  payload: string;
  enqueuedAt: Date;
  /** Names this delivery: `complete`, `fail`, `retry` and `deadLetter` take it. A redelivery gets a new one. */
  receipt: string;
  /** 1 for the first delivery; counts redeliveries after a visibility timeout too. */
  deliveryCount: number;
  /** The attempts recorded so far (`retry`), oldest first. */
  attempts: InvocationAttempt[];
  /** When the event was last redriven from the dead letters; null if never. Its retries and age count from here. */
  redrivenAt: Date | null;
}

/** A queued invocation as `get` and `listDeadLetters` show it. */
export interface QueuedInvocation {
  id: string;
  functionName: string;
  state: QueuedInvocationState;
  payload: string;
  enqueuedAt: Date;
  /** When the event is due again: its due time while queued, its visibility expiry while running; null once ended. */
  dueAt: Date | null;
  deliveryCount: number;
  /** Every attempt recorded, oldest first. */
  attempts: InvocationAttempt[];
  idempotencyKey: string | null;
  /** Why it was dead-lettered, while it is. */
  deadLetterReason: string | null;
  /** When it was dead-lettered, while it is. */
  deadLetteredAt: Date | null;
  /** When it was last redriven; null if never. */
  redrivenAt: Date | null;
}

/** A function's queue depth. */
export interface InvocationQueueStats {
  /** Waiting to be delivered, due or not. */
  queued: number;
  /** Delivered, visibility not yet expired. */
  running: number;
  deadLettered: number;
  /** Enqueue time of the oldest event waiting or running, or null. */
  oldestEnqueuedAt: Date | null;
}

/** How many events `receive` takes and for how long. */
export interface ReceiveOptions {
  /** At most this many events (1..1000). */
  max: number;
  /** Each delivery is hidden from other consumers this long (ms, > 0); unsettled by then, it is delivered again. */
  visibilityMs: number;
  /** Only this function's events. Default: every function's. */
  functionName?: string | undefined;
}

/** How long an idempotency key is remembered: 24 hours. */
export const idempotencyWindowMs = 24 * 60 * 60 * 1000;
/** How long a succeeded or failed event stays readable with `get` by default (adapters' `endedRetentionMs`): 7 days. */
export const defaultEndedRetentionMs = 7 * 24 * 60 * 60 * 1000;
/**
 * How often at most an adapter that sweeps (SQL, memory) deletes what the retention rule lets go: once a minute of
 * its clock, from `receive`. A sweep that found more than it may delete at once goes on at the next `receive`.
 */
export const retentionSweepIntervalMs = 60_000;
/** Dead letters `listDeadLetters` returns by default, and at most. */
export const defaultDeadLettersListed = 100;
export const maxDeadLettersListed = 1000;
/** Events one `receive` may take. */
export const maxReceiveBatch = 1000;

/**
 * Durable queue of asynchronous invocations, between the API that accepts them and the dispatcher that runs them.
 *
 * Delivery is **at least once**: an event received and not settled (`complete`, `fail`, `retry`, `deadLetter`)
 * before its visibility timeout ends is delivered again, with a new receipt, so a consumer that dies loses nothing
 * but a slow one may see an event twice. Handlers must be idempotent.
 *
 * Ordering: events are delivered in due-time order (`notBefore` or `delayMs`, a retry's time, or a visibility
 * expiry); events due in the same millisecond come in no promised order. There is no FIFO guarantee beyond that.
 *
 * Capacity: each function holds at most `capacityPerFunction` events queued or running; `enqueue` beyond it fails
 * with TOO_MANY_REQUESTS. Dead letters do not count, and a redrive is never refused.
 *
 * Invalid input fails with BAD_REQUEST: an empty function name, a negative delay, an invalid time, `max` or
 * `visibilityMs` out of range. Settling with a receipt that is no longer current (the event was redelivered or
 * already settled, or its visibility timeout has passed) returns false and changes nothing.
 *
 * Retention: what ends is not kept forever.
 * - An ended event (`succeeded` or `failed`) stays readable with `get` for at least `endedRetentionMs` (an adapter
 *   option, default 7 days) after it ended, and is deleted some time after: the SQL and memory adapters sweep from
 *   `receive`, at most once every `retentionSweepIntervalMs` of the queue's clock and in bounded chunks; Redis expires
 *   the event's key by its own clock.
 * - Dead letters are never deleted by retention (only `purgeDeadLetters` deletes them); neither are queued or running
 *   events.
 * - An idempotency key is forgotten after `idempotencyWindowMs` (24 hours), and also once its event is deleted.
 */
export interface InvocationQueue {
  readonly capacityPerFunction: number;
  enqueue(input: InvocationEnqueue): Promise<EnqueueResult>;
  /** Take up to `max` due events, each hidden for `visibilityMs`. Returns at once, empty when nothing is due. */
  receive(options: ReceiveOptions): Promise<InvocationDelivery[]>;
  /** The delivery succeeded: the event ends `succeeded` with `attempt` recorded. */
  complete(receipt: string, attempt: InvocationAttempt): Promise<boolean>;
  /** The event failed for good and was handed elsewhere (an on-failure destination): it ends `failed`. */
  fail(receipt: string, attempt: InvocationAttempt): Promise<boolean>;
  /** The delivery failed: record `attempt`; the event is queued again, due at `notBefore`. */
  retry(receipt: string, attempt: InvocationAttempt, notBefore: Date): Promise<boolean>;
  /** The event failed for good: record `attempt` (when given) and move it to its function's dead letters. */
  deadLetter(receipt: string, attempt: InvocationAttempt | null, reason: string): Promise<boolean>;
  /** The event with `id`, with every attempt; null when unknown. */
  get(id: string): Promise<QueuedInvocation | null>;
  /** A function's dead letters, most recently dead-lettered first; at most `limit` (default 100, at most 1000). */
  listDeadLetters(functionName: string, limit?: number): Promise<QueuedInvocation[]>;
  /**
   * Queue a dead letter again, due now, attempts kept, `redrivenAt` now. False when `id` is not a dead letter of the
   * function.
   */
  redrive(functionName: string, id: string): Promise<boolean>;
  /** Delete a function's dead letters; returns how many. */
  purgeDeadLetters(functionName: string): Promise<number>;
  stats(functionName: string): Promise<InvocationQueueStats>;
  /** Idempotent; calls after it fail with UNAVAILABLE. */
  close(): Promise<void>;
}
