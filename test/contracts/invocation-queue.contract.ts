import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InvocationAttempt, InvocationQueue } from '../../src/core/ports/invocation-queue.js';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  defaultEndedRetentionMs,
  idempotencyWindowMs,
  retentionSweepIntervalMs,
} from '../../src/core/ports/invocation-queue.js';
import { assertRejectsWith } from '../helpers/assertions.js';
import { withReopenable } from './reopenable.js';

/** How a fixture opens its queue: with this capacity per function, retention of ended events and clock (epoch ms). */
export interface InvocationQueueSettings {
  capacityPerFunction: number;
  endedRetentionMs: number;
  now: () => number;
}

/**
 * How an adapter lets ended events go after `endedRetentionMs`:
 * - `queue-clock`: it sweeps from `receive` by the queue's clock (`now`), so the contract moves that clock past the
 *   retention and receives;
 * - `own-clock`: its store expires them by its own clock (Redis key TTLs), so the contract opens the queue with a
 *   retention of a few milliseconds and waits, real time, until the event is gone.
 */
export type EndedExpiry = 'queue-clock' | 'own-clock';

/** A queue as a fixture opens it. */
export interface OpenedQueue {
  queue: InvocationQueue;
  /** Close the queue and what it runs on (a database); default `queue.close()`. */
  close?: () => Promise<void>;
}

/** What an adapter's test gives the contract. */
export interface InvocationQueueFixture extends OpenedQueue {
  /** Open the queue again over the same data once it is closed; left out where the data dies with it. */
  reopen?: () => Promise<OpenedQueue>;
  /** Remove the data. Called after the contract has closed every queue it opened. */
  cleanup: () => Promise<void>;
}

function closeOpened(opened: OpenedQueue): Promise<void> {
  return opened.close === undefined ? opened.queue.close() : opened.close();
}

const start = Date.UTC(2027, 0, 1, 9, 0, 0);

function attempt(at: number, status: InvocationAttempt['status'] = 'success', error: string | null = null) {
  return {
    startedAt: new Date(at),
    status,
    durationMs: 12.5,
    error,
    invocationId: status === 'throttled' ? null : `inv-${at}`,
  };
}

/**
 * The behaviour every `InvocationQueue` adapter must have. Time is the fixture's clock, moved by the tests: nothing
 * sleeps. Each test opens its own fixture.
 *
 * @example
 * invocationQueueContract('MemoryInvocationQueue', (settings) =>
 *   Promise.resolve({ queue: new MemoryInvocationQueue(settings), cleanup: async () => {} }),
 * );
 */
export function invocationQueueContract(
  name: string,
  open: (settings: InvocationQueueSettings) => Promise<InvocationQueueFixture>,
  endedExpiry: EndedExpiry = 'queue-clock',
): void {
  async function withQueue(
    body: (
      queue: InvocationQueue,
      clock: { now: number },
      reopen: (() => Promise<InvocationQueue>) | undefined,
      closeFirst: () => Promise<void>,
    ) => Promise<void>,
    capacityPerFunction = 100,
    endedRetentionMs = defaultEndedRetentionMs,
  ): Promise<void> {
    const clock = { now: start };
    const fixture = await open({ capacityPerFunction, endedRetentionMs, now: () => clock.now });
    await withReopenable<OpenedQueue>(fixture, fixture, closeOpened, (reopen) =>
      body(fixture.queue, clock, reopen === undefined ? undefined : async () => (await reopen()).queue, () =>
        closeOpened(fixture),
      ),
    );
  }

  describe(`InvocationQueue contract: ${name}`, () => {
    it('enqueues with a time-ordered id, delivers once while visible, and completes with the attempt recorded', async () => {
      await withQueue(async (queue, clock) => {
        const { id, duplicate } = await queue.enqueue({ functionName: 'alpha', payload: '{"n":1}' });
        assert.equal(duplicate, false);
        assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.equal((await queue.get(id))?.state, 'queued');

        const [delivery, ...rest] = await queue.receive({ max: 10, visibilityMs: 30_000 });
        assert.deepEqual(rest, []);
        assert.ok(delivery !== undefined);
        assert.equal(delivery.id, id);
        assert.equal(delivery.functionName, 'alpha');
        assert.equal(delivery.payload, '{"n":1}');
        assert.equal(delivery.deliveryCount, 1);
        assert.equal(delivery.redrivenAt, null);
        assert.equal(delivery.enqueuedAt.getTime(), start);
        assert.deepEqual(delivery.attempts, []);
        assert.equal((await queue.get(id))?.state, 'running');
        assert.deepEqual(await queue.receive({ max: 10, visibilityMs: 30_000 }), [], 'hidden while visible');

        clock.now += 1000;
        assert.equal(await queue.complete(delivery.receipt, attempt(start)), true);
        assert.equal(await queue.complete(delivery.receipt, attempt(start)), false, 'a receipt settles once');
        const done = await queue.get(id);
        assert.ok(done !== null);
        assert.equal(done.state, 'succeeded');
        assert.deepEqual(done.attempts, [attempt(start)]);
        assert.equal(done.deliveryCount, 1);
        assert.equal(done.dueAt, null, 'an ended event is due no more');
        clock.now += 3_600_000;
        assert.deepEqual(await queue.receive({ max: 10, visibilityMs: 30_000 }), []);
        assert.equal(await queue.get('0190a0a0-0000-7000-8000-000000000000'), null);
      });
    });

    it('delivers again, with a new receipt, once the visibility timeout has passed: at least once', async () => {
      await withQueue(async (queue, clock) => {
        const { id } = await queue.enqueue({ functionName: 'alpha', payload: 'x' });
        const [first] = await queue.receive({ max: 1, visibilityMs: 5000 });
        assert.ok(first !== undefined);
        clock.now += 4999;
        assert.deepEqual(await queue.receive({ max: 1, visibilityMs: 5000 }), []);
        clock.now += 1;
        assert.equal((await queue.get(id))?.state, 'queued', 'visibility expired: waiting again');
        const [second] = await queue.receive({ max: 1, visibilityMs: 5000 });
        assert.ok(second !== undefined);
        assert.equal(second.id, id);
        assert.equal(second.deliveryCount, 2);
        assert.notEqual(second.receipt, first.receipt);
        assert.equal(await queue.complete(first.receipt, attempt(start)), false, 'the stale receipt changes nothing');
        assert.equal((await queue.get(id))?.state, 'running');
        assert.equal(await queue.complete(second.receipt, attempt(clock.now)), true);
        assert.equal((await queue.get(id))?.state, 'succeeded');
      });
    });

    it('a receipt whose visibility expired cannot settle even before anyone else receives the event', async () => {
      await withQueue(async (queue, clock) => {
        const { id } = await queue.enqueue({ functionName: 'alpha', payload: 'x' });
        const [delivery] = await queue.receive({ max: 1, visibilityMs: 1000 });
        clock.now += 1000;
        assert.equal(await queue.complete(delivery!.receipt, attempt(start)), false);
        assert.equal((await queue.get(id))?.state, 'queued');
      });
    });

    it('delivers in due-time order and only what is due; receive takes at most max and can filter by function', async () => {
      await withQueue(async (queue, clock) => {
        const late = await queue.enqueue({ functionName: 'alpha', payload: 'late', delayMs: 2000 });
        const soon = await queue.enqueue({ functionName: 'alpha', payload: 'soon', notBefore: new Date(start + 1000) });
        clock.now += 1;
        const now = await queue.enqueue({ functionName: 'alpha', payload: 'now' });
        const other = await queue.enqueue({ functionName: 'bravo', payload: 'other' });
        assert.equal((await queue.get(late.id))?.state, 'queued');
        assert.equal((await queue.get(late.id))?.dueAt?.getTime(), start + 2000);

        const alphaOnly = await queue.receive({ max: 10, visibilityMs: 60_000, functionName: 'alpha' });
        assert.deepEqual(
          alphaOnly.map((d) => d.id),
          [now.id],
        );
        clock.now = start + 5000;
        const one = await queue.receive({ max: 1, visibilityMs: 60_000 });
        assert.deepEqual(
          one.map((d) => d.id),
          [other.id],
          'the earliest due first',
        );
        const rest = await queue.receive({ max: 10, visibilityMs: 60_000 });
        assert.deepEqual(
          rest.map((d) => d.id),
          [soon.id, late.id],
        );
      });
    });

    it('concurrent receivers never hold the same event at once', async () => {
      await withQueue(async (queue) => {
        const ids = new Set<string>();
        for (let i = 0; i < 24; i += 1) ids.add((await queue.enqueue({ functionName: 'alpha', payload: `${i}` })).id);
        const batches = await Promise.all(
          Array.from({ length: 4 }, () => queue.receive({ max: 10, visibilityMs: 30_000 })),
        );
        const received = batches.flat().map((d) => d.id);
        assert.equal(new Set(received).size, received.length, 'no event delivered twice');
        const rest = await queue.receive({ max: 100, visibilityMs: 30_000 });
        assert.deepEqual(new Set([...received, ...rest.map((d) => d.id)]), ids);
      });
    });

    it('concurrent enqueues with one idempotency key queue one event', async () => {
      await withQueue(async (queue) => {
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            queue.enqueue({ functionName: 'alpha', payload: `${i}`, idempotencyKey: 'same' }),
          ),
        );
        assert.equal(new Set(results.map((r) => r.id)).size, 1);
        assert.equal(results.filter((r) => !r.duplicate).length, 1);
        assert.equal((await queue.stats('alpha')).queued, 1);
      });
    });

    it('retry records the attempt and delivers again no earlier than the time given', async () => {
      await withQueue(async (queue, clock) => {
        const { id } = await queue.enqueue({ functionName: 'alpha', payload: 'x' });
        const [first] = await queue.receive({ max: 1, visibilityMs: 30_000 });
        const failed = attempt(start, 'error', 'boom');
        assert.equal(await queue.retry(first!.receipt, failed, new Date(start + 60_000)), true);
        const waiting = await queue.get(id);
        assert.equal(waiting?.state, 'queued');
        assert.equal(waiting?.dueAt?.getTime(), start + 60_000);
        assert.deepEqual(waiting?.attempts, [failed]);

        clock.now = start + 59_999;
        assert.deepEqual(await queue.receive({ max: 1, visibilityMs: 30_000 }), []);
        clock.now = start + 60_000;
        const [second] = await queue.receive({ max: 1, visibilityMs: 30_000 });
        assert.equal(second?.id, id);
        assert.equal(second.deliveryCount, 2);
        assert.deepEqual(second.attempts, [failed]);
        const ok = attempt(start + 60_000);
        assert.equal(await queue.complete(second.receipt, ok), true);
        assert.deepEqual((await queue.get(id))?.attempts, [failed, ok]);
      });
    });

    it('fail ends the event failed with its attempts', async () => {
      await withQueue(async (queue) => {
        const { id } = await queue.enqueue({ functionName: 'alpha', payload: 'x' });
        const [delivery] = await queue.receive({ max: 1, visibilityMs: 30_000 });
        const timeout = attempt(start, 'timeout', 'timed out after 3 s');
        assert.equal(await queue.fail(delivery!.receipt, timeout), true);
        const failed = await queue.get(id);
        assert.equal(failed?.state, 'failed');
        assert.deepEqual(failed?.attempts, [timeout]);
        assert.deepEqual(await queue.listDeadLetters('alpha'), []);
      });
    });

    it('refuses an enqueue beyond the capacity of the function with TOO_MANY_REQUESTS; settled events free room', async () => {
      await withQueue(async (queue) => {
        assert.equal(queue.capacityPerFunction, 2);
        await queue.enqueue({ functionName: 'alpha', payload: '1' });
        await queue.enqueue({ functionName: 'alpha', payload: '2', delayMs: 60_000 });
        await assertRejectsWith(queue.enqueue({ functionName: 'alpha', payload: '3' }), 'TOO_MANY_REQUESTS', /alpha/);
        await queue.enqueue({ functionName: 'bravo', payload: 'other function' });
        const [delivery] = await queue.receive({ max: 1, visibilityMs: 30_000, functionName: 'alpha' });
        await assertRejectsWith(
          queue.enqueue({ functionName: 'alpha', payload: '3' }),
          'TOO_MANY_REQUESTS',
          undefined,
          'running events count',
        );
        await queue.deadLetter(delivery!.receipt, null, 'test');
        await queue.enqueue({ functionName: 'alpha', payload: '3' });
        assert.equal(await queue.redrive('alpha', delivery!.id), true, 'a redrive is never refused');
        assert.equal((await queue.stats('alpha')).queued, 3);
      }, 2);
    });

    it('an idempotency key returns the first id within 24 hours, per function, and a new event after', async () => {
      await withQueue(async (queue, clock) => {
        const first = await queue.enqueue({ functionName: 'alpha', payload: 'a', idempotencyKey: 'order-1' });
        clock.now += 60_000;
        const again = await queue.enqueue({ functionName: 'alpha', payload: 'b', idempotencyKey: 'order-1' });
        assert.deepEqual(again, { id: first.id, duplicate: true });
        const [delivery, ...more] = await queue.receive({ max: 10, visibilityMs: 30_000, functionName: 'alpha' });
        assert.deepEqual(more, [], 'the duplicate queued nothing');
        assert.equal(delivery?.payload, 'a');
        await queue.complete(delivery.receipt, attempt(clock.now));
        const afterSuccess = await queue.enqueue({ functionName: 'alpha', payload: 'c', idempotencyKey: 'order-1' });
        assert.deepEqual(afterSuccess, { id: first.id, duplicate: true }, 'settled events still dedupe');
        assert.equal((await queue.get(first.id))?.idempotencyKey, 'order-1');

        const otherFunction = await queue.enqueue({ functionName: 'bravo', payload: 'a', idempotencyKey: 'order-1' });
        assert.equal(otherFunction.duplicate, false);
        assert.notEqual(otherFunction.id, first.id);

        clock.now = start + idempotencyWindowMs - 1;
        assert.equal(
          (await queue.enqueue({ functionName: 'alpha', payload: 'd', idempotencyKey: 'order-1' })).duplicate,
          true,
        );
        clock.now = start + idempotencyWindowMs;
        const fresh = await queue.enqueue({ functionName: 'alpha', payload: 'e', idempotencyKey: 'order-1' });
        assert.equal(fresh.duplicate, false);
        assert.notEqual(fresh.id, first.id);
        clock.now += 1000;
        assert.deepEqual(await queue.enqueue({ functionName: 'alpha', payload: 'f', idempotencyKey: 'order-1' }), {
          id: fresh.id,
          duplicate: true,
        });
      });
    });

    it('keeps an ended event readable for endedRetentionMs after it ended, then deletes it; never a dead letter or a waiting event', async () => {
      const retention = 3 * idempotencyWindowMs;
      const far = 10 * retention;
      // Settled at `ended`: one succeeded, one failed, one dead-lettered; one still running, one queued for later.
      const settle = async (queue: InvocationQueue, ended: number) => {
        const ids = {
          succeeded: (await queue.enqueue({ functionName: 'alpha', payload: 's', idempotencyKey: 'ok' })).id,
          failed: (await queue.enqueue({ functionName: 'alpha', payload: 'f' })).id,
          dead: (await queue.enqueue({ functionName: 'alpha', payload: 'd' })).id,
          running: (await queue.enqueue({ functionName: 'alpha', payload: 'r' })).id,
          later: (await queue.enqueue({ functionName: 'alpha', payload: 'l', delayMs: far })).id,
        };
        const deliveries = await queue.receive({ max: 10, visibilityMs: far });
        const receipt = (id: string) => deliveries.find((d) => d.id === id)!.receipt;
        assert.equal(deliveries.length, 4);
        assert.equal(await queue.complete(receipt(ids.succeeded), attempt(ended)), true);
        assert.equal(await queue.fail(receipt(ids.failed), attempt(ended, 'error', 'boom')), true);
        assert.equal(await queue.deadLetter(receipt(ids.dead), null, 'too old'), true);
        return ids;
      };
      const assertKept = async (queue: InvocationQueue, ids: Awaited<ReturnType<typeof settle>>) => {
        assert.equal((await queue.get(ids.dead))?.state, 'dead_lettered', 'a dead letter is never swept');
        assert.deepEqual(
          (await queue.listDeadLetters('alpha')).map((d) => d.id),
          [ids.dead],
        );
        assert.equal((await queue.get(ids.running))?.state, 'running');
        assert.equal((await queue.get(ids.later))?.state, 'queued');
        const { queued, running, deadLettered } = await queue.stats('alpha');
        assert.deepEqual({ queued, running, deadLettered }, { queued: 1, running: 1, deadLettered: 1 });
      };

      if (endedExpiry === 'own-clock') {
        await withQueue(
          async (queue) => {
            const ids = await settle(queue, start);
            // The store's clock runs on its own: wait until both ended events are gone, giving up after seconds.
            for (let polls = 0; ; polls += 1) {
              if ((await queue.get(ids.succeeded)) === null && (await queue.get(ids.failed)) === null) break;
              assert.ok(polls < 1000, 'ended events expire after endedRetentionMs');
              await sleep(10);
            }
            await queue.receive({ max: 10, visibilityMs: 30_000 });
            await assertKept(queue, ids);
          },
          100,
          5,
        );
        return;
      }

      await withQueue(
        async (queue, clock) => {
          const ids = await settle(queue, start);
          const ended = start;

          clock.now = ended + retention;
          await queue.receive({ max: 10, visibilityMs: 30_000 });
          assert.equal((await queue.get(ids.succeeded))?.state, 'succeeded', 'kept for the whole retention');
          assert.equal((await queue.get(ids.failed))?.state, 'failed');

          clock.now = ended + retention + retentionSweepIntervalMs + 1;
          await queue.receive({ max: 10, visibilityMs: 30_000 });
          assert.equal(await queue.get(ids.succeeded), null, 'gone after the retention');
          assert.equal(await queue.get(ids.failed), null);
          await assertKept(queue, ids);
          const again = await queue.enqueue({ functionName: 'alpha', payload: 's2', idempotencyKey: 'ok' });
          assert.equal(again.duplicate, false, 'a key past its window no longer dedupes');
        },
        100,
        retention,
      );
    });

    it('dead letters: listed newest first and bounded, redriven to be delivered again, purged per function', async () => {
      await withQueue(async (queue, clock) => {
        const ids: string[] = [];
        for (let i = 0; i < 3; i += 1) {
          ids.push((await queue.enqueue({ functionName: 'alpha', payload: `p${i}` })).id);
          clock.now += 1;
        }
        const bravo = await queue.enqueue({ functionName: 'bravo', payload: 'b' });
        const deliveries = await queue.receive({ max: 10, visibilityMs: 30_000 });
        assert.equal(deliveries.length, 4);
        for (const delivery of deliveries) {
          clock.now += 10;
          const last = attempt(clock.now, 'error', `failed ${delivery.payload}`);
          assert.equal(await queue.deadLetter(delivery.receipt, last, 'retries exhausted'), true);
        }
        const listed = await queue.listDeadLetters('alpha');
        assert.deepEqual(
          listed.map((d) => d.id),
          [...ids].reverse(),
        );
        assert.equal(listed[0]?.state, 'dead_lettered');
        assert.equal(listed[0]?.deadLetterReason, 'retries exhausted');
        assert.ok(listed[0]?.deadLetteredAt instanceof Date);
        assert.equal(listed[0]?.attempts.length, 1);
        assert.equal(listed[0]?.attempts[0]?.error, 'failed p2');
        assert.deepEqual(
          (await queue.listDeadLetters('alpha', 2)).map((d) => d.id),
          [ids[2], ids[1]],
        );
        assert.deepEqual(await queue.stats('alpha'), {
          queued: 0,
          running: 0,
          deadLettered: 3,
          oldestEnqueuedAt: null,
        });

        assert.equal(await queue.redrive('bravo', ids[0]!), false, 'not a dead letter of that function');
        assert.equal(await queue.redrive('alpha', ids[0]!), true);
        assert.equal(await queue.redrive('alpha', ids[0]!), false, 'no longer a dead letter');
        const redriven = await queue.get(ids[0]!);
        assert.equal(redriven?.state, 'queued');
        assert.equal(redriven?.deadLetterReason, null);
        assert.equal(redriven?.dueAt?.getTime(), clock.now);
        assert.equal(listed[1]?.dueAt, null);
        assert.equal(redriven?.attempts.length, 1, 'attempts kept');
        assert.equal(redriven?.redrivenAt?.getTime(), clock.now, 'its retries and age count from the redrive');
        assert.equal(listed[1]?.redrivenAt, null, 'never redriven');
        const [again] = await queue.receive({ max: 10, visibilityMs: 30_000 });
        assert.equal(again?.id, ids[0]);
        assert.equal(again?.deliveryCount, 2);
        assert.equal(again?.redrivenAt?.getTime(), clock.now, 'a delivery says when the event was redriven');

        assert.equal(await queue.purgeDeadLetters('alpha'), 2);
        assert.deepEqual(await queue.listDeadLetters('alpha'), []);
        assert.equal(await queue.get(ids[1]!), null);
        assert.equal((await queue.get(ids[0]!))?.state, 'running', 'purge leaves live events');
        assert.equal((await queue.listDeadLetters('bravo'))[0]?.id, bravo.id);
        assert.equal(await queue.purgeDeadLetters('alpha'), 0);
      });
    });

    it('stats count queued, running and dead-lettered events and the oldest waiting', async () => {
      await withQueue(async (queue, clock) => {
        assert.deepEqual(await queue.stats('alpha'), {
          queued: 0,
          running: 0,
          deadLettered: 0,
          oldestEnqueuedAt: null,
        });
        await queue.enqueue({ functionName: 'alpha', payload: '1' });
        clock.now += 5;
        await queue.enqueue({ functionName: 'alpha', payload: '2', delayMs: 10_000 });
        await queue.enqueue({ functionName: 'bravo', payload: '3' });
        await queue.receive({ max: 1, visibilityMs: 1000, functionName: 'alpha' });
        assert.deepEqual(await queue.stats('alpha'), {
          queued: 1,
          running: 1,
          deadLettered: 0,
          oldestEnqueuedAt: new Date(start),
        });
        clock.now += 1000;
        assert.equal((await queue.stats('alpha')).queued, 2, 'an expired delivery is waiting again');
      });
    });

    it('refuses bad input with BAD_REQUEST', async () => {
      await withQueue(async (queue) => {
        await assertRejectsWith(queue.enqueue({ functionName: '', payload: 'x' }), 'BAD_REQUEST', /function name/);
        await assertRejectsWith(
          queue.enqueue({ functionName: 'a', payload: 'x', delayMs: -1 }),
          'BAD_REQUEST',
          /delay/,
        );
        await assertRejectsWith(
          queue.enqueue({ functionName: 'a', payload: 'x', notBefore: new Date(Number.NaN) }),
          'BAD_REQUEST',
        );
        await assertRejectsWith(queue.enqueue({ functionName: 'a', payload: 'x', idempotencyKey: '' }), 'BAD_REQUEST');
        await assertRejectsWith(queue.receive({ max: 0, visibilityMs: 1000 }), 'BAD_REQUEST');
        await assertRejectsWith(queue.receive({ max: 1, visibilityMs: -5 }), 'BAD_REQUEST', /visibility/);
        await assertRejectsWith(queue.receive({ max: 1, visibilityMs: 1000, functionName: '' }), 'BAD_REQUEST');
        await assertRejectsWith(queue.listDeadLetters(''), 'BAD_REQUEST');
        await assertRejectsWith(queue.listDeadLetters('a', 0), 'BAD_REQUEST');
        await assertRejectsWith(queue.purgeDeadLetters(''), 'BAD_REQUEST');
        await assertRejectsWith(queue.stats(''), 'BAD_REQUEST');
        await queue.enqueue({ functionName: 'a', payload: 'x' });
        const [delivery] = await queue.receive({ max: 1, visibilityMs: 1000 });
        await assertRejectsWith(
          queue.complete(delivery!.receipt, { ...attempt(start), durationMs: -1 }),
          'BAD_REQUEST',
          /duration/,
        );
        await assertRejectsWith(queue.retry(delivery!.receipt, attempt(start), new Date(Number.NaN)), 'BAD_REQUEST');
        assert.equal((await queue.get(delivery!.id))?.state, 'running', 'a refused call changes nothing');
        assert.deepEqual((await queue.get(delivery!.id))?.attempts, []);
      });
    });

    it('fails with UNAVAILABLE once closed; close is idempotent', async () => {
      await withQueue(async (queue) => {
        await queue.close();
        await queue.close();
        await assertRejectsWith(queue.enqueue({ functionName: 'a', payload: 'x' }), 'UNAVAILABLE');
      });
    });

    // Across a reopen where the data outlives the queue; on the open queue where it dies with it.
    it('keeps queued, running, retried and dead-lettered events and idempotency keys across a reopen', async () => {
      await withQueue(async (queue, clock, reopen, closeFirst) => {
        const waiting = await queue.enqueue({ functionName: 'alpha', payload: 'waiting', idempotencyKey: 'k' });
        const running = await queue.enqueue({ functionName: 'alpha', payload: 'running' });
        const dead = await queue.enqueue({ functionName: 'alpha', payload: 'dead' });
        const deliveries = await queue.receive({ max: 10, visibilityMs: 30_000 });
        const byId = new Map(deliveries.map((d) => [d.id, d]));
        await queue.retry(byId.get(waiting.id)!.receipt, attempt(start, 'crash', 'killed'), new Date(start + 1000));
        await queue.deadLetter(byId.get(dead.id)!.receipt, null, 'event too old');
        const again = reopen === undefined ? queue : (await closeFirst(), await reopen());
        assert.deepEqual(await again.enqueue({ functionName: 'alpha', payload: 'x', idempotencyKey: 'k' }), {
          id: waiting.id,
          duplicate: true,
        });
        assert.deepEqual((await again.get(waiting.id))?.attempts, [attempt(start, 'crash', 'killed')]);
        assert.equal((await again.get(running.id))?.state, 'running');
        assert.deepEqual(
          (await again.listDeadLetters('alpha')).map((d) => [d.id, d.deadLetterReason]),
          [[dead.id, 'event too old']],
        );
        clock.now = start + 30_000;
        const redelivered = await again.receive({ max: 10, visibilityMs: 30_000 });
        assert.deepEqual(
          redelivered.map((d) => [d.id, d.deliveryCount]),
          [
            [waiting.id, 2],
            [running.id, 2],
          ],
        );
      });
    });
  });
}
