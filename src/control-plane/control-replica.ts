import type { UpgradeStatus } from '../core/control-plane-view.js';
import { PlatformError } from '../core/errors.js';
import { PoolReplica, QueueReplica } from '../core/pool-replica.js';
import type { ControlSnapshot } from './control-state.js';
import type { FollowEvent } from './leader-host.js';
import { ReplicatedControlState } from './replicated-state.js';
import type { ControlStateParts, ReplicatedControlStateOptions } from './replicated-state.js';

/**
 * A follower's copy of the leader's state: it applies what the leader streams (a snapshot, then every change in
 * order) and, when this manager takes the lead after a crash, becomes its `ReplicatedControlState` (`promote`).
 */
export class ControlReplica {
  readonly #now: () => number;
  #base: ControlSnapshot | undefined;
  #pool = new PoolReplica();
  #queue = new QueueReplica();
  #upgrade: UpgradeStatus | null = null;
  #appliedSeq = -1;

  constructor(options: { now?: (() => number) | undefined } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** The seq of the last change applied; -1 before the first snapshot. */
  get appliedSeq(): number {
    return this.#appliedSeq;
  }

  /** Whether it holds a state (a snapshot arrived). */
  get ready(): boolean {
    return this.#base !== undefined;
  }

  get upgrade(): UpgradeStatus | null {
    return this.#upgrade && structuredClone(this.#upgrade);
  }

  /**
   * Applies one event: a snapshot replaces the copy; changes must start right after `appliedSeq` (CONFLICT "gap"
   * otherwise, or when no snapshot came first: the follower starts again with a fresh snapshot). A change that does
   * not fit the copy also throws CONFLICT, and leaves the copy unusable until the next snapshot.
   */
  apply(event: FollowEvent): void {
    if ('snapshot' in event) {
      const { snapshot } = event;
      this.#pool = new PoolReplica({ ...snapshot.pool, waiters: [] });
      this.#queue = new QueueReplica(snapshot.queue);
      this.#upgrade = snapshot.upgrade && structuredClone(snapshot.upgrade);
      this.#base = { ...structuredClone(snapshot), pool: { idle: {}, leases: [], retired: {}, waiters: [] } };
      this.#appliedSeq = snapshot.seq;
      return;
    }
    if (!this.#base) throw new PlatformError('CONFLICT', `gap: changes from ${event.firstSeq} before any snapshot`);
    if (event.firstSeq !== this.#appliedSeq + 1) {
      throw new PlatformError('CONFLICT', `gap: changes from ${event.firstSeq}, but ${this.#appliedSeq} was applied`);
    }
    for (const change of event.changes) {
      try {
        if ('pool' in change) this.#pool.apply(change.pool);
        else if ('queue' in change) this.#queue.apply(change.queue);
        else this.#upgrade = change.upgrade && structuredClone(change.upgrade);
      } catch (err) {
        this.#base = undefined;
        this.#appliedSeq = -1;
        throw err;
      }
      this.#appliedSeq += 1;
    }
  }

  /**
   * The copy as a snapshot at `appliedSeq`: the leader, term, routing version, rollouts and schedules are those of
   * the snapshot it started from. UNAVAILABLE before the first snapshot.
   */
  snapshot(): ControlSnapshot {
    const base = this.#base;
    if (!base) throw new PlatformError('UNAVAILABLE', 'this follower holds no copy of the control state yet');
    return {
      ...structuredClone(base),
      seq: this.#appliedSeq,
      takenAt: this.#now(),
      pool: this.#pool.snapshot(),
      queue: this.#queue.snapshot(),
      upgrade: this.upgrade,
    };
  }

  /** The leader's state made from this copy, its changes numbered on from `appliedSeq`. */
  promote(
    parts: ControlStateParts,
    options: Omit<ReplicatedControlStateOptions, 'parts' | 'from'> = {},
  ): ReplicatedControlState {
    return ReplicatedControlState.fromSnapshot(this.snapshot(), parts, options);
  }
}
