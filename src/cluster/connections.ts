import { openEtcdCluster, type EtcdCluster, type EtcdClusterOptions } from '../adapters/etcd/etcd-cluster.js';
import type { Logger } from '../core/logger.js';
import type { NodeInfo } from '../core/ports/cluster.js';
import { GrpcAgentClient } from '../gateway/grpc-agent-client.js';
import type { RemoteAgent } from './membership-directory.js';

/** Where the cluster lives in etcd, as every process is configured. */
export interface EtcdSettings {
  etcdEndpoints: string[];
  etcdPrefix?: string | undefined;
  /** etcd's user authentication and TLS, when etcd asks for them. */
  etcdSecurity?: EtcdSecurity | undefined;
  /** The control-plane election's lease TTL in seconds (managers): a crashed leader is followed within it. */
  leaderTtlSeconds?: number | undefined;
}

/** How a process authenticates to etcd. */
export type EtcdSecurity = Pick<EtcdClusterOptions, 'auth' | 'tls'>;

/** The cluster of agent nodes (`{prefix}/nodes`, routing, leader). */
export function openNodesCluster(settings: EtcdSettings, logger: Logger): Promise<EtcdCluster> {
  const { etcdSecurity: security, leaderTtlSeconds } = settings;
  return openEtcdCluster({
    endpoints: settings.etcdEndpoints,
    prefix: settings.etcdPrefix,
    logger,
    ...(leaderTtlSeconds === undefined ? {} : { leaderTtlSeconds }),
    ...security,
  });
}

/** Where gateways register (so the leader can push the routing table to them): beside the nodes, apart. */
export function openGatewaysCluster(settings: EtcdSettings, logger: Logger): Promise<EtcdCluster> {
  const prefix = `${settings.etcdPrefix ?? '/savassan'}/gateways`;
  return openEtcdCluster({ endpoints: settings.etcdEndpoints, prefix, logger, ...settings.etcdSecurity });
}

/**
 * Where managers register (`{prefix}/managers/nodes/{id}`): beside the nodes, apart, in the same NodeInfo registry.
 * A manager's entry carries its Leader gRPC address as `agentAddress`, `sandboxRuntime` 'manager' and capacity 0.
 */
export function openManagersCluster(settings: EtcdSettings, logger: Logger): Promise<EtcdCluster> {
  const prefix = `${settings.etcdPrefix ?? '/savassan'}/managers`;
  return openEtcdCluster({ endpoints: settings.etcdEndpoints, prefix, logger, ...settings.etcdSecurity });
}

/** How gateways and managers dial a node's Agent: gRPC with the cluster token. */
export function agentDialer(token: string, logger: Logger): (node: NodeInfo) => GrpcAgentClient & RemoteAgent {
  return (node) => new GrpcAgentClient({ nodeId: node.nodeId, address: node.agentAddress, token, logger });
}
