import { isDnsLabel, validateDnsLabel } from './dns-label.js';
import { PlatformError } from './errors.js';
import type { InvocationStatus, RolloutSettings, VersionFigures, VersionWeight } from './types.js';

/**
 * What aliases and rollouts must satisfy, checked by the store (and by any edge that wants to answer early): each
 * check throws BAD_REQUEST naming the value and what is allowed.
 */

/** How far an alias's weights may sum from 1. */
export const weightSumTolerance = 0.001;

/** Most versions one alias may name. */
export const maxAliasVersions = 1000;

/** Most aliases one function may have, `live` among them. */
export const maxAliasesPerFunction = 100;

/** Most rollouts one listing returns (the newest). */
export const maxRolloutsListed = 100;

/** Longest sticky header name. */
export const maxStickyHeaderLength = 100;

/**
 * Most invocations per version that a p99 is taken from: the most recent ones of the window. Counts of requests and
 * errors cover the whole window.
 */
export const p99SampleSize = 10_000;

/** Invocation statuses a rollout counts as errors of the version that ran. */
export const rolloutErrorStatuses: readonly InvocationStatus[] = ['error', 'timeout', 'crash', 'oom', 'init-error'];

/** A rollout's settings where the request leaves them out. */
export const defaultRolloutSettings: Readonly<RolloutSettings> = Object.freeze({
  steps: Object.freeze([10, 50, 100]) as number[],
  intervalSeconds: 30,
  maxErrorRate: 0.01,
  maxP99Ratio: 1.5,
  minRequests: 100,
  rollbackWindowSeconds: 600,
});

/** The bounds of each numeric rollout setting. */
export const rolloutSettingLimits = {
  intervalSeconds: { min: 1, max: 86_400, integer: false },
  maxErrorRate: { min: 0, max: 1, integer: false },
  maxP99Ratio: { min: 1, max: 100, integer: false },
  minRequests: { min: 1, max: 1_000_000, integer: true },
  rollbackWindowSeconds: { min: 0, max: 86_400, integer: false },
} as const;

/** Figures of a version that was not invoked. */
export const noFigures: Readonly<VersionFigures> = Object.freeze({ requests: 0, errors: 0, p99Ms: null });

/** Whether `name` is a valid alias name: a DNS label (`isDnsLabel`), like a function name. */
export function isAliasName(name: unknown): name is string {
  return isDnsLabel(name);
}

/** Returns `name` if it is a valid alias name; BAD_REQUEST otherwise. */
export function validateAliasName(name: unknown): string {
  return validateDnsLabel(name, 'alias', 'BAD_REQUEST');
}

/**
 * The sticky header as stored: null, or a valid HTTP header name (a token) of at most 100 characters, lowercased
 * (header names are case-insensitive). BAD_REQUEST otherwise.
 */
export function validateStickyHeader(header: unknown): string | null {
  if (header === null || header === undefined) return null;
  if (
    typeof header !== 'string' ||
    header.length > maxStickyHeaderLength ||
    !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(header)
  ) {
    throw new PlatformError(
      'BAD_REQUEST',
      `invalid stickyHeader ${JSON.stringify(header)}: use a valid HTTP header name of at most ${maxStickyHeaderLength} characters`,
    );
  }
  return header.toLowerCase();
}

/**
 * The weights as stored: sorted by version, each version an integer >= 1 named once, each weight > 0, summing to 1
 * (±0.001). Whether the versions exist is the store's to check. BAD_REQUEST naming the first problem otherwise.
 */
export function validateWeights(weights: unknown): VersionWeight[] {
  if (!Array.isArray(weights) || weights.length === 0) {
    throw new PlatformError('BAD_REQUEST', 'weights must name at least one version');
  }
  if (weights.length > maxAliasVersions) {
    throw new PlatformError('BAD_REQUEST', `weights may name at most ${maxAliasVersions} versions`);
  }
  const seen = new Set<number>();
  const checked: VersionWeight[] = [];
  let sum = 0;
  for (const entry of weights as unknown[]) {
    const { version, weight } = (entry ?? {}) as { version?: unknown; weight?: unknown };
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1 || version > 2_147_483_647) {
      throw new PlatformError('BAD_REQUEST', `weights: ${JSON.stringify(version)} is not a version number`);
    }
    if (seen.has(version)) throw new PlatformError('BAD_REQUEST', `weights name version ${version} twice`);
    seen.add(version);
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > 1) {
      throw new PlatformError(
        'BAD_REQUEST',
        `the weight of version ${version} must be a number > 0 and <= 1, got ${JSON.stringify(weight)}`,
      );
    }
    sum += weight;
    checked.push({ version, weight });
  }
  if (Math.abs(sum - 1) > weightSumTolerance) {
    throw new PlatformError(
      'BAD_REQUEST',
      `weights must sum to 1 (±${weightSumTolerance}), got ${Number(sum.toFixed(6))}`,
    );
  }
  return checked.sort((a, b) => a.version - b.version);
}

/** The version with the largest weight; the newest one on a tie. */
export function primaryVersion(weights: readonly VersionWeight[]): number {
  let primary: VersionWeight | undefined;
  for (const entry of weights) {
    if (
      primary === undefined ||
      entry.weight > primary.weight ||
      (entry.weight === primary.weight && entry.version > primary.version)
    ) {
      primary = entry;
    }
  }
  if (primary === undefined) throw new PlatformError('INTERNAL', 'an alias without versions has no primary version');
  return primary.version;
}

/** An alias's weights at a rollout step: the canary at `percent`, the baseline the rest (absent at 100). */
export function stepWeights(baseline: number, canary: number, percent: number): VersionWeight[] {
  if (percent >= 100) return [{ version: canary, weight: 1 }];
  const share = percent / 100;
  const weights = [
    { version: baseline, weight: 1 - share },
    { version: canary, weight: share },
  ];
  return weights.sort((a, b) => a.version - b.version);
}

/**
 * Complete rollout settings, checked: `steps` non-empty, strictly increasing integers in 1..100 ending at 100, and
 * every number within `rolloutSettingLimits`. BAD_REQUEST naming the field otherwise.
 */
export function validateRolloutSettings(settings: RolloutSettings): RolloutSettings {
  const { steps } = settings;
  if (!Array.isArray(steps) || steps.length === 0) {
    throw new PlatformError('BAD_REQUEST', 'steps must be a non-empty list of percentages ending at 100');
  }
  let previous = 0;
  for (const step of steps as unknown[]) {
    if (typeof step !== 'number' || !Number.isInteger(step) || step < 1 || step > 100) {
      throw new PlatformError('BAD_REQUEST', `steps: ${JSON.stringify(step)} is not an integer from 1 to 100`);
    }
    if (step <= previous) {
      throw new PlatformError('BAD_REQUEST', `steps must increase strictly, got ${JSON.stringify(steps)}`);
    }
    previous = step;
  }
  if (previous !== 100) {
    throw new PlatformError('BAD_REQUEST', `steps must end at 100, got ${JSON.stringify(steps)}`);
  }
  for (const [field, limits] of Object.entries(rolloutSettingLimits)) {
    const value: unknown = settings[field as keyof typeof rolloutSettingLimits];
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < limits.min ||
      value > limits.max ||
      (limits.integer && !Number.isInteger(value))
    ) {
      throw new PlatformError(
        'BAD_REQUEST',
        `${field} must be ${limits.integer ? 'an integer' : 'a number'} from ${limits.min} to ${limits.max}, got ${JSON.stringify(value)}`,
      );
    }
  }
  return {
    steps: [...steps],
    intervalSeconds: settings.intervalSeconds,
    maxErrorRate: settings.maxErrorRate,
    maxP99Ratio: settings.maxP99Ratio,
    minRequests: settings.minRequests,
    rollbackWindowSeconds: settings.rollbackWindowSeconds,
  };
}
