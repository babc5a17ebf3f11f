// `npm run bench`: measures Savassan side by side with a bare baseline in one run, writes
// bench/results/<date>.json and points BENCHMARKS.md at it. Uses only Node itself as the load
// generator (keep-alive http.Agent), so it needs nothing installed beyond the project.
import { spawnSync } from 'node:child_process';
import { Agent } from 'node:http';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { functionLimits } from '../src/core/function-config.js';
import { repoRoot, startServer } from '../test/helpers/server-process.js';
import { measurePoolOps, measureRedisPoolOverhead } from './backends.js';
import { bwrapSkipReason, startBwrapServer } from './bwrap-server.js';
import { measureCliStartup } from './cli-startup.js';
import { measureConsole } from './console.js';
import { measureCluster } from './cluster.js';
import { measureControlPlane } from './control-plane.js';
import { eventLoopCounts, measureEventLoops } from './event-loops.js';
import { eventsOptions, measureEvents } from './events.js';
import { measureWorkflows, workflowsOptions } from './workflows.js';
import { measureIntelligence } from './intelligence.js';
import { measureLambdaApi } from './lambda.js';
import { machineFacts } from './section-alone.js';
import { measureAliasInvoke } from './traffic.js';
import { measureTracing } from './tracing.js';
import { withCpuPerRequest } from './process-cpu.js';
import { measureSandboxColdStarts } from './cold-start.js';
import { measureFreezing } from './freeze.js';
import { measurePayloads } from './payload.js';
import { startWorkerd } from './workerd.js';
import { latestRunPointer, withLatestRunPointer, type BenchRun } from './latest-run-pointer.js';
import {
  load,
  mean,
  post,
  round,
  sandboxCount,
  startBaseline,
  summarise,
  warmThroughput,
  warmUntilSteady,
} from './load.js';

const quick = process.env.BENCH_QUICK === '1';
const warmRequests = quick ? 300 : 3000;
/** Requests at concurrency 32 per side for the warm-invoke throughput, in 4 interleaved rounds. */
const throughputRequests = quick ? 2000 : 40000;
/** The same for the backend and cluster comparisons. */
const sectionThroughputRequests = quick ? 2000 : 20000;
const coldRuns = quick ? 8 : 40;
/** Runs of `savassan ls` for the CLI start-up time. */
const cliRuns = 10;
const poolOps = quick ? 2000 : 20000;
/** Pause after a load before measuring latency: the V8s of the processes that served it shrink their heaps. */
const settleMs = quick ? 500 : 5000;
/** Max instances of a function deployed without the option (core/function-config.ts). */
const defaultMaxInstances = functionLimits.maxInstances.default;
const warmUpSizes = quick ? { requests: 2000, total: 8000 } : { requests: 20_000, total: 200_000 };
/** Scale of the payload-size section's request counts (bench/payload.ts). */
const payloadScale = quick ? 0.1 : 1;

async function main(): Promise<void> {
  const run = {
    date: new Date().toISOString(),
    machine: machineFacts(),
    quick,
  } satisfies BenchRun;
  const results: Record<string, unknown> = { ...run };
  // Every server of the warm-path sections; each is stopped at the end (stopping twice is harmless).
  const stops: (() => Promise<unknown>)[] = [];
  const started = async <T>(start: Promise<T>, stop: (it: T) => Promise<unknown>): Promise<T> => {
    const it = await start;
    stops.push(() => stop(it));
    return it;
  };
  try {
    const server = await started(startServer(['--no-examples', '--queue-wait', '30', '--log-level', 'error']), (s) =>
      s.cleanup(),
    );
    const bwrapSkipped = bwrapSkipReason();
    const bwrapServer = bwrapSkipped === null ? await started(startBwrapServer(), (s) => s.cleanup()) : null;
    const bare = await started(startBaseline('bare-server.mjs'), (b) => b.stop());
    const workerd = await started(startWorkerd(), (w) => w.stop());
    // The IPC floor: bare http server + a pool of child processes over a Unix socket (one request each): as many
    // children as the no-op function gets sandboxes with the default max instances (10), and one per concurrent
    // request (32).
    const floor = await started(startBaseline('ipc-floor-server.mjs', [String(defaultMaxInstances)]), (f) => f.stop());
    const floor32 = await started(startBaseline('ipc-floor-server.mjs', ['32']), (f) => f.stop());

    const client = new SavassanClient({ url: server.url });
    const bwrapClient = bwrapServer === null ? null : new SavassanClient({ url: bwrapServer.url });
    const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
    const echo = await readBundle(join(repoRoot, 'bench', 'functions', 'echo'));
    // As a user deploys it (max instances 10, the default), and with room for one sandbox per concurrent request.
    await client.deploy('noop', noop);
    await client.deploy('noop-64', noop, { maxInstances: 64 });
    await client.deploy('echo', echo);
    await bwrapClient?.deploy('noop', noop);
    await bwrapClient?.deploy('echo', echo);
    const invokeUrl = `${server.url}/v1/functions/noop/invoke`;
    const invokeUrl64 = `${server.url}/v1/functions/noop-64/invoke`;
    const bwrapInvokeUrl = bwrapServer === null ? null : `${bwrapServer.url}/v1/functions/noop/invoke`;

    // CLI start-up: `savassan ls` against this server (it lists the three functions), before any load has run.
    results.cliStartup = measureCliStartup(server.url, cliRuns);

    // Warm-up: Savassan scales out to its sandboxes for concurrency 32, then each side takes 200,000 requests at
    // concurrency 32, so that what follows measures steady states (see warmThroughput).
    const sides: Record<string, string> = {
      bare: bare.url,
      workerd: workerd.noopUrl,
      ipcFloor: floor.url,
      savassan: invokeUrl,
      ...(bwrapInvokeUrl === null ? {} : { savassanBwrap: bwrapInvokeUrl }),
      ipcFloor32: floor32.url,
      savassan64: invokeUrl64,
    };
    // Sandboxes on the node once each function has scaled out (the count covers every function).
    const afterNoop = await warmUntilSteady(client, invokeUrl);
    const afterBoth = await warmUntilSteady(client, invokeUrl64);
    const bwrapSandboxes =
      bwrapClient === null || bwrapInvokeUrl === null ? null : await warmUntilSteady(bwrapClient, bwrapInvokeUrl);
    results.warmSandboxes = {
      noop: afterNoop,
      'noop-64': afterBoth - afterNoop,
      ...(bwrapSandboxes === null ? {} : { noopBwrap: bwrapSandboxes }),
    };
    const warmUp: Record<string, unknown> = {
      note: 'requests at concurrency 32 before measuring, and the rate of each warm-up round',
    };
    for (const [side, url] of Object.entries(sides)) warmUp[side] = await warmThroughput(url, warmUpSizes);
    results.warmUp = warmUp;

    // 1. Throughput at concurrency 32, right after the warm-up, in interleaved rounds.
    const rps = Object.fromEntries(Object.keys(sides).map((side) => [side, [] as number[]]));
    const errors = Object.fromEntries(Object.keys(sides).map((side) => [side, 0]));
    // The gateway's CPU per request (the server process, every thread; its sandboxes are other processes).
    const serverPids: Record<string, number> = {
      savassan: server.pid,
      ...(bwrapServer === null ? {} : { savassanBwrap: bwrapServer.pid }),
    };
    const cpuPerRequest = Object.fromEntries(Object.keys(serverPids).map((side) => [side, [] as number[]]));
    const throughputRounds = 4;
    const perRound = throughputRequests / throughputRounds;
    for (let r = 0; r < throughputRounds; r++) {
      for (const [side, url] of Object.entries(sides)) {
        const pid = serverPids[side];
        const run = () => load(url, perRound, 32);
        let measured: Awaited<ReturnType<typeof run>>;
        if (pid === undefined) {
          measured = await run();
        } else {
          const withCpu = await withCpuPerRequest(pid, perRound, run);
          measured = withCpu.value;
          cpuPerRequest[side]!.push(withCpu.cpuMicrosPerRequest);
        }
        rps[side]!.push(measured.rps);
        errors[side]! += measured.errors;
      }
    }
    const cpuUs = (side: string) => round(mean(cpuPerRequest[side]!), 1);
    const meanRps = (side: string) => round(mean(rps[side]!), 0);
    const ratioToBare = (side: string) => round(mean(rps[side]!) / mean(rps.bare!), 2);
    /** Rate, ratio to bare and errors of a Savassan side and of the IPC floor beside it. */
    const figuresOf = (savassan: string, floor: string) => ({
      savassanRps: meanRps(savassan),
      ratio: ratioToBare(savassan),
      savassanErrors: errors[savassan],
      ipcFloorRps: meanRps(floor),
      ipcFloorRatio: ratioToBare(floor),
      ipcFloorErrors: errors[floor],
    });

    // The one-sandbox-per-request side is done: its 32 sandboxes and the 32-child floor go, so that concurrency 1
    // is not measured beside 64 idle processes whose V8s are shrinking their heaps after the load stopped.
    await Promise.all([floor32.stop(), client.deleteFunction('noop-64')]);
    for (let wait = 0; wait < 100 && (await sandboxCount(client)) > afterNoop; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, settleMs));

    // 2. Warm invoke at concurrency 1, interleaved in rounds so all sides see the same machine noise.
    const latencySides: Record<string, string> = {
      bare: bare.url,
      workerd: workerd.noopUrl,
      floor: floor.url,
      savassan: invokeUrl,
      ...(bwrapInvokeUrl === null ? {} : { savassanBwrap: bwrapInvokeUrl }),
    };
    const warm = Object.fromEntries(Object.keys(latencySides).map((side) => [side, [] as number[]]));
    const rounds = 5;
    for (let r = 0; r < rounds; r++) {
      for (const [side, url] of Object.entries(latencySides)) {
        warm[side]!.push(...(await load(url, warmRequests / rounds, 1)).latencies);
      }
    }
    const warmBare = summarise(warm.bare!);
    const warmFloor = summarise(warm.floor!);
    const warmSavassan = summarise(warm.savassan!);
    const warmWorkerd = summarise(warm.workerd!);
    const warmBwrap = warm.savassanBwrap === undefined ? null : summarise(warm.savassanBwrap);
    const ratiosOf = (ms: ReturnType<typeof summarise>) => ({
      p50Ratio: round(ms.p50 / warmBare.p50, 2),
      p99Ratio: round(ms.p99 / warmBare.p99, 2),
    });

    results.warmInvoke = {
      concurrency1: {
        bareMs: warmBare,
        savassanMs: warmSavassan,
        p50Ratio: round(warmSavassan.p50 / warmBare.p50, 2),
        p99Ratio: round(warmSavassan.p99 / warmBare.p99, 2),
        ipcFloorMs: warmFloor,
        ipcFloorP50Ratio: round(warmFloor.p50 / warmBare.p50, 2),
        workerd: { ms: warmWorkerd, ...ratiosOf(warmWorkerd) },
        bwrap:
          warmBwrap === null
            ? { skipped: bwrapSkipped }
            : { savassanMs: warmBwrap, ...ratiosOf(warmBwrap), target: 'p50 <= 1.5x bare' },
        target: 'p50 <= 2x bare',
      },
      concurrency32: {
        roundRps: Object.fromEntries(Object.entries(rps).map(([side, rates]) => [side, rates.map((r) => round(r, 0))])),
        bareRps: meanRps('bare'),
        ...figuresOf('savassan', 'ipcFloor'),
        target: 'throughput >= 0.4x bare',
        note: `savassan: the function deployed with the default max instances (${defaultMaxInstances}), the IPC floor with as many children`,
        workerd: { rps: meanRps('workerd'), ratio: ratioToBare('workerd'), errors: errors.workerd },
        bwrap:
          rps.savassanBwrap === undefined
            ? { skipped: bwrapSkipped }
            : {
                savassanRps: meanRps('savassanBwrap'),
                ratio: ratioToBare('savassanBwrap'),
                savassanErrors: errors.savassanBwrap,
                target: 'throughput >= 0.6x bare',
                note: `the function deployed with the default max instances (${defaultMaxInstances}) on a --sandbox bwrap server`,
              },
        gatewayCpuUsPerRequest: {
          note: 'CPU time of the server process (all its threads) per request, mean of the rounds',
          process: cpuUs('savassan'),
          ...(bwrapServer === null
            ? {}
            : {
                bwrap: cpuUs('savassanBwrap'),
                bwrapOverProcess: round(cpuUs('savassanBwrap') / cpuUs('savassan'), 2),
              }),
          target: 'bwrap within 5% of process (CPU per request and throughput)',
        },
        oneSandboxPerRequest: {
          note: 'the function deployed with max instances 64 (it scales to one sandbox per concurrent request), the IPC floor with 32 children',
          ...figuresOf('savassan64', 'ipcFloor32'),
        },
      },
      workerdVersion: workerd.version,
      note:
        'workerd: bench/workerd/config.capnp (the same no-op as a module worker); bwrap: a --sandbox bwrap server ' +
        'with its defaults (idle sandboxes freeze after 1 s, so the first requests of a round may thaw one)',
    };

    // 3. Payload sizes: the echo function at events from 0 B to 1 MB, concurrency 1 and 8, against the bare
    // server's echo route and workerd's echo worker. The echo functions scale out first, so that no sandbox starts
    // during the measured rounds.
    const echoUrl = `${server.url}/v1/functions/echo/invoke`;
    const bwrapEchoUrl = bwrapServer === null ? null : `${bwrapServer.url}/v1/functions/echo/invoke`;
    await warmUntilSteady(client, echoUrl);
    if (bwrapClient !== null && bwrapEchoUrl !== null) await warmUntilSteady(bwrapClient, bwrapEchoUrl);
    // The IPC floor with the echo handler: the least a design that runs the handler in another process pays to carry
    // the event there and the result back.
    const echoFloor = await started(startBaseline('ipc-floor-server.mjs', [String(defaultMaxInstances), 'echo']), (f) =>
      f.stop(),
    );
    results.payloadSizes = {
      note: 'event {"data":"x..."} with a data string of the size named; latency at concurrency 1, throughput at concurrency 8; ratios to bare',
      target: '100 KB echo: p50 at concurrency 1 <= 1.5x bare',
      ...(bwrapServer === null ? { bwrapSkipped } : {}),
      bySize: await measurePayloads(
        {
          bare: `${bare.url}/echo`,
          ipcFloor: echoFloor.url,
          workerd: workerd.echoUrl,
          savassan: echoUrl,
          ...(bwrapEchoUrl === null ? {} : { savassanBwrap: bwrapEchoUrl }),
        },
        { scale: payloadScale },
      ),
    };
    // Traffic: invoking through an alias that splits between two versions, against a plain invoke.
    results.aliasInvoke = {
      ...(await measureAliasInvoke({ url: bwrapServer?.url ?? server.url, requests: warmRequests })),
      sandbox: bwrapServer === null ? 'process' : 'bwrap',
      target: 'alias p50 ≤ 1.05× plain',
    };
    // The Lambda API and function URLs against the native invoke route.
    results.lambdaApi = {
      ...(await measureLambdaApi({ url: bwrapServer?.url ?? server.url, requests: warmRequests })),
      sandbox: bwrapServer === null ? 'process' : 'bwrap',
      target: 'Lambda API Invoke p50 ≤ 1.1× the native route',
    };

    // The bwrap server and workerd are done; the cold-start and burst figures below are the process server's.
    await Promise.all([bwrapServer?.cleanup(), workerd.stop(), echoFloor.stop()]);
    // 4. Cold start: deploy a fresh function, then its first invoke.
    const cold: number[] = [];
    const initMs: number[] = [];
    for (let i = 0; i < coldRuns; i++) {
      const name = `cold-${i}`;
      await client.deploy(name, noop, { idleSeconds: 1 });
      const hit = await post(new Agent(), new URL(`${server.url}/v1/functions/${name}/invoke`), '{}');
      if (hit.headers['x-savassan-start'] !== 'cold')
        throw new Error(`expected a cold start, got ${String(hit.headers['x-savassan-start'])}`);
      cold.push(hit.ms);
      const record = await client.getInvocation(String(hit.headers['x-savassan-invocation-id']));
      initMs.push(record.initMs ?? NaN);
      await client.deleteFunction(name);
    }
    const spawnMs: number[] = [];
    for (let i = 0; i < coldRuns; i++) {
      const t = performance.now();
      spawnSync(process.execPath, ['-e', '']);
      spawnMs.push(performance.now() - t);
    }
    results.coldStart = {
      savassanFirstInvokeMs: summarise(cold),
      sandboxInitMs: summarise(initMs),
      bareNodeSpawnMs: summarise(spawnMs),
      note: 'process runtime (unisolated) with stem cells; the isolating bwrap figures are under sandboxColdStart',
    };

    // 5. Burst: 200 concurrent first requests to a fresh function with max instances 10.
    await client.deploy('burst', noop, { maxInstances: 10 });
    const before = (await client.listNodes()).nodes[0]!.sandboxes;
    const burstAgent = new Agent({ keepAlive: true, maxSockets: 200 });
    const target = new URL(`${server.url}/v1/functions/burst/invoke`);
    const hits = await Promise.all(Array.from({ length: 200 }, () => post(burstAgent, target, '{}')));
    burstAgent.destroy();
    const created = (await client.listNodes()).nodes[0]!.sandboxes - before;
    results.burst = {
      requests: 200,
      succeeded: hits.filter((h) => h.status === 200).length,
      sandboxesCreated: created,
      cold: hits.filter((h) => h.headers['x-savassan-start'] === 'cold').length,
      latencyMs: summarise(hits.map((h) => h.ms)),
      target: 'all succeed, at most 10 sandboxes',
    };

    // 6. Event loops: throughput at concurrency 64 with 1, 2, 4... event loops serving the port (as many as there
    // are cores for), on bwrap where it runs, beside the bare server.
    results.eventLoops = {
      sandbox: bwrapSkipped === null ? 'bwrap' : 'process',
      ...(await measureEventLoops({
        loops: eventLoopCounts(availableParallelism()),
        start: (extraArgs) =>
          bwrapSkipped === null
            ? startBwrapServer(extraArgs)
            : startServer(['--no-examples', '--queue-wait', '30', '--log-level', 'error', ...extraArgs]),
        bareUrl: bare.url,
        requests: sectionThroughputRequests,
        warmUp: quick ? { requests: 1000, total: 2000 } : { requests: 10_000, total: 40_000 },
      })),
      target: 'throughput at concurrency 64 grows with the event loops (on a machine with the cores)',
    };
  } finally {
    await Promise.all(stops.map((stop) => stop()));
  }

  // 7. Cold start on the isolating bwrap sandbox, with and without stem cells, against a bare node spawn.
  if (existsSync('/usr/bin/bwrap')) {
    const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
    results.sandboxColdStart = await measureSandboxColdStarts(noop, coldRuns, summarise, async (url) => {
      const hit = await post(new Agent(), new URL(url), '{}');
      return {
        ms: hit.ms,
        start: String(hit.headers['x-savassan-start']),
        invocationId: String(hit.headers['x-savassan-invocation-id']),
      };
    });
    // Freezing idle sandboxes: the thaw's cost on a warm invoke, and the default delay against freezing every time.
    results.freezing = await measureFreezing({ warmRequests, idleRuns: quick ? 5 : 20 });
  }

  // 8. Backends: warm invoke with the pool in Redis against the in-memory pool, and pool operations/s.
  const noopBundle = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
  results.backends = {
    redisPoolOverhead: await measureRedisPoolOverhead(noopBundle, {
      warmRequests,
      throughputRequests: sectionThroughputRequests,
    }),
    poolOps: await measurePoolOps({ ops: poolOps }),
  };

  // 9. Cluster: 3 agents against 1 for a CPU-light function, and the gateway + gRPC path against embedded.
  results.cluster = await measureCluster(noopBundle, {
    warmRequests,
    throughputRequests: sectionThroughputRequests,
    rollbackTrials: quick ? 2 : 8,
  });

  // 10. Events: asynchronous invocations and schedules on a server of their own (bwrap where it runs): the rate of
  // 202s beside the rate of 200s, events/s end to end at two asyncConcurrency settings, a schedule's firing delay, a
  // queue trigger's messages/s at two maxConcurrency settings.
  results.events = await measureEvents(eventsOptions(quick));

  // 11. Traces: the warm path with tracing off, on at 100% and at 1%, exporting to a receiver that discards.
  results.tracing = await measureTracing({
    warmRequests,
    throughputRequests: sectionThroughputRequests,
    spanIterations: quick ? 2000 : 20000,
  });

  // 12. The web console: the gzipped size of what its page loads, and the Functions page's load time with 200
  // functions in headless Chromium.
  results.console = await measureConsole(quick);

  // 13. Workflows: the engine's overhead per node on a 100-node chain of no-op functions, beside the same calls made
  // one after another by a client, and a 1,000-wide fan-out's duration and the server's peak memory.
  results.workflows = await measureWorkflows(workflowsOptions(quick));

  // 14. The intelligence layer: embedding throughput per embedder, vector search (HNSW against exact scans and the
  // in-memory brute force, recall@10) at 10k and 100k vectors, and plan latency per planner.
  results.intelligence = await measureIntelligence(quick);

  // 17. The self-managed control plane: the leader-held pool against the Redis pool (adapter ops/s, warm p50 through
  // a gateway), the leader's loop delay with every core busy, handovers under steady load, and a leader's crash.
  results.controlPlane = await measureControlPlane(quick);

  await mkdir(join(repoRoot, 'bench', 'results'), { recursive: true });
  const file = join(repoRoot, 'bench', 'results', `${run.date.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(join(repoRoot, 'bench', 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  await updateBenchmarksMd(run, file);
  process.stdout.write(`${JSON.stringify(results, null, 2)}\nwritten to ${file}\n`);
}

/** Points BENCHMARKS.md at the newest run's result file; its figures and tables are written from that by hand. */
async function updateBenchmarksMd(run: BenchRun, resultFile: string): Promise<void> {
  const path = join(repoRoot, 'BENCHMARKS.md');
  const text = await readFile(path, 'utf8').catch(() => '# Benchmarks\n\n<!-- latest:start -->\n<!-- latest:end -->\n');
  await writeFile(path, withLatestRunPointer(text, latestRunPointer(run, relative(repoRoot, resultFile))));
}

await main();
