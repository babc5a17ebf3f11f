// The Leader gRPC service the control-plane section's adapter comparison calls (bench/control-plane.ts), in a
// process of its own as a leading manager's is, like redis-server for RedisPool: every pool and queue call is served
// from a MemoryPool and a MemoryProvisionQueue, as the leader holds them. Arguments: the manager id and the token
// (a random one the bench makes for this loopback server alone). Prints `listening on ADDRESS`; stops on SIGTERM.
import { MemoryPool } from '../src/adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../src/adapters/memory/memory-provision-queue.js';
import { serveLeader } from '../src/leader/leader-server.js';
import { TestLeaderHost } from '../test/helpers/leader-host.js';

const [managerId = 'bench-leader', token = ''] = process.argv.slice(2);
const pool = new MemoryPool();
const queue = new MemoryProvisionQueue();
const server = await serveLeader({
  address: '127.0.0.1:0',
  managerId,
  token,
  host: new TestLeaderHost(managerId, { kind: 'local', pool, queue }),
});
process.stdout.write(`listening on ${server.address}\n`);
process.once('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
