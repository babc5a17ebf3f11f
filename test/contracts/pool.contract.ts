import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { isPlatformError } from '../../src/core/errors.js';
import type { Pool, PoolItem } from '../../src/core/ports/pool.js';
import { poolKey } from '../../src/core/types.js';
import type { InstanceRef, SerializedError } from '../../src/core/types.js';

export type MakePool = () => Promise<{ pool: Pool; cleanup: () => Promise<void> }>;

const HOLDER = 'gateway-test';
const LEASE_MS = 60_000;
/** Long enough never to fire in a passing test; a waiter that hits it means an instance was lost. */
const LONG_WAIT_MS = 10_000;

/**
 * The Pool contract, run against every adapter (see `test/contracts/memory.test.ts`).
 *
 * `makePool` must return an empty pool isolated from every other test (fresh key prefix or database); `cleanup`
 * disposes of it and may be called after the test already closed the pool. Leases and idle times are compared
 * with `Date.now()`, so an adapter must stamp them with the wall clock (the default of every adapter).
 */
export function poolContract(name: string, makePool: MakePool): void {
  describe(`Pool contract: ${name}`, () => {
    let pool: Pool;
    let cleanup: () => Promise<void>;
    let fn: string;
    let incarnation: string;
    let key: string;
    let counter = 0;

    /** A fresh instance of the test's function; ids are unique across tests. */
    const instance = (overrides: Partial<InstanceRef> = {}): InstanceRef => {
      counter++;
      return {
        instanceId: `i-${counter}-${randomUUID().slice(0, 8)}`,
        functionName: fn,
        incarnation,
        version: 1,
        nodeId: 'node-a',
        createdAt: Date.now(),
        initMs: 12,
        invocations: 0,
        idleSince: 0,
        ...overrides,
      };
    };

    /** The pool key of a version of the test's function. */
    const keyOf = (version: number, of = incarnation): string =>
      poolKey({ functionName: fn, incarnation: of, version });

    const checkout = (k = key, leaseMs = LEASE_MS): Promise<InstanceRef | null> =>
      pool.checkout(k, { holder: HOLDER, leaseMs });

    const wait = (options: { timeoutMs?: number; signal?: AbortSignal; leaseMs?: number } = {}) =>
      pool.wait(key, {
        holder: HOLDER,
        leaseMs: options.leaseMs ?? LEASE_MS,
        timeoutMs: options.timeoutMs ?? LONG_WAIT_MS,
        signal: options.signal,
      });

    /** Waits are registered asynchronously by networked adapters: poll until `count` waiters are blocked on `k`. */
    const waiters = async (count: number, k = key): Promise<void> => {
      const deadline = Date.now() + 5_000;
      while ((await pool.stats(k)).waiters !== count) {
        if (Date.now() > deadline)
          assert.fail(`expected ${count} waiters on ${k}, got ${(await pool.stats(k)).waiters}`);
        await sleep(2);
      }
    };

    const instanceOf = (item: PoolItem | null): InstanceRef => {
      assert.ok(item, 'expected an item, got null');
      assert.equal(item.kind, 'instance');
      return item.instance;
    };

    const ids = (instances: InstanceRef[]): string[] => instances.map((i) => i.instanceId).sort();

    /** Sleep until the wall clock has moved past `ms` milliseconds, so pushes get distinct idle times. */
    const tick = async (ms = 5): Promise<void> => {
      const until = Date.now() + ms;
      while (Date.now() <= until) await sleep(ms);
    };

    beforeEach(async () => {
      ({ pool, cleanup } = await makePool());
      fn = `fn-${randomUUID().slice(0, 8)}`;
      incarnation = randomUUID().slice(0, 8);
      key = keyOf(1);
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('checkout', () => {
      it('returns null on an empty pool', async () => {
        assert.equal(await checkout(), null);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 0, waiters: 0 });
        assert.deepEqual(await pool.instances(key), { idle: 0, checkedOut: 0 });
      });

      it('takes a pushed instance exactly once and keeps its fields', async () => {
        const pushed = instance({ initMs: 321, invocations: 7, nodeId: 'node-x' });
        await pool.push(pushed);
        const got = await checkout();
        assert.ok(got);
        assert.equal(got.instanceId, pushed.instanceId);
        assert.equal(got.functionName, fn);
        assert.equal(got.version, 1);
        assert.equal(got.nodeId, 'node-x');
        assert.equal(got.initMs, 321);
        assert.equal(got.invocations, 7);
        assert.equal(got.createdAt, pushed.createdAt);
        assert.equal(await checkout(), null);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
      });

      it('stamps idleSince when an instance is pushed', async () => {
        const before = Date.now();
        await pool.push(instance({ idleSince: 1 }));
        const got = await checkout();
        assert.ok(got);
        assert.ok(got.idleSince >= before, `idleSince ${got.idleSince} < ${before}`);
      });

      it('keeps keys apart', async () => {
        const v2 = instance({ version: 2 });
        await pool.push(v2);
        assert.equal(await checkout(), null);
        assert.equal((await checkout(keyOf(2)))?.instanceId, v2.instanceId);
      });
    });

    describe('push', () => {
      it('keeps an instance pushed twice idle once', async () => {
        const i1 = instance();
        await pool.push(i1);
        await pool.push(i1);
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
        assert.equal((await checkout())?.instanceId, i1.instanceId);
        assert.equal(await checkout(), null);
      });

      it('takes back a checked-out instance and ends its lease', async () => {
        await pool.push(instance());
        const got = await checkout(key, 1);
        assert.ok(got);
        await pool.push({ ...got, invocations: got.invocations + 1 });
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
        assert.deepEqual(await pool.reclaimExpired(Date.now() + 3_600_000), []);
        assert.equal((await checkout())?.invocations, 1);
      });
    });

    describe('restore', () => {
      it('adds the instances the pool does not hold, and only those', async () => {
        const [i1, i2] = [instance(), instance()];
        await pool.push(i1);
        await pool.push(i2);
        const leased = await checkout();
        assert.ok(leased);
        const stillIdle = leased.instanceId === i1.instanceId ? i2 : i1;
        const [lost, lostV2] = [instance({ invocations: 3 }), instance({ version: 2 })];

        const restored = await pool.restore([i1, i2, lost, lostV2, lost]);
        assert.deepEqual(ids(restored), ids([lost, lostV2]));
        assert.deepEqual(await pool.stats(key), { idle: 2, checkedOut: 1, waiters: 0 });
        assert.deepEqual(await pool.instances(key), { idle: 2, checkedOut: 1 });
        assert.deepEqual(await pool.stats(keyOf(2)), { idle: 1, checkedOut: 0, waiters: 0 });
        assert.deepEqual(await pool.restore([i1, i2, lost, lostV2]), []);
        assert.deepEqual(await pool.restore([]), []);

        // The checked-out instance kept its lease; the restored one comes out with its fields.
        assert.deepEqual(ids(await pool.reclaimExpired(Date.now() + 3_600_000)), [leased.instanceId]);
        const taken = [await checkout(), await checkout()].filter((i): i is InstanceRef => i !== null);
        assert.deepEqual(ids(taken), ids([stillIdle, lost]));
        assert.equal(taken.find((i) => i.instanceId === lost.instanceId)?.invocations, 3);
      });

      it('hands a restored instance to the oldest waiter', async () => {
        const first = wait();
        await waiters(1);
        const second = wait();
        await waiters(2);
        const lost = instance({ invocations: 2 });
        assert.deepEqual(ids(await pool.restore([lost])), [lost.instanceId]);
        assert.equal(instanceOf(await first).instanceId, lost.instanceId);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 1 });
        assert.deepEqual(await pool.instances(key), { idle: 0, checkedOut: 1 }, 'instances leaves the waiters out');
        await pool.push(instance());
        instanceOf(await second);
      });
    });

    describe('wait', () => {
      it('serves waiters first-come first-served', async () => {
        const first = wait();
        await waiters(1);
        const second = wait();
        await waiters(2);
        const third = wait();
        await waiters(3);

        const pushed = [instance(), instance(), instance()];
        for (const i of pushed) await pool.push(i);

        assert.equal(instanceOf(await first).instanceId, pushed[0]?.instanceId);
        assert.equal(instanceOf(await second).instanceId, pushed[1]?.instanceId);
        assert.equal(instanceOf(await third).instanceId, pushed[2]?.instanceId);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 3, waiters: 0 });
      });

      it('returns an instance that is already idle at once', async () => {
        const i1 = instance();
        await pool.push(i1);
        assert.equal(instanceOf(await wait()).instanceId, i1.instanceId);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
      });

      it('returns null on timeout, and a later push is not lost', async () => {
        assert.equal(await wait({ timeoutMs: 30 }), null);
        assert.equal((await pool.stats(key)).waiters, 0);

        const i1 = instance();
        await pool.push(i1);
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
        assert.equal((await checkout())?.instanceId, i1.instanceId);
      });

      it('returns null on abort, and a later push is not lost', async () => {
        const controller = new AbortController();
        const waiting = wait({ signal: controller.signal });
        await waiters(1);
        controller.abort();
        assert.equal(await waiting, null);
        assert.equal((await pool.stats(key)).waiters, 0);

        const i1 = instance();
        await pool.push(i1);
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
      });

      it('returns null for an already aborted signal without taking an idle instance', async () => {
        await pool.push(instance());
        assert.equal(await wait({ signal: AbortSignal.abort() }), null);
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
      });

      it('skips timed-out waiters: the next push goes to the oldest live one', async () => {
        const expiring = wait({ timeoutMs: 30 });
        await waiters(1);
        const live = wait();
        await waiters(2);
        assert.equal(await expiring, null);

        const i1 = instance();
        await pool.push(i1);
        assert.equal(instanceOf(await live).instanceId, i1.instanceId);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
      });

      it("checks the instance out with the waiter's lease", async () => {
        const waiting = wait({ leaseMs: 1_000 });
        await waiters(1);
        const i1 = instance();
        await pool.push(i1);
        instanceOf(await waiting);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
        assert.deepEqual(ids(await pool.reclaimExpired(Date.now() + 30_000)), [i1.instanceId]);
      });

      it('serves a cold waiter with whichever instance comes first (competitive consumption)', async () => {
        // Request A runs on the only warm instance.
        const warm = instance();
        await pool.push(warm);
        const a = await checkout();
        assert.equal(a?.instanceId, warm.instanceId);

        // Request B finds the pool empty, asks for a cold start and blocks.
        assert.equal(await checkout(), null);
        const b = wait();
        await waiters(1);

        // A returns its instance before the new one is ready: B takes it.
        await pool.push({ ...warm, invocations: 1 });
        assert.equal(instanceOf(await b).instanceId, warm.instanceId);

        // The instance created for B arrives late; nobody waits, so it stays warm for the next request.
        const created = instance();
        await pool.push(created);
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 1, waiters: 0 });
        assert.equal((await checkout())?.instanceId, created.instanceId);
      });
    });

    describe('concurrency', () => {
      it('never hands an instance to two callers at once', async () => {
        const instances = Array.from({ length: 5 }, () => instance());
        for (const i of instances) await pool.push(i);

        const held = new Set<string>();
        let served = 0;
        const worker = async (rounds: number): Promise<void> => {
          for (let round = 0; round < rounds; round++) {
            const got = (await checkout()) ?? instanceOf(await wait());
            assert.ok(!held.has(got.instanceId), `instance ${got.instanceId} handed out twice`);
            held.add(got.instanceId);
            served++;
            await sleep(Math.floor(Math.random() * 3));
            held.delete(got.instanceId);
            await pool.push({ ...got, invocations: got.invocations + 1 });
          }
        };
        await Promise.all(Array.from({ length: 50 }, () => worker(4)));

        assert.equal(served, 200);
        assert.deepEqual(await pool.stats(key), { idle: 5, checkedOut: 0, waiters: 0 });
        const drained = await pool.drain(key);
        assert.deepEqual(ids(drained), ids(instances));
        assert.equal(
          drained.reduce((sum, i) => sum + i.invocations, 0),
          200,
        );
      });
    });

    describe('pushFailure', () => {
      it('wakes exactly one waiter, the oldest', async () => {
        const first = wait();
        await waiters(1);
        const second = wait();
        await waiters(2);

        const error: SerializedError = { name: 'PlatformError', code: 'FUNCTION_INIT_ERROR', message: 'boom' };
        assert.equal(await pool.pushFailure(key, error), true);
        const failed = await first;
        assert.ok(failed);
        assert.equal(failed.kind, 'failure');
        assert.deepEqual(failed.error, error);
        assert.equal((await pool.stats(key)).waiters, 1);

        const i1 = instance();
        await pool.push(i1);
        assert.equal(instanceOf(await second).instanceId, i1.instanceId);
      });

      it('is dropped when nobody waits', async () => {
        assert.equal(await pool.pushFailure(key, { name: 'Error', message: 'nobody listens' }), false);
        assert.equal(await wait({ timeoutMs: 30 }), null);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 0, waiters: 0 });
      });
    });

    describe('release and renew', () => {
      it('release forgets a checked-out instance', async () => {
        const i1 = instance();
        await pool.push(i1);
        assert.ok(await checkout());
        await pool.release(i1.instanceId);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 0, waiters: 0 });
        assert.deepEqual(await pool.reclaimExpired(Date.now() + 3_600_000), []);
        assert.ok(!(await pool.keys()).includes(key));
      });

      it('renew extends a lease', async () => {
        const i1 = instance();
        await pool.push(i1);
        assert.ok(await checkout(key, 1_000));
        await pool.renew(i1.instanceId, 3_600_000);
        assert.deepEqual(await pool.reclaimExpired(Date.now() + 60_000), []);
        assert.deepEqual(ids(await pool.reclaimExpired(Date.now() + 7_200_000)), [i1.instanceId]);
      });
    });

    describe('reclaimExpired', () => {
      it('returns checked-out instances whose lease expired, and only those', async () => {
        const short = instance();
        const long = instance();
        const idle = instance();
        await pool.push(short);
        assert.equal((await checkout(key, 1_000))?.instanceId, short.instanceId);
        await pool.push(long);
        assert.equal((await checkout(key, 3_600_000))?.instanceId, long.instanceId);
        await pool.push(idle);

        assert.deepEqual(await pool.reclaimExpired(Date.now() - 60_000), []);
        assert.deepEqual(ids(await pool.reclaimExpired(Date.now() + 60_000)), [short.instanceId]);
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 1, waiters: 0 });
        // Reclaimed instances are gone: a second pass does not return them again.
        assert.deepEqual(await pool.reclaimExpired(Date.now() + 60_000), []);
      });
    });

    describe('reapIdle', () => {
      it('removes idle instances idle since before the cutoff, oldest first', async () => {
        const old1 = instance();
        const old2 = instance();
        const fresh = instance();
        await pool.push(old1);
        await tick();
        await pool.push(old2);
        await tick();
        const cutoff = Date.now();
        await tick();
        await pool.push(fresh);

        const reaped = await pool.reapIdle(key, cutoff, 0);
        assert.deepEqual(
          reaped.map((i) => i.instanceId),
          [old1.instanceId, old2.instanceId],
        );
        assert.equal((await pool.stats(key)).idle, 1);
        assert.equal((await checkout())?.instanceId, fresh.instanceId);
      });

      it('keeps at least `keep` idle instances, reaping the oldest', async () => {
        const pushed = [instance(), instance(), instance(), instance()];
        for (const i of pushed) {
          await pool.push(i);
          await tick();
        }
        const reaped = await pool.reapIdle(key, Date.now() + 60_000, 1);
        assert.deepEqual(
          reaped.map((i) => i.instanceId),
          pushed.slice(0, 3).map((i) => i.instanceId),
        );
        assert.equal((await pool.stats(key)).idle, 1);
        assert.deepEqual(await pool.reapIdle(key, Date.now() + 60_000, 1), []);
        assert.deepEqual(await pool.reapIdle(key, Date.now() + 60_000, 5), []);
      });

      it('never removes a checked-out instance', async () => {
        const busy = instance();
        const idle = instance();
        await pool.push(busy);
        assert.equal((await checkout())?.instanceId, busy.instanceId);
        await pool.push(idle);

        assert.deepEqual(ids(await pool.reapIdle(key, Date.now() + 60_000, 0)), [idle.instanceId]);
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
        await pool.push(busy);
        assert.equal((await pool.stats(key)).idle, 1);
      });

      it('returns nothing for an unknown key', async () => {
        assert.deepEqual(
          await pool.reapIdle(poolKey({ functionName: 'missing', incarnation, version: 1 }), Date.now() + 60_000, 0),
          [],
        );
      });
    });

    describe('incarnations', () => {
      it('keeps the versions of a re-created function apart from its predecessor’s', async () => {
        const old = instance();
        await pool.push(old);
        const successor = keyOf(1, `${incarnation}-next`);
        assert.notEqual(successor, key);
        assert.equal(await checkout(successor), null);
        assert.equal(await pool.wait(successor, { holder: HOLDER, leaseMs: LEASE_MS, timeoutMs: 50 }), null);
        assert.equal((await checkout())?.instanceId, old.instanceId);
      });
    });

    describe('retire', () => {
      it('removes idle instances and refuses an instance busy meanwhile when it comes back', async () => {
        const [busy, idle] = [instance(), instance()];
        await pool.push(busy);
        const leased = await checkout();
        assert.equal(leased?.instanceId, busy.instanceId);
        await pool.push(idle);

        assert.deepEqual(ids(await pool.retire(key)), [idle.instanceId]);
        // The function is deleted and created again: version 1 of another incarnation, with a waiting request.
        const next = keyOf(1, `${incarnation}-next`);
        const waiting = pool.wait(next, { holder: HOLDER, leaseMs: LEASE_MS, timeoutMs: LONG_WAIT_MS });
        await waiters(1, next);

        assert.equal(await pool.push({ ...leased, invocations: 1 }), false, 'the busy instance is refused');
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 0, waiters: 0 });
        assert.equal(await checkout(), null);
        assert.ok(!(await pool.keys()).includes(key));
        assert.deepEqual(await pool.reclaimExpired(Date.now() + 3_600_000), [], 'nothing of it is left leased');
        assert.deepEqual(await pool.restore([busy, instance()]), [], 'restore refuses the retired key too');
        assert.equal(await pool.push(instance()), false);

        const fresh = instance({ incarnation: `${incarnation}-next` });
        assert.equal(await pool.push(fresh), true);
        assert.equal(instanceOf(await waiting).instanceId, fresh.instanceId, 'the new incarnation gets only its own');
      });

      it('leaves other versions and incarnations of the function alone', async () => {
        const v2 = instance({ version: 2 });
        const next = instance({ incarnation: `${incarnation}-next` });
        await pool.push(v2);
        await pool.push(next);
        assert.deepEqual(await pool.retire(key), []);
        assert.equal(await pool.push(instance({ version: 2 })), true);
        assert.equal((await pool.stats(keyOf(2))).idle, 2);
        assert.equal((await checkout(keyOf(1, `${incarnation}-next`)))?.instanceId, next.instanceId);
      });
    });

    describe('drain', () => {
      it('removes every idle instance of a key and leaves checked-out ones', async () => {
        const busy = instance();
        await pool.push(busy);
        assert.ok(await checkout());
        const idle = [instance(), instance()];
        for (const i of idle) await pool.push(i);
        const other = instance({ version: 2 });
        await pool.push(other);

        assert.deepEqual(ids(await pool.drain(key)), ids(idle));
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
        assert.equal((await pool.stats(keyOf(2))).idle, 1);
        assert.deepEqual(await pool.drain(key), []);
      });
    });

    describe('purgeNode', () => {
      it('removes idle and checked-out instances of that node only', async () => {
        const key2 = keyOf(2);
        const aBusy = instance({ nodeId: 'node-a' });
        const bBusy = instance({ nodeId: 'node-b', version: 2 });
        await pool.push(aBusy);
        await pool.push(bBusy);
        assert.equal((await checkout(key))?.instanceId, aBusy.instanceId);
        assert.equal((await checkout(key2))?.instanceId, bBusy.instanceId);
        const aIdle = [instance({ nodeId: 'node-a' }), instance({ nodeId: 'node-a', version: 2 })];
        const bIdle = [instance({ nodeId: 'node-b' }), instance({ nodeId: 'node-b', version: 2 })];
        for (const i of [...aIdle, ...bIdle]) await pool.push(i);

        assert.deepEqual(ids(await pool.purgeNode('node-a')), ids([aBusy, ...aIdle]));
        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
        assert.deepEqual(await pool.stats(key2), { idle: 1, checkedOut: 1, waiters: 0 });
        assert.equal((await checkout(key))?.nodeId, 'node-b');
        assert.deepEqual(await pool.purgeNode('node-a'), []);
        // node-b's checked-out instance still has its lease and can come back.
        await pool.push(bBusy);
        assert.equal((await pool.stats(key2)).idle, 2);
      });
    });

    describe('stats and keys', () => {
      it('counts idle, checked-out and waiters per key', async () => {
        const key2 = keyOf(2);
        const waiting = pool.wait(key2, { holder: HOLDER, leaseMs: LEASE_MS, timeoutMs: LONG_WAIT_MS });
        await waiters(1, key2);
        await pool.push(instance());
        await pool.push(instance());
        assert.ok(await checkout());

        assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 1, waiters: 0 });
        assert.deepEqual(await pool.stats(key2), { idle: 0, checkedOut: 0, waiters: 1 });
        assert.deepEqual(await pool.stats(poolKey({ functionName: 'missing', incarnation, version: 1 })), {
          idle: 0,
          checkedOut: 0,
          waiters: 0,
        });

        await pool.push(instance({ version: 2 }));
        instanceOf(await waiting);
        assert.deepEqual(await pool.stats(key2), { idle: 0, checkedOut: 1, waiters: 0 });
      });

      it('lists keys with idle or checked-out instances', async () => {
        const idleKey = key;
        const busyKey = keyOf(2);
        const waitKey = keyOf(3);
        await pool.push(instance());
        await pool.push(instance({ version: 2 }));
        assert.ok(await checkout(busyKey));
        const waiting = pool.wait(waitKey, { holder: HOLDER, leaseMs: LEASE_MS, timeoutMs: LONG_WAIT_MS });
        await waiters(1, waitKey);

        assert.deepEqual((await pool.keys()).sort(), [idleKey, busyKey].sort());
        await pool.drain(idleKey);
        assert.deepEqual(await pool.keys(), [busyKey]);

        assert.equal(await pool.pushFailure(waitKey, { name: 'Error', message: 'stop' }), true);
        assert.equal((await waiting)?.kind, 'failure');
      });
    });

    describe('close', () => {
      it('resolves pending waiters with null, is idempotent, and refuses later calls', async () => {
        const waiting = wait();
        await waiters(1);
        await pool.close();
        assert.equal(await waiting, null);
        await pool.close();

        const unavailable = (err: unknown): boolean => isPlatformError(err, 'UNAVAILABLE');
        await assert.rejects(checkout(), unavailable);
        await assert.rejects(wait({ timeoutMs: 10 }), unavailable);
        await assert.rejects(pool.push(instance()), unavailable);
        await assert.rejects(pool.stats(key), unavailable);
      });
    });
  });
}
