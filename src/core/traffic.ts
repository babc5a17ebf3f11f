// How an alias's traffic is split between versions: the rules an alias must follow, and the choice of a version for
// one invocation. Pure: the gateway, the stores and the control plane share it.
import { PlatformError } from './errors.js';
import type { VersionWeight } from './types.js';

/** An alias name: a lowercase letter, then up to 62 lowercase letters, digits or dashes. */
const aliasNamePattern = /^[a-z][a-z0-9-]{0,62}$/;
/** A qualifier of digits only names a version. */
const versionPattern = /^[0-9]+$/;
/** An HTTP header name (RFC 9110 token), lowercase. */
const headerNamePattern = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** How far an alias's weights may sum from 1. */
export const weightTolerance = 0.001;
/** Longest sticky header name. */
export const maxStickyHeaderLength = 100;

/** Whether a qualifier names a version (all digits) rather than an alias. */
export function isVersionQualifier(qualifier: string): boolean {
  return versionPattern.test(qualifier);
}

/**
 * An alias name: `^[a-z][a-z0-9-]{0,62}$` (so never all digits: a qualifier of digits is a version number). Throws
 * BAD_REQUEST naming it otherwise.
 */
export function validateAliasName(name: unknown): string {
  if (typeof name !== 'string' || !aliasNamePattern.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 100)) : String(name);
    throw new PlatformError(
      'BAD_REQUEST',
      `invalid alias name ${shown}: use 1-63 lowercase letters, digits or dashes, starting with a letter`,
    );
  }
  return name;
}

/** A sticky header: a lowercase HTTP header name of at most 100 characters. Throws BAD_REQUEST otherwise. */
export function validateStickyHeader(header: unknown): string {
  if (typeof header !== 'string' || header.length > maxStickyHeaderLength || !headerNamePattern.test(header)) {
    const shown = typeof header === 'string' ? JSON.stringify(header.slice(0, 120)) : String(header);
    throw new PlatformError(
      'BAD_REQUEST',
      `invalid stickyHeader ${shown}: use a lowercase HTTP header name of at most ${maxStickyHeaderLength} characters, like x-user-id`,
    );
  }
  return header;
}

/**
 * An alias's weights, checked and sorted by version: at least one, each version a positive integer named once, each
 * weight a number > 0 and <= 1, the sum 1 ± 0.001. Throws BAD_REQUEST naming the problem. Whether the versions exist
 * is the store's to check.
 */
export function validateWeights(weights: readonly VersionWeight[]): VersionWeight[] {
  if (weights.length === 0) throw new PlatformError('BAD_REQUEST', 'weights must name at least one version');
  const seen = new Set<number>();
  let sum = 0;
  for (const { version, weight } of weights) {
    if (!Number.isSafeInteger(version) || version < 1) {
      throw new PlatformError('BAD_REQUEST', `weights: ${String(version)} is not a version number (1, 2, ...)`);
    }
    if (seen.has(version)) throw new PlatformError('BAD_REQUEST', `weights: version ${version} is named twice`);
    seen.add(version);
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > 1) {
      throw new PlatformError(
        'BAD_REQUEST',
        `weights: version ${version} has weight ${String(weight)}; each weight must be above 0 and at most 1`,
      );
    }
    sum += weight;
  }
  if (Math.abs(sum - 1) > weightTolerance) {
    throw new PlatformError(
      'BAD_REQUEST',
      `weights sum to ${Number(sum.toFixed(6))}; they must sum to 1 (± ${weightTolerance})`,
    );
  }
  return weights.map(({ version, weight }) => ({ version, weight })).sort((a, b) => a.version - b.version);
}

/**
 * Weights as the API writes them, `{"1": 0.9, "2": 0.1}` (version → weight), checked as `validateWeights` does.
 */
export function weightsFromRecord(record: Readonly<Record<string, unknown>>): VersionWeight[] {
  const weights = Object.entries(record).map(([key, weight]) => {
    if (!isVersionQualifier(key) || key.length > 15 || Number(key) < 1) {
      throw new PlatformError(
        'BAD_REQUEST',
        `weights: ${JSON.stringify(key.slice(0, 100))} is not a version number (1, 2, ...)`,
      );
    }
    return { version: Number(key), weight: weight as number };
  });
  return validateWeights(weights);
}

/** Weights as the API shows them: `{"1": 0.9, "2": 0.1}`. */
export function weightsToRecord(weights: readonly VersionWeight[]): Record<string, number> {
  const record: Record<string, number> = {};
  for (const { version, weight } of weights) record[String(version)] = weight;
  return record;
}

/** The version with the largest weight; the newest on a tie (an alias's `FunctionRecord.currentVersion` for `live`). */
export function primaryVersion(weights: readonly VersionWeight[]): number {
  let best: VersionWeight | undefined;
  for (const w of weights) {
    if (best === undefined || w.weight > best.weight || (w.weight === best.weight && w.version > best.version))
      best = w;
  }
  if (best === undefined) throw new PlatformError('INTERNAL', 'an alias without versions');
  return best.version;
}

/** A version's share of the weights (0 when it has none). */
export function shareOf(weights: readonly VersionWeight[], version: number): number {
  return weights.find((w) => w.version === version)?.weight ?? 0;
}

/**
 * A 32-bit hash of a sticky header's value within one alias: FNV-1a over the UTF-8 bytes of
 * `functionName \0 alias \0 value`, then the MurmurHash3 finaliser, whose avalanche spreads keys that differ in their
 * last character (`user-1`, `user-2`) over the whole range (FNV-1a alone moves the top bits in steps).
 */
export function stickyHash(functionName: string, alias: string, value: string): number {
  let h = 0x811c9dc5;
  h = fnv1a(h, functionName);
  h = Math.imul(h ^ 0, 0x01000193);
  h = fnv1a(h, alias);
  h = Math.imul(h ^ 0, 0x01000193);
  h = fnv1a(h, value);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function fnv1a(hash: number, text: string): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
      continue;
    }
    // UTF-8 of the code point (a lone surrogate as U+FFFD, as TextEncoder writes it).
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
      } else c = 0xfffd;
    } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), 0x01000193);
    } else if (c < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
  }
  return h;
}

/**
 * Picks versions by weight. The weights, sorted by version, split [0, 1) into consecutive ranges, the newest version
 * on top: as a newer version's weight grows (a canary's steps), its range grows downwards, so the sticky keys already
 * on it stay on it. With a sticky value the point in [0, 1) is the value's hash; without one it is random.
 *
 * @example
 * const split = new TrafficSplit([{ version: 1, weight: 0.9 }, { version: 2, weight: 0.1 }]);
 * split.pick(Math.random()); // 1 nine times in ten
 * split.pick(stickyPoint('checkout', 'live', 'user-42')); // always the same version for user-42
 */
export class TrafficSplit {
  /** Versions, ascending. */
  readonly versions: readonly number[];
  /** The upper end of each version's range, as a share of the sum of the weights; the last one is 1. */
  readonly #bounds: Float64Array;

  constructor(weights: readonly VersionWeight[]) {
    if (weights.length === 0) throw new PlatformError('INTERNAL', 'an alias without versions');
    const sorted = [...weights].sort((a, b) => a.version - b.version);
    const total = sorted.reduce((sum, w) => sum + w.weight, 0);
    this.versions = sorted.map((w) => w.version);
    this.#bounds = new Float64Array(sorted.length);
    let upTo = 0;
    sorted.forEach((w, i) => {
      upTo += w.weight;
      this.#bounds[i] = upTo / total;
    });
    // The top range ends at 1 exactly, whatever the rounding of the sum.
    this.#bounds[sorted.length - 1] = 1;
  }

  /** The index in `versions` of the version at `point` (in [0, 1)). */
  indexAt(point: number): number {
    const bounds = this.#bounds;
    const last = bounds.length - 1;
    for (let i = 0; i < last; i++) if (point < (bounds[i] as number)) return i;
    return last;
  }

  /** The version at `point` (in [0, 1)). */
  pick(point: number): number {
    return this.versions[this.indexAt(point)] as number;
  }
}

/** The point in [0, 1) of a sticky header's value within one alias. */
export function stickyPoint(functionName: string, alias: string, value: string): number {
  return stickyHash(functionName, alias, value) / 0x1_0000_0000;
}
