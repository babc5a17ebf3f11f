import { silentLogger, type Logger } from '../core/logger.js';
import type { RolloutChange, TrafficStore } from '../core/ports/traffic-store.js';
import { currentStep, endRollout, type StepFigures } from '../core/rollouts.js';
import { noFigures, stepWeights } from '../core/traffic-rules.js';
import type { Rollout } from '../core/types.js';
import { baselineReference, judgeStep } from './rollout-analysis.js';
import { LeaderPass } from './leader-pass.js';

export interface RolloutDriverOptions {
  traffic: TrafficStore;
  /** Whether this process leads the control plane now: rollouts are driven only then. Default: always. */
  isLeader?: () => boolean;
  /** After the driver moved a function's traffic (a step, a promotion, a rollback): gateways must follow at once. */
  onTrafficChange?: (functionName: string) => void;
  /** How often every running rollout is judged. Default 1 s. */
  tickMs?: number;
  logger?: Logger;
  now?: () => number;
}

/** Tries per rollout and tick when a hand promote or abort (or another leader) changed it meanwhile. */
const raceAttempts = 3;

/**
 * Drives the running rollouts, on the leader: every tick it judges each one on its canary's and baseline's figures
 * since the step began (`judgeStep`), and on a verdict moves the alias through `TrafficStore.updateRollout`
 * (compare-and-set on the revision): the next step, promotion after the last one, or all traffic back to the
 * baseline when the canary fails. Everything it needs is in the store, so a new leader goes on where the last one
 * stood. A change made meanwhile by hand (promote, abort) wins the race: the driver re-reads and goes on from there.
 */
export class RolloutDriver {
  readonly #options: Required<Omit<RolloutDriverOptions, 'logger'>> & { logger: Logger };
  readonly #pass: LeaderPass;

  constructor(options: RolloutDriverOptions) {
    this.#options = {
      isLeader: () => true,
      onTrafficChange: () => {},
      tickMs: 1000,
      now: Date.now,
      ...options,
      logger: (options.logger ?? silentLogger).child({ component: 'rollouts' }),
    };
    this.#pass = new LeaderPass(() => this.#tickOnce(), {
      intervalMs: this.#options.tickMs,
      isLeader: this.#options.isLeader,
      logger: this.#options.logger,
      what: 'driving rollouts',
    });
  }

  /** Judge the running rollouts every tick (while leading). */
  start(): void {
    this.#pass.start();
  }

  /** Stop the timer and wait for a pass under way. Idempotent. */
  stop(): Promise<void> {
    return this.#pass.stop();
  }

  /** One tick, if leading: every running rollout judged and moved on. Concurrent calls share one; never rejects. */
  tick(): Promise<void> {
    return this.#pass.run();
  }

  async #tickOnce(): Promise<void> {
    const running = await this.#options.traffic.runningRollouts();
    const outcomes = await Promise.allSettled(running.map((rollout) => this.#drive(rollout)));
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  async #drive(start: Rollout): Promise<void> {
    const { traffic, logger, now } = this.#options;
    let rollout: Rollout | null = start;
    for (let attempt = 0; attempt < raceAttempts; attempt++) {
      if (rollout?.state !== 'running' || this.#pass.stopped || !this.#options.isLeader()) return;
      const change: RolloutChange | null = await this.#judge(rollout, new Date(now()));
      if (change === null) return;
      const result = await traffic.updateRollout(rollout.functionName, rollout.id, rollout.revision, change);
      if (result.applied) {
        this.#options.onTrafficChange(rollout.functionName);
        const event = change.events[0];
        logger.info(
          { functionName: rollout.functionName, rollout: rollout.id, decision: event?.decision, step: event?.step },
          `rollout of ${rollout.functionName} v${rollout.version}: ${event?.decision ?? change.state}: ${event?.reason ?? ''}`,
        );
        return;
      }
      // Changed meanwhile (promoted or aborted by hand, or by another leader): go on from how it is now.
      rollout = result.rollout;
    }
  }

  /** The change a rollout's figures call for now, or null to wait. */
  async #judge(rollout: Rollout, at: Date): Promise<RolloutChange | null> {
    const figures = await this.#options.traffic.versionFigures(rollout.functionName, rollout.stepStartedAt, [
      rollout.version,
      rollout.baseline,
    ]);
    const step: StepFigures = {
      canary: figures.get(rollout.version) ?? noFigures,
      baseline: figures.get(rollout.baseline) ?? noFigures,
    };
    const reference = baselineReference(rollout, step.baseline);
    const verdict = judgeStep(
      { canary: step.canary, baseline: reference.figures, elapsedMs: at.getTime() - rollout.stepStartedAt.getTime() },
      rollout.settings,
    );
    if (verdict.kind === 'wait') return null;
    const reason = reference.note === null ? verdict.reason : `${verdict.reason}; ${reference.note}`;
    if (verdict.kind === 'fail') return endRollout(rollout, 'rolled_back', at, step, reason);
    if (rollout.stepIndex >= rollout.settings.steps.length - 1)
      return endRollout(rollout, 'promoted', at, step, reason);
    return advance(rollout, at, step, reason);
  }
}

/** The change that moves a running rollout to its next step, whose figures count from `at`. */
function advance(rollout: Rollout, at: Date, figures: StepFigures, reason: string): RolloutChange {
  const stepIndex = rollout.stepIndex + 1;
  const percent = rollout.settings.steps[stepIndex] ?? 100;
  return {
    state: 'running',
    stepIndex,
    stepStartedAt: at,
    events: [
      {
        at,
        step: currentStep(rollout),
        canary: { ...figures.canary },
        baseline: { ...figures.baseline },
        decision: 'advanced',
        reason,
      },
    ],
    weights: stepWeights(rollout.baseline, rollout.version, percent),
  };
}
