import { PlatformError } from '../core/errors.js';
import type { EnqueueResult, InvocationQueue } from '../core/ports/invocation-queue.js';
import { type AsyncEventOptions, encodeAsyncEvent, maxAsyncEventBytes } from './async-event.js';

/** What `submit` takes besides the function and its event. */
export interface SubmitOptions extends AsyncEventOptions {
  /** Deduplicates within 24 h: the same key for the same function gives back the first event's id. */
  idempotencyKey?: string | undefined;
  /** Not run before this many ms have passed. */
  delayMs?: number | undefined;
}

export interface AsyncInvocationsOptions {
  queue: InvocationQueue;
  /**
   * Fails with NOT_FOUND when the function, or the version or alias `qualifier` names, does not exist; BAD_REQUEST
   * for a malformed qualifier. Run before anything is queued.
   */
  check: (functionName: string, qualifier: string | undefined) => Promise<void>;
  /** An event was queued for this function: a dispatcher in this process may run it at once. */
  onQueued?: ((functionName: string) => void) | undefined;
}

/**
 * Accepts asynchronous invocations: checks the function exists and the event's size, then queues the event
 * durably. What `submit` resolves with is queued (or was queued before, for a repeated idempotency key); a dispatcher
 * runs it at least once.
 *
 * @example
 * const { id } = await asyncInvocations.submit('billing', '{"order":42}', { idempotencyKey: 'order-42' });
 */
export class AsyncInvocations {
  readonly #options: AsyncInvocationsOptions;

  constructor(options: AsyncInvocationsOptions) {
    this.#options = options;
  }

  /**
   * Queues `eventJson` (valid JSON text) for `functionName`. NOT_FOUND for an unknown function, version or alias;
   * PAYLOAD_TOO_LARGE above 1 MiB; TOO_MANY_REQUESTS when the function's queue is full.
   */
  async submit(functionName: string, eventJson: string, options: SubmitOptions = {}): Promise<EnqueueResult> {
    const bytes = Buffer.byteLength(eventJson);
    if (bytes > maxAsyncEventBytes) {
      throw new PlatformError(
        'PAYLOAD_TOO_LARGE',
        `an asynchronous invocation's event may be at most ${maxAsyncEventBytes} bytes (1 MiB), got ${bytes}`,
      );
    }
    await this.#options.check(functionName, options.qualifier);
    const { idempotencyKey, delayMs, ...envelope } = options;
    const result = await this.#options.queue.enqueue({
      functionName,
      payload: encodeAsyncEvent(eventJson, envelope),
      idempotencyKey,
      delayMs,
    });
    if (!result.duplicate) this.#options.onQueued?.(functionName);
    return result;
  }
}
