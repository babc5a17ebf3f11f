// Rollouts, the pure part: settings as asked for, defaulted and checked (the rules are in traffic-rules.ts), a
// canary's steps, and the changes that end one (promote, abort, roll back). The API uses it; the control plane's
// driver applies the same changes.
import { PlatformError } from './errors.js';
import type { RolloutChange } from './ports/traffic-store.js';
import { defaultRolloutSettings, validateRolloutSettings } from './traffic-rules.js';
import type { Rollout, RolloutEvent, RolloutSettings, VersionFigures } from './types.js';

/** A rollout's settings as asked for: any left out get their defaults. */
export type RolloutSettingsInput = { [K in keyof RolloutSettings]?: RolloutSettings[K] | undefined };

/**
 * Settings defaulted and checked (`validateRolloutSettings`): BAD_REQUEST naming the field when steps are not strictly
 * increasing whole percents ending at 100, or a number is out of `rolloutSettingLimits`.
 */
export function compileRolloutSettings(input: RolloutSettingsInput): RolloutSettings {
  return validateRolloutSettings({
    steps: input.steps ?? defaultRolloutSettings.steps,
    intervalSeconds: input.intervalSeconds ?? defaultRolloutSettings.intervalSeconds,
    maxErrorRate: input.maxErrorRate ?? defaultRolloutSettings.maxErrorRate,
    maxP99Ratio: input.maxP99Ratio ?? defaultRolloutSettings.maxP99Ratio,
    minRequests: input.minRequests ?? defaultRolloutSettings.minRequests,
    rollbackWindowSeconds: input.rollbackWindowSeconds ?? defaultRolloutSettings.rollbackWindowSeconds,
  });
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

/** The canary's share (percent) at the step under way. */
export function currentStep(rollout: Pick<Rollout, 'settings' | 'stepIndex'>): number {
  return rollout.settings.steps[rollout.stepIndex] ?? 100;
}

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
