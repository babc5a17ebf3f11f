import type { BuildInfo } from '../build-info.js';
import type { Enforcement } from './sandbox-runtime.js';

/** What an Agent says about its node, kept in the registry while the node lives. */
export interface NodeInfo {
  nodeId: string;
  /** Where the Agent's gRPC server listens (`host:port` or `unix:/path`). */
  agentAddress: string;
  /** Sandboxes it will run at once. */
  capacity: number;
  /** Sandboxes it runs now (updated as they change). */
  sandboxes: number;
  /** Sandbox runtime kind (`bwrap`, `runc`, `process`) and whether it isolates. */
  sandboxRuntime: string;
  isolating: boolean;
  /** Code bundles (sha256) already extracted on the node: managers prefer placing there. */
  codeCached: string[];
  /** Epoch ms of registration. */
  startedAt: number;
  /**
   * What the node's sandbox runtime enforces, limit by limit (as `GET /v1/nodes` shows it). Read from etcd, so only
   * through `enforcementClaims`, which keeps what is well formed and bounded.
   */
  enforcement?: Readonly<Record<string, Enforcement>> | undefined;
  /** What the process runs (agents, gateways and managers announce it). Read from etcd: only through `buildInfoClaim`. */
  build?: BuildInfo | undefined;
  /** A gateway's HTTP API URL, for the control-plane view and load balancers. */
  url?: string | undefined;
  /**
   * The arguments a manager or gateway was started with after its role (never secrets): an upgrade starts its
   * replacement with them. Read from etcd: only through `launchArgsClaim`.
   */
  args?: string[] | undefined;
}

/** Registers this node on a lease kept alive in the background; the entry vanishes when the lease expires. */
export interface NodeRegistration {
  /** Replace the published NodeInfo (capacity and sandboxes change). */
  update(info: NodeInfo): Promise<void>;
  /** Delete the entry and revoke the lease (graceful stop). Idempotent. */
  deregister(): Promise<void>;
  /** Resolves if the lease is lost for good (keepalive failed past the TTL) so the caller can stop or re-register. */
  readonly lost: Promise<void>;
}

export interface NodeRegistry {
  /** Publish `info` under `nodes/{nodeId}` on a lease of `ttlSeconds`. */
  register(info: NodeInfo, ttlSeconds: number): Promise<NodeRegistration>;
  /** Every live node now. */
  list(): Promise<NodeInfo[]>;
}

export type MembershipEvent =
  { type: 'join'; node: NodeInfo } | { type: 'update'; node: NodeInfo } | { type: 'leave'; nodeId: string };

/**
 * Join/leave events for the registry. The first events are the current members (as joins); after a watch
 * reconnect the watcher re-reads the snapshot and emits the difference, so no leave is ever missed. The current members
 * are delivered before the promise `watch` returns resolves.
 */
export interface MembershipWatcher {
  watch(listener: (event: MembershipEvent) => void): Promise<{ close(): Promise<void> }>;
}

/** Which gateways serve and which agents run what: versioned, written by the control-plane leader. */
export interface RoutingTable {
  version: number;
  /** nodeId → agent address, for the gateways to dial. */
  agents: Record<string, string>;
  /**
   * Function name → the table version at which the leader last changed that function's traffic (a rollout moved an
   * alias's weights). A gateway that sees a function's entry change drops what it cached about the function's
   * versions, rather than wait for its cache to expire. Absent or partial in tables of older leaders: only the
   * functions changed last are kept (see `routing-table.ts`).
   */
  traffic?: Record<string, number> | undefined;
  updatedAt: number;
}

export interface RoutingTableStore {
  get(): Promise<RoutingTable | null>;
  /**
   * Write `table` if the stored version is `expectedVersion` (0 for none); returns false on a conflict.
   * `table.version` must be greater than `expectedVersion` (BAD_REQUEST otherwise), so a version is never reused.
   */
  put(table: RoutingTable, expectedVersion: number): Promise<boolean>;
  /** Delivers the current table first (if any; before the returned promise resolves), then each change. */
  watch(listener: (table: RoutingTable) => void): Promise<{ close(): Promise<void> }>;
}

/** The candidate that leads now. */
export interface LeaderInfo {
  id: string;
  /** When it was elected; null in the moment between its election and this being recorded. */
  since: Date | null;
}

/** The control-plane lead as a candidate holds it. */
export interface Lead {
  /**
   * The term it leads in: grows with every change of leader (an election or a takeover), so a message from an older
   * term can be told from a newer one.
   */
  readonly term: number;
  /** Give the lead up (the next candidate in campaign order leads). */
  resign(): Promise<void>;
  /** Resolves when the lead ends otherwise: the lease expired or could not be kept, or another candidate took over. */
  readonly lost: Promise<void>;
}

/** The cluster port: membership, routing and leadership, on etcd or in memory for a single node. */
export interface Cluster {
  readonly registry: NodeRegistry;
  readonly membership: MembershipWatcher;
  readonly routing: RoutingTableStore;
  /**
   * Campaign for leadership under `leader`; resolves when this candidate leads (candidates are served in the order they
   * campaigned). `resign` gives it up; `lost` resolves if it ends otherwise (the lease expired or could not be kept).
   * Aborting `signal` withdraws a campaign not yet elected (it rejects with the signal's reason).
   */
  campaign(candidateId: string, options?: { signal?: AbortSignal | undefined }): Promise<Lead>;
  /**
   * Take the lead over from `fromId` with no moment without a leader: in one atomic step, and only while `fromId`
   * leads, the lead passes to `candidateId` (in the place of `fromId` in the campaign order, with a new term). The
   * old leader's lead is lost. CONFLICT when `fromId` does not lead now. A campaign of `candidateId` still waiting
   * is the caller's to withdraw.
   */
  takeOver(candidateId: string, fromId: string): Promise<Lead>;
  /** The candidate that leads now, as any client of the cluster sees it; null while nobody does. */
  leader(): Promise<LeaderInfo | null>;
  close(): Promise<void>;
}
