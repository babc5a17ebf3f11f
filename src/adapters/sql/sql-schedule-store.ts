import { PlatformError } from '../../core/errors.js';
import { isDnsLabel } from '../../core/dns-label.js';
import type {
  MissedTicks,
  NewSchedule,
  ScheduleAdvance,
  ScheduleRecord,
  ScheduleState,
  ScheduleStore,
} from '../../core/ports/schedule-store.js';
import { maxDueSchedules } from '../../core/ports/schedule-store.js';
import { maxSchedules } from '../../core/schedule-rules.js';
import type { ScheduleRow, SchedulesTable } from './schema.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import { dateFromDb, intFromDb, millisFromDate } from './sql-metadata-store.js';
import type { Updateable } from 'kysely';

const states: ReadonlySet<string> = new Set<ScheduleState>(['active', 'paused']);
const missedValues: ReadonlySet<string> = new Set<MissedTicks>(['fire', 'skip']);

/**
 * `ScheduleStore` over the database of a `SqlMetadataStore` (SQLite, PostgreSQL or MySQL): it shares that store's
 * connections, lifecycle (closed with it), retries and durability barrier. `advance` is one conditional update (on
 * the name, the state and the expected `next_fire_at`), so of two leaders only one moves a schedule on, on every
 * engine.
 *
 * @example
 * const metadata = await openSqliteMetadataStore(path);
 * const schedules = new SqlScheduleStore(metadata.shared());
 * const due = await schedules.due(new Date());
 */
export class SqlScheduleStore implements ScheduleStore {
  readonly #access: SqlStoreAccess;

  readonly #maxSchedules: number;

  /** `maxSchedules`: how many schedules `create` allows in all (default `maxSchedules`, 1000). */
  constructor(access: SqlStoreAccess, options: { maxSchedules?: number } = {}) {
    this.#access = access;
    this.#maxSchedules = options.maxSchedules ?? maxSchedules;
  }

  create(input: NewSchedule): Promise<ScheduleRecord> {
    return this.#access.run(`create schedule ${input.name}`, () =>
      this.#access.write(async (trx) => {
        const existing = await trx
          .selectFrom('schedules')
          .select('name')
          .where('name', '=', input.name)
          .executeTakeFirst();
        if (existing !== undefined) {
          throw new PlatformError('CONFLICT', `schedule ${input.name} exists already: delete it first, or pick a name`);
        }
        const { count } = await trx
          .selectFrom('schedules')
          .select((eb) => eb.fn.countAll().as('count'))
          .executeTakeFirstOrThrow();
        if (intFromDb(count, 'count') >= this.#maxSchedules) {
          throw new PlatformError(
            'TOO_MANY_REQUESTS',
            `there are ${this.#maxSchedules} schedules already, the most a platform holds: delete one first`,
          );
        }
        const now = Date.now();
        // A race with another create of the name fails on the primary key; the retry finds it and says CONFLICT.
        await trx
          .insertInto('schedules')
          .values({
            name: input.name,
            function_name: input.functionName,
            expression: input.expression,
            timezone: input.timezone,
            event: input.event,
            state: input.state,
            missed: input.missed,
            retries: input.retries,
            max_event_age_seconds: input.maxEventAgeSeconds,
            next_fire_at: input.nextFireAt === null ? null : millisFromDate(input.nextFireAt, 'nextFireAt'),
            last_fired_at: null,
            created_at: millisFromDate(input.createdAt, 'createdAt'),
            updated_at: now,
          })
          .execute();
        return { ...input, lastFiredAt: null };
      }),
    );
  }

  get(name: string): Promise<ScheduleRecord | null> {
    if (!isDnsLabel(name)) return Promise.resolve(null);
    return this.#access.run(`read schedule ${name}`, async () => {
      const row = await this.#access.db.selectFrom('schedules').selectAll().where('name', '=', name).executeTakeFirst();
      return row === undefined ? null : scheduleFromRow(row);
    });
  }

  list(): Promise<ScheduleRecord[]> {
    return this.#access.run('list schedules', async () => {
      const rows = await this.#access.db.selectFrom('schedules').selectAll().orderBy('name').execute();
      return rows.map(scheduleFromRow);
    });
  }

  delete(name: string): Promise<boolean> {
    if (!isDnsLabel(name)) return Promise.resolve(false);
    return this.#access.run(`delete schedule ${name}`, () =>
      this.#access.write(async (trx) => {
        const result = await trx.deleteFrom('schedules').where('name', '=', name).executeTakeFirst();
        return result.numDeletedRows > 0n;
      }),
    );
  }

  setState(name: string, state: ScheduleState, nextFireAt: Date | null): Promise<ScheduleRecord | null> {
    if (!isDnsLabel(name)) return Promise.resolve(null);
    return this.#access.run(`${state === 'paused' ? 'pause' : 'resume'} schedule ${name}`, () =>
      this.#access.write(async (trx) => {
        const change: Updateable<SchedulesTable> = {
          state,
          next_fire_at: nextFireAt === null ? null : millisFromDate(nextFireAt, 'nextFireAt'),
          updated_at: Date.now(),
        };
        const result = await trx.updateTable('schedules').set(change).where('name', '=', name).executeTakeFirst();
        if (result.numUpdatedRows === 0n) return null;
        const row = await trx.selectFrom('schedules').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
        return scheduleFromRow(row);
      }),
    );
  }

  due(now: Date, limit = maxDueSchedules): Promise<ScheduleRecord[]> {
    return this.#access.run('read the schedules due', async () => {
      const rows = await this.#access.db
        .selectFrom('schedules')
        .selectAll()
        .where('next_fire_at', '<=', millisFromDate(now, 'now'))
        .where('state', '=', 'active')
        .orderBy('next_fire_at')
        .orderBy('name')
        .limit(Math.max(1, Math.min(limit, maxDueSchedules)))
        .execute();
      return rows.map(scheduleFromRow);
    });
  }

  advance(name: string, expectedNextFireAt: Date, change: ScheduleAdvance): Promise<boolean> {
    return this.#access.run(`advance schedule ${name}`, () =>
      this.#access.write(async (trx) => {
        const values: Updateable<SchedulesTable> = {
          next_fire_at: change.nextFireAt === null ? null : millisFromDate(change.nextFireAt, 'nextFireAt'),
          updated_at: Date.now(),
        };
        if (change.firedAt !== null) values.last_fired_at = millisFromDate(change.firedAt, 'firedAt');
        const result = await trx
          .updateTable('schedules')
          .set(values)
          .where('name', '=', name)
          .where('state', '=', 'active')
          .where('next_fire_at', '=', millisFromDate(expectedNextFireAt, 'expectedNextFireAt'))
          .executeTakeFirst();
        return result.numUpdatedRows > 0n;
      }),
    );
  }
}

function scheduleFromRow(row: ScheduleRow): ScheduleRecord {
  if (!states.has(row.state) || !missedValues.has(row.missed)) {
    throw new PlatformError(
      'INTERNAL',
      `schedule ${row.name} has an unknown state ${row.state} or missed ${row.missed}`,
    );
  }
  return {
    name: row.name,
    functionName: row.function_name,
    expression: row.expression,
    timezone: row.timezone,
    event: row.event,
    state: row.state as ScheduleState,
    missed: row.missed as MissedTicks,
    retries: row.retries === null ? null : intFromDb(row.retries, 'retries'),
    maxEventAgeSeconds:
      row.max_event_age_seconds === null ? null : intFromDb(row.max_event_age_seconds, 'max_event_age_seconds'),
    nextFireAt: row.next_fire_at === null ? null : dateFromDb(row.next_fire_at, 'next_fire_at'),
    lastFiredAt: row.last_fired_at === null ? null : dateFromDb(row.last_fired_at, 'last_fired_at'),
    createdAt: dateFromDb(row.created_at, 'created_at'),
  };
}
