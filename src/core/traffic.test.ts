import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import {
  TrafficSplit,
  isVersionQualifier,
  stickyHash,
  stickyPoint,
  weightsFromRecord,
  weightsToRecord,
} from './traffic.js';
import type { VersionWeight } from './types.js';

const split = (...pairs: [number, number][]): VersionWeight[] =>
  pairs.map(([version, weight]) => ({ version, weight }));

/** Counts by version of `n` picks. */
function counts(picks: Iterable<number>): Map<number, number> {
  const byVersion = new Map<number, number>();
  for (const version of picks) byVersion.set(version, (byVersion.get(version) ?? 0) + 1);
  return byVersion;
}

/** Within 5 standard deviations of a binomial count's mean (a false failure about once in 1.7 million runs). */
function assertNearShare(count: number, n: number, share: number, what: string): void {
  const sigma = Math.sqrt(n * share * (1 - share));
  const mean = n * share;
  assert.ok(Math.abs(count - mean) <= 5 * sigma, `${what}: ${count} of ${n}, expected ${mean} ± ${5 * sigma}`);
}

const badRequest = (message: RegExp) => (err: unknown) =>
  isPlatformError(err, 'BAD_REQUEST') && message.test(err.message);

describe('weights as the API writes them', () => {
  it('reads version numbers as keys, sorted by version, and writes them back', () => {
    assert.deepEqual(weightsFromRecord({ '2': 0.1, '1': 0.9 }), split([1, 0.9], [2, 0.1]));
    assert.deepEqual(weightsToRecord(split([1, 0.9], [2, 0.1])), { '1': 0.9, '2': 0.1 });
    assert.equal(isVersionQualifier('12'), true);
    assert.equal(isVersionQualifier('live'), false);
    assert.equal(isVersionQualifier('1a'), false);
  });

  it('refuses keys that are not version numbers and weights the rules refuse, naming them', () => {
    assert.throws(() => weightsFromRecord({ live: 1 }), badRequest(/"live" is not a version number/));
    assert.throws(() => weightsFromRecord({ '0': 1 }), badRequest(/"0" is not a version number/));
    assert.throws(() => weightsFromRecord({ '1': '1' }), badRequest(/weight of version 1/));
    assert.throws(() => weightsFromRecord({ '1': 0.9, '2': 0.2 }), badRequest(/sum to 1/));
    assert.throws(() => weightsFromRecord({}), badRequest(/at least one version/));
  });
});

describe('TrafficSplit', () => {
  it('splits 2,000 random picks by weight, within statistical tolerance', () => {
    for (const weights of [split([1, 0.9], [2, 0.1]), split([1, 0.5], [2, 0.3], [3, 0.2]), split([4, 1])]) {
      const traffic = new TrafficSplit(weights);
      const n = 2000;
      const byVersion = counts(Array.from({ length: n }, () => traffic.pick(Math.random())));
      for (const { version, weight } of weights) {
        assertNearShare(byVersion.get(version) ?? 0, n, weight, `version ${version} of ${JSON.stringify(weights)}`);
      }
      assert.equal([...byVersion.keys()].filter((v) => !weights.some((w) => w.version === v)).length, 0);
    }
  });

  it('puts the newest version on top of the range, whatever order the weights come in', () => {
    const traffic = new TrafficSplit(split([2, 0.25], [1, 0.75]));
    assert.deepEqual(traffic.versions, [1, 2]);
    assert.equal(traffic.pick(0), 1);
    assert.equal(traffic.pick(0.7499), 1);
    assert.equal(traffic.pick(0.75), 2);
    assert.equal(traffic.pick(0.999999), 2);
    // Weights summing to a little under 1 still cover the whole range.
    assert.equal(new TrafficSplit(split([1, 0.4995], [2, 0.4995])).pick(0.99999), 2);
  });

  it('keeps a sticky key on one version while the weights stay', () => {
    const weights = split([1, 0.7], [2, 0.3]);
    const first = new TrafficSplit(weights);
    const again = new TrafficSplit(split([2, 0.3], [1, 0.7]));
    for (let i = 0; i < 2000; i++) {
      const key = `user-${i}`;
      const version = first.pick(stickyPoint('shop', 'live', key));
      assert.equal(first.pick(stickyPoint('shop', 'live', key)), version);
      assert.equal(again.pick(stickyPoint('shop', 'live', key)), version);
    }
  });

  it('puts a share of distinct sticky keys on each version that matches its weight', () => {
    for (const weights of [split([1, 0.9], [2, 0.1]), split([1, 0.5], [2, 0.3], [3, 0.2])]) {
      const traffic = new TrafficSplit(weights);
      const n = 10_000;
      const byVersion = counts(Array.from({ length: n }, (_, i) => traffic.pick(stickyPoint('shop', 'live', `${i}`))));
      for (const { version, weight } of weights) {
        assertNearShare(byVersion.get(version) ?? 0, n, weight, `version ${version}`);
      }
    }
  });

  it('spreads keys alike but for their last character, and differs between aliases and functions', () => {
    const points = Array.from({ length: 1000 }, (_, i) => stickyPoint('f', 'live', `user-${i}`));
    // Each tenth of [0, 1) gets about a tenth of the keys.
    const deciles = counts(points.map((p) => Math.floor(p * 10)));
    for (let d = 0; d < 10; d++) assertNearShare(deciles.get(d) ?? 0, 1000, 0.1, `decile ${d}`);
    assert.notEqual(stickyHash('f', 'live', 'u'), stickyHash('f', 'beta', 'u'));
    assert.notEqual(stickyHash('f', 'live', 'u'), stickyHash('g', 'live', 'u'));
    assert.notEqual(stickyHash('fa', 'live', 'u'), stickyHash('f', 'alive', 'u'));
    // UTF-8: the same hash as over the encoded bytes, surrogate pairs included.
    assert.notEqual(stickyHash('f', 'live', 'é'), stickyHash('f', 'live', 'e'));
    assert.notEqual(stickyHash('f', 'live', '😀'), stickyHash('f', 'live', '😁'));
  });

  it('keeps the keys already on the newest version there as its weight grows', () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `session-${i}`);
    for (const others of [[1], [1, 2]]) {
      let onTop = new Set<string>();
      for (const percent of [1, 5, 10, 25, 50, 75, 99, 100]) {
        const top = others.length + 1;
        const rest = (100 - percent) / 100 / others.length;
        const weights = [...others.filter(() => rest > 0).map((version) => ({ version, weight: rest }))];
        weights.push({ version: top, weight: percent / 100 });
        const traffic = new TrafficSplit(weights);
        const now = new Set(keys.filter((key) => traffic.pick(stickyPoint('shop', 'live', key)) === top));
        for (const key of onTop) assert.ok(now.has(key), `${key} left version ${top} at ${percent}%`);
        assertNearShare(now.size, keys.length, percent / 100, `${percent}% on version ${top}`);
        onTop = now;
      }
    }
  });
});
