import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import { canarySteps, compileRolloutSettings, currentStep, endRollout } from './rollouts.js';
import { defaultRolloutSettings, noFigures } from './traffic-rules.js';
import type { Rollout } from './types.js';

const badRequest = (message: RegExp) => (err: unknown) =>
  isPlatformError(err, 'BAD_REQUEST') && message.test(err.message);

describe('rollout settings', () => {
  it('defaults every setting left out', () => {
    assert.deepEqual(compileRolloutSettings({}), {
      steps: [10, 50, 100],
      intervalSeconds: 30,
      maxErrorRate: 0.01,
      maxP99Ratio: 1.5,
      minRequests: 100,
      rollbackWindowSeconds: 600,
    });
    const custom = compileRolloutSettings({ steps: [5, 100], intervalSeconds: 1, maxErrorRate: 0, minRequests: 1 });
    assert.equal(custom.intervalSeconds, 1);
    assert.deepEqual(custom.steps, [5, 100]);
    assert.equal(custom.maxErrorRate, 0);
    assert.equal(compileRolloutSettings({ rollbackWindowSeconds: 0 }).rollbackWindowSeconds, 0);
    assert.deepEqual(compileRolloutSettings({ steps: [100] }).steps, [100]);
  });

  it('refuses bad settings, naming the field', () => {
    assert.throws(() => compileRolloutSettings({ steps: [50, 10, 100] }), badRequest(/steps must increase strictly/));
    assert.throws(() => compileRolloutSettings({ steps: [10, 50] }), badRequest(/steps must end at 100/));
    assert.throws(() => compileRolloutSettings({ intervalSeconds: 0 }), badRequest(/intervalSeconds/));
    assert.throws(() => compileRolloutSettings({ maxP99Ratio: 0.5 }), badRequest(/maxP99Ratio/));
  });

  it("makes a canary's steps from its first share and the default steps above it", () => {
    assert.deepEqual(canarySteps(5), [5, 10, 50, 100]);
    assert.deepEqual(canarySteps(10), [10, 50, 100]);
    assert.deepEqual(canarySteps(60), [60, 100]);
    assert.deepEqual(canarySteps(100), [100]);
    assert.throws(() => canarySteps(0), badRequest(/whole percent from 1 to 100/));
    assert.throws(() => canarySteps(101), badRequest(/whole percent from 1 to 100/));
    assert.deepEqual(defaultRolloutSettings.steps, [10, 50, 100]);
  });
});

describe('rollout changes', () => {
  const rollout: Rollout = {
    id: 'r1',
    functionName: 'shop',
    incarnation: 'i1',
    alias: 'live',
    version: 3,
    baseline: 2,
    state: 'running',
    stepIndex: 1,
    settings: compileRolloutSettings({}),
    stepStartedAt: new Date(0),
    revision: 4,
    history: [],
    createdAt: new Date(0),
    updatedAt: new Date(0),
    endedAt: null,
  };

  it("reads the canary's share at the step under way", () => {
    assert.equal(currentStep(rollout), 50);
  });

  it('promotes to the canary and aborts to the baseline, recording the step, figures and reason', () => {
    const at = new Date(1000);
    const figures = { canary: { requests: 5, errors: 1, p99Ms: 3 }, baseline: { ...noFigures } };
    const promoted = endRollout(rollout, 'promoted', at, figures, 'promoted by hand');
    assert.deepEqual(promoted, {
      state: 'promoted',
      stepIndex: 2,
      stepStartedAt: at,
      events: [{ at, step: 50, ...figures, decision: 'promoted', reason: 'promoted by hand' }],
      weights: [{ version: 3, weight: 1 }],
    });
    const aborted = endRollout(rollout, 'aborted', at, figures, 'aborted by hand');
    assert.equal(aborted.state, 'aborted');
    assert.equal(aborted.stepIndex, 1);
    assert.deepEqual(aborted.weights, [{ version: 2, weight: 1 }]);
    assert.equal(aborted.events[0]?.decision, 'aborted');
  });
});
