import type { InstanceRef, SerializedError } from '../types.js';

/**
 * What a waiter receives from the pool: an instance, or a provisioning failure
 * that the Manager pushed so that a cold request fails fast instead of timing out.
 */
export type PoolItem = { kind: 'instance'; instance: InstanceRef } | { kind: 'failure'; error: SerializedError };

export interface CheckoutOptions {
  /** Who holds the lease (a gateway id). */
  holder: string;
  /** Lease duration; an unreturned instance past it is reported by `reclaimExpired`. */
  leaseMs: number;
}

export interface WaitOptions extends CheckoutOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Warm pool of idle sandboxes, one list per pool key (`fn:incarnation@version`, see `poolKey`). Checkout order is
 * the adapter's choice (the memory adapter takes the most recently returned instance so surplus ones idle out);
 * waiters are always served first-come first-served.
 *
 * Invariants every adapter holds (tested by `test/contracts/pool.contract.ts`):
 * - an instance is either idle in the pool or checked out, never both, and is never handed to two callers;
 * - blocked waiters are served first-come first-served; a pushed instance goes to the oldest waiter;
 * - a waiter is served by whichever comes first: a newly created instance or a returned one;
 * - idle reaping and purges never remove a checked-out instance;
 * - `push` of an instance that is already idle and `restore` of an instance the pool holds change nothing;
 * - once a key is retired, no instance of it is ever added again (`push` and `restore` refuse it).
 */
export interface Pool {
  /** Atomically take an idle instance, or null when the pool is empty. Never blocks. */
  checkout(key: string, options: CheckoutOptions): Promise<InstanceRef | null>;
  /**
   * Block until an instance (or provisioning failure) is pushed for `key`, FIFO among waiters.
   * Resolves null on timeout or abort; the waiter is then removed and can never receive an item.
   */
  wait(key: string, options: WaitOptions): Promise<PoolItem | null>;
  /**
   * Add a new instance or give a checked-out one back (ends its lease); hands it to the oldest waiter if any.
   * Pushing an instance that is already idle does nothing: it stays idle once. Returns false, holding nothing of
   * the instance any more, when its key was retired: the caller destroys the sandbox.
   */
  push(instance: InstanceRef): Promise<boolean>;
  /**
   * Put back instances the pool lost (Redis restarted empty): each one the pool holds neither idle nor checked out
   * is added as `push` adds it (to the oldest waiter, else idle); the others, and instances of retired keys, are left
   * as they are. Returns those added. The Manager calls it with the idle sandboxes its Agent reports, so that pools are rebuilt from them.
   */
  restore(instances: InstanceRef[]): Promise<InstanceRef[]>;
  /** Wake the oldest waiter on `key` with a provisioning failure; dropped when nobody waits. Returns whether delivered. */
  pushFailure(key: string, error: SerializedError): Promise<boolean>;
  /** Forget a checked-out instance that will not come back (destroyed after a timeout, crash...). */
  release(instanceId: string): Promise<void>;
  /** Extend the lease of a checked-out instance. */
  renew(instanceId: string, leaseMs: number): Promise<void>;
  /** Remove and return idle instances of `key` idle since before `idleBefore`, keeping at least `keep` idle ones. */
  reapIdle(key: string, idleBefore: number, keep: number): Promise<InstanceRef[]>;
  /** Remove and return every idle instance of `key` (a version no longer current). */
  drain(key: string): Promise<InstanceRef[]>;
  /**
   * `drain`, and refuse instances of `key` from now on (its function was deleted): checked-out instances pushed back
   * later are refused, so they are destroyed instead of pooled. The refusal lasts at least `retiredKeyTtlMs`, longer
   * than any lease; an instance pushed after that goes idle under a key nobody asks for and the Manager drains it.
   */
  retire(key: string): Promise<InstanceRef[]>;
  /** Remove and return every instance (idle or checked out) on a node that left. */
  purgeNode(nodeId: string): Promise<InstanceRef[]>;
  /** Remove and return checked-out instances whose lease expired before `now`. */
  reclaimExpired(now: number): Promise<InstanceRef[]>;
  /** Counts for one key: idle instances, checked-out instances, blocked waiters. */
  stats(key: string): Promise<{ idle: number; checkedOut: number; waiters: number }>;
  /** `stats` without the waiters, which cost more to count (the invoke path asks this on every pool miss). */
  instances(key: string): Promise<{ idle: number; checkedOut: number }>;
  /** Keys that currently have idle or checked-out instances. */
  keys(): Promise<string[]>;
  close(): Promise<void>;
}

/** How long a retired pool key refuses instances: an hour, longer than the longest lease (timeout + 60 s). */
export const retiredKeyTtlMs = 60 * 60 * 1000;
