import type { Etcd3, IKeyValue, Lease, Namespace } from 'etcd3';

import { checkCandidateId, checkNodeInfo, checkRoutingPut, checkTtlSeconds } from '../../core/cluster-checks.js';
import { PlatformError } from '../../core/errors.js';
import { routingTableFromStored } from '../../core/routing-table.js';
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
import { authFailure, compileEtcdClusterOptions, createEtcdClient, etcdFailure } from './etcd-connection.js';
import type { CompiledEtcdClusterOptions, EtcdClusterOptions } from './etcd-connection.js';
import { memberFromKv, NODES_PREFIX, watchMembership } from './etcd-membership.js';
import { ResyncingWatch, withTimeout } from './etcd-watch.js';

export type { EtcdClusterOptions } from './etcd-connection.js';

/** Keys under the prefix; docs/etcd-keys.md describes them. */
const ROUTING_KEY = 'routing';
const LEADER_PREFIX = 'leader/';
/** `leader-since/{leaseId}` → `{ id, since }` (epoch ms), written by a candidate once elected, on its lease. */
const LEADER_SINCE_PREFIX = 'leader-since/';
/** close() does not wait longer than this for etcd to confirm a revoke (the lease expires by itself anyway). */
const REVOKE_TIMEOUT_MS = 2_000;

/**
 * Connects to etcd and checks that it answers, failing fast with UNAVAILABLE ("etcd at <endpoints> is unavailable")
 * when it does not within `connectTimeoutMs`.
 *
 * @example
 * const cluster = await openEtcdCluster({ endpoints: ['http://10.0.0.5:2379'] });
 * const registration = await cluster.registry.register(nodeInfo, 10);
 * registration.lost.then(() => reRegister());
 */
export async function openEtcdCluster(options: EtcdClusterOptions): Promise<EtcdCluster> {
  const compiled = compileEtcdClusterOptions(options);
  const client = createEtcdClient(compiled);
  const cluster = new EtcdCluster(compiled, client);
  try {
    await cluster.ping(compiled.connectTimeoutMs);
  } catch (err) {
    client.close();
    throw err;
  }
  return cluster;
}

/**
 * The cluster port on etcd: nodes on leases kept alive by etcd3, a routing table written with compare-and-swap on
 * its etcd mod revision, leadership by etcd's election recipe under `leader/`, and watches that re-read a snapshot
 * after every reconnect. Open it with {@link openEtcdCluster}.
 */
export class EtcdCluster implements Cluster {
  readonly registry: NodeRegistry;
  readonly membership: MembershipWatcher;
  readonly routing: RoutingTableStore;
  readonly #options: CompiledEtcdClusterOptions;
  readonly #client: Etcd3;
  /** The cluster's prefix with a trailing `/`: every key below is relative to it. */
  readonly #ns: Namespace;
  readonly #logger: Logger;
  /** Leases of registrations, leaderships and campaigns still held: close() revokes them. */
  readonly #leases = new Set<Lease>();
  readonly #watches = new Set<ResyncingWatch>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Campaigns not yet elected, aborted by close(). */
  readonly #campaigns = new Set<AbortController>();
  #closed = false;

  /** Does no I/O; {@link openEtcdCluster} is the way to get one. */
  constructor(options: CompiledEtcdClusterOptions, client: Etcd3) {
    this.#options = options;
    this.#client = client;
    this.#ns = client.namespace(`${options.prefix}/`);
    this.#logger = options.logger.child({ etcd: options.endpoints.join(','), prefix: options.prefix });
    this.registry = {
      register: (info, ttlSeconds) => this.#register(info, ttlSeconds),
      list: () => this.#list(),
    };
    this.membership = { watch: (listener) => this.#watchMembership(listener) };
    this.routing = {
      get: () => this.#getRouting(),
      put: (table, expectedVersion) => this.#putRouting(table, expectedVersion),
      watch: (listener) => this.#watchRouting(listener),
    };
  }

  /** One read with a deadline of its own: UNAVAILABLE if etcd does not answer within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<void> {
    this.#ifOpen();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const read = this.#ns
        .get(ROUTING_KEY)
        .options({ deadline: Date.now() + timeoutMs })
        .exec();
      read.catch(() => undefined); // the deadline may win the race
      await Promise.race([read, deadline]);
    } catch (err) {
      const refused = authFailure(err, this.#options);
      if (refused !== null) throw refused;
      // Whatever the reason (nothing listens, no answer, not etcd), this etcd cannot be used now.
      const message = err instanceof Error ? err.message : String(err);
      throw new PlatformError('UNAVAILABLE', `${this.#options.display} is unavailable: ${message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async campaign(candidateId: string, options: { signal?: AbortSignal | undefined } = {}): Promise<Lead> {
    this.#ifOpen();
    checkCandidateId(candidateId);
    options.signal?.throwIfAborted();
    const ttlSeconds = this.#options.leaderTtlSeconds;
    const lease = this.#ns.lease(ttlSeconds);
    this.#leases.add(lease);
    const campaign = new AbortController();
    this.#campaigns.add(campaign);
    const withdraw = (): void => campaign.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', withdraw, { once: true });
    const silence = this.#keepaliveWatchdog(lease, ttlSeconds);
    const onLost = (err: unknown): void => campaign.abort(this.#failure(err, 'campaign'));
    lease.on('lost', onLost);
    silence.onSilence = () => campaign.abort(this.#failure(new Error('no keepalive answer for a TTL'), 'campaign'));
    try {
      const leaseId = await lease.grant();
      const key = `${LEADER_PREFIX}${leaseId}`;
      const created = await this.#ns
        .if(key, 'Create', '==', 0)
        .then(this.#ns.put(key).value(candidateId).lease(leaseId))
        .commit();
      if (!created.succeeded) throw new Error(`election key ${key} already exists`);
      const revision = created.header.revision;
      await this.#waitForPredecessors(revision, campaign.signal);
      const own = (await this.#ns.get(key).exec()).kvs[0];
      if (own?.create_revision !== revision) throw new Error('the election key vanished while waiting');
      if (own.value.toString() !== candidateId) throw new Error('another candidate took the lead over at once');
      campaign.signal.throwIfAborted();
      // Writing the key again gives it a mod revision above every earlier one: the term, which grows with every
      // election and takeover. The compare fails if another candidate took the lead over in between.
      const elected = await this.#ns
        .if(key, 'Mod', '==', own.mod_revision)
        .then(
          this.#ns.put(key).value(candidateId).lease(leaseId),
          this.#ns.put(`${LEADER_SINCE_PREFIX}${leaseId}`).value(sinceValue(candidateId)).lease(leaseId),
        )
        .commit();
      if (!elected.succeeded) throw new Error('another candidate took the lead over at once');
      return await this.#leadership(lease, key, candidateId, Number(elected.header.revision), silence);
    } catch (err) {
      silence.stop();
      if (!this.#closed) {
        this.#leases.delete(lease);
        void lease.revoke().catch(() => undefined);
      }
      throw campaign.signal.aborted ? campaign.signal.reason : this.#failure(err, 'campaign');
    } finally {
      lease.off('lost', onLost);
      options.signal?.removeEventListener('abort', withdraw);
      this.#campaigns.delete(campaign);
    }
  }

  /**
   * Grants a lease of its own, then in one transaction moves the head election key (the lead) to it with the taker's
   * id, on the condition that the key is still the one just read with `fromId` as its value: the key keeps its create
   * revision (its place in the queue) and nobody ever sees no leader. The old leader sees its key's value change
   * and lets its lease go.
   */
  async takeOver(candidateId: string, fromId: string): Promise<Lead> {
    this.#ifOpen();
    checkCandidateId(candidateId);
    checkCandidateId(fromId);
    const ttlSeconds = this.#options.leaderTtlSeconds;
    const lease = this.#ns.lease(ttlSeconds);
    this.#leases.add(lease);
    const silence = this.#keepaliveWatchdog(lease, ttlSeconds);
    try {
      const leaseId = await lease.grant();
      // The leader may write its key once more as its lead starts (the term): then read again.
      for (let attempt = 1; ; attempt++) {
        const head = (await this.#ns.getAll().prefix(LEADER_PREFIX).sort('Create', 'Ascend').limit(1).exec()).kvs[0];
        const leading = head?.value.toString();
        if (head === undefined || leading !== fromId) {
          throw new PlatformError(
            'CONFLICT',
            `${fromId} does not lead the control plane (${leading === undefined ? 'nobody does' : `${leading} does`})`,
          );
        }
        const key = head.key.toString();
        const headLease = key.split('/').pop() ?? '';
        const taken = await this.#ns
          .if(key, 'Mod', '==', head.mod_revision)
          .then(
            this.#ns.put(key).value(candidateId).lease(leaseId),
            this.#ns.put(`${LEADER_SINCE_PREFIX}${headLease}`).value(sinceValue(candidateId)).lease(leaseId),
          )
          .commit();
        if (taken.succeeded) {
          return await this.#leadership(lease, key, candidateId, Number(taken.header.revision), silence);
        }
        if (attempt === 3) throw new PlatformError('CONFLICT', `the lead of ${fromId} kept changing; try again`);
      }
    } catch (err) {
      silence.stop();
      if (!this.#closed) {
        this.#leases.delete(lease);
        void lease.revoke().catch(() => undefined);
      }
      throw this.#failure(err, `take the lead over from ${fromId}`);
    }
  }

  async leader(): Promise<LeaderInfo | null> {
    this.#ifOpen();
    try {
      const head = (await this.#ns.getAll().prefix(LEADER_PREFIX).sort('Create', 'Ascend').limit(1).exec()).kvs[0];
      if (head === undefined) return null;
      const id = head.value.toString();
      // The key may come back with the namespace in front: the lease id is its last segment either way.
      const leaseId = head.key.toString().split('/').pop() ?? '';
      const recorded = await this.#ns.get(`${LEADER_SINCE_PREFIX}${leaseId}`).string();
      const since = recorded === null ? null : sinceOf(recorded, id);
      return { id, since };
    } catch (err) {
      throw this.#failure(err, 'read the leader');
    }
  }

  /** Revokes every lease this client holds (its nodes leave, its leadership passes on) and disconnects. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#shutDown(async (lease) => {
      await withTimeout(lease.revoke(), REVOKE_TIMEOUT_MS);
    });
  }

  /**
   * Disconnects as a killed process would: keepalives stop and nothing is revoked, so this client's nodes and
   * leadership stay in etcd until their leases expire. For tests of lease expiry.
   */
  async abandon(): Promise<void> {
    if (this.#closed) return;
    await this.#shutDown((lease) => {
      lease.release();
      return Promise.resolve();
    });
  }

  async #shutDown(endLease: (lease: Lease) => Promise<void>): Promise<void> {
    this.#closed = true;
    for (const campaign of this.#campaigns) campaign.abort(closedError());
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    // Watchers must be detached before the client closes, or etcd3 retries their stream forever.
    await Promise.all([...this.#watches].map((watch) => watch.close()));
    this.#watches.clear();
    await Promise.all([...this.#leases].map(endLease));
    this.#leases.clear();
    this.#client.close();
  }

  async #register(info: NodeInfo, ttlSeconds: number): Promise<NodeRegistration> {
    this.#ifOpen();
    checkNodeInfo(info);
    checkTtlSeconds(ttlSeconds, 'node TTL');
    const nodeId = info.nodeId;
    const key = `${NODES_PREFIX}${nodeId}`;
    const lease = this.#ns.lease(ttlSeconds);
    this.#leases.add(lease);
    let lost = false;
    let deregistered = false;
    const lostPromise = new Promise<void>((resolve) => {
      lease.on('lost', (err) => {
        if (this.#closed || deregistered) return;
        lost = true;
        this.#leases.delete(lease);
        this.#logger.warn({ err, nodeId }, 'the lease of a registered node was lost');
        void lease.revoke().catch(() => undefined); // if etcd still has it, the stale entry goes now
        resolve();
      });
    });
    try {
      await lease.put(key).value(JSON.stringify(info)).exec();
    } catch (err) {
      this.#leases.delete(lease);
      void lease.revoke().catch(() => undefined);
      throw this.#failure(err, `register node ${nodeId}`);
    }
    return {
      lost: lostPromise,
      update: async (next) => {
        this.#ifOpen();
        checkNodeInfo(next);
        if (next.nodeId !== nodeId) {
          throw new PlatformError('BAD_REQUEST', `registration of node ${nodeId} cannot publish node ${next.nodeId}`);
        }
        if (deregistered) throw new PlatformError('BAD_REQUEST', `node ${nodeId} was deregistered`);
        if (lost) throw this.#failure(new Error('the lease is gone'), `update node ${nodeId}`);
        try {
          await lease.put(key).value(JSON.stringify(next)).exec();
        } catch (err) {
          throw this.#failure(err, `update node ${nodeId}`);
        }
      },
      deregister: async () => {
        if (deregistered || this.#closed) return;
        // Revoking deletes the entry with the lease, and only if it is still on this lease (a restarted process may
        // have registered the same node id again since).
        try {
          await lease.revoke();
        } catch (err) {
          throw this.#failure(err, `deregister node ${nodeId} (it expires within ${ttlSeconds} s)`);
        }
        deregistered = true;
        this.#leases.delete(lease);
      },
    };
  }

  async #list(): Promise<NodeInfo[]> {
    this.#ifOpen();
    try {
      const response = await this.#ns.getAll().prefix(NODES_PREFIX).exec();
      return response.kvs
        .map((kv) => memberFromKv(kv, this.#logger)?.info)
        .filter((info): info is NodeInfo => info !== undefined)
        .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
    } catch (err) {
      throw this.#failure(err, 'list nodes');
    }
  }

  async #watchMembership(listener: (event: MembershipEvent) => void): Promise<{ close(): Promise<void> }> {
    this.#ifOpen();
    try {
      return this.#track(await watchMembership(this.#ns, listener, this.#logger));
    } catch (err) {
      throw this.#failure(err, 'watch nodes');
    }
  }

  async #getRouting(): Promise<RoutingTable | null> {
    this.#ifOpen();
    let kv: IKeyValue | undefined;
    try {
      kv = (await this.#ns.get(ROUTING_KEY).exec()).kvs[0];
    } catch (err) {
      throw this.#failure(err, 'read the routing table');
    }
    return kv ? this.#routingFromKv(kv) : null;
  }

  /**
   * Compare-and-swap on the version: read the stored table, give up if its version is not `expectedVersion`, else
   * write in a transaction that requires the key's mod revision to be the one just read. Every write raises the
   * version, so "mod revision unchanged" implies "version unchanged"; `expectedVersion` 0 requires that the key was
   * never created.
   */
  async #putRouting(table: RoutingTable, expectedVersion: number): Promise<boolean> {
    this.#ifOpen();
    checkRoutingPut(table, expectedVersion);
    const value = JSON.stringify(table);
    try {
      let guard: string;
      if (expectedVersion === 0) {
        guard = '0';
      } else {
        const current = (await this.#ns.get(ROUTING_KEY).exec()).kvs[0];
        if (!current || this.#routingFromKv(current).version !== expectedVersion) return false;
        guard = current.mod_revision;
      }
      const column = expectedVersion === 0 ? 'Create' : 'Mod';
      const written = await this.#ns
        .if(ROUTING_KEY, column, '==', guard)
        .then(this.#ns.put(ROUTING_KEY).value(value))
        .commit();
      return written.succeeded;
    } catch (err) {
      throw this.#failure(err, 'write the routing table');
    }
  }

  async #watchRouting(listener: (table: RoutingTable) => void): Promise<{ close(): Promise<void> }> {
    this.#ifOpen();
    let last: { revision: string; value: string } | undefined;
    const deliver = (kv: IKeyValue): void => {
      const value = kv.value.toString();
      // A resync re-reads the table the listener already has: deliver only a change.
      if (last?.revision === kv.mod_revision && last.value === value) return;
      last = { revision: kv.mod_revision, value };
      let table: RoutingTable;
      try {
        table = this.#routingFromKv(kv);
      } catch (err) {
        this.#logger.error({ err }, 'ignoring an invalid routing table');
        return;
      }
      listener(table);
    };
    const watch = new ResyncingWatch(
      this.#ns,
      { key: ROUTING_KEY },
      {
        snapshot: (kvs) => kvs[0] && deliver(kvs[0]),
        change: ({ type, kv }) => type === 'put' && deliver(kv),
      },
      this.#logger,
    );
    try {
      await watch.start();
    } catch (err) {
      throw this.#failure(err, 'watch the routing table');
    }
    return this.#track(watch);
  }

  /**
   * The stored table, checked (`routingTableFromStored`): bad entries are dropped with a warning, so that the next
   * write and every push encode; a value that is no table at all is INTERNAL.
   */
  #routingFromKv(kv: IKeyValue): RoutingTable {
    let parsed: unknown;
    try {
      parsed = JSON.parse(kv.value.toString());
    } catch {
      parsed = undefined;
    }
    const stored = routingTableFromStored(parsed);
    if (stored === null) {
      throw new PlatformError('INTERNAL', `${this.#options.prefix}/${ROUTING_KEY} in etcd is not a routing table`);
    }
    if (stored.dropped.length > 0) {
      this.#logger.warn(
        { dropped: stored.dropped.slice(0, 20), count: stored.dropped.length },
        `ignoring ${stored.dropped.length} invalid entries of ${this.#options.prefix}/${ROUTING_KEY} in etcd`,
      );
    }
    return stored.table;
  }

  /** Waits until no election key created before `revision` is left (etcd's election recipe: a queue by creation). */
  async #waitForPredecessors(revision: string, signal: AbortSignal): Promise<void> {
    const before = (BigInt(revision) - 1n).toString();
    for (;;) {
      signal.throwIfAborted();
      const older = await this.#ns
        .getAll()
        .prefix(LEADER_PREFIX)
        .maxCreateRevision(before)
        .sort('Create', 'Descend')
        .limit(1)
        .exec();
      const predecessor = older.kvs[0];
      if (!predecessor) return;
      await this.#whenDeleted(predecessor.key.toString(), signal);
    }
  }

  /** Resolves once `key` is gone (it may be already); rejects when `signal` aborts. */
  #whenDeleted(key: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        this.#watches.delete(watch);
        void watch.close();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => settle(signal.reason as Error);
      const watch = new ResyncingWatch(
        this.#ns,
        { key },
        {
          snapshot: (kvs) => kvs.length === 0 && settle(),
          change: ({ type }) => type === 'delete' && settle(),
        },
        this.#logger,
      );
      this.#watches.add(watch);
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      watch.start().catch((err: unknown) => settle(err instanceof Error ? err : new Error(String(err))));
    });
  }

  /**
   * The lead held through `lease` and `key` by `candidateId`. It is lost when etcd3 gives the lease up, when no
   * keepalive answer came for a whole TTL (the lease may have expired on etcd's side while we could not tell), when
   * the key is deleted, or when its value becomes another candidate's (a takeover moved it to the taker's lease). The
   * lease is then revoked, so that a successor does not wait for it; after a takeover that deletes nothing, as the
   * key and its `leader-since` record are on the taker's lease.
   */
  async #leadership(
    lease: Lease,
    key: string,
    candidateId: string,
    term: number,
    silence: KeepaliveWatchdog,
  ): Promise<Lead> {
    let ended = false;
    let resolveLost!: () => void;
    const lost = new Promise<void>((resolve) => {
      resolveLost = resolve;
    });
    const end = (): void => {
      ended = true;
      silence.stop();
      lease.off('lost', onLeaseLost);
      this.#watches.delete(ownKey);
      this.#leases.delete(lease);
      void ownKey.close();
    };
    const lose = (reason: string, err?: unknown): void => {
      if (ended || this.#closed) return;
      end();
      this.#logger.warn({ err, key, candidateId }, `leadership lost: ${reason}`);
      void lease.revoke().catch(() => undefined);
      resolveLost();
    };
    const check = (kv: IKeyValue | undefined, deleted: boolean): void => {
      if (kv === undefined || deleted) lose('the election key is gone');
      else if (kv.value.toString() !== candidateId) lose(`${kv.value.toString()} took the lead over`);
    };
    const onLeaseLost = (err: unknown): void => lose('etcd3 gave the lease up', err);
    lease.on('lost', onLeaseLost);
    silence.onSilence = () => lose('no keepalive answer for a whole TTL');
    const ownKey = new ResyncingWatch(
      this.#ns,
      { key },
      {
        snapshot: (kvs) => check(kvs[0], false),
        change: ({ type, kv }) => check(kv, type === 'delete'),
      },
      this.#logger,
    );
    this.#watches.add(ownKey);
    try {
      await ownKey.start();
    } catch (err) {
      end();
      throw err;
    }
    return {
      term,
      lost,
      resign: async () => {
        if (ended || this.#closed) return;
        end();
        try {
          await lease.revoke();
        } catch (err) {
          throw this.#failure(err, `resign (leadership passes on within ${this.#options.leaderTtlSeconds} s)`);
        }
      },
    };
  }

  /** A timer that fires when `lease` got no keepalive answer for `ttlSeconds`; each answer restarts it. */
  #keepaliveWatchdog(lease: Lease, ttlSeconds: number): KeepaliveWatchdog {
    const watchdog: KeepaliveWatchdog = { onSilence: () => undefined, stop: () => undefined };
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      watchdog.onSilence();
    }, ttlSeconds * 1000);
    const onAnswer = (): void => void timer.refresh();
    lease.on('keepaliveSucceeded', onAnswer);
    this.#timers.add(timer);
    watchdog.stop = () => {
      clearTimeout(timer);
      this.#timers.delete(timer);
      lease.off('keepaliveSucceeded', onAnswer);
    };
    return watchdog;
  }

  #track(watch: ResyncingWatch): { close(): Promise<void> } {
    this.#watches.add(watch);
    return {
      close: async () => {
        this.#watches.delete(watch);
        await watch.close();
      },
    };
  }

  #failure(err: unknown, action: string): PlatformError {
    return etcdFailure(err, this.#options, action);
  }

  #ifOpen(): void {
    if (this.#closed) throw closedError();
  }
}

interface KeepaliveWatchdog {
  onSilence: () => void;
  stop: () => void;
}

function closedError(): PlatformError {
  return new PlatformError('UNAVAILABLE', 'cluster client is closed');
}

/** The `leader-since` value of a candidate elected (or taking over) now. */
function sinceValue(candidateId: string): string {
  return JSON.stringify({ id: candidateId, since: Date.now() });
}

/** The election time a `leader-since` value records for `id`; null when it is not one. */
function sinceOf(recorded: string, id: string): Date | null {
  try {
    const parsed = JSON.parse(recorded) as { id?: unknown; since?: unknown };
    return parsed.id === id && typeof parsed.since === 'number' ? new Date(parsed.since) : null;
  } catch {
    return null;
  }
}
