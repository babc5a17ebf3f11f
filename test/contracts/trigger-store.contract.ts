import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MessageQueues } from '../../src/core/ports/message-queue.js';
import type { MetadataStore } from '../../src/core/ports/metadata-store.js';
import type { TriggerStore } from '../../src/core/ports/trigger-store.js';
import { isPlatformError } from '../../src/core/errors.js';
import { assertRejectsWith } from '../helpers/assertions.js';
import { newVersion } from '../helpers/versions.js';

/** The stores over one fresh, migrated, empty database. */
export interface TriggerStores {
  metadata: MetadataStore;
  queues: MessageQueues;
  triggers: TriggerStore;
  /** Remove the data, once `metadata` is closed. */
  cleanup: () => Promise<void>;
}

/**
 * The behaviour every `TriggerStore` adapter must have, with the `MessageQueues` and `MetadataStore` on the same
 * database: a trigger names a function and queues that exist, a queue in use cannot be deleted, a function's
 * triggers go with it.
 *
 * @example
 * triggerStoreContract('SQLite', async () => {
 *   const metadata = await openSqliteMetadataStore(':memory:');
 *   return { metadata, queues: new SqlMessageQueues(metadata.shared()),
 *     triggers: new SqlTriggerStore(metadata.shared()), cleanup: async () => {} };
 * });
 */
export function triggerStoreContract(name: string, open: () => Promise<TriggerStores>): void {
  async function withStores(body: (stores: TriggerStores) => Promise<void>): Promise<void> {
    const stores = await open();
    try {
      await body(stores);
    } finally {
      await stores.metadata.close();
      await stores.cleanup();
    }
  }

  describe(`TriggerStore contract: ${name}`, () => {
    it('creates a trigger with its defaults, lists, gets and deletes it', async () => {
      await withStores(async ({ metadata, queues, triggers }) => {
        await metadata.deployVersion(newVersion('billing', 'h1'));
        await queues.createQueue('orders');
        const before = Date.now();
        const trigger = await triggers.create({ functionName: 'billing', queue: 'orders' });
        assert.match(trigger.id, /^[0-9a-f]{16}$/);
        assert.deepEqual(
          { ...trigger, id: '', createdAt: null },
          {
            id: '',
            functionName: 'billing',
            queue: 'orders',
            batchSize: 10,
            windowSeconds: 1,
            maxConcurrency: 4,
            maxReceives: 5,
            deadLetterQueue: null,
            createdAt: null,
          },
        );
        assert.ok(trigger.createdAt.getTime() >= before);
        await queues.createQueue('orders-dlq');
        await metadata.deployVersion(newVersion('audit', 'h1'));
        const second = await triggers.create({
          functionName: 'audit',
          queue: 'orders',
          batchSize: 100,
          windowSeconds: 0,
          maxConcurrency: 1,
          maxReceives: 100,
          deadLetterQueue: 'orders-dlq',
        });
        assert.deepEqual(await triggers.get(trigger.id), trigger);
        assert.deepEqual(await triggers.get(second.id), second);
        assert.equal(await triggers.get('0000000000000000'), null);
        assert.deepEqual((await triggers.list()).map((t) => t.id).sort(), [trigger.id, second.id].sort());
        assert.equal(await triggers.delete(trigger.id), true);
        assert.equal(await triggers.delete(trigger.id), false);
        assert.deepEqual(
          (await triggers.list()).map((t) => t.id),
          [second.id],
        );
      });
    });

    it('answers NOT_FOUND naming the missing function, queue or dead-letter queue', async () => {
      await withStores(async ({ metadata, queues, triggers }) => {
        await queues.createQueue('orders');
        await assertRejectsWith(
          triggers.create({ functionName: 'ghost', queue: 'orders' }),
          'NOT_FOUND',
          /function ghost does not exist/,
        );
        await metadata.deployVersion(newVersion('billing', 'h1'));
        await assertRejectsWith(
          triggers.create({ functionName: 'billing', queue: 'nope' }),
          'NOT_FOUND',
          /^\[NOT_FOUND\] queue nope does not exist/,
        );
        await assertRejectsWith(
          triggers.create({ functionName: 'billing', queue: 'orders', deadLetterQueue: 'lost' }),
          'NOT_FOUND',
          /dead-letter queue lost does not exist/,
        );
        assert.deepEqual(await triggers.list(), []);
      });
    });

    it('refuses settings out of range, a queue dead-lettering into itself and a second trigger on the same pair', async () => {
      await withStores(async ({ metadata, queues, triggers }) => {
        await metadata.deployVersion(newVersion('billing', 'h1'));
        await queues.createQueue('orders');
        const bad: [string, Record<string, unknown>][] = [
          ['batchSize', { batchSize: 0 }],
          ['batchSize', { batchSize: 101 }],
          ['windowSeconds', { windowSeconds: -1 }],
          ['windowSeconds', { windowSeconds: 301 }],
          ['maxConcurrency', { maxConcurrency: 0 }],
          ['maxConcurrency', { maxConcurrency: 101 }],
          ['maxReceives', { maxReceives: 0 }],
          ['maxReceives', { maxReceives: 1.5 }],
        ];
        for (const [setting, values] of bad) {
          await assertRejectsWith(
            triggers.create({ functionName: 'billing', queue: 'orders', ...values }),
            'BAD_REQUEST',
            new RegExp(setting),
            JSON.stringify(values),
          );
        }
        await assertRejectsWith(
          triggers.create({ functionName: 'billing', queue: 'orders', deadLetterQueue: 'orders' }),
          'BAD_REQUEST',
          /dead-letter queue must be another queue/,
        );
        const first = await triggers.create({ functionName: 'billing', queue: 'orders' });
        await assert.rejects(triggers.create({ functionName: 'billing', queue: 'orders', batchSize: 2 }), (err) => {
          assert.ok(isPlatformError(err, 'CONFLICT'), String(err));
          assert.equal(err.details['triggerId'], first.id);
          return true;
        });
      });
    });

    it('refuses to delete a queue a trigger reads from or dead-letters into, until the trigger is gone', async () => {
      await withStores(async ({ metadata, queues, triggers }) => {
        await metadata.deployVersion(newVersion('billing', 'h1'));
        await queues.createQueue('orders');
        await queues.createQueue('orders-dlq');
        const trigger = await triggers.create({
          functionName: 'billing',
          queue: 'orders',
          deadLetterQueue: 'orders-dlq',
        });
        await queues.send('orders', ['kept']);
        for (const queue of ['orders', 'orders-dlq']) {
          await assertRejectsWith(queues.deleteQueue(queue), 'CONFLICT', new RegExp(`trigger ${trigger.id}`), queue);
        }
        assert.equal((await queues.stats('orders')).depth, 1, 'nothing deleted');
        await triggers.delete(trigger.id);
        assert.equal(await queues.deleteQueue('orders-dlq'), true);
        assert.equal(await queues.deleteQueue('orders'), true);
      });
    });

    it("deletes a function's triggers with the function", async () => {
      await withStores(async ({ metadata, queues, triggers }) => {
        await metadata.deployVersion(newVersion('billing', 'h1'));
        await metadata.deployVersion(newVersion('audit', 'h1'));
        await queues.createQueue('orders');
        await triggers.create({ functionName: 'billing', queue: 'orders' });
        const kept = await triggers.create({ functionName: 'audit', queue: 'orders' });
        assert.equal(await metadata.deleteFunction('billing'), true);
        assert.deepEqual(
          (await triggers.list()).map((t) => t.id),
          [kept.id],
        );
        await metadata.deployVersion(newVersion('billing', 'h2'));
        assert.deepEqual(
          (await triggers.list()).map((t) => t.id),
          [kept.id],
          'a function created anew has none',
        );
      });
    });
  });
}
