import { randomUUID } from 'node:crypto';
import { EnvSealer } from '../adapters/sealed/env-sealer.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { AgentApi, SandboxSpec } from '../core/ports/agent-api.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { NodeInfo, RoutingTable } from '../core/ports/cluster.js';
import { openBackends, type BackendUrls } from '../embedded/backends.js';
import {
  compileWorkflowBackendOptions,
  createWorkflowBackend,
  describeWorkflowBackend,
  type WorkflowBackendOptions,
} from '../embedded/workflow-backend.js';
import { unisolatedWarning } from '../sandbox/runtimes.js';
import { compileLambdaArnScope } from '../core/lambda-arn.js';
import type { LambdaArnScope } from '../core/lambda-arn.js';
import { BuiltinExecutionBackend } from '../workflows/builtin-backend.js';
import { StoreNodeSink } from '../workflows/node-sink.js';
import { WorkflowDeployer } from '../workflows/workflow-deployer.js';
import { createEventRunners } from '../events/async-dispatch.js';
import { createGateway } from '../gateway/gateway.js';
import { clusterLogFeed } from '../gateway/cluster-log-feed.js';
import type { GrpcAgentClient } from '../gateway/grpc-agent-client.js';
import { serveExecutionService } from '../gateway/grpc-executions.js';
import { serveRouting } from '../gateway/grpc-routing.js';
import { createClusterView } from '../gateway/cluster-view.js';
import { requireApiKeys } from '../gateway/http/api-keys.js';
import {
  agentDialer,
  openGatewaysCluster,
  openManagersCluster,
  openNodesCluster,
  type EtcdSecurity,
} from './connections.js';
import { requireSharedBackends, type PoolMode } from './manager-node.js';
import { clusterControlPlaneApi } from './control-plane-api.js';
import { EtcdControlDirectory } from './control-directory.js';
import { leaderPoolClients } from './leader-mode.js';
import { EtcdLeaderResolver } from './leader-resolver.js';
import { refuseIncompatibleLeader } from './upgrades.js';
import { readBuildInfo } from './build.js';
import { Closers } from './closers.js';
import { createTracer } from '../adapters/otel/tracing.js';
import { MembershipDirectory } from './membership-directory.js';
import { enforcementClaims } from '../core/cluster-checks.js';

const unverifiedWarning =
  'listed in etcd but did not prove it holds the cluster token: never called, placed on or routed to';

/** How long a gateway asked to leave keeps serving after it left the registry. */
const defaultDrainMs = 1500;

export interface GatewayNodeOptions extends BackendUrls {
  gatewayId: string;
  /** Where the warm pool lives: held by the leader (default without Redis) or in Redis. */
  pool?: PoolMode | undefined;
  /** Asked to leave (an upgrade's Shutdown call): the caller stops the process as on SIGTERM, which drains first. */
  onShutdown?: ((reason: string) => void) | undefined;
  /** How long it keeps serving after leaving the registry when asked to leave. Default 1.5 s. */
  drainMs?: number | undefined;
  dataDir: string;
  host: string;
  port: number;
  /** API keys as given (comma-separated values allowed); mandatory off loopback, see `requireApiKeys`. */
  apiKeys: readonly string[];
  token: string;
  etcdEndpoints: string[];
  etcdPrefix?: string | undefined;
  etcdSecurity?: EtcdSecurity | undefined;
  queueWaitMs: number;
  queueCapacity: number;
  /** Where this gateway takes the leader's routing pushes: `host:port` (port 0 picks one). */
  routingListen?: string | undefined;
  /** Where set, the gRPC ExecutionService (workflow executions) listens on `host` at this port (0 picks one). */
  grpcPort?: number | undefined;
  /** The region and account id of the Lambda API's ARNs (default `us-east-1`, `000000000000`). */
  lambdaArnScope?: Partial<LambdaArnScope> | undefined;
  /** Where workflow executions run: the built-in engine on the control-plane leader (default), or a FlyteAdmin. */
  workflowBackend?: WorkflowBackendOptions | undefined;
  /**
   * The arguments the gateway was started with after its role (never secrets), announced in its etcd entry so that an
   * upgrade can start its replacement alike.
   */
  launchArgs?: string[] | undefined;
  logger: Logger;
}

export interface GatewayNode {
  readonly url: string;
  /** Where the gRPC ExecutionService listens (`host:port`), or null without `grpcPort`. */
  readonly grpcAddress: string | null;
  close(): Promise<void>;
}

/**
 * `savassan gateway`: the HTTP API of a cluster. It takes instances from the shared pool (Redis), asks the Managers
 * for new ones through the shared queue, and calls the Agent named in each pool entry over gRPC; the live Agents
 * come from the etcd membership watch. Several gateways can serve side by side.
 */
export async function startGatewayNode(options: GatewayNodeOptions): Promise<GatewayNode> {
  const { logger } = options;
  const apiKeys = requireApiKeys(options.host, options.apiKeys);
  const lambdaArnScope = compileLambdaArnScope(options.lambdaArnScope);
  const workflowBackendConfig = compileWorkflowBackendOptions(options.workflowBackend);
  const poolMode = options.pool ?? (options.redisUrl === undefined ? 'leader' : 'redis');
  requireSharedBackends('gateway', options, poolMode);
  if (options.s3Url === undefined) {
    throw new PlatformError(
      'INVALID_CONFIG',
      'savassan gateway needs S3 for code and logs shared with the agents: pass --s3 URL',
    );
  }
  const closers = new Closers(logger);
  try {
    // First, and closed last: a bad tracing variable stops the start; the last spans are exported at the end.
    const tracer = await createTracer(process.env, 'savassan-gateway');
    closers.add(() => tracer.shutdown());
    const sealer = EnvSealer.fromSecret(options.token);
    const build = await readBuildInfo();
    const cluster = await openNodesCluster(options, logger);
    closers.add(() => cluster.close());
    const managersCluster = await openManagersCluster(options, logger);
    closers.add(() => managersCluster.close());
    if (poolMode === 'leader') await refuseIncompatibleLeader(cluster, managersCluster, build, 'gateway');
    const shared =
      poolMode === 'leader'
        ? leaderPoolClients({
            nodes: cluster,
            managers: managersCluster,
            token: options.token,
            queueCapacity: options.queueCapacity,
            logger,
          })
        : undefined;
    const backends = await openBackends({
      ...options,
      durability: 'process',
      sealer,
      sharedPool: shared,
    });
    closers.add(() => backends.close());
    const { pool, queue, metadata, traffic, invocations, messageQueues, triggers, functionUrls, blobStore } = backends;
    /** Set by a Shutdown call: the close drains first (see below). */
    let shuttingDown = false;
    // The leader pushes its routing table here; a node it no longer routes to is not dispatched to, even before
    // this gateway's own membership watch sees it leave.
    let routing: RoutingTable | null = null;
    /** Set once the gateway exists: drops what it cached about a function's versions. */
    let invalidate: (functionName: string) => void = () => {};
    const routingServer = await serveRouting({
      address: options.routingListen ?? '127.0.0.1:0',
      gatewayId: options.gatewayId,
      token: options.token,
      onTable: (table) => {
        routing = table;
        logger.info({ version: table.version, nodes: Object.keys(table.agents).length }, 'routing table received');
      },
      // A rollout step moved these functions' traffic: resolve them afresh rather than wait for the cache to expire.
      onTrafficChange: (functionNames) => functionNames.forEach((name) => invalidate(name)),
      // An upgrade retires this gateway: it leaves as on SIGTERM, after draining (see `drain` below).
      onShutdown: (reason) => {
        shuttingDown = true;
        options.onShutdown?.(reason);
      },
      logger,
    });
    closers.add(() => routingServer.close());
    const gatewaysCluster = await openGatewaysCluster(options, logger);
    closers.add(() => gatewaysCluster.close());
    const controlDirectory = new EtcdControlDirectory({
      nodes: cluster,
      gateways: gatewaysCluster,
      managers: managersCluster,
      token: options.token,
    });
    closers.add(() => Promise.resolve(controlDirectory.close()));
    const controlPlane = clusterControlPlaneApi({
      pool: poolMode,
      directory: controlDirectory,
      resolver: shared?.resolver ?? new EtcdLeaderResolver(cluster, managersCluster),
      build,
    });
    const announced: NodeInfo = {
      nodeId: options.gatewayId,
      agentAddress: routingServer.address,
      capacity: 0,
      sandboxes: 0,
      sandboxRuntime: 'gateway',
      isolating: false,
      codeCached: [],
      startedAt: Date.now(),
      build,
      ...(options.launchArgs === undefined ? {} : { args: options.launchArgs }),
    };
    const registration = await gatewaysCluster.registry.register(announced, 10);
    closers.add(() => registration.deregister());

    // The clients the membership dialed, by node: the live log feed follows each Agent's output through its own.
    const dial = agentDialer(options.token, logger);
    const clients = new Map<string, GrpcAgentClient>();
    let membershipChanged: () => void = () => {};
    const members = await MembershipDirectory.open({
      membership: cluster.membership,
      connect: (node) => {
        const client = dial(node);
        clients.set(node.nodeId, client);
        return client;
      },
      onLeave: (nodeId) => clients.delete(nodeId),
      onChange: () => membershipChanged(),
      logger,
    });
    closers.add(() => members.close());
    const agents = new RoutedDirectory(members, () => routing);
    const logFeed = clusterLogFeed({
      agents: () => agents.all().flatMap((agent) => clients.get(agent.nodeId) ?? []),
      logger,
    });
    membershipChanged = () => logFeed.refresh();
    /** Set once the event runners exist: runs what was just queued here. */
    let wake: (functionName: string) => void = () => {};
    // Built-in: workflow executions run on the control-plane leader (it polls the store); this gateway launches them,
    // serves their API, and claims and reports the node attempts its dispatcher runs.
    const workflowBackend = createWorkflowBackend(
      workflowBackendConfig,
      () => new BuiltinExecutionBackend({ store: backends.workflows, blobStore }),
    );
    const workflowDeployer = new WorkflowDeployer({
      store: backends.workflows,
      backend: workflowBackend,
      functionExists: async (name) => (await metadata.getFunction(name)) !== null,
    });
    const workflowSink = new StoreNodeSink({
      store: backends.workflows,
      blobStore,
      processId: `${options.gatewayId}:${randomUUID()}`,
    });
    const { server, setReady, resolver, run, asyncInvocations } = await createGateway({
      controlPlane,
      cluster: createClusterView('cluster', { leader: () => cluster.leader(), routing: () => routing, metadata }),
      pool,
      queue,
      metadata,
      traffic,
      invocations,
      schedules: backends.schedules,
      messageQueues,
      triggers,
      functionUrls,
      keyedHash: (text: string) => sealer.keyedHash(text),
      blobStore,
      agents,
      logFeed,
      queueWaitMs: options.queueWaitMs,
      onQueued: (name) => wake(name),
      apiKeys,
      lambdaArnScope,
      gatewayId: options.gatewayId,
      logger,
      tracer,
      workflows: { deployer: workflowDeployer, backend: workflowBackend },
      nodes: () =>
        Promise.resolve([
          ...members.nodes().map((node) => ({
            nodeId: node.nodeId,
            status: 'ready' as const,
            sandboxRuntime: node.sandboxRuntime,
            isolating: node.isolating,
            sandboxes: node.sandboxes,
            capacity: node.capacity,
            agentAddress: node.agentAddress,
            enforcement: enforcementClaims(node.enforcement),
            routed: routing === null ? undefined : node.nodeId in routing.agents,
            warnings: node.isolating ? [] : [unisolatedWarning],
          })),
          // What an unverified entry claims is shown as it claims it, with the reason it is not used.
          ...members.unverifiedNodes().map((node) => ({
            nodeId: node.nodeId,
            status: 'unverified' as const,
            sandboxRuntime: node.sandboxRuntime,
            isolating: node.isolating,
            sandboxes: node.sandboxes,
            capacity: node.capacity,
            agentAddress: node.agentAddress,
            routed: false,
            warnings: [unverifiedWarning],
          })),
        ]),
    });
    invalidate = (name) => resolver.invalidate(name);
    // Every gateway runs events: each is received by one of them at a time (the queues' visibility).
    const events = createEventRunners({
      invocations,
      messageQueues,
      triggers,
      metadata,
      run,
      asyncInvocations,
      queueWaitMs: options.queueWaitMs,
      lambdaArnScope,
      workflowSink,
      logger,
    });
    wake = (name) => events.wake(name);
    closers.add(async () => {
      if (shuttingDown) {
        // Retired by an upgrade: leave the registry first, so that clients following it (and load balancers
        // following readiness) stop sending here, and serve what still arrives for a moment.
        await registration.deregister().catch(() => undefined);
        setReady(false);
        await new Promise((resolve) => setTimeout(resolve, options.drainMs ?? defaultDrainMs));
      }
      setReady(false);
      // What is running finishes first, while the invoke path and backends are up; then the server's requests.
      await events.stop();
      await server.close();
    });
    const url = await server.listen({ host: options.host, port: options.port });
    // The URL is known once listening: the entry announces it from now on.
    await registration.update({ ...announced, url });
    let grpcAddress: string | null = null;
    if (options.grpcPort !== undefined) {
      const grpc = await serveExecutionService({
        address: `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.grpcPort}`,
        backend: workflowBackend,
        deployer: workflowDeployer,
        apiKeys,
        logger,
      });
      closers.add(() => grpc.close());
      grpcAddress = grpc.address;
    }
    setReady(true);
    events.start();
    logger.info(
      {
        url,
        grpcAddress,
        backends: backends.describe(),
        workflowBackend: describeWorkflowBackend(workflowBackendConfig),
      },
      'gateway started',
    );
    return { url, grpcAddress, close: () => closers.close() };
  } catch (err) {
    await closers.close();
    throw err;
  }
}

/**
 * The gateway's view of the Agents: the membership watch's clients, less any node the leader's latest routing
 * table leaves out (the leader saw it go first). Before any table arrives, membership alone decides.
 */
class RoutedDirectory implements AgentDirectory {
  constructor(
    private readonly members: MembershipDirectory,
    private readonly routing: () => RoutingTable | null,
  ) {}

  private routed(nodeId: string): boolean {
    const table = this.routing();
    return table === null || nodeId in table.agents;
  }

  get(nodeId: string): AgentApi | null {
    return this.routed(nodeId) ? this.members.get(nodeId) : null;
  }

  all(): AgentApi[] {
    return this.members.all().filter((agent) => this.routed(agent.nodeId));
  }

  place(spec: SandboxSpec, exclude?: ReadonlySet<string>): AgentApi | null {
    const unrouted = this.members
      .nodes()
      .map((node) => node.nodeId)
      .filter((nodeId) => !this.routed(nodeId));
    return this.members.place(spec, new Set([...(exclude ?? []), ...unrouted]));
  }
}
