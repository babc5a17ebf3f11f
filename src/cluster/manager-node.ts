import { EnvSealer } from '../adapters/sealed/env-sealer.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { InstanceRef } from '../core/types.js';
import { pinFunctionVersion } from '../workflows/pin-function.js';
import { ControlPlane } from '../control-plane/control-plane.js';
import { functionMustExist } from '../events/function-must-exist.js';
import { AsyncInvocations } from '../events/async-invocations.js';
import { openBackends, type BackendUrls } from '../embedded/backends.js';
import { pushRoutingTable } from '../gateway/grpc-routing.js';
import { Manager } from '../manager/manager.js';
import { Closers } from './closers.js';
import { createTracer } from '../adapters/otel/tracing.js';
import {
  agentDialer,
  openGatewaysCluster,
  openManagersCluster,
  openNodesCluster,
  type EtcdSecurity,
} from './connections.js';
import { readBuildInfo } from './build.js';
import { leaderPoolClients, startControlService } from './leader-mode.js';
import { createUpgrades, refuseIncompatibleLeader, type UpgradeSettings } from './upgrades.js';
import { MembershipDirectory } from './membership-directory.js';

export interface ManagerNodeOptions extends BackendUrls {
  managerId: string;
  /** Where the warm pool lives: held by the leader (default without Redis) or in Redis. */
  pool?: PoolMode | undefined;
  /** Where this manager's Leader gRPC service listens (`host:port`, port 0 picks one). Default 127.0.0.1:0. */
  listen?: string | undefined;
  /** The address other processes dial, when not `listen`'s. */
  advertise?: string | undefined;
  /** Followers the leader keeps (`--pool leader`); `auto`: ⌈log₂(managers)⌉, at least 1. */
  followers?: number | 'auto' | undefined;
  /** The election's lease TTL in seconds: a crashed leader is followed within it. Default 10. */
  leaderTtlSeconds?: number | undefined;
  /** Where `savassan upgrade` finds builds named by version, and how it starts processes. */
  upgrades?: UpgradeSettings | undefined;
  /** The arguments this process was started with after its role: an upgrade starts its replacement with them. */
  launchArgs?: string[] | undefined;
  /** Asked to leave (the control plane's Shutdown): the caller stops the process as on SIGTERM. */
  onShutdown?: ((reason: string) => void) | undefined;
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
  /** Where its Leader gRPC service listens (`--pool leader`), else null. */
  readonly controlAddress: string | null;
  /** Whether this Manager is the control-plane leader now. */
  isLeader(): boolean;
  close(): Promise<void>;
}

/** How often the leader reads the active workflow executions (ms). */
const workflowPollMs = 500;

/**
 * Where the cluster's warm pool and provisioning queue live: held by the control-plane leader (`leader`, no Redis
 * needed) or in Redis.
 */
export type PoolMode = 'leader' | 'redis';

/** Cluster mode needs shared backends; say which one is missing rather than fall back to a private one. */
export function requireSharedBackends(role: string, urls: BackendUrls, pool: PoolMode = 'redis'): void {
  if (pool === 'redis' && urls.redisUrl === undefined) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `savassan ${role} --pool redis needs Redis for the shared pool: pass --redis URL (or use --pool leader)`,
    );
  }
  if (urls.dbUrl === undefined) {
    throw new PlatformError('INVALID_CONFIG', `savassan ${role} needs a shared database: pass --db postgres://…`);
  }
}

/**
 * `savassan manager`: provisions sandboxes from the shared queue onto the cluster's nodes (placement by free
 * capacity and code locality). Every Manager consumes the queue and campaigns for the control-plane lead; the
 * leader alone runs the control plane (see `ControlPlane`). A node that leaves has its instances purged from the pool.
 */
export async function startManagerNode(options: ManagerNodeOptions): Promise<ManagerNode> {
  const { logger, managerId } = options;
  const poolMode = options.pool ?? (options.redisUrl === undefined ? 'leader' : 'redis');
  requireSharedBackends('manager', options, poolMode);
  const build = await readBuildInfo();
  const closers = new Closers(logger);
  try {
    // First, and closed last: a bad tracing variable stops the start; the last spans are exported at the end.
    const tracer = await createTracer(process.env, 'savassan-manager');
    closers.add(() => tracer.shutdown());
    const cluster = await openNodesCluster(options, logger);
    closers.add(() => cluster.close());
    const gatewaysCluster = await openGatewaysCluster(options, logger);
    closers.add(() => gatewaysCluster.close());
    const managersCluster = await openManagersCluster(options, logger);
    closers.add(() => managersCluster.close());
    if (poolMode === 'leader') await refuseIncompatibleLeader(cluster, managersCluster, build, 'manager');
    const shared =
      poolMode === 'leader'
        ? leaderPoolClients({
            nodes: cluster,
            managers: managersCluster,
            token: options.token,
            queueCapacity: options.queueCapacity,
            logger,
            selfId: managerId,
          })
        : undefined;
    const backends = await openBackends({
      ...options,
      durability: 'process',
      sealer: EnvSealer.fromSecret(options.token),
      sharedPool: shared,
    });
    closers.add(() => backends.close());
    const { pool } = backends;
    /** Set once the Manager exists: asks for replacements of what a node that left was running. */
    let replaceFor: (instances: InstanceRef[]) => void = () => {};
    /** Set once the control plane exists: the leader publishes a new routing table. */
    let nodesChanged: () => void = () => {};
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
      onChange: () => nodesChanged(),
      logger,
    });
    closers.add(() => directory.close());
    const manager = new Manager({
      queue: backends.queue,
      pool,
      metadata: backends.metadata,
      agents: directory,
      logger,
      concurrency: options.concurrency,
      tracer,
    });
    replaceFor = (instances) => manager.replaceFor(instances);
    /** Queues schedules' events. */
    const leaderInvocations = new AsyncInvocations({
      queue: backends.invocations,
      check: functionMustExist(backends.metadata),
    });
    // Node attempts: the engine pinned a version that exists; a function deleted since fails the attempt as it runs.
    const workflowInvocations = new AsyncInvocations({ queue: backends.invocations, check: () => Promise.resolve() });
    /** Set once the control service exists: the lead moves the leader-held state with it. */
    let leadChanged: { onLead: () => void; onLose: () => void } = { onLead: () => {}, onLose: () => {} };
    const controlPlane = new ControlPlane({
      pool,
      metadata: backends.metadata,
      traffic: backends.traffic,
      agents: directory,
      provisioning: manager,
      schedules: { schedules: backends.schedules, asyncInvocations: leaderInvocations },
      // The leader polls the executions: node attempts are claimed and reported by the gateways' dispatchers.
      workflows: {
        store: backends.workflows,
        blobStore: backends.blobStore,
        submit: (name, eventJson, submitOptions) => workflowInvocations.submit(name, eventJson, submitOptions),
        pinFunction: pinFunctionVersion(backends.metadata, backends.traffic),
        pollMs: workflowPollMs,
      },
      cluster: {
        cluster,
        candidateId: managerId,
        nodes: () => directory.nodes(),
        push: (gateway, table) => pushRoutingTable(gateway, options.token, table),
        onLead: () => leadChanged.onLead(),
        onLose: () => leadChanged.onLose(),
      },
      reconcileIntervalMs: options.reconcileIntervalMs,
      logger,
    });
    nodesChanged = () => controlPlane.nodesChanged();
    const gatewayWatch = await gatewaysCluster.membership.watch((event) => {
      if (event.type === 'leave') controlPlane.gatewayLeft(event.nodeId);
      else controlPlane.gatewayJoined({ gatewayId: event.node.nodeId, address: event.node.agentAddress });
    });
    closers.add(() => gatewayWatch.close());
    let controlAddress: string | null = null;
    if (poolMode === 'leader') {
      const service = await startControlService({
        managerId,
        build,
        token: options.token,
        listen: options.listen ?? '127.0.0.1:0',
        advertise: options.advertise,
        followers: options.followers ?? 'auto',
        queueCapacity: options.queueCapacity,
        lead: {
          get leading() {
            return controlPlane.leading;
          },
          get term() {
            return controlPlane.term;
          },
          takeOver: (fromId) => controlPlane.takeOver(fromId),
        },
        nodes: cluster,
        gateways: gatewaysCluster,
        managers: managersCluster,
        traffic: backends.traffic,
        schedules: backends.schedules,
        routingVersion: async () => (await cluster.routing.get())?.version ?? 0,
        onShutdown: (reason) => options.onShutdown?.(reason),
        logger,
      });
      leadChanged = { onLead: () => service.node.onLead(), onLose: () => service.node.onLose() };
      service.node.upgrades = createUpgrades({
        settings: options.upgrades,
        node: service.node,
        directory: service.directory,
        dataDir: options.dataDir,
        token: options.token,
        build,
        logger,
      });
      controlAddress = service.server.address;
      const registration = await managersCluster.registry.register(
        {
          nodeId: managerId,
          agentAddress: options.advertise ?? service.server.address,
          capacity: 0,
          sandboxes: 0,
          sandboxRuntime: 'manager',
          isolating: false,
          codeCached: [],
          startedAt: Date.now(),
          build,
          args: options.launchArgs,
        },
        options.leaderTtlSeconds ?? 10,
      );
      closers.add(() => registration.deregister());
      manager.start();
      closers.add(() => manager.stop());
      controlPlane.start();
      closers.add(() => controlPlane.stop());
      service.node.start();
      // Closed first: a leader hands its state over before its loops stop and it resigns.
      closers.add(() => service.close());
    } else {
      manager.start();
      closers.add(() => manager.stop());
      controlPlane.start();
      closers.add(() => controlPlane.stop());
    }
    logger.info({ managerId, backends: backends.describe(), controlAddress }, 'manager started');
    return {
      managerId,
      controlAddress,
      isLeader: () => controlPlane.leading,
      close: () => closers.close(),
    };
  } catch (err) {
    await closers.close();
    throw err;
  }
}
