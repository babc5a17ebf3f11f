// What keeping the warm pool in Redis costs. First two `savassan start` processes side by side in one run,
// one with the in-memory pool and one with `--redis`, measured in interleaved rounds (ratios are Redis ÷ memory);
// then the Pool adapters alone: checkout + return operations per second on RedisPool, with MemoryPool for scale.
// Each part starts its own redis-server (test/kit) and removes it, its servers and their data dirs, even on failure.
import { MemoryPool } from '../src/adapters/memory/memory-pool.js';
import { RedisPool } from '../src/adapters/redis/redis-pool.js';
import type { Pool } from '../src/core/ports/pool.js';
import { poolKey } from '../src/core/types.js';
import type { InstanceRef } from '../src/core/types.js';
import { SavassanClient } from '../src/client/client.js';
import { startServer } from '../test/helpers/server-process.js';
import type { ServerProcess } from '../test/helpers/server-process.js';
import { redisServerAvailable, redisServerBinary, startRedisServer } from '../test/kit/redis-server.js';
import { load, mean, round, summarise, warmUntilSteady } from './load.js';

const SERVER_ARGS = ['--sandbox', 'process', '--no-examples', '--queue-wait', '30', '--log-level', 'error'];
const WARM_ROUNDS = 5;
const THROUGHPUT_ROUNDS = 4;

/** Instances idle in the pool before the checkout loops start: more than the most concurrent workers. */
const POOL_INSTANCES = 64;
const POOL_CONCURRENCIES = [1, 16] as const;
/** Each checkout loop stops after this long even if it has not done its share of operations. */
const POOL_RUN_CAP_MS = 4_000;
const POOL_KEY = poolKey({ functionName: 'noop', incarnation: 'bench', version: 1 });
const LEASE = { holder: 'bench-gateway', leaseMs: 60_000 };

interface Side {
  name: 'memory' | 'redis';
  server: ServerProcess;
  invokeUrl: string;
  warmSandboxes: number;
  latencies: number[];
  rps: number[];
  errors: number;
}

/**
 * Warm invoke of the bench's no-op function on a server with the in-memory pool and on one with the pool in Redis:
 * p50/p99 at concurrency 1 and throughput at concurrency 32, in interleaved rounds that alternate which side goes
 * first, so both see the same machine noise.
 */
export async function measureRedisPoolOverhead(
  noop: Uint8Array,
  counts: { warmRequests: number; throughputRequests: number },
): Promise<Record<string, unknown>> {
  if (!redisServerAvailable()) return { skipped: `${redisServerBinary} is not installed` };
  const redis = await startRedisServer();
  const servers: ServerProcess[] = [];
  try {
    servers.push(await startServer(SERVER_ARGS));
    servers.push(await startServer([...SERVER_ARGS, '--redis', redis.url]));
    const sides: Side[] = [];
    for (const [i, server] of servers.entries()) {
      const client = new SavassanClient({ url: server.url });
      await client.deploy('noop', noop, { maxInstances: 64 });
      const invokeUrl = `${server.url}/v1/functions/noop/invoke`;
      const warmSandboxes = await warmUntilSteady(client, invokeUrl);
      sides.push({
        name: i === 0 ? 'memory' : 'redis',
        server,
        invokeUrl,
        warmSandboxes,
        latencies: [],
        rps: [],
        errors: 0,
      });
    }
    // The Redis side must really keep its pool there, not fall back to memory.
    if ((await redis.keys()).length === 0) throw new Error('the --redis server left no keys in Redis');
    const [memory, onRedis] = sides as [Side, Side];
    const inTurn = (r: number) => (r % 2 === 0 ? [memory, onRedis] : [onRedis, memory]);

    for (let r = 0; r < WARM_ROUNDS; r++) {
      for (const side of inTurn(r)) {
        const run = await load(side.invokeUrl, Math.ceil(counts.warmRequests / WARM_ROUNDS), 1);
        side.latencies.push(...run.latencies);
        side.errors += run.errors;
      }
    }
    for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
      for (const side of inTurn(r)) {
        const run = await load(side.invokeUrl, Math.ceil(counts.throughputRequests / THROUGHPUT_ROUNDS), 32);
        side.rps.push(run.rps);
        side.errors += run.errors;
      }
    }

    const memoryMs = summarise(memory.latencies);
    const redisMs = summarise(onRedis.latencies);
    return {
      warmSandboxes: { memory: memory.warmSandboxes, redis: onRedis.warmSandboxes },
      concurrency1: {
        memoryPoolMs: memoryMs,
        redisPoolMs: redisMs,
        p50Ratio: round(redisMs.p50 / memoryMs.p50, 2),
        p50AddedMs: round(redisMs.p50 - memoryMs.p50),
        p99Ratio: round(redisMs.p99 / memoryMs.p99, 2),
      },
      concurrency32: {
        memoryPoolRps: round(mean(memory.rps), 0),
        redisPoolRps: round(mean(onRedis.rps), 0),
        rpsRatio: round(mean(onRedis.rps) / mean(memory.rps), 2),
      },
      errors: { memory: memory.errors, redis: onRedis.errors },
      note: 'process sandboxes; ratios are Redis pool ÷ memory pool, same run; redis-server shares the machine',
    };
  } finally {
    await Promise.allSettled(servers.map((server) => server.cleanup()));
    await redis.close();
  }
}

/**
 * Checkout + return (push) operations per second straight on the Pool adapters: {@link POOL_INSTANCES} instances
 * idle under one key, and workers that each loop checkout → push, at concurrency 1 and 16. RedisPool against
 * MemoryPool, in interleaved halves.
 */
export async function measurePoolOps(counts: { ops: number }): Promise<Record<string, unknown>> {
  if (!redisServerAvailable()) return { skipped: `${redisServerBinary} is not installed` };
  const redis = await startRedisServer();
  const pools: Pool[] = [];
  try {
    const memoryPool = new MemoryPool();
    pools.push(memoryPool);
    const redisPool = new RedisPool({ url: redis.url, keyPrefix: 'bench:' });
    pools.push(redisPool);
    const rates = await poolOpsRates({ memory: memoryPool, redis: redisPool }, counts.ops);
    const result: Record<string, unknown> = {
      instances: POOL_INSTANCES,
      opsPerRun: counts.ops,
      note: 'one op = checkout + push of one instance; RedisPool runs one Lua script per call',
    };
    for (const [concurrency, { memory, redis: onRedis }] of rates) {
      result[`concurrency${concurrency}`] = {
        memoryPoolOpsPerSec: round(memory.opsPerSec, 0),
        redisPoolOpsPerSec: round(onRedis.opsPerSec, 0),
        ratio: round(onRedis.opsPerSec / memory.opsPerSec, 4),
        redisOps: onRedis.ops,
        emptyCheckouts: memory.empty + onRedis.empty,
      };
    }
    return result;
  } finally {
    await Promise.allSettled(pools.map((pool) => pool.close()));
    await redis.close();
  }
}

/** One pool's checkout + return loops at one concurrency. */
export interface PoolOpsRate {
  opsPerSec: number;
  ops: number;
  /** Checkouts that found the pool empty. */
  empty: number;
}

/**
 * The method of {@link measurePoolOps} for any pools: {@link POOL_INSTANCES} instances pushed into each, a warm-up
 * (JIT, connections, scripts), then at concurrency 1 and 16 each pool's checkout → push loops for `ops` operations,
 * in two interleaved halves. Each pool gets its own instances; the pools must be empty under the bench's key.
 */
export async function poolOpsRates<Name extends string>(
  pools: Record<Name, Pool>,
  ops: number,
): Promise<[concurrency: number, rates: Record<Name, PoolOpsRate>][]> {
  const named = Object.entries(pools) as [Name, Pool][];
  const now = Date.now();
  for (const [, pool] of named) {
    for (let i = 0; i < POOL_INSTANCES; i++) await pool.push(benchInstance(i, now));
    // Warm-up: JIT, connection, Lua scripts loaded (EVALSHA from then on).
    await checkoutReturnLoop(pool, Math.min(1000, ops), 16);
  }
  const rates: [number, Record<Name, PoolOpsRate>][] = [];
  for (const concurrency of POOL_CONCURRENCIES) {
    const runs = new Map<Name, LoopResult[]>(named.map(([name]) => [name, []]));
    for (let half = 0; half < 2; half++) {
      for (const [name, pool] of named)
        runs.get(name)!.push(await checkoutReturnLoop(pool, Math.ceil(ops / 2), concurrency));
    }
    const rate = (xs: LoopResult[]): PoolOpsRate => ({
      opsPerSec: xs.reduce((a, x) => a + x.ops, 0) / xs.reduce((a, x) => a + x.seconds, 0),
      ops: xs.reduce((a, x) => a + x.ops, 0),
      empty: xs.reduce((a, x) => a + x.empty, 0),
    });
    rates.push([
      concurrency,
      Object.fromEntries([...runs].map(([name, xs]) => [name, rate(xs)])) as Record<Name, PoolOpsRate>,
    ]);
  }
  return rates;
}

interface LoopResult {
  ops: number;
  seconds: number;
  /** Checkouts that found the pool empty (should be none: there are more instances than workers). */
  empty: number;
}

/** `concurrency` workers each looping checkout → push until `total` checkouts are done or the time cap passes. */
async function checkoutReturnLoop(pool: Pool, total: number, concurrency: number): Promise<LoopResult> {
  let started = 0;
  let ops = 0;
  let empty = 0;
  const t0 = performance.now();
  const deadline = t0 + POOL_RUN_CAP_MS;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < total && performance.now() < deadline) {
        started++;
        const instance = await pool.checkout(POOL_KEY, LEASE);
        if (instance === null) {
          empty++;
          continue;
        }
        await pool.push(instance);
        ops++;
      }
    }),
  );
  return { ops, seconds: (performance.now() - t0) / 1000, empty };
}

function benchInstance(i: number, now: number): InstanceRef {
  return {
    instanceId: `bench-instance-${i}`,
    functionName: 'noop',
    incarnation: 'bench',
    version: 1,
    nodeId: 'bench-node',
    createdAt: now,
    initMs: 0,
    invocations: 0,
    idleSince: now,
  };
}
