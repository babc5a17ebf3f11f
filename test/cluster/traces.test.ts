// Traces in cluster mode: a gateway, a manager and an Agent, each a `savassan` process of its own (with real etcd,
// Redis, PostgreSQL and S3), each exporting its own spans to one real OTLP/HTTP receiver. One invocation's spans form
// one trace across the processes: the gateway's client span is the parent of the Agent's server span (the context
// crosses gRPC in the invoke request), the provisioning request carries it from the gateway's cold-start wait to
// the manager, and the manager's span to the Agent's sandbox init.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient } from '../../src/client/client.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { startEtcdServer, type EtcdServer } from '../kit/etcd-server.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { startRedisServer, type RedisServer } from '../kit/redis-server.js';
import { startS3Server, type S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { eventually } from '../helpers/server-process.js';
import { clusterSkipReason, track, type Proc } from '../helpers/cluster-processes.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repoRoot, 'bin', 'savassan.js');
const traced = join(repoRoot, 'test', 'fixtures', 'functions', 'traced');

describe('traces across a gateway, a manager and an Agent', { skip: clusterSkipReason() }, () => {
  let receiver: OtlpReceiver;
  let etcd: EtcdServer;
  let redis: RedisServer;
  let postgres: SqlTestServer;
  let s3: S3Server;
  let root: string;
  let gateway: SavassanClient;
  const procs: Proc[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-traces-'));
    await chmod(root, 0o711);
    [receiver, etcd, redis, postgres, s3] = await Promise.all([
      startOtlpReceiver(),
      startEtcdServer(),
      startRedisServer(),
      startPostgresServer(),
      startS3Server(),
    ]);
    const token = `token-${randomUUID()}`;
    const tokenFile = join(root, 'cluster-token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const env = {
      ...process.env,
      SAVASSAN_CLUSTER_TOKEN: token,
      SAVASSAN_S3_URL: `${s3.url}/traces?createBucket=true`,
      SAVASSAN_DB_URL: postgres.url(await postgres.createDatabase()),
      SAVASSAN_REDIS_URL: redis.url,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '20',
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
    gateway = new SavassanClient({ url });
    await eventually(
      async () => (await gateway.listNodes()).nodes.filter((node) => node.routed === true).length,
      (routed) => routed === 1,
      20_000,
    );
  });

  after(async () => {
    await Promise.all(procs.map((proc) => proc.stop()));
    await Promise.allSettled([etcd?.stop(), redis?.close(), postgres?.stop(), s3?.stop(), receiver?.close()]);
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('links the spans of each process into the caller trace', async () => {
    await gateway.deploy('traced', await readBundle(traced), { network: true });
    const callerTrace = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const response = await gateway.invoke(
      'traced',
      { otlp: `${receiver.url}/v1/traces` },
      { headers: { traceparent: `00-${callerTrace}-${callerSpan}-01` } },
    );
    assert.equal(response.start, 'cold');
    const seen = JSON.parse(response.payload) as { traceparent: string; exported: number };
    const child = (parent: ReceivedSpan, name: string): Promise<ReceivedSpan> =>
      receiver.waitFor((s) => s.traceId === callerTrace && s.parentSpanId === parent.spanId && s.name === name);

    const http = await receiver.waitFor((s) => s.traceId === callerTrace && s.parentSpanId === callerSpan);
    assert.equal(http.service, 'savassan-gateway');
    const checkout = await child(http, 'pool checkout');
    const wait = await child(checkout, 'cold start wait');
    const provision = await child(wait, 'provision');
    assert.equal(provision.service, 'savassan-manager');
    const init = await child(provision, 'sandbox init');
    assert.equal(init.service, 'savassan-agent');
    const call = await child(http, 'invoke traced');
    assert.equal(call.service, 'savassan-gateway');
    const agentSpan = await child(call, 'invoke traced');
    assert.equal(agentSpan.service, 'savassan-agent');
    assert.equal(agentSpan.attributes['savassan.node.id'], 'node-0');
    const run = await child(agentSpan, 'handler run');
    assert.equal(seen.traceparent, `00-${callerTrace}-${run.spanId}-01`);
    assert.equal(seen.exported, 200);
    await child(run, 'function work');
  });
});
