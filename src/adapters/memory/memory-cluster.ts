import { checkCandidateId, checkNodeInfo, checkRoutingPut, checkTtlSeconds } from '../../core/cluster-checks.js';
import { PlatformError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import type { Logger } from '../../core/logger.js';
import type {
  Cluster,
  MembershipEvent,
  MembershipWatcher,
  NodeInfo,
  NodeRegistration,
  Lead,
  LeaderInfo,
  NodeRegistry,
  RoutingTable,
  RoutingTableStore,
} from '../../core/ports/cluster.js';

export interface MemoryClusterOptions {
  /** TTL of a leader's lease, in seconds: how long a candidate that stopped without resigning blocks the others. */
  leaderTtlSeconds?: number;
  /** Where a listener that throws is reported. Default: dropped. */
  logger?: Logger;
}

const DEFAULT_LEADER_TTL_SECONDS = 10;

/** The store `peer()` hands to the client it constructs (constructors take options only). */
let peerStore: MemoryClusterStore | undefined;

/** Why a lease ended: its owner revoked it (deregister, resign, close), or it expired / was ended from outside. */
type LeaseEnd = 'revoked' | 'expired';

/** A lease of the in-memory cluster: it ends `ttlMs` after the last keepalive unless its owner revokes it first. */
class MemoryLease {
  readonly #expiry: NodeJS.Timeout;
  readonly #onEnd: ((why: LeaseEnd) => void)[] = [];
  #ended = false;

  constructor(ttlSeconds: number, expire: (lease: MemoryLease) => void) {
    this.#expiry = setTimeout(() => expire(this), ttlSeconds * 1000);
  }

  get ended(): boolean {
    return this.#ended;
  }

  keepAlive(): void {
    if (!this.#ended) this.#expiry.refresh();
  }

  onEnd(callback: (why: LeaseEnd) => void): void {
    this.#onEnd.push(callback);
  }

  /** Marks the lease ended; the store has already removed what it held. */
  end(why: LeaseEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#expiry);
    for (const callback of this.#onEnd.splice(0)) callback(why);
  }
}

interface StoredNode {
  info: NodeInfo;
  lease: MemoryLease;
}

/** A place in the election queue, held by a candidate (or, after a takeover, by the taker) on its lease. */
interface Candidate {
  lease: MemoryLease;
  /** Called once, when the candidate reaches the head of the queue. */
  elect: () => void;
  id: string;
  /** Set when elected (or taken over). */
  since?: Date;
  /** Set when elected (or taken over). */
  term?: number;
  /** Called when a takeover gives the place to another holder. */
  replaced: () => void;
}

/**
 * What an etcd server holds, for one process: nodes on leases, the routing table, the election queue and the watchers.
 * Every change notifies the watchers through one FIFO queue, so a listener that changes the cluster from inside a
 * callback sees its events after the ones already on their way.
 */
class MemoryClusterStore {
  readonly nodes = new Map<string, StoredNode>();
  routing: RoutingTable | null = null;
  /** Campaign order; the first one leads. */
  readonly candidates: Candidate[] = [];
  /** The last term given: every election and takeover takes the next. */
  term = 0;
  readonly membershipListeners = new Set<(event: MembershipEvent) => void>();
  readonly routingListeners = new Set<(table: RoutingTable) => void>();
  readonly #deliveries: (() => void)[] = [];
  #delivering = false;
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  grant(ttlSeconds: number): MemoryLease {
    return new MemoryLease(ttlSeconds, (lease) => this.endLease(lease, 'expired'));
  }

  /** Removes every node and candidacy held by `lease`, then ends it. */
  endLease(lease: MemoryLease, why: LeaseEnd): void {
    if (lease.ended) return;
    for (const [nodeId, node] of [...this.nodes].sort(([a], [b]) => compare(a, b))) {
      if (node.lease !== lease) continue;
      this.nodes.delete(nodeId);
      this.#membershipEvent({ type: 'leave', nodeId });
    }
    const index = this.candidates.findIndex((candidate) => candidate.lease === lease);
    if (index !== -1) {
      this.candidates.splice(index, 1);
      if (index === 0) this.candidates[0]?.elect();
    }
    lease.end(why);
  }

  /** Publishes `info` on `lease`; like an etcd put, the key moves to `lease` if another one held it. */
  putNode(info: NodeInfo, lease: MemoryLease): void {
    const existed = this.nodes.has(info.nodeId);
    this.nodes.set(info.nodeId, { info: clone(info), lease });
    this.#membershipEvent({ type: existed ? 'update' : 'join', node: clone(info) });
  }

  putRouting(table: RoutingTable): void {
    this.routing = clone(table);
    for (const listener of this.routingListeners) this.deliver(listener, clone(table));
  }

  campaign(lease: MemoryLease, id: string, elect: (term: number) => void, replaced: () => void): void {
    const candidate: Candidate = {
      lease,
      id,
      elect: () => {
        candidate.since = new Date();
        candidate.term = ++this.term;
        elect(candidate.term);
      },
      replaced,
    };
    this.candidates.push(candidate);
    if (this.candidates.length === 1) candidate.elect();
  }

  /**
   * The head of the queue passes from `fromId` to `id` on `lease`, in its place, with a new term; the old holder is
   * told. CONFLICT when `fromId` does not lead.
   */
  takeOver(fromId: string, id: string, lease: MemoryLease, replaced: () => void): number {
    const head = this.candidates[0];
    if (head?.id !== fromId) {
      const leading = head === undefined ? 'nobody does' : `${head.id} does`;
      throw new PlatformError('CONFLICT', `${fromId} does not lead the control plane (${leading})`);
    }
    const previous = head.replaced;
    Object.assign(head, { lease, id, since: new Date(), term: ++this.term, replaced });
    previous();
    return head.term ?? this.term;
  }

  /** Calls `listener(value)` after every delivery already queued; a listener that throws is logged. */
  deliver<T>(listener: (value: T) => void, value: T): void {
    this.#deliveries.push(() => listener(value));
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      for (let next = this.#deliveries.shift(); next; next = this.#deliveries.shift()) {
        try {
          next();
        } catch (err) {
          this.#logger.error({ err }, 'cluster watch listener threw');
        }
      }
    } finally {
      this.#delivering = false;
    }
  }

  #membershipEvent(event: MembershipEvent): void {
    for (const listener of this.membershipListeners) this.deliver(listener, event);
  }
}

/**
 * The cluster port in one process, for single-node (embedded) mode and tests, with etcd's semantics: nodes live on
 * leases with a TTL that keepalive timers renew, watchers get the current state and then each change, the routing
 * table is written with compare-and-swap on its version, and candidates lead one at a time in campaign order.
 *
 * A `MemoryCluster` is one client; {@link peer} opens another client of the same in-memory cluster (as another process
 * would be), with its own leases and watchers, which `close()` releases and {@link abandon} drops as a crash would.
 * Like an etcd client's connection, the keepalive timers of its leases keep the process alive until it is closed.
 *
 * @example
 * const cluster = new MemoryCluster();
 * const registration = await cluster.registry.register(nodeInfo, 10);
 * const leadership = await cluster.campaign('manager-1');
 */
export class MemoryCluster implements Cluster {
  readonly registry: NodeRegistry;
  readonly membership: MembershipWatcher;
  readonly routing: RoutingTableStore;
  readonly #store: MemoryClusterStore;
  readonly #options: Required<MemoryClusterOptions>;
  /** Keepalive timer of every lease this client holds. */
  readonly #leases = new Map<MemoryLease, NodeJS.Timeout>();
  readonly #listeners = new Set<() => void>();
  /** Campaigns not yet elected: their rejection when this client closes. */
  readonly #pending = new Set<(err: unknown, release: boolean) => void>();
  #closed = false;

  constructor(options: MemoryClusterOptions = {}) {
    const leaderTtlSeconds = options.leaderTtlSeconds ?? DEFAULT_LEADER_TTL_SECONDS;
    checkTtlSeconds(leaderTtlSeconds, 'leader TTL');
    this.#options = { leaderTtlSeconds, logger: options.logger ?? silentLogger };
    this.#store = peerStore ?? new MemoryClusterStore(this.#options.logger);
    peerStore = undefined;
    this.registry = {
      register: (info, ttlSeconds) => this.#register(info, ttlSeconds),
      list: () => this.#call(() => this.#list()),
    };
    this.membership = { watch: (listener) => this.#watchMembership(listener) };
    this.routing = {
      get: () => this.#call(() => (this.#store.routing ? clone(this.#store.routing) : null)),
      put: (table, expectedVersion) => this.#putRouting(table, expectedVersion),
      watch: (listener) => this.#watchRouting(listener),
    };
  }

  /** Another client of the same in-memory cluster, with its own leases and watchers (as another process would be). */
  peer(options: MemoryClusterOptions = this.#options): MemoryCluster {
    peerStore = this.#store;
    try {
      return new MemoryCluster(options);
    } finally {
      peerStore = undefined;
    }
  }

  async campaign(candidateId: string, options: { signal?: AbortSignal | undefined } = {}): Promise<Lead> {
    const { signal } = options;
    const hold = new LeadHold();
    const { lease, elected } = await this.#call(() => {
      checkCandidateId(candidateId);
      signal?.throwIfAborted();
      const lease = this.#hold(this.#options.leaderTtlSeconds);
      const elected = new Promise<number>((resolve, reject) => {
        const cancel = (err: unknown, release: boolean): void => {
          this.#pending.delete(cancel);
          signal?.removeEventListener('abort', withdraw);
          if (release) this.#release(lease);
          // A withdrawn campaign rejects with its signal's reason, whatever the caller chose it to be.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(err);
        };
        const withdraw = (): void => cancel(signal?.reason, true);
        this.#pending.add(cancel);
        signal?.addEventListener('abort', withdraw, { once: true });
        this.#store.campaign(
          lease,
          candidateId,
          (term) => {
            this.#pending.delete(cancel);
            signal?.removeEventListener('abort', withdraw);
            resolve(term);
          },
          () => hold.replaced(() => this.#release(lease)),
        );
      });
      return { lease, elected };
    });
    hold.watch(lease);
    const term = await elected;
    return hold.lead(term, () => this.#release(lease));
  }

  takeOver(candidateId: string, fromId: string): Promise<Lead> {
    return this.#call(() => {
      checkCandidateId(candidateId);
      checkCandidateId(fromId);
      const hold = new LeadHold();
      const lease = this.#hold(this.#options.leaderTtlSeconds);
      let term: number;
      try {
        term = this.#store.takeOver(fromId, candidateId, lease, () => hold.replaced(() => this.#release(lease)));
      } catch (err) {
        this.#release(lease);
        throw err;
      }
      hold.watch(lease);
      return hold.lead(term, () => this.#release(lease));
    });
  }

  leader(): Promise<LeaderInfo | null> {
    return this.#call(() => {
      const head = this.#store.candidates[0];
      return head === undefined ? null : { id: head.id, since: head.since ?? null };
    });
  }

  /**
   * Ends the lease behind `nodes/{nodeId}` as if it had expired (an operator evicting a node, or a test): the node
   * leaves and its registration's `lost` resolves. False if no such node is registered.
   */
  expireLease(nodeId: string): boolean {
    const node = this.#store.nodes.get(nodeId);
    if (!node) return false;
    this.#store.endLease(node.lease, 'expired');
    return true;
  }

  /** Deregisters this client's nodes, resigns its campaigns and stops its watchers. Idempotent. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#stop(true);
      for (const lease of [...this.#leases.keys()]) this.#release(lease);
    }
    return Promise.resolve();
  }

  /**
   * Stops this client as a killed process would: keepalives stop and nothing is revoked, so its nodes and candidacies
   * stay until their leases expire. For tests of lease expiry.
   */
  abandon(): Promise<void> {
    if (!this.#closed) {
      for (const timer of this.#leases.values()) clearInterval(timer);
      this.#leases.clear();
      this.#stop(false);
    }
    return Promise.resolve();
  }

  /** Marks the client closed, stops its watchers and fails its pending campaigns (revoking them if `release`). */
  #stop(release: boolean): void {
    this.#closed = true;
    for (const unsubscribe of this.#listeners) unsubscribe();
    this.#listeners.clear();
    for (const cancel of [...this.#pending]) cancel(closedError(), release);
    this.#pending.clear();
  }

  #register(info: NodeInfo, ttlSeconds: number): Promise<NodeRegistration> {
    return this.#call(() => {
      checkNodeInfo(info);
      checkTtlSeconds(ttlSeconds, 'node TTL');
      const lease = this.#hold(ttlSeconds);
      this.#store.putNode(info, lease);
      return this.#registration(info.nodeId, lease);
    });
  }

  #registration(nodeId: string, lease: MemoryLease): NodeRegistration {
    let deregistered = false;
    return {
      lost: leaseLost(lease),
      update: (info) =>
        this.#call(() => {
          checkNodeInfo(info);
          if (info.nodeId !== nodeId) {
            throw new PlatformError('BAD_REQUEST', `registration of node ${nodeId} cannot publish node ${info.nodeId}`);
          }
          if (deregistered) throw new PlatformError('BAD_REQUEST', `node ${nodeId} was deregistered`);
          if (lease.ended) throw new PlatformError('UNAVAILABLE', `the lease of node ${nodeId} is gone`);
          this.#store.putNode(info, lease);
        }),
      deregister: () => {
        deregistered = true;
        this.#release(lease);
        return Promise.resolve();
      },
    };
  }

  #list(): NodeInfo[] {
    return [...this.#store.nodes.values()].map((node) => clone(node.info)).sort((a, b) => compare(a.nodeId, b.nodeId));
  }

  #watchMembership(listener: (event: MembershipEvent) => void): Promise<{ close(): Promise<void> }> {
    return this.#call(() => {
      for (const node of this.#list()) this.#store.deliver(listener, { type: 'join', node });
      return this.#subscribe(this.#store.membershipListeners, listener);
    });
  }

  #putRouting(table: RoutingTable, expectedVersion: number): Promise<boolean> {
    return this.#call(() => {
      checkRoutingPut(table, expectedVersion);
      if ((this.#store.routing?.version ?? 0) !== expectedVersion) return false;
      this.#store.putRouting(table);
      return true;
    });
  }

  #watchRouting(listener: (table: RoutingTable) => void): Promise<{ close(): Promise<void> }> {
    return this.#call(() => {
      if (this.#store.routing) this.#store.deliver(listener, clone(this.#store.routing));
      return this.#subscribe(this.#store.routingListeners, listener);
    });
  }

  #subscribe<T>(listeners: Set<(value: T) => void>, listener: (value: T) => void): { close(): Promise<void> } {
    // The same function may watch twice: each watch gets its own entry.
    const entry = (value: T): void => listener(value);
    listeners.add(entry);
    const unsubscribe = (): void => {
      listeners.delete(entry);
      this.#listeners.delete(unsubscribe);
    };
    this.#listeners.add(unsubscribe);
    return {
      close: () => {
        unsubscribe();
        return Promise.resolve();
      },
    };
  }

  /** A lease this client keeps alive every third of its TTL, as etcd clients do. */
  #hold(ttlSeconds: number): MemoryLease {
    const lease = this.#store.grant(ttlSeconds);
    const keepalive = setInterval(() => lease.keepAlive(), (ttlSeconds * 1000) / 3);
    this.#leases.set(lease, keepalive);
    lease.onEnd(() => {
      clearInterval(keepalive);
      this.#leases.delete(lease);
    });
    return lease;
  }

  /** Revokes one of this client's leases (idempotent). */
  #release(lease: MemoryLease): void {
    this.#store.endLease(lease, 'revoked');
  }

  /** Runs `action` now, unless this client is closed; what it throws becomes the returned promise's rejection. */
  #call<T>(action: () => T): Promise<T> {
    return new Promise((resolve) => {
      if (this.#closed) throw closedError();
      resolve(action());
    });
  }
}

/**
 * One candidate's hold of the lead: lost when its lease expires or a takeover gives its place to another (its lease,
 * which then holds nothing, is let go); `resign` after that does nothing.
 */
class LeadHold {
  #ended = false;
  #resolveLost!: () => void;
  readonly lost = new Promise<void>((resolve) => {
    this.#resolveLost = resolve;
  });

  watch(lease: MemoryLease): void {
    void leaseLost(lease).then(() => this.#lose());
  }

  /** A takeover moved the place away: the lead is lost and the lease, now empty, is released. */
  replaced(release: () => void): void {
    if (this.#ended) return;
    this.#lose();
    release();
  }

  lead(term: number, release: () => void): Lead {
    return {
      term,
      lost: this.lost,
      resign: () => {
        if (!this.#ended) {
          this.#ended = true;
          release();
        }
        return Promise.resolve();
      },
    };
  }

  #lose(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#resolveLost();
  }
}

/** Resolves when `lease` ends other than by its owner's revoke. */
function leaseLost(lease: MemoryLease): Promise<void> {
  return new Promise((resolve) => lease.onEnd((why) => why === 'expired' && resolve()));
}

function closedError(): PlatformError {
  return new PlatformError('UNAVAILABLE', 'cluster client is closed');
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
