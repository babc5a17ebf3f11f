import type { Registry } from 'prom-client';

/** One label set's buckets. */
export interface HistogramSeries {
  /** Observations per bucket (not cumulative); the last one counts those above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** A sample as prom-client's registry prints it: `labels` first (`le`), then `sharedLabels`. */
interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
}

interface Stored<L extends string> {
  labels: Record<L, string>;
  series: HistogramSeries;
}

/**
 * A Prometheus histogram for the invoke path: an observation is a bucket search and three additions on a series the
 * caller holds, with none of prom-client's per-call label validation and hashing. Exposed through the registry like
 * prom-client's own (`registerMetric`), in the same text format.
 */
export class DirectHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #stored = new Map<string, Stored<L>>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    bounds: readonly number[],
  ) {
    this.#bounds = [...bounds].sort((a, b) => a - b);
    registry.registerMetric(this as never);
  }

  /** The series of `key` (one per label set: the caller's own key for `labels`), made on first use. */
  series(key: string, labels: Record<L, string>): HistogramSeries {
    let stored = this.#stored.get(key);
    if (stored === undefined) {
      stored = { labels, series: { counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 } };
      this.#stored.set(key, stored);
    }
    return stored.series;
  }

  observe(series: HistogramSeries, value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] ?? 0)) i++;
    series.counts[i] = (series.counts[i] ?? 0) + 1;
    series.sum += value;
    series.count += 1;
  }

  /** Drops the series of `key`. */
  remove(key: string): void {
    this.#stored.delete(key);
  }

  /** Drops the series whose labels `match` says to. */
  removeWhere(match: (labels: Record<L, string>) => boolean): void {
    for (const [key, stored] of this.#stored) if (match(stored.labels)) this.#stored.delete(key);
  }

  reset(): void {
    this.#stored.clear();
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, series } of this.#stored.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i] ?? 0;
        values.push({ labels: { le: bound }, sharedLabels: labels, value: cumulative, metricName: bucket });
      });
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: labels, value: series.count, metricName: bucket },
        { labels: {}, sharedLabels: labels, value: series.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: labels, value: series.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}
