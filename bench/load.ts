// The bench's load generator and statistics, shared by bench/run.ts and bench/backends.ts: Node's own keep-alive
// http.Agent, nothing installed beyond the project. On a machine with the cores for it the requests are fired from
// several worker threads (bench/load-worker.mjs), so that one generator thread does not cap what a server can do.
import { spawn } from 'node:child_process';
import { Agent } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { post } from './http-post.mjs';
import type { SavassanClient } from '../src/client/client.js';

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function summarise(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.at(-1) ?? NaN),
  };
}

export const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export { post };

/**
 * Threads that fire the requests of a `load` with concurrency above 1: one on a small machine, where a second
 * would take CPU from the server under test, up to 4 where there are at least 16 cores. `BENCH_LOAD_THREADS`
 * overrides it.
 */
export const loadThreads = threadsFrom(process.env.BENCH_LOAD_THREADS);

function threadsFrom(setting: string | undefined): number {
  if (setting === undefined || setting === '') return Math.max(1, Math.min(4, Math.floor(availableParallelism() / 4)));
  const threads = Number(setting);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`BENCH_LOAD_THREADS must be a whole number of threads, at least 1; got ${JSON.stringify(setting)}`);
  }
  return threads;
}

/**
 * Fires `total` requests with `concurrency` in flight; returns latencies and wall time. Each request's body is
 * `body`, or `{"n":<its number>}` without it. An answer other than `okStatus` (200 unless given; 202 for an
 * asynchronous invoke) counts as an error.
 */
export async function load(url: string, total: number, concurrency: number, body?: string, okStatus = 200) {
  const threads = Math.min(loadThreads, concurrency);
  if (threads > 1) return loadFromThreads(url, total, concurrency, threads, body, okStatus);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const n = next++;
        const hit = await post(agent, target, body ?? `{"n":${n}}`);
        if (hit.status !== okStatus) errors++;
        latencies.push(hit.ms);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { latencies, errors, seconds, rps: total / seconds };
}

interface ThreadResult {
  latencies: Float64Array;
  errors: number;
  startedAt: number;
  endedAt: number;
}

/** `load` split over worker threads: each gets its share of requests and concurrency; all start together. */
async function loadFromThreads(
  url: string,
  total: number,
  concurrency: number,
  threads: number,
  body: string | undefined,
  okStatus: number,
) {
  const workers = Array.from({ length: threads }, (_, i) => {
    const share = (of: number) => Math.floor(of / threads) + (i < of % threads ? 1 : 0);
    const firstN = Math.floor(total / threads) * i + Math.min(i, total % threads);
    return new Worker(new URL('./load-worker.mjs', import.meta.url), {
      workerData: { url, total: share(total), concurrency: share(concurrency), firstN, body, okStatus },
    });
  });
  try {
    await Promise.all(workers.map((worker) => once(worker, (message) => message === 'ready')));
    const results = workers.map((worker) => once<ThreadResult>(worker, (message) => message !== 'ready'));
    for (const worker of workers) worker.postMessage('go');
    const done = await Promise.all(results);
    const latencies = done.flatMap((result) => [...result.latencies]);
    const seconds =
      (Math.max(...done.map((result) => result.endedAt)) - Math.min(...done.map((result) => result.startedAt))) / 1000;
    const errors = done.reduce((sum, result) => sum + result.errors, 0);
    return { latencies, errors, seconds, rps: total / seconds };
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

/** The first message of `worker` that `accept` takes; rejects if the worker fails or exits first. */
function once<T>(worker: Worker, accept: (message: unknown) => boolean): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      if (!accept(message)) return;
      worker.off('message', onMessage);
      resolve(message as T);
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`a load thread exited (code ${code}) before it answered`)));
  });
}

/**
 * Savassan scales out while warming up: keeps loading `invokeUrl` at concurrency 32 until the number of sandboxes
 * (on all nodes) stops growing, so that no sandbox is being created (a node process start costs ~60 ms of CPU)
 * during the measured rounds. Returns that number. `requests` per round (1000 by default); `settleMs` waits before
 * each count: a cluster's agents republish their sandbox count about once a second.
 */
export async function warmUntilSteady(
  client: SavassanClient,
  invokeUrl: string,
  options: { requests?: number; settleMs?: number } = {},
): Promise<number> {
  let sandboxes = -1;
  for (let round = 0; round < 8; round++) {
    await load(invokeUrl, options.requests ?? 1000, 32);
    if (options.settleMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.settleMs));
    const now = await sandboxCount(client);
    if (now === sandboxes) break;
    sandboxes = now;
  }
  return sandboxes;
}

/** Sandboxes on every node of the server, of every function. */
export async function sandboxCount(client: SavassanClient): Promise<number> {
  return (await client.listNodes()).nodes.reduce((sum, node) => sum + node.sandboxes, 0);
}

/**
 * Loads `url` at concurrency 32 for `total` requests, in rounds of `requests`, and returns each round's rate. A
 * server whose handlers run in freshly started processes (Savassan's sandboxes, the IPC floor's children) gets
 * faster for tens of thousands of requests while V8 optimises the code in each process (on 2 vCPUs Savassan went
 * 5.7k, 4.9k, 5.1k, 6.8k, 7.9k, 9.0k, 9.1k ... 9.8k/s in rounds of 20,000): measuring throughput before that
 * compares warm-ups, not steady states. A fixed amount rather than "until it stops climbing": on a noisy machine
 * one slow round ended that too early.
 */
export async function warmThroughput(url: string, options: { requests: number; total: number }) {
  const roundRps: number[] = [];
  for (let sent = 0; sent < options.total; sent += options.requests) {
    roundRps.push(round((await load(url, options.requests, 32)).rps, 0));
  }
  return { requests: options.total, roundRps };
}

/**
 * Starts one of the bench's baseline servers (a script under bench/) and waits for its address. `nodeArgs` go to
 * node before the script (`['--import', 'tsx']` runs a TypeScript one).
 */
export async function startBaseline(script: string, args: string[] = [], nodeArgs: string[] = []) {
  const child = spawn(process.execPath, [...nodeArgs, join(import.meta.dirname, script), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /listening on (\S+)/.exec(d.toString());
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    void exited.then(() => reject(new Error(`${script} exited before listening`)));
  });
  /** SIGTERM and wait for exit (the IPC floor server kills and awaits its children before it exits). */
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return { url, child, stop };
}
