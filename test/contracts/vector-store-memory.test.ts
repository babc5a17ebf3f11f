import { MemoryVectorStore } from '../../src/adapters/memory/memory-vector-store.js';
import { vectorStoreContract } from './vector-store.contract.js';

vectorStoreContract('memory (exact)', (dimensions) =>
  Promise.resolve({ store: new MemoryVectorStore(dimensions), cleanup: () => Promise.resolve() }),
);
