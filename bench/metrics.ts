// What counting an invocation costs the gateway's event loop: `GatewayMetrics.observe` in a hot loop, with a scrape
// (`render`) every `perScrape` invocations, as warm invocations of one function version would be counted. Run alone:
// `node --import tsx bench/metrics.ts`.
import { GatewayMetrics } from '../src/gateway/metrics.js';
import type { InvocationResult } from '../src/gateway/invoker.js';
import { round } from './load.js';
import { runSectionAlone, runsAlone } from './section-alone.js';

function invocation(start: 'cold' | 'warm', status: 'success' | 'error'): InvocationResult {
  return {
    invocationId: 'bench',
    functionName: 'noop',
    version: 1,
    alias: 'live',
    start,
    initMs: start === 'cold' ? 40 : null,
    memoryMB: 128,
    outcome: { status, durationMs: 0.3, peakMemoryBytes: null, logKey: null, reusable: true },
  };
}

/** Nanoseconds per counted invocation, scrapes included: the median of `rounds` rounds. */
export async function measureMetrics(quick: boolean) {
  const perRound = quick ? 200_000 : 2_000_000;
  const perScrape = 100_000;
  const rounds = 5;
  const mix = [
    ...Array.from({ length: 98 }, () => invocation('warm', 'success')),
    invocation('warm', 'error'),
    invocation('cold', 'success'),
  ];
  const nsPerInvocation: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const metrics = new GatewayMetrics();
    const started = process.hrtime.bigint();
    for (let i = 0; i < perRound; i++) {
      metrics.observe(mix[i % mix.length]!, 0.0004);
      if (i % perScrape === perScrape - 1) await metrics.render();
    }
    await metrics.render();
    nsPerInvocation.push(Number(process.hrtime.bigint() - started) / perRound);
  }
  nsPerInvocation.sort((a, b) => a - b);
  return {
    note: 'ns of event-loop time per counted invocation (98% warm successes, 1% errors, 1% cold), scrapes included',
    invocationsPerRound: perRound,
    perScrape,
    medianNs: round(nsPerInvocation[Math.floor(rounds / 2)]!, 0),
    roundsNs: nsPerInvocation.map((ns) => round(ns, 0)),
  };
}

if (runsAlone(import.meta.url)) await runSectionAlone('metrics', measureMetrics);
