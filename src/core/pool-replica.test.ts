import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';

import { MemoryPool, detachedWaiterGraceMs } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import { isPlatformError } from './errors.js';
import type { PoolItem } from './ports/pool.js';
import { PoolReplica, QueueReplica } from './pool-replica.js';
import type { PoolChange, PoolSnapshot, QueueChange } from './pool-replica.js';
import { seededRandom } from './seeded-random.js';
import { poolKey } from './types.js';
import type { InstanceRef, ProvisionRequest } from './types.js';

const lease = { holder: 'gw', leaseMs: 10_000 };

function instance(instanceId: string, functionName = 'fn', nodeId = 'n1'): InstanceRef {
  return {
    instanceId,
    functionName,
    incarnation: 'i1',
    version: 1,
    nodeId,
    createdAt: 0,
    initMs: 0,
    invocations: 0,
    idleSince: 0,
  };
}

const key = poolKey(instance('x'));

/** A pool snapshot without its waiters: what a replica holds. */
function withoutWaiters(snapshot: PoolSnapshot): PoolSnapshot {
  return { ...snapshot, waiters: [] };
}

/** Changes as they travel: JSON. */
function overTheWire<T>(change: T): T {
  return JSON.parse(JSON.stringify(change)) as T;
}

describe('PoolReplica', () => {
  it('follows a MemoryPool exactly through thousands of random operations', async (t) => {
    const random = seededRandom(20261207);
    const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(random() * items.length)];
    let now = 1_000_000;
    const follower: { replica?: PoolReplica } = {};
    const changes: PoolChange[] = [];
    const pool = new MemoryPool({
      now: () => now,
      onChange: (change) => {
        changes.push(change);
        follower.replica?.apply(overTheWire(change));
      },
    });
    const functions = ['a', 'b', 'c'];
    const nodes = ['n1', 'n2', 'n3'];
    const keys = functions.map((fn) => poolKey(instance('x', fn)));
    /** Instances the test holds checked out, and every instance it made. */
    const held = new Map<string, InstanceRef>();
    const made: InstanceRef[] = [];
    const waits: AbortController[] = [];
    t.after(async () => {
      for (const controller of waits) controller.abort();
      await pool.close();
    });
    let nextId = 0;
    const fresh = (): InstanceRef => {
      const made1 = instance(`i${nextId++}`, pick(functions), pick(nodes));
      made.push(made1);
      return made1;
    };
    const take = (got: InstanceRef | null): void => {
      if (got) held.set(got.instanceId, got);
    };
    const takeItem = (item: PoolItem | null): void => take(item?.kind === 'instance' ? item.instance : null);

    for (let i = 0; i < 20; i++) await pool.push(fresh());
    const replica = new PoolReplica(pool.snapshot());
    follower.replica = replica;

    const operations: [number, () => Promise<unknown>][] = [
      [20, () => pool.push(fresh())],
      [15, async () => take(await pool.checkout(pick(keys)!, lease))],
      [
        15,
        () => (held.size > 0 ? pool.push([...held.values()][Math.floor(random() * held.size)]!) : Promise.resolve()),
      ],
      [
        10,
        () => {
          const controller = new AbortController();
          waits.push(controller);
          const waiterId = random() < 0.3 ? `w${nextId++}` : undefined;
          const options = { ...lease, timeoutMs: 60_000, signal: controller.signal, waiterId };
          void pool.wait(pick(keys)!, options).then(takeItem);
          return Promise.resolve();
        },
      ],
      [4, () => Promise.resolve(pick(waits)?.abort())],
      [4, () => pool.pushFailure(pick(keys)!, { name: 'Error', message: 'no' })],
      [4, () => pool.release(pick([...held.keys()]) ?? 'none')],
      [6, () => pool.renew(pick([...held.keys()]) ?? 'none', 5_000)],
      [4, () => pool.reapIdle(pick(keys)!, now - 500, Math.floor(random() * 3))],
      [2, () => pool.drain(pick(keys)!)],
      [1, () => pool.retire(pick(keys)!)],
      [2, () => pool.purgeNode(pick(nodes)!)],
      [3, () => pool.reclaimExpired(now)],
      [5, () => pool.restore([pick(made)!, pick(made)!, fresh()])],
      [5, () => pool.stats(pick(keys)!)],
    ];
    const total = operations.reduce((sum, [weight]) => sum + weight, 0);
    for (let step = 0; step < 4_000; step++) {
      now += Math.floor(random() * 400);
      if (random() < 0.002) now += 60 * 60 * 1000; // retirements end
      let roll = random() * total;
      const [, operation] = operations.find(([weight]) => (roll -= weight) < 0) ?? operations[0]!;
      await operation();
      assert.deepEqual(replica.snapshot(), withoutWaiters(pool.snapshot()), `after step ${step}`);
    }
    assert.ok(changes.length > 1_000);
    assert.deepEqual(
      new Set(changes.map((change) => change.op)),
      new Set(['idle', 'take', 'lease', 'remove', 'renew', 'retire']),
    );
  });

  it('throws CONFLICT for a change that does not fit its state', () => {
    const replica = new PoolReplica();
    assert.throws(
      () => replica.apply({ op: 'take', instanceId: 'a', holder: 'gw', expiresAt: 1 }),
      (err) => isPlatformError(err, 'CONFLICT'),
    );
    assert.throws(
      () => replica.apply({ op: 'remove', instanceIds: ['a'] }),
      (err) => isPlatformError(err, 'CONFLICT'),
    );
  });
});

describe('MemoryPool waiters across a handover', () => {
  it('lists every waiter in the snapshot with an id and its deadline, oldest first per key', async () => {
    const pool = new MemoryPool({ now: () => 1_000 });
    const first = pool.wait(key, { ...lease, timeoutMs: 5_000 });
    const second = pool.wait(key, { ...lease, timeoutMs: 7_000, waiterId: 'w2' });
    const { waiters } = pool.snapshot();
    assert.equal(waiters.length, 2);
    assert.match(waiters[0]!.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(waiters[0], { id: waiters[0]!.id, key, holder: 'gw', leaseMs: 10_000, deadline: 6_000 });
    assert.deepEqual(waiters[1], { id: 'w2', key, holder: 'gw', leaseMs: 10_000, deadline: 8_000 });
    await pool.close();
    assert.equal(await first, null);
    assert.equal(await second, null);
  });

  it('keeps what a detached waiter is served for the wait that attaches with its id', async () => {
    const old = new MemoryPool();
    const abandoned = old.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w1' });
    const snapshot = overTheWire(old.snapshot());
    const moved = new Error('moved');
    old.handOff(moved);
    await assert.rejects(abandoned, moved);
    await old.close();

    const changes: PoolChange[] = [];
    const pool = new MemoryPool({ snapshot, onChange: (change) => changes.push(change) });
    assert.equal((await pool.stats(key)).waiters, 1);
    assert.equal(await pool.push(instance('a')), true);
    assert.deepEqual(
      changes.map((change) => change.op),
      ['lease'],
    );
    assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
    assert.equal(await pool.checkout(key, lease), null);

    const item = await pool.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w1' });
    assert.equal(item?.kind === 'instance' && item.instance.instanceId, 'a');
    assert.deepEqual(pool.snapshot().waiters, []);
    await pool.close();
  });

  it('serves detached and attached waiters in their first-come order', async () => {
    const old = new MemoryPool();
    const pending = ['w1', 'w2', 'w3'].map((waiterId) => old.wait(key, { ...lease, timeoutMs: 30_000, waiterId }));
    const snapshot = old.snapshot();
    await old.close();
    await Promise.all(pending);

    const pool = new MemoryPool({ snapshot });
    const second = pool.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w2' }); // attaches in place 2
    await pool.push(instance('a')); // to w1, kept
    await pool.push(instance('b')); // to w2
    await pool.pushFailure(key, { name: 'Error', message: 'provisioning failed' }); // to w3, kept
    const served = await second;
    assert.equal(served?.kind === 'instance' && served.instance.instanceId, 'b');

    // A snapshot carries the kept items: the next leader still has them for their waits.
    const next = new MemoryPool({ snapshot: overTheWire(pool.snapshot()) });
    await pool.close();
    const first = await next.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w1' });
    assert.equal(first?.kind === 'instance' && first.instance.instanceId, 'a');
    const third = await next.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w3' });
    assert.deepEqual(third, { kind: 'failure', error: { name: 'Error', message: 'provisioning failed' } });
    assert.deepEqual(next.snapshot().waiters, []);
    await next.close();
  });

  it('a re-issued wait takes the place of the earlier one under the same id', async () => {
    const pool = new MemoryPool();
    const first = pool.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w1' });
    const other = pool.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w2' });
    const again = pool.wait(key, { ...lease, timeoutMs: 30_000, waiterId: 'w1' });
    assert.equal(await first, null);
    assert.equal((await pool.stats(key)).waiters, 2);
    await pool.push(instance('a'));
    const item = await again;
    assert.equal(item?.kind === 'instance' && item.instance.instanceId, 'a');
    await pool.close();
    assert.equal(await other, null);
  });

  it('drops a detached waiter no wait attached to by its deadline plus the grace, and pools its instance again', async () => {
    const follower: { replica?: PoolReplica } = {};
    const deadline = Date.now() + 50;
    const waiter = { holder: 'gw', leaseMs: 10_000, deadline };
    const snapshot: PoolSnapshot = {
      idle: {},
      leases: [],
      retired: {},
      waiters: [
        { id: 'served', key, ...waiter },
        { id: 'never-served', key: poolKey(instance('x', 'other')), ...waiter },
      ],
    };
    const pool = new MemoryPool({ snapshot, onChange: (change) => follower.replica?.apply(overTheWire(change)) });
    const replica = new PoolReplica(pool.snapshot());
    follower.replica = replica;
    await pool.push(instance('a'));
    assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
    assert.equal(pool.snapshot().waiters.length, 2);

    await sleep(deadline + detachedWaiterGraceMs + 100 - Date.now());
    assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
    assert.deepEqual(pool.snapshot().waiters, []);
    assert.deepEqual(replica.snapshot(), withoutWaiters(pool.snapshot()));
    // Too late: the wait finds its waiter gone, and goes on as a new one (here, taking the idle instance).
    const late = await pool.wait(key, { ...lease, timeoutMs: 1_000, waiterId: 'served' });
    assert.equal(late?.kind === 'instance' && late.instance.instanceId, 'a');
    await pool.close();
  });

  it('a wait attached to a detached waiter times out as its own timeout says', async () => {
    const snapshot: PoolSnapshot = {
      idle: {},
      leases: [],
      retired: {},
      waiters: [{ id: 'w1', key, holder: 'gw', leaseMs: 1_000, deadline: Date.now() + 30_000 }],
    };
    const pool = new MemoryPool({ snapshot });
    assert.equal(await pool.wait(key, { ...lease, timeoutMs: 20, waiterId: 'w1' }), null);
    assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 0, waiters: 0 });
    await pool.push(instance('a'));
    assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
    await pool.close();
  });
});

describe('QueueReplica', () => {
  it('follows a MemoryProvisionQueue exactly', async () => {
    const random = seededRandom(7);
    const follower: { replica?: QueueReplica } = {};
    const changes: QueueChange[] = [];
    const queue = new MemoryProvisionQueue({
      capacity: 20,
      onChange: (change) => {
        changes.push(change);
        follower.replica?.apply(overTheWire(change));
      },
    });
    const request = (n: number): ProvisionRequest => ({
      functionName: `fn${n % 3}`,
      incarnation: 'i1',
      version: 1,
      reason: 'demand',
      requestedAt: n,
    });
    for (let n = 0; n < 5; n++) await queue.push(request(n));
    const replica = new QueueReplica(queue.snapshot());
    follower.replica = replica;
    const pops: Promise<unknown>[] = [];
    for (let n = 5; n < 3_000; n++) {
      const roll = random();
      if (roll < 0.5) await queue.push(request(n));
      else if (roll < 0.95) await queue.pop(0);
      else pops.push(queue.pop(60_000)); // a blocked consumer: the next push goes straight to it
      assert.deepEqual(replica.snapshot(), queue.snapshot());
      assert.equal(replica.size, await queue.size());
    }
    assert.ok(changes.some((change) => change.op === 'dequeue'));
    await queue.close();
    await Promise.all(pops);
  });

  it('starts from a snapshot', async () => {
    const items: ProvisionRequest[] = [
      { functionName: 'fn', incarnation: 'i1', version: 1, reason: 'demand', requestedAt: 1 },
    ];
    const queue = new MemoryProvisionQueue({ snapshot: { items } });
    assert.deepEqual(await queue.pop(0), items[0]);
    assert.equal(await queue.size(), 0);
    await queue.close();
  });
});
