// Invocation statistics over time windows, read from the invocation records (so every gateway answers alike): the
// window rules, the fixed duration histogram the stores fill, and quantiles estimated from it.
import { PlatformError } from './errors.js';

/**
 * Upper bounds (ms, inclusive) of the duration histogram: log-spaced from 1 ms to 15 min. A duration above the last
 * bound is counted in the total only.
 */
export const statsDurationBoundsMs: readonly number[] = [
  1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 120_000, 900_000,
];

export const statsLimits = {
  minutes: { min: 1, max: 1440, default: 60 },
  stepSeconds: { min: 10, max: 3600, default: 60 },
  maxPoints: 360,
  /** Most (function, version, bucket) rows one stats query reads: past it, the query is refused, not buffered. */
  maxBuckets: 100_000,
} as const;

/** What `MetadataStore.invocationStats` is asked: records with `since <= createdAt < until`. */
export interface InvocationStatsQuery {
  functionName?: string;
  since: Date;
  until: Date;
  /** Bucket width; a bucket starts at `createdAt - createdAt % stepMs` (epoch milliseconds). */
  stepMs: number;
  /** More (function, version, bucket) rows than this: BAD_REQUEST (default `statsLimits.maxBuckets`). */
  maxBuckets?: number;
}

/** The invocations of one function version in one time bucket. */
export interface InvocationStatsBucket {
  functionName: string;
  version: number;
  /** Epoch milliseconds, a multiple of the step. */
  start: number;
  invocations: number;
  /** Invocations whose status is not `success`. */
  errors: number;
  /** Cumulative counts: `le[i]` invocations took at most `statsDurationBoundsMs[i]` ms. */
  le: number[];
  maxDurationMs: number;
}

/** A window: `points` buckets of `stepMs` each, the last one holding `now`. */
export interface StatsWindow {
  from: number;
  to: number;
  stepMs: number;
  points: number;
}

function integerParam(raw: unknown, name: string, limits: { min: number; max: number; default: number }): number {
  if (raw === undefined) return limits.default;
  const text = typeof raw === 'number' ? String(raw) : raw;
  if (typeof text !== 'string' || !/^\d{1,7}$/.test(text)) {
    throw new PlatformError('BAD_REQUEST', `${name} must be an integer from ${limits.min} to ${limits.max}`);
  }
  const value = Number(text);
  if (value < limits.min || value > limits.max) {
    throw new PlatformError('BAD_REQUEST', `${name} must be an integer from ${limits.min} to ${limits.max}`);
  }
  return value;
}

/**
 * The window of `?minutes=&step=` (step in seconds): buckets aligned on the epoch, the last one holding `now`, enough
 * of them to cover `minutes`. Throws BAD_REQUEST for values out of range or more than `maxPoints` buckets.
 */
export function compileStatsWindow(query: { minutes?: unknown; step?: unknown }, now: number): StatsWindow {
  const minutes = integerParam(query.minutes, 'minutes', statsLimits.minutes);
  const stepSeconds = integerParam(query.step, 'step', statsLimits.stepSeconds);
  const points = Math.ceil((minutes * 60) / stepSeconds);
  if (points > statsLimits.maxPoints) {
    throw new PlatformError(
      'BAD_REQUEST',
      `minutes / step gives ${points} points, over ${statsLimits.maxPoints}: use a larger step or fewer minutes`,
    );
  }
  const stepMs = stepSeconds * 1000;
  const to = now - (now % stepMs) + stepMs;
  return { from: to - points * stepMs, to, stepMs, points };
}

/** Merges buckets (cumulative histograms add up). */
export function mergeBuckets(buckets: readonly InvocationStatsBucket[]): {
  invocations: number;
  errors: number;
  le: number[];
  maxDurationMs: number;
} {
  const merged = { invocations: 0, errors: 0, le: statsDurationBoundsMs.map(() => 0), maxDurationMs: 0 };
  for (const bucket of buckets) {
    merged.invocations += bucket.invocations;
    merged.errors += bucket.errors;
    merged.maxDurationMs = Math.max(merged.maxDurationMs, bucket.maxDurationMs);
    bucket.le.forEach((count, i) => (merged.le[i] = (merged.le[i] ?? 0) + count));
  }
  return merged;
}

/**
 * The `q` quantile (0..1) estimated from a cumulative histogram, interpolated linearly inside the bucket that holds
 * it (as Prometheus' `histogram_quantile`), never above the largest duration seen; null without invocations.
 */
export function quantileMs(
  histogram: { invocations: number; le: readonly number[]; maxDurationMs: number },
  q: number,
): number | null {
  const total = histogram.invocations;
  if (total === 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (let i = 0; i < statsDurationBoundsMs.length; i++) {
    const bound = statsDurationBoundsMs[i] ?? 0;
    const count = histogram.le[i] ?? 0;
    if (count >= rank && count > lowerCount) {
      const estimate = lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
      return round(Math.min(estimate, histogram.maxDurationMs));
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return round(histogram.maxDurationMs);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Dense series: one point per bucket of the window, oldest first, from the buckets that had invocations. */
export function denseSeries<T>(
  window: StatsWindow,
  buckets: readonly InvocationStatsBucket[],
  point: (start: number, merged: ReturnType<typeof mergeBuckets>) => T,
): T[] {
  const byStart = new Map<number, InvocationStatsBucket[]>();
  for (const bucket of buckets) {
    const list = byStart.get(bucket.start);
    if (list === undefined) byStart.set(bucket.start, [bucket]);
    else list.push(bucket);
  }
  const series: T[] = [];
  for (let i = 0; i < window.points; i++) {
    const start = window.from + i * window.stepMs;
    series.push(point(start, mergeBuckets(byStart.get(start) ?? [])));
  }
  return series;
}
