import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { poolKey } from '../../core/types.js';
import type { InstanceRef } from '../../core/types.js';
import { retiredKeyTtlMs } from '../../core/ports/pool.js';
import { MemoryPool } from './memory-pool.js';

// Behaviour shared by every adapter is in test/contracts/pool.contract.ts; this covers what only MemoryPool promises.

const key = poolKey({ functionName: 'fn', incarnation: 'i1', version: 1 });
const lease = { holder: 'gw', leaseMs: 1_000 };

function instance(instanceId: string): InstanceRef {
  return {
    instanceId,
    functionName: 'fn',
    incarnation: 'i1',
    version: 1,
    nodeId: 'n',
    createdAt: 0,
    initMs: 0,
    invocations: 0,
    idleSince: 0,
  };
}

describe('MemoryPool', () => {
  it('stamps idleSince and lease expiry with the injected clock', async () => {
    let now = 1_000;
    const pool = new MemoryPool({ now: () => now });
    await pool.push(instance('a'));
    now = 2_000;
    await pool.push(instance('b'));

    assert.deepEqual(await pool.reapIdle(key, 1_500, 0), [{ ...instance('a'), idleSince: 1_000 }]);

    now = 5_000;
    assert.equal((await pool.checkout(key, lease))?.idleSince, 2_000);
    assert.deepEqual(await pool.reclaimExpired(6_000), []);
    assert.deepEqual(
      (await pool.reclaimExpired(6_001)).map((i) => i.instanceId),
      ['b'],
    );
    await pool.close();
  });

  it('refuses instances of a retired key for retiredKeyTtlMs, by the injected clock, and then forgets it', async () => {
    let now = 1_000;
    const pool = new MemoryPool({ now: () => now });
    await pool.retire(key);
    now += retiredKeyTtlMs - 1;
    assert.equal(await pool.push(instance('a')), false);
    now += 1;
    assert.equal(await pool.push(instance('a')), true);
    await pool.close();
  });

  it('checks out the most recently pushed instance first (LIFO)', async () => {
    const pool = new MemoryPool();
    for (const id of ['a', 'b', 'c']) await pool.push(instance(id));
    assert.equal((await pool.checkout(key, lease))?.instanceId, 'c');
    assert.equal((await pool.checkout(key, lease))?.instanceId, 'b');
    await pool.push(instance('c'));
    assert.equal((await pool.checkout(key, lease))?.instanceId, 'c');
    await pool.close();
  });

  it('does not share objects with callers', async () => {
    const pool = new MemoryPool({ now: () => 42 });
    const pushed = instance('a');
    await pool.push(pushed);
    assert.equal(pushed.idleSince, 0);
    const got = await pool.checkout(key, lease);
    assert.ok(got);
    got.invocations = 99;
    assert.deepEqual(await pool.purgeNode('n'), [{ ...pushed, idleSince: 42 }]);
    await pool.close();
  });
});
