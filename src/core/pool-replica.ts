import { PlatformError } from './errors.js';
import type { PoolItem } from './ports/pool.js';
import { copyInstance, poolKey } from './types.js';
import type { InstanceRef, ProvisionRequest } from './types.js';

/**
 * The warm pool's state as plain JSON: what the control-plane leader hands its successor and its followers. Waiters
 * are in it only when the leader takes it for a handover (a follower's copy has none: their calls end with the
 * leader that held them).
 */
export interface PoolSnapshot {
  /** Idle instances per pool key, in push order (the last is the most recently pushed). */
  idle: Record<string, InstanceRef[]>;
  /** Checked-out instances. */
  leases: { instance: InstanceRef; holder: string; expiresAt: number }[];
  /** Retired keys and until when they refuse instances. */
  retired: Record<string, number>;
  /** Blocked waiters, oldest first per key. */
  waiters: PoolWaiterRecord[];
}

export interface PoolWaiterRecord {
  /** Names the waiter across a handover (the `waiterId` of its wait). */
  id: string;
  key: string;
  holder: string;
  leaseMs: number;
  /** When it times out (ms since epoch). */
  deadline: number;
  /**
   * What it was served while no wait was attached to it (an instance is then leased to `holder`): kept for the wait
   * that comes with its id. Absent while it still waits.
   */
  item?: PoolItem | undefined;
}

/**
 * One change of the pool's state, as the leader's pool makes it and its followers apply it. Applying a pool's changes
 * in order to a `PoolReplica` made from that pool's snapshot gives that pool's state (waiters aside).
 */
export type PoolChange =
  /**
   * Instances became idle (pushed, restored, or returned: their lease ends), at the end of their key's list, in this
   * order.
   */
  | { op: 'idle'; instances: InstanceRef[] }
  /** Idle instances were checked out (a checkout, or a waiter served from the idle list). */
  | { op: 'take'; instanceId: string; holder: string; expiresAt: number }
  /** A pushed instance went straight to a waiter: it is checked out by the waiter's holder (any earlier lease ends). */
  | { op: 'lease'; instance: InstanceRef; holder: string; expiresAt: number }
  /** Instances left the pool (idle ones reaped, drained or purged; checked-out ones released, reclaimed or purged). */
  | { op: 'remove'; instanceIds: string[] }
  | { op: 'renew'; instanceId: string; expiresAt: number }
  /** A key was retired until `until`; retirements that ended by `now` are forgotten. */
  | { op: 'retire'; key: string; until: number; now: number };

/** A checked-out instance. */
export interface PoolLease {
  key: string;
  instance: InstanceRef;
  holder: string;
  expiresAt: number;
}

/**
 * The pool's state (idle instances, leases, retired keys) as plain data that changes only through `apply`. A
 * follower keeps one per leader; MemoryPool keeps its own state in one, so that the changes it reports are exactly
 * the ones it made. A change that does not fit the state (an instance that is not where the change says) throws
 * CONFLICT: the copy has diverged and must start again from a snapshot.
 *
 * Instances go in and come out as copies: the replica never shares an object with a change or a snapshot.
 */
export class PoolReplica {
  /** Idle instances per key, in push order; a key with none has no entry. */
  readonly #idle = new Map<string, InstanceRef[]>();
  /** The key of each idle instance. */
  readonly #idleKeys = new Map<string, string>();
  readonly #leases = new Map<string, PoolLease>();
  readonly #retired = new Map<string, number>();

  constructor(snapshot?: PoolSnapshot) {
    if (!snapshot) return;
    for (const instances of Object.values(snapshot.idle)) this.apply({ op: 'idle', instances });
    for (const lease of snapshot.leases) this.apply({ op: 'lease', ...lease });
    for (const [key, until] of Object.entries(snapshot.retired)) this.#retired.set(key, until);
  }

  apply(change: PoolChange): void {
    switch (change.op) {
      case 'idle':
        for (const instance of change.instances) {
          const { instanceId } = instance;
          this.#leases.delete(instanceId);
          if (this.#idleKeys.has(instanceId)) this.#removeIdle([instanceId]);
          const key = poolKey(instance);
          let list = this.#idle.get(key);
          if (!list) {
            list = [];
            this.#idle.set(key, list);
          }
          list.push(copyInstance(instance));
          this.#idleKeys.set(instanceId, key);
        }
        return;
      case 'take': {
        const key = this.#idleKeys.get(change.instanceId);
        const list = key === undefined ? undefined : this.#idle.get(key);
        // Checkouts take the last one: search from the end.
        const index = list ? list.findLastIndex((instance) => instance.instanceId === change.instanceId) : -1;
        if (key === undefined || !list || index === -1) throw diverged(`instance ${change.instanceId} is not idle`);
        const [instance] = list.splice(index, 1);
        if (list.length === 0) this.#idle.delete(key);
        this.#idleKeys.delete(change.instanceId);
        this.#leases.set(change.instanceId, {
          key,
          instance: instance!,
          holder: change.holder,
          expiresAt: change.expiresAt,
        });
        return;
      }
      case 'lease': {
        const { instanceId } = change.instance;
        if (this.#idleKeys.has(instanceId)) this.#removeIdle([instanceId]);
        this.#leases.delete(instanceId);
        this.#leases.set(instanceId, {
          key: poolKey(change.instance),
          instance: copyInstance(change.instance),
          holder: change.holder,
          expiresAt: change.expiresAt,
        });
        return;
      }
      case 'remove': {
        const idle: string[] = [];
        for (const instanceId of change.instanceIds) {
          if (this.#idleKeys.has(instanceId)) idle.push(instanceId);
          else if (!this.#leases.delete(instanceId)) throw diverged(`instance ${instanceId} is not in the pool`);
        }
        this.#removeIdle(idle);
        return;
      }
      case 'renew': {
        const lease = this.#leases.get(change.instanceId);
        if (!lease) throw diverged(`instance ${change.instanceId} is not checked out`);
        lease.expiresAt = change.expiresAt;
        return;
      }
      case 'retire':
        for (const [key, until] of this.#retired) if (until <= change.now) this.#retired.delete(key);
        this.#retired.set(change.key, change.until);
        return;
    }
  }

  /** The state as JSON; `waiters` is empty (a replica has none). */
  snapshot(): PoolSnapshot {
    const idle: Record<string, InstanceRef[]> = {};
    for (const [key, instances] of this.#idle) idle[key] = instances.map((instance) => copyInstance(instance));
    return {
      idle,
      leases: [...this.#leases.values()].map(({ instance, holder, expiresAt }) => ({
        instance: copyInstance(instance),
        holder,
        expiresAt,
      })),
      retired: Object.fromEntries(this.#retired),
      waiters: [],
    };
  }

  /** Idle instances of `key` in push order (the stored objects: copy before handing one out). */
  idle(key: string): readonly InstanceRef[] {
    return this.#idle.get(key) ?? [];
  }

  /** Keys with idle instances. */
  idleKeys(): IterableIterator<string> {
    return this.#idle.keys();
  }

  isIdle(instanceId: string): boolean {
    return this.#idleKeys.has(instanceId);
  }

  /** The lease of a checked-out instance (the stored object: read it, do not change it). */
  lease(instanceId: string): Readonly<PoolLease> | undefined {
    return this.#leases.get(instanceId);
  }

  /** Every lease, oldest first. */
  leases(): IterableIterator<Readonly<PoolLease>> {
    return this.#leases.values();
  }

  /** Until when `key` refuses instances, if it was retired (a retirement that ended may still be listed). */
  retiredUntil(key: string): number | undefined {
    return this.#retired.get(key);
  }

  /** Removes idle instances, one pass per key. */
  #removeIdle(instanceIds: string[]): void {
    const byKey = new Map<string, Set<string>>();
    for (const instanceId of instanceIds) {
      const key = this.#idleKeys.get(instanceId)!;
      this.#idleKeys.delete(instanceId);
      let ids = byKey.get(key);
      if (!ids) {
        ids = new Set();
        byKey.set(key, ids);
      }
      ids.add(instanceId);
    }
    for (const [key, ids] of byKey) {
      const kept = (this.#idle.get(key) ?? []).filter((instance) => !ids.has(instance.instanceId));
      if (kept.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, kept);
    }
  }
}

/** The provisioning queue's state as plain JSON. */
export interface QueueSnapshot {
  items: ProvisionRequest[];
}

export type QueueChange = { op: 'enqueue'; request: ProvisionRequest } | { op: 'dequeue' };

/**
 * The provisioning queue's state as plain data that changes only through `apply`: a follower's copy, and
 * MemoryProvisionQueue's own store. Requests go in and come out as copies.
 */
export class QueueReplica {
  #items: ProvisionRequest[];

  constructor(snapshot?: QueueSnapshot) {
    this.#items = snapshot ? snapshot.items.map((request) => ({ ...request })) : [];
  }

  apply(change: QueueChange): void {
    if (change.op === 'enqueue') {
      this.#items.push({ ...change.request });
      return;
    }
    if (this.#items.length === 0) throw diverged('dequeue from an empty queue');
    this.#items.shift();
  }

  snapshot(): QueueSnapshot {
    return { items: this.#items.map((request) => ({ ...request })) };
  }

  /** The oldest request (the stored object: copy before handing it out), if any. */
  head(): ProvisionRequest | undefined {
    return this.#items[0];
  }

  get size(): number {
    return this.#items.length;
  }
}

function diverged(what: string): PlatformError {
  return new PlatformError('CONFLICT', `replica diverged from its leader: ${what}`);
}
