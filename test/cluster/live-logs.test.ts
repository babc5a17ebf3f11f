// Live logs in cluster mode: a gateway follows each Agent's output over its StreamLogs gRPC stream. Agents, a
// manager and a gateway run in this process on real etcd, Redis, PostgreSQL and S3; the gateway has no Agent of its
// own, so every line crosses the network. A node that joins while a client listens is followed too, and one that
// leaves is let go.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import type { SavassanClient } from '../../src/client/client.js';
import { startAgentNode, type AgentNode } from '../../src/cluster/agent-node.js';
import type { GatewayNode } from '../../src/cluster/gateway-node.js';
import type { ManagerNode } from '../../src/cluster/manager-node.js';
import { silentLogger } from '../../src/core/logger.js';
import { etcdBinary, startEtcdServer, type EtcdServer } from '../kit/etcd-server.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { redisServerAvailable, startRedisServer, type RedisServer } from '../kit/redis-server.js';
import { startS3Server, type S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { eventually } from '../helpers/server-process.js';
import { lineNumbers, openLogSocket } from '../helpers/live-logs.js';
import { startControlNodes } from '../helpers/control-nodes.js';

const talker = fileURLToPath(new URL('../fixtures/e2e/talker', import.meta.url));
const prefix = '/live-logs-test';
const token = `token-${randomUUID()}`;

function skipReason(): string | false {
  if (!existsSync(etcdBinary)) return 'etcd is not installed';
  if (!redisServerAvailable()) return 'redis-server is not installed';
  if (!existsSync('/usr/lib/postgresql')) return 'PostgreSQL is not installed';
  return false;
}

describe('live logs in a cluster', { skip: skipReason() }, () => {
  let etcd: EtcdServer;
  let redis: RedisServer;
  let postgres: SqlTestServer;
  let s3: S3Server;
  let root: string;
  const agents: AgentNode[] = [];
  let manager: ManagerNode;
  let gateway: GatewayNode;
  let client: SavassanClient;
  const etcdSettings = () => ({ etcdEndpoints: etcd.endpoints, etcdPrefix: prefix });
  const startAgent = (nodeId: string) =>
    startAgentNode({
      ...etcdSettings(),
      nodeId,
      dataDir: join(root, nodeId),
      listen: '127.0.0.1:0',
      token,
      capacity: 16,
      sandbox: 'process',
      stemCells: false,
      s3Url: `${s3.url}/live?createBucket=true`,
      leaseTtlSeconds: 5,
      logger: silentLogger,
    });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-live-'));
    [etcd, redis, postgres, s3] = await Promise.all([
      startEtcdServer(),
      startRedisServer(),
      startPostgresServer(),
      startS3Server(),
    ]);
    agents.push(await startAgent('node-0'));
    const backends = {
      ...etcdSettings(),
      token,
      redisUrl: redis.url,
      dbUrl: postgres.url(await postgres.createDatabase()),
      s3Url: `${s3.url}/live?createBucket=true`,
      queueCapacity: 100,
      logger: silentLogger,
    };
    ({ manager, gateway, client } = await startControlNodes(backends, root));
    await client.deploy('talker', await readBundle(talker));
  });

  after(async () => {
    await gateway?.close();
    await manager?.close();
    await Promise.all(agents.map((agent) => agent.close()));
    await Promise.allSettled([etcd?.stop(), redis?.close(), postgres?.stop(), s3?.stop()]);
    await rm(root, { recursive: true, force: true });
  });

  it("delivers an Agent's lines in order through the gateway, and follows a node that joins", async () => {
    const socket = await openLogSocket(gateway.url, 'talker');
    try {
      const first = await client.invoke('talker', { tag: 'c', lines: 100 });
      await socket.until((f) => f.some((l) => l.type === 'line' && l.line === 'c 99'));
      const mine = socket.lines().filter((f) => f.invocationId === first.invocationId);
      assert.deepEqual(
        lineNumbers(mine, 'c'),
        Array.from({ length: 100 }, (_, i) => i),
      );
      assert.ok(mine.every((f) => f.functionName === 'talker' && f.version === 1 && f.stream === 'stdout'));
      assert.equal((await client.getInvocation(first.invocationId)).nodeId, 'node-0');

      // node-1 joins while the client listens; node-0 leaves: the next sandbox runs on node-1.
      agents.push(await startAgent('node-1'));
      await eventually(
        async () => (await client.listNodes()).nodes.map((n) => `${n.nodeId}:${n.status}`),
        (nodes) => nodes.includes('node-1:ready'),
        15_000,
      );
      await agents[0]!.close();
      await eventually(
        async () => (await client.listNodes()).nodes.map((n) => n.nodeId),
        (nodes) => nodes.length === 1 && nodes[0] === 'node-1',
        15_000,
      );
      const second = await eventually(
        () => client.invoke('talker', { tag: 'd', lines: 20 }),
        () => true,
        15_000,
      );
      assert.equal((await client.getInvocation(second.invocationId)).nodeId, 'node-1');
      await socket.until((f) => f.some((l) => l.type === 'line' && l.line === 'd 19'));
      assert.deepEqual(
        lineNumbers(
          socket.lines().filter((f) => f.invocationId === second.invocationId),
          'd',
        ),
        Array.from({ length: 20 }, (_, i) => i),
      );
    } finally {
      await socket.close();
    }
  });
});
