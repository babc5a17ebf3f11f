import { openEtcdCluster } from '../adapters/etcd/etcd-cluster.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { openBackends, type BackendUrls } from '../embedded/backends.js';
import { createGateway } from '../gateway/gateway.js';
import { GrpcAgentClient } from '../gateway/grpc-agent-client.js';
import { requireApiKeys } from '../gateway/http/api-keys.js';
import { requireSharedBackends } from './manager-node.js';
import { Closers } from './closers.js';
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
  const closers = new Closers(logger);
  try {
    const backends = await openBackends({ ...options, durability: 'process' });
    closers.add(() => backends.close());
    const cluster = await openEtcdCluster({ endpoints: options.etcdEndpoints, prefix: options.etcdPrefix, logger });
    closers.add(() => cluster.close());
    const { pool, queue, metadata, blobStore } = backends;
    const agents = await MembershipDirectory.open({
      membership: cluster.membership,
      connect: (node) => new GrpcAgentClient({ nodeId: node.nodeId, address: node.agentAddress, token: options.token }),
      logger,
    });
    closers.add(() => agents.close());
    const { server, setReady } = await createGateway({
      pool,
      queue,
      metadata,
      blobStore,
      agents,
      queueWaitMs: options.queueWaitMs,
      apiKeys,
      gatewayId: options.gatewayId,
      logger,
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
    closers.add(async () => {
      setReady(false);
      await server.close();
    });
    const url = await server.listen({ host: options.host, port: options.port });
    setReady(true);
    logger.info({ url, backends: backends.describe() }, 'gateway started');
    return { url, close: () => closers.close() };
  } catch (err) {
    await closers.close();
    throw err;
  }
}
