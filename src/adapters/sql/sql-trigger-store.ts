import { randomBytes } from 'node:crypto';
import { PlatformError } from '../../core/errors.js';
import { compileTriggerSettings, queueNotFound } from '../../core/message-queue-rules.js';
import type { NewTrigger, QueueTrigger, TriggerStore } from '../../core/ports/trigger-store.js';
import type { QueueTriggerRow } from './schema.js';
import { lockQueue } from './sql-message-queues.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import { dateFromDb, existingFunction, lockFunction } from './sql-metadata-store.js';

/**
 * `TriggerStore` over the database of a `SqlMetadataStore`, beside the functions and the queues (`SqlMessageQueues`)
 * it names. Creating a trigger locks its function's row and its queues' rows (in name order), as deleting a function
 * or a queue does, so a trigger never names a queue deleted meanwhile; a function's triggers go with its row (a
 * cascading foreign key).
 *
 * @example
 * const triggers = new SqlTriggerStore(metadata.shared());
 * await triggers.create({ functionName: 'billing', queue: 'orders', batchSize: 10, deadLetterQueue: 'orders-dlq' });
 */
export class SqlTriggerStore implements TriggerStore {
  readonly #access: SqlStoreAccess;
  readonly #now: () => number;

  constructor(access: SqlStoreAccess, options: { now?: () => number } = {}) {
    this.#access = access;
    this.#now = options.now ?? Date.now;
  }

  create(input: NewTrigger): Promise<QueueTrigger> {
    return this.#access.run(`create a trigger of function ${String(input.functionName)}`, async () => {
      const settings = compileTriggerSettings(input);
      return this.#access.write(async (trx) => {
        await lockFunction(trx, settings.functionName);
        await existingFunction(trx, settings.functionName);
        const queues = [settings.queue, ...(settings.deadLetterQueue === null ? [] : [settings.deadLetterQueue])];
        for (const queue of [...queues].sort()) {
          if (!(await lockQueue(trx, queue))) {
            const which = queue === settings.queue ? 'queue' : 'dead-letter queue';
            const missing = queueNotFound(queue);
            throw new PlatformError(
              'NOT_FOUND',
              `${which} ${queue} does not exist (create it first: savassan queue create ${queue})`,
              {
                details: missing.details,
              },
            );
          }
        }
        const existing = await trx
          .selectFrom('queue_triggers')
          .select('id')
          .where('function_name', '=', settings.functionName)
          .where('queue_name', '=', settings.queue)
          .executeTakeFirst();
        if (existing !== undefined) {
          throw new PlatformError(
            'CONFLICT',
            `function ${settings.functionName} has a trigger on queue ${settings.queue} already: ${existing.id}`,
            { details: { triggerId: existing.id } },
          );
        }
        const row = {
          id: randomBytes(8).toString('hex'),
          function_name: settings.functionName,
          queue_name: settings.queue,
          batch_size: settings.batchSize,
          window_seconds: settings.windowSeconds,
          max_concurrency: settings.maxConcurrency,
          max_receives: settings.maxReceives,
          dead_letter_queue: settings.deadLetterQueue,
          created_at: this.#now(),
        };
        await trx.insertInto('queue_triggers').values(row).execute();
        return triggerFromRow(row);
      });
    });
  }

  get(id: string): Promise<QueueTrigger | null> {
    return this.#access.run(`read trigger ${String(id)}`, async () => {
      if (typeof id !== 'string') return null;
      const row = await this.#access.db
        .selectFrom('queue_triggers')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : triggerFromRow(row);
    });
  }

  list(): Promise<QueueTrigger[]> {
    return this.#access.run('list triggers', async () => {
      const rows = await this.#access.db
        .selectFrom('queue_triggers')
        .selectAll()
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map(triggerFromRow);
    });
  }

  delete(id: string): Promise<boolean> {
    return this.#access.run(`delete trigger ${String(id)}`, async () => {
      if (typeof id !== 'string') return false;
      const result = await this.#access.write((trx) =>
        trx.deleteFrom('queue_triggers').where('id', '=', id).executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    });
  }
}

function triggerFromRow(row: QueueTriggerRow): QueueTrigger {
  return {
    id: row.id,
    functionName: row.function_name,
    queue: row.queue_name,
    batchSize: Number(row.batch_size),
    windowSeconds: Number(row.window_seconds),
    maxConcurrency: Number(row.max_concurrency),
    maxReceives: Number(row.max_receives),
    deadLetterQueue: row.dead_letter_queue,
    createdAt: dateFromDb(row.created_at, 'queue_triggers.created_at'),
  };
}
