import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';

import { isPlatformError } from '../../core/errors.js';
import { poolKey } from '../../core/types.js';
import { redisFailure } from './redis-connection.js';
import { RedisInvocationQueue } from './redis-invocation-queue.js';
import { RedisPool } from './redis-pool.js';
import { RedisProvisionQueue } from './redis-provision-queue.js';

// Behaviour shared with every Pool is in test/contracts/pool.contract.ts, run against a real redis-server by
// test/contracts/redis.test.ts (outage and multi-gateway cases too). This covers what needs no server.

/** A loopback server that hangs up on every connection, like a Redis that dies as soon as it is reached. */
async function hangingUpServer(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    connections: () => connections,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const lease = { holder: 'gw', leaseMs: 1_000 };

describe('RedisPool and the Redis queues without a server', () => {
  it('refuse invalid options when constructed', () => {
    const badRequest = (err: unknown): boolean => isPlatformError(err, 'BAD_REQUEST');
    assert.throws(() => new RedisPool({ url: 'not a url' }), badRequest);
    assert.throws(() => new RedisPool({ url: 'http://127.0.0.1:6379' }), badRequest);
    assert.throws(() => new RedisPool({ url: 'redis://127.0.0.1:6379', keyPrefix: '' }), badRequest);
    assert.throws(() => new RedisPool({ url: 'redis://127.0.0.1:6379', waiterGraceMs: -1 }), badRequest);
    assert.throws(() => new RedisPool({ url: 'redis://127.0.0.1:6379', commandTimeoutMs: 0 }), badRequest);
    assert.throws(() => new RedisProvisionQueue({ url: 'redis://127.0.0.1:6379', capacity: 0 }), badRequest);
    const url = 'redis://127.0.0.1:6379';
    assert.throws(() => new RedisInvocationQueue({ url, capacityPerFunction: 0 }), badRequest);
    assert.throws(() => new RedisInvocationQueue({ url, endedRetentionMs: 0 }), badRequest);
    assert.throws(() => new RedisInvocationQueue({ url, keyPrefix: '' }), badRequest);
  });

  it('connect on first use only, and close without ever connecting', async () => {
    const server = await hangingUpServer();
    const url = `redis://127.0.0.1:${server.port}/0`;
    const pool = new RedisPool({ url });
    const queue = new RedisProvisionQueue({ url });
    const invocations = new RedisInvocationQueue({ url });
    await pool.close();
    await queue.close();
    await invocations.close();
    await assert.rejects(pool.checkout(poolKey({ functionName: 'fn', incarnation: 'i1', version: 1 }), lease), (err) =>
      isPlatformError(err, 'UNAVAILABLE'),
    );
    await assert.rejects(invocations.receive({ max: 1, visibilityMs: 1_000 }), (err) =>
      isPlatformError(err, 'UNAVAILABLE'),
    );
    await server.close();
    assert.equal(server.connections(), 0);
  });

  it('fail fast with UNAVAILABLE naming Redis and its URL, never the password', async () => {
    const server = await hangingUpServer();
    const { port } = server;
    const url = `redis://admin:s3cret-pw@127.0.0.1:${port}/2`;
    const pool = new RedisPool({ url });
    const queue = new RedisProvisionQueue({ url });
    const invocations = new RedisInvocationQueue({ url });
    const expected = (err: unknown): boolean => {
      assert.ok(isPlatformError(err, 'UNAVAILABLE'), String(err));
      assert.ok(err.message.includes(`Redis at redis://127.0.0.1:${port}/2 is unavailable`), err.message);
      assert.ok(!err.message.includes('s3cret'), err.message);
      return true;
    };
    try {
      const started = Date.now();
      await assert.rejects(
        pool.checkout(poolKey({ functionName: 'fn', incarnation: 'i1', version: 1 }), lease),
        expected,
      );
      await assert.rejects(
        pool.wait(poolKey({ functionName: 'fn', incarnation: 'i1', version: 1 }), { ...lease, timeoutMs: 5_000 }),
        expected,
      );
      await assert.rejects(
        queue.push({ functionName: 'fn', incarnation: 'i1', version: 1, reason: 'demand', requestedAt: 0 }),
        expected,
      );
      await assert.rejects(queue.pop(5_000), expected);
      await assert.rejects(invocations.enqueue({ functionName: 'fn', payload: '{}' }), expected);
      await assert.rejects(invocations.receive({ max: 1, visibilityMs: 1_000 }), expected);
      assert.ok(Date.now() - started < 4_000, `took ${Date.now() - started} ms`);
    } finally {
      await Promise.all([pool.close(), queue.close(), invocations.close()]);
      await server.close();
    }
  });

  it('maps refused commands to INTERNAL and transient server states to UNAVAILABLE', () => {
    const reply = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' });
    const url = 'redis://127.0.0.1:6379/0';
    assert.equal(redisFailure(reply('WRONGTYPE Operation against a key'), url, 'push').code, 'INTERNAL');
    assert.equal(redisFailure(reply('LOADING Redis is loading'), url, 'push').code, 'UNAVAILABLE');
    assert.equal(redisFailure(reply('READONLY You can not write'), url, 'push').code, 'UNAVAILABLE');
    assert.equal(redisFailure(new Error('Command timed out'), url, 'push').code, 'UNAVAILABLE');
  });
});
