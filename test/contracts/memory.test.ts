import { MemoryMessageQueues } from '../../src/adapters/memory/memory-message-queues.js';
import { MemoryInvocationQueue } from '../../src/adapters/memory/memory-invocation-queue.js';
import { MemoryPool } from '../../src/adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../../src/adapters/memory/memory-provision-queue.js';
import { MemoryIntelligenceStore } from '../../src/adapters/memory/memory-intelligence-store.js';
import { poolContract } from './pool.contract.js';
import { intelligenceStoreContract } from './intelligence-store.contract.js';
import { provisionQueueContract } from './provision-queue.contract.js';
import { invocationQueueContract } from './invocation-queue.contract.js';
import { messageQueuesContract } from './message-queues.contract.js';

poolContract('MemoryPool', () => {
  const pool = new MemoryPool();
  return Promise.resolve({ pool, cleanup: () => pool.close() });
});

provisionQueueContract('MemoryProvisionQueue', (capacity) => {
  const queue = new MemoryProvisionQueue({ capacity });
  return Promise.resolve({ queue, cleanup: () => queue.close() });
});

invocationQueueContract('MemoryInvocationQueue', (settings) =>
  Promise.resolve({ queue: new MemoryInvocationQueue(settings), cleanup: () => Promise.resolve() }),
);

messageQueuesContract('MemoryMessageQueues', ({ now }) =>
  Promise.resolve({ queues: new MemoryMessageQueues({ now }), cleanup: () => Promise.resolve() }),
);

intelligenceStoreContract('MemoryIntelligenceStore', () =>
  Promise.resolve({
    intelligence: new MemoryIntelligenceStore(),
    close: () => Promise.resolve(),
    cleanup: () => Promise.resolve(),
  }),
);
