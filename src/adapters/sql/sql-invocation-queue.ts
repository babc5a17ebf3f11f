import { randomUUID } from 'node:crypto';
import type { Transaction, Updateable } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import { timeOrderedUuid } from '../../core/ids.js';
import {
  attemptsFromJson,
  type StoredAttempt,
  storedAttempt,
  deadLetterLimit,
  defaultQueueCapacityPerFunction,
  queueFullError,
  validateAttempt,
  validateCapacity,
  validateEndedRetention,
  validateEnqueue,
  validateQueuedFunctionName,
  validateReceive,
  validTime,
} from '../../core/invocation-queue-rules.js';
import { idempotencyWindowMs, retentionSweepIntervalMs } from '../../core/ports/invocation-queue.js';
import type {
  EnqueueResult,
  InvocationAttempt,
  InvocationDelivery,
  InvocationEnqueue,
  InvocationQueue,
  InvocationQueueStats,
  QueuedInvocation,
  QueuedInvocationState,
  ReceiveOptions,
} from '../../core/ports/invocation-queue.js';
import type { Database, DbExecutor, QueuedInvocationRow, QueuedInvocationsTable } from './schema.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import { dateFromDb, intFromDb } from './sql-metadata-store.js';

export interface SqlInvocationQueueOptions {
  /** Events queued or running per function; `enqueue` beyond it fails with TOO_MANY_REQUESTS. Default 10 000. */
  capacityPerFunction?: number;
  /** How long a succeeded or failed event stays readable with `get` after it ended (ms). Default 7 days. */
  endedRetentionMs?: number;
  /** The clock, epoch ms. Default `Date.now`. */
  now?: () => number;
}

const waitingStates = ['queued', 'running'] as const;
/** Writes (enqueues, settles) in one transaction, at most. */
const maxWriteBatch = 256;
/** Rows of each kind (ended events, idempotency keys) one sweep deletes, at most: a sweep holds the write lock briefly. */
const sweepChunk = 500;

/** A write waiting for the next batch. */
interface PendingWrite {
  write: (trx: Transaction<Database>, counts: Map<string, number>) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}
const states: ReadonlySet<string> = new Set<QueuedInvocationState>([
  'queued',
  'running',
  'succeeded',
  'failed',
  'dead_lettered',
]);

/**
 * `InvocationQueue` over the database of a `SqlMetadataStore` (SQLite, PostgreSQL or MySQL): it shares that store's
 * connections, lifecycle (the database closes with the metadata store; `close()` here only stops this queue),
 * retries and durability barrier, so an accepted event is as durable as a deploy.
 *
 * Enqueues are written in batches: those made while a batch is being written go together in the next transaction,
 * so under load the events accepted in one turn of the event loop cost one commit.
 *
 * A delivery is a row in state `running` whose `due_at` is its visibility expiry, and an ended event has no `due_at`:
 * receiving reads the index on `due_at` in order up to the batch size, whatever the backlog. It takes the rows due in
 * `queued` or `running` with one index range, and each row is claimed with an update conditioned on it still being
 * due, so two receivers on a server database never both claim it.
 *
 * Retention: `receive` sweeps, at most once every `retentionSweepIntervalMs` of the queue's clock, the events that
 * ended (`ended_at`) longer than `endedRetentionMs` ago and the idempotency keys past their window, up to
 * `sweepChunk` rows of each in one short transaction; a sweep that filled a chunk goes on at the next `receive`.
 *
 * @example
 * const metadata = await openSqliteMetadataStore(path);
 * const queue = new SqlInvocationQueue(metadata.shared());
 * const { id } = await queue.enqueue({ functionName: 'billing', payload: '{"order":42}' });
 */
export class SqlInvocationQueue implements InvocationQueue {
  readonly capacityPerFunction: number;
  readonly #access: SqlStoreAccess;
  readonly #now: () => number;
  readonly #endedRetentionMs: number;
  /** When `receive` last finished a sweep, by the queue's clock. */
  #sweptAt = Number.NEGATIVE_INFINITY;
  #closed = false;
  readonly #pending: PendingWrite[] = [];
  #flushing = false;

  constructor(access: SqlStoreAccess, options: SqlInvocationQueueOptions = {}) {
    this.#access = access;
    this.capacityPerFunction = validateCapacity(options.capacityPerFunction ?? defaultQueueCapacityPerFunction);
    this.#endedRetentionMs = validateEndedRetention(options.endedRetentionMs);
    this.#now = options.now ?? Date.now;
  }

  enqueue(input: InvocationEnqueue): Promise<EnqueueResult> {
    if (this.#closed) return Promise.reject(new PlatformError('UNAVAILABLE', 'the invocation queue is closed'));
    const now = this.#now();
    let checked: { dueAt: number; idempotencyKey: string | null };
    try {
      checked = validateEnqueue(input, now);
    } catch (err) {
      return Promise.reject(PlatformError.from(err, 'BAD_REQUEST'));
    }
    return this.#batched((trx, counts) => this.#enqueueIn(trx, input, now, checked, counts));
  }

  /**
   * Runs `write` in the next batch: the writes made while a batch is being written go together in one transaction,
   * so under load the events accepted (or settled) in one turn of the event loop cost one commit, not one each. Each
   * write succeeds or fails on its own when its queue is full (TOO_MANY_REQUESTS); any other failure fails the batch,
   * which the store retries whole. `counts` carries each function's count of events queued or running through the
   * batch.
   */
  #batched<T>(write: (trx: Transaction<Database>, counts: Map<string, number>) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new PlatformError('UNAVAILABLE', 'the invocation queue is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ write, resolve: resolve as (value: unknown) => void, reject });
      if (this.#pending.length === 1 && !this.#flushing) queueMicrotask(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, maxWriteBatch);
      try {
        const outcomes = await this.#access.run(`write ${batch.length} queued invocations`, () =>
          this.#access.write(async (trx) => {
            const counts = new Map<string, number>();
            const results: ({ value: unknown } | PlatformError)[] = [];
            for (const item of batch) {
              try {
                results.push({ value: await item.write(trx, counts) });
              } catch (err) {
                if (!(err instanceof PlatformError) || err.code !== 'TOO_MANY_REQUESTS') throw err;
                results.push(err);
              }
            }
            return results;
          }),
        );
        outcomes.forEach((outcome, i) => {
          const item = batch[i]!;
          if (outcome instanceof PlatformError) item.reject(outcome);
          else item.resolve(outcome.value);
        });
      } catch (err) {
        for (const item of batch) item.reject(err);
      }
    }
    this.#flushing = false;
  }

  async #enqueueIn(
    trx: Transaction<Database>,
    input: InvocationEnqueue,
    now: number,
    { dueAt, idempotencyKey }: { dueAt: number; idempotencyKey: string | null },
    counts: Map<string, number>,
  ): Promise<EnqueueResult> {
    const { functionName } = input;
    // The key's row, if any: a fresh one whose event still exists makes this a duplicate; a stale one is replaced.
    let stale: { invocation_id: string; created_at: number } | undefined;
    if (idempotencyKey !== null) {
      const known = await trx
        .selectFrom('invocation_idempotency_keys as k')
        .leftJoin('queued_invocations as q', 'q.id', 'k.invocation_id')
        .select(['k.invocation_id', 'k.created_at', 'q.id'])
        .where('k.function_name', '=', functionName)
        .where('k.idempotency_key', '=', idempotencyKey)
        .executeTakeFirst();
      if (known !== undefined) {
        const createdAt = intFromDb(known.created_at, 'created_at');
        if (known.id !== null && createdAt > now - idempotencyWindowMs) {
          return { id: known.invocation_id, duplicate: true };
        }
        stale = { invocation_id: known.invocation_id, created_at: createdAt };
      }
    }
    let count = counts.get(functionName);
    if (count === undefined) {
      const row = await trx
        .selectFrom('queued_invocations')
        .select((eb) => eb.fn.countAll().as('count'))
        .where('function_name', '=', functionName)
        .where('due_at', 'is not', null)
        .executeTakeFirstOrThrow();
      count = intFromDb(row.count, 'count');
    }
    if (count >= this.capacityPerFunction) throw queueFullError(functionName, this.capacityPerFunction);
    counts.set(functionName, count + 1);
    const id = timeOrderedUuid(now);
    await trx
      .insertInto('queued_invocations')
      .values({
        id,
        function_name: functionName,
        payload: input.payload,
        state: 'queued',
        enqueued_at: now,
        due_at: dueAt,
        delivery_count: 0,
        receipt: null,
        attempts: '[]',
        idempotency_key: idempotencyKey,
        dead_letter_reason: null,
        dead_lettered_at: null,
        redriven_at: null,
        ended_at: null,
      })
      .execute();
    if (idempotencyKey !== null) {
      // Only the stale row this transaction read: a key another enqueue has just taken stays, and this insert
      // then fails on the primary key, which the store retries; the retry finds the key and returns its event.
      if (stale !== undefined) {
        await trx
          .deleteFrom('invocation_idempotency_keys')
          .where('function_name', '=', functionName)
          .where('idempotency_key', '=', idempotencyKey)
          .where('invocation_id', '=', stale.invocation_id)
          .where('created_at', '=', stale.created_at)
          .execute();
      }
      await trx
        .insertInto('invocation_idempotency_keys')
        .values({
          function_name: functionName,
          idempotency_key: idempotencyKey,
          invocation_id: id,
          created_at: now,
        })
        .execute();
    }
    return { id, duplicate: false };
  }

  receive(options: ReceiveOptions): Promise<InvocationDelivery[]> {
    return this.#run('receive queued events', async () => {
      validateReceive(options);
      const now = this.#now();
      if (now - this.#sweptAt >= retentionSweepIntervalMs) await this.#sweep(now);
      return this.#access.write(async (trx) => {
        let query = trx.selectFrom('queued_invocations').selectAll().where('due_at', '<=', now);
        if (options.functionName !== undefined) query = query.where('function_name', '=', options.functionName);
        const rows = await query.orderBy('due_at').orderBy('id').limit(options.max).execute();
        const deliveries: InvocationDelivery[] = [];
        for (const row of rows) {
          const receipt = randomUUID();
          const deliveryCount = row.delivery_count + 1;
          const claimed = await trx
            .updateTable('queued_invocations')
            .set({ state: 'running', due_at: now + options.visibilityMs, delivery_count: deliveryCount, receipt })
            .where('id', '=', row.id)
            .where('state', 'in', waitingStates)
            .where('due_at', '<=', now)
            .executeTakeFirst();
          if (claimed.numUpdatedRows === 0n) continue;
          deliveries.push({
            id: row.id,
            functionName: row.function_name,
            payload: row.payload,
            enqueuedAt: dateFromDb(row.enqueued_at, 'enqueued_at'),
            receipt,
            deliveryCount,
            attempts: attemptsFromJson(row.attempts),
            redrivenAt: row.redriven_at === null ? null : dateFromDb(row.redriven_at, 'redriven_at'),
          });
        }
        return deliveries;
      });
    });
  }

  complete(receipt: string, attempt: InvocationAttempt): Promise<boolean> {
    return this.#settle(receipt, attempt, (now) => ({ state: 'succeeded', due_at: null, ended_at: now }));
  }

  fail(receipt: string, attempt: InvocationAttempt): Promise<boolean> {
    return this.#settle(receipt, attempt, (now) => ({ state: 'failed', due_at: null, ended_at: now }));
  }

  retry(receipt: string, attempt: InvocationAttempt, notBefore: Date): Promise<boolean> {
    return this.#settle(receipt, attempt, () => ({
      state: 'queued',
      due_at: validTime(notBefore, 'the retry time'),
    }));
  }

  deadLetter(receipt: string, attempt: InvocationAttempt | null, reason: string): Promise<boolean> {
    return this.#settle(receipt, attempt, (now) => ({
      state: 'dead_lettered',
      due_at: null,
      dead_letter_reason: reason,
      dead_lettered_at: now,
    }));
  }

  get(id: string): Promise<QueuedInvocation | null> {
    return this.#run(`read queued invocation ${id}`, async () => {
      const row = await this.#access.db
        .selectFrom('queued_invocations')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : queuedFromRow(row, this.#now());
    });
  }

  listDeadLetters(functionName: string, limit?: number): Promise<QueuedInvocation[]> {
    return this.#run(`list dead letters of function ${functionName}`, async () => {
      validateQueuedFunctionName(functionName);
      const count = deadLetterLimit(limit);
      const rows = await this.#access.db
        .selectFrom('queued_invocations')
        .selectAll()
        .where('function_name', '=', functionName)
        .where('state', '=', 'dead_lettered')
        .orderBy('dead_lettered_at', 'desc')
        .orderBy('id', 'desc')
        .limit(count)
        .execute();
      const now = this.#now();
      return rows.map((row) => queuedFromRow(row, now));
    });
  }

  redrive(functionName: string, id: string): Promise<boolean> {
    return this.#run(`redrive dead letter ${id} of function ${functionName}`, async () => {
      validateQueuedFunctionName(functionName);
      const now = this.#now();
      const result = await this.#access.write((trx) =>
        trx
          .updateTable('queued_invocations')
          .set({ state: 'queued', due_at: now, dead_letter_reason: null, dead_lettered_at: null, redriven_at: now })
          .where('id', '=', id)
          .where('function_name', '=', functionName)
          .where('state', '=', 'dead_lettered')
          .executeTakeFirst(),
      );
      return result.numUpdatedRows > 0n;
    });
  }

  purgeDeadLetters(functionName: string): Promise<number> {
    return this.#run(`purge dead letters of function ${functionName}`, async () => {
      validateQueuedFunctionName(functionName);
      const result = await this.#access.write((trx) =>
        trx
          .deleteFrom('queued_invocations')
          .where('function_name', '=', functionName)
          .where('state', '=', 'dead_lettered')
          .executeTakeFirst(),
      );
      return Number(result.numDeletedRows);
    });
  }

  stats(functionName: string): Promise<InvocationQueueStats> {
    return this.#run(`read queue depth of function ${functionName}`, async () => {
      validateQueuedFunctionName(functionName);
      const now = this.#now();
      const rows = await this.#access.db
        .selectFrom('queued_invocations')
        .select((eb) => [
          'state',
          eb.fn.countAll().as('count'),
          eb.fn.min('enqueued_at').as('oldest'),
          // A running event past its visibility expiry is waiting again.
          eb.fn.sum(eb.case().when('due_at', '<=', now).then(1).else(0).end()).as('expired'),
        ])
        .where('function_name', '=', functionName)
        .where('state', 'in', [...waitingStates, 'dead_lettered'])
        .groupBy('state')
        .execute();
      const stats: InvocationQueueStats = { queued: 0, running: 0, deadLettered: 0, oldestEnqueuedAt: null };
      let oldest = Number.POSITIVE_INFINITY;
      for (const row of rows) {
        const count = intFromDb(row.count, 'count');
        if (row.state === 'dead_lettered') {
          stats.deadLettered = count;
          continue;
        }
        if (row.state === 'queued') stats.queued += count;
        else {
          const expired = row.expired === null ? 0 : intFromDb(row.expired, 'expired');
          stats.running += count - expired;
          stats.queued += expired;
        }
        if (row.oldest !== null) oldest = Math.min(oldest, intFromDb(row.oldest, 'enqueued_at'));
      }
      if (oldest !== Number.POSITIVE_INFINITY) stats.oldestEnqueuedAt = new Date(oldest);
      return stats;
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /**
   * Deletes up to `sweepChunk` events ended longer than the retention ago and as many idempotency keys past their
   * window. Only a sweep that filled neither chunk waits the interval before the next one.
   */
  async #sweep(now: number): Promise<void> {
    const full = await this.#access.write(async (trx) => {
      const ended = await trx
        .selectFrom('queued_invocations')
        .select('id')
        .where('ended_at', '<', now - this.#endedRetentionMs)
        .orderBy('ended_at')
        .limit(sweepChunk)
        .execute();
      if (ended.length > 0) {
        await trx
          .deleteFrom('queued_invocations')
          .where(
            'id',
            'in',
            ended.map((row) => row.id),
          )
          .where('state', 'in', ['succeeded', 'failed'])
          .execute();
      }
      const keys = await trx
        .selectFrom('invocation_idempotency_keys')
        .select(['function_name', 'idempotency_key'])
        .where('created_at', '<=', now - idempotencyWindowMs)
        .orderBy('created_at')
        .limit(sweepChunk)
        .execute();
      if (keys.length > 0) {
        await trx
          .deleteFrom('invocation_idempotency_keys')
          .where('created_at', '<=', now - idempotencyWindowMs)
          .where((eb) =>
            eb(
              eb.refTuple('function_name', 'idempotency_key'),
              'in',
              keys.map((key) => eb.tuple(key.function_name, key.idempotency_key)),
            ),
          )
          .execute();
      }
      return ended.length === sweepChunk || keys.length === sweepChunk;
    });
    if (!full) this.#sweptAt = now;
  }

  /** Settle the delivery `receipt` names, if it is still current: record `attempt` and apply `change`. */
  #settle(
    receipt: string,
    attempt: InvocationAttempt | null,
    change: (now: number) => Updateable<QueuedInvocationsTable>,
  ): Promise<boolean> {
    const now = this.#now();
    let values: Updateable<QueuedInvocationsTable>;
    try {
      if (attempt !== null) validateAttempt(attempt);
      values = change(now);
    } catch (err) {
      return Promise.reject(PlatformError.from(err, 'BAD_REQUEST'));
    }
    return this.#batched(async (trx: DbExecutor) => {
      const row = await trx
        .selectFrom('queued_invocations')
        .select(['id', 'attempts', 'state', 'due_at'])
        .where('receipt', '=', receipt)
        .executeTakeFirst();
      // A delivery whose visibility has expired may already be someone else's: its receipt is no longer current.
      if (row?.state !== 'running' || row.due_at === null || intFromDb(row.due_at, 'due_at') <= now) return false;
      const attempts = JSON.parse(row.attempts) as StoredAttempt[];
      if (attempt !== null) attempts.push(storedAttempt(attempt));
      const result = await trx
        .updateTable('queued_invocations')
        .set({ ...values, receipt: null, attempts: JSON.stringify(attempts) })
        .where('id', '=', row.id)
        .where('receipt', '=', receipt)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    });
  }

  #run<T>(action: string, operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new PlatformError('UNAVAILABLE', 'the invocation queue is closed'));
    return this.#access.run(action, operation);
  }
}

function queuedFromRow(row: QueuedInvocationRow, now: number): QueuedInvocation {
  if (!states.has(row.state)) {
    throw new PlatformError('INTERNAL', `queued invocation ${row.id} is in an unknown state ${row.state}`);
  }
  const dueAt = row.due_at === null ? null : intFromDb(row.due_at, 'due_at');
  const state =
    row.state === 'running' && dueAt !== null && dueAt <= now ? 'queued' : (row.state as QueuedInvocationState);
  return {
    id: row.id,
    functionName: row.function_name,
    state,
    payload: row.payload,
    enqueuedAt: dateFromDb(row.enqueued_at, 'enqueued_at'),
    dueAt: dueAt === null ? null : new Date(dueAt),
    deliveryCount: row.delivery_count,
    attempts: attemptsFromJson(row.attempts),
    idempotencyKey: row.idempotency_key,
    deadLetterReason: row.dead_letter_reason,
    deadLetteredAt: row.dead_lettered_at === null ? null : dateFromDb(row.dead_lettered_at, 'dead_lettered_at'),
    redrivenAt: row.redriven_at === null ? null : dateFromDb(row.redriven_at, 'redriven_at'),
  };
}
