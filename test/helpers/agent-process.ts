// An Agent with its gRPC server in a process of its own, for tests that kill it (SIGKILL) mid-invocation.
// Usage: node --import tsx test/helpers/agent-process.ts <address> <blob dir> <work dir> <token>
// Prints `serving <address>` once the server is bound.
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { Agent } from '../../src/agent/agent.js';
import { serveAgent } from '../../src/agent/grpc-server.js';
import { ProcessRuntime } from '../../src/sandbox/process-runtime.js';

const [address = '', blobDir = '', workDir = '', token = ''] = process.argv.slice(2);
const agent = new Agent({
  nodeId: 'node-k',
  runtime: new ProcessRuntime(),
  blobStore: new FsBlobStore(blobDir),
  workDir,
});
const server = await serveAgent(agent, {
  address,
  token,
  nodeInfo: () =>
    Promise.resolve({
      nodeId: 'node-k',
      agentAddress: address,
      capacity: 4,
      sandboxes: 0,
      sandboxRuntime: 'process',
      isolating: false,
      codeCached: [],
      startedAt: Date.now(),
    }),
});
process.stdout.write(`serving ${server.address}\n`);
process.once('SIGTERM', () => {
  void server.close().then(() => agent.close());
});
