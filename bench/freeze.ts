// Freezing idle sandboxes (cgroup freezer), on bwrap, side by side in one run: warm invokes at concurrency 1 on a
// server that never freezes, one that freezes after every invocation (so every invoke thaws first), and one with
// the default idle delay, against a bare Node server; then invokes after an idle pause long enough for the default
// delay to freeze, against the same pause on the server that never freezes (the thaw's cost on a real request).
// Run alone: `npm run build && node --import tsx bench/freeze.ts` (BENCH_QUICK=1 for a short run).
import { createHash, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { Agent } from 'node:http';
import { zipSync } from 'fflate';
import { FsBlobStore } from '../src/adapters/fs/fs-blob-store.js';
import { Agent as SavassanAgent, defaultFreezeIdleMs } from '../src/agent/agent.js';
import { compileFunctionConfig } from '../src/core/function-config.js';
import { blobKeys } from '../src/core/types.js';
import { BwrapRuntime } from '../src/sandbox/bwrap-runtime.js';
import { Cgroups } from '../src/sandbox/cgroups.js';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { repoRoot, startServer, type ServerProcess } from '../test/helpers/server-process.js';
import { load, post, round, startBaseline, summarise } from './load.js';

interface Side {
  name: string;
  server: ServerProcess;
  url: string;
}

async function startSide(name: string, freezeIdle: string): Promise<Side> {
  // Sandbox users must be able to pass through the data dir (mkdtemp makes it 0700).
  const dataDir = await mkdtemp(join(tmpdir(), 'sv-bench-freeze-'));
  await chmod(dataDir, 0o711);
  const server = await startServer(
    ['--no-examples', '--log-level', 'error', '--sandbox', 'bwrap', '--freeze-idle', freezeIdle],
    dataDir,
  );
  const client = new SavassanClient({ url: server.url });
  // One instance: every request at concurrency 1 reaches the same sandbox.
  await client.deploy('noop', await readBundle(join(repoRoot, 'bench', 'functions', 'noop')), { maxInstances: 1 });
  return { name, server, url: `${server.url}/v1/functions/noop/invoke` };
}

/**
 * Without HTTP: the Agent's warm invoke on a bwrap sandbox that is never frozen against one frozen after every
 * invocation (interleaved in rounds), and the bare cgroup writes (freeze, thaw) on a sleeping process. Needs root.
 */
async function measureAgentLevel(requests: number): Promise<unknown> {
  const root = await mkdtemp(join(tmpdir(), 'sv-bench-freeze-agent-'));
  await chmod(root, 0o711);
  const blobs = new FsBlobStore(join(root, 'blobs'));
  const runtime = await BwrapRuntime.open({ workDir: join(root, 'w'), cgroupName: `savassan-bench-${process.pid}` });
  const cgroups = await Cgroups.open(`savassan-bench-${process.pid}-raw`);
  const agents: SavassanAgent[] = [];
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  try {
    const zip = zipSync({ 'index.js': Buffer.from('exports.handler = async () => ({ ok: true });') });
    const sha = createHash('sha256').update(zip).digest('hex');
    await blobs.put(blobKeys.code(sha), zip);
    const spec = {
      functionName: 'noop',
      incarnation: 'i1',
      version: 1,
      codeSha256: sha,
      config: compileFunctionConfig({}),
    };
    const sides = await Promise.all(
      (['never', 'afterEachInvocation'] as const).map(async (name) => {
        const agent = new SavassanAgent({
          nodeId: name,
          runtime,
          blobStore: blobs,
          workDir: join(root, name),
          freezeIdleMs: name === 'never' ? false : 0,
        });
        agents.push(agent);
        return { name, agent, instanceId: (await agent.createSandbox(spec)).instanceId, ms: [] as number[] };
      }),
    );
    const invoke = async (side: (typeof sides)[number]) => {
      const started = performance.now();
      const request = { invocationId: randomUUID(), eventJson: Buffer.from('{}'), timeoutMs: 5000 };
      const outcome = await side.agent.invoke(side.instanceId, request);
      if (outcome.status !== 'success') throw new Error(`${side.name}: ${outcome.status}`);
      return performance.now() - started;
    };
    for (const side of sides) for (let i = 0; i < 200; i++) await invoke(side);
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      for (const side of sides) for (let i = 0; i < requests / rounds; i++) side.ms.push(await invoke(side));
    }
    const writes = { freeze: [] as number[], thaw: [] as number[] };
    if (cgroups instanceof Cgroups && cgroups.canFreeze && sleeper.pid !== undefined) {
      const group = await cgroups.create('raw', { memoryBytes: 64 * 1024 * 1024, pids: 8, cpus: 1 });
      for (const file of group.procsFiles) await writeFile(file, String(sleeper.pid));
      for (let i = 0; i < 300; i++) {
        let started = performance.now();
        await group.freeze();
        writes.freeze.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 2));
        started = performance.now();
        await group.thaw();
        writes.thaw.push(performance.now() - started);
      }
      await group.remove();
    }
    const [never, each] = sides.map((side) => summarise(side.ms)) as [Summary, Summary];
    return {
      warmInvokeMs: { never, afterEachInvocation: each, thawCostP50Ms: round(each.p50 - never.p50, 3) },
      cgroupWriteMs: { freeze: summarise(writes.freeze), thaw: summarise(writes.thaw) },
      note: 'Agent.invoke in process, no HTTP; writes: freezer.state (v1) or cgroup.freeze (v2) on a sleeping process',
    };
  } finally {
    sleeper.kill('SIGKILL');
    await Promise.all(agents.map((agent) => agent.close()));
    await runtime.close();
    if (cgroups instanceof Cgroups) await cgroups.close();
    await blobs.close();
    await rm(root, { recursive: true, force: true });
  }
}

type Summary = ReturnType<typeof summarise>;

export async function measureFreezing(options: { warmRequests: number; idleRuns: number }): Promise<unknown> {
  const agentLevel = process.getuid?.() === 0 ? await measureAgentLevel(options.warmRequests) : null;
  const bare = await startBaseline('bare-server.mjs');
  const sides: Side[] = [];
  try {
    sides.push(await startSide('never', 'off'));
    sides.push(await startSide('afterEachInvocation', '0'));
    sides.push(await startSide('default', String(defaultFreezeIdleMs)));
    // Warm every side up (its sandbox created, the servers' code paths compiled), not measured.
    for (const side of sides) await load(side.url, 200, 1);

    const rounds = 5;
    const samples = new Map<string, number[]>([['bare', []], ...sides.map((s): [string, number[]] => [s.name, []])]);
    for (let r = 0; r < rounds; r++) {
      samples.get('bare')?.push(...(await load(bare.url, options.warmRequests / rounds, 1)).latencies);
      for (const side of sides) {
        samples.get(side.name)?.push(...(await load(side.url, options.warmRequests / rounds, 1)).latencies);
      }
    }
    const bareP50 = summarise(samples.get('bare') ?? []).p50;
    const concurrency1: Record<string, unknown> = {};
    for (const [name, latencies] of samples) {
      const summary = summarise(latencies);
      concurrency1[name] = { ...summary, p50Ratio: round(summary.p50 / bareP50, 2) };
    }

    // After an idle pause longer than the default delay: the default side's sandbox is frozen, the other's is not.
    const pauseMs = defaultFreezeIdleMs + 500;
    const [never, , byDefault] = sides as [Side, Side, Side];
    const idle = { never: [] as number[], default: [] as number[] };
    // Kept-alive connections (the servers keep them 72 s): the pause is the only difference between the sides.
    const connections = { never: new Agent({ keepAlive: true }), default: new Agent({ keepAlive: true }) };
    for (let i = 0; i < options.idleRuns; i++) {
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      idle.never.push((await post(connections.never, new URL(never.url), '{}')).ms);
      idle.default.push((await post(connections.default, new URL(byDefault.url), '{}')).ms);
    }
    connections.never.destroy();
    connections.default.destroy();
    const afterIdle = { never: summarise(idle.never), default: summarise(idle.default) };
    return {
      sandbox: 'bwrap',
      defaultFreezeIdleMs,
      agentLevel,
      concurrency1Ms: concurrency1,
      afterIdlePause: {
        pauseMs,
        neverFrozenMs: afterIdle.never,
        frozenMs: afterIdle.default,
        thawCostP50Ms: round(afterIdle.default.p50 - afterIdle.never.p50, 3),
        note: 'one kept-alive connection per side; the default side thaws its sandbox first',
      },
      note: 'concurrency 1, one instance per side: afterEachInvocation thaws on every request',
    };
  } finally {
    await Promise.all([bare.stop(), ...sides.map((side) => side.server.cleanup())]);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.env.BENCH_QUICK === '1';
  const figures = await measureFreezing({ warmRequests: quick ? 500 : 3000, idleRuns: quick ? 5 : 20 });
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
}
