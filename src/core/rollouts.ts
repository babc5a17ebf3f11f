// Rollouts, the pure part: their settings (defaults and bounds), the weights of each step, and the changes that end
// one (promote, abort, roll back). The API validates with it; the control plane's driver applies the same changes.
import { PlatformError } from './errors.js';
import type { RolloutChange } from './ports/traffic-store.js';
import type { Rollout, RolloutEvent, RolloutSettings, VersionFigures, VersionWeight } from './types.js';

/** What a rollout does when a setting is left out. */
export const defaultRolloutSettings: Readonly<RolloutSettings> = Object.freeze({
  steps: Object.freeze([10, 50, 100]) as number[],
  intervalSeconds: 30,
  maxErrorRate: 0.01,
  maxP99Ratio: 1.5,
  minRequests: 100,
  rollbackWindowSeconds: 600,
});

/** The bounds of each setting (inclusive). */
export const rolloutLimits = {
  intervalSeconds: { min: 1, max: 86_400, integer: true },
  maxErrorRate: { min: 0, max: 1, integer: false },
  maxP99Ratio: { min: 1, max: 100, integer: false },
  minRequests: { min: 1, max: 1_000_000, integer: true },
  rollbackWindowSeconds: { min: 0, max: 86_400, integer: true },
} as const;

/** A rollout's settings as asked for: any left out get their defaults. */
export type RolloutSettingsInput = { [K in keyof RolloutSettings]?: RolloutSettings[K] | undefined };

/**
 * Settings checked and defaulted. Throws BAD_REQUEST naming the field: steps must be strictly increasing whole
 * percents from 1 to 100 ending at 100; the others within `rolloutLimits`.
 */
export function compileRolloutSettings(input: RolloutSettingsInput): RolloutSettings {
  const steps = input.steps ?? defaultRolloutSettings.steps;
  validateSteps(steps);
  const number = (field: keyof typeof rolloutLimits): number => {
    const value = input[field] ?? defaultRolloutSettings[field];
    const { min, max, integer } = rolloutLimits[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      throw new PlatformError('BAD_REQUEST', `${field} must be from ${min} to ${max}, got ${String(value)}`);
    }
    if (integer && !Number.isInteger(value)) {
      throw new PlatformError('BAD_REQUEST', `${field} must be a whole number, got ${value}`);
    }
    return value;
  };
  return {
    steps: [...steps],
    intervalSeconds: number('intervalSeconds'),
    maxErrorRate: number('maxErrorRate'),
    maxP99Ratio: number('maxP99Ratio'),
    minRequests: number('minRequests'),
    rollbackWindowSeconds: number('rollbackWindowSeconds'),
  };
}

function validateSteps(steps: readonly unknown[]): void {
  if (!Array.isArray(steps) || steps.length === 0) {
    throw new PlatformError('BAD_REQUEST', 'steps must name at least one step (a percent), the last one 100');
  }
  const shown = JSON.stringify(steps.slice(0, 20));
  let previous = 0;
  for (const step of steps) {
    if (typeof step !== 'number' || !Number.isInteger(step) || step < 1 || step > 100) {
      throw new PlatformError('BAD_REQUEST', `steps must be whole percents from 1 to 100, got ${shown}`);
    }
    if (step <= previous) throw new PlatformError('BAD_REQUEST', `steps must be strictly increasing, got ${shown}`);
    previous = step;
  }
  if (previous !== 100) throw new PlatformError('BAD_REQUEST', `steps must end at 100, got ${shown}`);
}

/**
 * The steps of a canary that starts at `percent`: it, then the default steps above it (5 → 5, 10, 50, 100). Throws
 * BAD_REQUEST unless `percent` is a whole number from 1 to 100.
 */
export function canarySteps(percent: number): number[] {
  if (!Number.isInteger(percent) || percent < 1 || percent > 100) {
    throw new PlatformError('BAD_REQUEST', `a canary's share must be a whole percent from 1 to 100, got ${percent}`);
  }
  return [percent, ...defaultRolloutSettings.steps.filter((step) => step > percent)];
}

/** The alias's weights at a step: the canary at `percent`, the baseline the rest (nothing at 100). */
export function stepWeights(baseline: number, canary: number, percent: number): VersionWeight[] {
  if (percent >= 100) return [{ version: canary, weight: 1 }];
  const weights = [
    { version: baseline, weight: (100 - percent) / 100 },
    { version: canary, weight: percent / 100 },
  ];
  return weights.sort((a, b) => a.version - b.version);
}

/** The canary's share (percent) at the step under way. */
export function currentStep(rollout: Pick<Rollout, 'settings' | 'stepIndex'>): number {
  return rollout.settings.steps[rollout.stepIndex] ?? 100;
}

/** Figures of a version with no invocations. */
export const noFigures: Readonly<VersionFigures> = Object.freeze({ requests: 0, errors: 0, p99Ms: null });

/** The canary's and the baseline's figures over the step under way. */
export interface StepFigures {
  canary: VersionFigures;
  baseline: VersionFigures;
}

/**
 * The change that ends a running rollout now: `promoted` (the canary gets all of the alias's traffic), or `aborted`
 * / `rolled_back` (the baseline gets it all back). Its history entry records the step under way, the figures and
 * the reason. Apply it with `TrafficStore.updateRollout` against the rollout's revision.
 */
export function endRollout(
  rollout: Rollout,
  outcome: 'promoted' | 'aborted' | 'rolled_back',
  at: Date,
  figures: StepFigures,
  reason: string,
): RolloutChange {
  const event: RolloutEvent = {
    at,
    step: currentStep(rollout),
    canary: { ...figures.canary },
    baseline: { ...figures.baseline },
    decision: outcome,
    reason,
  };
  const promoted = outcome === 'promoted';
  return {
    state: outcome,
    stepIndex: promoted ? rollout.settings.steps.length - 1 : rollout.stepIndex,
    stepStartedAt: at,
    events: [event],
    weights: [{ version: promoted ? rollout.version : rollout.baseline, weight: 1 }],
  };
}
