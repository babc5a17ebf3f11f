import type { UpgradeStatus } from '../core/control-plane-view.js';
import type { PoolChange, PoolSnapshot, QueueChange, QueueSnapshot } from '../core/pool-replica.js';

/** One change of the control plane's replicated state, in the leader's order. */
export type ControlChange = { pool: PoolChange } | { queue: QueueChange } | { upgrade: UpgradeStatus | null };

/** The leader's whole state: what a follower starts from and what `BecomeLeader` carries. */
export interface ControlSnapshot {
  /** The sequence number of the last change it includes (changes after it start at `seq + 1`). */
  seq: number;
  /** The leader and term it was taken in. */
  leaderId: string;
  term: number;
  takenAt: number;
  pool: PoolSnapshot;
  queue: QueueSnapshot;
  upgrade: UpgradeStatus | null;
  /** The routing table version the leader last wrote (its successor writes above it). */
  routingVersion: number;
  /** Functions with a rollout under way, and the number of schedules: the successor drives them at once. */
  rollouts: string[];
  schedules: number;
}
