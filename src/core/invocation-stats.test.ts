import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import {
  compileStatsWindow,
  denseSeries,
  mergeBuckets,
  quantileMs,
  statsDurationBoundsMs,
} from './invocation-stats.js';
import type { InvocationStatsBucket } from './invocation-stats.js';

/** A histogram of the given durations, as a store counts it. */
function bucketOf(durations: number[], start = 0, errors = 0): InvocationStatsBucket {
  return {
    functionName: 'f',
    version: 1,
    start,
    invocations: durations.length,
    errors,
    le: statsDurationBoundsMs.map((bound) => durations.filter((d) => d <= bound).length),
    maxDurationMs: Math.max(0, ...durations),
  };
}

describe('invocation stats', () => {
  it('windows are whole epoch-aligned steps ending with the one holding now', () => {
    const now = 1_700_000_075_500;
    assert.deepEqual(compileStatsWindow({}, now), {
      from: 1_700_000_100_000 - 60 * 60_000,
      to: 1_700_000_100_000,
      stepMs: 60_000,
      points: 60,
    });
    assert.equal(compileStatsWindow({ minutes: '1440', step: '240' }, now).points, 360);
    assert.equal(compileStatsWindow({ minutes: '5', step: '3600' }, now).points, 1);
  });

  it('refuses values out of range, non-integers and more than 360 points with BAD_REQUEST', () => {
    for (const query of [
      { minutes: '0' },
      { minutes: '1441' },
      { step: '9' },
      { step: '3601' },
      { minutes: '1.5' },
      { minutes: '-1' },
      { step: 'abc' },
      { minutes: '' },
      { minutes: ['1', '2'] },
      { minutes: '1440', step: '60' },
    ]) {
      assert.throws(
        () => compileStatsWindow(query, Date.now()),
        (err: unknown) => isPlatformError(err) && err.code === 'BAD_REQUEST',
        JSON.stringify(query),
      );
    }
  });

  it('quantiles interpolate inside the histogram bucket and never pass the largest duration', () => {
    assert.equal(quantileMs(bucketOf([]), 0.99), null);
    // 100 invocations between 10 and 25 ms: p50 halfway through that bucket.
    const hundred = bucketOf(Array.from({ length: 100 }, () => 20));
    assert.equal(quantileMs(hundred, 0.5), 17.5);
    assert.equal(quantileMs(hundred, 0.99), 20, 'capped at the largest duration');
    const mixed = bucketOf([...Array.from({ length: 99 }, () => 3), 900]);
    assert.ok((quantileMs(mixed, 0.5) ?? 0) <= 5);
    assert.ok((quantileMs(mixed, 0.999) ?? 0) > 500);
    assert.equal(quantileMs(bucketOf([2_000_000]), 0.99), 2_000_000, 'past the last bound: the largest duration');
  });

  it('merges buckets and fills a dense series oldest first', () => {
    const window = { from: 0, to: 180_000, stepMs: 60_000, points: 3 };
    const buckets = [bucketOf([1, 2], 60_000, 1), { ...bucketOf([30], 60_000), version: 2 }];
    const series = denseSeries(window, buckets, (start, merged) => ({
      start,
      n: merged.invocations,
      e: merged.errors,
    }));
    assert.deepEqual(series, [
      { start: 0, n: 0, e: 0 },
      { start: 60_000, n: 3, e: 1 },
      { start: 120_000, n: 0, e: 0 },
    ]);
    assert.equal(mergeBuckets(buckets).maxDurationMs, 30);
  });
});
