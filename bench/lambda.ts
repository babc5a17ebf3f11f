// The Lambda API and function URLs: what answering in another dialect costs. The no-op invoked on the same server
// through the native route (`POST /v1/functions/{name}/invoke`), the Lambda API's `Invoke`
// (`POST /2015-03-31/functions/{name}/invocations`) and the function's URL (`POST /fn/{name}/`, the event built from
// the HTTP request, the answer mapped back), in interleaved rounds: at concurrency 1 for latency, at 32 for throughput.
import { join } from 'node:path';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { repoRoot, startServer, type ServerProcess } from '../test/helpers/server-process.js';
import { bwrapSkipReason, startBwrapServer } from './bwrap-server.js';
import { runSectionAlone, runsAlone } from './section-alone.js';
import { load, round, summarise, warmUntilSteady } from './load.js';

export interface LambdaApiOptions {
  /** The server's base URL (no API keys). */
  url: string;
  /** Requests per side at each concurrency, over all rounds. */
  requests: number;
  rounds?: number;
}

const functionName = 'noop-lambda';

export async function measureLambdaApi(options: LambdaApiOptions) {
  const rounds = options.rounds ?? 5;
  const client = new SavassanClient({ url: options.url });
  await client.deploy(functionName, await readBundle(join(repoRoot, 'bench', 'functions', 'noop')), {
    maxInstances: 32,
  });
  const answer = await fetch(`${options.url}/v1/functions/${functionName}/url`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: 'none' }),
  });
  if (!answer.ok) throw new Error(`creating the function URL failed: ${answer.status} ${await answer.text()}`);
  const sides = {
    native: `${options.url}/v1/functions/${functionName}/invoke`,
    lambda: `${options.url}/2015-03-31/functions/${functionName}/invocations`,
    url: `${options.url}/fn/${functionName}/`,
  };
  try {
    await warmUntilSteady(client, sides.native);
    for (const side of Object.values(sides)) await load(side, 500, 8);
    const perRound = Math.max(1, Math.round(options.requests / rounds));
    const latency: Record<keyof typeof sides, number[]> = { native: [], lambda: [], url: [] };
    const rps: Record<keyof typeof sides, number[]> = { native: [], lambda: [], url: [] };
    let errors = 0;
    for (let r = 0; r < rounds; r++) {
      for (const side of ['native', 'lambda', 'url'] as const) {
        const slow = await load(sides[side], perRound, 1);
        const fast = await load(sides[side], perRound * 4, 32);
        latency[side].push(...slow.latencies);
        rps[side].push(fast.rps);
        errors += slow.errors + fast.errors;
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const ms = { native: summarise(latency.native), lambda: summarise(latency.lambda), url: summarise(latency.url) };
    const throughput = { native: median(rps.native), lambda: median(rps.lambda), url: median(rps.url) };
    return {
      note:
        'no-op: the native invoke route, the Lambda API Invoke and the function URL, interleaved rounds at ' +
        'concurrency 1 (latency) and 32 (throughput, median of the rounds)',
      latencyMs: ms,
      rps: { native: round(throughput.native, 0), lambda: round(throughput.lambda, 0), url: round(throughput.url, 0) },
      lambdaP50Ratio: round(ms.lambda.p50 / ms.native.p50),
      lambdaRpsRatio: round(throughput.lambda / throughput.native),
      urlP50Ratio: round(ms.url.p50 / ms.native.p50),
      urlRpsRatio: round(throughput.url / throughput.native),
      errors,
    };
  } finally {
    await client.deleteFunction(functionName);
  }
}

/** The section on a server of its own: bwrap where it runs, else the process sandbox. */
async function measureAlone(quick: boolean) {
  const bwrapSkipped = bwrapSkipReason();
  const server: ServerProcess =
    bwrapSkipped === null ? await startBwrapServer() : await startServer(['--no-examples', '--log-level', 'error']);
  try {
    return {
      sandbox: bwrapSkipped === null ? 'bwrap' : 'process',
      ...(await measureLambdaApi({ url: server.url, requests: quick ? 300 : 3000 })),
    };
  } finally {
    await server.cleanup();
  }
}

if (runsAlone(import.meta.url)) await runSectionAlone('lambdaApi', measureAlone);
