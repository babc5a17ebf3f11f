/* eslint-disable @typescript-eslint/require-await --
   The port is async; this adapter is synchronous inside, and `async` turns its throws into rejections. */
import { randomUUID } from 'node:crypto';
import { PlatformError } from '../../core/errors.js';
import { timeOrderedUuid } from '../../core/ids.js';
import {
  deadLetterLimit,
  defaultQueueCapacityPerFunction,
  queueFullError,
  validateAttempt,
  validateCapacity,
  validateEndedRetention,
  validateEnqueue,
  validateQueuedFunctionName,
  validateReceive,
  validTime,
} from '../../core/invocation-queue-rules.js';
import { idempotencyWindowMs, retentionSweepIntervalMs } from '../../core/ports/invocation-queue.js';
import type {
  EnqueueResult,
  InvocationAttempt,
  InvocationDelivery,
  InvocationEnqueue,
  InvocationQueue,
  InvocationQueueStats,
  QueuedInvocation,
  ReceiveOptions,
} from '../../core/ports/invocation-queue.js';

export interface MemoryInvocationQueueOptions {
  /** Events queued or running per function; `enqueue` beyond it fails with TOO_MANY_REQUESTS. Default 10 000. */
  capacityPerFunction?: number;
  /** How long a succeeded or failed event stays readable with `get` after it ended (ms). Default 7 days. */
  endedRetentionMs?: number;
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number;
}

interface Entry {
  id: string;
  functionName: string;
  payload: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'dead_lettered';
  enqueuedAt: number;
  /** Due time while queued; visibility expiry while running. */
  dueAt: number;
  /** Insertion order, for ties on `dueAt`. */
  seq: number;
  deliveryCount: number;
  receipt: string | null;
  attempts: InvocationAttempt[];
  idempotencyKey: string | null;
  deadLetterReason: string | null;
  deadLetteredAt: number | null;
  redrivenAt: number | null;
  /** When it succeeded or failed; null otherwise. */
  endedAt: number | null;
}

/**
 * In-process InvocationQueue for tests and single-process use: nothing survives the process. Method bodies are
 * synchronous, so each call sees and leaves a consistent queue. `receive` sweeps ended events older than
 * `endedRetentionMs` and expired idempotency keys, at most once every `retentionSweepIntervalMs`.
 */
export class MemoryInvocationQueue implements InvocationQueue {
  readonly capacityPerFunction: number;
  readonly #now: () => number;
  readonly #endedRetentionMs: number;
  /** When `receive` last swept, by the queue's clock. */
  #sweptAt = Number.NEGATIVE_INFINITY;
  readonly #entries = new Map<string, Entry>();
  /** Current receipts → their running entries. */
  readonly #byReceipt = new Map<string, Entry>();
  /** `functionName\0key` → the event it names and when the key was first used. */
  readonly #keys = new Map<string, { id: string; at: number }>();
  #seq = 0;
  #closed = false;

  constructor(options: MemoryInvocationQueueOptions = {}) {
    this.capacityPerFunction = validateCapacity(options.capacityPerFunction ?? defaultQueueCapacityPerFunction);
    this.#endedRetentionMs = validateEndedRetention(options.endedRetentionMs);
    this.#now = options.now ?? Date.now;
  }

  async enqueue(input: InvocationEnqueue): Promise<EnqueueResult> {
    this.#assertOpen();
    const now = this.#now();
    const { dueAt, idempotencyKey } = validateEnqueue(input, now);
    const keyName = idempotencyKey === null ? null : `${input.functionName}\0${idempotencyKey}`;
    if (keyName !== null) {
      const known = this.#keys.get(keyName);
      if (known !== undefined && known.at > now - idempotencyWindowMs && this.#entries.has(known.id)) {
        return { id: known.id, duplicate: true };
      }
    }
    let waiting = 0;
    for (const entry of this.#entries.values()) {
      if (entry.functionName === input.functionName && (entry.state === 'queued' || entry.state === 'running')) {
        waiting += 1;
      }
    }
    if (waiting >= this.capacityPerFunction) throw queueFullError(input.functionName, this.capacityPerFunction);
    const id = timeOrderedUuid(now);
    this.#entries.set(id, {
      id,
      functionName: input.functionName,
      payload: input.payload,
      state: 'queued',
      enqueuedAt: now,
      dueAt,
      seq: this.#seq++,
      deliveryCount: 0,
      receipt: null,
      attempts: [],
      idempotencyKey,
      deadLetterReason: null,
      deadLetteredAt: null,
      redrivenAt: null,
      endedAt: null,
    });
    if (keyName !== null) this.#keys.set(keyName, { id, at: now });
    return { id, duplicate: false };
  }

  async receive(options: ReceiveOptions): Promise<InvocationDelivery[]> {
    this.#assertOpen();
    validateReceive(options);
    const now = this.#now();
    if (now - this.#sweptAt >= retentionSweepIntervalMs) this.#sweep(now);
    const due = [...this.#entries.values()]
      .filter(
        (entry) =>
          (entry.state === 'queued' || entry.state === 'running') &&
          entry.dueAt <= now &&
          (options.functionName === undefined || entry.functionName === options.functionName),
      )
      .sort((a, b) => a.dueAt - b.dueAt || a.seq - b.seq)
      .slice(0, options.max);
    return due.map((entry) => {
      entry.state = 'running';
      entry.dueAt = now + options.visibilityMs;
      entry.deliveryCount += 1;
      if (entry.receipt !== null) this.#byReceipt.delete(entry.receipt);
      entry.receipt = randomUUID();
      this.#byReceipt.set(entry.receipt, entry);
      return {
        id: entry.id,
        functionName: entry.functionName,
        payload: entry.payload,
        enqueuedAt: new Date(entry.enqueuedAt),
        receipt: entry.receipt,
        deliveryCount: entry.deliveryCount,
        attempts: entry.attempts.map(copyAttempt),
        redrivenAt: entry.redrivenAt === null ? null : new Date(entry.redrivenAt),
      };
    });
  }

  async complete(receipt: string, attempt: InvocationAttempt): Promise<boolean> {
    return this.#settle(receipt, attempt, (entry) => {
      entry.state = 'succeeded';
      entry.endedAt = this.#now();
    });
  }

  async fail(receipt: string, attempt: InvocationAttempt): Promise<boolean> {
    return this.#settle(receipt, attempt, (entry) => {
      entry.state = 'failed';
      entry.endedAt = this.#now();
    });
  }

  async retry(receipt: string, attempt: InvocationAttempt, notBefore: Date): Promise<boolean> {
    const dueAt = validTime(notBefore, 'the retry time');
    return this.#settle(receipt, attempt, (entry) => {
      entry.state = 'queued';
      entry.dueAt = dueAt;
      entry.seq = this.#seq++;
    });
  }

  async deadLetter(receipt: string, attempt: InvocationAttempt | null, reason: string): Promise<boolean> {
    return this.#settle(receipt, attempt, (entry) => {
      entry.state = 'dead_lettered';
      entry.deadLetterReason = reason;
      entry.deadLetteredAt = this.#now();
    });
  }

  async get(id: string): Promise<QueuedInvocation | null> {
    this.#assertOpen();
    const entry = this.#entries.get(id);
    return entry === undefined ? null : this.#view(entry);
  }

  async listDeadLetters(functionName: string, limit?: number): Promise<QueuedInvocation[]> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    const count = deadLetterLimit(limit);
    return [...this.#entries.values()]
      .filter((entry) => entry.functionName === functionName && entry.state === 'dead_lettered')
      .sort((a, b) => b.deadLetteredAt! - a.deadLetteredAt! || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .slice(0, count)
      .map((entry) => this.#view(entry));
  }

  async redrive(functionName: string, id: string): Promise<boolean> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    const entry = this.#entries.get(id);
    if (entry === undefined || entry.functionName !== functionName || entry.state !== 'dead_lettered') return false;
    entry.state = 'queued';
    entry.dueAt = this.#now();
    entry.seq = this.#seq++;
    entry.deadLetterReason = null;
    entry.deadLetteredAt = null;
    entry.redrivenAt = entry.dueAt;
    return true;
  }

  async purgeDeadLetters(functionName: string): Promise<number> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    let purged = 0;
    for (const entry of [...this.#entries.values()]) {
      if (entry.functionName === functionName && entry.state === 'dead_lettered') {
        this.#entries.delete(entry.id);
        purged += 1;
      }
    }
    return purged;
  }

  async stats(functionName: string): Promise<InvocationQueueStats> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    const now = this.#now();
    const stats: InvocationQueueStats = { queued: 0, running: 0, deadLettered: 0, oldestEnqueuedAt: null };
    let oldest = Number.POSITIVE_INFINITY;
    for (const entry of this.#entries.values()) {
      if (entry.functionName !== functionName) continue;
      const state = stateAt(entry, now);
      if (state === 'queued') stats.queued += 1;
      else if (state === 'running') stats.running += 1;
      else if (state === 'dead_lettered') stats.deadLettered += 1;
      if ((state === 'queued' || state === 'running') && entry.enqueuedAt < oldest) oldest = entry.enqueuedAt;
    }
    if (oldest !== Number.POSITIVE_INFINITY) stats.oldestEnqueuedAt = new Date(oldest);
    return stats;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Deletes the ended events past their retention and the idempotency keys past their window. */
  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const entry of [...this.#entries.values()]) {
      if (entry.endedAt !== null && entry.endedAt < now - this.#endedRetentionMs) this.#entries.delete(entry.id);
    }
    for (const [name, key] of [...this.#keys]) {
      if (key.at <= now - idempotencyWindowMs) this.#keys.delete(name);
    }
  }

  #settle(receipt: string, attempt: InvocationAttempt | null, change: (entry: Entry) => void): boolean {
    this.#assertOpen();
    if (attempt !== null) validateAttempt(attempt);
    const now = this.#now();
    const entry = this.#byReceipt.get(receipt);
    // A delivery whose visibility has expired may already be someone else's: its receipt is no longer current.
    if (entry === undefined || entry.state !== 'running' || entry.dueAt <= now) return false;
    if (attempt !== null) entry.attempts.push(copyAttempt(attempt));
    this.#byReceipt.delete(receipt);
    entry.receipt = null;
    change(entry);
    return true;
  }

  #view(entry: Entry): QueuedInvocation {
    return {
      id: entry.id,
      functionName: entry.functionName,
      state: stateAt(entry, this.#now()),
      payload: entry.payload,
      enqueuedAt: new Date(entry.enqueuedAt),
      dueAt: entry.state === 'queued' || entry.state === 'running' ? new Date(entry.dueAt) : null,
      deliveryCount: entry.deliveryCount,
      attempts: entry.attempts.map(copyAttempt),
      idempotencyKey: entry.idempotencyKey,
      deadLetterReason: entry.deadLetterReason,
      deadLetteredAt: entry.deadLetteredAt === null ? null : new Date(entry.deadLetteredAt),
      redrivenAt: entry.redrivenAt === null ? null : new Date(entry.redrivenAt),
    };
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'the invocation queue is closed');
  }
}

/** A running event whose visibility has expired is waiting again. */
function stateAt(entry: Entry, now: number): QueuedInvocation['state'] {
  return entry.state === 'running' && entry.dueAt <= now ? 'queued' : entry.state;
}

function copyAttempt(attempt: InvocationAttempt): InvocationAttempt {
  return {
    startedAt: new Date(attempt.startedAt.getTime()),
    status: attempt.status,
    durationMs: attempt.durationMs,
    error: attempt.error,
    invocationId: attempt.invocationId,
  };
}
