/* eslint-disable @typescript-eslint/require-await --
   The port is async; this adapter is synchronous inside, and `async` turns its throws into rejections. */
import { PlatformError } from '../../core/errors.js';
import type { ProvisionQueue } from '../../core/ports/provision-queue.js';
import type { ProvisionRequest } from '../../core/types.js';

export interface MemoryProvisionQueueOptions {
  /** Most requests held at once; `push` returns false beyond it. Default 1000. */
  capacity?: number;
}

type Consumer = (request: ProvisionRequest | null) => void;

/**
 * In-process ProvisionQueue for embedded mode. Method bodies are synchronous, so a request handed to a blocked
 * consumer leaves the consumer list in the same step: it is never lost, never delivered twice, and never handed to a
 * consumer that already timed out or was aborted.
 */
export class MemoryProvisionQueue implements ProvisionQueue {
  readonly capacity: number;
  #items: ProvisionRequest[] = [];
  /** Blocked `pop` calls, oldest first. */
  readonly #consumers: Consumer[] = [];
  #closed = false;

  constructor(options: MemoryProvisionQueueOptions = {}) {
    const capacity = options.capacity ?? 1000;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new PlatformError('BAD_REQUEST', `provision queue capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  async push(request: ProvisionRequest): Promise<boolean> {
    this.#assertOpen();
    // Consumers only block while the queue is empty, so the oldest consumer is served before anything queued.
    const consumer = this.#consumers.shift();
    if (consumer) {
      consumer({ ...request });
      return true;
    }
    if (this.#items.length >= this.capacity) return false;
    this.#items.push({ ...request });
    return true;
  }

  async pop(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null> {
    this.#assertOpen();
    if (signal?.aborted) return null;
    const request = this.#items.shift();
    if (request) return request;
    if (timeoutMs <= 0) return null;

    return new Promise<ProvisionRequest | null>((resolve) => {
      const onAbort = (): void => expire();
      const timer = setTimeout(() => expire(), timeoutMs);
      const consumer: Consumer = (delivered) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(delivered);
      };
      const expire = (): void => {
        const index = this.#consumers.indexOf(consumer);
        if (index === -1) return; // already served or closed
        this.#consumers.splice(index, 1);
        consumer(null);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#consumers.push(consumer);
    });
  }

  async size(): Promise<number> {
    this.#assertOpen();
    return this.#items.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#items = [];
    for (const consumer of this.#consumers.splice(0)) consumer(null);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'provision queue is closed');
  }
}
