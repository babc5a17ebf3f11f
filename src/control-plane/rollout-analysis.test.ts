import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RolloutEvent, RolloutSettings, VersionFigures } from '../core/types.js';
import {
  baselineReference,
  errorRateExcessLowerBound,
  judgeStep,
  p99Ratio,
  wilsonInterval,
} from './rollout-analysis.js';

const settings: RolloutSettings = {
  steps: [10, 50, 100],
  intervalSeconds: 30,
  maxErrorRate: 0.01,
  maxP99Ratio: 1.5,
  minRequests: 100,
  rollbackWindowSeconds: 600,
};
const over = settings.intervalSeconds * 1000;

function figures(requests: number, errors: number, p99Ms: number | null = requests === 0 ? null : 10): VersionFigures {
  return { requests, errors, p99Ms };
}

describe('wilsonInterval', () => {
  it('holds the observed proportion, stays in [0, 1], and is [0, 1] without observations', () => {
    for (const [k, n] of [
      [0, 1],
      [1, 1],
      [1, 3],
      [5, 100],
      [99, 100],
      [500, 1000],
    ] as const) {
      const { low, high } = wilsonInterval(k, n);
      assert.ok(low >= 0 && high <= 1 && low <= k / n && k / n <= high, `${k}/${n}: [${low}, ${high}]`);
    }
    assert.deepEqual(wilsonInterval(0, 0), { low: 0, high: 1 });
    assert.equal(wilsonInterval(0, 50).low, 0);
    assert.equal(wilsonInterval(50, 50).high, 1);
  });

  it('narrows as observations grow', () => {
    const width = (k: number, n: number) => wilsonInterval(k, n).high - wilsonInterval(k, n).low;
    assert.ok(width(10, 100) > width(100, 1000));
    assert.ok(width(100, 1000) > width(1000, 10000));
  });
});

describe('errorRateExcessLowerBound', () => {
  it('is below the plain difference, and approaches it with many observations', () => {
    const few = errorRateExcessLowerBound(figures(100, 20), figures(900, 9));
    const many = errorRateExcessLowerBound(figures(100_000, 20_000), figures(900_000, 9_000));
    assert.ok(few < 0.19 && many < 0.19);
    assert.ok(many > few);
    assert.ok(0.19 - many < 0.005, String(many));
  });

  it('judges the canary on its own rate when the baseline has no requests', () => {
    assert.equal(errorRateExcessLowerBound(figures(100, 20), figures(0, 0)), wilsonInterval(20, 100).low);
  });
});

describe('judgeStep', () => {
  it('fails a canary that throws in 20% of its calls, as soon as it has minRequests', () => {
    const verdict = judgeStep({ canary: figures(100, 20), baseline: figures(900, 1), elapsedMs: 3_000 }, settings);
    assert.equal(verdict.kind, 'fail');
    assert.match(verdict.kind === 'fail' ? verdict.reason : '', /^canary error rate 20\.0% \(20\/100\) against/);
  });

  it('waits below minRequests, however bad the canary looks', () => {
    const verdict = judgeStep({ canary: figures(99, 99), baseline: figures(900, 0), elapsedMs: over }, settings);
    assert.deepEqual(verdict, { kind: 'wait' });
  });

  it('passes a canary without errors once the interval is over, and waits before', () => {
    const step = { canary: figures(150, 0), baseline: figures(1350, 1) };
    assert.deepEqual(judgeStep({ ...step, elapsedMs: over - 1 }, settings), { kind: 'wait' });
    const verdict = judgeStep({ ...step, elapsedMs: over }, settings);
    assert.equal(verdict.kind, 'pass');
  });

  it('never fails a few calls on a bare threshold', () => {
    const few = { ...settings, minRequests: 1 };
    // 1 of 3 calls failed: 33% is far past 1%, but 3 calls prove nothing.
    assert.equal(judgeStep({ canary: figures(3, 1), baseline: figures(27, 0), elapsedMs: over }, few).kind, 'pass');
    // 2% on 100 calls against 0% on 900: past the threshold, not beyond doubt.
    assert.equal(judgeStep({ canary: figures(100, 2), baseline: figures(900, 0), elapsedMs: over }, few).kind, 'pass');
    // The same rates on ten times the calls are beyond doubt.
    assert.equal(judgeStep({ canary: figures(1000, 20), baseline: figures(9000, 0), elapsedMs: 0 }, few).kind, 'fail');
  });

  it('compares with the baseline running at the same time: a shared error rate is not the canary\u2019s fault', () => {
    const verdict = judgeStep({ canary: figures(200, 10), baseline: figures(1800, 90), elapsedMs: over }, settings);
    assert.equal(verdict.kind, 'pass');
  });

  it('fails a canary whose p99 is past maxP99Ratio times the baseline, with minRequests on both', () => {
    const slow = { canary: figures(100, 0, 40), baseline: figures(900, 0, 20), elapsedMs: 1_000 };
    const verdict = judgeStep(slow, settings);
    assert.equal(verdict.kind, 'fail');
    assert.match(verdict.kind === 'fail' ? verdict.reason : '', /canary p99 40 ms is 2\.00x the baseline's 20 ms/);
    // Too few baseline requests to know its p99: not judged on latency.
    assert.equal(judgeStep({ ...slow, baseline: figures(50, 0, 20) }, settings).kind, 'wait');
    // Within the ratio.
    assert.equal(judgeStep({ ...slow, canary: figures(100, 0, 29) }, settings).kind, 'wait');
  });

  it('takes latencies below the floor as equal', () => {
    assert.equal(p99Ratio(figures(1, 0, 2), figures(1, 0, 0.3)), 1);
    assert.equal(p99Ratio(figures(1, 0, 10), figures(1, 0, 0.3)), 2);
    assert.equal(p99Ratio(figures(0, 0), figures(1, 0, 3)), null);
  });
});

describe('baselineReference', () => {
  const event = (step: number, baseline: VersionFigures): RolloutEvent => ({
    at: new Date(0),
    step,
    canary: figures(100, 0),
    baseline,
    decision: 'advanced',
    reason: '',
  });

  const at = (stepIndex: number, history: RolloutEvent[]) => ({ history, settings, stepIndex });

  it('is the baseline now while it has traffic, else its figures at the last step it had some', () => {
    const history = [event(10, figures(900, 1)), event(50, figures(400, 2))];
    assert.deepEqual(baselineReference(at(1, history), figures(5, 0)), { figures: figures(5, 0), note: null });
    const idle = baselineReference(at(1, history), figures(0, 0));
    assert.deepEqual(idle.figures, figures(400, 2));
    assert.match(idle.note ?? '', /had no traffic in this step: compared with its figures at the 50% step/);
    const at100 = baselineReference(at(2, history), figures(0, 0));
    assert.deepEqual(at100.figures, figures(400, 2));
    assert.match(at100.note ?? '', /at the 50% step/);
    assert.deepEqual(baselineReference(at(0, []), figures(0, 0)), { figures: figures(0, 0), note: null });
  });

  it("at 100% is the baseline's last step with traffic, even with a few calls of it in this step", () => {
    // Calls routed just before the alias moved to 100%, or to the baseline's version number, still count in the
    // step: a handful of them must not stand in for the baseline (0 errors in 8 calls bounds nothing).
    const history = [event(10, figures(900, 1)), event(50, figures(400, 2))];
    const stragglers = baselineReference(at(2, history), figures(8, 0));
    assert.deepEqual(stragglers.figures, figures(400, 2));
    assert.match(stragglers.note ?? '', /no share of the traffic at 100%: compared with its figures at the 50% step/);
    // So a canary that fails one call in five at 100% is rolled back, as it would be at any other step.
    const canary = figures(500, 100);
    assert.equal(judgeStep({ canary, baseline: stragglers.figures, elapsedMs: over }, settings).kind, 'fail');
    // A rollout of one step (straight to 100%) has nothing earlier: the baseline's figures in the step are all there is.
    assert.deepEqual(
      baselineReference({ history: [], settings: { ...settings, steps: [100] }, stepIndex: 0 }, figures(8, 0)),
      {
        figures: figures(8, 0),
        note: null,
      },
    );
  });
});
