import assert from 'node:assert/strict';

import { MemoryCluster } from '../../src/adapters/memory/memory-cluster.js';
import { clusterContract } from './cluster.contract.js';

clusterContract('MemoryCluster', ({ leaderTtlSeconds }) => {
  // The clients a test opens are peers of one cluster that no test holds itself.
  const root = new MemoryCluster({ leaderTtlSeconds });
  const clients: MemoryCluster[] = [];
  return Promise.resolve({
    open: () => {
      const client = root.peer();
      clients.push(client);
      return Promise.resolve(client);
    },
    expireLease: (nodeId) => {
      assert.equal(root.expireLease(nodeId), true, `no node ${nodeId}`);
      return Promise.resolve();
    },
    cleanup: async () => {
      for (const client of clients) await client.close();
      await root.close();
    },
  });
});
