import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from './errors.js';
import { compileScheduleInput, scheduleOf, type ScheduleInput } from './schedule-rules.js';

const now = new Date('2026-06-01T12:00:00.250Z');

describe('compileScheduleInput', () => {
  it('takes each kind of expression in its own field, as given, with defaults', () => {
    const cron = compileScheduleInput({ name: 'a', functionName: 'fn', cron: '*/5 * * * *' }, now);
    assert.deepEqual(cron, {
      name: 'a',
      functionName: 'fn',
      expression: '*/5 * * * *',
      timezone: 'UTC',
      event: '{}',
      state: 'active',
      missed: 'fire',
      retries: null,
      maxEventAgeSeconds: null,
      nextFireAt: new Date('2026-06-01T12:05:00.000Z'),
      createdAt: now,
    });
    const rate = compileScheduleInput({ name: 'b', functionName: 'fn', rate: '30 seconds', event: [1] }, now);
    assert.deepEqual(
      [rate.expression, rate.event, rate.nextFireAt],
      ['30 seconds', '[1]', new Date(now.getTime() + 30_000)],
    );
    const eb = compileScheduleInput(
      { name: 'c', functionName: 'fn', cron: 'cron(0 9 ? * 2 *)', timezone: 'Asia/Seoul' },
      now,
    );
    assert.deepEqual(eb.nextFireAt, new Date('2026-06-08T00:00:00.000Z')); // the next Monday, 09:00 in Seoul
    const at = compileScheduleInput(
      { name: 'd', functionName: 'fn', at: '2027-01-01T09:00', timezone: 'asia/seoul' },
      now,
    );
    assert.deepEqual([at.timezone, at.nextFireAt], ['Asia/Seoul', new Date('2027-01-01T00:00:00.000Z')]);
    // A stored schedule parses again to the same ticks (a rate from its creation).
    assert.deepEqual(scheduleOf(rate).next(now), rate.nextFireAt);
  });

  it('refuses bad input with BAD_REQUEST naming the problem', () => {
    const base = { name: 'x', functionName: 'fn' };
    const cases: [ScheduleInput, RegExp][] = [
      [base, /needs one of cron, rate or at/],
      [{ ...base, cron: '* * * * *', at: '2099-01-01T00:00' }, /not cron and at/],
      [{ ...base, cron: '1 minute' }, /cron "1 minute" is a rate expression/],
      [{ ...base, rate: '* * * * *' }, /rate "\* \* \* \* \*" is a cron expression/],
      [{ ...base, at: 'rate(1 minute)' }, /at "rate\(1 minute\)" is a rate expression/],
      [{ ...base, cron: 5 }, /cron must be a string/],
      [{ ...base, at: '2020-01-01T00:00' }, /never fires again/],
      [{ ...base, rate: '1 minute', timezone: 'Nowhere/City' }, /unknown time zone/],
      [{ ...base, rate: '1 minute', retries: 1.5 }, /retries must be an integer from 0 to 2/],
      [{ ...base, rate: '1 minute', maxEventAgeSeconds: 59 }, /maxEventAgeSeconds must be an integer from 60 to 21600/],
      [{ ...base, rate: '1 minute', missed: 'FIRE' }, /missed must be "fire" or "skip"/],
      [{ ...base, name: '1abc', rate: '1 minute' }, /invalid schedule name/],
      [{ ...base, rate: 'x'.repeat(257) }, /over 256 characters/],
    ];
    for (const [input, message] of cases) {
      assert.throws(
        () => compileScheduleInput(input, now),
        (err: unknown) => isPlatformError(err, 'BAD_REQUEST') && message.test(err.message),
        JSON.stringify(input).slice(0, 100),
      );
    }
    assert.throws(
      () => compileScheduleInput({ ...base, rate: '1 minute', event: 'x'.repeat(256 * 1024) }, now),
      (err: unknown) => isPlatformError(err, 'PAYLOAD_TOO_LARGE'),
    );
  });
});
