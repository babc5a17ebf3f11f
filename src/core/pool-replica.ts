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
}

/**
 * One change of the pool's state, as the leader's pool makes it and its followers apply it. Applying a pool's changes
 * in order to a `PoolReplica` made from that pool's snapshot gives that pool's state (waiters aside).
 */
export type PoolChange =
  /** Instances became idle (pushed, restored, or returned), at the end of their key's list, in this order. */
  | { op: 'idle'; instances: InstanceRef[] }
  /** Idle instances were checked out (a checkout, or a waiter served from the idle list). */
  | { op: 'take'; instanceId: string; holder: string; expiresAt: number }
  /** A pushed instance went straight to a waiter: it is checked out by the waiter's holder. */
  | { op: 'lease'; instance: InstanceRef; holder: string; expiresAt: number }
  /** Instances left the pool (idle ones reaped, drained or purged; checked-out ones released, reclaimed or purged). */
  | { op: 'remove'; instanceIds: string[] }
  | { op: 'renew'; instanceId: string; expiresAt: number }
  /** A key was retired until `until`; retirements that ended by `now` are forgotten. */
  | { op: 'retire'; key: string; until: number; now: number };

/** The provisioning queue's state as plain JSON. */
export interface QueueSnapshot {
  items: ProvisionRequest[];
}

export type QueueChange = { op: 'enqueue'; request: ProvisionRequest } | { op: 'dequeue' };
