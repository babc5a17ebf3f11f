import type { ProvisionRequest } from '../types.js';

/**
 * Bounded FIFO of provisioning requests between Gateways (producers) and Managers (consumers).
 * `push` refuses when full so the caller can answer 429 instead of queueing without bound.
 */
export interface ProvisionQueue {
  /** Enqueue; returns false when the queue is at capacity. */
  push(request: ProvisionRequest): Promise<boolean>;
  /** Take the oldest request, blocking up to `timeoutMs`; null on timeout or abort. */
  pop(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null>;
  size(): Promise<number>;
  readonly capacity: number;
  close(): Promise<void>;
}
