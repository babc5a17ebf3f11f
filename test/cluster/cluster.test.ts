// A real cluster on one machine: 3 agent hosts in network namespaces (ip netns + veth), etcd, Redis, PostgreSQL
// and S3 (s3rver), 2 managers and 2 gateways, each its own `savassan` process. Invocations spread across the
// nodes; SIGKILL of an agent under load loses no acknowledged record, the node leaves within its lease TTL and
// errors stop; an etcd restart is survived.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient } from '../../src/client/client.js';
import { createTestNetwork, netnsUnavailable, type TestNetwork } from '../kit/netns.js';
import { startEtcdServer, etcdBinary, type EtcdServer } from '../kit/etcd-server.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { startRedisServer, redisServerAvailable, type RedisServer } from '../kit/redis-server.js';
import { startS3Server, type S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { eventually, runCli } from '../helpers/server-process.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repoRoot, 'bin', 'savassan.js');
const echo = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
const leaseTtlSeconds = 2;

function skipReason(): string | false {
  const netns = netnsUnavailable();
  if (netns !== null) return netns;
  if (!existsSync(etcdBinary)) return 'etcd is not installed';
  if (!redisServerAvailable()) return 'redis-server is not installed';
  if (!existsSync('/usr/lib/postgresql')) return 'PostgreSQL is not installed';
  return false;
}

interface Proc {
  name: string;
  child: ChildProcess;
  output: () => string;
  /** Resolves with the first match of `pattern` in stdout. */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>;
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

function track(name: string, child: ChildProcess): Proc {
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    child,
    output: () => output,
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`${name} did not print ${pattern}:\n${output}`)), timeoutMs);
        const check = (): void => {
          const match = pattern.exec(output);
          if (match === null) return;
          clearTimeout(deadline);
          resolve(match);
        };
        child.stdout?.on('data', check);
        void exited.then(() => {
          clearTimeout(deadline);
          reject(new Error(`${name} exited:\n${output}`));
        });
        check();
      }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

describe('a 3-node cluster with 2 gateways and 2 managers', { skip: skipReason() }, () => {
  let network: TestNetwork;
  let etcd: EtcdServer;
  let redis: RedisServer;
  let postgres: SqlTestServer;
  let s3: S3Server;
  let root: string;
  const agents: Proc[] = [];
  const others: Proc[] = [];
  const gateways: SavassanClient[] = [];
  const gatewayUrls: string[] = [];
  /** How gateways are started: environment, common flags, and the metadata database's name. */
  let gatewayEnv: NodeJS.ProcessEnv;
  let commonArgs: string[];
  let database: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-cluster-'));
    await chmod(root, 0o711);
    network = await createTestNetwork(3);
    [etcd, redis, postgres, s3] = await Promise.all([
      startEtcdServer({ host: network.bridgeIp }),
      startRedisServer(),
      startPostgresServer(),
      startS3Server({ host: network.bridgeIp }),
    ]);
    const token = `token-${randomUUID()}`;
    // Secrets come from the environment or files, never the arguments (visible to every local user in `ps`).
    const tokenFile = join(root, 'cluster-token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    database = await postgres.createDatabase();
    const env = {
      ...process.env,
      SAVASSAN_CLUSTER_TOKEN: token,
      SAVASSAN_S3_URL: `${s3.url}/cluster?createBucket=true`,
      SAVASSAN_DB_URL: postgres.url(database),
      SAVASSAN_REDIS_URL: redis.url,
    };
    const common = ['--etcd', etcd.endpoints.join(','), '--log-level', 'warn'];
    gatewayEnv = env;
    commonArgs = common;
    for (const [i, host] of network.hosts.entries()) {
      const args = [cli, 'agent', '--node-id', `node-${i}`, '--listen', `${host.ip}:7070`, '--capacity', '8'];
      args.push('--sandbox', 'process', '--no-stem-cells', '--lease-ttl', String(leaseTtlSeconds));
      args.push('--data-dir', join(root, `agent-${i}`), '--token-file', tokenFile, '--json', ...common);
      const agentEnv = { ...env, SAVASSAN_CLUSTER_TOKEN: '' };
      agents.push(
        track(`agent ${i}`, host.spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: agentEnv })),
      );
    }
    // With --json, each role says once that it runs in one JSON line.
    const announced = await Promise.all(agents.map((agent) => agent.waitFor(/^\{"role":"agent".*\}$/m)));
    assert.deepEqual(
      announced.map(([line]) => (JSON.parse(line) as { id: string; address: string }).id),
      ['node-0', 'node-1', 'node-2'],
    );
    for (const i of [0, 1]) {
      const args = [cli, 'manager', '--id', `manager-${i}`, '--data-dir', join(root, `manager-${i}`)];
      if (i === 1) args.push('--json');
      others.push(track(`manager ${i}`, spawn(process.execPath, [...args, ...common], { env })));
    }
    for (const i of [0, 1]) {
      const args = [cli, 'gateway', '--port', '0', '--data-dir', join(root, `gateway-${i}`), ...common];
      if (i === 1) args.push('--json');
      const gateway = track(`gateway ${i}`, spawn(process.execPath, args, { env }));
      others.push(gateway);
      const [, url = ''] =
        i === 1
          ? await gateway.waitFor(/^\{"role":"gateway","id":"[^"]+","address":"(http:\/\/[^"]+)"\}$/m)
          : await gateway.waitFor(/listening on (http:\/\/\S+)/);
      gatewayUrls.push(url);
      gateways.push(new SavassanClient({ url }));
    }
    await others[0]!.waitFor(/is running/);
    await others[1]!.waitFor(/^\{"role":"manager","id":"manager-1","address":null\}$/m);
  });

  after(async () => {
    await Promise.all([...others, ...agents].map((proc) => proc.stop()));
    await Promise.allSettled([etcd?.stop(), redis?.close(), postgres?.stop(), s3?.stop()]);
    await network?.destroy();
    await rm(root, { recursive: true, force: true });
  });

  it('lists the three nodes with their capacity, through the API and the CLI', async () => {
    const nodes = await eventually(
      async () => (await gateways[0]!.listNodes()).nodes,
      (list) => list.length === 3,
      10_000,
    );
    assert.deepEqual(nodes.map((n) => n.nodeId).sort(), ['node-0', 'node-1', 'node-2']);
    // The leader pushed its routing table to both gateways (they registered under gateways/ in etcd).
    for (const gateway of gateways) {
      const routed = await eventually(
        async () => (await gateway.listNodes()).nodes.map((n) => n.routed === true),
        (flags) => flags.length === 3 && flags.every(Boolean),
        10_000,
      );
      assert.deepEqual(routed, [true, true, true], 'every node is in the routing table pushed to this gateway');
    }
    const cliOut = await runCli(gatewayUrls[1]!, ['nodes']);
    assert.equal(cliOut.code, 0, cliOut.stderr);
    for (const id of ['node-0', 'node-1', 'node-2']) assert.match(cliOut.stdout, new RegExp(id));
  });

  it('deploys through one gateway, invokes through both, and spreads sandboxes across the nodes', async () => {
    // Nine instances kept warm on nodes that take 8 each: however the load below meets them, two nodes hold them.
    await gateways[0]!.deploy('echo', await readBundle(echo), { maxInstances: 9, minInstances: 9 });
    await eventually(
      async () => (await gateways[0]!.listNodes()).nodes.reduce((sum, node) => sum + node.sandboxes, 0),
      (sandboxes) => sandboxes >= 9,
      20_000,
    );
    const results = await Promise.all(
      Array.from({ length: 36 }, (_, i) => gateways[i % 2]!.invoke('echo', { i, sleepMs: 100 })),
    );
    // Each gateway reads its own records at once; the other sees them once committed (journalled, then batched).
    const records = await Promise.all(results.map((r, i) => gateways[i % 2]!.getInvocation(r.invocationId)));
    const nodes = new Set(records.map((record) => record.nodeId));
    assert.ok(nodes.size >= 2, `sandboxes ran on ${[...nodes].join(', ')}`);
  });

  it('never serves a function deleted during an invocation to its re-created successor', async () => {
    const bundle = (marker: string): Uint8Array =>
      zipSync({
        'index.js': strToU8(`exports.handler = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, event.sleepMs ?? 0));
  return { code: ${JSON.stringify(marker)}, secret: process.env.SECRET };
};`),
      });
    const answer = async (gateway: SavassanClient, event = {}) =>
      JSON.parse((await gateway.invoke('recreated', event)).payload) as { code: string; secret: string };
    await gateways[0]!.deploy('recreated', bundle('old-code'), { env: { SECRET: 'old-secret' }, maxInstances: 1 });
    assert.deepEqual(await answer(gateways[1]!), { code: 'old-code', secret: 'old-secret' });
    // Running on the one warm instance through gateway 1 while gateway 0 deletes and re-creates the function.
    const busy = answer(gateways[1]!, { sleepMs: 1500 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await gateways[0]!.deleteFunction('recreated');
    await gateways[0]!.deploy('recreated', bundle('new-code'), { env: { SECRET: 'new-secret' }, maxInstances: 1 });
    assert.deepEqual(await busy, { code: 'old-code', secret: 'old-secret' });
    // Gateway 1 resolved the old function at least 1.5 s ago, past its 1 s cache.
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(await answer(gateways[i % 2]!), { code: 'new-code', secret: 'new-secret' }, `invocation ${i}`);
    }
  });

  it('survives SIGKILL of an agent under load: no acknowledged record lost, the node leaves, errors stop', async () => {
    const acknowledged: { id: string; by: SavassanClient }[] = [];
    const failures: { at: number; message: string }[] = [];
    let killedAt = 0;
    let running = true;
    const worker = async (client: SavassanClient): Promise<void> => {
      while (running) {
        try {
          acknowledged.push({ id: (await client.invoke('echo', { sleepMs: 20 })).invocationId, by: client });
        } catch (err) {
          failures.push({ at: Date.now(), message: String(err) });
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    };
    const load = Promise.all([0, 1, 0, 1].map((i) => worker(gateways[i]!)));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    killedAt = Date.now();
    await agents[0]!.stop('SIGKILL');
    const left = await eventually(
      async () => (await gateways[1]!.listNodes()).nodes.map((n) => n.nodeId),
      (ids) => !ids.includes('node-0'),
      (leaseTtlSeconds + 3) * 1000,
    );
    assert.ok(!left.includes('node-0'), `node-0 still listed ${Date.now() - killedAt} ms after the kill`);
    const leftAfterMs = Date.now() - killedAt;
    // Errors must stop: after the node left (plus a moment for the pool purge), every request succeeds.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const quietFrom = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    running = false;
    await load;
    const late = failures.filter((f) => f.at >= quietFrom);
    assert.deepEqual(late, [], `errors after the node left (${leftAfterMs} ms after the kill)`);
    assert.ok(acknowledged.length > 20, `only ${acknowledged.length} invocations acknowledged`);
    for (const { id, by } of acknowledged) {
      const record = await by.getInvocation(id);
      assert.equal(record.id, id);
    }
  });

  it('survives an etcd restart', async () => {
    await etcd.kill();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await etcd.restart();
    const nodes = await eventually(
      async () => (await gateways[0]!.listNodes()).nodes.map((n) => n.nodeId).sort(),
      (ids) => ids.length === 2,
      15_000,
    );
    assert.deepEqual(nodes, ['node-1', 'node-2']);
    const answer = await gateways[1]!.invoke('echo', { after: 'etcd restart' });
    assert.ok(answer.invocationId !== '');
    await gateways[0]!.deploy('echo2', await readBundle(echo), {});
    assert.ok((await gateways[0]!.invoke('echo2', {})).invocationId !== '');
  });

  it('a gateway killed with SIGKILL while its records wait in its journal commits them when it starts again', async () => {
    const session = await postgres.session(database);
    const ids: string[] = [];
    try {
      // Inserts into invocations wait behind this lock, reads of functions do not: invocations are answered, their
      // records acknowledged from the gateway's journal, and none can be committed.
      await session.query('begin');
      await session.query('lock table invocations in exclusive mode');
      for (let i = 0; i < 3; i++) ids.push((await gateways[0]!.invoke('echo', { i })).invocationId);
      await others[2]!.stop('SIGKILL');
    } finally {
      await session.query('rollback');
      await session.close();
    }
    const args = [cli, 'gateway', '--port', '0', '--data-dir', join(root, 'gateway-0'), ...commonArgs];
    const restarted = track('gateway 0, restarted', spawn(process.execPath, args, { env: gatewayEnv }));
    others.push(restarted);
    const [, url = ''] = await restarted.waitFor(/listening on (http:\/\/\S+)/);
    // Committed before the gateway listens: both gateways read them.
    for (const client of [new SavassanClient({ url }), gateways[1]!]) {
      for (const id of ids) assert.equal((await client.getInvocation(id)).id, id);
    }
  });
});
