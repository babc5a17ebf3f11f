import { validateDnsLabel } from './dns-label.js';
import { PlatformError } from './errors.js';
import type { MissedTicks, NewSchedule, ScheduleRecord } from './ports/schedule-store.js';
import { parseSchedule, type Schedule } from './schedule-expression.js';
import { validateFunctionName } from './function-config.js';

/** The largest event a schedule may carry, as JSON: 256 KiB. */
export const maxScheduleEventBytes = 256 * 1024;
/** Schedules a platform holds at most: each is work the leader does every pass, forever. */
export const maxSchedules = 1000;
/** The longest expression and time zone name stored. */
export const maxExpressionLength = 256;
export const maxTimezoneLength = 64;
/** Bounds of a schedule's retry settings (those of an asynchronous invocation). */
export const scheduleLimits = {
  retries: { min: 0, max: 2 },
  maxEventAgeSeconds: { min: 60, max: 21_600 },
} as const;

/** A schedule as the API takes it: exactly one of `cron`, `rate` and `at`. */
export interface ScheduleInput {
  name: unknown;
  functionName: unknown;
  cron?: unknown;
  rate?: unknown;
  at?: unknown;
  timezone?: unknown;
  /** Any JSON value; default `{}`. */
  event?: unknown;
  retries?: unknown;
  maxEventAgeSeconds?: unknown;
  missed?: unknown;
}

function bad(message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', message);
}

/** Returns `name` if it is a schedule name; BAD_REQUEST otherwise. */
export function validateScheduleName(name: unknown): string {
  return validateDnsLabel(name, 'schedule', 'BAD_REQUEST');
}

/**
 * Validate and default a new schedule once, at the edge: BAD_REQUEST naming the problem (no or two expressions, an
 * expression of another kind than its field, an invalid cron, rate, time or zone, a one-time schedule in the past,
 * retry settings out of range, an event over 256 KiB). `now` is its creation time: a rate's ticks count from it.
 */
export function compileScheduleInput(input: ScheduleInput, now: Date): NewSchedule {
  const name = validateScheduleName(input.name);
  const functionName = validateFunctionName(input.functionName);
  const given = (['cron', 'rate', 'at'] as const).filter((kind) => input[kind] !== undefined && input[kind] !== null);
  if (given.length !== 1) {
    throw bad(
      given.length === 0
        ? 'a schedule needs one of cron, rate or at'
        : `a schedule takes one of cron, rate or at, not ${given.join(' and ')}`,
    );
  }
  const kind = given[0]!;
  const expression = input[kind];
  if (typeof expression !== 'string') throw bad(`${kind} must be a string`);
  if (expression.length > maxExpressionLength) throw bad(`${kind} is over ${maxExpressionLength} characters`);
  const timezoneInput = input.timezone ?? 'UTC';
  if (typeof timezoneInput !== 'string' || timezoneInput.length > maxTimezoneLength) {
    throw bad(`timezone must be an IANA time zone name such as "Asia/Seoul"`);
  }
  const schedule = parseSchedule(expression, timezoneInput, { anchor: now });
  if (schedule.kind !== kind) {
    throw bad(`${kind} ${JSON.stringify(expression)} is a ${schedule.kind} expression: ${expectedForm[kind]}`);
  }
  const nextFireAt = schedule.next(now);
  if (nextFireAt === null) throw bad(`${kind} ${JSON.stringify(expression)} never fires again: that time has passed`);
  return {
    name,
    functionName,
    expression: schedule.expression,
    timezone: schedule.timeZone,
    event: eventJson(input.event),
    state: 'active',
    missed: missedTicks(input.missed),
    retries: optionalInt('retries', input.retries),
    maxEventAgeSeconds: optionalInt('maxEventAgeSeconds', input.maxEventAgeSeconds),
    nextFireAt,
    createdAt: now,
  };
}

const expectedForm = {
  cron: 'use 5 fields ("*/5 * * * *") or cron(minute hour day-of-month month day-of-week year)',
  rate: 'use "rate(N unit)" or "N unit", e.g. "rate(30 seconds)"',
  at: 'use "at(2027-01-01T09:00)" or "2027-01-01T09:00", a local time',
} as const;

function eventJson(event: unknown): string {
  const json = event === undefined ? '{}' : JSON.stringify(event);
  if (json === undefined) throw bad('event must be a JSON value');
  const bytes = Buffer.byteLength(json);
  if (bytes > maxScheduleEventBytes) {
    throw new PlatformError(
      'PAYLOAD_TOO_LARGE',
      `a schedule's event may be at most ${maxScheduleEventBytes} bytes (256 KiB) as JSON, got ${bytes}`,
    );
  }
  return json;
}

function missedTicks(missed: unknown): MissedTicks {
  if (missed === undefined || missed === null) return 'fire';
  if (missed !== 'fire' && missed !== 'skip')
    throw bad(`missed must be "fire" or "skip", got ${JSON.stringify(missed)}`);
  return missed;
}

function optionalInt(field: keyof typeof scheduleLimits, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const { min, max } = scheduleLimits[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw bad(`${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A stored schedule's expression, parsed as when it was created (a rate counts from its creation). */
export function scheduleOf(record: Pick<ScheduleRecord, 'expression' | 'timezone' | 'createdAt'>): Schedule {
  return parseSchedule(record.expression, record.timezone, { anchor: record.createdAt });
}
