// How an alias's traffic is split between versions: the choice of a version for one invocation, and the weights as
// the API writes them. Pure. What an alias must satisfy is in traffic-rules.ts (the store checks it).
import { PlatformError } from './errors.js';
import { validateWeights } from './traffic-rules.js';
import type { VersionWeight } from './types.js';

/** A qualifier of digits only names a version. */
const versionPattern = /^[0-9]+$/;

/** Whether a qualifier names a version (all digits) rather than an alias. */
export function isVersionQualifier(qualifier: string): boolean {
  return versionPattern.test(qualifier);
}

/** Weights as the API writes them, `{"1": 0.9, "2": 0.1}` (version → weight), checked (`validateWeights`). */
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
