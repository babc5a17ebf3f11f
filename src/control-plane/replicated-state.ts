import type { UpgradeStatus } from '../core/control-plane-view.js';
import { PlatformError } from '../core/errors.js';
import type { PoolChange, PoolSnapshot, QueueChange, QueueSnapshot } from '../core/pool-replica.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { ControlChange, ControlSnapshot } from './control-state.js';
import type { FollowEvent, HeldPool } from './leader-host.js';

/** The pool the leader holds: the port with waits by id, its state as JSON, and the end of its waits at a handover. */
export interface StatePool extends HeldPool {
  /** The state with its waiters (live and detached ones). */
  snapshot(): PoolSnapshot;
  /** Ends every wait with `error`: the state went to another manager, where the callers re-issue their waits. */
  handOff(error: Error): void;
}

export interface StateQueue extends ProvisionQueue {
  snapshot(): QueueSnapshot;
}

/**
 * Makes the pool and the queue the state holds (the cluster wiring makes MemoryPool and MemoryProvisionQueue: this
 * area does not import adapters). Each must call `onChange` for every change it makes, synchronously and in order,
 * and start from `snapshot` when given.
 */
export interface ControlStateParts {
  pool(options: { snapshot: PoolSnapshot | undefined; onChange: (change: PoolChange) => void }): StatePool;
  queue(options: { snapshot: QueueSnapshot | undefined; onChange: (change: QueueChange) => void }): StateQueue;
}

/** What a snapshot says besides the state: who took it, and what the leader's loops were doing. */
export type SnapshotMeta = Pick<ControlSnapshot, 'leaderId' | 'term' | 'routingVersion' | 'rollouts' | 'schedules'>;

export interface ReplicatedControlStateOptions {
  parts: ControlStateParts;
  /** Start from this state (the handover's snapshot, or a follower's copy): changes go on from its `seq`. */
  from?: ControlSnapshot | undefined;
  /** How many of the last changes are kept for followers that come back (`since`). Default 10 000. */
  backlog?: number | undefined;
  now?: (() => number) | undefined;
}

export const defaultBacklog = 10_000;

interface Subscriber {
  listener: (event: FollowEvent) => void;
  /** The seq of the next change it is owed. */
  next: number;
}

/**
 * The control-plane leader's replicated state: the warm pool, the provisioning queue and the upgrade status. Every
 * change the pool or queue makes is numbered (`seq`, one after another from the starting snapshot's), kept in a
 * bounded backlog, and streamed to subscribers (followers) in batches: the changes of one turn of the event loop go
 * out together.
 *
 * A handover pauses it (`pause`): the server holds new pool and queue calls until `whenResumed`, so the snapshot it
 * takes is the last state this leader had. The state itself does not refuse changes while paused (timers in the pool
 * can still make some): compare `seq` with the snapshot's to see whether any happened.
 */
export class ReplicatedControlState {
  readonly pool: StatePool;
  readonly queue: StateQueue;
  readonly #now: () => number;
  #seq: number;
  #upgrade: UpgradeStatus | null;
  /** The last changes, a ring of `#backlog.length` slots: change `seq` is at `seq % length`. */
  readonly #backlog: ControlChange[];
  readonly #backlogSize: number;
  /** Changes not yet sent to subscribers, the first of them numbered `#pendingFirst`. */
  #pending: ControlChange[] = [];
  #pendingFirst = 0;
  #flushScheduled = false;
  readonly #subscribers = new Set<Subscriber>();
  #resumed: { promise: Promise<void>; resolve: () => void } | undefined;
  #closed = false;

  constructor(options: ReplicatedControlStateOptions) {
    const size = options.backlog ?? defaultBacklog;
    if (!Number.isInteger(size) || size < 1) {
      throw new PlatformError('BAD_REQUEST', `backlog must be a positive integer, got ${size}`);
    }
    this.#now = options.now ?? Date.now;
    this.#backlogSize = size;
    this.#backlog = new Array<ControlChange>(size);
    const from = options.from;
    this.#seq = from?.seq ?? 0;
    this.#upgrade = from?.upgrade ? structuredClone(from.upgrade) : null;
    this.pool = options.parts.pool({ snapshot: from?.pool, onChange: (change) => this.#record({ pool: change }) });
    this.queue = options.parts.queue({ snapshot: from?.queue, onChange: (change) => this.#record({ queue: change }) });
  }

  /** The state a new leader holds from `snapshot` (the handover's, or a follower's copy). */
  static fromSnapshot(
    snapshot: ControlSnapshot,
    parts: ControlStateParts,
    options: Omit<ReplicatedControlStateOptions, 'parts' | 'from'> = {},
  ): ReplicatedControlState {
    return new ReplicatedControlState({ ...options, parts, from: snapshot });
  }

  /** The number of the last change (the starting snapshot's `seq` when none since). */
  get seq(): number {
    return this.#seq;
  }

  get upgrade(): UpgradeStatus | null {
    return this.#upgrade && structuredClone(this.#upgrade);
  }

  /** Records the upgrade's status (null: none), replicated as a change. */
  setUpgrade(status: UpgradeStatus | null): void {
    this.#upgrade = status && structuredClone(status);
    this.#record({ upgrade: status && structuredClone(status) });
  }

  /** The whole state now, the pool's waiters included (what a handover carries). */
  snapshot(meta: SnapshotMeta): ControlSnapshot {
    return {
      seq: this.#seq,
      leaderId: meta.leaderId,
      term: meta.term,
      takenAt: this.#now(),
      pool: this.pool.snapshot(),
      queue: this.queue.snapshot(),
      upgrade: this.upgrade,
      routingVersion: meta.routingVersion,
      rollouts: [...meta.rollouts],
      schedules: meta.schedules,
    };
  }

  /**
   * Follows the state: `listener` gets the snapshot now (without waiters: a follower keeps none), then every change
   * after it, in order, in batches. With `after` (the last seq a returning follower applied) still in the backlog, it
   * gets the changes after that instead of a snapshot. A listener that throws is unsubscribed. Returns the
   * unsubscribe function.
   */
  subscribe(listener: (event: FollowEvent) => void, meta: SnapshotMeta, options: { after?: number } = {}): () => void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'the control state is closed');
    const subscriber: Subscriber = { listener, next: this.#seq + 1 };
    const missed = options.after === undefined ? null : this.since(options.after);
    if (missed) {
      if (missed.length > 0) listener({ firstSeq: options.after! + 1, changes: missed });
    } else {
      const snapshot = this.snapshot(meta);
      listener({ snapshot: { ...snapshot, pool: { ...snapshot.pool, waiters: [] } } });
    }
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** The changes after `seq`, oldest first, or null when some of them are no longer in the backlog. */
  since(seq: number): ControlChange[] | null {
    if (!Number.isInteger(seq) || seq > this.#seq || seq < this.#seq - this.#backlogSize) return null;
    const changes: ControlChange[] = [];
    for (let at = seq + 1; at <= this.#seq; at++) changes.push(this.#backlog[at % this.#backlogSize]!);
    return changes;
  }

  get paused(): boolean {
    return this.#resumed !== undefined;
  }

  /** Holds writes (the server's `route` waits on `whenResumed`) while a handover takes the snapshot. */
  pause(): void {
    if (this.#resumed) return;
    let resolve!: () => void;
    const promise = new Promise<void>((done) => (resolve = done));
    this.#resumed = { promise, resolve };
  }

  resume(): void {
    const resumed = this.#resumed;
    this.#resumed = undefined;
    resumed?.resolve();
  }

  /** Resolves at once when not paused, else when `resume` (or `close`) is called. */
  whenResumed(): Promise<void> {
    return this.#resumed?.promise ?? Promise.resolve();
  }

  /** Closes the pool and queue (their waits end) and the subscriptions; paused writes are let go. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#flush();
    this.#subscribers.clear();
    this.resume();
    await Promise.all([this.pool.close(), this.queue.close()]);
  }

  #record(change: ControlChange): void {
    this.#seq += 1;
    this.#backlog[this.#seq % this.#backlogSize] = change;
    // Pending changes stay contiguous: once one is pending, every later one is too, until the flush.
    if (this.#subscribers.size === 0 && this.#pending.length === 0) return;
    if (this.#pending.length === 0) this.#pendingFirst = this.#seq;
    this.#pending.push(change);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  /** Sends the pending changes to every subscriber, each from the first one it is owed. */
  #flush(): void {
    this.#flushScheduled = false;
    const pending = this.#pending;
    const first = this.#pendingFirst;
    this.#pending = [];
    if (pending.length === 0) return;
    for (const subscriber of [...this.#subscribers]) {
      const from = Math.max(subscriber.next, first);
      const changes = pending.slice(from - first);
      subscriber.next = first + pending.length;
      if (changes.length === 0) continue;
      try {
        subscriber.listener({ firstSeq: from, changes });
      } catch {
        this.#subscribers.delete(subscriber);
      }
    }
  }
}
