// Retention in the SQL invocation queue: what the contract cannot see, how much one sweep deletes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openSqliteMetadataStore } from '../sqlite/sqlite-metadata-store.js';
import { idempotencyWindowMs, retentionSweepIntervalMs } from '../../core/ports/invocation-queue.js';
import { SqlInvocationQueue } from './sql-invocation-queue.js';

describe('SqlInvocationQueue retention', () => {
  it('sweeps in chunks of 500 rows, going on at each receive until caught up, then at most once a minute', async () => {
    const metadata = await openSqliteMetadataStore(':memory:');
    try {
      const access = metadata.shared();
      const now = { ms: 100 * idempotencyWindowMs };
      const queue = new SqlInvocationQueue(access, { endedRetentionMs: 1000, now: () => now.ms });
      const ended = Array.from({ length: 1200 }, (_, i) => ({
        id: `ended-${String(i).padStart(5, '0')}`,
        function_name: 'alpha',
        payload: 'x',
        state: i % 2 === 0 ? 'succeeded' : 'failed',
        enqueued_at: 1,
        due_at: null,
        delivery_count: 1,
        receipt: null,
        attempts: '[]',
        idempotency_key: `k${i}`,
        dead_letter_reason: null,
        dead_lettered_at: null,
        redriven_at: null,
        ended_at: now.ms - 2000,
      }));
      const dead = { ...ended[0]!, id: 'dead', state: 'dead_lettered', dead_lettered_at: 1, ended_at: null };
      const keys = ended.map((row) => ({
        function_name: 'alpha',
        idempotency_key: row.idempotency_key,
        invocation_id: row.id,
        created_at: 1,
      }));
      for (let i = 0; i < ended.length; i += 200) {
        await access.db
          .insertInto('queued_invocations')
          .values(ended.slice(i, i + 200))
          .execute();
        await access.db
          .insertInto('invocation_idempotency_keys')
          .values(keys.slice(i, i + 200))
          .execute();
      }
      await access.db.insertInto('queued_invocations').values(dead).execute();
      const counts = async () => [
        Number(
          (
            await access.db
              .selectFrom('queued_invocations')
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        ),
        Number(
          (
            await access.db
              .selectFrom('invocation_idempotency_keys')
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        ),
      ];

      const receive = () => queue.receive({ max: 10, visibilityMs: 30_000 });
      await receive();
      assert.deepEqual(await counts(), [701, 700]);
      await receive();
      assert.deepEqual(await counts(), [201, 200]);
      await receive();
      assert.deepEqual(await counts(), [1, 0], 'caught up; the dead letter stays');

      // Caught up: the next sweep waits the interval.
      await access.db
        .insertInto('queued_invocations')
        .values({ ...ended[0]!, id: 'late' })
        .execute();
      now.ms += retentionSweepIntervalMs - 1;
      await receive();
      assert.deepEqual(await counts(), [2, 0]);
      now.ms += 1;
      await receive();
      assert.deepEqual(await counts(), [1, 0]);
      assert.equal((await queue.get('dead'))?.state, 'dead_lettered');
    } finally {
      await metadata.close();
    }
  });
});
