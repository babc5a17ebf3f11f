import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import {
  defaultRolloutSettings,
  primaryVersion,
  stepWeights,
  validateAliasName,
  validateRolloutSettings,
  validateStickyHeader,
  validateWeights,
} from './traffic-rules.js';

function badRequest(call: () => unknown, message: RegExp): void {
  assert.throws(call, (err: unknown) => isPlatformError(err, 'BAD_REQUEST') && message.test(err.message));
}

describe('traffic rules', () => {
  it('alias names: lowercase, starting with a letter, at most 63 characters', () => {
    for (const name of ['live', 'beta', 'a', 'canary-2', `a${'b'.repeat(62)}`])
      assert.equal(validateAliasName(name), name);
    for (const name of ['', '1', '123', 'Live', '-x', 'a_b', 'a b', `a${'b'.repeat(63)}`, 7, null]) {
      badRequest(() => validateAliasName(name), /alias name/);
    }
  });

  it('weights: sorted by version, each in (0, 1], summing to 1 within 0.001', () => {
    assert.deepEqual(
      validateWeights([
        { version: 3, weight: 0.2 },
        { version: 1, weight: 0.8 },
      ]),
      [
        { version: 1, weight: 0.8 },
        { version: 3, weight: 0.2 },
      ],
    );
    assert.equal(
      validateWeights([
        { version: 1, weight: 0.5 },
        { version: 2, weight: 0.4991 },
      ]).length,
      2,
    );
    badRequest(
      () =>
        validateWeights([
          { version: 1, weight: 0.5 },
          { version: 2, weight: 0.4989 },
        ]),
      /sum to 1/,
    );
    badRequest(
      () =>
        validateWeights([
          { version: 1, weight: 0.5 },
          { version: 2, weight: 0.5011 },
        ]),
      /sum to 1/,
    );
    badRequest(() => validateWeights([]), /at least one/);
    badRequest(() => validateWeights({ 1: 1 }), /at least one/);
    badRequest(() => validateWeights([{ version: 0, weight: 1 }]), /not a version/);
    badRequest(() => validateWeights([{ version: '1', weight: 1 }]), /not a version/);
    badRequest(() => validateWeights([{ version: 1, weight: '1' }]), /weight of version 1/);
    badRequest(() => validateWeights([{ version: 1, weight: Infinity }]), /weight of version 1/);
    badRequest(() => validateWeights([null]), /not a version/);
  });

  it('the primary version has the largest weight, the newest on a tie', () => {
    assert.equal(primaryVersion([{ version: 1, weight: 1 }]), 1);
    assert.equal(
      primaryVersion([
        { version: 1, weight: 0.6 },
        { version: 2, weight: 0.4 },
      ]),
      1,
    );
    assert.equal(
      primaryVersion([
        { version: 1, weight: 0.5 },
        { version: 2, weight: 0.5 },
      ]),
      2,
    );
    assert.equal(
      primaryVersion([
        { version: 4, weight: 0.5 },
        { version: 2, weight: 0.5 },
      ]),
      4,
    );
  });

  it('step weights: the canary at the percentage, the baseline the rest, sorted by version', () => {
    assert.deepEqual(stepWeights(1, 2, 10), [
      { version: 1, weight: 0.9 },
      { version: 2, weight: 0.1 },
    ]);
    assert.deepEqual(stepWeights(5, 3, 25), [
      { version: 3, weight: 0.25 },
      { version: 5, weight: 0.75 },
    ]);
    assert.deepEqual(stepWeights(1, 2, 100), [{ version: 2, weight: 1 }]);
  });

  it('sticky headers: HTTP header names, stored lowercase', () => {
    assert.equal(validateStickyHeader(null), null);
    assert.equal(validateStickyHeader(undefined), null);
    assert.equal(validateStickyHeader('X-User-Id'), 'x-user-id');
    assert.equal(validateStickyHeader('x'.repeat(100)), 'x'.repeat(100));
    for (const header of ['', 'x user', 'x:y', 'é', 'x'.repeat(101), 12]) {
      badRequest(() => validateStickyHeader(header), /stickyHeader/);
    }
  });

  it('rollout settings: steps increase to 100, thresholds within bounds, each error naming its field', () => {
    assert.deepEqual(validateRolloutSettings(defaultRolloutSettings), defaultRolloutSettings);
    assert.deepEqual(validateRolloutSettings({ ...defaultRolloutSettings, steps: [100] }).steps, [100]);
    const bad: [Partial<typeof defaultRolloutSettings>, RegExp][] = [
      [{ steps: [] }, /steps/],
      [{ steps: [0, 100] }, /steps: 0/],
      [{ steps: [50, 50, 100] }, /increase/],
      [{ steps: [10, 90] }, /end at 100/],
      [{ intervalSeconds: 0.5 }, /intervalSeconds/],
      [{ intervalSeconds: 86_401 }, /intervalSeconds/],
      [{ maxErrorRate: -0.1 }, /maxErrorRate/],
      [{ maxP99Ratio: 101 }, /maxP99Ratio/],
      [{ minRequests: 1.5 }, /minRequests must be an integer/],
      [{ rollbackWindowSeconds: -1 }, /rollbackWindowSeconds/],
      [{ maxErrorRate: Number.NaN }, /maxErrorRate/],
    ];
    for (const [overrides, message] of bad) {
      badRequest(() => validateRolloutSettings({ ...defaultRolloutSettings, ...overrides }), message);
    }
  });
});
