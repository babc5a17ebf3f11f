/* eslint-disable @typescript-eslint/require-await --
   The port is async; this adapter is synchronous inside, and `async` turns its throws into rejections. */
import { randomUUID } from 'node:crypto';

import { PlatformError } from '../../core/errors.js';
import type { CheckoutOptions, Pool, PoolItem, WaitOptions } from '../../core/ports/pool.js';
import { retiredKeyTtlMs } from '../../core/ports/pool.js';
import { PoolReplica } from '../../core/pool-replica.js';
import type { PoolChange, PoolSnapshot, PoolWaiterRecord } from '../../core/pool-replica.js';
import { copyInstance, poolKey } from '../../core/types.js';
import type { InstanceRef, SerializedError } from '../../core/types.js';

/**
 * How long past its deadline a detached waiter (one a handover snapshot brought) waits for its forwarded wait to
 * attach before it is dropped and any instance kept for it goes back to the pool.
 */
export const detachedWaiterGraceMs = 2_000;

export interface MemoryPoolOptions {
  /** Clock for `idleSince` and lease expiry (ms since epoch); tests inject a fake one. Wait timeouts use real timers. */
  now?: () => number;
  /**
   * Told every change of the pool's state, synchronously and in order, before the method that made it returns (the
   * control-plane leader numbers and streams them to its followers). `close` is not a change.
   */
  onChange?: ((change: PoolChange) => void) | undefined;
  /**
   * Start from this state (a handover): its idle instances, leases and retired keys, and its waiters as detached
   * waiters, in their places, until the waits they stand for attach with their ids.
   */
  snapshot?: PoolSnapshot | undefined;
}

/** `wait`'s options here: a wait may name its waiter, to take the place of a detached waiter of that id. */
export type MemoryPoolWaitOptions = WaitOptions & { waiterId?: string | undefined };

interface Waiter {
  readonly id: string;
  readonly key: string;
  readonly holder: string;
  readonly leaseMs: number;
  /** When it times out (ms since epoch, by the pool's clock). */
  deadline: number;
  /**
   * While a wait is attached: settles it exactly once (removes its timer and abort listener, then resolves or
   * rejects). Absent while detached.
   */
  settle: ((item: PoolItem | null, error?: Error) => void) | undefined;
  /** While detached: drops it at its deadline plus `detachedWaiterGraceMs`. */
  dropTimer: NodeJS.Timeout | undefined;
  /** Served while detached: the item kept for the wait that attaches (an instance is leased to `holder`). */
  kept: PoolItem | undefined;
}

/**
 * In-process Pool for embedded mode and for the control-plane leader. Everything runs on one thread, so every method
 * body is atomic; an instance handed to a waiter is taken out of the waiter list in the same synchronous step, which
 * is what guarantees that a timed-out or aborted waiter never receives (and loses) an instance.
 *
 * Its state (idle instances, leases, retired keys) lives in a `PoolReplica` and changes only through `#apply`,
 * which changes it and reports the change to `onChange` in the same step: what followers apply is what this pool did.
 * Waiters are not replicated; a handover snapshot carries them, and the successor keeps them detached (see `wait`).
 */
export class MemoryPool implements Pool {
  readonly #now: () => number;
  readonly #onChange: ((change: PoolChange) => void) | undefined;
  readonly #state: PoolReplica;
  /** Waiters per key, oldest first: live and detached ones. A settled or dropped one is removed at once. */
  readonly #waiters = new Map<string, Waiter[]>();
  /** Every waiter by id: those in `#waiters`, and detached ones served and keeping an item. */
  readonly #byId = new Map<string, Waiter>();
  #closed = false;

  constructor(options: MemoryPoolOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange;
    this.#state = new PoolReplica(options.snapshot);
    for (const record of options.snapshot?.waiters ?? []) this.#detached(record);
  }

  async checkout(key: string, options: CheckoutOptions): Promise<InstanceRef | null> {
    this.#assertOpen();
    return this.#takeIdle(key, options);
  }

  /**
   * Waits as the port says. With a `waiterId` naming a waiter this pool holds (a detached one from a handover, or the
   * earlier wait of a caller that re-issues it), the wait takes that waiter's place: it gets the item kept for it at
   * once, or waits in its place in the queue (an earlier wait still attached to it resolves null).
   */
  async wait(key: string, options: MemoryPoolWaitOptions): Promise<PoolItem | null> {
    this.#assertOpen();
    const { signal, waiterId } = options;
    if (signal?.aborted) return null;
    const existing = waiterId === undefined ? undefined : this.#byId.get(waiterId);
    if (existing?.kept) {
      const item = this.#claim(existing);
      if (item) return item;
    } else if (existing && existing.key === key && options.timeoutMs > 0) {
      return new Promise<PoolItem | null>((resolve, reject) => this.#attach(existing, options, resolve, reject));
    } else if (existing) {
      this.#unlist(existing);
      this.#forget(existing);
      existing.settle?.(null);
    }
    // BLPOP semantics: an instance that went idle between the caller's checkout and this wait is taken at once.
    const instance = this.#takeIdle(key, options);
    if (instance) return { kind: 'instance', instance };
    if (options.timeoutMs <= 0) return null;

    return new Promise<PoolItem | null>((resolve, reject) => {
      const waiter: Waiter = {
        id: waiterId ?? randomUUID(),
        key,
        holder: options.holder,
        leaseMs: options.leaseMs,
        deadline: 0,
        settle: undefined,
        dropTimer: undefined,
        kept: undefined,
      };
      this.#list(waiter);
      this.#attach(waiter, options, resolve, reject);
    });
  }

  async push(instance: InstanceRef): Promise<boolean> {
    this.#assertOpen();
    return this.#return(instance);
  }

  async restore(instances: InstanceRef[]): Promise<InstanceRef[]> {
    this.#assertOpen();
    const restored: InstanceRef[] = [];
    for (const instance of instances) {
      const { instanceId } = instance;
      if (this.#state.isIdle(instanceId) || this.#state.lease(instanceId) || this.#isRetired(poolKey(instance))) {
        continue;
      }
      restored.push(this.#place(instance));
    }
    return restored;
  }

  async pushFailure(key: string, error: SerializedError): Promise<boolean> {
    this.#assertOpen();
    const waiter = this.#shiftWaiter(key);
    if (!waiter) return false;
    this.#serve(waiter, { kind: 'failure', error: { ...error } });
    return true;
  }

  async release(instanceId: string): Promise<void> {
    this.#assertOpen();
    if (this.#state.lease(instanceId)) this.#apply({ op: 'remove', instanceIds: [instanceId] });
  }

  /** No-op when the instance is not checked out (returned, released or reclaimed meanwhile). */
  async renew(instanceId: string, leaseMs: number): Promise<void> {
    this.#assertOpen();
    if (this.#state.lease(instanceId)) this.#apply({ op: 'renew', instanceId, expiresAt: this.#now() + leaseMs });
  }

  async reapIdle(key: string, idleBefore: number, keep: number): Promise<InstanceRef[]> {
    this.#assertOpen();
    const idle = this.#state.idle(key);
    const removable = Math.max(0, idle.length - Math.max(0, keep));
    const reaped = idle
      .filter((instance) => instance.idleSince < idleBefore)
      .sort((a, b) => a.idleSince - b.idleSince)
      .slice(0, removable)
      .map((instance) => copyInstance(instance));
    this.#remove(reaped);
    return reaped;
  }

  async drain(key: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    const drained = this.#state.idle(key).map((instance) => copyInstance(instance));
    this.#remove(drained);
    return drained;
  }

  async retire(key: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    const now = this.#now();
    this.#apply({ op: 'retire', key, until: now + retiredKeyTtlMs, now });
    return this.drain(key);
  }

  async purgeNode(nodeId: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    const purged: InstanceRef[] = [];
    for (const key of this.#state.idleKeys()) {
      for (const instance of this.#state.idle(key)) if (instance.nodeId === nodeId) purged.push(copyInstance(instance));
    }
    for (const lease of this.#state.leases()) {
      if (lease.instance.nodeId === nodeId) purged.push(copyInstance(lease.instance));
    }
    this.#remove(purged);
    return purged;
  }

  async reclaimExpired(now: number): Promise<InstanceRef[]> {
    this.#assertOpen();
    const reclaimed: InstanceRef[] = [];
    for (const lease of this.#state.leases()) if (lease.expiresAt < now) reclaimed.push(copyInstance(lease.instance));
    this.#remove(reclaimed);
    return reclaimed;
  }

  async stats(key: string): Promise<{ idle: number; checkedOut: number; waiters: number }> {
    this.#assertOpen();
    let checkedOut = 0;
    for (const lease of this.#state.leases()) if (lease.key === key) checkedOut++;
    return { idle: this.#state.idle(key).length, checkedOut, waiters: this.#waiters.get(key)?.length ?? 0 };
  }

  async instances(key: string): Promise<{ idle: number; checkedOut: number }> {
    const { idle, checkedOut } = await this.stats(key);
    return { idle, checkedOut };
  }

  async keys(): Promise<string[]> {
    this.#assertOpen();
    const keys = new Set<string>(this.#state.idleKeys());
    for (const lease of this.#state.leases()) keys.add(lease.key);
    return [...keys];
  }

  /**
   * The whole state, waiters included: live ones and detached ones, oldest first per key, each with the time it
   * times out (a detached waiter served meanwhile carries the item kept for it).
   */
  snapshot(): PoolSnapshot {
    const waiters: PoolWaiterRecord[] = [];
    for (const list of this.#waiters.values()) for (const waiter of list) waiters.push(waiterRecord(waiter));
    for (const waiter of this.#byId.values()) if (waiter.kept) waiters.push(waiterRecord(waiter));
    return { ...this.#state.snapshot(), waiters };
  }

  /**
   * Ends every wait with `error` and forgets all waiters, keeping the state: it went to another pool (a handover)
   * that holds these waiters detached, and the callers re-issue their waits there under the same ids.
   */
  handOff(error: Error): void {
    const waiters = [...this.#byId.values()];
    this.#waiters.clear();
    this.#byId.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.dropTimer);
      waiter.settle?.(null, error);
    }
  }

  /** Ends every wait (they resolve null). Not a change of the state: nothing is reported to `onChange`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const waiters = [...this.#byId.values()];
    this.#waiters.clear();
    this.#byId.clear();
    for (const waiter of waiters) {
      clearTimeout(waiter.dropTimer);
      waiter.settle?.(null);
    }
  }

  /** Changes the state and reports the change, in one step. */
  #apply(change: PoolChange): void {
    this.#state.apply(change);
    this.#onChange?.(change);
  }

  /** `push`: refused for a retired key (its lease ends), kept once when already idle, else placed. */
  #return(instance: InstanceRef): boolean {
    const { instanceId } = instance;
    if (this.#isRetired(poolKey(instance))) {
      if (this.#state.lease(instanceId)) this.#apply({ op: 'remove', instanceIds: [instanceId] });
      return false;
    }
    // Already idle: pushed twice (a gateway returning an instance the Manager restored meanwhile); keep it once.
    if (this.#state.isIdle(instanceId)) return true;
    this.#place(instance);
    return true;
  }

  /** Ends the instance's lease, if any, and hands it to the oldest waiter or makes it idle; returns a copy. */
  #place(instance: InstanceRef): InstanceRef {
    const pushed = copyInstance(instance, { idleSince: this.#now() });
    const waiter = this.#shiftWaiter(poolKey(instance));
    if (waiter) {
      this.#apply({ op: 'lease', instance: pushed, holder: waiter.holder, expiresAt: this.#now() + waiter.leaseMs });
      this.#serve(waiter, { kind: 'instance', instance: copyInstance(pushed) });
    } else {
      this.#apply({ op: 'idle', instances: [pushed] });
    }
    return copyInstance(pushed);
  }

  /** Removes instances (idle or checked out) in one change. */
  #remove(instances: InstanceRef[]): void {
    if (instances.length > 0) this.#apply({ op: 'remove', instanceIds: instances.map((i) => i.instanceId) });
  }

  /**
   * LIFO on purpose: always reusing the most recently returned instance keeps a few instances hot and lets the
   * surplus ones sit at the bottom of the list until they reach their idle timeout and are reaped.
   */
  #takeIdle(key: string, options: CheckoutOptions): InstanceRef | null {
    const instance = this.#state.idle(key).at(-1);
    if (!instance) return null;
    const taken = copyInstance(instance);
    this.#apply({
      op: 'take',
      instanceId: instance.instanceId,
      holder: options.holder,
      expiresAt: this.#now() + options.leaseMs,
    });
    return taken;
  }

  #isRetired(key: string): boolean {
    const until = this.#state.retiredUntil(key);
    return until !== undefined && until > this.#now();
  }

  /** Hands a waiter (already out of its list) its item: at once when a wait is attached, else kept for it. */
  #serve(waiter: Waiter, item: PoolItem): void {
    if (waiter.settle) {
      this.#forget(waiter);
      waiter.settle(item);
    } else {
      waiter.kept = item;
    }
  }

  /**
   * The item kept for a detached waiter, for the wait that attached, or null when the instance left the pool (or
   * its lease changed hands) meanwhile: the wait then goes on as a new one.
   */
  #claim(waiter: Waiter): PoolItem | null {
    const item = waiter.kept!;
    this.#forget(waiter);
    if (item.kind === 'failure') return { kind: 'failure', error: { ...item.error } };
    const lease = this.#state.lease(item.instance.instanceId);
    if (lease?.holder !== waiter.holder) return null;
    return { kind: 'instance', instance: copyInstance(lease.instance) };
  }

  /** Attaches a wait to a listed waiter, in its place, for `timeoutMs` from now. */
  #attach(
    waiter: Waiter,
    options: MemoryPoolWaitOptions,
    resolve: (item: PoolItem | null) => void,
    reject: (error: Error) => void,
  ): void {
    const { signal } = options;
    waiter.settle?.(null); // an earlier wait under the same id, superseded
    clearTimeout(waiter.dropTimer);
    waiter.dropTimer = undefined;
    waiter.deadline = this.#now() + options.timeoutMs;
    const expire = (): void => {
      if (!this.#unlist(waiter)) return; // already served, superseded or closed
      this.#forget(waiter);
      settle(null);
    };
    const timer = setTimeout(expire, options.timeoutMs);
    const settle = (item: PoolItem | null, error?: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', expire);
      if (waiter.settle === settle) waiter.settle = undefined;
      if (error) reject(error);
      else resolve(item);
    };
    waiter.settle = settle;
    signal?.addEventListener('abort', expire, { once: true });
  }

  /** A waiter from a handover snapshot: listed in its place (or keeping its item) until a wait attaches. */
  #detached(record: PoolWaiterRecord): void {
    const waiter: Waiter = {
      id: record.id,
      key: record.key,
      holder: record.holder,
      leaseMs: record.leaseMs,
      deadline: record.deadline,
      settle: undefined,
      dropTimer: undefined,
      kept: record.item,
    };
    if (!waiter.kept) this.#list(waiter);
    else this.#byId.set(waiter.id, waiter);
    const dropIn = Math.max(0, record.deadline + detachedWaiterGraceMs - this.#now());
    waiter.dropTimer = setTimeout(() => this.#drop(waiter), dropIn);
    waiter.dropTimer.unref();
  }

  /** No wait attached to a detached waiter in time: it goes, and an instance kept for it goes back to the pool. */
  #drop(waiter: Waiter): void {
    if (this.#closed || this.#byId.get(waiter.id) !== waiter || waiter.settle) return;
    this.#unlist(waiter);
    this.#forget(waiter);
    const { kept } = waiter;
    if (kept?.kind !== 'instance') return;
    const lease = this.#state.lease(kept.instance.instanceId);
    if (lease?.holder === waiter.holder) this.#return(lease.instance);
  }

  #list(waiter: Waiter): void {
    let list = this.#waiters.get(waiter.key);
    if (!list) {
      list = [];
      this.#waiters.set(waiter.key, list);
    }
    list.push(waiter);
    this.#byId.set(waiter.id, waiter);
  }

  /** Takes a waiter out of its key's list; false when it was not in it. */
  #unlist(waiter: Waiter): boolean {
    const list = this.#waiters.get(waiter.key);
    const index = list ? list.indexOf(waiter) : -1;
    if (!list || index === -1) return false;
    list.splice(index, 1);
    if (list.length === 0) this.#waiters.delete(waiter.key);
    return true;
  }

  #forget(waiter: Waiter): void {
    clearTimeout(waiter.dropTimer);
    if (this.#byId.get(waiter.id) === waiter) this.#byId.delete(waiter.id);
  }

  /** The oldest waiter on `key`, out of its list (still known by id: `#serve` decides). */
  #shiftWaiter(key: string): Waiter | undefined {
    const list = this.#waiters.get(key);
    const waiter = list?.shift();
    if (list?.length === 0) this.#waiters.delete(key);
    return waiter;
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'pool is closed');
  }
}

function waiterRecord(waiter: Waiter): PoolWaiterRecord {
  const record: PoolWaiterRecord = {
    id: waiter.id,
    key: waiter.key,
    holder: waiter.holder,
    leaseMs: waiter.leaseMs,
    deadline: waiter.deadline,
  };
  if (waiter.kept) record.item = structuredClone(waiter.kept);
  return record;
}
