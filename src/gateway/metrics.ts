import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Pool } from '../core/ports/pool.js';
import type { InvocationQueue } from '../core/ports/invocation-queue.js';
import type { MessageQueues } from '../core/ports/message-queue.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import { parsePoolKey } from '../core/types.js';
import type { StartKind } from '../core/types.js';
import { DirectHistogram } from './direct-histogram.js';
import type { HistogramSeries } from './direct-histogram.js';
import type { InvocationResult } from './invoker.js';

/** Most pool keys and functions one scrape reads figures for: a scrape stays bounded whatever the platform holds. */
const maxScrapedKeys = 500;

interface InvocationLabels {
  function: string;
  version: string;
  status: string;
  start: StartKind;
}

/** What one function version, status and start kind counted since the last flush, and its histogram series. */
interface Pending {
  labels: InvocationLabels;
  count: number;
  /** The function's own run times, as the Agent measured them. */
  duration: HistogramSeries;
  /** Init times of cold starts (null for warm ones). */
  init: HistogramSeries | null;
  /** Gateway-side latency. */
  latency: HistogramSeries;
}

/** Where the figures read at each scrape come from (`watchPlatform`). */
export interface PlatformFigures {
  pool: Pick<Pool, 'keys' | 'stats'>;
  nodes: () => Promise<
    {
      nodeId: string;
      sandboxes: number;
      capacity?: number | undefined;
      stemCells?: { idle: number; starting: number } | undefined;
    }[]
  >;
  invocations: Pick<InvocationQueue, 'stats'>;
  messageQueues: Pick<MessageQueues, 'listStats'>;
  metadata: Pick<MetadataStore, 'listFunctions'>;
}

/** Backend reads of the scrape under way (`watchPlatform`), which the backend error counter waits for. */
type ScrapeReads = Set<Promise<unknown>>;

/**
 * `read`, shared by the callers that come while it runs: the gauges of one scrape collect at the same time and read
 * a backend once between them. Each run is in `reads` until it settles.
 */
function sharedRead<T>(reads: ScrapeReads, read: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    if (running === null) {
      const run = read().finally(() => {
        running = null;
        reads.delete(run);
      });
      running = run;
      reads.add(run);
    }
    return running;
  };
}

/** Prometheus metrics of one gateway, on its own registry (several servers can live in one process). */
export class GatewayMetrics {
  readonly #registry = new Registry();
  readonly #invocations = new Counter({
    name: 'savassan_invocations_total',
    help: 'Invocations by function, version, status and start kind',
    labelNames: ['function', 'version', 'status', 'start'] as const,
    registers: [this.#registry],
  });
  readonly #errors = new Counter({
    name: 'savassan_invocation_errors_total',
    help: 'Invocations whose status is not success (error, timeout, crash, oom, init-error), by function and version',
    labelNames: ['function', 'version', 'status'] as const,
    registers: [this.#registry],
  });
  readonly #rejected = new Counter({
    name: 'savassan_invocations_rejected_total',
    help: 'Invocations answered with a platform error before or instead of running (429, 404, init errors...)',
    // No function label: the name comes from the caller, and unknown names must not grow the series set.
    labelNames: ['code'] as const,
    registers: [this.#registry],
  });
  readonly #latency = new DirectHistogram<'start'>(
    this.#registry,
    'savassan_invocation_seconds',
    'Gateway-side invoke latency',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  readonly #duration = new DirectHistogram<'function' | 'version' | 'start'>(
    this.#registry,
    'savassan_invocation_duration_seconds',
    'How long the function ran, as its Agent measured it, by function, version and start kind',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
  );
  readonly #init = new DirectHistogram<'function' | 'version'>(
    this.#registry,
    'savassan_invocation_init_duration_seconds',
    "How long a cold start's sandbox took to load the function, by function and version",
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  readonly #scrapeReads: ScrapeReads = new Set();
  readonly #backendErrors = new Counter({
    name: 'savassan_backend_errors_total',
    help: 'Failed reads of a backend by the gateway (readiness probes, the figures of a scrape), by backend and operation',
    labelNames: ['backend', 'operation'] as const,
    registers: [this.#registry],
    // The registry collects every metric at once: the reads of this scrape start in the same turn, and the failures
    // they count are printed in this scrape once they have settled.
    collect: async () => {
      await new Promise((resolve) => setImmediate(resolve));
      await Promise.allSettled(this.#scrapeReads);
    },
  });

  /** Invocations counted since the last flush, by status, start kind, version and function. */
  readonly #pending = new Map<string, Pending>();
  /** The invocation series handed to prom-client, by function and key: a deleted function's are removed with it. */
  readonly #series = new Map<string, Map<string, InvocationLabels>>();
  readonly #latencyOf: Record<StartKind, HistogramSeries> = {
    cold: this.#latency.series('cold', { start: 'cold' }),
    warm: this.#latency.series('warm', { start: 'warm' }),
  };

  constructor() {
    collectDefaultMetrics({ register: this.#registry });
  }

  get contentType(): string {
    return this.#registry.contentType;
  }

  /**
   * Counts an invocation: a map lookup, a count and three histogram observations (a bucket search and three
   * additions each). Counts reach prom-client at the next scrape, in one go: its label validation and hashing cost
   * ~3 µs per invocation and series at concurrency 1. A scrape sees every invocation counted so far.
   */
  observe(result: InvocationResult, seconds: number): void {
    const { functionName, start, version } = result;
    const { status, durationMs } = result.outcome;
    const key = `${status} ${start} ${version} ${functionName}`;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      const labels = { function: functionName, version: String(version), status, start };
      pending = {
        labels,
        count: 0,
        duration: this.#duration.series(`${start} ${version} ${functionName}`, {
          function: functionName,
          version: labels.version,
          start,
        }),
        init:
          start === 'cold'
            ? this.#init.series(`${version} ${functionName}`, { function: functionName, version: labels.version })
            : null,
        latency: this.#latencyOf[start],
      };
      this.#pending.set(key, pending);
    }
    pending.count += 1;
    this.#duration.observe(pending.duration, durationMs / 1000);
    if (pending.init !== null && result.initMs !== null) this.#init.observe(pending.init, result.initMs / 1000);
    this.#latency.observe(pending.latency, seconds);
  }

  /**
   * Exposes the gateway's event loops: how many serve the HTTP port, and how many invocations each extra one (a lane,
   * numbered from 1) has passed to the main loop, read from `read()` at each scrape.
   */
  watchEventLoops(eventLoops: number, read: () => readonly number[]): void {
    new Gauge({
      name: 'savassan_gateway_event_loops',
      help: 'Event loops serving the HTTP port (the main one and its lanes)',
      registers: [this.#registry],
    }).set(eventLoops);
    new Counter({
      name: 'savassan_lane_invocations_total',
      help: 'Invocations an extra event loop (lane) of the gateway took from its clients, by lane',
      labelNames: ['lane'] as const,
      registers: [this.#registry],
      collect() {
        this.reset();
        read().forEach((count, lane) => {
          if (lane > 0) this.inc({ lane: String(lane) }, count);
        });
      },
    });
  }

  /**
   * Exposes, read at each scrape: warm pools (idle and busy instances, waiters) by function and version, executions
   * running by function, nodes' sandboxes, capacity and stem cells, and queue depths. The pool and queues are shared
   * by every gateway of a cluster: each reports the same cluster-wide figures. A read that fails leaves its gauges
   * empty for that scrape and counts in `savassan_backend_errors_total`.
   */
  watchPlatform(figures: PlatformFigures): void {
    const backendError = (backend: string, operation: string): void => this.#backendErrors.inc({ backend, operation });
    const registry = this.#registry;
    /** A gauge set at each scrape from `read()`'s answer, which the gauges of one scrape share (read once). */
    const gauge = <L extends string, T>(
      name: string,
      help: string,
      labelNames: readonly L[],
      read: () => Promise<T | null>,
      fill: (set: (labels: Record<L, string>, value: number) => void, figures: T) => void,
    ): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          const answer = await read();
          this.reset();
          if (answer !== null) fill((labels, value) => this.set(labels as never, value), answer);
        },
      });
    };

    const pools = sharedRead(this.#scrapeReads, async () => {
      let keys: string[];
      try {
        keys = (await figures.pool.keys()).slice(0, maxScrapedKeys);
      } catch {
        backendError('pool', 'keys');
        return null;
      }
      const rows = await Promise.all(
        keys.map(async (key) => {
          const id = parsePoolKey(key);
          if (id === null) return null;
          try {
            return { functionName: id.functionName, version: String(id.version), ...(await figures.pool.stats(key)) };
          } catch {
            backendError('pool', 'stats');
            return null;
          }
        }),
      );
      return rows.filter((row) => row !== null);
    });
    gauge(
      'savassan_concurrent_executions',
      'Invocations running now (checked-out instances), by function',
      ['function'],
      pools,
      (set, rows) => {
        const running = new Map<string, number>();
        for (const row of rows) running.set(row.functionName, (running.get(row.functionName) ?? 0) + row.checkedOut);
        for (const [fn, count] of running) set({ function: fn }, count);
      },
    );
    gauge(
      'savassan_pool_instances',
      'Sandboxes of a function version in the warm pools, by state (idle, busy)',
      ['function', 'version', 'state'],
      pools,
      (set, rows) => {
        for (const row of rows) {
          set({ function: row.functionName, version: row.version, state: 'idle' }, row.idle);
          set({ function: row.functionName, version: row.version, state: 'busy' }, row.checkedOut);
        }
      },
    );
    gauge(
      'savassan_pool_waiters',
      'Invocations waiting for an instance of a function version',
      ['function', 'version'],
      pools,
      (set, rows) => {
        for (const row of rows) set({ function: row.functionName, version: row.version }, row.waiters);
      },
    );

    const nodes = sharedRead(this.#scrapeReads, async () => {
      try {
        return await figures.nodes();
      } catch {
        backendError('nodes', 'list');
        return null;
      }
    });
    gauge('savassan_node_sandboxes', 'Sandboxes a node runs now', ['node'], nodes, (set, list) => {
      for (const node of list) set({ node: node.nodeId }, node.sandboxes);
    });
    gauge('savassan_node_capacity', 'Sandboxes a node takes at once', ['node'], nodes, (set, list) => {
      for (const node of list) if (node.capacity !== undefined) set({ node: node.nodeId }, node.capacity);
    });
    gauge(
      'savassan_node_stem_cells',
      'Pre-started generic sandboxes (stem cells) of a node, by state (idle, starting)',
      ['node', 'state'],
      nodes,
      (set, list) => {
        for (const node of list) {
          if (node.stemCells === undefined) continue;
          set({ node: node.nodeId, state: 'idle' }, node.stemCells.idle);
          set({ node: node.nodeId, state: 'starting' }, node.stemCells.starting);
        }
      },
    );

    const asyncQueues = sharedRead(this.#scrapeReads, async () => {
      let names: string[];
      try {
        names = (await figures.metadata.listFunctions()).map((fn) => fn.name).slice(0, maxScrapedKeys);
      } catch {
        backendError('metadata', 'list functions');
        return null;
      }
      const rows = await Promise.all(
        names.map(async (name) => {
          try {
            return { name, ...(await figures.invocations.stats(name)) };
          } catch {
            backendError('invocation-queue', 'stats');
            return null;
          }
        }),
      );
      return rows.filter((row) => row !== null);
    });
    gauge(
      'savassan_async_queue_events',
      'Asynchronous invocations of a function, by state (queued, running, dead_lettered)',
      ['function', 'state'],
      asyncQueues,
      (set, rows) => {
        for (const row of rows) {
          set({ function: row.name, state: 'queued' }, row.queued);
          set({ function: row.name, state: 'running' }, row.running);
          set({ function: row.name, state: 'dead_lettered' }, row.deadLettered);
        }
      },
    );

    const messageQueues = sharedRead(this.#scrapeReads, async () => {
      try {
        return (await figures.messageQueues.listStats()).slice(0, maxScrapedKeys);
      } catch {
        backendError('message-queues', 'stats');
        return null;
      }
    });
    gauge(
      'savassan_queue_depth',
      'Messages of a named queue waiting to be received',
      ['queue'],
      messageQueues,
      (set, list) => {
        for (const stats of list) set({ queue: stats.name }, stats.depth);
      },
    );
    gauge(
      'savassan_queue_in_flight',
      'Messages of a named queue received and not yet acknowledged',
      ['queue'],
      messageQueues,
      (set, list) => {
        for (const stats of list) set({ queue: stats.name }, stats.inFlight);
      },
    );
  }

  rejected(code: string): void {
    this.#rejected.inc({ code });
  }

  /** A backend read failed (`backend`: metadata, pool, blobs...; `operation`: what was asked). */
  backendError(backend: string, operation: string): void {
    this.#backendErrors.inc({ backend, operation });
  }

  /** Remove the invocation series of a deleted function (every version's), so deleted functions do not pile up. */
  forgetFunction(functionName: string): void {
    for (const [key, pending] of this.#pending) {
      if (pending.labels.function === functionName) this.#pending.delete(key);
    }
    for (const labels of this.#series.get(functionName)?.values() ?? []) {
      const { function: fn, version, status } = labels;
      this.#invocations.remove(labels);
      this.#errors.remove({ function: fn, version, status });
    }
    this.#series.delete(functionName);
    this.#duration.removeWhere((labels) => labels.function === functionName);
    this.#init.removeWhere((labels) => labels.function === functionName);
  }

  render(): Promise<string> {
    this.#flush();
    return this.#registry.metrics();
  }

  #flush(): void {
    for (const [key, { labels, count }] of this.#pending) {
      const { function: fn, version, status } = labels;
      this.#invocations.inc(labels, count);
      if (status !== 'success') this.#errors.inc({ function: fn, version, status }, count);
      let series = this.#series.get(fn);
      if (series === undefined) this.#series.set(fn, (series = new Map<string, InvocationLabels>()));
      series.set(key, labels);
    }
    this.#pending.clear();
  }
}
