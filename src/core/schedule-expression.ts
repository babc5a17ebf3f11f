import { PlatformError } from './errors.js';

/**
 * Schedule expressions: when a schedule fires. Pure computation, no I/O and no timers.
 *
 * Accepted forms (`parseSchedule(expression, timeZone)`):
 * - Standard 5-field cron, `minute hour day-of-month month day-of-week`: `*`, lists `1,2`, ranges `1-5`, steps
 *   `*\/5`, `1-30/5`, `10/5` (from 10 to the field's end), month names JAN-DEC and day names SUN-SAT (any case);
 *   day-of-week 0 and 7 are Sunday. Vixie semantics: when both day fields are restricted (neither starts with `*`)
 *   a day matches if either field does; otherwise both must match. Macros `@yearly`, `@annually`, `@monthly`,
 *   `@weekly`, `@daily`, `@midnight`, `@hourly`.
 * - EventBridge `cron(minute hour day-of-month month day-of-week year)`: as above, but day-of-week is 1-7 with
 *   1 = Sunday (or SUN-SAT), year is 1970-2199, and exactly one of the day fields must be `?`. Extras, each alone in
 *   its field: day-of-month `L` (last day), `LW` (last weekday, Mon-Fri), `nW` (the weekday nearest day n, within the
 *   month); day-of-week `L` (Saturday), `nL` (the last day n of the month), `n#k` (the k-th day n of the month, k 1-5).
 *   Not supported (refused): `L-n` offsets, and these tokens inside lists or ranges.
 * - `rate(N unit)` with unit `second(s)`, `minute(s)`, `hour(s)` or `day(s)` (singular exactly when N is 1), N a
 *   positive integer; the bare form `30 seconds` means the same. A rate fires at `anchor + k * period` (k >= 0),
 *   `anchor` being an option of `parseSchedule` (the schedule's creation time; default the Unix epoch).
 * - One-time `at(2027-01-01T09:00:00)` or bare `2027-01-01T09:00[:ss]`, a local time without offset.
 *
 * A cron expression no date can match (`0 0 30 2 *`) is refused; fire times are computed up to the year 2199 (then
 * `next` returns null). The search advances field by field, so even a rare schedule (`0 0 29 2 *` across the 2100
 * gap) takes well under a millisecond.
 *
 * The time zone (an IANA name, default `UTC`) applies to cron and one-time expressions, not to rates. Cron fields
 * match the local wall-clock time. Daylight-saving rules, applied deterministically:
 * - a local time that does not exist (skipped by a spring-forward) fires once, at the first existing minute after
 *   the gap (02:30 on a New York spring-forward night fires at 03:00 EDT; all matches inside one gap fire once);
 * - a local time that occurs twice (a fall-back) fires once, at its first occurrence; except that a cron schedule
 *   whose hour field allows every hour follows the clock through the repeated hour and fires in both passes
 *   (`*\/5 * * * *` keeps firing every 5 minutes, `30 1 * * *` fires once).
 */
export interface Schedule {
  readonly kind: 'cron' | 'rate' | 'at';
  /** The expression as given (trimmed). */
  readonly expression: string;
  /** The IANA zone cron and one-time expressions are read in, spelled canonically (`asia/seoul` -> `Asia/Seoul`). */
  readonly timeZone: string;
  /** The first fire time strictly after `after`, or null when there is none (a one-time schedule that has passed). */
  next(after: Date): Date | null;
  /** A short human-readable description. */
  describe(): string;
}

export interface ParseScheduleOptions {
  /** The origin of a rate's fire times (`anchor + k * period`); default the Unix epoch. */
  anchor?: Date;
}

const minuteMs = 60_000;
const dayMs = 86_400_000;
/** Cron searches give up this many years ahead; the parser refuses expressions that never match any date. */
const maxYear = 2199;

function bad(message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', message);
}

export function parseSchedule(expression: string, timeZone = 'UTC', options: ParseScheduleOptions = {}): Schedule {
  if (typeof expression !== 'string' || expression.trim() === '') throw bad('schedule expression is empty');
  const expr = expression.trim();
  const zone = validateTimeZone(timeZone);
  let m: RegExpExecArray | null;
  if ((m = /^rate\((.*)\)$/is.exec(expr))) return rateSchedule(expr, m[1]!.trim(), zone, options.anchor);
  if (/^-?[\d.]+(\s+[a-z]+)?$/i.test(expr)) return rateSchedule(expr, expr, zone, options.anchor);
  if ((m = /^at\((.*)\)$/is.exec(expr))) return atSchedule(expr, m[1]!.trim(), zone);
  if (/^\d{4}-\d{2}-\d{2}T/.test(expr)) return atSchedule(expr, expr, zone);
  if ((m = /^cron\((.*)\)$/is.exec(expr))) return cronSchedule(expr, parseEventBridgeCron(m[1]!.trim()), zone);
  if (/^(rate|at|cron)\b/i.test(expr)) throw bad(`malformed schedule expression ${JSON.stringify(expr)}`);
  return cronSchedule(expr, parseStandardCron(expr), zone);
}

// ---------------------------------------------------------------------------------------------------------------
// Time zones

const formatters = new Map<string, Intl.DateTimeFormat>();

function validateTimeZone(timeZone: unknown): string {
  if (typeof timeZone !== 'string' || timeZone.trim() === '') throw bad('time zone is empty');
  let canonical: string;
  try {
    canonical = formatterFor(timeZone).resolvedOptions().timeZone;
  } catch {
    throw bad(`unknown time zone ${JSON.stringify(timeZone)}: use an IANA name such as "Asia/Seoul" or "UTC"`);
  }
  formatterFor(canonical);
  return canonical;
}

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The zone's offset from UTC at instant `t` (ms since epoch), in ms, to the second. */
function offsetAt(timeZone: string, t: number): number {
  if (timeZone === 'UTC') return 0;
  const whole = Math.floor(t / 1000) * 1000;
  const p: Record<string, string> = {};
  for (const part of formatterFor(timeZone).formatToParts(whole)) p[part.type] = part.value;
  let year = Number(p['year']);
  if (p['era'] === 'BC' || p['era'] === 'B') year = 1 - year;
  const wall = Date.UTC(year, Number(p['month']) - 1, Number(p['day']), Number(p['hour']), Number(p['minute']));
  return wall + Number(p['second']) * 1000 - whole;
}

/** The local wall-clock time at instant `t`, as a naive UTC timestamp. */
function wallAt(timeZone: string, t: number): number {
  return t + offsetAt(timeZone, t);
}

/**
 * The instant at which the local wall time `wall` (a naive UTC timestamp) occurs: its first occurrence when it occurs
 * twice; the end of the gap (the first existing local time after it) when it does not occur.
 */
function instantOf(timeZone: string, wall: number): number {
  if (timeZone === 'UTC') return wall;
  const before = offsetAt(timeZone, wall - dayMs);
  const after = offsetAt(timeZone, wall + dayMs);
  const candidates = [wall - before, wall - after].filter((t) => wallAt(timeZone, t) === wall).sort((a, b) => a - b);
  if (candidates.length > 0) return candidates[0]!;
  // In a gap: the transition lies in (wall - after, wall - before]; find the first instant on the new offset.
  let lo = wall - Math.max(before, after);
  let hi = wall - Math.min(before, after);
  const late = offsetAt(timeZone, hi);
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (mid <= lo) break;
    if (offsetAt(timeZone, mid) === late) hi = mid;
    else lo = mid;
  }
  return hi;
}

// ---------------------------------------------------------------------------------------------------------------
// Rates

const rateUnits: Record<string, number> = { second: 1000, minute: minuteMs, hour: 3_600_000, day: dayMs };

function rateSchedule(expression: string, body: string, timeZone: string, anchor: Date | undefined): Schedule {
  const m = /^(\S+)(?:\s+(\S+))?$/.exec(body);
  if (m === null) throw bad(`malformed rate ${JSON.stringify(body)}: use "rate(N unit)", e.g. "rate(5 minutes)"`);
  const [, amountText, unitText] = m;
  if (!/^\d+$/.test(amountText!)) {
    throw bad(`rate amount ${JSON.stringify(amountText)} is not a positive whole number`);
  }
  const amount = Number(amountText);
  if (amount === 0) throw bad('rate amount must be at least 1');
  if (unitText === undefined) {
    throw bad(`rate ${JSON.stringify(body)} has no unit: add seconds, minutes, hours or days`);
  }
  const unit = unitText.toLowerCase();
  const singular = unit.endsWith('s') ? unit.slice(0, -1) : unit;
  const unitMs = rateUnits[singular];
  if (unitMs === undefined) {
    throw bad(`unknown rate unit ${JSON.stringify(unitText)}: use seconds, minutes, hours or days`);
  }
  if (amount === 1 && unit !== singular) throw bad(`rate of 1 takes the singular unit: "1 ${singular}"`);
  if (amount !== 1 && unit === singular) throw bad(`rate of ${amount} takes the plural unit: "${amount} ${singular}s"`);
  const period = amount * unitMs;
  if (period > 3650 * dayMs) throw bad(`rate ${JSON.stringify(body)} is over 10 years`);
  const origin = anchor === undefined ? 0 : anchor.getTime();
  if (!Number.isFinite(origin)) throw bad('rate anchor is not a valid date');
  const text = `${amount} ${amount === 1 ? singular : `${singular}s`}`;
  return {
    kind: 'rate',
    expression,
    timeZone,
    next(after: Date): Date | null {
      const t = after.getTime();
      if (t < origin) return new Date(origin);
      const k = Math.floor((t - origin) / period) + 1;
      return new Date(origin + k * period);
    },
    describe: () => `every ${text}`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// One-time

function atSchedule(expression: string, body: string, timeZone: string): Schedule {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(body);
  if (m === null) {
    const hint = /(Z|[+-]\d{2}:?\d{2})$/i.test(body)
      ? ' (give the local time without an offset and set the time zone)'
      : '';
    throw bad(
      `malformed one-time expression ${JSON.stringify(body)}: use "at(YYYY-MM-DDThh:mm:ss)" or "YYYY-MM-DDThh:mm"${hint}`,
    );
  }
  const [year, month, day, hour, minute, second] = m.slice(1).map((v) => (v === undefined ? 0 : Number(v))) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12) throw bad(`one-time expression ${JSON.stringify(body)}: month ${month} is not 1-12`);
  if (day < 1 || day > daysInMonth(year, month)) {
    throw bad(`one-time expression ${JSON.stringify(body)}: day ${day} does not exist in ${year}-${pad(month)}`);
  }
  if (year < 1970) throw bad(`one-time expression ${JSON.stringify(body)}: year ${year} is before 1970`);
  if (hour > 23) throw bad(`one-time expression ${JSON.stringify(body)}: hour ${hour} is not 0-23`);
  if (minute > 59) throw bad(`one-time expression ${JSON.stringify(body)}: minute ${minute} is not 0-59`);
  if (second > 59) throw bad(`one-time expression ${JSON.stringify(body)}: second ${second} is not 0-59`);
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  const at = instantOf(timeZone, wall);
  return {
    kind: 'at',
    expression,
    timeZone,
    next: (after: Date) => (at > after.getTime() ? new Date(at) : null),
    describe: () => `once at ${body} ${timeZone}`,
  };
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

// ---------------------------------------------------------------------------------------------------------------
// Cron

interface CronSpec {
  minutes: number[];
  hours: number[];
  months: number[];
  /** null: any year. */
  years: number[] | null;
  /** Whether a date (month 1-12, weekday 0-6 with 0 = Sunday) matches the day fields. */
  dayMatches(year: number, month: number, day: number): boolean;
  /** Whether some date matches the day and month fields; used to refuse expressions that never fire. */
  possible(): boolean;
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  /** Name index to value offset (day names map SUN=0 for standard cron, SUN=1 for EventBridge). */
  nameBase?: number;
}

const monthNames = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] as const;
const dayNames = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] as const;

const minuteField: FieldSpec = { name: 'minute', min: 0, max: 59 };
const hourField: FieldSpec = { name: 'hour', min: 0, max: 23 };
const domField: FieldSpec = { name: 'day-of-month', min: 1, max: 31 };
const monthField: FieldSpec = { name: 'month', min: 1, max: 12, names: monthNames, nameBase: 1 };
const dowField: FieldSpec = { name: 'day-of-week', min: 0, max: 7, names: dayNames, nameBase: 0 };
const ebDowField: FieldSpec = { name: 'day-of-week', min: 1, max: 7, names: dayNames, nameBase: 1 };
const yearField: FieldSpec = { name: 'year', min: 1970, max: maxYear };

function parseValue(text: string, field: FieldSpec): number {
  if (/^\d+$/.test(text)) {
    const v = Number(text);
    if (v < field.min || v > field.max) {
      throw bad(`${field.name} value ${text} is out of range ${field.min}-${field.max}`);
    }
    return v;
  }
  const i = field.names?.indexOf(text.toUpperCase()) ?? -1;
  if (i >= 0) return i + (field.nameBase ?? 0);
  throw bad(`${field.name} value ${JSON.stringify(text)} is not a number${field.names ? ' or a name' : ''}`);
}

/** The sorted set of values a field (lists, ranges, steps, names) allows. */
function parseField(text: string, field: FieldSpec): number[] {
  if (text === '') throw bad(`${field.name} field is empty`);
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') throw bad(`${field.name} field ${JSON.stringify(text)} has an empty list item`);
    const m = /^([^/]+)(?:\/(.*))?$/.exec(item);
    if (m === null) throw bad(`${field.name} field item ${JSON.stringify(item)} is malformed`);
    const [, range, stepText] = m;
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) {
        throw bad(`${field.name} step ${JSON.stringify(stepText)} in ${JSON.stringify(item)} is not a positive number`);
      }
      step = Number(stepText);
    }
    let lo: number;
    let hi: number;
    if (range === '*') {
      lo = field.min;
      hi = field.name === 'day-of-week' && field.min === 0 ? 6 : field.max;
    } else {
      const parts = range!.split('-');
      if (parts.length > 2) throw bad(`${field.name} range ${JSON.stringify(range)} is malformed`);
      lo = parseValue(parts[0]!, field);
      if (parts.length === 2) {
        hi = parseValue(parts[1]!, field);
        if (hi < lo) throw bad(`${field.name} range ${JSON.stringify(range)} runs backwards`);
      } else {
        hi = stepText === undefined ? lo : field.max;
      }
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return [...values].sort((a, b) => a - b);
}

function weekday(year: number, month: number, day: number): number {
  return new Date(Date.UTC(year, month - 1, day)).getUTCDay();
}

const cronMacros: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

function splitFields(text: string, count: number, form: string): string[] {
  const fields = text.split(/\s+/).filter((f) => f !== '');
  if (fields.length !== count) {
    throw bad(`${form} needs ${count} fields, got ${fields.length} in ${JSON.stringify(text)}`);
  }
  return fields;
}

function parseStandardCron(text: string): CronSpec {
  if (text.startsWith('@')) {
    const expanded = cronMacros[text.toLowerCase()];
    if (expanded === undefined) throw bad(`unknown cron macro ${JSON.stringify(text)}`);
    text = expanded;
  }
  const [min, hour, dom, month, dow] = splitFields(
    text,
    5,
    'a cron expression (minute hour day-of-month month day-of-week)',
  );
  for (const [value, name] of [
    [min, 'minute'],
    [hour, 'hour'],
    [dom, 'day-of-month'],
    [month, 'month'],
    [dow, 'day-of-week'],
  ] as const) {
    if (/[?LW#]/i.test(value!.replace(/[a-z]{3}/gi, ''))) {
      throw bad(`${name} value ${JSON.stringify(value)}: ?, L, W and # are only supported in cron(...) expressions`);
    }
  }
  const doms = new Set(parseField(dom!, domField));
  const dows = new Set(parseField(dow!, dowField).map((d) => d % 7));
  const months = parseField(month!, monthField);
  const domStar = dom!.startsWith('*');
  const dowStar = dow!.startsWith('*');
  const spec: CronSpec = {
    minutes: parseField(min!, minuteField),
    hours: parseField(hour!, hourField),
    months,
    years: null,
    dayMatches(y, m, d) {
      const a = doms.has(d);
      const b = dows.has(weekday(y, m, d));
      return domStar || dowStar ? a && b : a || b;
    },
    possible() {
      if (!dowStar && !domStar) return true; // any weekday occurs in every month
      if (!dowStar) return dows.size > 0;
      const first = Math.min(...doms);
      return months.some((mo) => first <= daysInMonth(2000, mo));
    },
  };
  return spec;
}

function parseEventBridgeCron(text: string): CronSpec {
  const [min, hour, dom, month, dow, year] = splitFields(
    text,
    6,
    'cron(...) (minute hour day-of-month month day-of-week year)',
  );
  if ((dom === '?') === (dow === '?')) {
    throw bad(`cron(${text}): exactly one of day-of-month (${dom}) and day-of-week (${dow}) must be "?"`);
  }
  const months = parseField(month!, monthField);
  let dayMatches: CronSpec['dayMatches'];
  let possible: () => boolean = () => true;
  if (dow === '?') {
    const d = dom!.toUpperCase();
    let m: RegExpExecArray | null;
    if (d === 'L') dayMatches = (y, mo, day) => day === daysInMonth(y, mo);
    else if (d === 'LW') dayMatches = (y, mo, day) => day === lastWeekday(y, mo);
    else if ((m = /^(\d+)W$/.exec(d))) {
      const n = parseValue(m[1]!, domField);
      dayMatches = (y, mo, day) => day === nearestWeekday(y, mo, n);
      possible = () => months.some((mo) => n <= daysInMonth(2000, mo));
    } else if (/[LW#?]/.test(d.replace(/[A-Z]{3}/g, ''))) {
      throw bad(
        `day-of-month value ${JSON.stringify(dom)} is not supported: use L, LW, nW (e.g. 15W) alone, or numbers, lists, ranges and steps`,
      );
    } else {
      const doms = new Set(parseField(dom!, domField));
      dayMatches = (_y, _mo, day) => doms.has(day);
      const first = Math.min(...doms);
      possible = () => months.some((mo) => first <= daysInMonth(2000, mo));
    }
  } else {
    const d = dow!.toUpperCase();
    let m: RegExpExecArray | null;
    if (/[,\-/*]/.test(d) && /[LW#?]/.test(d.replace(/[A-Z]{3}/g, ''))) {
      throw bad(
        `day-of-week value ${JSON.stringify(dow)} is not supported: L, nL and n#k must stand alone in the field`,
      );
    }
    if (d === 'L') dayMatches = (y, mo, day) => weekday(y, mo, day) === 6;
    else if ((m = /^([^#L]+)L$/.exec(d))) {
      const wd = parseValue(m[1]!, ebDowField) - 1;
      dayMatches = (y, mo, day) => weekday(y, mo, day) === wd && day + 7 > daysInMonth(y, mo);
    } else if ((m = /^([^#]+)#(.*)$/.exec(d))) {
      const wd = parseValue(m[1]!, ebDowField) - 1;
      if (!/^[1-5]$/.test(m[2]!)) throw bad(`day-of-week ${JSON.stringify(dow)}: the number after # must be 1-5`);
      const k = Number(m[2]);
      dayMatches = (y, mo, day) => weekday(y, mo, day) === wd && Math.ceil(day / 7) === k;
    } else if (/[LW#?]/.test(d.replace(/[A-Z]{3}/g, ''))) {
      throw bad(
        `day-of-week value ${JSON.stringify(dow)} is not supported: use L, nL (e.g. 6L), n#k (e.g. MON#2) alone, or numbers, names, lists, ranges and steps`,
      );
    } else {
      const dows = new Set(parseField(dow!, ebDowField).map((v) => v - 1));
      dayMatches = (y, mo, day) => dows.has(weekday(y, mo, day));
    }
  }
  for (const [value, name] of [
    [min, 'minute'],
    [hour, 'hour'],
    [month, 'month'],
    [year, 'year'],
  ] as const) {
    if (value === '?' || /[LW#]/i.test(value!.replace(/[a-z]{3}/gi, ''))) {
      throw bad(`${name} value ${JSON.stringify(value)}: ?, L, W and # are only allowed in the day fields`);
    }
  }
  return {
    minutes: parseField(min!, minuteField),
    hours: parseField(hour!, hourField),
    months,
    years: year === '*' ? null : parseField(year!, yearField),
    dayMatches,
    possible,
  };
}

function lastWeekday(year: number, month: number): number {
  let day = daysInMonth(year, month);
  while (weekday(year, month, day) === 0 || weekday(year, month, day) === 6) day--;
  return day;
}

/** The Monday-Friday nearest day `n` of the month, never crossing into another month; -1 if `n` is past its end. */
function nearestWeekday(year: number, month: number, n: number): number {
  const last = daysInMonth(year, month);
  if (n > last) return -1;
  const wd = weekday(year, month, n);
  if (wd === 6) return n === 1 ? 3 : n - 1;
  if (wd === 0) return n === last ? n - 2 : n + 1;
  return n;
}

/** The first value in sorted `values` that is >= `v`, or undefined. */
function atLeast(values: readonly number[], v: number): number | undefined {
  for (const x of values) if (x >= v) return x;
  return undefined;
}

/** The first local wall time >= `from` (a naive UTC timestamp on a minute) that the spec matches, or null. */
function nextWallMatch(spec: CronSpec, from: number): number | null {
  const d = new Date(from);
  let year = d.getUTCFullYear();
  let month = d.getUTCMonth() + 1;
  let day = d.getUTCDate();
  let hour = d.getUTCHours();
  let minute = d.getUTCMinutes();
  // Each step advances a field to its next allowed value and resets the smaller ones, so the loop runs at most a few
  // dozen steps per matching-or-skipped month, never minute by minute.
  for (;;) {
    if (year > maxYear) return null;
    if (spec.years !== null) {
      const y = atLeast(spec.years, year);
      if (y === undefined) return null;
      if (y !== year) {
        [year, month, day, hour, minute] = [y, 1, 1, 0, 0];
      }
    }
    const mo = atLeast(spec.months, month);
    if (mo === undefined) {
      [year, month, day, hour, minute] = [year + 1, 1, 1, 0, 0];
      continue;
    }
    if (mo !== month) [month, day, hour, minute] = [mo, 1, 0, 0];
    if (day > daysInMonth(year, month)) {
      [month, day, hour, minute] = [month + 1, 1, 0, 0];
      if (month > 12) [year, month] = [year + 1, 1];
      continue;
    }
    if (!spec.dayMatches(year, month, day)) {
      [day, hour, minute] = [day + 1, 0, 0];
      continue;
    }
    const h = atLeast(spec.hours, hour);
    if (h === undefined) {
      [day, hour, minute] = [day + 1, 0, 0];
      continue;
    }
    if (h !== hour) [hour, minute] = [h, 0];
    const mi = atLeast(spec.minutes, minute);
    if (mi === undefined) {
      [hour, minute] = [hour + 1, 0];
      if (hour > 23) [day, hour] = [day + 1, 0];
      continue;
    }
    return Date.UTC(year, month - 1, day, hour, mi);
  }
}

function cronSchedule(expression: string, spec: CronSpec, timeZone: string): Schedule {
  if (!spec.possible()) throw bad(`cron expression ${JSON.stringify(expression)} never fires: no month has that day`);
  const everyHour = spec.hours.length === 24;
  return {
    kind: 'cron',
    expression,
    timeZone,
    next(after: Date): Date | null {
      const t = after.getTime();
      if (!Number.isFinite(t)) throw bad('next(): not a valid date');
      let from = Math.floor(wallAt(timeZone, t) / minuteMs) * minuteMs + minuteMs;
      let first: number | null = null;
      // Wall times map to instants monotonically (first occurrence, gap end); a few wall matches in a repeated hour
      // can map before `after`, so skip those.
      for (let guard = 0; guard < 10_000; guard++) {
        const wall = nextWallMatch(spec, from);
        if (wall === null) break;
        const at = instantOf(timeZone, wall);
        if (at > t) {
          first = at;
          break;
        }
        from = wall + minuteMs;
      }
      if (everyHour && timeZone !== 'UTC') {
        const repeat = nextInRepeatedHour(spec, timeZone, t);
        if (repeat !== null && (first === null || repeat < first)) return new Date(repeat);
      }
      return first === null ? null : new Date(first);
    },
    describe: () => `cron ${expression} in ${timeZone}`,
  };
}

/** Longest fall-back handled when a schedule that runs every hour fires again in the repeated hour. */
const maxOverlapMs = 3 * 3_600_000;

/** Whether the local wall time `wall` (a naive UTC timestamp on a minute) matches the spec. */
function wallMatches(spec: CronSpec, wall: number): boolean {
  const d = new Date(wall);
  const year = d.getUTCFullYear();
  const month = d.getUTCMonth() + 1;
  return (
    (spec.years === null || spec.years.includes(year)) &&
    spec.months.includes(month) &&
    spec.dayMatches(year, month, d.getUTCDate()) &&
    spec.hours.includes(d.getUTCHours()) &&
    spec.minutes.includes(d.getUTCMinutes())
  );
}

/**
 * For a schedule that runs every hour: the first instant after `t` inside the second pass of a fall-back's repeated
 * hour (near `t`) whose wall time matches, or null. Such a schedule follows the clock through the repeated hour.
 */
function nextInRepeatedHour(spec: CronSpec, timeZone: string, t: number): number | null {
  const early = offsetAt(timeZone, t - maxOverlapMs);
  const late = offsetAt(timeZone, t + maxOverlapMs);
  if (late >= early) return null;
  // The transition: the first instant on the later (smaller) offset.
  let lo = t - maxOverlapMs;
  let hi = t + maxOverlapMs;
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2000) * 1000;
    if (mid <= lo) break;
    if (offsetAt(timeZone, mid) === late) hi = mid;
    else lo = mid;
  }
  const end = hi + (early - late);
  for (let s = Math.max(hi, Math.floor(t / minuteMs) * minuteMs + minuteMs); s < end; s += minuteMs) {
    if (wallMatches(spec, s + late)) return s;
  }
  return null;
}
