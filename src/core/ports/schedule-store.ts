/** Whether a schedule fires. */
export type ScheduleState = 'active' | 'paused';

/** What the leader does with a tick it missed while no leader ran: fire the latest one once, or skip them. */
export type MissedTicks = 'fire' | 'skip';

/** A schedule: a function invoked asynchronously with a fixed event whenever its expression fires. */
export interface ScheduleRecord {
  /** A DNS label, unique among schedules. */
  name: string;
  functionName: string;
  /** As given: `*\/5 * * * *`, `cron(0 9 ? * MON-FRI *)`, `rate(30 seconds)`, `30 seconds`, `at(2027-01-01T09:00)`. */
  expression: string;
  /** The IANA zone cron and one-time expressions are read in, spelled canonically. */
  timezone: string;
  /** The event each fire submits, as JSON text. */
  event: string;
  state: ScheduleState;
  missed: MissedTicks;
  /** Retries of a function error for each event (0-2); null: the function's own setting. */
  retries: number | null;
  /** Maximum event age in seconds for each event; null: the function's own setting. */
  maxEventAgeSeconds: number | null;
  /** When it fires next; null while paused and once a one-time schedule has fired. */
  nextFireAt: Date | null;
  /** The fire time of the last tick it submitted, or null. */
  lastFiredAt: Date | null;
  createdAt: Date;
}

/** A new schedule, validated (`compileScheduleInput`). */
export type NewSchedule = Omit<ScheduleRecord, 'lastFiredAt'>;

/** How a fired (or skipped) tick moves a schedule on. */
export interface ScheduleAdvance {
  /** The next fire time, or null when there is none (a one-time schedule). */
  nextFireAt: Date | null;
  /** The fire time submitted, or null when nothing was (a skipped tick): `lastFiredAt` then stays. */
  firedAt: Date | null;
}

/** Schedules `due` returns per call, at most. */
export const maxDueSchedules = 100;

/**
 * The schedules, on the metadata database. Writes are durable when the promise resolves. Schedules are independent
 * of functions: deleting a function leaves its schedules, whose ticks the leader then skips.
 *
 * The leader fires a due schedule and then moves it on with `advance`, a compare-and-set on `nextFireAt`: of two
 * leaders that overlap at a handover, or of a leader racing a pause, only one moves it on.
 */
export interface ScheduleStore {
  /** Throws CONFLICT when a schedule of that name exists. */
  create(input: NewSchedule): Promise<ScheduleRecord>;
  /** Null when there is none (or `name` is not a schedule name). */
  get(name: string): Promise<ScheduleRecord | null>;
  /** Every schedule, by name. */
  list(): Promise<ScheduleRecord[]>;
  /** Returns false if it did not exist. */
  delete(name: string): Promise<boolean>;
  /**
   * Pause or resume: sets the state and `nextFireAt` (null when pausing; the next tick after now when resuming).
   * Returns the schedule after, or null when there is none.
   */
  setState(name: string, state: ScheduleState, nextFireAt: Date | null): Promise<ScheduleRecord | null>;
  /** Active schedules with `nextFireAt` at or before `now`, the most overdue first; at most `limit` (default 100). */
  due(now: Date, limit?: number): Promise<ScheduleRecord[]>;
  /**
   * Move an active schedule on if its `nextFireAt` is still `expectedNextFireAt`; false (nothing changed) when it is
   * not (another leader moved it, or it was paused, resumed or deleted).
   */
  advance(name: string, expectedNextFireAt: Date, change: ScheduleAdvance): Promise<boolean>;
}
