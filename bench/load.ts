// The bench's load generator and statistics, shared by bench/run.ts and bench/backends.ts: Node's own keep-alive
// http.Agent, nothing installed beyond the project.
import { Agent, request } from 'node:http';
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

export interface Hit {
  status: number;
  ms: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export function post(agent: Agent, url: URL, body: string): Promise<Hit> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, body: text, headers: res.headers }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Fires `total` requests with `concurrency` in flight; returns latencies and wall time. */
export async function load(url: string, total: number, concurrency: number) {
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
        const hit = await post(agent, target, `{"n":${n}}`);
        if (hit.status !== 200) errors++;
        latencies.push(hit.ms);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { latencies, errors, seconds, rps: total / seconds };
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
    const now = (await client.listNodes()).nodes.reduce((sum, node) => sum + node.sandboxes, 0);
    if (now === sandboxes) break;
    sandboxes = now;
  }
  return sandboxes;
}
