// What running Savassan as a cluster costs, on one machine, in one run. Starts etcd, redis-server,
// PostgreSQL and s3rver from the test kits, then two clusters of real `savassan agent | manager | gateway` processes
// on 127.0.0.1 that share those servers but nothing in them (an etcd prefix, a Redis database, a PostgreSQL database
// and an S3 bucket each): one with three agents, one with a single agent; and an embedded `savassan start`.
// Measures, in interleaved rounds: throughput of a CPU-light function on 3 nodes against 1 node, and the warm
// latency of the no-op function through the gateway and gRPC against the embedded server. Everything it starts is
// stopped and removed, even on failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { cliPath, repoRoot, sandboxPids, startServer } from '../test/helpers/server-process.js';
import { etcdAvailable, etcdBinary, startEtcdServer, type EtcdServer } from '../test/kit/etcd-server.js';
import { postgresBinDir, startPostgresServer } from '../test/kit/postgres-server.js';
import { redisServerAvailable, redisServerBinary, startRedisServer } from '../test/kit/redis-server.js';
import type { RedisServer } from '../test/kit/redis-server.js';
import { startS3Server, type S3Server } from '../test/kit/s3-server.js';
import type { SqlTestServer } from '../test/kit/sql-server-common.js';
import { load, mean, round, sandboxCount, summarise, warmUntilSteady } from './load.js';
import { measureRollbackPropagation } from './rollback.js';

const CONCURRENCY = 32;
/** The single agent holds a sandbox for every request in flight. */
const ONE_NODE_CAPACITY = CONCURRENCY;
/**
 * Placement puts a sandbox where its code is cached before it looks at free slots, so with a capacity of 32 each the
 * three agents would fill the one that ran the deploy trial and leave the others (nearly) empty, depending on when
 * the agents last published their code cache. 12 each (36 in all, for 32 + the no-op function's sandbox) spreads the
 * load over all three; not evenly, as a manager can place a few more than a node's capacity while NodeInfo lags.
 */
const THREE_NODE_CAPACITY = 12;
const WARM_ROUNDS = 5;
const THROUGHPUT_ROUNDS = 6;
/**
 * Share of the run's `throughputRequests` each cluster gets: a cluster invocation costs several times the CPU of an
 * embedded one (HTTP, Redis, PostgreSQL, gRPC and the sandbox on 2 cores), and the section must stay short.
 */
const THROUGHPUT_SHARE = 0.6;
/** Agents republish their NodeInfo (sandbox count) about once a second. */
const NODE_INFO_SETTLE_MS = 1_500;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const OUTPUT_LIMIT = 64 * 1024;

/** A `savassan` role process started by the bench. */
export interface RoleProcess {
  name: string;
  role: 'agent' | 'manager' | 'gateway';
  child: ChildProcess;
  /** Resolves with the first match of `pattern` in the process's stdout. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** SIGTERM (a graceful stop: agents deregister and destroy their sandboxes), SIGKILL if that takes too long. */
  stop(): Promise<void>;
}

/** Secrets go in the environment: arguments are visible to every local user (`ps`), and the CLI refuses them. */
function startRole(name: string, role: RoleProcess['role'], args: string[], env: NodeJS.ProcessEnv): RoleProcess {
  const child = spawn(process.execPath, [cliPath, role, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-OUTPUT_LIMIT);
  };
  child.stdout.on('data', (chunk: Buffer) => {
    stdout = (stdout + chunk.toString()).slice(-OUTPUT_LIMIT);
    collect(chunk);
  });
  child.stderr.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    name,
    role,
    child,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => finish(new Error(`${name} did not print ${pattern}:\n${output}`)),
          START_TIMEOUT_MS,
        );
        const check = (): void => {
          const match = pattern.exec(stdout);
          if (match !== null) finish(undefined, match);
        };
        const finish = (err?: Error, match?: RegExpExecArray): void => {
          clearTimeout(timer);
          child.stdout.off('data', check);
          if (match !== undefined) resolve(match);
          else reject(err ?? new Error(`${name} exited:\n${output}`));
        };
        child.stdout.on('data', check);
        void exited.then(() => finish(new Error(`${name} exited before it printed ${pattern}:\n${output}`)));
        check();
      }),
    stop: async () => {
      if (!running()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The servers the bench's clusters share, each cluster on its own part of them. */
export interface SharedServers {
  etcd: EtcdServer;
  redis: RedisServer;
  postgres: SqlTestServer;
  s3: S3Server;
}

export interface RunningCluster {
  /** The first gateway's base URL, and its client. */
  url: string;
  client: SavassanClient;
  /** Every gateway's base URL. */
  gatewayUrls: string[];
  /** The managers by id, those started later included. */
  managers: Map<string, RoleProcess>;
  /** When each manager said it runs (`performance.now()`). */
  runningSince: Map<string, number>;
  /** Starts one more manager with the cluster's settings; resolves once it runs. */
  addManager(id: string): Promise<RoleProcess>;
  /** Stops this cluster's processes: gateways and managers first, then agents. */
  stop(): Promise<void>;
}

/** How a bench cluster differs from the plain one (1 manager, 1 gateway, process sandboxes, the pool in Redis). */
export interface ClusterShape {
  gateways?: number;
  managers?: number;
  /**
   * Where the warm pool lives: `leader` starts the managers and gateways with `--pool leader` and gives the cluster
   * no Redis at all; `redis` passes `--pool redis`. Unset: no `--pool` flag, the pool in Redis.
   */
  pool?: 'leader' | 'redis';
  /** More arguments for every manager (`--leader-ttl 2`). */
  managerArgs?: readonly string[];
  sandbox?: 'process' | 'bwrap';
}

/** Stops `roles`: gateways and managers first, then agents (they deregister from etcd and destroy their sandboxes). */
async function stopRoles(roles: RoleProcess[]): Promise<void> {
  await Promise.allSettled(roles.filter((p) => p.role !== 'agent').map((p) => p.stop()));
  await Promise.allSettled(roles.filter((p) => p.role === 'agent').map((p) => p.stop()));
}

/**
 * Starts `agentCount` agents, the managers and gateways of `shape` on 127.0.0.1, on the etcd prefix, Redis
 * database, PostgreSQL database and S3 bucket of `name`; resolves once the gateway lists every agent. `started`
 * receives every process as it is spawned, so the caller can stop them even if this fails half-way.
 */
export async function startCluster(
  name: string,
  agentCount: number,
  capacity: number,
  redisDb: number,
  servers: SharedServers,
  root: string,
  started: RoleProcess[],
  shape: ClusterShape = {},
): Promise<RunningCluster> {
  const database = await servers.postgres.createDatabase();
  const env = {
    SAVASSAN_CLUSTER_TOKEN: `token-${randomUUID()}`,
    SAVASSAN_S3_URL: `${servers.s3.url}/${name}?createBucket=true`,
    ...(shape.pool === 'leader' ? {} : { SAVASSAN_REDIS_URL: servers.redis.url.replace(/\/\d+$/, `/${redisDb}`) }),
    SAVASSAN_DB_URL: servers.postgres.url(database),
  };
  const common = [
    ...['--log-level', 'error'],
    ...['--etcd', servers.etcd.endpoints.join(','), '--etcd-prefix', `/savassan-bench/${name}`],
  ];
  const poolArgs = shape.pool === undefined ? [] : ['--pool', shape.pool];
  const mine: RoleProcess[] = [];
  const spawned = (role: RoleProcess): RoleProcess => {
    started.push(role);
    mine.push(role);
    return role;
  };
  const agents: RoleProcess[] = [];
  for (let i = 0; i < agentCount; i++) {
    const args = ['--node-id', `${name}-${i}`, '--listen', '127.0.0.1:0'];
    args.push('--capacity', String(capacity), '--sandbox', shape.sandbox ?? 'process', '--no-stem-cells');
    args.push('--data-dir', join(root, name, `agent-${i}`), ...common);
    const agent = spawned(startRole(`${name} agent ${i}`, 'agent', args, env));
    agents.push(agent);
    // The first agent creates the bucket before the others start: concurrent creates race, and s3rver answers the
    // loser BucketAlreadyExists, which the S3 blob store does not take for success.
    if (i === 0) await agent.waitFor(/is serving on \S+/);
  }
  await Promise.all(agents.map((agent) => agent.waitFor(/is serving on \S+/)));
  const managers = new Map<string, RoleProcess>();
  const startManager = (id: string): RoleProcess => {
    const args = ['--id', id, '--data-dir', join(root, name, id.replace(`${name}-`, '')), ...poolArgs];
    if (shape.pool === 'leader') args.push('--listen', '127.0.0.1:0');
    const manager = spawned(
      startRole(`${name} ${id}`, 'manager', [...args, ...(shape.managerArgs ?? []), ...common], env),
    );
    managers.set(id, manager);
    return manager;
  };
  const runningSince = new Map<string, number>();
  const running = async (id: string, manager: RoleProcess): Promise<RoleProcess> => {
    await manager.waitFor(/is running/);
    runningSince.set(id, performance.now());
    return manager;
  };
  const firstManagers = Array.from({ length: shape.managers ?? 1 }, (_, i) => {
    const id = i === 0 ? `${name}-manager` : `${name}-manager-${i}`;
    return running(id, startManager(id));
  });
  const gateways = Array.from({ length: shape.gateways ?? 1 }, (_, i) => {
    const gatewayDir = join(root, name, i === 0 ? 'gateway' : `gateway-${i}`);
    return spawned(
      startRole(
        `${name} gateway ${i}`,
        'gateway',
        [...['--port', '0', '--queue-wait', '30', '--data-dir', gatewayDir], ...poolArgs, ...common],
        env,
      ),
    );
  });
  const [listening] = await Promise.all([
    Promise.all(gateways.map((gateway) => gateway.waitFor(/listening on (http:\/\/\S+)/))),
    Promise.all(firstManagers),
  ]);
  const gatewayUrls = listening.map((match) => match[1] ?? '');
  const url = gatewayUrls[0] ?? '';
  const client = new SavassanClient({ url });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const listed = (await client.listNodes()).nodes.length;
    if (listed === agentCount) break;
    if (Date.now() > deadline) throw new Error(`the ${name} gateway lists ${listed} of ${agentCount} agents`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    client,
    gatewayUrls,
    managers,
    runningSince,
    addManager: (id) => running(id, startManager(id)),
    stop: () => stopRoles(mine),
  };
}

/** Why the cluster sections cannot run here (etcd, redis-server or PostgreSQL missing), or null where they can. */
export function clusterSkipReason(): string | null {
  if (!etcdAvailable()) return `${etcdBinary} is not installed`;
  if (!redisServerAvailable()) return `${redisServerBinary} is not installed`;
  if (!existsSync(join(postgresBinDir, 'postgres'))) return `PostgreSQL is not installed in ${postgresBinDir}`;
  return null;
}

/** What a cluster section gets from {@link withClusterServers}. */
export interface ClusterBench {
  servers: SharedServers;
  /** A temporary directory for the processes' data (0711 where bwrap sandboxes must pass through it). */
  root: string;
  /** Every role process started: pass it to {@link startCluster}; all are stopped at the end. */
  roles: RoleProcess[];
  /** Registers what `starting` resolves to for cleanup, whatever else fails. */
  owned: <T>(starting: Promise<T>, close: (value: T) => Promise<void>) => Promise<T>;
}

/**
 * Starts etcd, redis-server, PostgreSQL and s3rver from the test kits, runs `measure`, then stops every role process
 * it started (gateways and managers, then agents), the servers, any sandbox left behind, and removes the data.
 */
export async function withClusterServers<T>(measure: (bench: ClusterBench) => Promise<T>): Promise<T> {
  const root = await mkdtemp(join(tmpdir(), 'sv-bench-cluster-'));
  // Sandbox users of bwrap agents pass through it to their agent's data.
  await chmod(root, 0o711);
  const roles: RoleProcess[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    const owned = <T>(starting: Promise<T>, close: (value: T) => Promise<void>): Promise<T> =>
      starting.then((value) => {
        closers.push(() => close(value));
        return value;
      });
    // Wait for every start to settle before failing, so nothing comes up after the cleanup ran.
    const startingServers = [
      owned(startEtcdServer(), (etcd) => etcd.stop()),
      owned(startRedisServer(), (redis) => redis.close()),
      owned(startPostgresServer(), (postgres) => postgres.stop()),
      owned(startS3Server(), (s3) => s3.stop()),
    ] as const;
    await Promise.allSettled(startingServers);
    const [etcd, redis, postgres, s3] = await Promise.all(startingServers);
    return await measure({ servers: { etcd, redis, postgres, s3 }, root, roles, owned });
  } finally {
    await stopRoles(roles);
    await Promise.allSettled(closers.reverse().map((close) => close()));
    // An agent killed after the stop timeout leaves its sandboxes behind: they are ours, end them by pid.
    for (const pid of await sandboxPids(root).catch(() => [] as number[])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await rm(root, { recursive: true, force: true });
  }
}

/** One thing measured, with what it collected over the rounds. */
interface Side {
  invokeUrl: string;
  latencies: number[];
  rps: number[];
  errors: number;
}

const side = (invokeUrl: string): Side => ({ invokeUrl, latencies: [], rps: [], errors: 0 });
/** Alternates which side goes first, so that neither always runs right after the other. */
export const inTurn = <T>(r: number, a: T, b: T): T[] => (r % 2 === 0 ? [a, b] : [b, a]);

/**
 * Throughput of a CPU-light function (~1 ms of CPU) at concurrency 32 on a 3-agent cluster against a 1-agent one,
 * and warm p50/p99 of the no-op function at concurrency 1 through the 3-agent cluster's gateway against an embedded
 * `savassan start`. All sandboxes are `process` ones without stem cells. Skipped when etcd, redis-server or
 * PostgreSQL is not installed.
 */
export async function measureCluster(
  noop: Uint8Array,
  counts: { warmRequests: number; throughputRequests: number; rollbackTrials: number },
): Promise<Record<string, unknown>> {
  const skipped = clusterSkipReason();
  if (skipped !== null) return { skipped };
  const cpuLight = await readBundle(join(repoRoot, 'bench', 'functions', 'cpu-light'));

  const startedAt = performance.now();
  return withClusterServers(async ({ servers, root, roles, owned }) => {
    const embeddedArgs = ['--sandbox', 'process', '--no-stem-cells', '--no-examples', '--queue-wait', '30'];
    const starting = [
      startCluster('three', 3, THREE_NODE_CAPACITY, 0, servers, root, roles),
      // Two gateways: the rollback section measures how fast both stop sending a failed canary traffic.
      startCluster('one', 1, ONE_NODE_CAPACITY, 1, servers, root, roles, { gateways: 2 }),
      owned(startServer([...embeddedArgs, '--log-level', 'error']), (server) => server.cleanup()),
    ] as const;
    await Promise.allSettled(starting);
    const [three, one, embedded] = await Promise.all(starting);
    const startupSeconds = (performance.now() - startedAt) / 1000;

    // Deploy and warm: the CPU-light function on both clusters until no sandbox is being created, the no-op
    // function at concurrency 1 on the 3-agent cluster and the embedded server.
    for (const cluster of [three, one]) await cluster.client.deploy('cpu-light', cpuLight, { maxInstances: 64 });
    await three.client.deploy('noop', noop, {});
    await embedded.client.deploy('noop', noop, {});
    const throughput = {
      three: side(`${three.url}/v1/functions/cpu-light/invoke`),
      one: side(`${one.url}/v1/functions/cpu-light/invoke`),
    };
    const warm = {
      cluster: side(`${three.url}/v1/functions/noop/invoke`),
      embedded: side(`${embedded.url}/v1/functions/noop/invoke`),
    };
    // Both clusters at once: their settle waits overlap. Smaller rounds in a quick run.
    const warmUp = {
      requests: Math.min(1000, Math.ceil(counts.throughputRequests / 4)),
      settleMs: NODE_INFO_SETTLE_MS,
    };
    const [threeSandboxes, oneSandboxes] = await Promise.all([
      warmUntilSteady(three.client, throughput.three.invokeUrl, warmUp),
      warmUntilSteady(one.client, throughput.one.invokeUrl, warmUp),
    ]);
    const warmSandboxes = { three: threeSandboxes, one: oneSandboxes };
    for (const s of [warm.cluster, warm.embedded]) await load(s.invokeUrl, 500, 1);

    // a. Throughput, 3 agents against 1, interleaved.
    const perRound = Math.ceil((counts.throughputRequests * THROUGHPUT_SHARE) / THROUGHPUT_ROUNDS);
    for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
      for (const s of inTurn(r, throughput.three, throughput.one)) {
        const run = await load(s.invokeUrl, perRound, CONCURRENCY);
        s.rps.push(run.rps);
        s.errors += run.errors;
      }
    }
    // b. Warm latency through the gateway and gRPC against embedded, interleaved.
    for (let r = 0; r < WARM_ROUNDS; r++) {
      for (const s of inTurn(r, warm.cluster, warm.embedded)) {
        const run = await load(s.invokeUrl, Math.ceil(counts.warmRequests / WARM_ROUNDS), 1);
        s.latencies.push(...run.latencies);
        s.errors += run.errors;
      }
    }

    // c. A failed canary's rollback, from the leader's decision to no canary traffic on either gateway. The
    // CPU-light function's sandboxes fill the single node: they go first.
    await one.client.deleteFunction('cpu-light');
    for (let wait = 0; wait < 100 && (await sandboxCount(one.client)) > 0; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const rollback = await measureRollbackPropagation({
      client: one.client,
      gatewayUrls: one.gatewayUrls,
      healthy: noop,
      failing: await readBundle(join(repoRoot, 'bench', 'functions', 'fails')),
      trials: counts.rollbackTrials,
    });

    const perNode = Object.fromEntries(
      (await three.client.listNodes()).nodes.map((node) => [node.nodeId, node.sandboxes] as const).sort(),
    );
    const clusterMs = summarise(warm.cluster.latencies);
    const embeddedMs = summarise(warm.embedded.latencies);
    return {
      startupSeconds: round(startupSeconds, 1),
      throughput: {
        function: 'cpu-light (~1 ms of CPU per call)',
        concurrency: CONCURRENCY,
        requestsPerRound: perRound,
        rounds: THROUGHPUT_ROUNDS,
        threeNodeRps: round(mean(throughput.three.rps), 0),
        oneNodeRps: round(mean(throughput.one.rps), 0),
        ratio: round(mean(throughput.three.rps) / mean(throughput.one.rps), 2),
        agentCapacity: { threeNode: THREE_NODE_CAPACITY, oneNode: ONE_NODE_CAPACITY },
        warmSandboxes,
        /** Sandboxes of both functions on each of the three agents, after the rounds. */
        threeNodeSandboxesPerNode: perNode,
        errors: { threeNode: throughput.three.errors, oneNode: throughput.one.errors },
      },
      rollback,
      warmOverhead: {
        function: 'noop',
        concurrency: 1,
        clusterMs,
        embeddedMs,
        p50Ratio: round(clusterMs.p50 / embeddedMs.p50, 2),
        p50AddedMs: round(clusterMs.p50 - embeddedMs.p50),
        p99Ratio: round(clusterMs.p99 / embeddedMs.p99, 2),
        errors: { cluster: warm.cluster.errors, embedded: warm.embedded.errors },
      },
      note:
        'every process shares the same 2 cores (agents, sandboxes, managers, gateways, etcd, redis-server, ' +
        'PostgreSQL, s3rver and the load generator), so the 3-node/1-node ratio measures what spreading over ' +
        'more nodes costs, not scale-out; process sandboxes, no stem cells; cluster = 1 manager + 1 gateway, ' +
        'all on 127.0.0.1',
    };
  });
}
