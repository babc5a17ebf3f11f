// The statistics a rollout step is judged by: pure, no I/O.
import { currentStep } from '../core/rollouts.js';
import type { Rollout, RolloutSettings, VersionFigures } from '../core/types.js';

/** z of a one-sided 95% confidence bound. */
const z95 = 1.6448536269514722;

/**
 * Latencies below this count as this much in the p99 ratio: a few hundred microseconds against a millisecond is the
 * host's noise, not a slower canary.
 */
export const latencyFloorMs = 5;

/**
 * Wilson score interval of a proportion `successes / n`, with continuity correction (Newcombe 1998, method 4): it
 * keeps its coverage for small counts and proportions near 0, where the plain normal interval collapses to a point.
 * `z` is taken on each side, so each bound is one-sided at the level of `z`. [0, 1] when `n` is 0.
 */
export function wilsonInterval(successes: number, n: number, z = z95): { low: number; high: number } {
  if (n <= 0) return { low: 0, high: 1 };
  const p = successes / n;
  const z2 = z * z;
  const denominator = 2 * (n + z2);
  const low =
    successes <= 0 ? 0 : (2 * n * p + z2 - 1 - z * Math.sqrt(z2 - 2 - 1 / n + 4 * p * (n * (1 - p) + 1))) / denominator;
  const high =
    successes >= n ? 1 : (2 * n * p + z2 + 1 + z * Math.sqrt(z2 + 2 - 1 / n + 4 * p * (n * (1 - p) - 1))) / denominator;
  return { low: Math.max(0, low), high: Math.min(1, high) };
}

/**
 * One-sided 95% lower confidence bound of (canary error rate − baseline error rate): Newcombe's hybrid score
 * interval (the difference of the two rates less the root of the squared distances to the canary's Wilson lower bound
 * and the baseline's Wilson upper bound). Above a threshold, the canary fails more often than the baseline by more
 * than the threshold with 95% confidence; a handful of calls never gets there. A baseline without requests counts as
 * a rate of exactly 0: the canary is then judged on its own error rate.
 */
export function errorRateExcessLowerBound(canary: VersionFigures, baseline: VersionFigures): number {
  const pc = canary.requests === 0 ? 0 : canary.errors / canary.requests;
  const canaryLow = wilsonInterval(canary.errors, canary.requests).low;
  if (baseline.requests === 0) return canaryLow;
  const pb = baseline.errors / baseline.requests;
  const baselineHigh = wilsonInterval(baseline.errors, baseline.requests).high;
  return pc - pb - Math.sqrt((pc - canaryLow) ** 2 + (baselineHigh - pb) ** 2);
}

/** The canary's p99 over the baseline's, each at least `latencyFloorMs`; null without both. */
export function p99Ratio(canary: VersionFigures, baseline: VersionFigures): number | null {
  if (canary.p99Ms === null || baseline.p99Ms === null) return null;
  return Math.max(canary.p99Ms, latencyFloorMs) / Math.max(baseline.p99Ms, latencyFloorMs);
}

export type Verdict =
  /** The canary is worse than the baseline: all traffic back to the baseline now. */
  | { kind: 'fail'; reason: string }
  /** The step's interval is over, with enough requests and no failure: next step (or promotion). */
  | { kind: 'pass'; reason: string }
  /** Not over yet, or not enough requests yet: judge again at the next tick. */
  | { kind: 'wait' };

export interface StepObservation {
  /** The canary's invocations since the step started. */
  canary: VersionFigures;
  /** What the canary is compared with: the baseline's invocations over the same time (see `baselineReference`). */
  baseline: VersionFigures;
  /** Since the step started. */
  elapsedMs: number;
}

/**
 * Judge a step, every tick: it fails as soon as the canary has `minRequests` and either its error rate exceeds the
 * baseline's by more than `maxErrorRate` (the 95% lower bound of the difference, `errorRateExcessLowerBound`) or,
 * with `minRequests` on both, its p99 is more than `maxP99Ratio` times the baseline's. It passes when the interval
 * is over with `minRequests` on the canary and no failure; otherwise it waits.
 */
export function judgeStep(figures: StepObservation, settings: RolloutSettings): Verdict {
  const { canary, baseline, elapsedMs } = figures;
  if (canary.requests < settings.minRequests) return { kind: 'wait' };
  const excess = errorRateExcessLowerBound(canary, baseline);
  if (excess > settings.maxErrorRate) {
    const against =
      baseline.requests === 0 ? 'with no baseline traffic to compare' : `against the baseline's ${rates(baseline)}`;
    return {
      kind: 'fail',
      reason:
        `canary error rate ${rates(canary)} ${against}: exceeds it by more than ${percent(settings.maxErrorRate)} ` +
        `(95% lower bound of the excess: ${percent(excess)})`,
    };
  }
  const ratio = baseline.requests >= settings.minRequests ? p99Ratio(canary, baseline) : null;
  if (ratio !== null && ratio > settings.maxP99Ratio) {
    return {
      kind: 'fail',
      reason:
        `canary p99 ${ms(canary.p99Ms)} is ${ratio.toFixed(2)}x the baseline's ${ms(baseline.p99Ms)} ` +
        `(max ${settings.maxP99Ratio}x)`,
    };
  }
  if (elapsedMs < settings.intervalSeconds * 1000) return { kind: 'wait' };
  return {
    kind: 'pass',
    reason:
      `canary errors ${rates(canary)}, p99 ${ms(canary.p99Ms)}; ` +
      `baseline errors ${rates(baseline)}, p99 ${ms(baseline.p99Ms)}`,
  };
}

/**
 * What the canary is compared with at the current step: the baseline's figures over the same time, or, at a step
 * where the baseline has no traffic, its figures at the last step judged with traffic on it. At 100% the alias gives
 * the baseline nothing, so its own figures in the step are never the reference: the few calls it still ran (routed
 * just before the alias moved, or made to its version number) would stand in for it, and a handful of calls without
 * errors bounds the baseline's error rate so loosely that a failing canary would pass. `note` says so for the history.
 */
export function baselineReference(
  rollout: Pick<Rollout, 'history' | 'settings' | 'stepIndex'>,
  baselineNow: VersionFigures,
): { figures: VersionFigures; note: string | null } {
  const shared = currentStep(rollout) < 100;
  if (shared && baselineNow.requests > 0) return { figures: baselineNow, note: null };
  const earlier = rollout.history.findLast((event) => event.baseline.requests > 0);
  if (earlier === undefined) return { figures: baselineNow, note: null };
  const why = shared ? 'the baseline had no traffic in this step' : 'the baseline has no share of the traffic at 100%';
  return { figures: earlier.baseline, note: `${why}: compared with its figures at the ${earlier.step}% step` };
}

function percent(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

function rates(figures: VersionFigures): string {
  const rate = figures.requests === 0 ? 0 : figures.errors / figures.requests;
  return `${percent(rate)} (${figures.errors}/${figures.requests})`;
}

function ms(value: number | null): string {
  return value === null ? 'n/a' : `${Math.round(value * 10) / 10} ms`;
}
