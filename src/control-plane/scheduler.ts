import { isPlatformError, PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { ScheduleRecord, ScheduleStore } from '../core/ports/schedule-store.js';
import { scheduleOf } from '../core/schedule-rules.js';
import type { Schedule } from '../core/schedule-expression.js';
import type { AsyncInvocations } from '../events/async-invocations.js';
import { LeaderPass } from './leader-pass.js';

export interface SchedulerOptions {
  schedules: ScheduleStore;
  /** Where each tick's event goes: checked (the function exists), then queued. */
  asyncInvocations: Pick<AsyncInvocations, 'submit'>;
  /** Whether this process leads the control plane now: schedules fire only then. Default: always. */
  isLeader?: () => boolean;
  /** How often due schedules are looked for. Default 200 ms. */
  tickMs?: number;
  /** A tick due longer ago than this when first seen was missed (no leader ran then). Default 1 s. */
  missedAfterMs?: number;
  logger?: Logger;
  /** The clock, epoch ms. */
  now?: () => number;
}

/** Missed ticks counted at most, when a leader comes back after a long time. */
const maxMissedCounted = 10_000;

/** What one due schedule did this pass. */
type Outcome = 'fired' | 'skipped' | 'failed' | 'lost';

/**
 * Fires the schedules, on the leader: every tick it reads the active schedules that are due and, for each, submits
 * its event as an asynchronous invocation, then moves its `nextFireAt` on with a compare-and-set.
 *
 * Exactly once per tick, across leaders: the submit's idempotency key is `schedule:NAME:FIRE_TIME` (the queue
 * returns the first event for a repeated key), and only one leader's compare-and-set moves the schedule on, so two
 * leaders overlapping at a handover queue each tick once.
 *
 * A tick due more than `missedAfterMs` ago when the leader first sees it was missed while no leader ran: with
 * `missed: fire` the latest missed tick fires once, the earlier ones are dropped; with `skip` none fires. Either way
 * the log says how many. A one-time schedule that fired has no next tick (it stays, `nextFireAt` null). A tick of a
 * function that no longer exists is logged and skipped; a submit that fails otherwise (the function's queue full, a
 * backend down) is logged and the same tick is tried again on the next pass.
 */
export class Scheduler {
  readonly #options: Required<Omit<SchedulerOptions, 'logger'>> & { logger: Logger };
  readonly #pass: LeaderPass;
  /** Per schedule, the fire time whose submit failed: tried again however late, not taken for a missed tick. */
  readonly #retrying = new Map<string, number>();
  /** Schedules whose function was missing at their last tick: warned once, until one of their ticks fires. */
  readonly #orphaned = new Set<string>();

  constructor(options: SchedulerOptions) {
    this.#options = {
      isLeader: () => true,
      tickMs: 200,
      missedAfterMs: 1000,
      now: Date.now,
      ...options,
      logger: (options.logger ?? silentLogger).child({ component: 'scheduler' }),
    };
    this.#pass = new LeaderPass(() => this.#tickOnce(), {
      intervalMs: this.#options.tickMs,
      isLeader: this.#options.isLeader,
      logger: this.#options.logger,
      what: 'firing schedules',
    });
  }

  /** Fire due schedules every tick (while leading). */
  start(): void {
    this.#pass.start();
  }

  /** Stop the timer and wait for a pass under way. Idempotent. */
  stop(): Promise<void> {
    return this.#pass.stop();
  }

  /** One pass, if leading: every due schedule fired (or skipped) and moved on. Never rejects. */
  tick(): Promise<void> {
    return this.#pass.run();
  }

  async #tickOnce(): Promise<void> {
    const now = this.#options.now();
    const due = await this.#options.schedules.due(new Date(now));
    const outcomes = await Promise.allSettled(due.map((schedule) => this.#fire(schedule, now)));
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  async #fire(record: ScheduleRecord, now: number): Promise<Outcome> {
    const { logger } = this.#options;
    const expected = record.nextFireAt;
    if (expected === null || this.#pass.stopped || !this.#options.isLeader()) return 'lost';
    let schedule: Schedule;
    try {
      schedule = scheduleOf(record);
    } catch (err) {
      // Stored by an earlier release that read the expression differently: nothing to fire, ever.
      logger.error({ err, schedule: record.name }, `schedule ${record.name}: its expression no longer parses`);
      return this.#advance(record, expected, null, null, 'skipped');
    }
    let fireAt = expected.getTime();
    let fire = true;
    const retrying = this.#retrying.get(record.name) === fireAt;
    if (!retrying && now - fireAt > this.#options.missedAfterMs) {
      const { latest, count } = missedTicks(schedule, fireAt, now);
      const fields = { schedule: record.name, missed: count, from: expected.toISOString() };
      const more = count >= maxMissedCounted ? ' or more' : '';
      if (record.missed === 'fire') {
        logger.warn(
          { ...fields, firing: new Date(latest).toISOString() },
          `schedule ${record.name} missed ${count}${more} tick(s) while no leader ran: firing the latest once`,
        );
        fireAt = latest;
      } else {
        logger.warn(fields, `schedule ${record.name} missed ${count}${more} tick(s) while no leader ran: skipped`);
        fire = false;
        fireAt = latest;
      }
    }
    const next = schedule.next(new Date(fireAt));
    if (!fire) return this.#advance(record, expected, next, null, 'skipped');
    const firedAt = new Date(fireAt);
    try {
      await this.#options.asyncInvocations.submit(record.functionName, record.event, {
        idempotencyKey: `schedule:${record.name}:${firedAt.toISOString()}`,
        source: `schedule:${record.name}`,
        retries: record.retries ?? undefined,
        maxEventAgeSeconds: record.maxEventAgeSeconds ?? undefined,
      });
    } catch (err) {
      if (isPlatformError(err, 'NOT_FOUND')) {
        const fields = { schedule: record.name, functionName: record.functionName, fireAt: firedAt.toISOString() };
        const line = `schedule ${record.name}: function ${record.functionName} does not exist: tick skipped`;
        if (this.#orphaned.has(record.name)) logger.debug(fields, line);
        else logger.warn(fields, line);
        this.#orphaned.add(record.name);
        return this.#advance(record, expected, next, null, 'skipped');
      }
      if (this.#retrying.get(record.name) !== fireAt) {
        const error = PlatformError.from(err);
        logger.warn(
          { schedule: record.name, fireAt: firedAt.toISOString(), code: error.code, err },
          `schedule ${record.name}: could not queue the tick of ${firedAt.toISOString()} (${error.rawMessage}); trying again`,
        );
      }
      this.#retrying.set(record.name, fireAt);
      return 'failed';
    }
    this.#orphaned.delete(record.name);
    return this.#advance(record, expected, next, firedAt, 'fired');
  }

  async #advance(
    record: ScheduleRecord,
    expected: Date,
    next: Date | null,
    firedAt: Date | null,
    outcome: Outcome,
  ): Promise<Outcome> {
    this.#retrying.delete(record.name);
    const applied = await this.#options.schedules.advance(record.name, expected, { nextFireAt: next, firedAt });
    // Not applied: another leader moved it on (the queue kept one event for the tick), or it was paused or deleted.
    return applied ? outcome : 'lost';
  }
}

/** The ticks from `first` up to `now`: how many (at most `maxMissedCounted`), and the latest. */
function missedTicks(schedule: Schedule, first: number, now: number): { latest: number; count: number } {
  let latest = first;
  let count = 1;
  for (;;) {
    const next = schedule.next(new Date(latest));
    if (next === null || next.getTime() > now) return { latest, count };
    if (count >= maxMissedCounted) break;
    latest = next.getTime();
    count++;
  }
  // Too many to walk: look back from now in growing spans for a tick, then walk from there to the latest.
  for (let span = 1000; span < now - latest; span *= 2) {
    const near = schedule.next(new Date(now - span));
    if (near !== null && near.getTime() <= now) {
      latest = near.getTime();
      break;
    }
  }
  for (let next = schedule.next(new Date(latest)); next !== null && next.getTime() <= now;) {
    latest = next.getTime();
    next = schedule.next(next);
  }
  return { latest, count };
}
