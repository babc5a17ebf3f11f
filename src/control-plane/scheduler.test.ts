// The Scheduler with real components: SQLite schedules and metadata, the memory invocation queue behind the real
// AsyncInvocations. The clock is the test's, and the test runs each pass, so a tick is due when the test says.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MemoryInvocationQueue } from '../adapters/memory/memory-invocation-queue.js';
import type { SqlMetadataStore } from '../adapters/sql/sql-metadata-store.js';
import { SqlScheduleStore } from '../adapters/sql/sql-schedule-store.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import type { Logger } from '../core/logger.js';
import { compileScheduleInput, type ScheduleInput } from '../core/schedule-rules.js';
import { decodeAsyncEvent, type AsyncEvent } from '../events/async-event.js';
import { AsyncInvocations } from '../events/async-invocations.js';
import { functionMustExist } from '../events/function-must-exist.js';
import { newVersion } from '../../test/helpers/versions.js';
import { Scheduler } from './scheduler.js';

const second = 1000;
const minute = 60 * second;

/** A logger that keeps every line. */
function recordingLogger(lines: string[]): Logger {
  const logger: Logger = {
    debug: (_obj, msg) => void lines.push(`debug ${msg ?? ''}`),
    info: (_obj, msg) => void lines.push(`info ${msg ?? ''}`),
    warn: (_obj, msg) => void lines.push(`warn ${msg ?? ''}`),
    error: (_obj, msg) => void lines.push(`error ${msg ?? ''}`),
    child: () => logger,
  };
  return logger;
}

describe('Scheduler', () => {
  let metadata: SqlMetadataStore;
  let schedules: SqlScheduleStore;
  let queue: MemoryInvocationQueue;
  let clock: number;
  let lines: string[];
  const schedulers: Scheduler[] = [];

  beforeEach(async () => {
    clock = Date.parse('2026-12-31T23:00:00.000Z');
    lines = [];
    metadata = await openSqliteMetadataStore(':memory:');
    await metadata.deployVersion(newVersion('alpha', 'h1'));
    schedules = new SqlScheduleStore(metadata.shared());
    queue = new MemoryInvocationQueue({ now: () => clock });
  });

  afterEach(async () => {
    for (const scheduler of schedulers.splice(0)) await scheduler.stop();
    await queue.close();
    await metadata.close();
  });

  /** A scheduler on the shared store and queue that never ticks on its own. */
  const scheduler = (over: { queue?: MemoryInvocationQueue } = {}) => {
    const made = new Scheduler({
      schedules,
      asyncInvocations: new AsyncInvocations({ queue: over.queue ?? queue, check: functionMustExist(metadata) }),
      tickMs: 3_600_000,
      now: () => clock,
      logger: recordingLogger(lines),
    });
    schedulers.push(made);
    return made;
  };

  const create = (input: Partial<ScheduleInput> & { name: string }) =>
    schedules.create(compileScheduleInput({ functionName: 'alpha', ...input }, new Date(clock)));

  /** Every event queued so far (taken off the queue), with its idempotency key. */
  const taken = async (q = queue): Promise<(AsyncEvent & { key: string | null })[]> => {
    const deliveries = await q.receive({ max: 1000, visibilityMs: 3_600_000 });
    return Promise.all(
      deliveries.map(async (d) => ({
        ...decodeAsyncEvent(d.payload),
        key: (await q.get(d.id))?.idempotencyKey ?? null,
      })),
    );
  };

  it('fires each tick on time with its event and retry settings, and moves nextFireAt on', async () => {
    const start = clock;
    await create({ name: 'every-minute', rate: 'rate(1 minute)', event: { hello: 'world' }, retries: 0 });
    const s = scheduler();
    clock = start + minute - 1;
    await s.tick();
    assert.deepEqual(await taken(), []);

    clock = start + minute;
    await s.tick();
    await s.tick();
    const fireTime = new Date(start + minute).toISOString();
    assert.deepEqual(await taken(), [
      {
        eventJson: '{"hello":"world"}',
        qualifier: undefined,
        retries: 0,
        maxEventAgeSeconds: undefined,
        source: 'schedule:every-minute',
        depth: undefined,
        key: `schedule:every-minute:${fireTime}`,
      },
    ]);
    const after = await schedules.get('every-minute');
    assert.deepEqual([after?.nextFireAt?.getTime(), after?.lastFiredAt?.toISOString()], [start + 2 * minute, fireTime]);

    clock = start + 2 * minute + 300;
    await s.tick();
    assert.equal((await taken()).length, 1);
    assert.deepEqual(
      lines.filter((line) => line.includes('missed')),
      [],
    );
  });

  it('fires each tick exactly once when two schedulers share the store and queue', async () => {
    const start = clock;
    await create({ name: 'shared', rate: 'rate(1 second)' });
    const a = scheduler();
    const b = scheduler();
    const keys: string[] = [];
    for (let i = 1; i <= 20; i++) {
      clock = start + i * second + (i % 3) * 100;
      await Promise.all([a.tick(), b.tick(), a.tick()]);
      keys.push(...(await taken()).map((event) => event.key ?? ''));
    }
    assert.deepEqual(
      keys,
      Array.from({ length: 20 }, (_, i) => `schedule:shared:${new Date(start + (i + 1) * second).toISOString()}`),
    );
  });

  it('a stale leader that read a due tick another leader has fired neither fires it again nor moves it on', async () => {
    const start = clock;
    await create({ name: 'stale', rate: 'rate(1 minute)' });
    clock = start + minute;
    const [due] = await schedules.due(new Date(clock));
    assert.ok(due?.nextFireAt);
    await scheduler().tick();
    // The stale leader's view: it read the schedule before the other one moved it on.
    const staleRead = due.nextFireAt;
    assert.equal(
      await schedules.advance('stale', staleRead, { nextFireAt: new Date(clock + minute), firedAt: staleRead }),
      false,
    );
    assert.equal((await schedules.get('stale'))?.nextFireAt?.getTime(), start + 2 * minute);
    assert.equal((await taken()).length, 1);
  });

  it('after a time without a leader fires the latest missed tick once (missed=fire) or none (missed=skip), and logs how many', async () => {
    const start = clock;
    await create({ name: 'catch-up', rate: 'rate(1 minute)' });
    await create({ name: 'skipper', rate: 'rate(1 minute)', missed: 'skip' });
    clock = start + 10 * minute + 30 * second;
    const s = scheduler();
    await s.tick();
    await s.tick();
    assert.deepEqual(
      (await taken()).map((event) => event.key),
      [`schedule:catch-up:${new Date(start + 10 * minute).toISOString()}`],
    );
    for (const name of ['catch-up', 'skipper']) {
      assert.equal((await schedules.get(name))?.nextFireAt?.getTime(), start + 11 * minute, name);
    }
    assert.equal((await schedules.get('skipper'))?.lastFiredAt, null);
    assert.deepEqual(lines.filter((line) => line.includes('missed')).sort(), [
      'warn schedule catch-up missed 10 tick(s) while no leader ran: firing the latest once',
      'warn schedule skipper missed 10 tick(s) while no leader ran: skipped',
    ]);
  });

  it('counts a very long outage in bounded work and still fires only the latest tick', async () => {
    const start = clock;
    await create({ name: 'fast', rate: 'rate(1 second)' });
    clock = start + 2 * 86_400_000 + 500; // two days: 172,800 ticks
    await scheduler().tick();
    assert.deepEqual(
      (await taken()).map((event) => event.key),
      [`schedule:fast:${new Date(start + 2 * 86_400_000).toISOString()}`],
    );
    assert.equal((await schedules.get('fast'))?.nextFireAt?.getTime(), start + 2 * 86_400_000 + second);
    assert.ok(
      lines.some((line) => line.includes('missed 10000 or more tick(s)')),
      lines.join('\n'),
    );
  });

  it('fires a one-time schedule once; it stays listed without a next fire time', async () => {
    await create({ name: 'new-year', at: 'at(2027-01-01T09:00)', timezone: 'Asia/Seoul' });
    const s = scheduler();
    clock = Date.parse('2027-01-01T00:00:00.000Z'); // 09:00 in Seoul
    await s.tick();
    clock += 10 * minute;
    await s.tick();
    assert.deepEqual(
      (await taken()).map((event) => event.key),
      ['schedule:new-year:2027-01-01T00:00:00.000Z'],
    );
    const record = await schedules.get('new-year');
    assert.deepEqual([record?.nextFireAt, record?.lastFiredAt?.toISOString()], [null, '2027-01-01T00:00:00.000Z']);
    assert.deepEqual(
      (await schedules.list()).map((r) => r.name),
      ['new-year'],
    );
  });

  it('a paused schedule does not fire; resumed, it fires from the next tick after the resume', async () => {
    const start = clock;
    await create({ name: 'p', rate: 'rate(1 minute)' });
    await schedules.setState('p', 'paused', null);
    const s = scheduler();
    clock = start + 5 * minute;
    await s.tick();
    assert.deepEqual(await taken(), []);
    await schedules.setState('p', 'active', new Date(start + 6 * minute));
    await s.tick();
    assert.deepEqual(await taken(), []);
    clock = start + 6 * minute;
    await s.tick();
    assert.equal((await taken()).length, 1);
  });

  it("logs and skips the ticks of a deleted function's schedule, and goes on with the others", async () => {
    const start = clock;
    await create({ name: 'orphan', rate: 'rate(1 minute)', functionName: 'gone' });
    await create({ name: 'fine', rate: 'rate(1 minute)' });
    const s = scheduler();
    clock = start + minute;
    await s.tick();
    assert.deepEqual(
      (await taken()).map((event) => event.source),
      ['schedule:fine'],
    );
    assert.equal((await schedules.get('orphan'))?.nextFireAt?.getTime(), start + 2 * minute, 'the tick is skipped');
    clock = start + 2 * minute;
    await s.tick();
    assert.equal((await taken()).length, 1, 'fine fired again');
    const skipped = 'schedule orphan: function gone does not exist: tick skipped';
    assert.deepEqual(
      lines.filter((line) => line.endsWith(skipped)),
      [`warn ${skipped}`, `debug ${skipped}`],
      'warned once, not at every tick',
    );
  });

  it('retries a tick whose submit failed (the queue full) on the next passes, however late, as the same tick', async () => {
    const small = new MemoryInvocationQueue({ now: () => clock, capacityPerFunction: 1 });
    try {
      const start = clock;
      await create({ name: 'busy', rate: 'rate(1 minute)' });
      const s = scheduler({ queue: small });
      clock = start + minute;
      await s.tick();
      clock = start + 2 * minute;
      await s.tick(); // the queue is full: not queued, not moved on
      assert.equal((await schedules.get('busy'))?.nextFireAt?.getTime(), start + 2 * minute);
      assert.equal(lines.filter((line) => line.includes('could not queue')).length, 1);
      clock = start + 2 * minute + 30 * second;
      await s.tick(); // still full; logged once per tick
      assert.equal(lines.filter((line) => line.includes('could not queue')).length, 1);
      // Make room: the queued event runs and succeeds.
      const [first] = await small.receive({ max: 1, visibilityMs: minute });
      assert.ok(first);
      await small.complete(first.receipt, {
        startedAt: new Date(clock),
        status: 'success',
        durationMs: 1,
        error: null,
        invocationId: null,
      });
      clock = start + 2 * minute + 40 * second;
      await s.tick();
      const retried = await taken(small);
      assert.deepEqual(
        retried.map((event) => event.key),
        [`schedule:busy:${new Date(start + 2 * minute).toISOString()}`],
        'the failed tick itself, not taken for a missed one',
      );
      assert.equal((await schedules.get('busy'))?.nextFireAt?.getTime(), start + 3 * minute);
    } finally {
      await small.close();
    }
  });
});
