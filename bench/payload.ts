// Payload sizes: the echo function (bench/functions/echo, it returns its event) on every side at event sizes from
// 0 B to 1 MB, latency at concurrency 1 and throughput at concurrency 8, in interleaved rounds. What a large event
// costs on each side is carrying it: read, parse (Savassan's gateway parses it once to refuse what is not JSON),
// pass to the sandbox, serialise the result and send it back.
import { Agent } from 'node:http';
import { load, mean, post, round, summarise } from './load.js';

/**
 * The sizes of the event's `data` string, and requests per side at each (before BENCH_QUICK's scaling). Fewer as
 * the events grow: on 2 vCPUs a 1 MB echo takes ~10 ms on the bare server and ~30 ms on Savassan, so the 1 MB
 * rounds alone take most of a minute.
 */
export const payloadSizes = [
  { label: '0 B', bytes: 0, concurrency1: 1000, concurrency8: 3000 },
  { label: '1 KB', bytes: 1024, concurrency1: 1000, concurrency8: 3000 },
  { label: '100 KB', bytes: 100 * 1024, concurrency1: 600, concurrency8: 1200 },
  { label: '1 MB', bytes: 1024 * 1024, concurrency1: 240, concurrency8: 400 },
] as const;

/** The event: `{"data":"xx…x"}` with `bytes` x's. */
export function eventOfSize(bytes: number): string {
  return `{"data":"${'x'.repeat(bytes)}"}`;
}

/**
 * Measures each side's echo URL (name → URL; the first is the one the ratios divide by) at each payload size.
 * `scale` multiplies the request counts (BENCH_QUICK's short run). Each side must answer an event with the same
 * JSON text; it is checked once per size before measuring.
 */
export async function measurePayloads(sides: Record<string, string>, options: { scale: number; rounds?: number }) {
  const names = Object.keys(sides);
  const base = names[0]!;
  const rounds = options.rounds ?? 4;
  const bySize: Record<string, unknown> = {};
  for (const size of payloadSizes) {
    const body = eventOfSize(size.bytes);
    const c1Requests = Math.max(rounds, Math.round((size.concurrency1 * options.scale) / rounds) * rounds);
    const c8Requests = Math.max(rounds * 8, Math.round((size.concurrency8 * options.scale) / rounds) * rounds);
    for (const [name, url] of Object.entries(sides)) {
      const agent = new Agent();
      const hit = await post(agent, new URL(url), body);
      agent.destroy();
      if (hit.status !== 200 || hit.body !== body) {
        throw new Error(`${name} did not echo a ${size.label} event: status ${hit.status}, ${hit.body.length} bytes`);
      }
      // Warm-up at this size, unmeasured: a tenth of the measured requests.
      await load(url, Math.max(8, Math.round(c8Requests / 10)), 8, body);
    }
    const ms = Object.fromEntries(names.map((name) => [name, [] as number[]]));
    const rps = Object.fromEntries(names.map((name) => [name, [] as number[]]));
    const errors = Object.fromEntries(names.map((name) => [name, 0]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, url] of Object.entries(sides)) {
        const measured = await load(url, c1Requests / rounds, 1, body);
        ms[name]!.push(...measured.latencies);
        errors[name]! += measured.errors;
      }
      for (const [name, url] of Object.entries(sides)) {
        const measured = await load(url, c8Requests / rounds, 8, body);
        rps[name]!.push(measured.rps);
        errors[name]! += measured.errors;
      }
    }
    const latency = Object.fromEntries(names.map((name) => [name, summarise(ms[name]!)]));
    const rate = Object.fromEntries(names.map((name) => [name, round(mean(rps[name]!), 0)]));
    const others = names.filter((name) => name !== base);
    bySize[size.label] = {
      eventBytes: body.length,
      concurrency1: {
        requests: c1Requests,
        ms: latency,
        p50Ratio: Object.fromEntries(others.map((name) => [name, round(latency[name]!.p50 / latency[base]!.p50, 2)])),
        p99Ratio: Object.fromEntries(others.map((name) => [name, round(latency[name]!.p99 / latency[base]!.p99, 2)])),
      },
      concurrency8: {
        requests: c8Requests,
        rps: rate,
        ratio: Object.fromEntries(others.map((name) => [name, round(rate[name]! / rate[base]!, 2)])),
        roundRps: Object.fromEntries(names.map((name) => [name, rps[name]!.map((r) => round(r, 0))])),
      },
      errors,
    };
  }
  return bySize;
}
