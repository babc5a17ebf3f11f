import { EnvSealer } from '../adapters/sealed/env-sealer.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Cluster, RoutingTable } from '../core/ports/cluster.js';
import type { InstanceRef } from '../core/types.js';
import { openBackends, type BackendUrls } from '../embedded/backends.js';
import { pushRoutingTable } from '../gateway/grpc-routing.js';
import { Manager } from '../manager/manager.js';
import { Closers } from './closers.js';
import { agentDialer, openGatewaysCluster, openNodesCluster, type EtcdSecurity } from './connections.js';
import { MembershipDirectory } from './membership-directory.js';

export interface ManagerNodeOptions extends BackendUrls {
  managerId: string;
  dataDir: string;
  token: string;
  etcdEndpoints: string[];
  etcdPrefix?: string | undefined;
  etcdSecurity?: EtcdSecurity | undefined;
  concurrency: number;
  reconcileIntervalMs: number;
  queueCapacity: number;
  logger: Logger;
}

export interface ManagerNode {
  readonly managerId: string;
  /** Whether this Manager is the control-plane leader now. */
  isLeader(): boolean;
  close(): Promise<void>;
}

/** Cluster mode needs shared backends; say which one is missing rather than fall back to a private one. */
export function requireSharedBackends(role: string, urls: BackendUrls): void {
  if (urls.redisUrl === undefined) {
    throw new PlatformError('INVALID_CONFIG', `savassan ${role} needs Redis for the shared pool: pass --redis URL`);
  }
  if (urls.dbUrl === undefined) {
    throw new PlatformError('INVALID_CONFIG', `savassan ${role} needs a shared database: pass --db postgres://…`);
  }
}

/**
 * `savassan manager`: provisions sandboxes from the shared queue onto the cluster's nodes (placement by free
 * capacity and code locality). Every Manager consumes the queue; the elected leader alone reconciles (min
 * instances, idle reaping, lease reclaim, pool rebuild) and keeps the routing table in etcd current. A node that
 * leaves has its instances purged from the pool.
 */
export async function startManagerNode(options: ManagerNodeOptions): Promise<ManagerNode> {
  const { logger, managerId } = options;
  requireSharedBackends('manager', options);
  const closers = new Closers(logger);
  try {
    const backends = await openBackends({
      ...options,
      durability: 'process',
      sealer: EnvSealer.fromSecret(options.token),
    });
    closers.add(() => backends.close());
    const cluster = await openNodesCluster(options, logger);
    closers.add(() => cluster.close());
    const gatewaysCluster = await openGatewaysCluster(options, logger);
    closers.add(() => gatewaysCluster.close());
    const { pool } = backends;
    const gateways = new Map<string, string>();
    const leadership = new Leadership(cluster, managerId, logger, (table, to) => pushToGateways(table, to ?? gateways));
    // A gateway entry that never proves itself (a rogue one) is logged once, not at every push.
    const failing = new Set<string>();
    const pushToGateways = (table: RoutingTable, to: Map<string, string>): void => {
      for (const [gatewayId, address] of to) {
        void pushRoutingTable({ gatewayId, address }, options.token, table).then(
          () => failing.delete(gatewayId),
          (err: unknown) => {
            if (failing.has(gatewayId)) return;
            failing.add(gatewayId);
            logger.warn({ err, gatewayId, address }, 'could not push the routing table to a gateway');
          },
        );
      }
    };
    const gatewayWatch = await gatewaysCluster.membership.watch((event) => {
      if (event.type === 'leave') {
        gateways.delete(event.nodeId);
        failing.delete(event.nodeId);
        return;
      }
      gateways.set(event.node.nodeId, event.node.agentAddress);
      // A gateway that joins gets the current table at once.
      if (leadership.leading) leadership.pushCurrent(new Map([[event.node.nodeId, event.node.agentAddress]]));
    });
    closers.add(() => gatewayWatch.close());
    /** Set once the Manager exists: asks for replacements of what a node that left was running. */
    let replaceFor: (instances: InstanceRef[]) => void = () => {};
    const directory = await MembershipDirectory.open({
      membership: cluster.membership,
      connect: agentDialer(options.token, logger),
      onLeave: (nodeId) => {
        void pool.purgeNode(nodeId).then(
          (purged) => {
            logger.warn({ nodeId, purged: purged.length }, 'node left: its instances are purged from the pool');
            replaceFor(purged);
          },
          (err: unknown) => logger.warn({ err, nodeId }, 'could not purge the instances of a node that left'),
        );
      },
      onChange: () => leadership.publishRouting(),
      logger,
    });
    closers.add(() => directory.close());
    const manager = new Manager({
      queue: backends.queue,
      pool,
      metadata: backends.metadata,
      agents: directory,
      isLeader: () => leadership.leading,
      logger,
      concurrency: options.concurrency,
      reconcileIntervalMs: options.reconcileIntervalMs,
    });
    replaceFor = (instances) => manager.replaceFor(instances);
    manager.start();
    closers.add(() => manager.stop());
    leadership.start(() => directory.nodes());
    closers.add(() => leadership.stop());
    logger.info({ managerId, backends: backends.describe() }, 'manager started');
    return {
      managerId,
      isLeader: () => leadership.leading,
      close: () => closers.close(),
    };
  } catch (err) {
    await closers.close();
    throw err;
  }
}

/** Campaigns for the control-plane lead, again after losing it; while leading, keeps the routing table current. */
class Leadership {
  leading = false;
  private pushed = 0;
  private stopped = false;
  private resign: (() => Promise<void>) | null = null;
  private nodes: () => { nodeId: string; agentAddress: string }[] = () => [];

  constructor(
    private readonly cluster: Cluster,
    private readonly candidateId: string,
    private readonly logger: Logger,
    /** Push a table to the given gateways, or to all of them. */
    private readonly push: (table: RoutingTable, to?: Map<string, string>) => void,
  ) {}

  /** Push the table in etcd to some gateways (one that just joined). */
  pushCurrent(to: Map<string, string>): void {
    void this.cluster.routing.get().then(
      (table) => {
        if (table !== null) this.push(table, to);
      },
      (err: unknown) => this.logger.warn({ err }, 'could not read the routing table'),
    );
  }

  start(nodes: () => { nodeId: string; agentAddress: string }[]): void {
    this.nodes = nodes;
    void this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.leading = false;
    await this.resign?.();
  }

  /** Write the routing table (node → agent address) if this Manager leads; versions only go up. */
  publishRouting(): void {
    if (!this.leading) return;
    void this.writeRouting(this.nodes()).catch((err: unknown) =>
      this.logger.warn({ err }, 'could not write the routing table'),
    );
  }

  private pushAll(table: RoutingTable): void {
    this.pushed = table.version;
    this.push(table);
  }

  private async writeRouting(nodes: { nodeId: string; agentAddress: string }[]): Promise<void> {
    const entries: [string, string][] = nodes.map((node) => [node.nodeId, node.agentAddress]);
    const agents: Record<string, string> = Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1)));
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await this.cluster.routing.get();
      if (current !== null && JSON.stringify(current.agents) === JSON.stringify(agents)) {
        // Unchanged, but a new leader pushes what it leads with.
        if (this.pushed < current.version) this.pushAll(current);
        return;
      }
      const version = current?.version ?? 0;
      const table: RoutingTable = { version: version + 1, agents, updatedAt: Date.now() };
      if (await this.cluster.routing.put(table, version)) {
        this.pushAll(table);
        return;
      }
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const lead = await this.cluster.campaign(this.candidateId);
        if (this.stopped) {
          await lead.resign();
          return;
        }
        this.resign = () => lead.resign();
        this.leading = true;
        this.logger.info({ managerId: this.candidateId }, 'leading the control plane');
        this.publishRouting();
        await lead.lost;
        this.leading = false;
        this.resign = null;
        if (!this.stopped) this.logger.warn({ managerId: this.candidateId }, 'lost the control-plane lead');
      } catch (err) {
        this.leading = false;
        if (this.stopped) return;
        this.logger.warn({ err }, 'campaign failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
}
