import type { BuildInfo } from '../core/build-info.js';
import type { PoolChange, PoolSnapshot, QueueChange, QueueSnapshot } from '../core/pool-replica.js';

/**
 * Where an upgrade stands. It is part of the replicated state, so the leader that takes over in the middle of an
 * upgrade (the new build's) goes on with it.
 */
export interface UpgradeStatus {
  /** Who asked, and what for: the target as given and the build it resolved to. */
  target: string;
  to: BuildInfo;
  /** The builds being replaced. */
  from: BuildInfo[];
  state: 'running' | 'succeeded' | 'failed';
  /** The step under way or, once failed, the step that failed (`start gateway 2 of 2`, `hand over to manager-x`). */
  step: string;
  /** Why it failed, when it did; the old generation keeps serving. */
  error?: string | undefined;
  /** Processes started for the new build, and old ones stopped, so far. */
  started: string[];
  retired: string[];
  /** Old processes still to stop once the new build leads. */
  toRetire: { id: string; role: 'manager' | 'gateway' }[];
  startedAt: number;
  updatedAt: number;
}

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
