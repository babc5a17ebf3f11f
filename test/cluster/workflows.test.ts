// Workflows in cluster mode: a gateway, a manager and an Agent, each a `savassan` process of its own (with real etcd,
// Redis, PostgreSQL and S3). The leading manager's engine polls the executions in PostgreSQL and queues node
// attempts; the gateway's dispatcher claims, runs and reports them. The test deploys and launches through the
// workflow store on the same database (the HTTP routes are tested elsewhere).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { SqlWorkflowStore } from '../../src/adapters/sql/sql-workflow-store.js';
import type { SqlMetadataStore } from '../../src/adapters/sql/sql-metadata-store.js';
import { openPostgresMetadataStore } from '../../src/adapters/postgres/postgres-metadata-store.js';
import { openS3BlobStore, type S3BlobStore } from '../../src/adapters/s3/s3-blob-store.js';
import { SavassanClient } from '../../src/client/client.js';
import type { ExecutionKey } from '../../src/core/ports/workflow-store.js';
import { terminalExecutionPhases } from '../../src/core/ports/workflow-store.js';
import type { ExecutionView } from '../../src/core/ports/execution-backend.js';
import { BuiltinExecutionBackend } from '../../src/workflows/builtin-backend.js';
import { WorkflowDeployer } from '../../src/workflows/workflow-deployer.js';
import { startEtcdServer, type EtcdServer } from '../kit/etcd-server.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { startRedisServer, type RedisServer } from '../kit/redis-server.js';
import { startS3Server, type S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { eventually } from '../helpers/server-process.js';
import { clusterSkipReason, track, type Proc } from '../helpers/cluster-processes.js';
import { workflowFunctionBundle } from '../helpers/workflow-functions.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repoRoot, 'bin', 'savassan.js');

describe('workflows across a gateway, a manager and an Agent', { skip: clusterSkipReason() }, () => {
  let etcd: EtcdServer;
  let redis: RedisServer;
  let postgres: SqlTestServer;
  let s3: S3Server;
  let root: string;
  let metadata: SqlMetadataStore;
  let blobs: S3BlobStore;
  let backend: BuiltinExecutionBackend;
  let deployer: WorkflowDeployer;
  const procs: Proc[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-workflows-'));
    await chmod(root, 0o711);
    [etcd, redis, postgres, s3] = await Promise.all([
      startEtcdServer(),
      startRedisServer(),
      startPostgresServer(),
      startS3Server(),
    ]);
    const token = `token-${randomUUID()}`;
    const tokenFile = join(root, 'cluster-token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const dbUrl = postgres.url(await postgres.createDatabase());
    const s3Url = `${s3.url}/workflows?createBucket=true`;
    const env = {
      ...process.env,
      SAVASSAN_CLUSTER_TOKEN: token,
      SAVASSAN_S3_URL: s3Url,
      SAVASSAN_DB_URL: dbUrl,
      SAVASSAN_REDIS_URL: redis.url,
    };
    const common = ['--etcd', etcd.endpoints.join(','), '--log-level', 'warn'];
    const agentArgs = [cli, 'agent', '--node-id', 'node-0', '--listen', '127.0.0.1:0', '--sandbox', 'process'];
    agentArgs.push('--no-stem-cells', '--data-dir', join(root, 'agent'), '--token-file', tokenFile, '--json');
    const agent = track('agent', spawn(process.execPath, [...agentArgs, ...common], { env }));
    procs.push(agent);
    await agent.waitFor(/^\{"role":"agent".*\}$/m);
    const managerArgs = [cli, 'manager', '--id', 'manager-0', '--data-dir', join(root, 'manager'), '--json'];
    const manager = track('manager', spawn(process.execPath, [...managerArgs, ...common], { env }));
    procs.push(manager);
    await manager.waitFor(/^\{"role":"manager".*\}$/m);
    const gatewayArgs = [cli, 'gateway', '--port', '0', '--data-dir', join(root, 'gateway'), '--json'];
    const gatewayProc = track('gateway', spawn(process.execPath, [...gatewayArgs, ...common], { env }));
    procs.push(gatewayProc);
    const [, url = ''] = await gatewayProc.waitFor(/^\{"role":"gateway","id":"[^"]+","address":"(http:\/\/[^"]+)"\}$/m);
    const gateway = new SavassanClient({ url });
    await eventually(
      async () => (await gateway.listNodes()).nodes.filter((node) => node.routed === true).length,
      (routed) => routed === 1,
      20_000,
    );
    await gateway.deploy('fn', await workflowFunctionBundle(root), { asyncConcurrency: 20, timeoutSeconds: 30 });
    metadata = await openPostgresMetadataStore(dbUrl);
    blobs = await openS3BlobStore(s3Url);
    const store = new SqlWorkflowStore(metadata.shared());
    backend = new BuiltinExecutionBackend({ store, blobStore: blobs });
    deployer = new WorkflowDeployer({
      store,
      backend,
      functionExists: async (name) => (await metadata.getFunction(name)) !== null,
    });
  });

  after(async () => {
    await Promise.all(procs.map((proc) => proc.stop()));
    await metadata?.close();
    await blobs?.close();
    await Promise.allSettled([etcd?.stop(), redis?.close(), postgres?.stop(), s3?.stop()]);
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  async function ended(key: ExecutionKey): Promise<ExecutionView> {
    for (;;) {
      const view = await backend.get(key);
      if (terminalExecutionPhases.has(view.closure.phase)) return view;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('runs a chain, a fan-out, a map and a retry: the leader steps, the gateway runs the attempts', async () => {
    const counter = join(root, 'retry-counter');
    const startLog = join(root, 'starts.log');
    await deployer.deploy('mixed', {
      inputs: { xs: 'array' },
      nodes: {
        a: { function: 'fn', input: { n: 2, tag: 'a', startLog } },
        b: { function: 'fn', input: { n: '$.nodes.a.output.n', mul: 10, tag: 'b', startLog } },
        c: { function: 'fn', input: { n: '$.nodes.a.output.n', add: 1, tag: 'c', startLog } },
        m: { map: '$.inputs.xs', function: 'fn', concurrency: 2, input: { n: '$.item', mul: 2, tag: 'm', startLog } },
        flaky: {
          function: 'fn',
          input: { n: 5, counter, failTimes: 1, tag: 'flaky', startLog },
          retries: 1,
          retryDelaySeconds: 0,
        },
        sum: {
          function: 'fn',
          input: { n: '$.nodes.b.output.n', add: '$.nodes.c.output.n', tag: 'sum', startLog },
        },
      },
      output: { sum: '$.nodes.sum.output.n', doubled: '$.nodes.m.output', flaky: '$.nodes.flaky.output.n' },
    });
    const key = await backend.launch({
      project: 'savassan',
      domain: 'development',
      workflow: 'mixed',
      inputs: { xs: [1, 2, 3] },
    });
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    const { outputs } = await backend.data(key);
    assert.deepEqual(
      {
        ...(outputs as Record<string, unknown>),
        doubled: (outputs as { doubled: { n: number }[] }).doubled.map((o) => o.n),
      },
      { sum: 23, doubled: [2, 4, 6], flaky: 5 },
    );
    const nodes = new Map((await backend.nodeExecutions(key)).map((n) => [n.id.node_id, n]));
    assert.deepEqual(
      nodes.get('flaky')?.attempts.map((a) => a.phase),
      ['FAILED', 'SUCCEEDED'],
    );
    // Each attempt ran once: one run per attempt of every function node and map element.
    const starts = (await readFile(startLog, 'utf8'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as { tag: string }).tag);
    const count = (tag: string) => starts.filter((t) => t === tag).length;
    assert.deepEqual(
      ['a', 'b', 'c', 'sum', 'flaky', 'm'].map((tag) => [tag, count(tag)]),
      [
        ['a', 1],
        ['b', 1],
        ['c', 1],
        ['sum', 1],
        ['flaky', 2],
        ['m', 3],
      ],
    );
  });
});
