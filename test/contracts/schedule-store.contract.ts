import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../src/core/errors.js';
import type { NewSchedule, ScheduleStore } from '../../src/core/ports/schedule-store.js';
import { compileScheduleInput } from '../../src/core/schedule-rules.js';
import { withReopenable } from './reopenable.js';

/** The store over one fresh, migrated, empty database, and how to close it. */
export interface ScheduleStores {
  schedules: ScheduleStore;
  close: () => Promise<void>;
}

/** What an adapter's test gives the contract. */
export interface ScheduleStoreFixture extends ScheduleStores {
  /** Open the store again over the same data once closed; left out where the data dies with it. */
  reopen?: () => Promise<ScheduleStores>;
  /** Remove the data. Called after the contract has closed every store it opened. */
  cleanup: () => Promise<void>;
}

const created = new Date('2026-03-01T00:00:00.000Z');

/** A schedule as `compileScheduleInput` makes it from the API's fields, created at `created`. */
function newSchedule(name: string, fields: Record<string, unknown> = {}): NewSchedule {
  return compileScheduleInput({ name, functionName: 'alpha', rate: 'rate(1 minute)', ...fields }, created);
}

/**
 * The behaviour every `ScheduleStore` adapter must have. Each test opens its own fixture.
 *
 * @example
 * scheduleStoreContract('SQLite', async () => {
 *   const metadata = await openSqliteMetadataStore(':memory:');
 *   return { schedules: new SqlScheduleStore(metadata.shared()), close: () => metadata.close(), cleanup: async () => {} };
 * });
 */
export function scheduleStoreContract(name: string, open: () => Promise<ScheduleStoreFixture>): void {
  async function withStore(
    body: (stores: ScheduleStores, reopen: (() => Promise<ScheduleStores>) | undefined) => Promise<void>,
  ): Promise<void> {
    const fixture = await open();
    await withReopenable<ScheduleStores>(
      fixture,
      fixture,
      (stores) => stores.close(),
      (reopen) => body(fixture, reopen),
    );
  }

  describe(`ScheduleStore contract: ${name}`, () => {
    it('creates, reads, lists by name and deletes; a second create of a name is a CONFLICT', async () => {
      await withStore(async ({ schedules }) => {
        assert.deepEqual(await schedules.list(), []);
        const event = { order: 42, note: 'ünïcode ✓', nested: [1, { a: null }] };
        const beta = await schedules.create(
          newSchedule('beta', {
            rate: undefined,
            cron: '*/5 * * * *',
            timezone: 'asia/seoul',
            event,
            retries: 1,
            maxEventAgeSeconds: 600,
            missed: 'skip',
          }),
        );
        assert.deepEqual(beta, {
          name: 'beta',
          functionName: 'alpha',
          expression: '*/5 * * * *',
          timezone: 'Asia/Seoul',
          event: JSON.stringify(event),
          state: 'active',
          missed: 'skip',
          retries: 1,
          maxEventAgeSeconds: 600,
          nextFireAt: new Date('2026-03-01T00:05:00.000Z'),
          lastFiredAt: null,
          createdAt: created,
        });
        await schedules.create(newSchedule('alpha'));
        assert.deepEqual(await schedules.get('beta'), beta);
        assert.deepEqual(
          (await schedules.list()).map((s) => [s.name, s.expression, s.retries, s.maxEventAgeSeconds, s.missed]),
          [
            ['alpha', 'rate(1 minute)', null, null, 'fire'],
            ['beta', '*/5 * * * *', 1, 600, 'skip'],
          ],
        );
        await assert.rejects(schedules.create(newSchedule('beta')), (err: unknown) => isPlatformError(err, 'CONFLICT'));
        assert.equal((await schedules.get('beta'))?.expression, '*/5 * * * *', 'the first one stays');

        assert.equal(await schedules.delete('beta'), true);
        assert.equal(await schedules.delete('beta'), false);
        assert.equal(await schedules.get('beta'), null);
        assert.equal(await schedules.get('NOT A NAME'), null);
        assert.equal(await schedules.delete('NOT A NAME'), false);
        assert.deepEqual(
          (await schedules.list()).map((s) => s.name),
          ['alpha'],
        );
      });
    });

    it('one create of a name wins a race', async () => {
      await withStore(async ({ schedules }) => {
        const results = await Promise.allSettled(
          Array.from({ length: 5 }, (_, i) => schedules.create(newSchedule('race', { event: { i } }))),
        );
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        for (const result of results) {
          if (result.status === 'rejected')
            assert.ok(isPlatformError(result.reason, 'CONFLICT'), String(result.reason));
        }
      });
    });

    it('lists the active schedules due, most overdue first, up to a limit', async () => {
      await withStore(async ({ schedules }) => {
        await schedules.create(newSchedule('minute')); // 00:01
        await schedules.create(newSchedule('second', { rate: 'rate(1 second)' })); // 00:00:01
        await schedules.create(newSchedule('hour', { rate: 'rate(1 hour)' })); // 01:00
        await schedules.create(newSchedule('paused', { rate: 'rate(1 second)' }));
        await schedules.setState('paused', 'paused', null);
        const at = (iso: string) => schedules.due(new Date(iso)).then((due) => due.map((s) => s.name));
        assert.deepEqual(await at('2026-03-01T00:00:00.999Z'), []);
        assert.deepEqual(await at('2026-03-01T00:00:01.000Z'), ['second']);
        assert.deepEqual(await at('2026-03-01T00:01:00.000Z'), ['second', 'minute']);
        assert.deepEqual(await at('2026-03-02T00:00:00.000Z'), ['second', 'minute', 'hour']);
        assert.deepEqual(
          (await schedules.due(new Date('2026-03-02T00:00:00.000Z'), 2)).map((s) => s.name),
          ['second', 'minute'],
        );
      });
    });

    it('advances with a compare-and-set on nextFireAt: a stale expectation changes nothing', async () => {
      await withStore(async ({ schedules }) => {
        const { nextFireAt } = await schedules.create(newSchedule('tick'));
        assert.ok(nextFireAt !== null);
        const next = new Date(nextFireAt.getTime() + 60_000);
        // Two leaders advance the same tick: one wins.
        const results = await Promise.all([
          schedules.advance('tick', nextFireAt, { nextFireAt: next, firedAt: nextFireAt }),
          schedules.advance('tick', nextFireAt, { nextFireAt: next, firedAt: nextFireAt }),
        ]);
        assert.deepEqual(results.sort(), [false, true]);
        let tick = await schedules.get('tick');
        assert.deepEqual([tick?.nextFireAt, tick?.lastFiredAt], [next, nextFireAt]);
        // A stale leader's advance of the tick already moved on.
        assert.equal(
          await schedules.advance('tick', nextFireAt, { nextFireAt: new Date(next.getTime() + 60_000), firedAt: null }),
          false,
        );
        // A skipped tick moves nextFireAt and keeps lastFiredAt; the end of a one-time schedule is null.
        assert.equal(await schedules.advance('tick', next, { nextFireAt: null, firedAt: null }), true);
        tick = await schedules.get('tick');
        assert.deepEqual([tick?.nextFireAt, tick?.lastFiredAt], [null, nextFireAt]);
        assert.deepEqual(await schedules.due(new Date('2100-01-01T00:00:00Z')), []);
        assert.equal(await schedules.advance('missing', next, { nextFireAt: null, firedAt: null }), false);
      });
    });

    it('pauses and resumes; a paused schedule is never due and cannot be advanced', async () => {
      await withStore(async ({ schedules }) => {
        const { nextFireAt } = await schedules.create(newSchedule('p'));
        assert.ok(nextFireAt !== null);
        const paused = await schedules.setState('p', 'paused', null);
        assert.deepEqual([paused?.state, paused?.nextFireAt], ['paused', null]);
        assert.equal(await schedules.advance('p', nextFireAt, { nextFireAt: null, firedAt: nextFireAt }), false);
        assert.deepEqual(await schedules.due(new Date('2100-01-01T00:00:00Z')), []);
        const resumeAt = new Date('2026-03-05T10:00:00.000Z');
        const resumed = await schedules.setState('p', 'active', resumeAt);
        assert.deepEqual([resumed?.state, resumed?.nextFireAt, resumed?.lastFiredAt], ['active', resumeAt, null]);
        assert.deepEqual(
          (await schedules.due(resumeAt)).map((s) => s.name),
          ['p'],
        );
        assert.equal(await schedules.setState('missing', 'paused', null), null);
      });
    });

    it('keeps schedules across a reopen', async () => {
      await withStore(async ({ schedules, close }, reopen) => {
        if (reopen === undefined) return;
        const made = await schedules.create(newSchedule('kept', { at: 'at(2027-01-01T09:00)', rate: undefined }));
        await close();
        const again = await reopen();
        assert.deepEqual(await again.schedules.get('kept'), made);
        assert.deepEqual(made.nextFireAt, new Date('2027-01-01T09:00:00.000Z'));
      });
    });
  });
}
