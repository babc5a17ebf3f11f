import { randomUUID } from 'node:crypto';
import { PlatformError } from '../../core/errors.js';
import {
  messageIds,
  queueNotFound,
  validateBodies,
  validateMessageReceive,
  validateQueueName,
  validateReceipts,
} from '../../core/message-queue-rules.js';
import type {
  MessageQueueInfo,
  MessageQueues,
  MessageQueueStats,
  MessageReceiveOptions,
  ReceivedMessage,
} from '../../core/ports/message-queue.js';

export interface MemoryMessageQueuesOptions {
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number;
}

interface StoredMessage {
  id: string;
  /** Send order, to break ties of `visibleAt`. */
  seq: number;
  body: string;
  sentAt: number;
  visibleAt: number;
  receiveCount: number;
  firstReceivedAt: number | null;
  receipt: string | null;
}

interface StoredQueue {
  info: MessageQueueInfo;
  messages: Map<string, StoredMessage>;
}

/**
 * `MessageQueues` in this process's memory: for tests and a single process that may lose its messages. Receiving
 * scans the queue's messages, which is fine at the sizes it is meant for.
 *
 * @example
 * const queues = new MemoryMessageQueues();
 * await queues.createQueue('orders');
 * await queues.send('orders', ['{"order":42}']);
 */
export class MemoryMessageQueues implements MessageQueues {
  readonly #queues = new Map<string, StoredQueue>();
  readonly #now: () => number;
  #seq = 0;
  #closed = false;

  constructor(options: MemoryMessageQueuesOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  createQueue(name: string): Promise<{ queue: MessageQueueInfo; created: boolean }> {
    return this.#do(() => {
      validateQueueName(name);
      const existing = this.#queues.get(name);
      if (existing !== undefined) return { queue: { ...existing.info }, created: false };
      const info = { name, createdAt: new Date(this.#now()) };
      this.#queues.set(name, { info, messages: new Map() });
      return { queue: { ...info }, created: true };
    });
  }

  getQueue(name: string): Promise<MessageQueueInfo | null> {
    return this.#do(() => {
      const queue = this.#queues.get(name);
      return queue === undefined ? null : { ...queue.info };
    });
  }

  listQueues(): Promise<MessageQueueInfo[]> {
    return this.#do(() => [...this.#queues.values()].map((queue) => ({ ...queue.info })).sort(byName));
  }

  deleteQueue(name: string): Promise<boolean> {
    return this.#do(() => this.#queues.delete(name));
  }

  send(queue: string, bodies: readonly string[]): Promise<string[]> {
    return this.#do(() => {
      const checked = validateBodies(bodies);
      const stored = this.#existing(queue);
      const now = this.#now();
      const ids = messageIds(checked.length, now);
      return checked.map((body, index) => {
        const id = ids[index]!;
        stored.messages.set(id, {
          id,
          seq: this.#seq++,
          body,
          sentAt: now,
          visibleAt: now,
          receiveCount: 0,
          firstReceivedAt: null,
          receipt: null,
        });
        return id;
      });
    });
  }

  receive(queue: string, options: MessageReceiveOptions): Promise<ReceivedMessage[]> {
    return this.#do(() => {
      validateMessageReceive(options);
      const stored = this.#existing(queue);
      const now = this.#now();
      const visible = [...stored.messages.values()]
        .filter((message) => message.visibleAt <= now)
        .sort((a, b) => a.visibleAt - b.visibleAt || a.seq - b.seq)
        .slice(0, options.max);
      return visible.map((message) => {
        message.receiveCount += 1;
        message.firstReceivedAt ??= now;
        message.visibleAt = now + options.visibilityMs;
        message.receipt = randomUUID();
        return {
          messageId: message.id,
          body: message.body,
          receiveCount: message.receiveCount,
          sentAt: new Date(message.sentAt),
          firstReceivedAt: new Date(message.firstReceivedAt),
          receipt: message.receipt,
        };
      });
    });
  }

  ack(queue: string, receipts: readonly string[]): Promise<number> {
    return this.#do(() => {
      const stored = this.#existing(queue);
      let count = 0;
      for (const message of this.#byReceipts(stored, receipts)) {
        stored.messages.delete(message.id);
        count += 1;
      }
      return count;
    });
  }

  release(queue: string, receipts: readonly string[]): Promise<number> {
    return this.#do(() => {
      const stored = this.#existing(queue);
      const now = this.#now();
      let count = 0;
      for (const message of this.#byReceipts(stored, receipts)) {
        message.visibleAt = now;
        message.receipt = null;
        count += 1;
      }
      return count;
    });
  }

  stats(queue: string): Promise<MessageQueueStats> {
    return this.#do(() => this.#stats(this.#existing(queue), this.#now()));
  }

  listStats(): Promise<MessageQueueStats[]> {
    return this.#do(() => {
      const now = this.#now();
      return [...this.#queues.values()].map((queue) => this.#stats(queue, now)).sort(byName);
    });
  }

  purge(queue: string): Promise<number> {
    return this.#do(() => {
      const stored = this.#existing(queue);
      const count = stored.messages.size;
      stored.messages.clear();
      return count;
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #stats(queue: StoredQueue, now: number): MessageQueueStats {
    let depth = 0;
    let inFlight = 0;
    let oldest = Number.POSITIVE_INFINITY;
    for (const message of queue.messages.values()) {
      if (message.visibleAt <= now) depth += 1;
      else inFlight += 1;
      oldest = Math.min(oldest, message.sentAt);
    }
    return {
      name: queue.info.name,
      depth,
      inFlight,
      oldestSentAt: oldest === Number.POSITIVE_INFINITY ? null : new Date(oldest),
    };
  }

  *#byReceipts(queue: StoredQueue, receipts: readonly string[]): Generator<StoredMessage> {
    const wanted = new Set(validateReceipts(receipts));
    if (wanted.size === 0) return;
    for (const message of [...queue.messages.values()]) {
      if (message.receipt !== null && wanted.has(message.receipt)) yield message;
    }
  }

  #existing(name: string): StoredQueue {
    validateQueueName(name);
    const queue = this.#queues.get(name);
    if (queue === undefined) throw queueNotFound(name);
    return queue;
  }

  #do<T>(operation: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new PlatformError('UNAVAILABLE', 'the message queues are closed'));
    try {
      return Promise.resolve(operation());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
