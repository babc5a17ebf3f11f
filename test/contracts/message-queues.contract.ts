import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MessageQueues } from '../../src/core/ports/message-queue.js';
import { maxMessageBodyBytes, maxMessagesPerCall } from '../../src/core/ports/message-queue.js';
import { isPlatformError } from '../../src/core/errors.js';
import { assertRejectsWith } from '../helpers/assertions.js';
import { withReopenable } from './reopenable.js';

/** Queues as a fixture opens them. */
export interface OpenedQueues {
  queues: MessageQueues;
  /** Close the queues and what they run on (a database); default `queues.close()`. */
  close?: () => Promise<void>;
}

/** What an adapter's test gives the contract. */
export interface MessageQueuesFixture extends OpenedQueues {
  /** Open the queues again over the same data once closed; left out where the data dies with them. */
  reopen?: () => Promise<OpenedQueues>;
  /** Remove the data. Called after the contract has closed every store it opened. */
  cleanup: () => Promise<void>;
}

function closeOpened(opened: OpenedQueues): Promise<void> {
  return opened.close === undefined ? opened.queues.close() : opened.close();
}

const start = Date.UTC(2027, 0, 1, 9, 0, 0);
const visibilityMs = 30_000;

/**
 * The behaviour every `MessageQueues` adapter must have. Time is the fixture's clock (epoch ms), moved by the tests:
 * nothing sleeps. Each test opens its own fixture.
 *
 * @example
 * messageQueuesContract('MemoryMessageQueues', ({ now }) =>
 *   Promise.resolve({ queues: new MemoryMessageQueues({ now }), cleanup: async () => {} }),
 * );
 */
export function messageQueuesContract(
  name: string,
  open: (settings: { now: () => number }) => Promise<MessageQueuesFixture>,
): void {
  async function withQueues(
    body: (
      queues: MessageQueues,
      clock: { now: number },
      reopen: (() => Promise<MessageQueues>) | undefined,
      closeFirst: () => Promise<void>,
    ) => Promise<void>,
  ): Promise<void> {
    const clock = { now: start };
    const fixture = await open({ now: () => clock.now });
    await withReopenable<OpenedQueues>(fixture, fixture, closeOpened, (reopen) =>
      body(fixture.queues, clock, reopen === undefined ? undefined : async () => (await reopen()).queues, () =>
        closeOpened(fixture),
      ),
    );
  }

  describe(`MessageQueues contract: ${name}`, () => {
    it('creates queues idempotently, lists them by name and deletes them with their messages', async () => {
      await withQueues(async (queues, clock) => {
        const first = await queues.createQueue('orders');
        assert.equal(first.created, true);
        assert.equal(first.queue.name, 'orders');
        assert.equal(first.queue.createdAt.getTime(), start);
        clock.now += 1000;
        const again = await queues.createQueue('orders');
        assert.equal(again.created, false);
        assert.equal(again.queue.createdAt.getTime(), start, 'the queue as it was created');
        await queues.createQueue('Alerts_2-x');
        assert.deepEqual(
          (await queues.listQueues()).map((queue) => queue.name),
          ['Alerts_2-x', 'orders'],
        );
        assert.equal((await queues.getQueue('orders'))?.name, 'orders');
        assert.equal(await queues.getQueue('nope'), null);

        await queues.send('orders', ['a', 'b']);
        assert.equal(await queues.deleteQueue('orders'), true);
        assert.equal(await queues.deleteQueue('orders'), false);
        assert.equal(await queues.getQueue('orders'), null);
        await queues.createQueue('orders');
        assert.deepEqual(
          await queues.receive('orders', { max: 10, visibilityMs }),
          [],
          'the old messages went with it',
        );
      });
    });

    it('answers NOT_FOUND naming a queue that does not exist, and BAD_REQUEST for a bad name', async () => {
      await withQueues(async (queues) => {
        await assertRejectsWith(queues.send('ghost', ['a']), 'NOT_FOUND', /queue ghost does not exist/, 'send');
        await assertRejectsWith(queues.receive('ghost', { max: 1, visibilityMs }), 'NOT_FOUND', /ghost/, 'receive');
        await assertRejectsWith(queues.stats('ghost'), 'NOT_FOUND', /ghost/, 'stats');
        await assertRejectsWith(queues.purge('ghost'), 'NOT_FOUND', /ghost/, 'purge');
        await assertRejectsWith(queues.ack('ghost', ['r']), 'NOT_FOUND', /ghost/, 'ack');
        await assertRejectsWith(queues.release('ghost', ['r']), 'NOT_FOUND', /ghost/, 'release');
        for (const bad of ['', 'a b', 'x'.repeat(81), 'ünï', 'a/b']) {
          await assertRejectsWith(queues.createQueue(bad), 'BAD_REQUEST', /queue name/, JSON.stringify(bad));
        }
        await queues.createQueue('x'.repeat(80));
        assert.deepEqual(await queues.listQueues().then((list) => list.length), 1);
      });
    });

    it('hands each message out once while it is hidden, oldest first, with its count, times and body', async () => {
      await withQueues(async (queues, clock) => {
        await queues.createQueue('orders');
        const ids = await queues.send('orders', ['one', 'two', '{"three":3}']);
        assert.equal(ids.length, 3);
        assert.equal(new Set(ids).size, 3);
        clock.now += 10;
        const more = await queues.send('orders', ['four']);
        clock.now += 5;
        const first = await queues.receive('orders', { max: 2, visibilityMs });
        assert.deepEqual(
          first.map((message) => [message.messageId, message.body, message.receiveCount]),
          [
            [ids[0], 'one', 1],
            [ids[1], 'two', 1],
          ],
        );
        for (const message of first) {
          assert.equal(message.sentAt.getTime(), start);
          assert.equal(message.firstReceivedAt.getTime(), start + 15);
          assert.equal(typeof message.receipt, 'string');
        }
        const rest = await queues.receive('orders', { max: 10, visibilityMs });
        assert.deepEqual(
          rest.map((message) => message.messageId),
          [ids[2], more[0]],
        );
        assert.deepEqual(await queues.receive('orders', { max: 10, visibilityMs }), [], 'all hidden');
        assert.deepEqual(await queues.stats('orders'), {
          name: 'orders',
          depth: 0,
          inFlight: 4,
          oldestSentAt: new Date(start),
        });
      });
    });

    it('redelivers a message not acknowledged within its visibility timeout: count up, new receipt, old receipt dead', async () => {
      await withQueues(async (queues, clock) => {
        await queues.createQueue('orders');
        const [id] = await queues.send('orders', ['work']);
        const [first] = await queues.receive('orders', { max: 1, visibilityMs });
        assert.ok(first);
        clock.now += visibilityMs - 1;
        assert.deepEqual(await queues.receive('orders', { max: 1, visibilityMs }), [], 'still hidden');
        assert.equal((await queues.stats('orders')).inFlight, 1);
        clock.now += 1;
        assert.equal((await queues.stats('orders')).depth, 1, 'visible again');
        const [second] = await queues.receive('orders', { max: 1, visibilityMs });
        assert.ok(second);
        assert.equal(second.messageId, id);
        assert.equal(second.receiveCount, 2);
        assert.notEqual(second.receipt, first.receipt);
        assert.equal(second.firstReceivedAt.getTime(), start, 'the first receive time is kept');
        assert.equal(await queues.ack('orders', [first.receipt]), 0, 'the old receipt acknowledges nothing');
        assert.equal(await queues.release('orders', [first.receipt]), 0, 'nor releases anything');
        assert.equal(await queues.ack('orders', [second.receipt]), 1);
        assert.equal(await queues.ack('orders', [second.receipt]), 0, 'once');
        clock.now += visibilityMs * 2;
        assert.deepEqual(await queues.receive('orders', { max: 1, visibilityMs }), [], 'acknowledged: gone for good');
        assert.deepEqual(await queues.stats('orders'), { name: 'orders', depth: 0, inFlight: 0, oldestSentAt: null });
      });
    });

    it('releases messages to be received again at once, and acknowledges several receipts in one call', async () => {
      await withQueues(async (queues) => {
        await queues.createQueue('orders');
        const ids = await queues.send('orders', ['a', 'b', 'c']);
        const received = await queues.receive('orders', { max: 3, visibilityMs });
        const [a, b, c] = received;
        assert.ok(a && b && c);
        assert.equal(await queues.release('orders', [b.receipt]), 1);
        assert.equal(await queues.ack('orders', [a.receipt, c.receipt, 'unknown-receipt']), 2);
        assert.equal(await queues.ack('orders', [b.receipt]), 0, 'a released receipt is no longer current');
        const again = await queues.receive('orders', { max: 3, visibilityMs });
        assert.deepEqual(
          again.map((message) => [message.messageId, message.receiveCount]),
          [[ids[1], 2]],
        );
        assert.equal(await queues.ack('orders', []), 0);
      });
    });

    it('never hands one message to two receivers at once', async () => {
      await withQueues(async (queues) => {
        await queues.createQueue('orders');
        const bodies = Array.from({ length: 60 }, (_, i) => `m${i}`);
        const ids = await queues.send('orders', bodies);
        const batches = await Promise.all(
          Array.from({ length: 6 }, () => queues.receive('orders', { max: 15, visibilityMs })),
        );
        const got = batches.flat().map((message) => message.messageId);
        assert.equal(new Set(got).size, got.length, 'no message twice');
        let rest = await queues.receive('orders', { max: 100, visibilityMs });
        const all = [...got, ...rest.map((message) => message.messageId)];
        rest = await queues.receive('orders', { max: 100, visibilityMs });
        assert.deepEqual(rest, []);
        assert.deepEqual([...all].sort(), [...ids].sort(), 'every message exactly once');
      });
    });

    it('purges every message, in flight or not, and counts them', async () => {
      await withQueues(async (queues) => {
        await queues.createQueue('orders');
        await queues.createQueue('other');
        await queues.send('orders', ['a', 'b', 'c']);
        await queues.send('other', ['keep']);
        const [received] = await queues.receive('orders', { max: 1, visibilityMs });
        assert.ok(received);
        assert.equal(await queues.purge('orders'), 3);
        assert.equal(await queues.purge('orders'), 0);
        assert.equal(await queues.ack('orders', [received.receipt]), 0);
        assert.deepEqual(await queues.stats('orders'), { name: 'orders', depth: 0, inFlight: 0, oldestSentAt: null });
        assert.equal((await queues.stats('other')).depth, 1, 'other queues keep theirs');
      });
    });

    it("lists every queue's figures by name", async () => {
      await withQueues(async (queues, clock) => {
        await queues.createQueue('b-queue');
        await queues.createQueue('a-queue');
        await queues.send('b-queue', ['1', '2']);
        clock.now += 1000;
        await queues.send('b-queue', ['3']);
        await queues.receive('b-queue', { max: 1, visibilityMs });
        assert.deepEqual(await queues.listStats(), [
          { name: 'a-queue', depth: 0, inFlight: 0, oldestSentAt: null },
          { name: 'b-queue', depth: 2, inFlight: 1, oldestSentAt: new Date(start) },
        ]);
      });
    });

    it('refuses a bad batch whole, naming the message, and sends nothing of it', async () => {
      await withQueues(async (queues) => {
        await queues.createQueue('orders');
        await assertRejectsWith(queues.send('orders', []), 'BAD_REQUEST', /1 to 100 messages/);
        await assertRejectsWith(
          queues.send(
            'orders',
            Array.from({ length: maxMessagesPerCall + 1 }, () => 'x'),
          ),
          'BAD_REQUEST',
          /1 to 100 messages at a time, got 101/,
        );
        await assertRejectsWith(
          queues.send('orders', ['ok', 42 as unknown as string]),
          'BAD_REQUEST',
          /message 1: the body must be a string/,
        );
        await assert.rejects(queues.send('orders', ['ok', 'ok', 'é'.repeat(maxMessageBodyBytes / 2 + 1)]), (err) => {
          assert.ok(isPlatformError(err, 'PAYLOAD_TOO_LARGE'), String(err));
          assert.match(err.message, /message 2: the body is 262146 bytes/);
          assert.equal(err.details['messageIndex'], 2);
          return true;
        });
        await assertRejectsWith(queues.send('orders', ['ok', 'nul\u0000']), 'BAD_REQUEST', /message 1: .*U\+0000/);
        await assertRejectsWith(queues.send('orders', ['lone \uD800']), 'BAD_REQUEST', /message 0: .*U\+D800/);
        assert.deepEqual(await queues.stats('orders'), { name: 'orders', depth: 0, inFlight: 0, oldestSentAt: null });

        // The limits themselves are fine: 100 messages, a body of exactly 256 KiB, and all of Unicode.
        const big = 'é'.repeat(maxMessageBodyBytes / 2);
        const fancy = 'tab\tline\nemoji 😀 漢字 \uFFFD';
        await queues.send('orders', [big, fancy, '', ...Array.from({ length: maxMessagesPerCall - 3 }, () => 'x')]);
        const received = await queues.receive('orders', { max: 3, visibilityMs });
        assert.deepEqual(
          received.map((message) => message.body),
          [big, fancy, ''],
        );
        assert.equal((await queues.stats('orders')).depth, maxMessagesPerCall - 3);
      });
    });

    it('refuses receive options out of range', async () => {
      await withQueues(async (queues) => {
        await queues.createQueue('orders');
        for (const max of [0, 101, 1.5]) {
          await assertRejectsWith(queues.receive('orders', { max, visibilityMs }), 'BAD_REQUEST', /1 to 100/);
        }
        for (const ms of [0, -1, Number.NaN]) {
          await assertRejectsWith(queues.receive('orders', { max: 1, visibilityMs: ms }), 'BAD_REQUEST', /visibility/);
        }
      });
    });

    it('keeps messages, their receive counts and in-flight state across a reopen', async (t) => {
      await withQueues(async (queues, clock, reopen, closeFirst) => {
        if (reopen === undefined) {
          t.skip('the data dies with the queues');
          return;
        }
        await queues.createQueue('orders');
        const ids = await queues.send('orders', ['a', 'b']);
        const [first] = await queues.receive('orders', { max: 1, visibilityMs });
        assert.ok(first);
        await closeFirst();
        await assertRejectsWith(queues.stats('orders'), 'UNAVAILABLE', undefined, 'closed');
        const reopened = await reopen();
        assert.deepEqual(await reopened.stats('orders'), {
          name: 'orders',
          depth: 1,
          inFlight: 1,
          oldestSentAt: new Date(start),
        });
        assert.equal(await reopened.ack('orders', [first.receipt]), 1, 'the receipt still holds');
        clock.now += visibilityMs;
        const [second] = await reopened.receive('orders', { max: 10, visibilityMs });
        assert.equal(second?.messageId, ids[1]);
      });
    });
  });
}
