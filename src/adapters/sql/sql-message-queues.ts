import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import {
  isQueueName,
  messageIds,
  queueNotFound,
  validateBodies,
  validateMessageReceive,
  validateQueueName,
  validateReceipts,
} from '../../core/message-queue-rules.js';
import type {
  MessageQueueInfo,
  MessageQueues,
  MessageQueueStats,
  MessageReceiveOptions,
  ReceivedMessage,
} from '../../core/ports/message-queue.js';
import type { BigIntValue, DbExecutor } from './schema.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import { dateFromDb, intFromDb } from './sql-metadata-store.js';

export interface SqlMessageQueuesOptions {
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number;
}

/**
 * `MessageQueues` over the database of a `SqlMetadataStore` (SQLite, PostgreSQL or MySQL): it shares that store's
 * connections, lifecycle (the database closes with the metadata store; `close()` here only stops this store),
 * retries and durability barrier, so a sent message is as durable as a deploy.
 *
 * A message is one row; `visible_at` is when it may be received next (its send time, a release's time or the end of
 * its visibility timeout). Receiving reads the queue's index on `visible_at` in order up to the batch size and
 * claims each row with an update conditioned on it still being visible, so two receivers never both claim it. The
 * messages reference their queue with a cascading foreign key: a send racing a delete of its queue either lands
 * before the delete (and goes with it) or fails.
 *
 * @example
 * const metadata = await openSqliteMetadataStore(path);
 * const queues = new SqlMessageQueues(metadata.shared());
 * await queues.createQueue('orders');
 * const [id] = await queues.send('orders', ['{"order":42}']);
 */
export class SqlMessageQueues implements MessageQueues {
  readonly #access: SqlStoreAccess;
  readonly #now: () => number;
  #closed = false;

  constructor(access: SqlStoreAccess, options: SqlMessageQueuesOptions = {}) {
    this.#access = access;
    this.#now = options.now ?? Date.now;
  }

  createQueue(name: string): Promise<{ queue: MessageQueueInfo; created: boolean }> {
    return this.#run(`create queue ${String(name)}`, async () => {
      validateQueueName(name);
      const now = this.#now();
      return this.#access.write(async (trx) => {
        const existing = await trx.selectFrom('message_queues').selectAll().where('name', '=', name).executeTakeFirst();
        if (existing !== undefined) {
          return { queue: { name, createdAt: dateFromDb(existing.created_at, 'created_at') }, created: false };
        }
        // A concurrent create makes this a unique violation; the retry then finds the queue.
        await trx.insertInto('message_queues').values({ name, created_at: now }).execute();
        return { queue: { name, createdAt: new Date(now) }, created: true };
      });
    });
  }

  getQueue(name: string): Promise<MessageQueueInfo | null> {
    return this.#run(`read queue ${String(name)}`, async () => {
      if (!isQueueName(name)) return null;
      const row = await this.#access.db
        .selectFrom('message_queues')
        .selectAll()
        .where('name', '=', name)
        .executeTakeFirst();
      return row === undefined ? null : { name: row.name, createdAt: dateFromDb(row.created_at, 'created_at') };
    });
  }

  listQueues(): Promise<MessageQueueInfo[]> {
    return this.#run('list queues', async () => {
      const rows = await this.#access.db.selectFrom('message_queues').selectAll().orderBy('name').execute();
      return rows.map((row) => ({ name: row.name, createdAt: dateFromDb(row.created_at, 'created_at') }));
    });
  }

  deleteQueue(name: string): Promise<boolean> {
    return this.#run(`delete queue ${String(name)}`, async () => {
      if (!isQueueName(name)) return false;
      return this.#access.write(async (trx) => {
        // The queue's row lock first: a trigger being created on it waits for this transaction, or this one for it.
        if (!(await lockQueue(trx, name))) return false;
        const users = await trx
          .selectFrom('queue_triggers')
          .select(['id', 'function_name'])
          .where((eb) => eb.or([eb('queue_name', '=', name), eb('dead_letter_queue', '=', name)]))
          .orderBy('id')
          .execute();
        if (users.length > 0) {
          throw new PlatformError(
            'CONFLICT',
            `queue ${name} is used by trigger ${users.map((user) => `${user.id} (function ${user.function_name})`).join(', ')}: remove ${users.length === 1 ? 'it' : 'them'} first (savassan trigger rm ID)`,
            { details: { triggers: users.map((user) => user.id) } },
          );
        }
        await trx.deleteFrom('queue_messages').where('queue_name', '=', name).execute();
        const result = await trx.deleteFrom('message_queues').where('name', '=', name).executeTakeFirst();
        return result.numDeletedRows > 0n;
      });
    });
  }

  send(queue: string, bodies: readonly string[]): Promise<string[]> {
    return this.#run(`send to queue ${String(queue)}`, async () => {
      const checked = validateBodies(bodies);
      validateQueueName(queue);
      const now = this.#now();
      return this.#access.write(async (trx) => {
        await requireQueue(trx, queue);
        const ids = messageIds(checked.length, now);
        const rows = checked.map((body, index) => ({
          id: ids[index]!,
          queue_name: queue,
          body,
          sent_at: now,
          visible_at: now,
          receive_count: 0,
          first_received_at: null,
          receipt: null,
        }));
        // In slices: some engines bound a statement's parameters, and a body may be 256 KiB.
        for (let start = 0; start < rows.length; start += 20) {
          await trx
            .insertInto('queue_messages')
            .values(rows.slice(start, start + 20))
            .execute();
        }
        return rows.map((row) => row.id);
      });
    });
  }

  receive(queue: string, options: MessageReceiveOptions): Promise<ReceivedMessage[]> {
    return this.#run(`receive from queue ${String(queue)}`, async () => {
      validateMessageReceive(options);
      validateQueueName(queue);
      const now = this.#now();
      // An empty poll (the common case of an idle trigger) reads the index only: no write transaction, no barrier.
      const visible = await this.#access.db
        .selectFrom('queue_messages')
        .select('id')
        .where('queue_name', '=', queue)
        .where('visible_at', '<=', now)
        .limit(1)
        .executeTakeFirst();
      if (visible === undefined) {
        await requireQueue(this.#access.db, queue);
        return [];
      }
      return this.#access.write(async (trx) => {
        await requireQueue(trx, queue);
        const rows = await trx
          .selectFrom('queue_messages')
          .selectAll()
          .where('queue_name', '=', queue)
          .where('visible_at', '<=', now)
          .orderBy('visible_at')
          .orderBy('id')
          .limit(options.max)
          .execute();
        const received: ReceivedMessage[] = [];
        for (const row of rows) {
          const receipt = randomUUID();
          const receiveCount = row.receive_count + 1;
          const firstReceivedAt =
            row.first_received_at === null ? now : intFromDb(row.first_received_at, 'first_received_at');
          const claimed = await trx
            .updateTable('queue_messages')
            .set({
              visible_at: now + options.visibilityMs,
              receive_count: receiveCount,
              first_received_at: firstReceivedAt,
              receipt,
            })
            .where('id', '=', row.id)
            .where('visible_at', '<=', now)
            .where('receive_count', '=', row.receive_count)
            .executeTakeFirst();
          if (claimed.numUpdatedRows === 0n) continue;
          received.push({
            messageId: row.id,
            body: row.body,
            receiveCount,
            sentAt: dateFromDb(row.sent_at, 'sent_at'),
            firstReceivedAt: new Date(firstReceivedAt),
            receipt,
          });
        }
        return received;
      });
    });
  }

  ack(queue: string, receipts: readonly string[]): Promise<number> {
    return this.#run(`acknowledge messages of queue ${String(queue)}`, async () => {
      const wanted = [...new Set(validateReceipts(receipts))];
      validateQueueName(queue);
      return this.#access.write(async (trx) => {
        await requireQueue(trx, queue);
        if (wanted.length === 0) return 0;
        const result = await trx
          .deleteFrom('queue_messages')
          .where('queue_name', '=', queue)
          .where('receipt', 'in', wanted)
          .executeTakeFirst();
        return Number(result.numDeletedRows);
      });
    });
  }

  release(queue: string, receipts: readonly string[]): Promise<number> {
    return this.#run(`release messages of queue ${String(queue)}`, async () => {
      const wanted = [...new Set(validateReceipts(receipts))];
      validateQueueName(queue);
      const now = this.#now();
      return this.#access.write(async (trx) => {
        await requireQueue(trx, queue);
        if (wanted.length === 0) return 0;
        const result = await trx
          .updateTable('queue_messages')
          .set({ visible_at: now, receipt: null })
          .where('queue_name', '=', queue)
          .where('receipt', 'in', wanted)
          .executeTakeFirst();
        return Number(result.numUpdatedRows);
      });
    });
  }

  stats(queue: string): Promise<MessageQueueStats> {
    return this.#run(`read the figures of queue ${String(queue)}`, async () => {
      validateQueueName(queue);
      await requireQueue(this.#access.db, queue);
      const figures = await this.#figures([queue]);
      return figures.get(queue) ?? emptyStats(queue);
    });
  }

  listStats(): Promise<MessageQueueStats[]> {
    return this.#run('list queues with their figures', async () => {
      const names = (await this.#access.db.selectFrom('message_queues').select('name').orderBy('name').execute()).map(
        (row) => row.name,
      );
      const figures = await this.#figures(undefined);
      return names.map((name) => figures.get(name) ?? emptyStats(name));
    });
  }

  purge(queue: string): Promise<number> {
    return this.#run(`purge queue ${String(queue)}`, async () => {
      validateQueueName(queue);
      return this.#access.write(async (trx) => {
        await requireQueue(trx, queue);
        const result = await trx.deleteFrom('queue_messages').where('queue_name', '=', queue).executeTakeFirst();
        return Number(result.numDeletedRows);
      });
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /** Per queue (of `only`, or all) with messages: its figures now. */
  async #figures(only: string[] | undefined): Promise<Map<string, MessageQueueStats>> {
    const now = this.#now();
    let query = this.#access.db
      .selectFrom('queue_messages')
      .select((eb) => [
        'queue_name',
        eb.fn.countAll<BigIntValue>().as('total'),
        eb.fn.sum<BigIntValue | null>(eb.case().when('visible_at', '<=', now).then(1).else(0).end()).as('visible'),
        eb.fn.min<BigIntValue | null>('sent_at').as('oldest'),
      ]);
    if (only !== undefined) query = query.where('queue_name', 'in', only);
    const rows = await query.groupBy('queue_name').execute();
    const figures = new Map<string, MessageQueueStats>();
    for (const row of rows) {
      const total = intFromDb(row.total, 'total');
      const visible = row.visible === null ? 0 : intFromDb(row.visible, 'visible');
      figures.set(row.queue_name, {
        name: row.queue_name,
        depth: visible,
        inFlight: total - visible,
        oldestSentAt: row.oldest === null ? null : dateFromDb(row.oldest, 'sent_at'),
      });
    }
    return figures;
  }

  #run<T>(action: string, operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new PlatformError('UNAVAILABLE', 'the message queues are closed'));
    return this.#access.run(action, operation);
  }
}

function emptyStats(name: string): MessageQueueStats {
  return { name, depth: 0, inFlight: 0, oldestSentAt: null };
}

/** NOT_FOUND when the queue does not exist. */
async function requireQueue(db: DbExecutor, name: string): Promise<void> {
  const row = await db.selectFrom('message_queues').select('name').where('name', '=', name).executeTakeFirst();
  if (row === undefined) throw queueNotFound(name);
}

/** Takes the queue row's write lock (a no-op update); false when there is no such queue. */
export async function lockQueue(db: DbExecutor, name: string): Promise<boolean> {
  const result = await db
    .updateTable('message_queues')
    .set({ created_at: sql<number>`created_at` })
    .where('name', '=', name)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
