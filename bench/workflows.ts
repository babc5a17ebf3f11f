// Workflows: what the durable engine costs a user, on one server (bwrap where it runs), through the public API:
// - orchestration overhead per node on a 100-node chain of no-op functions: the execution's duration (started to
//   ended, as the server reports it) less the time the functions themselves ran (the sum of their invocation
//   records' durations), divided by the nodes; beside it, the same 100 no-op invocations made one after another by a
//   client over HTTP, the same way (their wall time less their durations, per call);
// - a 1,000-wide fan-out (one root, 1,000 no-op nodes that read its output, one node that joins them all): its
//   duration and the server's peak resident memory (VmHWM) against its memory before.
// Run alone: `npm run build && node --import tsx bench/workflows.ts` (BENCH_QUICK=1 for fewer runs); it writes
// bench/results/<date>-workflows.json.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { repoRoot, startServer, type ServerProcess } from '../test/helpers/server-process.js';
import { bwrapSkipReason, startBwrapServer } from './bwrap-server.js';
import { round, summarise, warmUntilSteady } from './load.js';
import { runSectionAlone, runsAlone } from './section-alone.js';

/** The most overhead per node the engine may add in embedded mode (ms). */
const targetOverheadMs = 2;
const project = 'bench';
const domain = 'development';
const functionName = 'wf-noop';

interface ExecutionAnswer {
  closure: { phase: string; started_at?: string; duration: string; error?: { message: string } };
}
interface NodeAnswer {
  node_executions: { id: { node_id: string }; invocation_ids: string[] }[];
  token?: string;
}

/** Protobuf JSON duration (`"1.250s"`) in ms. */
function durationMs(text: string): number {
  return Number(text.replace(/s$/, '')) * 1000;
}

async function api<T>(url: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(url, {
    ...init,
    headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${init.method ?? 'GET'} ${url}: ${response.status} ${text}`);
  return (text === '' ? {} : JSON.parse(text)) as T;
}

/** Peak and current resident memory of a process, in MiB. */
async function memoryOf(pid: number): Promise<{ peakMiB: number; rssMiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { peakMiB: round(kib('VmHWM') / 1024, 1), rssMiB: round(kib('VmRSS') / 1024, 1) };
}

/** Runs a deployed workflow to its end; its duration and the functions' own time (ms). */
async function runWorkflow(
  url: string,
  workflow: string,
  name: string,
): Promise<{ durationMs: number; functionMs: number; nodes: number }> {
  await api(`${url}/api/v1/executions`, {
    method: 'POST',
    body: JSON.stringify({ project, domain, name, spec: { launch_plan: { name: workflow } }, inputs: {} }),
  });
  const path = `${project}/${domain}/${name}`;
  let execution: ExecutionAnswer;
  for (;;) {
    execution = await api<ExecutionAnswer>(`${url}/api/v1/executions/${path}`);
    if (['SUCCEEDED', 'FAILED', 'ABORTED', 'TIMED_OUT'].includes(execution.closure.phase)) break;
    await sleep(25);
  }
  if (execution.closure.phase !== 'SUCCEEDED') {
    throw new Error(`${workflow} ended ${execution.closure.phase}: ${execution.closure.error?.message ?? ''}`);
  }
  const nodes: NodeAnswer['node_executions'] = [];
  let token = '';
  do {
    const query = token === '' ? '' : `?token=${encodeURIComponent(token)}`;
    const page = await api<NodeAnswer>(`${url}/api/v1/node_executions/${path}${query}`);
    nodes.push(...page.node_executions);
    token = page.token ?? '';
  } while (token !== '');
  const ids = nodes.flatMap((node) => node.invocation_ids);
  let functionMs = 0;
  for (let i = 0; i < ids.length; i += 16) {
    const records = await Promise.all(
      ids.slice(i, i + 16).map((id) => api<{ durationMs: number }>(`${url}/v1/invocations/${id}`)),
    );
    functionMs += records.reduce((sum, record) => sum + record.durationMs, 0);
  }
  return { durationMs: durationMs(execution.closure.duration), functionMs, nodes: ids.length };
}

/** The same calls a chain makes, one after another from a client: wall time less the functions' time, per call. */
async function clientChain(url: string, calls: number): Promise<number> {
  const ids: string[] = [];
  let n = 0;
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const response = await fetch(`${url}/v1/functions/${functionName}/invoke`, {
      method: 'POST',
      body: JSON.stringify({ n }),
    });
    const id = response.headers.get('x-savassan-invocation-id');
    if (id !== null) ids.push(id);
    n = ((await response.json()) as { n: number }).n + 1;
  }
  const wallMs = performance.now() - started;
  // The records are read after the clock stopped, so that the reads are not counted.
  let functionMs = 0;
  for (const id of ids) functionMs += (await api<{ durationMs: number }>(`${url}/v1/invocations/${id}`)).durationMs;
  return (wallMs - functionMs) / calls;
}

export function chainSpec(length: number) {
  const nodes: Record<string, unknown> = { n0: { function: functionName, input: { n: 0 } } };
  for (let i = 1; i < length; i++)
    nodes[`n${i}`] = { function: functionName, input: { n: `$.nodes.n${i - 1}.output.n` } };
  return { nodes, output: { n: `$.nodes.n${length - 1}.output.n` } };
}

export function fanOutSpec(width: number) {
  const nodes: Record<string, unknown> = { root: { function: functionName, input: { n: 1 } } };
  const joined: Record<string, string> = {};
  for (let i = 0; i < width; i++) {
    nodes[`f${i}`] = { function: functionName, input: { n: '$.nodes.root.output.n' } };
    joined[`f${i}`] = `$.nodes.f${i}.output.n`;
  }
  nodes['join'] = { function: functionName, input: { parts: joined } };
  return { nodes, output: { done: '$.nodes.join.output.ok' } };
}

export interface WorkflowsOptions {
  chainLength: number;
  chainRuns: number;
  fanOutWidth: number;
  fanOutRuns: number;
}

export async function measureWorkflows(options: WorkflowsOptions) {
  const bwrapSkipped = bwrapSkipReason();
  const server: ServerProcess =
    bwrapSkipped === null
      ? await startBwrapServer()
      : await startServer(['--no-examples', '--queue-wait', '30', '--log-level', 'error']);
  try {
    const client = new SavassanClient({ url: server.url });
    await client.deploy(functionName, await readBundle(join(repoRoot, 'bench', 'functions', 'noop')));
    await warmUntilSteady(client, `${server.url}/v1/functions/${functionName}/invoke`);
    const put = (name: string, spec: unknown) =>
      api(`${server.url}/v1/workflows/${name}`, { method: 'PUT', body: JSON.stringify(spec) });
    await put('chain', chainSpec(options.chainLength));
    await put('fanout', fanOutSpec(options.fanOutWidth));
    // One short run of each first: compiled specs cached, the warm pool settled.
    await runWorkflow(server.url, 'chain', 'warm-chain');

    const engine: number[] = [];
    const client100: number[] = [];
    const chainTotals: number[] = [];
    for (let run = 0; run < options.chainRuns; run++) {
      // Interleaved: the engine's chain, then the client's, so that both see the same machine.
      const chain = await runWorkflow(server.url, 'chain', `chain-${run}`);
      engine.push((chain.durationMs - chain.functionMs) / chain.nodes);
      chainTotals.push(chain.durationMs);
      client100.push(await clientChain(server.url, options.chainLength));
    }
    const before = await memoryOf(server.pid);
    const fanOut: number[] = [];
    for (let run = 0; run < options.fanOutRuns; run++) {
      fanOut.push((await runWorkflow(server.url, 'fanout', `fanout-${run}`)).durationMs);
    }
    const after = await memoryOf(server.pid);
    const overhead = summarise(engine);
    return {
      sandbox: bwrapSkipped === null ? 'bwrap' : 'process',
      ...(bwrapSkipped === null ? {} : { bwrapSkipped }),
      chain: {
        nodes: options.chainLength,
        runs: options.chainRuns,
        overheadPerNodeMs: overhead,
        targetMs: targetOverheadMs,
        meetsTarget: overhead.p50 <= targetOverheadMs,
        totalMs: summarise(chainTotals),
        clientSequentialOverheadPerCallMs: summarise(client100),
      },
      fanOut: {
        width: options.fanOutWidth,
        runs: options.fanOutRuns,
        durationMs: summarise(fanOut),
        serverRssBeforeMiB: before.rssMiB,
        serverPeakRssMiB: after.peakMiB,
      },
    };
  } finally {
    await server.cleanup();
  }
}

export function workflowsOptions(quick: boolean): WorkflowsOptions {
  return quick
    ? { chainLength: 100, chainRuns: 2, fanOutWidth: 1000, fanOutRuns: 1 }
    : { chainLength: 100, chainRuns: 7, fanOutWidth: 1000, fanOutRuns: 3 };
}

if (runsAlone(import.meta.url)) {
  await runSectionAlone('workflows', (quick) => measureWorkflows(workflowsOptions(quick)));
}
