/* eslint-disable @typescript-eslint/require-await --
   The port is async; this adapter is synchronous inside, and `async` turns its throws into rejections. */
import { PlatformError } from '../../core/errors.js';
import { QueueReplica } from '../../core/pool-replica.js';
import type { QueueChange, QueueSnapshot } from '../../core/pool-replica.js';
import type { ProvisionQueue } from '../../core/ports/provision-queue.js';
import type { ProvisionRequest } from '../../core/types.js';

export interface MemoryProvisionQueueOptions {
  /** Most requests held at once; `push` returns false beyond it. Default 1000. */
  capacity?: number;
  /**
   * Told every change of the queue's state, synchronously and in order, before the method that made it returns. A
   * request handed straight to a blocked consumer is not a change (it never sat in the queue); nor is `close`.
   */
  onChange?: ((change: QueueChange) => void) | undefined;
  /** Start from this state (a handover, or a follower's copy). */
  snapshot?: QueueSnapshot | undefined;
}

type Consumer = (request: ProvisionRequest | null) => void;

/**
 * In-process ProvisionQueue for embedded mode and for the control-plane leader. Method bodies are synchronous, so a
 * request handed to a blocked consumer leaves the consumer list in the same step: it is never lost, never delivered
 * twice, and never handed to a consumer that already timed out or was aborted.
 *
 * Its requests live in a `QueueReplica` and change only through `#apply`, which changes them and reports the change
 * in one step.
 */
export class MemoryProvisionQueue implements ProvisionQueue {
  readonly capacity: number;
  readonly #onChange: ((change: QueueChange) => void) | undefined;
  readonly #state: QueueReplica;
  /** Blocked `pop` calls, oldest first. */
  readonly #consumers: Consumer[] = [];
  #closed = false;

  constructor(options: MemoryProvisionQueueOptions = {}) {
    const capacity = options.capacity ?? 1000;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new PlatformError('BAD_REQUEST', `provision queue capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#onChange = options.onChange;
    this.#state = new QueueReplica(options.snapshot);
  }

  async push(request: ProvisionRequest): Promise<boolean> {
    this.#assertOpen();
    // Consumers only block while the queue is empty, so the oldest consumer is served before anything queued.
    const consumer = this.#consumers.shift();
    if (consumer) {
      consumer({ ...request });
      return true;
    }
    if (this.#state.size >= this.capacity) return false;
    this.#apply({ op: 'enqueue', request: { ...request } });
    return true;
  }

  async pop(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null> {
    this.#assertOpen();
    if (signal?.aborted) return null;
    const head = this.#state.head();
    if (head) {
      const request = { ...head };
      this.#apply({ op: 'dequeue' });
      return request;
    }
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
    return this.#state.size;
  }

  /** The queued requests, oldest first. */
  snapshot(): QueueSnapshot {
    return this.#state.snapshot();
  }

  /** Ends blocked `pop` calls (they resolve null). Not a change of the state: nothing is reported to `onChange`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const consumer of this.#consumers.splice(0)) consumer(null);
  }

  /** Changes the state and reports the change, in one step. */
  #apply(change: QueueChange): void {
    this.#state.apply(change);
    this.#onChange?.(change);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'provision queue is closed');
  }
}
