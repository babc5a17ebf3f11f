import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';

import { RedisInvocationQueue } from '../../src/adapters/redis/redis-invocation-queue.js';
import { RedisPool } from '../../src/adapters/redis/redis-pool.js';
import type { RedisPoolOptions } from '../../src/adapters/redis/redis-pool.js';
import { RedisProvisionQueue } from '../../src/adapters/redis/redis-provision-queue.js';
import { isPlatformError } from '../../src/core/errors.js';
import { idempotencyWindowMs } from '../../src/core/ports/invocation-queue.js';
import type { InvocationAttempt } from '../../src/core/ports/invocation-queue.js';
import type { Pool, PoolItem } from '../../src/core/ports/pool.js';
import { poolKey } from '../../src/core/types.js';
import type { InstanceRef, ProvisionRequest } from '../../src/core/types.js';
import { redisServerAvailable, redisServerBinary, startRedisServer } from '../kit/redis-server.js';
import type { RedisServer } from '../kit/redis-server.js';
import { invocationQueueContract } from './invocation-queue.contract.js';
import { poolContract } from './pool.contract.js';
import { provisionQueueContract } from './provision-queue.contract.js';

const lease = { holder: 'gw-test', leaseMs: 60_000 };

/** A key prefix no other test uses; its keys are deleted by the test's cleanup. */
const uniquePrefix = (): string => `test:${randomUUID().slice(0, 8)}:`;

let counter = 0;
function instance(functionName: string, overrides: Partial<InstanceRef> = {}): InstanceRef {
  counter++;
  return {
    instanceId: `i-${counter}-${randomUUID().slice(0, 8)}`,
    functionName,
    incarnation: 'i1',
    version: 1,
    nodeId: 'node-a',
    createdAt: Date.now(),
    initMs: 5,
    invocations: 0,
    idleSince: 0,
    ...overrides,
  };
}

function request(n: number): ProvisionRequest {
  return {
    functionName: `fn-${n}`,
    incarnation: 'i1',
    version: 1,
    reason: 'demand',
    requestedAt: 1_700_000_000_000 + n,
  };
}

function instanceOf(item: PoolItem | null): InstanceRef {
  assert.ok(item, 'expected an item, got null');
  assert.equal(item.kind, 'instance');
  return item.instance;
}

function attemptAt(at: number): InvocationAttempt {
  return { startedAt: new Date(at), status: 'success', durationMs: 1, error: null, invocationId: `inv-${at}` };
}

const unavailable = (err: unknown): boolean => isPlatformError(err, 'UNAVAILABLE');

/** Polls `pool.stats(key)` until `count` waiters are queued. */
async function waiters(pool: Pool, key: string, count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await pool.stats(key)).waiters !== count) {
    if (Date.now() > deadline) assert.fail(`expected ${count} waiters on ${key}`);
    await sleep(2);
  }
}

/** Retries `operation` until it stops failing with UNAVAILABLE (Redis came back and the client reconnected). */
async function whenAvailable<T>(operation: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return await operation();
    } catch (err) {
      if (!unavailable(err) || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

if (!redisServerAvailable()) {
  it('Redis adapters', { skip: `${redisServerBinary} is not installed` }, () => {});
} else {
  let server: RedisServer;

  before(async () => {
    server = await startRedisServer();
  });

  after(async () => {
    // Every test deleted its own keys: the shared server must be empty.
    const left = await server.keys();
    await server.close();
    assert.deepEqual(left, []);
  });

  poolContract('RedisPool', () => {
    const keyPrefix = uniquePrefix();
    const pool = new RedisPool({ url: server.url, keyPrefix });
    const cleanup = async (): Promise<void> => {
      await pool.close();
      await server.deleteKeys(keyPrefix);
    };
    return Promise.resolve({ pool, cleanup });
  });

  provisionQueueContract('RedisProvisionQueue', (capacity) => {
    const keyPrefix = uniquePrefix();
    const queue = new RedisProvisionQueue({ url: server.url, keyPrefix, capacity });
    const cleanup = async (): Promise<void> => {
      await queue.close();
      await server.deleteKeys(keyPrefix);
    };
    return Promise.resolve({ queue, cleanup });
  });

  invocationQueueContract(
    'RedisInvocationQueue',
    async (settings) => {
      const keyPrefix = uniquePrefix();
      const opened = () =>
        Promise.resolve({ queue: new RedisInvocationQueue({ url: server.url, keyPrefix, ...settings }) });
      return { ...(await opened()), reopen: opened, cleanup: () => server.deleteKeys(keyPrefix).then(() => undefined) };
    },
    'own-clock',
  );

  describe('Redis adapters', () => {
    /** Pools opened by a test, closed with their keys deleted by `cleanup`. */
    const opened = (keyPrefix: string) => {
      const pools: RedisPool[] = [];
      const open = (options: Partial<RedisPoolOptions> = {}): RedisPool => {
        const pool = new RedisPool({ url: server.url, keyPrefix, ...options });
        pools.push(pool);
        return pool;
      };
      const cleanup = async (): Promise<void> => {
        await Promise.all(pools.map((pool) => pool.close()));
        await server.deleteKeys(keyPrefix);
      };
      return { open, cleanup };
    };

    it('keeps every key under its prefix and leaves only the epoch once the instances are gone', async () => {
      const keyPrefix = uniquePrefix();
      const { open, cleanup } = opened(keyPrefix);
      const pool = open();
      try {
        const fn = 'keys-fn';
        const key = poolKey({ functionName: fn, incarnation: 'i1', version: 1 });
        const [a, b, c] = [instance(fn), instance(fn, { nodeId: 'node-b' }), instance(fn)];
        for (const i of [a, b, c]) await pool.push(i);
        assert.ok(await pool.checkout(key, lease));
        assert.equal(
          await pool.wait(poolKey({ functionName: fn, incarnation: 'i1', version: 2 }), { ...lease, timeoutMs: 20 }),
          null,
        );
        assert.ok((await server.keys()).every((k) => k.startsWith(keyPrefix)));

        await pool.purgeNode('node-b');
        await pool.drain(key);
        await pool.reclaimExpired(Date.now() + 3_600_000);
        assert.deepEqual(await pool.keys(), []);
        assert.deepEqual(await server.keys(keyPrefix), [`${keyPrefix}pool:epoch`]);
      } finally {
        await cleanup();
      }
    });

    it('serves waiters of several gateways first-come first-served, failures included', async () => {
      const { open, cleanup } = opened(uniquePrefix());
      const [gatewayA, gatewayB, manager] = [open(), open(), open()];
      try {
        const fn = 'shared-fn';
        const key = poolKey({ functionName: fn, incarnation: 'i1', version: 1 });
        const first = gatewayA.wait(key, { ...lease, timeoutMs: 5_000 });
        await waiters(manager, key, 1);
        const second = gatewayB.wait(key, { ...lease, timeoutMs: 5_000 });
        await waiters(manager, key, 2);
        const third = gatewayA.wait(key, { ...lease, timeoutMs: 5_000 });
        await waiters(manager, key, 3);

        const [i1, i2] = [instance(fn), instance(fn)];
        await manager.push(i1);
        assert.equal(await manager.pushFailure(key, { name: 'Error', message: 'init failed' }), true);
        await manager.push(i2);

        assert.equal(instanceOf(await first).instanceId, i1.instanceId);
        assert.equal((await second)?.kind, 'failure');
        assert.equal(instanceOf(await third).instanceId, i2.instanceId);
        assert.deepEqual(await manager.stats(key), { idle: 0, checkedOut: 2, waiters: 0 });
      } finally {
        await cleanup();
      }
    });

    it('loses no instance when waiters time out while instances arrive', async () => {
      const { open, cleanup } = opened(uniquePrefix());
      const [gateway, manager] = [open(), open()];
      try {
        const fn = 'race-fn';
        const key = poolKey({ functionName: fn, incarnation: 'i1', version: 1 });
        const rounds = 40;
        const results = await Promise.all(
          Array.from({ length: rounds }, async (_, n) => {
            const waiting = gateway.wait(key, { ...lease, timeoutMs: 20 + (n % 10) });
            await sleep(20 + ((n * 7) % 10));
            await manager.push(instance(fn));
            return waiting;
          }),
        );
        const served = results.filter((item) => item !== null).length;
        const stats = await manager.stats(key);
        assert.deepEqual(stats, { idle: rounds - served, checkedOut: served, waiters: 0 });
      } finally {
        await cleanup();
      }
    });

    it('skips the waiter of a gateway whose registration is past its deadline', async () => {
      const { open, cleanup } = opened(uniquePrefix());
      // A gateway whose clock is an hour behind registers waiters that look long dead to everyone else.
      const lagging = open({ now: () => Date.now() - 3_600_000, waiterGraceMs: 0 });
      const manager = open();
      try {
        const fn = 'stale-fn';
        const key = poolKey({ functionName: fn, incarnation: 'i1', version: 1 });
        const waiting = lagging.wait(key, { ...lease, timeoutMs: 300 });
        await sleep(50);
        assert.equal((await manager.stats(key)).waiters, 0);
        const i1 = instance(fn);
        await manager.push(i1);
        assert.equal(await waiting, null);
        assert.equal((await manager.checkout(key, lease))?.instanceId, i1.instanceId);
      } finally {
        await cleanup();
      }
    });

    it('shares the queue capacity between processes and loses nothing to aborted pops', async () => {
      const keyPrefix = uniquePrefix();
      const a = new RedisProvisionQueue({ url: server.url, keyPrefix, capacity: 50 });
      const b = new RedisProvisionQueue({ url: server.url, keyPrefix, capacity: 50 });
      try {
        const received: string[] = [];
        const consumer = async (): Promise<void> => {
          for (let n = 0; n < 30; n++) {
            const controller = new AbortController();
            setTimeout(() => controller.abort(), n % 5);
            const got = await b.pop(1_000, controller.signal);
            if (got) received.push(got.functionName);
          }
        };
        const producer = async (): Promise<void> => {
          for (let n = 0; n < 40; n++) {
            assert.equal(await a.push(request(n)), true);
            await sleep(n % 3);
          }
        };
        await Promise.all([consumer(), consumer(), producer()]);
        const rest: string[] = [];
        for (let got = await a.pop(0); got; got = await a.pop(0)) rest.push(got.functionName);
        assert.deepEqual([...received, ...rest].sort(), Array.from({ length: 40 }, (_, n) => `fn-${n}`).sort());

        for (let n = 0; n < 50; n++) assert.equal(await a.push(request(n)), true);
        assert.equal(await b.push(request(50)), false);
      } finally {
        await Promise.all([a.close(), b.close()]);
        await server.deleteKeys(keyPrefix);
      }
    });

    it('invocation queue: a second consumer takes over the delivery of one that died, once its visibility ends', async () => {
      const keyPrefix = uniquePrefix();
      const clock = { now: Date.UTC(2027, 0, 1) };
      const settings = { url: server.url, keyPrefix, now: () => clock.now };
      const [dying, survivor] = [new RedisInvocationQueue(settings), new RedisInvocationQueue(settings)];
      const admin = new Redis(server.url);
      const stream = `${keyPrefix}iq:stream:alpha`;
      try {
        const { id } = await survivor.enqueue({ functionName: 'alpha', payload: 'x' });
        assert.equal(await admin.xlen(stream), 1, 'a due event is a stream entry');
        const [first] = await dying.receive({ max: 1, visibilityMs: 10_000 });
        assert.equal(first?.id, id);
        await dying.close();
        assert.deepEqual(await survivor.receive({ max: 1, visibilityMs: 10_000 }), []);
        /** Each pending entry's consumer (XPENDING's extended form: id, consumer, idle time, deliveries). */
        const pendingConsumers = async (): Promise<string[]> =>
          ((await admin.xpending(stream, 'dispatchers', '-', '+', 10)) as [string, string][]).map(([, c]) => c);
        const before = await pendingConsumers();
        assert.equal(before.length, 1);

        clock.now += 10_000;
        const [second] = await survivor.receive({ max: 1, visibilityMs: 10_000 });
        assert.equal(second?.id, id);
        assert.equal(second.deliveryCount, 2);
        assert.notEqual(second.receipt, first.receipt);
        const after = await pendingConsumers();
        assert.equal(after.length, 1);
        assert.notEqual(after[0], before[0], 'the entry moved to the surviving consumer');

        assert.equal(await survivor.complete(second.receipt, attemptAt(clock.now)), true);
        assert.deepEqual(await pendingConsumers(), []);
        assert.equal(await admin.xlen(stream), 0, 'a settled entry is acknowledged and deleted');
        await survivor.close();
        const consumers = (await admin.xinfo('CONSUMERS', stream, 'dispatchers')) as unknown[][];
        assert.deepEqual(
          consumers.map((fields) => fields[1]),
          before,
          'a closing consumer holding nothing leaves the group; one that died stays, holding nothing',
        );
      } finally {
        await Promise.all([dying.close(), survivor.close()]);
        admin.disconnect();
        await server.deleteKeys(keyPrefix);
      }
    });

    it('invocation queue: delayed events wait outside the stream; ended events expire, dead letters stay', async () => {
      const keyPrefix = uniquePrefix();
      const clock = { now: Date.UTC(2027, 0, 1) };
      const queue = new RedisInvocationQueue({
        url: server.url,
        keyPrefix,
        now: () => clock.now,
        endedRetentionMs: 60_000,
      });
      const admin = new Redis(server.url);
      try {
        const later = await queue.enqueue({ functionName: 'alpha', payload: 'later', delayMs: 5_000 });
        const keyed = await queue.enqueue({ functionName: 'alpha', payload: 'now', idempotencyKey: 'k' });
        assert.equal(await admin.xlen(`${keyPrefix}iq:stream:alpha`), 1, 'only the due event is in the stream');
        assert.equal(await admin.zscore(`${keyPrefix}iq:waiting:alpha`, later.id), String(clock.now + 5_000));
        const keyTtl = await admin.pttl(`${keyPrefix}iq:key:5:alpha:k`);
        assert.ok(keyTtl > 0 && keyTtl <= idempotencyWindowMs, `idempotency key TTL ${keyTtl}`);

        clock.now += 5_000;
        const deliveries = await queue.receive({ max: 10, visibilityMs: 1_000 });
        assert.deepEqual(
          deliveries.map((d) => d.id),
          [keyed.id, later.id],
        );
        assert.equal(await admin.zcard(`${keyPrefix}iq:waiting:alpha`), 0);
        assert.equal(await queue.complete(deliveries[0]!.receipt, attemptAt(clock.now)), true);
        assert.equal(await queue.deadLetter(deliveries[1]!.receipt, null, 'test'), true);
        const ttl = await admin.pttl(`${keyPrefix}iq:event:${keyed.id}`);
        assert.ok(ttl > 0 && ttl <= 60_000, `an ended event expires (TTL ${ttl})`);
        assert.equal(await admin.pttl(`${keyPrefix}iq:event:${later.id}`), -1, 'a dead letter does not');
        assert.ok((await server.keys()).filter((k) => k.includes(':iq:')).every((k) => k.startsWith(keyPrefix)));
      } finally {
        await queue.close();
        admin.disconnect();
        await server.deleteKeys(keyPrefix);
      }
    });

    it('closes every connection it opened, waiter and blocking-pop connections included', async () => {
      const keyPrefix = uniquePrefix();
      const baseline = await server.clientCount();
      const pool = new RedisPool({ url: server.url, keyPrefix });
      const queue = new RedisProvisionQueue({ url: server.url, keyPrefix });
      const key = poolKey({ functionName: 'close-fn', incarnation: 'i1', version: 1 });
      const waiting = pool.wait(key, { ...lease, timeoutMs: 5_000 });
      await waiters(pool, key, 1);
      const pops = [queue.pop(5_000), queue.pop(5_000)];
      const invocations = new RedisInvocationQueue({ url: server.url, keyPrefix });
      await invocations.enqueue({ functionName: 'close-fn', payload: 'x' });
      assert.equal((await invocations.receive({ max: 1, visibilityMs: 60_000 })).length, 1);
      await sleep(50);
      assert.ok((await server.clientCount()) >= baseline + 5);

      await Promise.all([pool.close(), queue.close(), invocations.close()]);
      assert.equal(await waiting, null);
      assert.deepEqual(await Promise.all(pops), [null, null]);
      const deadline = Date.now() + 2_000;
      while ((await server.clientCount()) > baseline && Date.now() < deadline) await sleep(10);
      assert.equal(await server.clientCount(), baseline);
      await server.deleteKeys(keyPrefix);
    });

    it('fails fast with UNAVAILABLE while Redis is down and serves waiters again once it is back', async () => {
      const own = await startRedisServer();
      const pool = new RedisPool({ url: own.url });
      const queue = new RedisProvisionQueue({ url: own.url });
      try {
        const fn = 'outage-fn';
        const key = poolKey({ functionName: fn, incarnation: 'i1', version: 1 });
        const waiting = pool.wait(key, { ...lease, timeoutMs: 8_000 });
        await waiters(pool, key, 1);
        assert.equal(await queue.push(request(1)), true);

        await own.stop();
        const started = Date.now();
        await assert.rejects(pool.checkout(key, lease), (err) => {
          assert.ok(unavailable(err), String(err));
          assert.match((err as Error).message, /Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unavailable/);
          return true;
        });
        await assert.rejects(queue.push(request(2)), unavailable);
        await assert.rejects(queue.pop(1_000), unavailable);
        assert.ok(Date.now() - started < 2_500, `took ${Date.now() - started} ms to fail`);

        // Back, empty (nothing was persisted): the blocked waiter is queued again and served.
        await own.restart();
        const i1 = instance(fn);
        await whenAvailable(() => pool.push(i1));
        assert.equal(instanceOf(await waiting).instanceId, i1.instanceId);
        assert.equal(await queue.push(request(3)), true);
        assert.deepEqual(await queue.pop(1_000), request(3));
        assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
      } finally {
        await Promise.all([pool.close(), queue.close()]);
        await own.close();
      }
    });
  });
}
