import { openEtcdCluster, type EtcdCluster } from '../adapters/etcd/etcd-cluster.js';
import type { Logger } from '../core/logger.js';
import type { NodeInfo } from '../core/ports/cluster.js';
import { GrpcAgentClient } from '../gateway/grpc-agent-client.js';
import type { RemoteAgent } from './membership-directory.js';

/** Where the cluster lives in etcd, as every process is configured. */
export interface EtcdSettings {
  etcdEndpoints: string[];
  etcdPrefix?: string | undefined;
}

/** The cluster of agent nodes (`{prefix}/nodes`, routing, leader). */
export function openNodesCluster(settings: EtcdSettings, logger: Logger): Promise<EtcdCluster> {
  return openEtcdCluster({ endpoints: settings.etcdEndpoints, prefix: settings.etcdPrefix, logger });
}

/** Where gateways register (so the leader can push the routing table to them): beside the nodes, apart. */
export function openGatewaysCluster(settings: EtcdSettings, logger: Logger): Promise<EtcdCluster> {
  const prefix = `${settings.etcdPrefix ?? '/savassan'}/gateways`;
  return openEtcdCluster({ endpoints: settings.etcdEndpoints, prefix, logger });
}

/** How gateways and managers dial a node's Agent: gRPC with the cluster token. */
export function agentDialer(token: string): (node: NodeInfo) => RemoteAgent {
  return (node) => new GrpcAgentClient({ nodeId: node.nodeId, address: node.agentAddress, token });
}
