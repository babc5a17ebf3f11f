// What agents and gateways announce in etcd: the build they run, and for a gateway its HTTP URL (once it listens)
// and the arguments it was started with. An agent and a gateway run in this process with real etcd, Redis,
// PostgreSQL and S3; the test reads their entries straight from etcd.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { startAgentNode, type AgentNode } from '../../src/cluster/agent-node.js';
import { readBuildInfo } from '../../src/cluster/build.js';
import { startGatewayNode, type GatewayNode } from '../../src/cluster/gateway-node.js';
import { silentLogger } from '../../src/core/logger.js';
import { etcdBinary, startEtcdServer, type EtcdServer } from '../kit/etcd-server.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { redisServerAvailable, startRedisServer, type RedisServer } from '../kit/redis-server.js';
import { startS3Server, type S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { eventually } from '../helpers/server-process.js';

const prefix = '/announce-test';
const token = `token-${randomUUID()}`;

function skipReason(): string | false {
  if (!existsSync(etcdBinary)) return 'etcd is not installed';
  if (!redisServerAvailable()) return 'redis-server is not installed';
  if (!existsSync('/usr/lib/postgresql')) return 'PostgreSQL is not installed';
  return false;
}

describe('cluster entries in etcd', { skip: skipReason() }, () => {
  let etcd: EtcdServer;
  let redis: RedisServer;
  let postgres: SqlTestServer;
  let s3: S3Server;
  let root: string;
  let agent: AgentNode;
  let gateway: GatewayNode;
  const launchArgs = ['--port', '0', '--id', 'gateway-a', '--data-dir', '/srv/savassan'];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-announce-'));
    [etcd, redis, postgres, s3] = await Promise.all([
      startEtcdServer(),
      startRedisServer(),
      startPostgresServer(),
      startS3Server(),
    ]);
    const etcdSettings = { etcdEndpoints: etcd.endpoints, etcdPrefix: prefix };
    const s3Url = `${s3.url}/announce?createBucket=true`;
    agent = await startAgentNode({
      ...etcdSettings,
      nodeId: 'node-a',
      dataDir: join(root, 'agent'),
      listen: '127.0.0.1:0',
      token,
      capacity: 2,
      sandbox: 'process',
      stemCells: false,
      s3Url,
      leaseTtlSeconds: 30,
      logger: silentLogger,
    });
    gateway = await startGatewayNode({
      ...etcdSettings,
      token,
      redisUrl: redis.url,
      dbUrl: postgres.url(await postgres.createDatabase()),
      s3Url,
      queueCapacity: 100,
      logger: silentLogger,
      gatewayId: 'gateway-a',
      dataDir: join(root, 'gateway'),
      host: '127.0.0.1',
      port: 0,
      apiKeys: [],
      queueWaitMs: 1_000,
      launchArgs,
    });
  });

  after(async () => {
    await gateway?.close();
    await agent?.close();
    await Promise.allSettled([etcd?.stop(), redis?.close(), postgres?.stop(), s3?.stop()]);
    await rm(root, { recursive: true, force: true });
  });

  /** The entry at `key`; a node whose lease lapsed on a busy machine registers again, so it may take a moment. */
  const entry = (key: string): Promise<Record<string, unknown>> =>
    eventually(
      async () =>
        JSON.parse((await etcd.ctl(['get', `${prefix}/${key}`, '--print-value-only'])).trim()) as Record<
          string,
          unknown
        >,
      () => true,
    );

  it('an agent announces its build', async () => {
    const node = await entry('nodes/node-a');
    assert.deepEqual(node.build, await readBuildInfo());
    assert.equal(node.url, undefined);
  });

  it('a gateway announces its build, its HTTP URL and its launch arguments', async () => {
    const node = await entry('gateways/nodes/gateway-a');
    assert.deepEqual(node.build, await readBuildInfo());
    assert.equal(node.url, gateway.url);
    assert.deepEqual(node.args, launchArgs);
  });
});
