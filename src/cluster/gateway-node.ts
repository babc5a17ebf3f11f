import { randomUUID } from 'node:crypto';
import { openEtcdCluster } from '../adapters/etcd/etcd-cluster.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { openBackends, type BackendUrls } from '../embedded/backends.js';
import { Deployer } from '../gateway/deployer.js';
import { FunctionResolver } from '../gateway/function-resolver.js';
import { GrpcAgentClient } from '../gateway/grpc-agent-client.js';
import { requireApiKeys } from '../gateway/http/api-keys.js';
import { createGatewayServer } from '../gateway/http/server.js';
import { Invoker } from '../gateway/invoker.js';
import { GatewayMetrics } from '../gateway/metrics.js';
import { requireSharedBackends } from './manager-node.js';
import { MembershipDirectory } from './membership-directory.js';

export interface GatewayNodeOptions extends BackendUrls {
  gatewayId: string;
  dataDir: string;
  host: string;
  port: number;
  /** API keys as given (comma-separated values allowed); mandatory off loopback, see `requireApiKeys`. */
  apiKeys: readonly string[];
  token: string;
  etcdEndpoints: string[];
  etcdPrefix?: string | undefined;
  queueWaitMs: number;
  queueCapacity: number;
  logger: Logger;
}

export interface GatewayNode {
  readonly url: string;
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
  requireSharedBackends('gateway', options);
  if (options.s3Url === undefined) {
    throw new PlatformError(
      'INVALID_CONFIG',
      'savassan gateway needs S3 for code and logs shared with the agents: pass --s3 URL',
    );
  }
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) await close().catch((err: unknown) => logger.warn({ err }, 'close failed'));
  };
  try {
    const backends = await openBackends({ ...options, durability: 'process' });
    closers.push(() => backends.close());
    const cluster = await openEtcdCluster({ endpoints: options.etcdEndpoints, prefix: options.etcdPrefix, logger });
    closers.push(() => cluster.close());
    const { pool, queue, metadata, blobStore } = backends;
    const agents = await MembershipDirectory.open({
      membership: cluster.membership,
      connect: (node) => new GrpcAgentClient({ nodeId: node.nodeId, address: node.agentAddress, token: options.token }),
      logger,
    });
    closers.push(() => agents.close());
    const resolver = new FunctionResolver(metadata);
    const deployer = new Deployer({ metadata, blobStore, pool, agents, resolver, logger, onChange: () => {} });
    const invoker = new Invoker({
      pool,
      queue,
      metadata,
      resolver,
      agents,
      gatewayId: options.gatewayId || `gateway-${randomUUID()}`,
      queueWaitMs: options.queueWaitMs,
      logger,
    });
    let ready = false;
    const server = await createGatewayServer({
      invoker,
      deployer,
      metadata,
      blobStore,
      metrics: new GatewayMetrics(),
      apiKeys,
      logger,
      ready: () => ready,
      nodes: () =>
        Promise.resolve(
          agents.nodes().map((node) => ({
            nodeId: node.nodeId,
            status: 'ready' as const,
            sandboxRuntime: node.sandboxRuntime,
            isolating: node.isolating,
            sandboxes: node.sandboxes,
            capacity: node.capacity,
            agentAddress: node.agentAddress,
            warnings: node.isolating
              ? []
              : ['sandboxes are plain processes: function code is NOT isolated from the host'],
          })),
        ),
    });
    closers.push(async () => {
      ready = false;
      await server.close();
    });
    const url = await server.listen({ host: options.host, port: options.port });
    ready = true;
    logger.info({ url, backends: backends.describe() }, 'gateway started');
    let closing: Promise<void> | undefined;
    return { url, close: () => (closing ??= closeAll()) };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
