import { PlatformError } from './errors.js';
import { timeOrderedUuid } from './ids.js';
import type { MessageReceiveOptions } from './ports/message-queue.js';
import { maxMessageBodyBytes, maxMessagesPerCall, maxQueueNameLength } from './ports/message-queue.js';
import type { NewTrigger } from './ports/trigger-store.js';

const queueNamePattern = /^[A-Za-z0-9_-]+$/;

/** Whether `name` may name a queue: 1 to 80 letters, digits, dashes and underscores. */
export function isQueueName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= maxQueueNameLength && queueNamePattern.test(name);
}

export function validateQueueName(name: unknown, what = 'a queue name'): string {
  if (!isQueueName(name)) {
    throw new PlatformError(
      'BAD_REQUEST',
      `${what} must be 1 to ${maxQueueNameLength} letters, digits, dashes or underscores, got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/**
 * Characters a body may hold (as SQS allows): tab, newline, carriage return and every Unicode scalar value from U+0020
 * on but U+FFFE and U+FFFF. Lone surrogates and other control characters cannot be stored alike by every engine.
 */
const badCharacter = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** `send`'s batch checked: BAD_REQUEST or PAYLOAD_TOO_LARGE naming the first bad message's index. */
export function validateBodies(bodies: readonly unknown[]): string[] {
  if (!Array.isArray(bodies) || bodies.length === 0 || bodies.length > maxMessagesPerCall) {
    throw new PlatformError(
      'BAD_REQUEST',
      `send 1 to ${maxMessagesPerCall} messages at a time, got ${Array.isArray(bodies) ? bodies.length : 'none'}`,
    );
  }
  bodies.forEach((body, index) => {
    if (typeof body !== 'string') {
      throw new PlatformError('BAD_REQUEST', `message ${index}: the body must be a string`, {
        details: { messageIndex: index },
      });
    }
    const bytes = Buffer.byteLength(body);
    if (bytes > maxMessageBodyBytes) {
      throw new PlatformError(
        'PAYLOAD_TOO_LARGE',
        `message ${index}: the body is ${bytes} bytes, over the ${maxMessageBodyBytes} (256 KiB) a message may hold`,
        { details: { messageIndex: index, maxBodyBytes: maxMessageBodyBytes } },
      );
    }
    const bad = badCharacter.exec(body);
    if (bad !== null) {
      const code = bad[0].codePointAt(0) ?? 0;
      throw new PlatformError(
        'BAD_REQUEST',
        `message ${index}: the body holds U+${code.toString(16).toUpperCase().padStart(4, '0')} at ${bad.index}, a character a message may not hold`,
        { details: { messageIndex: index } },
      );
    }
  });
  return bodies as string[];
}

export function validateMessageReceive(options: MessageReceiveOptions): void {
  const { max, visibilityMs } = options;
  if (!Number.isInteger(max) || max < 1 || max > maxMessagesPerCall) {
    throw new PlatformError('BAD_REQUEST', `receive takes 1 to ${maxMessagesPerCall} messages, got ${max}`);
  }
  if (!Number.isFinite(visibilityMs) || visibilityMs <= 0) {
    throw new PlatformError('BAD_REQUEST', `the visibility timeout must be positive, got ${visibilityMs} ms`);
  }
}

export function validateReceipts(receipts: readonly unknown[]): string[] {
  if (!Array.isArray(receipts) || receipts.some((receipt) => typeof receipt !== 'string')) {
    throw new PlatformError('BAD_REQUEST', 'receipts must be strings');
  }
  return receipts as string[];
}

/** Bounds and defaults of a trigger's settings. */
export const triggerSettingLimits = {
  batchSize: { min: 1, max: 100, default: 10 },
  windowSeconds: { min: 0, max: 300, default: 1 },
  maxConcurrency: { min: 1, max: 100, default: 4 },
  maxReceives: { min: 1, max: 100, default: 5 },
} as const;

/** A trigger's settings, checked and defaulted. */
export interface TriggerSettings {
  functionName: string;
  queue: string;
  batchSize: number;
  windowSeconds: number;
  maxConcurrency: number;
  maxReceives: number;
  deadLetterQueue: string | null;
}

/** `NewTrigger` checked at the edge: BAD_REQUEST naming the setting out of range. */
export function compileTriggerSettings(input: NewTrigger): TriggerSettings {
  if (typeof input.functionName !== 'string' || input.functionName.length === 0) {
    throw new PlatformError('BAD_REQUEST', 'a trigger needs a function name');
  }
  const queue = validateQueueName(input.queue, 'the queue');
  const deadLetterQueue =
    input.deadLetterQueue === undefined || input.deadLetterQueue === null
      ? null
      : validateQueueName(input.deadLetterQueue, 'the dead-letter queue');
  if (deadLetterQueue === queue) {
    throw new PlatformError('BAD_REQUEST', `the dead-letter queue must be another queue than ${queue}`);
  }
  const setting = (name: keyof typeof triggerSettingLimits, value: number | undefined): number => {
    const limits = triggerSettingLimits[name];
    if (value === undefined) return limits.default;
    if (!Number.isInteger(value) || value < limits.min || value > limits.max) {
      throw new PlatformError(
        'BAD_REQUEST',
        `${name} must be a whole number from ${limits.min} to ${limits.max}, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  };
  return {
    functionName: input.functionName,
    queue,
    batchSize: setting('batchSize', input.batchSize),
    windowSeconds: setting('windowSeconds', input.windowSeconds),
    maxConcurrency: setting('maxConcurrency', input.maxConcurrency),
    maxReceives: setting('maxReceives', input.maxReceives),
    deadLetterQueue,
  };
}

/** NOT_FOUND for a queue that does not exist. */
export function queueNotFound(name: string): PlatformError {
  return new PlatformError(
    'NOT_FOUND',
    `queue ${name} does not exist (create it first: savassan queue create ${name})`,
    {
      details: { queue: name },
    },
  );
}

/**
 * `count` message ids made at `now`, ascending: time-ordered UUIDs of one millisecond differ only in their random
 * bits, so a batch's ids are sorted to keep its messages in the order they were given.
 */
export function messageIds(count: number, now: number): string[] {
  return Array.from({ length: count }, () => timeOrderedUuid(now)).sort();
}
