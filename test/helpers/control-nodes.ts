// One Manager and one Gateway in this process over shared backends, as the cluster tests start them beside their
// Agents (which each test starts its own way).
import { join } from 'node:path';
import { SavassanClient } from '../../src/client/client.js';
import { startGatewayNode, type GatewayNode } from '../../src/cluster/gateway-node.js';
import { startManagerNode, type ManagerNode, type ManagerNodeOptions } from '../../src/cluster/manager-node.js';

/** The settings the Manager and the Gateway share: etcd, the token, the backends, the queue and the logger. */
export type ControlNodeSettings = Omit<
  ManagerNodeOptions,
  'managerId' | 'dataDir' | 'concurrency' | 'reconcileIntervalMs'
>;

export interface ControlNodes {
  manager: ManagerNode;
  gateway: GatewayNode;
  /** A client of the gateway, without a key. */
  client: SavassanClient;
}

/** Starts `manager-0` and `gateway-0` (loopback, any port, no API keys), their data under `root`. */
export async function startControlNodes(settings: ControlNodeSettings, root: string): Promise<ControlNodes> {
  const manager = await startManagerNode({
    ...settings,
    managerId: 'manager-0',
    dataDir: join(root, 'manager'),
    concurrency: 2,
    reconcileIntervalMs: 200,
  });
  const gateway = await startGatewayNode({
    ...settings,
    gatewayId: 'gateway-0',
    dataDir: join(root, 'gateway'),
    host: '127.0.0.1',
    port: 0,
    apiKeys: [],
    queueWaitMs: 10_000,
  });
  return { manager, gateway, client: new SavassanClient({ url: gateway.url }) };
}
