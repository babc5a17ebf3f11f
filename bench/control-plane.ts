// What the self-managed control plane costs and how it behaves under change, on one machine, in one run. Starts
// etcd, redis-server, PostgreSQL and s3rver (bench/cluster.ts), then measures:
// 1. the leader-held pool against the Redis pool: checkout + return operations/s straight on the adapters (LeaderPool
//    over a real Leader gRPC server, RedisPool on the real redis-server), and the warm p50 of the no-op function
//    through the gateway of two clusters of real processes, one `--pool leader` (no Redis), one `--pool redis`;
// 2. the leader's event-loop delay (GET /v1/control-plane) idle and while sandboxes hold every core;
// 3. graceful handovers under steady load: the longest request around each switch, failures, writes paused, time
//    without a leader;
// 4. a crash of the leading manager (SIGKILL): the time to the first invocation served after it and to a new leader.
// Runs alone with `node --import tsx bench/control-plane.ts` (BENCH_QUICK=1 for the quick sizes).
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisPool } from '../src/adapters/redis/redis-pool.js';
import { readBundle } from '../src/client/bundle.js';
import type { ControlPlaneView } from '../src/core/control-plane-view.js';
import type { Pool } from '../src/core/ports/pool.js';
import { LeaderPool } from '../src/leader/leader-pool.js';
import { repoRoot } from '../test/helpers/server-process.js';
import { poolOpsRates } from './backends.js';
import { bwrapSkipReason } from './bwrap-server.js';
import { clusterSkipReason, inTurn, startCluster, withClusterServers, type RunningCluster } from './cluster.js';
import { post } from './http-post.mjs';
import { load, round, startBaseline, summarise } from './load.js';
import { runSectionAlone, runsAlone } from './section-alone.js';

/** The sizes of a run; the quick ones keep the section under about a minute and a half. */
function sizes(quick: boolean) {
  return {
    /** Checkout + return operations per pool and concurrency (bench/backends.ts poolOpsRates). */
    poolOps: quick ? 2000 : 10_000,
    /** Warm invocations at concurrency 1 per cluster, over the interleaved rounds. */
    warmRequests: quick ? 300 : 2000,
    /** How long each side of the loop-delay comparison is measured: idle, and with the cores held. */
    idleMs: quick ? 2000 : 8000,
    loadedMs: quick ? 8000 : 10_000,
    /**
     * Read each side's loop delay from a window of the leader's monitor that holds that side alone: wait for a window
     * to start for the idle side, and hold the cores across the next window's start for the loaded one (up to two
     * minutes; a quick run reads the windows under way instead).
     */
    alignWindows: !quick,
    /** Steady load before, between and after the handovers (ms). */
    calmMs: quick ? 1000 : 2000,
  };
}

const WARM_ROUNDS = 5;
/** Sandboxes per agent: the no-op functions, the steady-load function's few, the CPU burners. */
const AGENT_CAPACITY = 24;
const LEADER_TTL_SECONDS = 2;
const HANDOVERS = 3;
const STEADY_CONCURRENCY = 4;
/** Requests in flight this close to a handover call (before it, or after its answer) count as during the switch. */
const SWITCH_MARGIN_MS = 1000;
const VIEW_POLL_MS = 10;
/** Each CPU-burning invocation spins this long; the burners invoke again until the loaded time is over. */
const BURN_MS = 10_000;
/** The window of the leader's loop-delay monitor (src/control-plane/loop-delay.ts: a minute by default). */
const LOOP_DELAY_WINDOW_MS = 60_000;
/** How long before it says it runs a manager may have started its loop-delay monitor (the estimate's margin). */
const WINDOW_MARGIN_MS = 4000;
/** Time the burners' sandboxes get to start (cold) before the cores count as held. */
const BURNERS_START_MS = 2500;
const WAIT_TIMEOUT_MS = 30_000;
const LEADER_ID = 'bench-leader';

/**
 * Section 17 of the bench: the self-managed control plane. Skipped where etcd, redis-server or PostgreSQL is not
 * installed. The clusters run bwrap sandboxes where they can (what users get), else process ones; the result says
 * which.
 */
export async function measureControlPlane(quick: boolean): Promise<Record<string, unknown>> {
  const skipped = clusterSkipReason();
  if (skipped !== null) return { skipped };
  const size = sizes(quick);
  const bwrapSkipped = bwrapSkipReason();
  const sandbox = bwrapSkipped === null ? 'bwrap' : 'process';
  const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
  const burn = await readBundle(join(repoRoot, 'bench', 'functions', 'cpu-burn'));

  return withClusterServers(async ({ servers, root, roles }) => {
    // 1a. The adapters alone, before any cluster runs beside them.
    const poolOps = await measureLeaderPoolOps(servers.redis.url.replace(/\/\d+$/, '/3'), size.poolOps);

    // 1b. Warm invoke through a gateway: the pool held by the leader against the pool in Redis.
    const startedAt = performance.now();
    const shape = { sandbox, managerArgs: ['--leader-ttl', String(LEADER_TTL_SECONDS)] } as const;
    const starting = [
      startCluster('cp-leader', 1, AGENT_CAPACITY, 0, servers, root, roles, { ...shape, pool: 'leader' }),
      startCluster('cp-redis', 1, AGENT_CAPACITY, 2, servers, root, roles, { ...shape, pool: 'redis' }),
    ] as const;
    await Promise.allSettled(starting);
    const [leaderCluster, redisCluster] = await Promise.all(starting);
    const startupSeconds = round((performance.now() - startedAt) / 1000, 1);
    const warmInvoke = await compareWarmInvoke({ leader: leaderCluster, redis: redisCluster }, noop, size.warmRequests);
    await redisCluster.stop();

    // 2. The leader's loop delay, idle and with every core held by sandboxes.
    const loopDelay = await measureLoopDelay(leaderCluster, burn, size);

    // 3. Handovers under steady load, between the first manager and a second one.
    await leaderCluster.addManager('cp-leader-manager-1');
    await waitFor('a follower of the leader', async () => (await controlPlane(leaderCluster.url)).followers.length > 0);
    await leaderCluster.client.deploy('steady', noop, { maxInstances: 8 });
    // Deployed now (its deploy trial's sandbox is not kept), first invoked after the crash.
    await leaderCluster.client.deploy('after-crash', noop, {});
    const steadyUrl = `${leaderCluster.url}/v1/functions/steady/invoke`;
    await load(steadyUrl, 200, STEADY_CONCURRENCY);
    const handover = await measureHandovers(leaderCluster, steadyUrl, size.calmMs);

    // 4. The leading manager killed under the same steady load.
    const failover = await measureFailover(leaderCluster, steadyUrl, size.calmMs);

    return {
      sandbox,
      ...(bwrapSkipped === null ? {} : { bwrapSkipped }),
      startupSeconds,
      poolOps,
      warmInvoke,
      loopDelay,
      handover,
      failover,
      note:
        'every process shares the machine (agents, sandboxes, managers, gateways, etcd, redis-server, PostgreSQL, ' +
        's3rver and the load generator), all on 127.0.0.1; clusters of 1 agent, 1 gateway and 1 manager (2 for ' +
        `the handover and crash parts), leader TTL ${LEADER_TTL_SECONDS} s`,
    };
  });
}

/**
 * Checkout + return operations/s of LeaderPool (gRPC to a real Leader server, in a process of its own, whose host
 * serves a MemoryPool as the leader holds it) against RedisPool on a real redis-server, with the method of
 * bench/backends.ts.
 */
async function measureLeaderPoolOps(redisUrl: string, ops: number): Promise<Record<string, unknown>> {
  const token = randomUUID();
  const leader = await startBaseline('leader-pool-server.ts', [LEADER_ID, token], ['--import', 'tsx']);
  // It prints its gRPC address (host:port) where the baselines print a URL.
  const address = leader.url;
  const pools: Pool[] = [];
  try {
    const leaderPool = new LeaderPool({
      resolver: { current: () => Promise.resolve({ id: LEADER_ID, address }), invalidate: () => {} },
      token,
    });
    pools.push(leaderPool);
    const redisPool = new RedisPool({ url: redisUrl, keyPrefix: 'bench-control-plane:' });
    pools.push(redisPool);
    const result: Record<string, unknown> = {
      opsPerRun: ops,
      note:
        'one op = checkout + push of one instance, on the adapters: LeaderPool makes one gRPC call per pool call to a ' +
        'Leader server in a process of its own (bench/leader-pool-server.ts: peer proof and token as in a cluster, ' +
        'the pool a MemoryPool as the leader holds it); RedisPool runs one Lua script per call on redis-server; ' +
        'interleaved halves',
    };
    for (const [concurrency, rates] of await poolOpsRates({ leader: leaderPool, redis: redisPool }, ops)) {
      result[`concurrency${concurrency}`] = {
        leaderPoolOpsPerSec: round(rates.leader.opsPerSec, 0),
        redisPoolOpsPerSec: round(rates.redis.opsPerSec, 0),
        leaderOverRedis: round(rates.leader.opsPerSec / rates.redis.opsPerSec, 2),
        ops: { leader: rates.leader.ops, redis: rates.redis.ops },
        emptyCheckouts: rates.leader.empty + rates.redis.empty,
      };
    }
    return result;
  } finally {
    await Promise.allSettled(pools.map((pool) => pool.close()));
    await leader.stop();
  }
}

/** Warm p50 of the no-op function at concurrency 1 through each cluster's gateway, in interleaved rounds. */
async function compareWarmInvoke(
  clusters: { leader: RunningCluster; redis: RunningCluster },
  noop: Uint8Array,
  requests: number,
): Promise<Record<string, unknown>> {
  const sides = {
    leader: {
      url: `${clusters.leader.url}/v1/functions/noop/invoke`,
      latencies: [] as number[],
      roundP50: [] as number[],
      errors: 0,
    },
    redis: {
      url: `${clusters.redis.url}/v1/functions/noop/invoke`,
      latencies: [] as number[],
      roundP50: [] as number[],
      errors: 0,
    },
  };
  for (const cluster of [clusters.leader, clusters.redis]) await cluster.client.deploy('noop', noop, {});
  for (const side of [sides.leader, sides.redis]) await load(side.url, 300, 1);
  for (let r = 0; r < WARM_ROUNDS; r++) {
    for (const side of inTurn(r, sides.leader, sides.redis)) {
      const run = await load(side.url, Math.ceil(requests / WARM_ROUNDS), 1);
      side.latencies.push(...run.latencies);
      side.roundP50.push(summarise(run.latencies).p50);
      side.errors += run.errors;
    }
  }
  const leaderP50 = median(sides.leader.roundP50);
  const redisP50 = median(sides.redis.roundP50);
  return {
    function: 'noop',
    concurrency: 1,
    rounds: WARM_ROUNDS,
    p50Ms: { leaderPool: leaderP50, redisPool: redisP50 },
    p50Ratio: round(leaderP50 / redisP50, 2),
    roundP50Ms: { leaderPool: sides.leader.roundP50, redisPool: sides.redis.roundP50 },
    leaderPoolMs: summarise(sides.leader.latencies),
    redisPoolMs: summarise(sides.redis.latencies),
    errors: { leaderPool: sides.leader.errors, redisPool: sides.redis.errors },
    note: "p50Ms: the median of the rounds' p50s; ratio: leader-held pool ÷ Redis pool; two clusters of 1 agent, 1 manager and 1 gateway, measured in turn",
  };
}

/**
 * The leader's loop delay as GET /v1/control-plane shows it, and the warm no-op p50 at concurrency 1 (every invoke
 * checks an instance out of the leader's pool and returns it): idle, then while 2 × cores sandboxes each spin a
 * core. The leader's monitor reports per window ({@link LOOP_DELAY_WINDOW_MS}, counted from the manager's start);
 * with `alignWindows` each side is read from a window that holds only that side.
 */
async function measureLoopDelay(
  cluster: RunningCluster,
  burn: Uint8Array,
  size: ReturnType<typeof sizes>,
): Promise<Record<string, unknown>> {
  const noopUrl = `${cluster.url}/v1/functions/noop/invoke`;
  const burners = 2 * availableParallelism();
  await cluster.client.deploy('cpu-burn', burn, {
    maxInstances: burners,
    timeoutSeconds: Math.ceil(BURN_MS / 1000) + 30,
  });
  const leaderId = (await controlPlane(cluster.url)).leader?.id;
  const since = leaderId === undefined ? undefined : cluster.runningSince.get(leaderId);
  const aligned = size.alignWindows && since !== undefined;
  /**
   * The first window start (as estimated: the manager said it runs up to {@link WINDOW_MARGIN_MS} after its monitor
   * started, so the real one is at most that much earlier) at least that margin after `at`.
   */
  const windowStartAfter = (at: number): number =>
    (since ?? 0) + Math.ceil((at + WINDOW_MARGIN_MS - (since ?? 0)) / LOOP_DELAY_WINDOW_MS) * LOOP_DELAY_WINDOW_MS;

  // Idle: from a window's start (nothing but sleeping before it), the no-op invoked one call after another.
  if (aligned) await sleepUntil(windowStartAfter(performance.now()) + 300);
  const idleMs = await latenciesFor(noopUrl, size.idleMs);
  const idleView = await controlPlane(cluster.url);

  // Loaded: the burners start, the cores are held across the next window's start, read at its end of `loadedMs`.
  const burnStart = performance.now();
  const loadedFrom = aligned ? windowStartAfter(burnStart + BURNERS_START_MS) + 300 : burnStart + BURNERS_START_MS;
  const readAt = loadedFrom + size.loadedMs;
  const burnUntil = readAt + 1000;
  const burnTarget = new URL(`${cluster.url}/v1/functions/cpu-burn/invoke`);
  const agent = new Agent({ keepAlive: true, maxSockets: burners });
  let burnCalls = 0;
  let burnFailures = 0;
  const burning = Array.from({ length: burners }, async () => {
    for (let left = burnUntil - burnStart; left > 500; left = burnUntil - performance.now()) {
      const hit = await post(agent, burnTarget, JSON.stringify({ ms: Math.min(BURN_MS, Math.round(left)) })).catch(
        () => null,
      );
      burnCalls++;
      if (hit?.status !== 200) burnFailures++;
    }
  });
  try {
    await sleepUntil(loadedFrom);
    const cpuBefore = await cpuTimes();
    const loadedMs = await latenciesFor(noopUrl, readAt - performance.now());
    const loadedView = await controlPlane(cluster.url);
    const cpuAfter = await cpuTimes();
    await Promise.all(burning);
    return {
      idle: { loopDelayMs: idleView.leader?.loopDelayMs ?? null, noopInvokeMs: summarise(idleMs) },
      loaded: {
        loopDelayMs: loadedView.leader?.loopDelayMs ?? null,
        noopInvokeMs: summarise(loadedMs),
        burners,
        heldMs: round(burnUntil - burnStart, 0),
        machineBusyPercent:
          cpuBefore === null || cpuAfter === null
            ? null
            : round((1 - (cpuAfter.idle - cpuBefore.idle) / (cpuAfter.total - cpuBefore.total)) * 100, 1),
      },
      burnCalls,
      burnFailures,
      leader: loadedView.leader?.id ?? null,
      windowsAligned: aligned,
      target: 'loaded loop delay p99 < 10 ms',
      note:
        "loopDelayMs: the leader's own figures (GET /v1/control-plane), of its monitor's window under way " +
        `(${LOOP_DELAY_WINDOW_MS / 1000} s windows from the manager's start): ` +
        (aligned
          ? `each side read from a window that holds it alone (idle: about ${size.idleMs / 1000} s of no-op calls ` +
            `from a window's start; loaded: the cores held from before a window's start to the reading ` +
            `${size.loadedMs / 1000} s later)`
          : "a quick run reads the windows under way, which also hold what ran before (the cluster's start, the " +
            'warm rounds, the idle side)') +
        `. Loaded: ${burners} sandboxes (2 × cores) of a function that spins ${BURN_MS / 1000} s, invoked again ` +
        'until the time is over (machineBusyPercent: all cores, from /proc/stat, while the no-op was measured); ' +
        "noopInvokeMs: the warm no-op at concurrency 1 (each invoke is a checkout and a return on the leader's pool)",
    };
  } finally {
    await Promise.all(burning);
    agent.destroy();
    // Its sandboxes make room for the functions of the parts that follow.
    await cluster.client.deleteFunction('cpu-burn');
  }
}

/**
 * {@link HANDOVERS} handovers (POST /v1/control-plane/handover, each to the other manager) under steady load at
 * concurrency {@link STEADY_CONCURRENCY}, GET /v1/control-plane polled every {@link VIEW_POLL_MS} ms around each.
 */
async function measureHandovers(
  cluster: RunningCluster,
  invokeUrl: string,
  calmMs: number,
): Promise<Record<string, unknown>> {
  const steady = steadyLoad(invokeUrl, STEADY_CONCURRENCY);
  const switches: {
    from: string;
    to: string;
    term: number;
    pausedMs: number;
    callAt: number;
    answeredAt: number;
    noLeaderMs: number;
    viewErrors: number;
    polls: number;
  }[] = [];
  try {
    await sleep(calmMs);
    for (let i = 0; i < HANDOVERS; i++) {
      const before = await controlPlane(cluster.url);
      const from = before.leader?.id;
      const to = [...cluster.managers.keys()].find((id) => id !== from);
      if (from === undefined || to === undefined) throw new Error(`no leader or no other manager to hand over to`);
      const poller = pollLeader(cluster.url);
      await sleep(SWITCH_MARGIN_MS);
      const callAt = performance.now();
      const answer = await handover(cluster.url, to);
      const answeredAt = performance.now();
      await sleep(SWITCH_MARGIN_MS);
      const polls = await poller.stop();
      switches.push({
        ...answer,
        callAt,
        answeredAt,
        noLeaderMs: round(timeWithoutLeader(polls)),
        viewErrors: polls.filter((poll) => poll.failed).length,
        polls: polls.length,
      });
      // The old leader follows the new one before the next handover goes back to it.
      await waitFor('the old leader following', async () => (await controlPlane(cluster.url)).followers.length > 0);
      await sleep(calmMs);
    }
  } finally {
    await steady.stop();
  }
  const calls = steady.calls;
  const during = (call: SteadyCall, s: (typeof switches)[number]) =>
    call.start <= s.answeredAt + SWITCH_MARGIN_MS && call.end >= s.callAt - SWITCH_MARGIN_MS;
  const outside = calls.filter((call) => call.ok && !switches.some((s) => during(call, s)));
  return {
    concurrency: STEADY_CONCURRENCY,
    handovers: switches.map((s) => {
      const inWindow = calls.filter((call) => during(call, s));
      return {
        from: s.from,
        to: s.to,
        term: s.term,
        pausedMs: s.pausedMs,
        callMs: round(s.answeredAt - s.callAt),
        maxLatencyMs: round(Math.max(...inWindow.map((call) => call.end - call.start))),
        requests: inWindow.length,
        failed: inWindow.filter((call) => !call.ok).length,
        noLeaderMs: s.noLeaderMs,
        viewPolls: s.polls,
        viewErrors: s.viewErrors,
      };
    }),
    p50OutsideMs: summarise(outside.map((call) => call.end - call.start)).p50,
    requests: calls.length,
    failedRequests: calls.filter((call) => !call.ok).length,
    noLeaderMs: round(switches.reduce((sum, s) => sum + s.noLeaderMs, 0)),
    targets: { failedRequests: 0, noLeaderMs: 0 },
    note:
      `steady load: ${STEADY_CONCURRENCY} callers invoking a warm no-op function through the gateway; during a ` +
      `switch: requests in flight from ${SWITCH_MARGIN_MS / 1000} s before the handover call to ` +
      `${SWITCH_MARGIN_MS / 1000} s after its answer; noLeaderMs: GET /v1/control-plane polled every ` +
      `${VIEW_POLL_MS} ms over that span, the time from each poll that showed no leader to the next poll; ` +
      'pausedMs: as the handover answered it (writes paused on the old leader)',
  };
}

/**
 * SIGKILL to the leading manager under steady load: the time to the first invocation sent after the kill that
 * succeeded (warm: a checkout from the pool; cold: a function deployed before the kill and first invoked after it,
 * so it needs the provisioning queue), and to GET /v1/control-plane showing another leader.
 */
async function measureFailover(
  cluster: RunningCluster,
  invokeUrl: string,
  calmMs: number,
): Promise<Record<string, unknown>> {
  const coldTarget = new URL(`${cluster.url}/v1/functions/after-crash/invoke`);
  const steady = steadyLoad(invokeUrl, STEADY_CONCURRENCY);
  try {
    await sleep(calmMs);
    const killed = (await controlPlane(cluster.url)).leader?.id;
    const leading = killed === undefined ? undefined : cluster.managers.get(killed);
    if (killed === undefined || leading === undefined) throw new Error('no leading manager of this cluster to kill');
    const killedAt = performance.now();
    leading.child.kill('SIGKILL');
    const since = () => round(performance.now() - killedAt);

    const newLeader = (async () => {
      for (;;) {
        const leader = await controlPlane(cluster.url).then(
          (view) => view.leader?.id ?? null,
          () => null,
        );
        if (leader !== null && leader !== killed) return { id: leader, ms: since() };
        if (performance.now() - killedAt > WAIT_TIMEOUT_MS) return { id: null, ms: null };
        await sleep(VIEW_POLL_MS);
      }
    })();
    const firstCold = (async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      let failures = 0;
      try {
        while (performance.now() - killedAt < WAIT_TIMEOUT_MS) {
          const hit = await post(agent, coldTarget, '{}').catch(() => null);
          if (hit?.status === 200) return { ms: since(), start: String(hit.headers['x-savassan-start']), failures };
          failures++;
          await sleep(VIEW_POLL_MS);
        }
        return { ms: null, failures };
      } finally {
        agent.destroy();
      }
    })();
    const firstWarm = (async () => {
      while (performance.now() - killedAt < WAIT_TIMEOUT_MS) {
        const served = steady.calls.find((call) => call.ok && call.start >= killedAt);
        if (served !== undefined) return round(served.end - killedAt);
        await sleep(5);
      }
      return null;
    })();
    const [leader, cold, warm] = await Promise.all([newLeader, firstCold, firstWarm]);
    await sleep(calmMs);
    const afterKill = steady.calls.filter((call) => call.start >= killedAt);
    const gapEnd = warm === null ? Infinity : killedAt + warm;
    return {
      leaderTtlSeconds: LEADER_TTL_SECONDS,
      killed,
      newLeader: leader.id,
      toNewLeaderInViewMs: leader.ms,
      toFirstWarmInvokeMs: warm,
      toFirstColdInvokeMs: cold.ms,
      coldInvoke: { start: 'start' in cold ? cold.start : null, failedTries: cold.failures },
      failedRequestsInGap: afterKill.filter((call) => !call.ok && call.start < gapEnd).length,
      failedRequests: steady.calls.filter((call) => !call.ok).length,
      requests: steady.calls.length,
      note:
        `SIGKILL to the leading manager (leader TTL ${LEADER_TTL_SECONDS} s) while ${STEADY_CONCURRENCY} callers ` +
        'invoke a warm no-op function; toFirstWarmInvokeMs: from the kill to the end of the first invocation sent ' +
        'after it that succeeded (each needs a checkout from the pool); toFirstColdInvokeMs: the same for a ' +
        'function deployed before the kill with no sandbox yet, invoked after it one try after another (so it ' +
        'needs the provisioning queue and a manager to start its sandbox; coldInvoke.start says whether the try ' +
        'that succeeded started it or found the one an earlier, failed try had asked for); ' +
        'toNewLeaderInViewMs: until GET ' +
        `/v1/control-plane (polled every ${VIEW_POLL_MS} ms) names another leader. Failures are reported, not a target`,
    };
  } finally {
    await steady.stop();
  }
}

interface SteadyCall {
  start: number;
  end: number;
  ok: boolean;
}

/** `concurrency` callers invoking `url` one request after another until stopped, each call recorded. */
function steadyLoad(url: string, concurrency: number): { calls: SteadyCall[]; stop(): Promise<void> } {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  const calls: SteadyCall[] = [];
  let stopping = false;
  const callers = Array.from({ length: concurrency }, async () => {
    while (!stopping) {
      const start = performance.now();
      const hit = await post(agent, target, '{}').catch(() => null);
      const ok = hit?.status === 200;
      calls.push({ start, end: performance.now(), ok });
      // A refused connection fails at once: do not spin.
      if (!ok) await sleep(VIEW_POLL_MS);
    }
  });
  return {
    calls,
    stop: async () => {
      stopping = true;
      await Promise.all(callers);
      agent.destroy();
    },
  };
}

async function sleepUntil(at: number): Promise<void> {
  const ms = at - performance.now();
  if (ms > 0) await sleep(ms);
}

/** Latencies of `url` invoked one request after another for `ms`. */
async function latenciesFor(url: string, ms: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL(url);
  const latencies: number[] = [];
  try {
    for (const until = performance.now() + ms; performance.now() < until;) {
      const hit = await post(agent, target, '{}');
      if (hit.status === 200) latencies.push(hit.ms);
    }
    return latencies;
  } finally {
    agent.destroy();
  }
}

interface ViewPoll {
  at: number;
  leader: string | null;
  failed: boolean;
}

/** GET /v1/control-plane every {@link VIEW_POLL_MS} ms until stopped: who led at each poll. */
function pollLeader(url: string): { stop(): Promise<ViewPoll[]> } {
  const polls: ViewPoll[] = [];
  let stopping = false;
  const polling = (async () => {
    while (!stopping) {
      const at = performance.now();
      const poll = await controlPlane(url).then(
        (view) => ({ at, leader: view.leader?.id ?? null, failed: false }),
        () => ({ at, leader: null, failed: true }),
      );
      polls.push(poll);
      await sleep(VIEW_POLL_MS);
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      await polling;
      return polls;
    },
  };
}

/** From each poll that answered with no leader to the next poll, summed. */
function timeWithoutLeader(polls: ViewPoll[]): number {
  let ms = 0;
  for (let i = 0; i + 1 < polls.length; i++) {
    const poll = polls[i]!;
    if (!poll.failed && poll.leader === null) ms += polls[i + 1]!.at - poll.at;
  }
  return ms;
}

async function controlPlane(url: string): Promise<ControlPlaneView> {
  const response = await fetch(`${url}/v1/control-plane`);
  if (!response.ok) throw new Error(`GET /v1/control-plane answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as ControlPlaneView;
}

async function handover(
  url: string,
  to: string,
): Promise<{ from: string; to: string; term: number; pausedMs: number }> {
  const response = await fetch(`${url}/v1/control-plane/handover`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ to }),
  });
  if (!response.ok) throw new Error(`the handover to ${to} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as { from: string; to: string; term: number; pausedMs: number };
}

/** Polls `check` until it holds; throws after {@link WAIT_TIMEOUT_MS}. */
async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + WAIT_TIMEOUT_MS; !(await check().catch(() => false));) {
    if (Date.now() > deadline) throw new Error(`waited ${WAIT_TIMEOUT_MS / 1000} s for ${what}`);
    await sleep(50);
  }
}

/** The machine's CPU time so far (all cores, in clock ticks), and the idle part of it; null where /proc/stat is not. */
async function cpuTimes(): Promise<{ total: number; idle: number } | null> {
  const line = (await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0] ?? '';
  if (!line.startsWith('cpu ')) return null;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: idle and iowait are the idle part.
  return { total: ticks.slice(0, 8).reduce((a, b) => a + b, 0), idle: (ticks[3] ?? 0) + (ticks[4] ?? 0) };
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return round(sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2);
}

if (runsAlone(import.meta.url)) await runSectionAlone('control-plane', measureControlPlane);
