import { PlatformError } from './errors.js';
import type { AttemptStatus, InvocationAttempt, InvocationEnqueue, ReceiveOptions } from './ports/invocation-queue.js';
import {
  defaultDeadLettersListed,
  defaultEndedRetentionMs,
  maxDeadLettersListed,
  maxReceiveBatch,
} from './ports/invocation-queue.js';

/** Longest idempotency key, in characters. */
export const maxIdempotencyKeyLength = 255;
/** Longest function name a queued event may carry, in characters. */
export const maxQueuedFunctionNameLength = 64;
/** Default events held per function. */
export const defaultQueueCapacityPerFunction = 10_000;

/** `enqueue`'s input checked: the due time in epoch ms (`now` when not given). */
export function validateEnqueue(
  input: InvocationEnqueue,
  now: number,
): { dueAt: number; idempotencyKey: string | null } {
  validateQueuedFunctionName(input.functionName);
  if (typeof input.payload !== 'string') throw new PlatformError('BAD_REQUEST', 'the event payload must be a string');
  const key = input.idempotencyKey;
  if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > maxIdempotencyKeyLength)) {
    throw new PlatformError('BAD_REQUEST', `an idempotency key must be 1 to ${maxIdempotencyKeyLength} characters`);
  }
  if (input.notBefore !== undefined && input.delayMs !== undefined) {
    throw new PlatformError('BAD_REQUEST', 'give an event a delay or a not-before time, not both');
  }
  let dueAt = now;
  if (input.notBefore !== undefined) dueAt = validTime(input.notBefore, 'notBefore');
  if (input.delayMs !== undefined) {
    if (!Number.isFinite(input.delayMs) || input.delayMs < 0) {
      throw new PlatformError('BAD_REQUEST', `an event's delay must be zero or more, got ${input.delayMs} ms`);
    }
    dueAt = now + input.delayMs;
  }
  return { dueAt, idempotencyKey: key ?? null };
}

export function validateQueuedFunctionName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > maxQueuedFunctionNameLength) {
    throw new PlatformError('BAD_REQUEST', `a function name must be 1 to ${maxQueuedFunctionNameLength} characters`);
  }
}

export function validateReceive(options: ReceiveOptions): void {
  const { max, visibilityMs, functionName } = options;
  if (!Number.isInteger(max) || max < 1 || max > maxReceiveBatch) {
    throw new PlatformError('BAD_REQUEST', `receive takes 1 to ${maxReceiveBatch} events, got ${max}`);
  }
  if (!Number.isFinite(visibilityMs) || visibilityMs <= 0) {
    throw new PlatformError('BAD_REQUEST', `the visibility timeout must be positive, got ${visibilityMs} ms`);
  }
  if (functionName !== undefined) validateQueuedFunctionName(functionName);
}

export function validateAttempt(attempt: InvocationAttempt): void {
  validTime(attempt.startedAt, 'the attempt start');
  if (!Number.isFinite(attempt.durationMs) || attempt.durationMs < 0) {
    throw new PlatformError('BAD_REQUEST', `an attempt's duration must be zero or more, got ${attempt.durationMs} ms`);
  }
}

/** `listDeadLetters`' limit checked and defaulted. */
export function deadLetterLimit(limit: number | undefined): number {
  if (limit === undefined) return defaultDeadLettersListed;
  if (!Number.isInteger(limit) || limit < 1 || limit > maxDeadLettersListed) {
    throw new PlatformError('BAD_REQUEST', `list 1 to ${maxDeadLettersListed} dead letters, got ${limit}`);
  }
  return limit;
}

export function validateCapacity(capacity: number): number {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new PlatformError('BAD_REQUEST', `queue capacity per function must be a positive integer, got ${capacity}`);
  }
  return capacity;
}

/** The `endedRetentionMs` option checked and defaulted: a positive integer of ms. */
export function validateEndedRetention(retentionMs: number | undefined): number {
  const retention = retentionMs ?? defaultEndedRetentionMs;
  if (!Number.isInteger(retention) || retention < 1) {
    throw new PlatformError(
      'BAD_REQUEST',
      `the retention of ended events must be a positive integer, got ${retention}`,
    );
  }
  return retention;
}

/** The error `enqueue` fails with when the function's queue is full. */
export function queueFullError(functionName: string, capacity: number): PlatformError {
  return new PlatformError(
    'TOO_MANY_REQUESTS',
    `the async queue of function ${functionName} is full (${capacity} events queued or running); retry later`,
  );
}

/** A time as epoch ms; BAD_REQUEST when it is not a valid, non-negative time. */
export function validTime(value: Date, what: string): number {
  const ms = value instanceof Date ? value.getTime() : Number.NaN;
  if (!Number.isFinite(ms) || ms < 0) throw new PlatformError('BAD_REQUEST', `${what} is not a valid time`);
  return ms;
}

/** An attempt as the adapters store it in an event's `attempts` JSON (times as epoch ms). */
export interface StoredAttempt {
  startedAt: number;
  status: AttemptStatus;
  durationMs: number;
  error: string | null;
  /** Absent in attempts stored before attempts named their record. */
  invocationId?: string | null;
}

export function storedAttempt(attempt: InvocationAttempt): StoredAttempt {
  return {
    startedAt: attempt.startedAt.getTime(),
    status: attempt.status,
    durationMs: attempt.durationMs,
    error: attempt.error,
    invocationId: attempt.invocationId,
  };
}

export function attemptsFromJson(json: string): InvocationAttempt[] {
  return (JSON.parse(json) as StoredAttempt[]).map((stored) => ({
    startedAt: new Date(stored.startedAt),
    status: stored.status,
    durationMs: stored.durationMs,
    error: stored.error,
    invocationId: stored.invocationId ?? null,
  }));
}
