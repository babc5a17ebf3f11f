import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { InvocationResult } from './invoker.js';

/** Prometheus metrics of one gateway, on its own registry (several servers can live in one process). */
export class GatewayMetrics {
  readonly #registry = new Registry();
  readonly #invocations = new Counter({
    name: 'savassan_invocations_total',
    help: 'Invocations by function, status and start kind',
    labelNames: ['function', 'status', 'start'] as const,
    registers: [this.#registry],
  });
  readonly #rejected = new Counter({
    name: 'savassan_invocations_rejected_total',
    help: 'Invocations answered with a platform error before or instead of running (429, 404, init errors...)',
    // No function label: the name comes from the caller, and unknown names must not grow the series set.
    labelNames: ['code'] as const,
    registers: [this.#registry],
  });
  readonly #duration = new Histogram({
    name: 'savassan_invocation_seconds',
    help: 'Gateway-side invoke latency',
    labelNames: ['start'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.#registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.#registry });
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  observe(result: InvocationResult, seconds: number): void {
    this.#invocations.inc({ function: result.functionName, status: result.outcome.status, start: result.start });
    this.#duration.observe({ start: result.start }, seconds);
  }

  rejected(code: string): void {
    this.#rejected.inc({ code });
  }

  render(): Promise<string> {
    return this.#registry.metrics();
  }
}
