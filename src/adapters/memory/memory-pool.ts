/* eslint-disable @typescript-eslint/require-await --
   The port is async; this adapter is synchronous inside, and `async` turns its throws into rejections. */
import { PlatformError } from '../../core/errors.js';
import type { CheckoutOptions, Pool, PoolItem, WaitOptions } from '../../core/ports/pool.js';
import { retiredKeyTtlMs } from '../../core/ports/pool.js';
import { copyInstance, poolKey } from '../../core/types.js';
import type { InstanceRef, SerializedError } from '../../core/types.js';

export interface MemoryPoolOptions {
  /** Clock for `idleSince` and lease expiry (ms since epoch); tests inject a fake one. Wait timeouts use real timers. */
  now?: () => number;
}

interface Waiter {
  key: string;
  holder: string;
  leaseMs: number;
  /** Settles the waiter exactly once: removes its timer and abort listener, then resolves. */
  settle: (item: PoolItem | null) => void;
}

interface Lease {
  key: string;
  instance: InstanceRef;
  holder: string;
  expiresAt: number;
}

interface KeyState {
  /** Idle instances in push order; the last one is the most recently pushed. */
  idle: InstanceRef[];
  /** Blocked waiters, oldest first. Only live waiters are here: a settled one is removed at once. */
  waiters: Waiter[];
}

/**
 * In-process Pool for embedded mode. Everything runs on one thread, so every method body is atomic; an instance
 * handed to a waiter is taken out of the waiter list in the same synchronous step, which is what guarantees that a
 * timed-out or aborted waiter never receives (and loses) an instance.
 */
export class MemoryPool implements Pool {
  readonly #now: () => number;
  readonly #keys = new Map<string, KeyState>();
  /** Checked-out instances by id. */
  readonly #leases = new Map<string, Lease>();
  /** Idle instance ids, to refuse an instance pushed twice. */
  readonly #idleIds = new Set<string>();
  /** Retired keys and until when they refuse instances (ms since epoch). */
  readonly #retired = new Map<string, number>();
  #closed = false;

  constructor(options: MemoryPoolOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  async checkout(key: string, options: CheckoutOptions): Promise<InstanceRef | null> {
    this.#assertOpen();
    return this.#takeIdle(key, options);
  }

  async wait(key: string, options: WaitOptions): Promise<PoolItem | null> {
    this.#assertOpen();
    const { signal } = options;
    if (signal?.aborted) return null;
    // BLPOP semantics: an instance that went idle between the caller's checkout and this wait is taken at once.
    const instance = this.#takeIdle(key, options);
    if (instance) return { kind: 'instance', instance };
    if (options.timeoutMs <= 0) return null;

    return new Promise<PoolItem | null>((resolve) => {
      const state = this.#state(key);
      const onAbort = (): void => expire();
      const timer = setTimeout(() => expire(), options.timeoutMs);
      const waiter: Waiter = {
        key,
        holder: options.holder,
        leaseMs: options.leaseMs,
        settle: (item) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(item);
        },
      };
      const expire = (): void => {
        const index = state.waiters.indexOf(waiter);
        if (index === -1) return; // already served or closed
        state.waiters.splice(index, 1);
        this.#dropIfEmpty(key, state);
        waiter.settle(null);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      state.waiters.push(waiter);
    });
  }

  async push(instance: InstanceRef): Promise<boolean> {
    this.#assertOpen();
    if (this.#isRetired(poolKey(instance))) {
      this.#leases.delete(instance.instanceId);
      return false;
    }
    // Already idle: pushed twice (a gateway returning an instance the Manager restored meanwhile); keep it once.
    if (this.#idleIds.has(instance.instanceId)) return true;
    this.#place(instance);
    return true;
  }

  async restore(instances: InstanceRef[]): Promise<InstanceRef[]> {
    this.#assertOpen();
    const restored: InstanceRef[] = [];
    for (const instance of instances) {
      const { instanceId } = instance;
      if (this.#idleIds.has(instanceId) || this.#leases.has(instanceId) || this.#isRetired(poolKey(instance))) continue;
      restored.push(copyInstance(this.#place(instance)));
    }
    return restored;
  }

  /**
   * Ends the instance's lease, if any, and hands it to the oldest waiter or makes it idle; returns the stored object
   * (callers that hand it out copy it).
   */
  #place(instance: InstanceRef): InstanceRef {
    const { instanceId } = instance;
    this.#leases.delete(instanceId);
    const key = poolKey(instance);
    const pushed = copyInstance(instance, { idleSince: this.#now() });
    const waiter = this.#shiftWaiter(key);
    if (waiter) {
      this.#lease(key, pushed, waiter);
      waiter.settle({ kind: 'instance', instance: copyInstance(pushed) });
      return pushed;
    }
    this.#state(key).idle.push(pushed);
    this.#idleIds.add(instanceId);
    return pushed;
  }

  async pushFailure(key: string, error: SerializedError): Promise<boolean> {
    this.#assertOpen();
    const waiter = this.#shiftWaiter(key);
    if (!waiter) return false;
    waiter.settle({ kind: 'failure', error: { ...error } });
    return true;
  }

  async release(instanceId: string): Promise<void> {
    this.#assertOpen();
    this.#leases.delete(instanceId);
  }

  /** No-op when the instance is not checked out (returned, released or reclaimed meanwhile). */
  async renew(instanceId: string, leaseMs: number): Promise<void> {
    this.#assertOpen();
    const lease = this.#leases.get(instanceId);
    if (lease) lease.expiresAt = this.#now() + leaseMs;
  }

  async reapIdle(key: string, idleBefore: number, keep: number): Promise<InstanceRef[]> {
    this.#assertOpen();
    const state = this.#keys.get(key);
    if (!state) return [];
    const removable = Math.max(0, state.idle.length - Math.max(0, keep));
    const reaped = state.idle
      .filter((instance) => instance.idleSince < idleBefore)
      .sort((a, b) => a.idleSince - b.idleSince)
      .slice(0, removable);
    if (reaped.length === 0) return [];
    const ids = new Set(reaped.map((instance) => instance.instanceId));
    state.idle = state.idle.filter((instance) => !ids.has(instance.instanceId));
    for (const id of ids) this.#idleIds.delete(id);
    this.#dropIfEmpty(key, state);
    return reaped.map((instance) => copyInstance(instance));
  }

  async drain(key: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    const state = this.#keys.get(key);
    if (!state) return [];
    const drained = state.idle;
    state.idle = [];
    for (const instance of drained) this.#idleIds.delete(instance.instanceId);
    this.#dropIfEmpty(key, state);
    return drained;
  }

  async retire(key: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    const now = this.#now();
    for (const [retired, until] of this.#retired) if (until <= now) this.#retired.delete(retired);
    this.#retired.set(key, now + retiredKeyTtlMs);
    return this.drain(key);
  }

  async purgeNode(nodeId: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    const purged: InstanceRef[] = [];
    for (const [key, state] of this.#keys) {
      const kept: InstanceRef[] = [];
      for (const instance of state.idle) {
        if (instance.nodeId === nodeId) {
          purged.push(instance);
          this.#idleIds.delete(instance.instanceId);
        } else {
          kept.push(instance);
        }
      }
      state.idle = kept;
      this.#dropIfEmpty(key, state);
    }
    for (const [id, lease] of this.#leases) {
      if (lease.instance.nodeId !== nodeId) continue;
      this.#leases.delete(id);
      purged.push(lease.instance);
    }
    return purged;
  }

  async reclaimExpired(now: number): Promise<InstanceRef[]> {
    this.#assertOpen();
    const reclaimed: InstanceRef[] = [];
    for (const [id, lease] of this.#leases) {
      if (lease.expiresAt >= now) continue;
      this.#leases.delete(id);
      reclaimed.push(lease.instance);
    }
    return reclaimed;
  }

  async stats(key: string): Promise<{ idle: number; checkedOut: number; waiters: number }> {
    this.#assertOpen();
    const state = this.#keys.get(key);
    let checkedOut = 0;
    for (const lease of this.#leases.values()) if (lease.key === key) checkedOut++;
    return { idle: state?.idle.length ?? 0, checkedOut, waiters: state?.waiters.length ?? 0 };
  }

  async instances(key: string): Promise<{ idle: number; checkedOut: number }> {
    const { idle, checkedOut } = await this.stats(key);
    return { idle, checkedOut };
  }

  async keys(): Promise<string[]> {
    this.#assertOpen();
    const keys = new Set<string>();
    for (const [key, state] of this.#keys) if (state.idle.length > 0) keys.add(key);
    for (const lease of this.#leases.values()) keys.add(lease.key);
    return [...keys];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const waiters = [...this.#keys.values()].flatMap((state) => state.waiters);
    this.#keys.clear();
    this.#leases.clear();
    this.#idleIds.clear();
    this.#retired.clear();
    for (const waiter of waiters) waiter.settle(null);
  }

  /**
   * LIFO on purpose: always reusing the most recently returned instance keeps a few instances hot and lets the
   * surplus ones sit at the bottom of the list until they reach their idle timeout and are reaped.
   */
  #takeIdle(key: string, options: CheckoutOptions): InstanceRef | null {
    const state = this.#keys.get(key);
    const instance = state?.idle.pop();
    if (!state || !instance) return null;
    this.#idleIds.delete(instance.instanceId);
    this.#lease(key, instance, options);
    this.#dropIfEmpty(key, state);
    return copyInstance(instance);
  }

  #isRetired(key: string): boolean {
    const until = this.#retired.get(key);
    return until !== undefined && until > this.#now();
  }

  #lease(key: string, instance: InstanceRef, options: CheckoutOptions): void {
    this.#leases.set(instance.instanceId, {
      key,
      instance,
      holder: options.holder,
      expiresAt: this.#now() + options.leaseMs,
    });
  }

  #shiftWaiter(key: string): Waiter | undefined {
    const state = this.#keys.get(key);
    if (!state) return undefined;
    const waiter = state.waiters.shift();
    this.#dropIfEmpty(key, state);
    return waiter;
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (!state) {
      state = { idle: [], waiters: [] };
      this.#keys.set(key, state);
    }
    return state;
  }

  #dropIfEmpty(key: string, state: KeyState): void {
    if (state.idle.length === 0 && state.waiters.length === 0 && this.#keys.get(key) === state) this.#keys.delete(key);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'pool is closed');
  }
}
