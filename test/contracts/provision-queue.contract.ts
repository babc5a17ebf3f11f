import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { isPlatformError } from '../../src/core/errors.js';
import type { ProvisionQueue } from '../../src/core/ports/provision-queue.js';
import type { ProvisionRequest } from '../../src/core/types.js';

export type MakeProvisionQueue = (capacity: number) => Promise<{ queue: ProvisionQueue; cleanup: () => Promise<void> }>;

/** Long enough never to fire in a passing test. */
const LONG_POP_MS = 10_000;
/** Time for a networked adapter to register a blocking pop before the next step (BLPOP order is arrival order). */
const SETTLE_MS = 25;

/**
 * The ProvisionQueue contract, run against every adapter (see `test/contracts/memory.test.ts`).
 *
 * `makeQueue(capacity)` must return an empty queue isolated from every other test; `cleanup` disposes of it and
 * may be called after the test already closed the queue.
 */
export function provisionQueueContract(name: string, makeQueue: MakeProvisionQueue): void {
  describe(`ProvisionQueue contract: ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    const prefix = `fn-${randomUUID().slice(0, 8)}`;

    const open = async (capacity = 100): Promise<ProvisionQueue> => {
      const { queue, cleanup } = await makeQueue(capacity);
      cleanups.push(cleanup);
      return queue;
    };

    const request = (n: number, version = 1): ProvisionRequest => ({
      functionName: `${prefix}-${n}`,
      incarnation: 'i1',
      version,
      reason: 'demand',
      requestedAt: 1_700_000_000_000 + n,
    });

    afterEach(async () => {
      for (const cleanup of cleanups.splice(0)) await cleanup();
    });

    it('reports its capacity', async () => {
      const queue = await open(7);
      assert.equal(queue.capacity, 7);
      assert.equal(await queue.size(), 0);
    });

    it('is first-in first-out and keeps every field', async () => {
      const queue = await open();
      const pushed = [
        request(1),
        { ...request(2, 4), reason: 'min-instances' as const },
        { ...request(3), traceparent: '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01' },
      ];
      for (const r of pushed) assert.equal(await queue.push(r), true);
      assert.equal(await queue.size(), 3);
      for (const r of pushed) assert.deepEqual(await queue.pop(0), r);
      assert.equal(await queue.size(), 0);
      assert.equal(await queue.pop(0), null);
    });

    it('refuses a push when full and loses nothing', async () => {
      const queue = await open(3);
      for (let n = 1; n <= 3; n++) assert.equal(await queue.push(request(n)), true);
      assert.equal(await queue.push(request(4)), false);
      assert.equal(await queue.size(), 3);

      assert.deepEqual(await queue.pop(0), request(1));
      assert.equal(await queue.push(request(5)), true);
      assert.equal(await queue.push(request(6)), false);
      for (const n of [2, 3, 5]) assert.deepEqual(await queue.pop(0), request(n));
      assert.equal(await queue.size(), 0);
    });

    it('wakes a blocked pop on push', async () => {
      const queue = await open();
      const popping = queue.pop(LONG_POP_MS);
      await sleep(SETTLE_MS);
      assert.equal(await queue.push(request(1)), true);
      assert.deepEqual(await popping, request(1));
      assert.equal(await queue.size(), 0);
    });

    it('serves blocked pops first-come first-served', async () => {
      const queue = await open();
      const pops: Promise<ProvisionRequest | null>[] = [];
      for (let n = 0; n < 3; n++) {
        pops.push(queue.pop(LONG_POP_MS));
        await sleep(SETTLE_MS);
      }
      for (let n = 1; n <= 3; n++) assert.equal(await queue.push(request(n)), true);
      assert.deepEqual(await Promise.all(pops), [request(1), request(2), request(3)]);
    });

    it('returns null on timeout, and a later push is kept', async () => {
      const queue = await open();
      assert.equal(await queue.pop(30), null);
      assert.equal(await queue.push(request(1)), true);
      assert.equal(await queue.size(), 1);
      assert.deepEqual(await queue.pop(0), request(1));
    });

    it('returns null on abort, and a later push is kept', async () => {
      const queue = await open();
      const controller = new AbortController();
      const popping = queue.pop(LONG_POP_MS, controller.signal);
      await sleep(SETTLE_MS);
      controller.abort();
      assert.equal(await popping, null);

      assert.equal(await queue.push(request(1)), true);
      assert.equal(await queue.size(), 1);
    });

    it('returns null for an already aborted signal without taking a request', async () => {
      const queue = await open();
      await queue.push(request(1));
      assert.equal(await queue.pop(LONG_POP_MS, AbortSignal.abort()), null);
      assert.equal(await queue.size(), 1);
    });

    it('delivers each request exactly once to concurrent consumers', async () => {
      const queue = await open(10);
      const producers = 5;
      const perProducer = 40;
      const total = producers * perProducer;
      const received: string[] = [];
      const expected: string[] = [];

      const produce = async (p: number): Promise<void> => {
        for (let n = 0; n < perProducer; n++) {
          const r = request(p * 1000 + n);
          expected.push(r.functionName);
          // Full is expected here (capacity 10): back off and retry, as a Gateway would after a 429.
          while (!(await queue.push(r))) await sleep(1);
        }
      };
      const consume = async (): Promise<void> => {
        const deadline = Date.now() + 30_000;
        while (received.length < total && Date.now() < deadline) {
          const r = await queue.pop(50);
          if (r) received.push(r.functionName);
        }
      };

      await Promise.all([
        ...Array.from({ length: producers }, (_, p) => produce(p)),
        ...Array.from({ length: 4 }, () => consume()),
      ]);

      assert.equal(received.length, total);
      assert.deepEqual(received.sort(), expected.sort());
      assert.equal(await queue.size(), 0);
    });

    it('resolves blocked pops with null on close, is idempotent, and refuses later calls', async () => {
      const queue = await open();
      const popping = queue.pop(LONG_POP_MS);
      await sleep(SETTLE_MS);
      await queue.close();
      assert.equal(await popping, null);
      await queue.close();

      const unavailable = (err: unknown): boolean => isPlatformError(err, 'UNAVAILABLE');
      await assert.rejects(queue.push(request(1)), unavailable);
      await assert.rejects(queue.pop(10), unavailable);
      await assert.rejects(queue.size(), unavailable);
    });
  });
}
