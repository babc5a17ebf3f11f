import type { BuildInfo } from './build-info.js';

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

/** A follower as the leader sees it. */
export interface FollowerView {
  id: string;
  build: BuildInfo;
  /** The last change it says it applied, and how many it is behind the leader. */
  appliedSeq: number;
  lag: number;
  /** How long ago it last reported (ms). */
  reportedMsAgo: number;
  /** Since when it follows (ISO 8601). */
  since: string;
}

/** A manager, gateway or agent of the cluster, with what it runs. */
export interface MemberView {
  id: string;
  role: 'manager' | 'gateway' | 'agent';
  /** Null when its entry announces no (well-formed) build. */
  build: BuildInfo | null;
  /** Managers: the control address; gateways: the HTTP URL (else the routing address); agents: the agent address. */
  address: string;
  leader: boolean;
  follower: boolean;
  /** Whether it speaks the leader's control protocol. */
  compatible: boolean;
}

/** `GET /v1/control-plane` and `savassan leader status`. */
export interface ControlPlaneView {
  mode: 'cluster' | 'embedded';
  /** Where the warm pool lives: `leader` (held by the leader), `redis`, or `memory` (embedded). */
  pool: 'leader' | 'redis' | 'memory';
  /** Null while no manager leads. */
  leader: {
    id: string;
    since: string | null;
    term: number;
    build: BuildInfo | null;
    /** The last change of its replicated state (`--pool leader`; 0 otherwise). */
    seq: number;
    /** Its message loop's delay over the last minute (ms): p50, p99 and the worst. */
    loopDelayMs: { p50: number; p99: number; max: number } | null;
  } | null;
  /** How many followers the leader keeps, and those it has. */
  followersWanted: number;
  followers: FollowerView[];
  members: MemberView[];
  /** A handover under way, or the last one, as the leader saw it (the one that handed over, or the one that took it). */
  handover: {
    state: 'running' | 'done' | 'failed';
    from: string;
    to: string;
    at: string;
    /**
     * How long pool and queue calls waited: on the manager that handed over, from stopping writes to the new
     * leader's answer; on the one that took over, from the snapshot to the lead taken.
     */
    pausedMs?: number | undefined;
    error?: string | undefined;
  } | null;
  upgrade: UpgradeStatus | null;
}

/** What the HTTP API asks of the control plane (the gateway's `GET /v1/control-plane` and its two actions). */
export interface ControlPlaneApi {
  view(): Promise<ControlPlaneView>;
  /** Hand the lead over (to `to`, or the most up-to-date follower). */
  handover(to: string | undefined): Promise<{ from: string; to: string; term: number; pausedMs: number }>;
  /** Start replacing every manager and gateway with the build `to` names (a version or a path). */
  upgrade(to: string): Promise<UpgradeStatus>;
}
