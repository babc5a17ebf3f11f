// Traces on the warm path: the no-op at concurrency 1 (p50) and at 32 (answers/s) on three servers side by side in
// interleaved rounds (order rotated each round), tracing off, on with every trace sampled, and on with 1% sampled
// (`parentbased_traceidratio`), the two traced ones exporting OTLP/HTTP to a receiver in this process that counts
// and discards what it gets.
// Run alone: `npm run build && node --import tsx bench/tracing.ts` (BENCH_QUICK=1 for a short run).
import { chmod, mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { repoRoot, startServer, type ServerProcess } from '../test/helpers/server-process.js';
import { bwrapSkipReason } from './bwrap-server.js';
import { load, round, summarise } from './load.js';
import { runSectionAlone, runsAlone } from './section-alone.js';

/** An OTLP/HTTP endpoint that answers 200 to every export and keeps only counts. */
async function startDiscardingReceiver(): Promise<{
  url: string;
  exports: () => number;
  bytes: () => number;
  close: () => Promise<void>;
}> {
  let exports = 0;
  let bytes = 0;
  const server: Server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (bytes += chunk.byteLength));
    req.on('end', () => {
      exports += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports: () => exports,
    bytes: () => bytes,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface Side {
  name: 'off' | 'on100' | 'on1';
  server: ServerProcess;
  url: string;
}

export async function measureTracing(options: {
  warmRequests: number;
  throughputRequests: number;
  /** Invocations' worth of span work per round in the in-process measurement. */
  spanIterations: number;
}): Promise<unknown> {
  const bwrapSkipped = bwrapSkipReason();
  const sandbox = bwrapSkipped === null ? 'bwrap' : 'process';
  const receiver = await startDiscardingReceiver();
  const exporting = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
  const envs: Record<Side['name'], Record<string, string>> = {
    off: {},
    on100: { ...exporting, OTEL_TRACES_SAMPLER: 'parentbased_always_on' },
    on1: { ...exporting, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' },
  };
  const sides: Side[] = [];
  try {
    const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
    for (const name of ['off', 'on100', 'on1'] as const) {
      // Sandbox users must be able to pass through the data dir (mkdtemp makes it 0700).
      const dataDir = await mkdtemp(join(tmpdir(), 'sv-bench-tracing-'));
      await chmod(dataDir, 0o711);
      const args = ['--no-examples', '--queue-wait', '30', '--log-level', 'error', '--sandbox', sandbox];
      // The OTEL_* variables of this process (if any) do not leak into the sides: each gets exactly its own.
      const server = await startServer(args, dataDir, {
        OTEL_SDK_DISABLED: '',
        OTEL_TRACES_EXPORTER: '',
        OTEL_EXPORTER_OTLP_ENDPOINT: '',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
        OTEL_TRACES_SAMPLER: '',
        OTEL_TRACES_SAMPLER_ARG: '',
        ...envs[name],
      });
      await new SavassanClient({ url: server.url }).deploy('noop', noop);
      sides.push({ name, server, url: `${server.url}/v1/functions/noop/invoke` });
    }
    // Warm-up, not measured: the sandboxes of concurrency 32 created, the servers' code paths compiled.
    for (const side of sides) {
      await load(side.url, 500, 1);
      await load(side.url, 2000, 32);
    }
    // Concurrency 1 first, then 32, each in rounds that interleave the sides, the order rotated every round so
    // that no side always follows another's load (or the traced sides' exports of it).
    const rounds = 10;
    const latencies = new Map(sides.map((side) => [side.name, [] as number[]]));
    const rps = new Map(sides.map((side) => [side.name, [] as number[]]));
    const errors = new Map(sides.map((side) => [side.name, 0]));
    const rotated = (r: number): Side[] => sides.map((_, i) => sides[(i + r) % sides.length] as Side);
    for (let r = 0; r < rounds; r++) {
      for (const side of rotated(r)) {
        const one = await load(side.url, options.warmRequests / rounds, 1);
        latencies.get(side.name)?.push(...one.latencies);
        errors.set(side.name, (errors.get(side.name) ?? 0) + one.errors);
      }
    }
    for (let r = 0; r < rounds; r++) {
      for (const side of rotated(r)) {
        const many = await load(side.url, options.throughputRequests / rounds, 32);
        rps.get(side.name)?.push(many.rps);
        errors.set(side.name, (errors.get(side.name) ?? 0) + many.errors);
      }
    }
    const offP50 = summarise(latencies.get('off') ?? []).p50;
    const offRps = mean(rps.get('off') ?? []);
    const result: Record<string, unknown> = {};
    for (const side of sides) {
      const summary = summarise(latencies.get(side.name) ?? []);
      const sideRps = mean(rps.get(side.name) ?? []);
      result[side.name] = {
        concurrency1Ms: { ...summary, p50Ratio: round(summary.p50 / offP50, 2) },
        concurrency32: { rps: Math.round(sideRps), rpsRatio: round(sideRps / offRps, 2) },
        errors: errors.get(side.name),
      };
    }
    // The traced sides' last spans are exported when they stop.
    for (const side of sides) await side.server.stop();
    const spanCostUsPerInvocation = await measureSpanCost(receiver.url, options.spanIterations);
    return {
      sandbox,
      ...(bwrapSkipped === null ? {} : { bwrapSkipped }),
      rounds,
      requestsPerSide: { concurrency1: options.warmRequests, concurrency32: options.throughputRequests },
      sides: result,
      spanCostUsPerInvocation,
      receiver: { exportRequests: receiver.exports(), bytes: receiver.bytes() },
    };
  } finally {
    await Promise.all(sides.map((side) => side.server.cleanup()));
    await receiver.close();
  }
}

/**
 * The CPU time of one warm invocation's tracing work in this process, without HTTP or sandboxes: the five spans an
 * embedded warm invocation makes (HTTP, pool checkout, the client and the Agent's server span, handler run), with
 * their attributes and the `traceparent` strings passed between them, under each sampler, exported (100%, 1%) to the
 * discarding receiver. Microseconds per invocation, the median of 5 rounds.
 */
async function measureSpanCost(receiverUrl: string, iterations: number): Promise<Record<string, number>> {
  const previous = process.env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = receiverUrl;
  const { OtelTracer } = await import('../src/adapters/otel/otel-tracer.js');
  const { noopTracer } = await import('../src/core/ports/tracer.js');
  const tracers = {
    off: noopTracer,
    on100: new OtelTracer({ exporter: 'otlp', sampler: 'parentbased_always_on', ratio: 1, serviceName: 'bench' }),
    on1: new OtelTracer({ exporter: 'otlp', sampler: 'parentbased_traceidratio', ratio: 0.01, serviceName: 'bench' }),
  };
  if (previous === undefined) delete process.env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  else process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = previous;
  const one = (tracer: (typeof tracers)[keyof typeof tracers]): number => {
    if (!tracer.enabled) return 0;
    const http = tracer.startSpan('POST /v1/functions/{name}/invoke', {
      kind: 'server',
      attributes: {
        'http.request.method': 'POST',
        'http.route': '/v1/functions/{name}/invoke',
        'faas.invoked_name': 'noop',
      },
    });
    let sent = http.traceparent;
    if (http.recording) {
      const checkout = tracer.startSpan('pool checkout', {
        kind: 'internal',
        parent: http,
        attributes: { 'faas.invoked_name': 'noop' },
      });
      checkout.setAttribute('faas.coldstart', false);
      checkout.end();
      const call = tracer.startSpan('invoke noop', {
        kind: 'client',
        parent: http,
        attributes: { 'faas.invocation_id': 'x', 'faas.coldstart': false },
      });
      sent = call.traceparent;
      call.end();
    }
    const agent = tracer.startSpan('invoke noop', {
      kind: 'server',
      parent: sent,
      attributes: { 'faas.name': 'noop', 'faas.invocation_id': 'x' },
    });
    let toSandbox = agent.traceparent;
    if (agent.recording) {
      const run = tracer.startSpan('handler run', {
        kind: 'internal',
        parent: agent,
        attributes: { 'faas.invocation_id': 'x' },
      });
      toSandbox = run.traceparent;
      run.end();
    }
    agent.end();
    http.setAttribute('http.response.status_code', 200);
    http.end();
    return toSandbox.length;
  };
  const rounds: Record<string, number[]> = { off: [], on100: [], on1: [] };
  for (let r = 0; r < 5; r++) {
    for (const [name, tracer] of Object.entries(tracers)) {
      const started = performance.now();
      for (let i = 0; i < iterations; i++) one(tracer);
      rounds[name]?.push(((performance.now() - started) * 1000) / iterations);
      // Lets the batch processor export between rounds, as a server's event loop would.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await Promise.all([tracers.on100.shutdown(), tracers.on1.shutdown()]);
  return Object.fromEntries(
    Object.entries(rounds).map(([name, us]) => [name, round([...us].sort((a, b) => a - b)[2] ?? Number.NaN, 2)]),
  );
}

function mean(xs: number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

if (runsAlone(import.meta.url)) {
  await runSectionAlone('tracing', (quick) =>
    measureTracing({
      warmRequests: quick ? 300 : 3000,
      throughputRequests: quick ? 2000 : 12000,
      spanIterations: quick ? 2000 : 20000,
    }),
  );
}
