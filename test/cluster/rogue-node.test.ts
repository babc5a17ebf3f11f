// Entries in etcd are not trusted. A rogue node entry and a rogue gateway entry, written straight into a real etcd,
// point at a gRPC server the test runs, which records every call and its metadata; a third entry points at a TCP
// relay to the real Agent. The manager, the gateway and the control-plane leader (in this process, with real etcd,
// Redis, PostgreSQL and S3) must never send the cluster token to any of them, never place a sandbox on them or put
// them in the routing table, and list them as unverified, while the real Agent keeps serving.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Server, ServerCredentials, status, type Metadata, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { readBundle } from '../../src/client/bundle.js';
import type { SavassanClient } from '../../src/client/client.js';
import { startAgentNode, type AgentNode } from '../../src/cluster/agent-node.js';
import type { GatewayNode } from '../../src/cluster/gateway-node.js';
import type { ManagerNode } from '../../src/cluster/manager-node.js';
import type { Logger } from '../../src/core/logger.js';
import type { NodeInfo } from '../../src/core/ports/cluster.js';
import { AgentService } from '../../src/gen/savassan/agent/v1/agent.js';
import { RoutingService } from '../../src/gen/savassan/gateway/v1/routing.js';
import { etcdBinary, startEtcdServer, type EtcdServer } from '../kit/etcd-server.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { redisServerAvailable, startRedisServer, type RedisServer } from '../kit/redis-server.js';
import { startS3Server, type S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { eventually } from '../helpers/server-process.js';
import { startTcpRelay, type TcpRelay } from '../kit/tcp-relay.js';
import { startControlNodes } from '../helpers/control-nodes.js';

const probe = fileURLToPath(new URL('../fixtures/e2e/probe', import.meta.url));
const prefix = '/rogue-test';
const token = `token-${randomUUID()}`;

function skipReason(): string | false {
  if (!existsSync(etcdBinary)) return 'etcd is not installed';
  if (!redisServerAvailable()) return 'redis-server is not installed';
  if (!existsSync('/usr/lib/postgresql')) return 'PostgreSQL is not installed';
  return false;
}

interface Recorded {
  method: string;
  authorization: unknown[];
}

/** A gRPC server serving the Agent and Routing services as an attacker would: it records every call. */
async function startRecorder(): Promise<{ address: string; calls: Recorded[]; close(): Promise<void> }> {
  const calls: Recorded[] = [];
  const server = new Server();
  const implementation = (methods: readonly string[]): UntypedServiceImplementation =>
    Object.fromEntries(
      methods.map((method) => [
        method,
        (
          call: { metadata: Metadata },
          callback: (error: { code: number; details: string } | null, value?: unknown) => void,
        ) => {
          calls.push({ method, authorization: call.metadata.get('authorization') });
          // A forged proof: the attacker does not hold the token.
          if (method === 'prove') callback(null, { proof: randomBytes(32) });
          else callback({ code: status.UNIMPLEMENTED, details: 'recorder' });
        },
      ]),
    );
  server.addService(AgentService, implementation(Object.keys(AgentService)));
  server.addService(RoutingService, implementation(Object.keys(RoutingService)));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) =>
      err === null ? resolve(bound) : reject(err),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    calls,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** Keeps warnings, to count them. */
function recordingLogger(warnings: string[]): Logger {
  const logger: Logger = {
    debug() {},
    info() {},
    warn(obj, msg) {
      warnings.push(`${(obj as { nodeId?: string }).nodeId ?? '-'}: ${msg ?? ''}`);
    },
    error() {},
    child: () => logger,
  };
  return logger;
}

function rogueInfo(nodeId: string, address: string, runtime = 'process'): NodeInfo {
  // Everything an attacker would claim to attract placement: room, isolation, the code already cached.
  return {
    nodeId,
    agentAddress: address,
    capacity: 1000,
    sandboxes: 0,
    sandboxRuntime: runtime,
    isolating: true,
    codeCached: [],
    startedAt: Date.now(),
  };
}

describe('rogue entries in etcd', { skip: skipReason() }, () => {
  let etcd: EtcdServer;
  let redis: RedisServer;
  let postgres: SqlTestServer;
  let s3: S3Server;
  let root: string;
  let recorder: Awaited<ReturnType<typeof startRecorder>>;
  let relay: TcpRelay;
  let agent: AgentNode;
  let manager: ManagerNode;
  let gateway: GatewayNode;
  let client: SavassanClient;
  const warnings: string[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-rogue-'));
    [etcd, redis, postgres, s3, recorder] = await Promise.all([
      startEtcdServer(),
      startRedisServer(),
      startPostgresServer(),
      startS3Server(),
      startRecorder(),
    ]);
    const etcdSettings = { etcdEndpoints: etcd.endpoints, etcdPrefix: prefix };
    agent = await startAgentNode({
      ...etcdSettings,
      nodeId: 'node-0',
      dataDir: join(root, 'agent'),
      listen: '127.0.0.1:0',
      token,
      capacity: 16,
      sandbox: 'process',
      stemCells: false,
      s3Url: `${s3.url}/rogue?createBucket=true`,
      leaseTtlSeconds: 5,
      logger: recordingLogger([]),
    });
    relay = await startTcpRelay(agent.address);
    // Written by anyone who reaches etcd: no lease, no proof.
    await etcd.ctl(['put', `${prefix}/nodes/rogue`, JSON.stringify(rogueInfo('rogue', recorder.address))]);
    await etcd.ctl(['put', `${prefix}/nodes/relay`, JSON.stringify(rogueInfo('relay', relay.address))]);
    const gatewayEntry = { ...rogueInfo('gateway-rogue', recorder.address, 'gateway'), capacity: 0 };
    await etcd.ctl(['put', `${prefix}/gateways/nodes/gateway-rogue`, JSON.stringify(gatewayEntry)]);
    const backends = {
      ...etcdSettings,
      token,
      redisUrl: redis.url,
      dbUrl: postgres.url(await postgres.createDatabase()),
      s3Url: `${s3.url}/rogue?createBucket=true`,
      queueCapacity: 100,
      logger: recordingLogger(warnings),
    };
    ({ manager, gateway, client } = await startControlNodes(backends, root));
  });

  after(async () => {
    await gateway?.close();
    await manager?.close();
    await agent?.close();
    relay?.close();
    await recorder?.close();
    await Promise.allSettled([etcd?.stop(), redis?.close(), postgres?.stop(), s3?.stop()]);
    await rm(root, { recursive: true, force: true });
  });

  it('never sends them the token, places on or routes to them, and lists them as unverified', async () => {
    await client.deploy('probe', await readBundle(probe), { maxInstances: 4 });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => client.invoke('probe', { i, sleepMs: 50 })));
    const records = await Promise.all(results.map((result) => client.getInvocation(result.invocationId)));
    assert.deepEqual([...new Set(records.map((record) => record.nodeId))], ['node-0'], 'only the real node ran them');

    // Once the leader has published a table with the real node, and both rogue nodes were asked for their proofs.
    const nodes = await eventually(
      async () => (await client.listNodes()).nodes,
      (list) => list.find((node) => node.nodeId === 'node-0')?.routed === true && list.length === 3,
      15_000,
    );
    const byId = new Map(nodes.map((node) => [node.nodeId, node]));
    assert.equal(byId.get('node-0')?.status, 'ready');
    for (const nodeId of ['rogue', 'relay']) {
      assert.equal(byId.get(nodeId)?.status, 'unverified', `${nodeId}: ${JSON.stringify(byId.get(nodeId))}`);
      assert.equal(byId.get(nodeId)?.routed, false);
      assert.match(byId.get(nodeId)?.warnings.join(' ') ?? '', /did not prove it holds the cluster token/);
    }
    const routing = JSON.parse(await etcd.ctl(['get', '--print-value-only', `${prefix}/routing`])) as {
      agents: Record<string, string>;
    };
    assert.deepEqual(Object.keys(routing.agents), ['node-0']);

    // Let the leader reconcile and push a few more rounds: still nothing reaches the recorder with the token.
    await client.invoke('probe', { after: 'reconcile' });
    // The manager and the gateway each asked once, and again at least once (every 5 s while etcd lists it).
    const proofs = await eventually(
      () => Promise.resolve(recorder.calls.filter((call) => call.method === 'prove').length),
      (count) => count >= 4,
      15_000,
    );
    assert.ok(proofs >= 4, `${proofs} proofs asked of the recorder`);
    const methods = [...new Set(recorder.calls.map((call) => call.method))];
    assert.deepEqual(methods, ['prove'], 'the recorder was only asked for proofs');
    assert.deepEqual(
      recorder.calls.filter((call) => call.authorization.length > 0),
      [],
      'no call to a rogue entry carried the cluster token',
    );
    // Logged once by each of the manager and the gateway, not at every new try.
    for (const nodeId of ['rogue', 'relay']) {
      const logged = warnings.filter((warning) => warning.startsWith(`${nodeId}: a node listed in etcd did not prove`));
      assert.equal(logged.length, 2, warnings.join('\n'));
    }
    const pushes = warnings.filter((warning) => warning.endsWith('could not push the routing table to a gateway'));
    assert.equal(pushes.length, 1, warnings.join('\n'));
  });

  it('forgets a rogue entry that etcd drops, and the real node keeps serving', async () => {
    await etcd.ctl(['del', `${prefix}/nodes/rogue`]);
    const ids = await eventually(
      async () => (await client.listNodes()).nodes.map((node) => node.nodeId).sort(),
      (list) => !list.includes('rogue'),
      15_000,
    );
    assert.deepEqual(ids, ['node-0', 'relay']);
    assert.ok((await client.invoke('probe', {})).invocationId !== '');
  });
});
