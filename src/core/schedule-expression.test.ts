import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import { parseSchedule } from './schedule-expression.js';

/** The next `count` fire times after `after`, as ISO strings. */
function fires(expression: string, after: string, count: number, timeZone?: string): string[] {
  const schedule = parseSchedule(expression, timeZone);
  const out: string[] = [];
  let t = new Date(after);
  for (let i = 0; i < count; i++) {
    const n = schedule.next(t);
    if (n === null) break;
    out.push(n.toISOString());
    t = n;
  }
  return out;
}

function rejects(expression: string, pattern: RegExp, timeZone?: string): void {
  assert.throws(
    () => parseSchedule(expression, timeZone),
    (err: unknown) => {
      assert.ok(isPlatformError(err, 'BAD_REQUEST'), `BAD_REQUEST for ${expression}: ${String(err)}`);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('parseSchedule: standard cron', () => {
  it('fires every five minutes, strictly after the given time', () => {
    assert.deepEqual(fires('*/5 * * * *', '2026-12-06T13:27:10Z', 3), [
      '2026-12-06T13:30:00.000Z',
      '2026-12-06T13:35:00.000Z',
      '2026-12-06T13:40:00.000Z',
    ]);
    assert.deepEqual(fires('*/5 * * * *', '2026-12-06T13:30:00Z', 1), ['2026-12-06T13:35:00.000Z']);
    assert.equal(parseSchedule('*/5 * * * *').kind, 'cron');
  });

  it('takes lists, ranges, steps over ranges, a start with a step, and names in any case', () => {
    assert.deepEqual(fires('0,30 9-10 * * *', '2026-12-06T00:00:00Z', 5), [
      '2026-12-06T09:00:00.000Z',
      '2026-12-06T09:30:00.000Z',
      '2026-12-06T10:00:00.000Z',
      '2026-12-06T10:30:00.000Z',
      '2026-12-07T09:00:00.000Z',
    ]);
    assert.deepEqual(fires('10-30/10 0 1 * *', '2026-12-06T00:00:00Z', 3), [
      '2027-01-01T00:10:00.000Z',
      '2027-01-01T00:20:00.000Z',
      '2027-01-01T00:30:00.000Z',
    ]);
    assert.deepEqual(fires('50/5 0 1 1 *', '2026-12-06T00:00:00Z', 3), [
      '2027-01-01T00:50:00.000Z',
      '2027-01-01T00:55:00.000Z',
      '2028-01-01T00:50:00.000Z',
    ]);
    // 2026-12-06 is a Sunday.
    assert.deepEqual(fires('0 12 * jan-Mar mon-FRI', '2026-12-06T00:00:00Z', 2), [
      '2027-01-01T12:00:00.000Z',
      '2027-01-04T12:00:00.000Z',
    ]);
  });

  it('takes 0 and 7 for Sunday, and a range ending at 7', () => {
    const sundays = ['2026-12-06T00:00:00.000Z', '2026-12-13T00:00:00.000Z'];
    assert.deepEqual(fires('0 0 * * 0', '2026-12-05T12:00:00Z', 2), sundays);
    assert.deepEqual(fires('0 0 * * 7', '2026-12-05T12:00:00Z', 2), sundays);
    assert.deepEqual(fires('0 0 * * SUN', '2026-12-05T12:00:00Z', 2), sundays);
    assert.deepEqual(fires('0 0 * * 6-7', '2026-12-04T12:00:00Z', 3), [
      '2026-12-05T00:00:00.000Z',
      '2026-12-06T00:00:00.000Z',
      '2026-12-12T00:00:00.000Z',
    ]);
  });

  it('matches either day field when both are restricted, both when one starts with *', () => {
    // The 13th or any Friday, December 2026: Fri 4, Fri 11, Sun 13, Fri 18.
    assert.deepEqual(fires('0 0 13 * 5', '2026-12-01T00:00:00Z', 4), [
      '2026-12-04T00:00:00.000Z',
      '2026-12-11T00:00:00.000Z',
      '2026-12-13T00:00:00.000Z',
      '2026-12-18T00:00:00.000Z',
    ]);
    // Odd days that are Fridays (Vixie: a field starting with * makes it an AND).
    assert.deepEqual(fires('0 0 */2 * 5', '2026-12-01T00:00:00Z', 2), [
      '2026-12-11T00:00:00.000Z',
      '2026-12-25T00:00:00.000Z',
    ]);
    assert.deepEqual(fires('0 0 * * 5', '2026-12-01T00:00:00Z', 1), ['2026-12-04T00:00:00.000Z']);
  });

  it('crosses year boundaries', () => {
    assert.deepEqual(fires('59 23 31 12 *', '2026-12-31T23:59:00Z', 1), ['2027-12-31T23:59:00.000Z']);
    assert.deepEqual(fires('* * * * *', '2026-12-31T23:59:30Z', 2), [
      '2027-01-01T00:00:00.000Z',
      '2027-01-01T00:01:00.000Z',
    ]);
    assert.deepEqual(fires('@yearly', '2026-06-01T00:00:00Z', 1), ['2027-01-01T00:00:00.000Z']);
    assert.deepEqual(fires('@hourly', '2026-06-01T00:00:00Z', 1), ['2026-06-01T01:00:00.000Z']);
  });

  it('fires on leap days only, across the non-leap 2100, quickly', () => {
    assert.deepEqual(fires('0 0 29 2 *', '2026-12-06T00:00:00Z', 3), [
      '2028-02-29T00:00:00.000Z',
      '2032-02-29T00:00:00.000Z',
      '2036-02-29T00:00:00.000Z',
    ]);
    assert.deepEqual(fires('0 0 29 2 *', '2096-03-01T00:00:00Z', 1), ['2104-02-29T00:00:00.000Z']);
    const schedule = parseSchedule('0 0 29 2 *', 'America/New_York');
    let t = new Date('2026-01-01T00:00:00Z');
    const started = process.hrtime.bigint();
    for (let i = 0; i < 40; i++) t = schedule.next(t)!;
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(t.toISOString(), '2188-02-29T05:00:00.000Z'); // the 40th leap day from 2028, 2100 skipped
    // Not a timing assertion on speed, a sanity bound: a minute-by-minute search over years takes minutes.
    assert.ok(ms < 5000, `40 leap-day searches took ${ms} ms`);
  });

  it('finds rare EventBridge days years ahead, and null when the years run out', () => {
    // A fifth Friday in February needs a leap year whose February starts on a Friday.
    assert.deepEqual(fires('cron(0 0 ? 2 6#5 *)', '2026-12-06T00:00:00Z', 1), ['2036-02-29T00:00:00.000Z']);
    assert.deepEqual(fires('cron(0 0 ? 2 6#5 2030-2035)', '2026-12-06T00:00:00Z', 1), []);
    // Vixie OR: the 31st never comes in February or April, but their Fridays do.
    assert.deepEqual(fires('0 0 31 2,4 5', '2026-12-06T00:00:00Z', 1), ['2027-02-05T00:00:00.000Z']);
  });

  it('crosses the year boundary in the local zone', () => {
    assert.deepEqual(fires('0 0 1 1 *', '2026-12-06T00:00:00Z', 2, 'Asia/Seoul'), [
      '2026-12-31T15:00:00.000Z',
      '2027-12-31T15:00:00.000Z',
    ]);
    assert.deepEqual(fires('0 0 1 1 *', '2026-12-06T00:00:00Z', 1, 'America/New_York'), ['2027-01-01T05:00:00.000Z']);
  });

  it('stops at the end of the supported range instead of searching forever', () => {
    assert.equal(parseSchedule('0 0 29 2 *').next(new Date('2196-03-01T00:00:00Z')), null);
  });

  it('refuses bad fields, naming the field and the value', () => {
    rejects('*/5 * * *', /needs 5 fields, got 4/);
    rejects('60 * * * *', /minute value 60 is out of range 0-59/);
    rejects('* 24 * * *', /hour value 24 is out of range 0-23/);
    rejects('* * 0 * *', /day-of-month value 0 is out of range 1-31/);
    rejects('* * 32 * *', /day-of-month value 32/);
    rejects('* * * 13 *', /month value 13 is out of range 1-12/);
    rejects('* * * * 8', /day-of-week value 8 is out of range 0-7/);
    rejects('* * * FOO *', /month value "FOO" is not a number or a name/);
    rejects('*/0 * * * *', /minute step "0"/);
    rejects('*/x * * * *', /minute step "x"/);
    rejects('5-1 * * * *', /minute range "5-1" runs backwards/);
    rejects('1,,2 * * * *', /minute field "1,,2" has an empty list item/);
    rejects('a * * * *', /minute value "a" is not a number/);
    rejects('* * ? * *', /only supported in cron\(\.\.\.\)/);
    rejects('* * L * *', /only supported in cron\(\.\.\.\)/);
    rejects('0 0 30 2 *', /never fires/);
    rejects('0 0 31 4,6,9,11 *', /never fires/);
    rejects('@fortnightly', /unknown cron macro/);
    rejects('', /empty/);
    rejects('   ', /empty/);
  });
});

describe('parseSchedule: time zones and daylight saving', () => {
  it('reads cron fields in the zone (Asia/Seoul is UTC+9, no DST)', () => {
    assert.deepEqual(fires('0 9 * * *', '2026-12-06T00:00:00Z', 2, 'Asia/Seoul'), [
      '2026-12-07T00:00:00.000Z',
      '2026-12-08T00:00:00.000Z',
    ]);
    assert.equal(parseSchedule('0 9 * * *', 'Asia/Seoul').timeZone, 'Asia/Seoul');
    assert.equal(parseSchedule('0 9 * * *').timeZone, 'UTC');
    assert.equal(parseSchedule('0 9 * * *', 'asia/seoul').timeZone, 'Asia/Seoul');
    assert.equal(parseSchedule('0 9 * * *', 'Etc/UTC').timeZone, 'UTC');
    assert.deepEqual(fires('0 9 * * *', '2027-03-13T00:00:00Z', 2, 'US/Eastern'), [
      '2027-03-13T14:00:00.000Z',
      '2027-03-14T13:00:00.000Z',
    ]);
  });

  it('follows the zone across a DST change (America/New_York)', () => {
    assert.deepEqual(fires('0 9 * * *', '2027-03-13T00:00:00Z', 2, 'America/New_York'), [
      '2027-03-13T14:00:00.000Z', // EST
      '2027-03-14T13:00:00.000Z', // EDT
    ]);
    assert.deepEqual(fires('0 9 * * *', '2027-11-06T00:00:00Z', 2, 'America/New_York'), [
      '2027-11-06T13:00:00.000Z',
      '2027-11-07T14:00:00.000Z',
    ]);
  });

  it('fires a time skipped by spring-forward once, at the first minute after the gap', () => {
    // 2027-03-14 02:00 EST -> 03:00 EDT (07:00Z).
    assert.deepEqual(fires('30 2 * * *', '2027-03-13T12:00:00Z', 3, 'America/New_York'), [
      '2027-03-14T07:00:00.000Z', // 03:00 EDT, as 02:30 does not exist
      '2027-03-15T06:30:00.000Z',
      '2027-03-16T06:30:00.000Z',
    ]);
    // Every match inside the gap collapses to one fire.
    assert.deepEqual(fires('*/20 * * * *', '2027-03-14T06:30:00Z', 4, 'America/New_York'), [
      '2027-03-14T06:40:00.000Z', // 01:40 EST
      '2027-03-14T07:00:00.000Z', // 02:00-02:40 do not exist; 03:00 EDT
      '2027-03-14T07:20:00.000Z',
      '2027-03-14T07:40:00.000Z',
    ]);
  });

  it('fires a time repeated by fall-back once, at its first occurrence', () => {
    // 2027-11-07 02:00 EDT -> 01:00 EST; 01:30 occurs at 05:30Z (EDT) and 06:30Z (EST).
    assert.deepEqual(fires('30 1 * * *', '2027-11-06T12:00:00Z', 2, 'America/New_York'), [
      '2027-11-07T05:30:00.000Z',
      '2027-11-08T06:30:00.000Z',
    ]);
    // Asked from inside the repeated hour, a fixed-hour schedule does not fire a second 01:30.
    assert.deepEqual(fires('30 1 * * *', '2027-11-07T06:10:00Z', 1, 'America/New_York'), ['2027-11-08T06:30:00.000Z']);
  });

  it('keeps a schedule that runs every hour following the clock through the repeated hour', () => {
    assert.deepEqual(fires('*/30 * * * *', '2027-11-07T04:50:00Z', 6, 'America/New_York'), [
      '2027-11-07T05:00:00.000Z', // 01:00 EDT
      '2027-11-07T05:30:00.000Z', // 01:30 EDT
      '2027-11-07T06:00:00.000Z', // 01:00 EST
      '2027-11-07T06:30:00.000Z', // 01:30 EST
      '2027-11-07T07:00:00.000Z', // 02:00 EST
      '2027-11-07T07:30:00.000Z',
    ]);
    assert.deepEqual(fires('*/30 * * * *', '2027-11-07T06:10:00Z', 2, 'America/New_York'), [
      '2027-11-07T06:30:00.000Z',
      '2027-11-07T07:00:00.000Z',
    ]);
    // A day field still applies: the repeated hour is on Sunday 2027-11-07, and this runs on Mondays only.
    assert.deepEqual(fires('0 * * * 1', '2027-11-07T05:30:00Z', 1, 'America/New_York'), ['2027-11-08T05:00:00.000Z']);
    // Lord Howe Island falls back by 30 minutes (02:00 +11 -> 01:30 +10:30) on 2027-04-04.
    assert.deepEqual(fires('*/15 * * * *', '2027-04-03T14:20:00Z', 5, 'Australia/Lord_Howe'), [
      '2027-04-03T14:30:00.000Z', // 01:30 +11
      '2027-04-03T14:45:00.000Z', // 01:45 +11
      '2027-04-03T15:00:00.000Z', // 01:30 +10:30
      '2027-04-03T15:15:00.000Z', // 01:45 +10:30
      '2027-04-03T15:30:00.000Z', // 02:00 +10:30
    ]);
  });

  it('agrees with a minute-by-minute reference of the rules around DST changes', () => {
    // Reference: at each minute the clock passes some local wall minutes; the schedule fires if one of them matches.
    // When the clock goes back it passes none until it is past the highest wall time again, except that a schedule running every hour fires on the repeated ones.
    const formats = new Map<string, Intl.DateTimeFormat>();
    const wallOf = (t: number, zone: string): number => {
      let f = formats.get(zone);
      if (f === undefined) {
        const options = {
          year: 'numeric',
          month: 'numeric',
          day: 'numeric',
          hour: 'numeric',
          minute: 'numeric',
        } as const;
        f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', ...options });
        formats.set(zone, f);
      }
      const p = Object.fromEntries(f.formatToParts(t).map((x) => [x.type, Number(x.value)])) as Record<string, number>;
      return Date.UTC(p['year']!, p['month']! - 1, p['day'], p['hour'], p['minute']);
    };
    const matches = (expr: string, w: Date): boolean => {
      // The expressions below use only *, */n and single numbers in minute and hour; any day.
      const [mi, h] = expr.split(' ') as [string, string];
      const ok = (f: string, v: number) =>
        f === '*' || (f.startsWith('*/') ? v % Number(f.slice(2)) === 0 : Number(f) === v);
      return ok(mi, w.getUTCMinutes()) && ok(h, w.getUTCHours());
    };
    const cases: [string, string, string][] = [
      ['America/New_York', '2027-03-13T12:00:00Z', '2027-03-15T12:00:00Z'],
      ['America/New_York', '2027-11-06T12:00:00Z', '2027-11-08T12:00:00Z'],
      ['Australia/Lord_Howe', '2027-04-02T12:00:00Z', '2027-04-04T12:00:00Z'],
      ['Australia/Lord_Howe', '2027-10-02T12:00:00Z', '2027-10-04T12:00:00Z'],
      ['Europe/Berlin', '2027-03-27T12:00:00Z', '2027-03-29T12:00:00Z'],
    ];
    for (const expr of ['*/7 * * * *', '30 2 * * *', '0 1 * * *', '45 1 * * *', '*/20 2 * * *', '15 * * * *']) {
      for (const [zone, from, to] of cases) {
        const start = Date.parse(from);
        const end = Date.parse(to);
        const expected: string[] = [];
        let high = wallOf(start, zone);
        for (let t = start + 60_000; t <= end; t += 60_000) {
          const now = wallOf(t, zone);
          let fire = false;
          if (now > high) for (let w = high + 60_000; w <= now; w += 60_000) fire ||= matches(expr, new Date(w));
          else fire = expr.split(' ')[1] === '*' && matches(expr, new Date(now));
          high = Math.max(high, now);
          if (fire) expected.push(new Date(t).toISOString());
        }
        const actual: string[] = [];
        const schedule = parseSchedule(expr, zone);
        for (let n = schedule.next(new Date(start)); n !== null && n.getTime() <= end; n = schedule.next(n)) {
          actual.push(n.toISOString());
        }
        assert.deepEqual(actual, expected, `${expr} in ${zone} from ${from}`);
      }
    }
  });

  it('applies the zone to one-time expressions, with the same gap rule', () => {
    assert.deepEqual(fires('at(2027-01-01T09:00:00)', '2026-12-06T00:00:00Z', 2, 'Asia/Seoul'), [
      '2027-01-01T00:00:00.000Z',
    ]);
    assert.deepEqual(fires('2027-03-14T02:30', '2026-12-06T00:00:00Z', 1, 'America/New_York'), [
      '2027-03-14T07:00:00.000Z',
    ]);
    assert.deepEqual(fires('2027-11-07T01:30', '2026-12-06T00:00:00Z', 1, 'America/New_York'), [
      '2027-11-07T05:30:00.000Z',
    ]);
  });

  it('refuses an unknown zone', () => {
    rejects('* * * * *', /unknown time zone "Mars\/Olympus"/, 'Mars/Olympus');
    rejects('at(2027-01-01T09:00:00)', /unknown time zone "EST5EDTX"/, 'EST5EDTX');
    rejects('* * * * *', /time zone is empty/, '');
  });
});

describe('parseSchedule: EventBridge cron(...)', () => {
  it('takes six fields with ? and a year, day-of-week 1-7 with 1 = Sunday', () => {
    assert.deepEqual(fires('cron(0 10 ? * 2 *)', '2026-12-06T00:00:00Z', 2), [
      '2026-12-07T10:00:00.000Z', // Monday
      '2026-12-14T10:00:00.000Z',
    ]);
    assert.deepEqual(fires('cron(15 12 * * ? *)', '2026-12-06T13:00:00Z', 1), ['2026-12-07T12:15:00.000Z']);
    assert.deepEqual(fires('cron(0 18 ? * MON-FRI *)', '2026-12-05T00:00:00Z', 1), ['2026-12-07T18:00:00.000Z']);
    assert.deepEqual(fires('cron(0/30 8 1 JAN ? 2027-2028)', '2026-12-06T00:00:00Z', 5), [
      '2027-01-01T08:00:00.000Z',
      '2027-01-01T08:30:00.000Z',
      '2028-01-01T08:00:00.000Z',
      '2028-01-01T08:30:00.000Z',
    ]);
  });

  it('supports L, LW and nW in day-of-month', () => {
    assert.deepEqual(fires('cron(0 0 L * ? *)', '2027-01-15T00:00:00Z', 3), [
      '2027-01-31T00:00:00.000Z',
      '2027-02-28T00:00:00.000Z',
      '2027-03-31T00:00:00.000Z',
    ]);
    assert.deepEqual(fires('cron(0 0 L 2 ? *)', '2027-03-01T00:00:00Z', 1), ['2028-02-29T00:00:00.000Z']);
    // Last weekday: 2027-01-31 is a Sunday, so Friday the 29th; 2027-02-28 is a Sunday, so Friday the 26th.
    assert.deepEqual(fires('cron(0 0 LW * ? *)', '2027-01-15T00:00:00Z', 2), [
      '2027-01-29T00:00:00.000Z',
      '2027-02-26T00:00:00.000Z',
    ]);
    // 15W: 2027-05-15 is a Saturday -> Friday 14th; 2027-08-15 a Sunday -> Monday 16th; 2027-06-15 a Tuesday.
    assert.deepEqual(fires('cron(0 0 15W 5,6,8 ? 2027)', '2027-01-01T00:00:00Z', 4), [
      '2027-05-14T00:00:00.000Z',
      '2027-06-15T00:00:00.000Z',
      '2027-08-16T00:00:00.000Z',
    ]);
    // 1W on a Saturday stays in the month: 2027-05-01 is a Saturday -> Monday 3rd.
    assert.deepEqual(fires('cron(0 0 1W 5 ? 2027)', '2027-01-01T00:00:00Z', 1), ['2027-05-03T00:00:00.000Z']);
  });

  it('supports L, nL and n#k in day-of-week', () => {
    // The last Friday (6L) of December 2026 and January 2027.
    assert.deepEqual(fires('cron(0 0 ? * 6L *)', '2026-12-01T00:00:00Z', 2), [
      '2026-12-25T00:00:00.000Z',
      '2027-01-29T00:00:00.000Z',
    ]);
    // The second Monday (MON#2).
    assert.deepEqual(fires('cron(0 0 ? * MON#2 *)', '2026-12-01T00:00:00Z', 2), [
      '2026-12-14T00:00:00.000Z',
      '2027-01-11T00:00:00.000Z',
    ]);
    // The fifth Monday: months with four Mondays (December 2026 to February 2027) are skipped.
    assert.deepEqual(fires('cron(0 0 ? * 2#5 *)', '2026-12-01T00:00:00Z', 1), ['2027-03-29T00:00:00.000Z']);
    // L alone: Saturday.
    assert.deepEqual(fires('cron(0 0 ? * L *)', '2026-12-06T00:00:00Z', 1), ['2026-12-12T00:00:00.000Z']);
  });

  it('returns null once the year list has passed', () => {
    const s = parseSchedule('cron(0 0 1 1 ? 2027)');
    assert.equal(s.next(new Date('2026-06-01T00:00:00Z'))?.toISOString(), '2027-01-01T00:00:00.000Z');
    assert.equal(s.next(new Date('2027-01-01T00:00:00Z')), null);
  });

  it('refuses what it does not support, naming it', () => {
    rejects('cron(0 0 * * * *)', /exactly one of day-of-month \(\*\) and day-of-week \(\*\) must be "\?"/);
    rejects('cron(0 0 ? * ? *)', /exactly one of/);
    rejects('cron(0 0 * * ?)', /needs 6 fields, got 5/);
    rejects('cron(0 0 L-3 * ? *)', /day-of-month value "L-3" is not supported/);
    rejects('cron(0 0 1,L * ? *)', /day-of-month value "1,L" is not supported/);
    rejects('cron(0 0 ? * 2#6 *)', /the number after # must be 1-5/);
    rejects('cron(0 0 ? * 8 *)', /day-of-week value 8 is out of range 1-7/);
    rejects('cron(0 0 ? * 0 *)', /day-of-week value 0 is out of range 1-7/);
    rejects('cron(0 0 ? * MON#2,FRI *)', /day-of-week value "MON#2,FRI" is not supported/);
    rejects('cron(L 0 ? * 1 *)', /minute value "L": \?, L, W and # are only allowed in the day fields/);
    rejects('cron(0 0 ? * 1 1969)', /year value 1969 is out of range 1970-2199/);
    rejects('cron(0 0 30 2 ? *)', /never fires/);
    rejects('cron 0 0 * * ? *', /malformed schedule expression/);
  });
});

describe('parseSchedule: rates', () => {
  const anchor = new Date('2026-12-06T13:00:00.000Z');

  it('fires at anchor + k * period, strictly after the given time', () => {
    const s = parseSchedule('rate(5 minutes)', 'UTC', { anchor });
    assert.equal(s.kind, 'rate');
    assert.equal(s.next(anchor)?.toISOString(), '2026-12-06T13:05:00.000Z');
    assert.equal(s.next(new Date('2026-12-06T13:07:12Z'))?.toISOString(), '2026-12-06T13:10:00.000Z');
    assert.equal(s.next(new Date('2026-12-06T13:10:00Z'))?.toISOString(), '2026-12-06T13:15:00.000Z');
    assert.equal(s.next(new Date('2026-12-06T12:00:00Z'))?.toISOString(), '2026-12-06T13:00:00.000Z');
    assert.equal(s.describe(), 'every 5 minutes');
  });

  it('takes every unit, singular for 1, down to one second, and the bare form', () => {
    const after = new Date('2026-12-06T13:00:00.500Z');
    const next = (e: string) => parseSchedule(e, undefined, { anchor }).next(after)?.toISOString();
    assert.equal(next('rate(1 second)'), '2026-12-06T13:00:01.000Z');
    assert.equal(next('rate(30 seconds)'), '2026-12-06T13:00:30.000Z');
    assert.equal(next('rate(1 minute)'), '2026-12-06T13:01:00.000Z');
    assert.equal(next('rate(2 hours)'), '2026-12-06T15:00:00.000Z');
    assert.equal(next('rate(1 day)'), '2026-12-07T13:00:00.000Z');
    assert.equal(next('rate(3 DAYS)'), '2026-12-09T13:00:00.000Z');
    assert.equal(next('30 seconds'), '2026-12-06T13:00:30.000Z');
    assert.equal(next('1 hour'), '2026-12-06T14:00:00.000Z');
    // Without an anchor, periods count from the Unix epoch.
    assert.equal(parseSchedule('rate(1 hour)').next(after)?.toISOString(), '2026-12-06T14:00:00.000Z');
  });

  it('ignores the time zone, but still validates it', () => {
    assert.equal(
      parseSchedule('rate(1 hour)', 'Asia/Kolkata', { anchor }).next(anchor)?.toISOString(),
      '2026-12-06T14:00:00.000Z',
    );
    rejects('rate(1 hour)', /unknown time zone/, 'Nowhere/Land');
  });

  it('refuses zero, negative, fractional, missing or unknown units, and the wrong number', () => {
    rejects('rate(0 minutes)', /rate amount must be at least 1/);
    rejects('0 seconds', /rate amount must be at least 1/);
    rejects('rate(-5 minutes)', /rate amount "-5" is not a positive whole number/);
    rejects('-5 minutes', /rate amount "-5" is not a positive whole number/);
    rejects('1.5 hours', /rate amount "1.5" is not a positive whole number/);
    rejects('rate(1.5 hours)', /rate amount "1.5" is not a positive whole number/);
    rejects('rate(5)', /rate "5" has no unit/);
    rejects('30', /rate "30" has no unit/);
    rejects('rate(5 weeks)', /unknown rate unit "weeks"/);
    rejects('rate(1 minutes)', /rate of 1 takes the singular unit: "1 minute"/);
    rejects('rate(5 minute)', /rate of 5 takes the plural unit: "5 minutes"/);
    rejects('rate()', /malformed rate/);
    rejects('rate(5 minutes extra)', /malformed rate/);
    rejects('rate(99999 days)', /over 10 years/);
  });
});

describe('Schedule.describe', () => {
  it('says what the schedule does', () => {
    assert.equal(parseSchedule('rate(1 second)').describe(), 'every 1 second');
    assert.equal(parseSchedule('30 seconds').describe(), 'every 30 seconds');
    assert.equal(parseSchedule(' */5 * * * * ', 'Asia/Seoul').describe(), 'cron */5 * * * * in Asia/Seoul');
    assert.equal(
      parseSchedule('at(2027-01-01T09:00:00)', 'Asia/Seoul').describe(),
      'once at 2027-01-01T09:00:00 Asia/Seoul',
    );
    assert.equal(parseSchedule(' */5 * * * * ').expression, '*/5 * * * *');
  });
});

describe('parseSchedule: one-time', () => {
  it('fires once, then never', () => {
    const s = parseSchedule('at(2027-01-01T09:00:00)');
    assert.equal(s.kind, 'at');
    assert.equal(s.next(new Date('2026-12-06T00:00:00Z'))?.toISOString(), '2027-01-01T09:00:00.000Z');
    assert.equal(s.next(new Date('2027-01-01T09:00:00Z')), null);
    assert.equal(s.next(new Date('2028-01-01T00:00:00Z')), null);
    assert.equal(parseSchedule('2027-01-01T09:00').next(new Date(0))?.toISOString(), '2027-01-01T09:00:00.000Z');
    assert.equal(parseSchedule('2028-02-29T23:59:59').next(new Date(0))?.toISOString(), '2028-02-29T23:59:59.000Z');
  });

  it('refuses malformed or impossible times, naming the part', () => {
    rejects('at(2027-01-01)', /malformed one-time expression "2027-01-01"/);
    rejects('at(2027-1-1T09:00:00)', /malformed one-time expression/);
    rejects('at(2027-01-01T09:00:00Z)', /without an offset/);
    rejects('2027-01-01T09:00+09:00', /without an offset/);
    rejects('at(2027-13-01T09:00:00)', /month 13 is not 1-12/);
    rejects('at(2027-02-29T09:00:00)', /day 29 does not exist in 2027-02/);
    rejects('at(2027-04-31T09:00:00)', /day 31 does not exist in 2027-04/);
    rejects('at(2027-01-01T24:00:00)', /hour 24 is not 0-23/);
    rejects('at(2027-01-01T09:60:00)', /minute 60 is not 0-59/);
    rejects('at(2027-01-01T09:00:60)', /second 60 is not 0-59/);
    rejects('at()', /malformed one-time expression/);
  });
});
