import type { BuildInfo } from '../core/build-info.js';
import type { Pool, PoolItem, WaitOptions } from '../core/ports/pool.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { ControlPlaneView, UpgradeStatus } from '../core/control-plane-view.js';
import type { ControlChange, ControlSnapshot } from './control-state.js';

/** The pool as the leader holds it: the port, and waits that keep their place across a handover. */
export interface HeldPool extends Pool {
  /** `wait`, under `waiterId`: a waiter of that id the handover snapshot brought keeps its place (and any item). */
  wait(key: string, options: WaitOptions & { waiterId?: string | undefined }): Promise<PoolItem | null>;
}

/** Where pool and queue calls go on this manager now. */
export type PoolRoute =
  /** This manager leads: serve from its state. */
  | { kind: 'local'; pool: HeldPool; queue: ProvisionQueue }
  /** Another manager leads (or takes over): forward there. */
  | { kind: 'forward'; leaderId: string; address: string }
  /** Nobody is known to lead: UNAVAILABLE, the caller retries. */
  | { kind: 'none'; reason: string };

/** What a follower receives: the state, then every change in order. */
export type FollowEvent = { snapshot: ControlSnapshot } | { firstSeq: number; changes: ControlChange[] };

/**
 * The control plane of one manager as its gRPC service (`savassan.leader.v1.Leader`) serves it: the transport
 * (src/leader) decodes each call and asks this.
 */
export interface LeaderHost {
  /** This manager's id and build. */
  readonly id: string;
  readonly build: BuildInfo;
  /**
   * Where a pool or queue call goes now. While a handover is under way this waits (writes pause) until the new
   * leader holds the state, then answers `forward`.
   */
  route(): Promise<PoolRoute>;
  /**
   * Stream the state to a follower: `send` the snapshot, then changes as they come, until `signal` aborts or this
   * manager stops leading (resolves). RESOURCE_EXHAUSTED when it has enough followers; FAILED_PRECONDITION when not
   * leading or the follower speaks another protocol.
   */
  follow(followerId: string, build: BuildInfo, send: (event: FollowEvent) => void, signal: AbortSignal): Promise<void>;
  reportApplied(followerId: string, appliedSeq: number): void;
  /** Take the lead with `snapshot` from `fromId` (a handover): resolves with the new term once held. */
  becomeLeader(fromId: string, fromTerm: number, snapshot: ControlSnapshot): Promise<{ term: number }>;
  /** Hand the lead over (this manager must lead; else FAILED_PRECONDITION naming the leader). */
  handover(toId: string | undefined): Promise<{ fromId: string; toId: string; term: number; pausedMs: number }>;
  status(): Promise<ControlPlaneView>;
  upgrade(target: string): Promise<UpgradeStatus>;
  /** Leave: hand over if leading, drain, stop the process. Returns before it stops. */
  shutdown(reason: string): void;
}
